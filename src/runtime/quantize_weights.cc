// QuantizeModelWeights: in-memory round-to-nearest quantization of a loaded model's matrices.
#include <memory>
#include <vector>

#include "lowbit/model.h"

namespace lowbit {
namespace {

// Owns the packed buffers of a quantized model and keeps the source model's storage alive.
struct QuantizedStorage {
  std::shared_ptr<const void> source;
  std::vector<std::vector<uint8_t>> buffers;
};

Status QuantizeView(const Format& format, QuantizedStorage& storage, WeightView& w) {
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
  storage.buffers.push_back(std::move(packed));
  w.data = storage.buffers.back().data();
  return Status::Ok();
}

}  // namespace

Result<LlamaModel> QuantizeModelWeights(const LlamaModel& model, const FormatPtr& format) {
  if (!format->can_quantize()) {
    return Unimplemented("format " + format->spec() + " is decode-only: it cannot be a target");
  }
  auto storage = std::make_shared<QuantizedStorage>();
  storage->source = model.storage;
  LlamaModel q = model;
  std::vector<WeightView*> views = {&q.token_embedding};
  for (LayerWeights& l : q.layers) {
    for (WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      views.push_back(w);
    }
  }
  const bool tied = model.output.data == model.token_embedding.data;
  if (!tied) views.push_back(&q.output);
  for (WeightView* w : views) {
    LOWBIT_RETURN_IF_ERROR(QuantizeView(*format, *storage, *w));
    w->format = format;
  }
  if (tied) q.output = q.token_embedding;
  q.storage = storage;
  return q;
}

}  // namespace lowbit
