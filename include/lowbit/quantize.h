// Calibration-free quantization of a whole model into a GGUF file (`lowbit quantize`), and the
// in-memory equivalent used by `run/eval --weights` and `lowbit sweep`.
//
// Which tensors: every tensor of two or more dims gets the format its rule gives (include/
// lowbit/rules.h); 1-D tensors (norm gains, biases) are copied unchanged. Each tensor is decoded
// from its stored format to f32 on its own, quantized by round-to-nearest, and measured.
//
// llama.cpp compatibility: when every target format is a type llama.cpp has (f32, f16, bf16,
// q8_0, q4_0, q4_1, q5_0, q5_1, mxfp4 ...), or converts to one without changing a single value
// (lowbit's OCP `mxfp4` is ggml's MXFP4 in another byte order), the file uses llama.cpp's type ids
// and metadata only. A tensor whose rows are not a whole number of the format's blocks (ggml needs
// whole blocks) then falls back to f16, as llama-quantize falls back, and the report says so.
// Otherwise the file is a lowbit GGUF: lowbit formats pad such rows (counted in bits per weight).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lowbit/density.h"
#include "lowbit/model.h"
#include "lowbit/rules.h"

namespace lowbit {

// Metadata keys of the activation formats (canonical specs), read back by LoadFromGguf.
inline constexpr const char* kActLinearInputsKey = "lowbit.activations.linear_inputs";
inline constexpr const char* kActAttentionKey = "lowbit.activations.attention";
inline constexpr const char* kActKvCacheKey = "lowbit.activations.kv_cache";

struct TensorQuantReport {
  std::string name;
  std::string source_format;  // as stored in the input
  std::string format;         // as stored in the output (preset name when there is one)
  std::string ggml_type;      // llama.cpp type name, or "lowbit" for a lowbit-private type
  int64_t rows = 0, cols = 0;
  int64_t n_bytes = 0;
  double rmse = 0.0;     // sqrt(mean (x - q)^2) against the source decoded to f32
  double sqnr_db = 0.0;  // 10 log10(sum x^2 / sum (x - q)^2); +Inf when exact
  double seconds = 0.0;
  bool linear = false;   // one of the blk.* weight matrices
  std::string note;      // "kept" (copied unchanged), or the fallback / conversion applied
};

struct QuantizeReport {
  std::vector<TensorQuantReport> tensors;
  bool llama_cpp_compatible = false;
  int64_t model_bytes = 0, model_elements = 0;    // every tensor
  int64_t linear_bytes = 0, linear_elements = 0;  // the blk.* weight matrices
  double source_bytes = 0.0;                      // bytes of the input's tensors read
  double seconds = 0.0;
  // Totals over the quantized tensors' errors.
  double total_sq_error = 0.0, total_sq_signal = 0.0;
  // MAC-weighted arithmetic density of the linears with the activation format (estimate).
  double arithmetic_density = 1.0;
  double activation_bits = 32.0;  // bits per activation element, on a row of the model's width

  double model_bits_per_weight() const { return 8.0 * model_bytes / model_elements; }
  double linear_bits_per_weight() const { return 8.0 * linear_bytes / linear_elements; }
  double total_sqnr_db() const;
};

struct QuantizeOptions {
  QuantRules rules;                     // rules.default_format: --weights
  ActivationQuantOptions activations;  // stored in the output's metadata
  MacCostModel cost_model;
  int n_threads = 2;
  // Matrices already quantized by a calibrated method (AQLM): a matrix of this model (matched by
  // its GGUF name) whose storage differs from the input file's is written as it is here, and the
  // rules are not consulted for it. Must be derived from the same input file.
  const LlamaModel* prequantized = nullptr;
  // Called after each tensor (index in the input's order, count of tensors).
  std::function<void(const TensorQuantReport&, int64_t index, int64_t count)> on_tensor;
};

// Reads the GGUF model at in_path and writes the quantized model to out_path atomically (a
// temporary file in the same folder renamed into place: a failed or killed run leaves no
// out_path, or the previous file untouched).
Result<QuantizeReport> QuantizeGgufFile(const std::string& in_path, const std::string& out_path,
                                        const QuantizeOptions& options);

// In memory: every matrix gets rules.FormatFor(its GGUF name) (null: kept as stored).
Result<LlamaModel> QuantizeModelWithRules(const LlamaModel& model, const QuantRules& rules);

// Bits per element of an activation format on rows of `cols` (32 for null: f32).
double ActivationBits(const FormatPtr& format, int64_t cols);

// MAC-weighted arithmetic density of a model's linears against fp32 (estimate, see density.h).
double ModelArithmeticDensity(const LlamaModel& model, const FormatPtr& activation_format,
                              const MacCostModel& cost_model = MacCostModel{});

}  // namespace lowbit
