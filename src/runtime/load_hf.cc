// Hugging Face checkpoint folder loader: config.json + model.safetensors (or a sharded index),
// for LlamaForCausalLM ("llama") and Qwen2ForCausalLM ("qwen2").
//
// Tensor names (transformers' modeling_llama / modeling_qwen2), shapes in numpy order (out, in):
//   model.embed_tokens.weight                         (vocab, dim)
//   model.layers.N.input_layernorm.weight             (dim)
//   model.layers.N.self_attn.{q,k,v,o}_proj.weight    q: (n_heads*hd, dim), k/v: (n_kv*hd, dim),
//                                                     o: (dim, n_heads*hd); q/k/v .bias with qkv
//                                                     bias
//   model.layers.N.post_attention_layernorm.weight    (dim)
//   model.layers.N.mlp.{gate,up,down}_proj.weight     gate/up: (hidden, dim), down: (dim, hidden)
//   model.norm.weight                                 (dim)
//   lm_head.weight                                    (vocab, dim), absent when tied
// HF keeps q/k rows in their original order, so RoPE pairs are (i, i + head_dim/2): kNeox.
// F32 tensors are used in place; F16/BF16 go through the float family's DequantizeRows.
// AQLM checkpoints (config.json quantization_config.quant_method "aqlm", docs/aqlm_hf.md): a linear
// stored as <prefix>.codes / .codebooks / .scales is converted once at load time into lowbit's packed
// "aqlm" bytes (runtime/aqlm_hf.h; no f32 copy), which the AQLM kernels run directly; a linear
// stored as <prefix>.weight (listed in linear_weights_not_to_quantize) loads as usual.
#include <algorithm>
#include <cstring>
#include <deque>

#include "formats/additive.h"
#include "lowbit/hf_config.h"
#include "lowbit/model.h"
#include "runtime/aqlm_hf.h"
#include "runtime/assemble_weights.h"
#include "runtime/linear.h"
#include "lowbit/safetensors.h"

namespace lowbit {
namespace {

// Packed AQLM tensors built at load time; owned by the model's storage.
struct HfAqlmStorage {
  std::shared_ptr<const SafetensorsModel> st;
  std::deque<std::vector<uint8_t>> packed;
};

class HfReader {
 public:
  // aqlm: the checkpoint's AQLM format, or null for a plain checkpoint; packed AQLM tensors are
  // appended to *owned.
  HfReader(const SafetensorsModel& st, std::string dir, FormatPtr aqlm = nullptr,
           std::deque<std::vector<uint8_t>>* owned = nullptr)
      : st_(st), dir_(std::move(dir)), aqlm_(std::move(aqlm)), owned_(owned) {}

  Result<WeightView> Matrix(const std::string& name, int64_t rows, int64_t cols) const {
    constexpr std::string_view kWeight = ".weight";
    if (aqlm_ != nullptr && name.ends_with(kWeight)) {
      const std::string prefix = name.substr(0, name.size() - kWeight.size());
      if (Has(prefix + ".codes")) return AqlmMatrix(prefix, rows, cols);
      if (!Has(name)) {
        return NotFound(dir_ + ": linear '" + prefix + "' has neither '" + prefix +
                        ".codes' (AQLM) nor '" + name + "'");
      }
    }
    LOWBIT_ASSIGN_OR_RETURN(const SafetensorsTensor* t, Find(name));
    if (t->shape.size() != 2 || t->rows != rows || t->cols != cols) {
      return DataLoss(dir_ + ": tensor '" + name + "' has shape " + Shape(*t) + ", expected [" +
                      std::to_string(rows) + ", " + std::to_string(cols) + "]");
    }
    WeightView w;
    w.name = name;
    w.rows = rows;
    w.cols = cols;
    w.data = t->data;
    if (t->dtype == SafetensorsDtype::kF32) {
      if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0) {
        return DataLoss(dir_ + ": f32 tensor '" + name + "' is not 4-byte aligned");
      }
    } else if (t->format != nullptr) {
      w.format = t->format;
    } else {
      return Unimplemented(dir_ + ": tensor '" + name + "' has dtype " +
                           std::string(SafetensorsDtypeName(t->dtype)) +
                           "; lowbit reads F32, F16 and BF16 checkpoints");
    }
    return w;
  }

  Result<std::vector<float>> Vector(const std::string& name, int64_t n) const {
    LOWBIT_ASSIGN_OR_RETURN(const SafetensorsTensor* t, Find(name));
    if (t->shape.size() != 1 || t->cols != n) {
      return DataLoss(dir_ + ": tensor '" + name + "' has shape " + Shape(*t) + ", expected [" +
                      std::to_string(n) + "]");
    }
    std::vector<float> v(static_cast<size_t>(n));
    if (t->dtype == SafetensorsDtype::kF32) {
      std::memcpy(v.data(), t->data, 4 * static_cast<size_t>(n));
    } else if (t->format != nullptr) {
      t->format->DequantizeRows(t->data, 1, n, 0, 1, v.data());
    } else {
      return Unimplemented(dir_ + ": tensor '" + name + "' has dtype " +
                           std::string(SafetensorsDtypeName(t->dtype)));
    }
    LOWBIT_RETURN_IF_ERROR(CheckFiniteVector(dir_, name, v));
    return v;
  }

  bool Has(const std::string& name) const { return st_.FindTensor(name) != nullptr; }

 private:
  Result<WeightView> AqlmMatrix(const std::string& prefix, int64_t rows, int64_t cols) const {
    HfAqlmTensorRefs refs;
    refs.prefix = prefix;
    const auto get = [&](const char* suffix, SafetensorsDtype* dtype, std::vector<int64_t>* shape,
                         const uint8_t** data) -> Status {
      LOWBIT_ASSIGN_OR_RETURN(const SafetensorsTensor* t, Find(prefix + "." + suffix));
      *dtype = t->dtype;
      *shape = t->shape;
      *data = t->data;
      return Status::Ok();
    };
    LOWBIT_RETURN_IF_ERROR(get("codes", &refs.codes_dtype, &refs.codes_shape, &refs.codes));
    LOWBIT_RETURN_IF_ERROR(
        get("codebooks", &refs.codebooks_dtype, &refs.codebooks_shape, &refs.codebooks));
    LOWBIT_RETURN_IF_ERROR(get("scales", &refs.scales_dtype, &refs.scales_shape, &refs.scales));
    const auto& format = static_cast<const AqlmFormat&>(*aqlm_);
    LOWBIT_ASSIGN_OR_RETURN(std::vector<uint8_t> packed,
                            HfAqlmToPacked(format.params(), rows, cols, refs, dir_));
    owned_->push_back(std::move(packed));
    WeightView w;
    w.name = prefix + ".codes";
    w.rows = rows;
    w.cols = cols;
    w.format = aqlm_;
    w.data = owned_->back().data();
    return w;
  }

  Result<const SafetensorsTensor*> Find(const std::string& name) const {
    const SafetensorsTensor* t = st_.FindTensor(name);
    if (t == nullptr) return NotFound(dir_ + ": tensor '" + name + "' not found");
    return t;
  }
  static std::string Shape(const SafetensorsTensor& t) {
    std::string s = "[";
    for (size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
    return s + "]";
  }
  const SafetensorsModel& st_;
  std::string dir_;
  FormatPtr aqlm_;
  std::deque<std::vector<uint8_t>>* owned_;
};

// The lowbit format of an AQLM quantization_config (null when the checkpoint is not quantized).
Result<FormatPtr> AqlmFormatFromHf(const HfConfig& hf, const std::string& dir) {
  if (!hf.quantization_config.has_value()) return FormatPtr();
  const HfQuantizationConfig& q = *hf.quantization_config;
  const std::string where = dir + "/config.json: quantization_config";
  if (q.quant_method != "aqlm") {
    return Unimplemented(where + ".quant_method '" + q.quant_method +
                         "' is not supported (lowbit reads 'aqlm')");
  }
  if (q.out_group_size != 1) {
    return Unimplemented(where + ".out_group_size = " + std::to_string(q.out_group_size) +
                         ": lowbit's AQLM format groups input weights only (out_group_size 1)");
  }
  AqlmParams p;
  p.m = static_cast<int>(std::min<int64_t>(q.num_codebooks, 1 << 20));
  p.b = static_cast<int>(std::min<int64_t>(q.nbits_per_codebook, 1 << 20));
  p.g = static_cast<int>(std::min<int64_t>(q.in_group_size, 1 << 20));
  Result<FormatPtr> format = MakeAqlmFormat(p);
  if (!format.ok()) {
    return Unimplemented(where + " (num_codebooks " + std::to_string(q.num_codebooks) +
                         ", nbits_per_codebook " + std::to_string(q.nbits_per_codebook) +
                         ", in_group_size " + std::to_string(q.in_group_size) +
                         ") is outside what lowbit runs: " + format.status().message());
  }
  return *format;
}

Result<LlamaConfig> ConfigFromHf(const HfConfig& hf, const std::string& dir) {
  LlamaConfig c;
  if (hf.model_type != "llama" && hf.model_type != "qwen2") {
    return Unimplemented(dir + "/config.json: model_type '" + hf.model_type +
                         "', lowbit runs 'llama' and 'qwen2'");
  }
  if (hf.hidden_act != "silu") {
    return Unimplemented(dir + "/config.json: hidden_act '" + hf.hidden_act +
                         "', lowbit's feed-forward is SwiGLU (silu)");
  }
  c.architecture = hf.model_type;
  c.dim = hf.hidden_size;
  c.hidden_dim = hf.intermediate_size;
  c.n_layers = hf.num_hidden_layers;
  c.n_heads = hf.num_attention_heads;
  c.n_kv_heads = hf.num_key_value_heads > 0 ? hf.num_key_value_heads : hf.num_attention_heads;
  c.head_dim = hf.head_dim > 0 ? hf.head_dim : hf.hidden_size / hf.num_attention_heads;
  c.rope_dim = c.head_dim;
  c.vocab_size = hf.vocab_size;
  c.context_length = hf.max_position_embeddings;
  c.rope_theta = hf.rope_theta;
  c.rope_layout = RopeLayout::kNeox;
  c.rms_eps = static_cast<float>(hf.rms_norm_eps);
  c.qkv_bias = hf.attention_bias;
  if (hf.rope_scaling.has_value()) {
    const RopeScaling& s = *hf.rope_scaling;
    if (s.type == "linear") {
      c.rope_scaling.type = RopeScalingType::kLinear;
      c.rope_scaling.factor = s.factor;
    } else if (s.type == "llama3") {
      c.rope_scaling.type = RopeScalingType::kLlama3;
      c.rope_scaling.factor = s.factor;
      c.rope_scaling.low_freq_factor = s.low_freq_factor;
      c.rope_scaling.high_freq_factor = s.high_freq_factor;
      c.rope_scaling.original_context_length = s.original_max_position_embeddings;
    } else if (s.type != "default" && !s.type.empty()) {
      return Unimplemented(dir + "/config.json: rope_scaling type '" + s.type +
                           "' is not supported (linear, llama3)");
    }
  }
  return c;
}

}  // namespace

Result<LlamaModel> LoadFromHfFolder(const std::string& dir) {
  LOWBIT_ASSIGN_OR_RETURN(const HfConfig hf, LoadHfConfig(dir));
  LlamaModel m;
  LOWBIT_ASSIGN_OR_RETURN(m.config, ConfigFromHf(hf, dir));
  LOWBIT_ASSIGN_OR_RETURN(const FormatPtr aqlm, AqlmFormatFromHf(hf, dir));
  LOWBIT_ASSIGN_OR_RETURN(SafetensorsModel opened, SafetensorsModel::Open(dir));
  auto storage = std::make_shared<HfAqlmStorage>();
  storage->st = std::make_shared<const SafetensorsModel>(std::move(opened));
  const SafetensorsModel* st = storage->st.get();
  const HfReader r(*st, dir, aqlm, &storage->packed);
  LlamaConfig& c = m.config;
  c.tied_embeddings = hf.tie_word_embeddings || !r.Has("lm_head.weight");
  if (Status s = c.Validate(); !s.ok()) return DataLoss(dir + "/config.json: " + s.message());

  LOWBIT_RETURN_IF_ERROR(AssembleLlamaWeights(r, kHfTensorNames, m));
  m.source = dir;
  m.source_kind = "hf";
  m.storage = storage;
  PrepareModelForIsa(m, kernels::ActiveIsa());  // choose each matrix's kernel (and repack) once
  return m;
}

}  // namespace lowbit
