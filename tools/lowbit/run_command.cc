// `lowbit run --model M [-p PROMPT] [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S]
//  [--threads N] [--tokenizer T]`: generates text, streaming it to stdout; prompt and generation
// speeds go to stderr.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"

namespace lowbit::cli {
namespace {

struct RunOptions {
  std::string model;
  ActivationCliOptions acts;
  std::string weights;  // optional format spec: quantize the matrices in memory (RTN)
  std::string tokenizer;
  std::string prompt;
  int64_t n_tokens = 256;
  float temperature = 0.8f;
  int64_t top_k = 40;
  float top_p = 0.95f;
  int64_t seed = -1;
  int threads = 2;
  bool verbose = false;
};

int RunGenerate(const RunOptions& o) {
  Result<LoadedModel> loaded = LoadModelWithTokenizer(o.model, o.tokenizer);
  if (!loaded.ok()) return ReportError(loaded.status());
  if (Status st = QuantizeModelInPlace(o.weights, loaded->model); !st.ok()) return ReportError(st);
  if (Status st = ApplyActivationFormats(o.acts, loaded->model); !st.ok()) return ReportError(st);
  const LlamaModel& model = loaded->model;
  const Tokenizer& tokenizer = *loaded->tokenizer;
  if (o.verbose) {
    fmt::print(stderr, "{}\nweights: {} ({:.2f} MiB), tokenizer: {}\n", model.config.ToString(),
               model.FormatSummary(), static_cast<double>(model.WeightBytes()) / (1 << 20),
               tokenizer.Describe());
  }
  std::vector<int32_t> prompt = tokenizer.Encode(o.prompt, tokenizer.add_bos_default());
  if (prompt.empty()) {
    return ReportError(
        InvalidArgument("--prompt is empty and the model has no BOS token to start "
                        "from; give a prompt"));
  }
  const int64_t context = model.config.context_length > 0 ? model.config.context_length : 4096;
  const int64_t total = static_cast<int64_t>(prompt.size()) + o.n_tokens;
  if (total > context) {
    return ReportError(InvalidArgument(
        fmt::format("prompt ({} tokens) + -n {} exceeds the model's context of {} tokens",
                    prompt.size(), o.n_tokens, context)));
  }
  SessionOptions session_options;
  session_options.max_tokens = total;
  session_options.n_threads = o.threads;
  LlamaSession session(model, session_options);
  SamplerOptions sampler_options;
  sampler_options.temperature = o.temperature;
  sampler_options.top_k = o.top_k;
  sampler_options.top_p = o.top_p;
  sampler_options.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  Sampler sampler(sampler_options);

  // The prompt is echoed as typed; generated tokens are streamed as they come.
  std::fputs(o.prompt.c_str(), stdout);
  std::fflush(stdout);
  using Clock = std::chrono::steady_clock;
  std::vector<float> logits;
  const auto t0 = Clock::now();
  Status st = session.Forward(prompt, static_cast<int64_t>(prompt.size()) - 1, &logits);
  if (!st.ok()) return ReportError(st);
  const auto t1 = Clock::now();
  int32_t prev = prompt.back();
  int64_t generated = 0;
  while (generated < o.n_tokens) {
    const int32_t next = sampler.Sample(logits);
    // llama2.c models delimit stories with BOS; chat/base models end with EOS.
    if (next == tokenizer.eos() || next == tokenizer.bos()) break;
    const std::string piece = tokenizer.DecodeToken(prev, next);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    prev = next;
    ++generated;
    if (generated == o.n_tokens) break;
    const int32_t one[1] = {next};
    st = session.Forward(one, 0, &logits);
    if (!st.ok()) return ReportError(st);
  }
  const auto t2 = Clock::now();
  std::fputc('\n', stdout);
  std::fflush(stdout);
  const double prompt_s = std::chrono::duration<double>(t1 - t0).count();
  const double gen_s = std::chrono::duration<double>(t2 - t1).count();
  fmt::print(stderr,
             "prompt: {} tokens in {:.3f} s ({:.1f} tokens/s); generation: {} tokens in {:.3f} s "
             "({:.1f} tokens/s); {} threads, seed {}\n",
             prompt.size(), prompt_s, static_cast<double>(prompt.size()) / prompt_s, generated,
             gen_s, generated > 0 ? static_cast<double>(generated) / gen_s : 0.0, o.threads,
             sampler_options.seed);
  return kExitOk;
}

}  // namespace

void AddRunCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand("run",
                                     "Generate text with a model (.gguf, llama2.c .bin or "
                                     "Hugging Face folder)");
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("--model,-m", o->model, "Model path")->required();
  o->acts.AddTo(cmd);
  cmd->add_option("--weights,-w", o->weights,
                  "Quantize the model's matrices to this format in memory first (round to nearest)");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer file (llama2.c .bin or tokenizer.json); default: the model's own, or "
                  "tokenizer.bin / tok<vocab>.bin next to a llama2.c model");
  cmd->add_option("--prompt,-p", o->prompt, "Prompt text (default: empty, start from BOS)");
  cmd->add_option("-n,--n-tokens", o->n_tokens, "Tokens to generate")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temp", o->temperature, "Temperature; 0 = greedy")
      ->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-k", o->top_k, "Keep the k most likely tokens; 0 = all")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass; 1 = off")
      ->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--seed", o->seed, "Sampling seed; -1 = random (printed at the end)");
  cmd->add_option("--threads,-t", o->threads, "Threads")->check(CLI::Range(1, 1024));
  cmd->add_flag("--verbose,-v", o->verbose, "Print the model configuration and formats");
  cmd->callback([=] { *exit_code = RunGenerate(*o); });
}

}  // namespace lowbit::cli
