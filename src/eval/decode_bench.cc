// End-to-end decode speed of a model in a given weight format (src/eval/bench.h, docs/bench.md).
#include <algorithm>
#include <chrono>
#include <limits>
#include <vector>

#include "eval/bench.h"
#include "lowbit/format_registry.h"

namespace lowbit::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::vector<WeightView*> Matrices(LlamaModel& m) {
  std::vector<WeightView*> views = {&m.token_embedding, &m.output};
  for (LayerWeights& l : m.layers) {
    for (WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      views.push_back(w);
    }
  }
  return views;
}

}  // namespace

Result<LlamaModel> ModelWithWeightsIn(const LlamaModel& model, const std::string& spec) {
  LOWBIT_ASSIGN_OR_RETURN(FormatPtr format, ParseFormat(spec));
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel q, QuantizeModelWeights(model, format));
  // The f32 storage format packs plain little-endian floats with no header, which is exactly what
  // a null-format view reads in place: drop the format so the baseline is the runtime's own f32
  // path rather than a per-tile byte copy.
  if (format->spec() == "float:type=f32") {
    for (WeightView* w : Matrices(q)) {
      if (w->format != nullptr) {
        LOWBIT_CHECK(w->format->PackedBytes(w->rows, w->cols) == 4 * w->rows * w->cols);
        w->format = nullptr;
        w->kernel_plan.reset();  // a plan chosen for the f32 storage format no longer applies
      }
    }
  }
  return q;
}

Result<DecodeResult> MeasureDecode(const LlamaModel& model, std::span<const int32_t> prompt,
                                   const DecodeOptions& options) {
  if (prompt.empty()) return InvalidArgument("decode benchmark: the prompt is empty");
  if (options.generated_tokens < 1 || options.repeats < 1 || options.threads < 1) {
    return InvalidArgument("decode benchmark: generated tokens, repeats and threads must be >= 1");
  }
  SessionOptions session_options;
  session_options.max_tokens = static_cast<int64_t>(prompt.size()) + options.generated_tokens;
  session_options.n_threads = options.threads;
  LlamaSession session(model, session_options);
  SamplerOptions greedy;
  greedy.temperature = 0.0f;
  Sampler sampler(greedy);
  const int64_t vocab = model.config.vocab_size;

  DecodeResult r;
  r.weight_bytes = model.WeightBytes();
  r.prompt_s = std::numeric_limits<double>::infinity();
  r.generate_s = std::numeric_limits<double>::infinity();
  std::vector<float> logits;
  for (int rep = 0; rep < options.repeats; ++rep) {
    session.Reset();
    const auto t0 = Clock::now();
    LOWBIT_RETURN_IF_ERROR(
        session.Forward(prompt, static_cast<int64_t>(prompt.size()) - 1, &logits));
    const auto t1 = Clock::now();
    // generated_tokens steps: each feeds the token chosen from the previous logits back in.
    for (int64_t i = 0; i < options.generated_tokens; ++i) {
      const int32_t next = sampler.Sample(std::span<const float>(logits.data(), vocab));
      const int32_t one[1] = {next};
      LOWBIT_RETURN_IF_ERROR(session.Forward(one, 0, &logits));
    }
    const auto t2 = Clock::now();
    r.prompt_s = std::min(r.prompt_s, Seconds(t0, t1));
    r.generate_s = std::min(r.generate_s, Seconds(t1, t2));
  }
  r.tokens_per_s = static_cast<double>(options.generated_tokens) / r.generate_s;
  return r;
}

}  // namespace lowbit::bench
