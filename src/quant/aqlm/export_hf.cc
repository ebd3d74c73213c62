// ExportHfAqlm: the folder layout is described in export_hf.h and docs/aqlm_hf.md; the per-linear
// tensor mapping in src/runtime/aqlm_hf.h.
#include "quant/aqlm/export_hf.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "formats/additive.h"
#include "io/file_io.h"
#include "lowbit/gguf.h"
#include "lowbit/safetensors.h"
#include "runtime/aqlm_hf.h"
#include "runtime/assemble_weights.h"
#include "runtime/linear.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

// Largest magnitude that rounds to a finite binary16 (65504 + half an ulp of 32).
constexpr float kHalfOverflow = 65520.0f;

// HF row r of a q/k projection comes from GGUF row order[r]: GGUF "llama" files keep each head's
// rotated pairs adjacent (rows 2i, 2i+1), HF half a head apart (rows i, i + head_dim/2).
std::vector<int64_t> HfRowOrder(int64_t rows, int64_t head_dim) {
  std::vector<int64_t> order(static_cast<size_t>(rows));
  const int64_t half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = r / head_dim, j = r % head_dim;
    order[static_cast<size_t>(r)] = h * head_dim + (j < half ? 2 * j : 2 * (j - half) + 1);
  }
  return order;
}

// The float's shortest decimal form as a double, so config.json shows 1e-05 rather than
// 9.999999747378752e-06 and reading it back as float gives the same bits.
double ShortestFloat(float v) {
  char text[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(text, sizeof(text), "%.*g", digits, static_cast<double>(v));
    if (std::strtof(text, nullptr) == v) return std::strtod(text, nullptr);
  }
  return v;
}

class Exporter {
 public:
  explicit Exporter(const LlamaModel& m) : m_(m), f16_(FormatForSafetensorsDtype(SafetensorsDtype::kF16)) {}

  // gguf (may be null) gives config.json its BOS/EOS ids and, with write_tokenizer, the tokenizer
  // files.
  Status Run(const GgufFile* gguf, bool write_tokenizer, const fs::path& tmp) {
    LOWBIT_RETURN_IF_ERROR(CheckModel());
    LOWBIT_RETURN_IF_ERROR(FindAqlmParams());
    LOWBIT_RETURN_IF_ERROR(AddTensors());
    LOWBIT_RETURN_IF_ERROR(writer_.WriteAtomic((tmp / "model.safetensors").string()));
    LOWBIT_RETURN_IF_ERROR(WriteText(tmp / "config.json", ConfigJson(gguf)));
    if (gguf != nullptr && write_tokenizer) {
      LOWBIT_ASSIGN_OR_RETURN(HfTokenizerFiles files, HfTokenizerFilesFromGguf(*gguf));
      LOWBIT_RETURN_IF_ERROR(WriteText(tmp / "tokenizer.json", files.tokenizer_json));
      LOWBIT_RETURN_IF_ERROR(WriteText(tmp / "tokenizer_config.json", files.tokenizer_config_json));
    }
    return Status::Ok();
  }

 private:
  Status CheckModel() const {
    const LlamaConfig& c = m_.config;
    const std::string where = m_.source + ": ";
    if (c.architecture != "llama" && c.architecture != "qwen2") {
      return Unimplemented(where + "architecture '" + c.architecture +
                           "' has no HF export (llama, qwen2)");
    }
    if (c.rope_dim != 0 && c.rope_dim != c.head_dim) {
      return Unimplemented(where + "partial RoPE (rope_dim " + std::to_string(c.rope_dim) +
                           " of head_dim " + std::to_string(c.head_dim) +
                           ") has no LlamaForCausalLM equivalent");
    }
    if (!m_.rope_freq_factors.empty()) {
      return Unimplemented(where + "per-frequency RoPE factors (rope_freqs.weight) cannot be "
                           "written as a config.json rope_scaling");
    }
    if (c.rope_scaling.type == RopeScalingType::kLlama3) {
      return Unimplemented(where + "llama3 RoPE scaling is not exported");
    }
    if (m_.activations.any()) {
      return Unimplemented(where + "activation quantization (--acts) has no HF AQLM equivalent");
    }
    return Status::Ok();
  }

  std::vector<std::pair<std::string, const WeightView*>> Linears() const {
    std::vector<std::pair<std::string, const WeightView*>> out;
    for (size_t l = 0; l < m_.layers.size(); ++l) {
      const LayerWeights& w = m_.layers[l];
      const std::string b = kHfTensorNames.layer_prefix + std::to_string(l) + ".";
      out.emplace_back(b + kHfTensorNames.wq, &w.wq);
      out.emplace_back(b + kHfTensorNames.wk, &w.wk);
      out.emplace_back(b + kHfTensorNames.wv, &w.wv);
      out.emplace_back(b + kHfTensorNames.wo, &w.wo);
      out.emplace_back(b + kHfTensorNames.w_gate, &w.w_gate);
      out.emplace_back(b + kHfTensorNames.w_up, &w.w_up);
      out.emplace_back(b + kHfTensorNames.w_down, &w.w_down);
    }
    return out;
  }

  static const AqlmFormat* AsAqlm(const WeightView& w) {
    if (w.format == nullptr || w.format->family() != "aqlm") return nullptr;
    return static_cast<const AqlmFormat*>(w.format.get());
  }

  Status FindAqlmParams() {
    std::string first;
    for (const auto& [name, w] : Linears()) {
      const AqlmFormat* f = AsAqlm(*w);
      if (f == nullptr) continue;
      if (first.empty()) {
        params_ = f->params();
        first = w->name;
      } else if (!(f->params() == params_)) {
        return InvalidArgument(m_.source + ": tensor '" + w->name + "' is " + f->spec() +
                               " but '" + first + "' is " + AqlmFormat(params_).spec() +
                               "; config.json holds one AQLM configuration per model");
      }
    }
    if (first.empty()) {
      return InvalidArgument(m_.source + ": no linear layer is in the AQLM format (found " +
                             m_.FormatSummary() + "); quantize it first with `lowbit quantize "
                             "--method aqlm:aqlm_2x8g8 ...`");
    }
    return Status::Ok();
  }

  bool RotaryPermuted(const std::string& hf_name) const {
    return m_.config.rope_layout == RopeLayout::kAdjacentPairs &&
           (hf_name.find(".q_proj.") != std::string::npos ||
            hf_name.find(".k_proj.") != std::string::npos);
  }

  // A (rows, cols) matrix decoded to f32 and stored as F16, rows in `order` (empty: as is).
  Status AddF16Matrix(const std::string& name, const WeightView& w,
                      const std::vector<int64_t>& order) {
    std::vector<float> row(static_cast<size_t>(w.cols));
    std::vector<uint8_t> bytes(static_cast<size_t>(f16_->PackedBytes(w.rows, w.cols)));
    const int64_t row_bytes = f16_->PackedBytes(1, w.cols);
    for (int64_t r = 0; r < w.rows; ++r) {
      ReadRow(w, order.empty() ? r : order[static_cast<size_t>(r)], row.data());
      LOWBIT_RETURN_IF_ERROR(CheckHalfRange(name, row, r * w.cols));
      LOWBIT_RETURN_IF_ERROR(f16_->Quantize(row.data(), 1, w.cols, &bytes[r * row_bytes]));
    }
    return writer_.AddTensor(name, {w.rows, w.cols}, SafetensorsDtype::kF16, bytes);
  }

  Status AddF16Vector(const std::string& name, std::vector<float> v,
                      const std::vector<int64_t>& order) {
    if (!order.empty()) {
      std::vector<float> permuted(v.size());
      for (size_t i = 0; i < v.size(); ++i) permuted[i] = v[static_cast<size_t>(order[i])];
      v = std::move(permuted);
    }
    LOWBIT_RETURN_IF_ERROR(CheckHalfRange(name, v, 0));
    const int64_t n = static_cast<int64_t>(v.size());
    std::vector<uint8_t> bytes(static_cast<size_t>(f16_->PackedBytes(1, n)));
    LOWBIT_RETURN_IF_ERROR(f16_->Quantize(v.data(), 1, n, bytes.data()));
    return writer_.AddTensor(name, {n}, SafetensorsDtype::kF16, bytes);
  }

  Status CheckHalfRange(const std::string& name, const std::vector<float>& v,
                        int64_t first_index) const {
    for (size_t i = 0; i < v.size(); ++i) {
      if (!(std::abs(v[i]) < kHalfOverflow)) {
        return InvalidArgument(m_.source + ": '" + name + "' element " +
                               std::to_string(first_index + static_cast<int64_t>(i)) + " = " +
                               std::to_string(v[i]) + " does not fit float16");
      }
    }
    return Status::Ok();
  }

  Status AddLinear(const std::string& hf_name, const WeightView& w) {
    const std::vector<int64_t> order =
        RotaryPermuted(hf_name) ? HfRowOrder(w.rows, m_.config.head_dim) : std::vector<int64_t>();
    const AqlmFormat* f = AsAqlm(w);
    if (f != nullptr && w.cols % params_.g == 0) {
      LOWBIT_ASSIGN_OR_RETURN(HfAqlmLinear t,
                              PackedAqlmToHf(params_, w.data, w.rows, w.cols, order));
      const std::string prefix = hf_name.substr(0, hf_name.size() - std::string(".weight").size());
      LOWBIT_RETURN_IF_ERROR(writer_.AddTensor(prefix + ".codes", t.codes_shape, t.codes_dtype,
                                               t.codes));
      LOWBIT_RETURN_IF_ERROR(writer_.AddTensor(prefix + ".codebooks", t.codebooks_shape,
                                               SafetensorsDtype::kF16, t.codebooks));
      return writer_.AddTensor(prefix + ".scales", t.scales_shape, SafetensorsDtype::kF16,
                               t.scales);
    }
    // Not AQLM, or a row length HF AQLM cannot hold (in % in_group_size != 0): plain F16, listed
    // in linear_weights_not_to_quantize so transformers keeps it an nn.Linear.
    not_quantized_.push_back(hf_name);
    return AddF16Matrix(hf_name, w, order);
  }

  Status AddTensors() {
    const LlamaConfig& c = m_.config;
    const LlamaTensorNames& n = kHfTensorNames;
    LOWBIT_RETURN_IF_ERROR(AddF16Matrix(n.token_embedding, m_.token_embedding, {}));
    const std::vector<int64_t> q_order = HfRowOrder(c.n_heads * c.head_dim, c.head_dim);
    const std::vector<int64_t> k_order = HfRowOrder(c.n_kv_heads * c.head_dim, c.head_dim);
    const bool permute = c.rope_layout == RopeLayout::kAdjacentPairs;
    const auto linears = Linears();
    for (size_t l = 0; l < m_.layers.size(); ++l) {
      const LayerWeights& w = m_.layers[l];
      const std::string b = n.layer_prefix + std::to_string(l) + ".";
      LOWBIT_RETURN_IF_ERROR(AddF16Vector(b + n.attn_norm, w.attn_norm, {}));
      LOWBIT_RETURN_IF_ERROR(AddF16Vector(b + n.ffn_norm, w.ffn_norm, {}));
      if (c.qkv_bias) {
        LOWBIT_RETURN_IF_ERROR(AddF16Vector(b + n.bq, w.bq, permute ? q_order : std::vector<int64_t>()));
        LOWBIT_RETURN_IF_ERROR(AddF16Vector(b + n.bk, w.bk, permute ? k_order : std::vector<int64_t>()));
        LOWBIT_RETURN_IF_ERROR(AddF16Vector(b + n.bv, w.bv, {}));
      }
      for (size_t i = 0; i < 7; ++i) {
        const auto& [name, view] = linears[l * 7 + i];
        LOWBIT_RETURN_IF_ERROR(AddLinear(name, *view));
      }
    }
    LOWBIT_RETURN_IF_ERROR(AddF16Vector(n.output_norm, m_.output_norm, {}));
    if (!c.tied_embeddings) LOWBIT_RETURN_IF_ERROR(AddF16Matrix(n.output, m_.output, {}));
    return Status::Ok();
  }

  std::string ConfigJson(const GgufFile* gguf) const {
    const LlamaConfig& c = m_.config;
    const bool qwen2 = c.architecture == "qwen2";
    Json j;
    j["architectures"] = {qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
    j["model_type"] = c.architecture;
    j["hidden_size"] = c.dim;
    j["intermediate_size"] = c.hidden_dim;
    j["num_hidden_layers"] = c.n_layers;
    j["num_attention_heads"] = c.n_heads;
    j["num_key_value_heads"] = c.n_kv_heads;
    if (c.head_dim * c.n_heads != c.dim) j["head_dim"] = c.head_dim;
    j["hidden_act"] = "silu";
    j["rms_norm_eps"] = ShortestFloat(c.rms_eps);
    j["rope_theta"] = c.rope_theta;
    if (c.rope_scaling.type == RopeScalingType::kLinear) {
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
    }
    j["vocab_size"] = c.vocab_size;
    j["max_position_embeddings"] = c.context_length > 0 ? c.context_length : 2048;
    j["tie_word_embeddings"] = c.tied_embeddings;
    if (!qwen2) j["attention_bias"] = c.qkv_bias;
    if (gguf != nullptr) {
      for (const char* key : {"bos", "eos"}) {
        const Result<int64_t> id =
            gguf->GetIntOr(std::string("tokenizer.ggml.") + key + "_token_id", -1);
        if (id.ok() && *id >= 0 && *id < c.vocab_size) j[std::string(key) + "_token_id"] = *id;
      }
    }
    j["torch_dtype"] = "float16";
    Json skip = Json::array({kHfTensorNames.token_embedding, kHfTensorNames.output});
    for (const std::string& name : not_quantized_) skip.push_back(name);
    j["quantization_config"] = {{"quant_method", "aqlm"},
                                {"in_group_size", params_.g},
                                {"out_group_size", 1},
                                {"num_codebooks", params_.m},
                                {"nbits_per_codebook", params_.b},
                                {"linear_weights_not_to_quantize", skip}};
    return j.dump(2) + "\n";
  }

  static Status WriteText(const fs::path& path, const std::string& text) {
    LOWBIT_ASSIGN_OR_RETURN(std::unique_ptr<io::AtomicFileWriter> w,
                            io::AtomicFileWriter::Create(path.string()));
    LOWBIT_RETURN_IF_ERROR(w->Write(text.data(), text.size()));
    return w->Commit();
  }

  const LlamaModel& m_;
  FormatPtr f16_;
  AqlmParams params_;
  std::vector<std::string> not_quantized_;  // HF .weight names of linears written as F16
  SafetensorsWriter writer_;
};

// Removes the temporary folder unless released.
class TempDirGuard {
 public:
  explicit TempDirGuard(fs::path dir) : dir_(std::move(dir)) {}
  ~TempDirGuard() {
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  void Release() { dir_.clear(); }

 private:
  fs::path dir_;
};

}  // namespace

Status ExportHfAqlm(const LlamaModel& model, const GgufFile* tokenizer_source,
                    const std::string& outdir, const ExportHfAqlmOptions& options) {
  std::string trimmed = outdir;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  if (trimmed.empty()) return InvalidArgument("export: empty output folder name");
  const fs::path target(trimmed);
  std::error_code ec;
  const bool exists = fs::exists(target, ec);
  const bool empty_dir = exists && fs::is_directory(target, ec) && fs::is_empty(target, ec);
  if (exists && !empty_dir && !options.force) {
    return InvalidArgument(trimmed + " already exists and is not an empty folder; pass --force to "
                           "replace it");
  }
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::is_directory(parent, ec)) {
    return NotFound(parent.string() + ": the output folder's parent does not exist");
  }
  if (tokenizer_source != nullptr && !options.skip_tokenizer) {
    // Fail before writing anything when the tokenizer cannot be exported.
    LOWBIT_RETURN_IF_ERROR(HfTokenizerFilesFromGguf(*tokenizer_source).status());
  }

  std::string tmpl = (parent / (target.filename().string() + ".tmp-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return IoError(tmpl + ": cannot create a temporary folder: " + std::strerror(errno));
  }
  const fs::path tmp(tmpl);
  TempDirGuard guard(tmp);
  // mkdtemp makes the folder private (0700); give it the permissions a plain mkdir would.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::chmod(tmpl.c_str(), 0777 & ~mask);
  Exporter exporter(model);
  LOWBIT_RETURN_IF_ERROR(exporter.Run(tokenizer_source, !options.skip_tokenizer, tmp));

  fs::path old;
  if (exists) {
    if (empty_dir) {
      fs::remove(target, ec);
    } else {
      // The temporary folder's unique suffix names the old one too.
      old = parent / (target.filename().string() + ".old-" + tmpl.substr(tmpl.size() - 6));
      fs::rename(target, old, ec);
    }
    if (ec) return IoError(trimmed + ": cannot move the existing folder aside: " + ec.message());
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    if (!old.empty()) fs::rename(old, target, ec);  // put the old folder back
    return IoError(trimmed + ": cannot rename " + tmp.string() + " into place: " + ec.message());
  }
  guard.Release();
  if (!old.empty()) fs::remove_all(old, ec);
  return Status::Ok();
}

}  // namespace lowbit
