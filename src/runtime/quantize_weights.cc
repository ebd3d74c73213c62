// QuantizeModelWeights: in-memory round-to-nearest quantization of a loaded model's matrices.
#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "lowbit/model.h"
#include "runtime/linear.h"
#include "runtime/thread_pool.h"

namespace lowbit {
namespace {

// Owns the packed buffers of a quantized model and keeps the source model's storage alive.
struct QuantizedStorage {
  std::shared_ptr<const void> source;
  std::vector<std::vector<uint8_t>> buffers;
};

// The packed bytes of w in `format` (w itself is not changed).
Result<std::vector<uint8_t>> QuantizeView(const Format& format, const WeightView& w) {
  // (rows, cols) f32: the source tensor alone, decoded when it is not stored as f32 already.
  std::vector<float> decoded;
  const float* x = reinterpret_cast<const float*>(w.data);
  if (!w.is_f32()) {
    decoded.resize(static_cast<size_t>(w.rows * w.cols));
    w.format->Dequantize(w.data, w.rows, w.cols, decoded.data());
    x = decoded.data();
  }
  std::vector<uint8_t> packed(static_cast<size_t>(format.PackedBytes(w.rows, w.cols)));
  Status st = format.Quantize(x, w.rows, w.cols, packed.data());
  if (!st.ok()) return Status(st.code(), "tensor '" + w.name + "': " + st.message());
  return packed;
}

}  // namespace

std::vector<std::pair<std::string, WeightView*>> NamedMatrices(LlamaModel& m) {
  std::vector<std::pair<std::string, WeightView*>> out;
  out.emplace_back("token_embd.weight", &m.token_embedding);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    LayerWeights& w = m.layers[l];
    const std::string b = "blk." + std::to_string(l) + ".";
    out.emplace_back(b + "attn_q.weight", &w.wq);
    out.emplace_back(b + "attn_k.weight", &w.wk);
    out.emplace_back(b + "attn_v.weight", &w.wv);
    out.emplace_back(b + "attn_output.weight", &w.wo);
    out.emplace_back(b + "ffn_gate.weight", &w.w_gate);
    out.emplace_back(b + "ffn_up.weight", &w.w_up);
    out.emplace_back(b + "ffn_down.weight", &w.w_down);
  }
  if (m.output.data != m.token_embedding.data) out.emplace_back("output.weight", &m.output);
  return out;
}

std::vector<std::pair<std::string, const WeightView*>> GgufMatrixNames(const LlamaModel& model) {
  std::vector<std::pair<std::string, const WeightView*>> out;
  for (auto& [name, view] : NamedMatrices(const_cast<LlamaModel&>(model))) {
    out.emplace_back(name, view);
  }
  return out;
}

Result<LlamaModel> QuantizeModelWeights(const LlamaModel& model,
                                        const MatrixFormatChooser& choose) {
  auto storage = std::make_shared<QuantizedStorage>();
  storage->source = model.storage;
  LlamaModel q = model;
  const bool tied = model.output.data == model.token_embedding.data;
  // The formats first, in order (the chooser may keep state), then the matrices quantized in
  // parallel, one task per matrix: each writes only its own buffer, so the bytes do not depend on
  // the thread count.
  std::vector<std::pair<WeightView*, FormatPtr>> jobs;
  for (auto& [name, w] : NamedMatrices(q)) {
    FormatPtr format = choose(*w, name);
    if (format == nullptr) continue;  // kept as stored
    if (!format->can_quantize()) {
      return Unimplemented("tensor '" + name + "': format " + format->spec() +
                           " is decode-only: it cannot be a target");
    }
    jobs.emplace_back(w, std::move(format));
  }
  storage->buffers.resize(jobs.size());
  std::vector<Status> status(jobs.size(), Status::Ok());
  {
    ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    pool.ParallelFor(static_cast<int64_t>(jobs.size()), [&](int64_t i, int /*thread*/) {
      Result<std::vector<uint8_t>> packed = QuantizeView(*jobs[i].second, *jobs[i].first);
      if (packed.ok()) {
        storage->buffers[i] = std::move(*packed);
      } else {
        status[i] = packed.status();
      }
    });
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    LOWBIT_RETURN_IF_ERROR(status[i]);
    jobs[i].first->data = storage->buffers[i].data();
    jobs[i].first->format = jobs[i].second;
  }
  if (tied) q.output = q.token_embedding;
  q.storage = storage;
  PrepareModelForIsa(q, kernels::ActiveIsa());  // choose each matrix's fused kernel once
  return q;
}

Result<LlamaModel> QuantizeModelWeights(const LlamaModel& model, const FormatPtr& format) {
  return QuantizeModelWeights(model, [&](const WeightView&, const std::string&) { return format; });
}

}  // namespace lowbit
