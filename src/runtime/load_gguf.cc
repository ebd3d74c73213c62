// GGUF model loader for the "llama" and "qwen2" architectures (metadata keys and tensor names as
// written by llama.cpp's converters; see docs/runtime.md for the table).
//
// RoPE layout: the llama converter permutes the rows of attn_q / attn_k so that rotated pairs are
// adjacent (2i, 2i+1), as in llama2.c; qwen2 files keep the HF order, whose pairs are (i, i + d/2)
// ("NeoX" style).
#include <climits>
#include <cstring>

#include "lowbit/gguf.h"
#include "lowbit/format_registry.h"
#include "lowbit/model.h"
#include "lowbit/quantize.h"
#include "runtime/assemble_weights.h"
#include "runtime/linear.h"

namespace lowbit {
namespace {

constexpr uint32_t kGgmlTypeF32 = 0;

class GgufModelReader {
 public:
  explicit GgufModelReader(const GgufFile& file) : file_(file) {}

  // A matrix tensor with the given (rows, cols); f32 tensors are viewed in place.
  Result<WeightView> Matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const GgufTensor* t = file_.FindTensor(name);
    if (t == nullptr) return NotFound(file_.path() + ": tensor '" + name + "' not found");
    if (t->dims.size() != 2 || t->rows != rows || t->cols != cols) {
      return DataLoss(file_.path() + ": tensor '" + name + "' has shape " + Shape(*t) +
                      ", expected (rows " + std::to_string(rows) + ", cols " +
                      std::to_string(cols) + ")");
    }
    WeightView w;
    w.name = name;
    w.rows = rows;
    w.cols = cols;
    w.data = t->data;
    if (t->ggml_type == kGgmlTypeF32) {
      if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0) {
        return DataLoss(file_.path() + ": f32 tensor '" + name + "' is not 4-byte aligned");
      }
    } else {
      if (t->format == nullptr) {
        return Unimplemented(file_.path() + ": tensor '" + name + "' has type " +
                             GgmlTypeName(t->ggml_type) + ", which lowbit cannot decode");
      }
      w.format = t->format;
    }
    return w;
  }

  // A 1-D tensor of n elements, decoded to f32.
  Result<std::vector<float>> Vector(const std::string& name, int64_t n) const {
    const GgufTensor* t = file_.FindTensor(name);
    if (t == nullptr) return NotFound(file_.path() + ": tensor '" + name + "' not found");
    if (t->rows * t->cols != n || t->cols != n) {
      return DataLoss(file_.path() + ": tensor '" + name + "' has shape " + Shape(*t) +
                      ", expected " + std::to_string(n) + " elements");
    }
    std::vector<float> v(static_cast<size_t>(n));
    if (t->ggml_type == kGgmlTypeF32) {
      std::memcpy(v.data(), t->data, 4 * static_cast<size_t>(n));
    } else if (t->format != nullptr) {
      t->format->DequantizeRows(t->data, 1, n, 0, 1, v.data());
    } else {
      return Unimplemented(file_.path() + ": tensor '" + name + "' has type " +
                           GgmlTypeName(t->ggml_type) + ", which lowbit cannot decode");
    }
    LOWBIT_RETURN_IF_ERROR(CheckFiniteVector(file_.path(), name, v));
    return v;
  }

  bool Has(const std::string& name) const { return file_.FindTensor(name) != nullptr; }

 private:
  static std::string Shape(const GgufTensor& t) {
    std::string s = "[";
    for (size_t i = 0; i < t.dims.size(); ++i) s += (i ? ", " : "") + std::to_string(t.dims[i]);
    return s + "] (ggml order)";
  }
  const GgufFile& file_;
};

// Model sizes read from metadata must lie in [1, 2^31 - 1]: real models are far below, and the
// bound keeps products of two sizes (n_heads * head_dim) from overflowing int64.
constexpr int64_t kMaxModelSize = INT32_MAX;
Status CheckSize(const GgufFile& f, const std::string& key, int64_t v) {
  if (v < 1 || v > kMaxModelSize) {
    return DataLoss(f.path() + ": metadata key '" + key + "' = " + std::to_string(v) +
                    " is not a size in [1, " + std::to_string(kMaxModelSize) + "]");
  }
  return Status::Ok();
}

Result<LlamaConfig> ReadConfig(const GgufFile& f) {
  LlamaConfig c;
  LOWBIT_ASSIGN_OR_RETURN(c.architecture, f.GetString("general.architecture"));
  const std::string& arch = c.architecture;
  if (arch != "llama" && arch != "qwen2") {
    return Unimplemented(f.path() + ": general.architecture = '" + arch +
                         "', lowbit runs 'llama' and 'qwen2'");
  }
  const std::string p = arch + ".";
  LOWBIT_ASSIGN_OR_RETURN(c.dim, f.GetInt(p + "embedding_length"));
  LOWBIT_ASSIGN_OR_RETURN(c.hidden_dim, f.GetInt(p + "feed_forward_length"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_layers, f.GetInt(p + "block_count"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_heads, f.GetInt(p + "attention.head_count"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_kv_heads, f.GetIntOr(p + "attention.head_count_kv", c.n_heads));
  LOWBIT_ASSIGN_OR_RETURN(c.context_length, f.GetIntOr(p + "context_length", 0));
  LOWBIT_RETURN_IF_ERROR(CheckSize(f, p + "embedding_length", c.dim));
  LOWBIT_RETURN_IF_ERROR(CheckSize(f, p + "feed_forward_length", c.hidden_dim));
  LOWBIT_RETURN_IF_ERROR(CheckSize(f, p + "block_count", c.n_layers));
  LOWBIT_RETURN_IF_ERROR(CheckSize(f, p + "attention.head_count", c.n_heads));
  LOWBIT_RETURN_IF_ERROR(CheckSize(f, p + "attention.head_count_kv", c.n_kv_heads));
  LOWBIT_ASSIGN_OR_RETURN(c.head_dim, f.GetIntOr(p + "attention.key_length", c.dim / c.n_heads));
  if (f.Find(p + "attention.key_length") != nullptr) {
    LOWBIT_RETURN_IF_ERROR(CheckSize(f, p + "attention.key_length", c.head_dim));
  }
  LOWBIT_ASSIGN_OR_RETURN(const int64_t value_length,
                          f.GetIntOr(p + "attention.value_length", c.head_dim));
  if (value_length != c.head_dim) {
    return Unimplemented(f.path() + ": " + p +
                         "attention.value_length = " + std::to_string(value_length) +
                         " differs from key_length " + std::to_string(c.head_dim));
  }
  LOWBIT_ASSIGN_OR_RETURN(c.rope_dim, f.GetIntOr(p + "rope.dimension_count", c.head_dim));
  if (f.Find(p + "rope.dimension_count") != nullptr) {
    LOWBIT_RETURN_IF_ERROR(CheckSize(f, p + "rope.dimension_count", c.rope_dim));
  }
  LOWBIT_ASSIGN_OR_RETURN(c.rope_theta, f.GetFloatOr(p + "rope.freq_base", 10000.0));
  LOWBIT_ASSIGN_OR_RETURN(const double eps,
                          f.GetFloatOr(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rms_eps = static_cast<float>(eps);
  c.rope_layout = arch == "qwen2" ? RopeLayout::kNeox : RopeLayout::kAdjacentPairs;

  LOWBIT_ASSIGN_OR_RETURN(const std::string scaling,
                          f.GetStringOr(p + "rope.scaling.type", "none"));
  LOWBIT_ASSIGN_OR_RETURN(double factor, f.GetFloatOr(p + "rope.scaling.factor", 0.0));
  if (factor == 0.0) {  // older files: rope.scale_linear
    LOWBIT_ASSIGN_OR_RETURN(factor, f.GetFloatOr(p + "rope.scale_linear", 1.0));
  }
  if (scaling == "linear" ||
      (scaling == "none" && factor != 1.0 && f.Find(p + "rope.scale_linear"))) {
    c.rope_scaling.type = RopeScalingType::kLinear;
    c.rope_scaling.factor = factor;
  } else if (scaling != "none") {
    // llama3-style scaling arrives as the rope_freqs tensor (read by the caller), with type "none".
    return Unimplemented(f.path() + ": " + p + "rope.scaling.type = '" + scaling +
                         "' is not supported (none, linear)");
  }
  return c;
}

}  // namespace

Result<LlamaModel> LoadFromGguf(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(GgufFile opened, GgufFile::Open(path));
  return LoadFromGguf(std::make_shared<const GgufFile>(std::move(opened)));
}

Result<LlamaModel> LoadFromGguf(std::shared_ptr<const GgufFile> file) {
  const std::string& path = file->path();
  LlamaModel m;
  LOWBIT_ASSIGN_OR_RETURN(m.config, ReadConfig(*file));
  LlamaConfig& c = m.config;
  const GgufTensor* embd = file->FindTensor("token_embd.weight");
  if (embd == nullptr) return NotFound(path + ": tensor 'token_embd.weight' not found");
  c.vocab_size = embd->rows;
  c.tied_embeddings = file->FindTensor("output.weight") == nullptr;
  c.qkv_bias = file->FindTensor("blk.0.attn_q.bias") != nullptr;
  if (Status st = c.Validate(); !st.ok()) return DataLoss(path + ": " + st.message());

  const GgufModelReader r(*file);
  LOWBIT_RETURN_IF_ERROR(AssembleLlamaWeights(r, kGgufTensorNames, m));
  if (r.Has("rope_freqs.weight")) {  // llama3-style per-frequency divisors
    const int64_t rope_dim = c.rope_dim > 0 ? c.rope_dim : c.head_dim;
    LOWBIT_ASSIGN_OR_RETURN(m.rope_freq_factors, r.Vector("rope_freqs.weight", rope_dim / 2));
  }
  // Activation formats written by `lowbit quantize --acts ...` apply automatically.
  const std::pair<const char*, FormatPtr*> act_keys[] = {
      {kActLinearInputsKey, &m.activations.linear_inputs},
      {kActAttentionKey, &m.activations.attention},
      {kActKvCacheKey, &m.activations.kv_cache}};
  for (const auto& [key, slot] : act_keys) {
    if (file->Find(key) == nullptr) continue;
    LOWBIT_ASSIGN_OR_RETURN(std::string spec, file->GetString(key));
    Result<FormatPtr> format = ParseFormat(spec);
    if (!format.ok()) {
      return DataLoss(path + ": metadata '" + key + "': " + format.status().message());
    }
    *slot = *format;
  }
  if (Status st = ValidateActivationFormats(m.activations); !st.ok()) {
    return DataLoss(path + ": " + st.message());
  }
  m.source = path;
  m.source_kind = "gguf";
  m.storage = file;
  PrepareModelForIsa(m, kernels::ActiveIsa());  // choose each matrix's fused kernel once
  return m;
}

}  // namespace lowbit
