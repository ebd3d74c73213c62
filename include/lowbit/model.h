// The lowbit runtime: Llama-family decoder-only transformers (llama, qwen2) read from real model
// files, run on the CPU with weights kept in their storage format.
//
// Memory model: a LlamaModel never holds a full-precision copy of its weights. Each matrix is a
// WeightView onto the file's bytes (memory-mapped): f32 matrices are read in place, any other
// format is dequantized a tile of rows at a time into a small per-thread buffer during the matmul
// (src/runtime/linear.cc). Only the 1-D vectors (norm gains, biases) are copied out as f32.
//
// Numerics: every reduction runs in a fixed order that does not depend on the thread count or on
// how many tokens are processed at once, so logits are bit-identical for 1 or N threads, and a
// prefill of T tokens gives the same logits as T single-token decode steps. See docs/runtime.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"

namespace lowbit {

class ThreadPool;  // src/runtime/thread_pool.h
class GgufFile;    // lowbit/gguf.h
class Tokenizer;   // lowbit/tokenizer.h

// How the two halves of each rotated pair are laid out inside a head.
enum class RopeLayout {
  kAdjacentPairs,  // pairs (2i, 2i+1): llama2.c, and GGUF "llama" (the converter permutes q/k rows)
  kNeox,           // pairs (i, i + rope_dim/2): HF safetensors layout, GGUF "qwen2"
};

enum class RopeScalingType {
  kNone,
  kLinear,  // positions divided by factor (HF "linear", GGUF rope.scaling.type "linear")
  kLlama3,  // Llama 3.1 frequency-dependent scaling (HF rope_type "llama3")
};

struct RopeScalingParams {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;            // llama3 only
  double high_freq_factor = 4.0;           // llama3 only
  int64_t original_context_length = 8192;  // llama3 only
};

struct LlamaConfig {
  std::string architecture = "llama";  // "llama" or "qwen2" (informational; the math is shared)
  int64_t dim = 0;                     // d_model: width of the residual stream
  int64_t hidden_dim = 0;              // SwiGLU inner width
  int64_t n_layers = 0;
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // key/value heads; n_heads % n_kv_heads == 0 (GQA)
  int64_t head_dim = 0;    // usually dim / n_heads
  int64_t rope_dim = 0;    // rotated dims per head, even, <= head_dim (0 -> head_dim)
  int64_t vocab_size = 0;
  int64_t context_length = 0;  // trained context from the file (informational)
  double rope_theta = 10000.0;
  RopeLayout rope_layout = RopeLayout::kAdjacentPairs;
  RopeScalingParams rope_scaling;
  float rms_eps = 1e-5f;
  bool tied_embeddings = true;  // classifier == token embedding
  bool qkv_bias = false;        // qwen2: q/k/v projections carry biases

  // Checks positivity and divisibility; names the offending field.
  Status Validate() const;
  std::string ToString() const;
};

// A (rows, cols) row-major matrix in some storage format, viewed in place.
struct WeightView {
  std::string name;               // tensor name in the file, for messages
  FormatPtr format;               // null: plain little-endian f32, read in place (4-byte aligned)
  const uint8_t* data = nullptr;  // format->PackedBytes(rows, cols) bytes (or rows*cols f32)
  int64_t rows = 0;               // output features
  int64_t cols = 0;               // input features (the reduction dimension)
  // The fused kernel chosen for this matrix and, when that kernel reads a repacked layout, the
  // repacked bytes: set by PrepareWeightForIsa (src/runtime/linear.h) at load time, opaque here,
  // shared by copies of the view. Null: Linear looks the kernel up on every call.
  std::shared_ptr<const void> kernel_plan;

  bool is_f32() const { return format == nullptr; }
  // Storage format name for reports ("f32" for in-place floats).
  std::string format_name() const;
  int64_t n_bytes() const;
};

struct LayerWeights {
  std::vector<float> attn_norm;  // (dim)
  WeightView wq;                 // (n_heads * head_dim, dim)
  WeightView wk;                 // (n_kv_heads * head_dim, dim)
  WeightView wv;                 // (n_kv_heads * head_dim, dim)
  WeightView wo;                 // (dim, n_heads * head_dim)
  std::vector<float> bq;         // (n_heads * head_dim), empty unless qkv_bias
  std::vector<float> bk;         // (n_kv_heads * head_dim), empty unless qkv_bias
  std::vector<float> bv;         // (n_kv_heads * head_dim), empty unless qkv_bias
  std::vector<float> ffn_norm;   // (dim)
  WeightView w_gate;             // (hidden_dim, dim)   llama2.c w1
  WeightView w_up;               // (hidden_dim, dim)   llama2.c w3
  WeightView w_down;             // (dim, hidden_dim)   llama2.c w2
};

// Activation quantization (WxAy), applied at run time as quantize-then-dequantize of each row
// (one token) in the given format; null members leave that tensor in f32.
struct ActivationQuantOptions {
  FormatPtr linear_inputs;  // the input row of every linear layer (q/k/v/o/gate/up/down/output)
  FormatPtr attention;      // both operands of the two attention matmuls: q and k rows of QK^T,
                            // the softmax probabilities and v rows of PV
  FormatPtr kv_cache;       // keys and values as they are written to the cache

  bool any() const { return linear_inputs || attention || kv_cache; }
};

// Every activation format must be able to quantize (not decode-only); names the one that is not.
Status ValidateActivationFormats(const ActivationQuantOptions& activations);

struct LlamaModel {
  LlamaConfig config;
  ActivationQuantOptions activations;  // from the file's lowbit metadata or the command line
  WeightView token_embedding;        // (vocab_size, dim)
  std::vector<LayerWeights> layers;  // (n_layers)
  std::vector<float> output_norm;    // (dim)
  WeightView output;  // (vocab_size, dim); a copy of token_embedding's view when tied
  std::vector<float> rope_freq_factors;  // (rope_dim / 2) divisors of each frequency, or empty
  std::string source;                    // the path it was loaded from
  std::string source_kind;               // "llama2c", "gguf" or "hf"
  std::shared_ptr<const void> storage;   // keeps the mapped file(s) alive for the views above

  // Total bytes of all matrices as stored, and their total element count (for bits per weight).
  int64_t WeightBytes() const;
  int64_t WeightCount() const;
  // One line per distinct matrix storage format, e.g. "q4_1: 210 tensors".
  std::string FormatSummary() const;
};

// Kernels multiply f32 activations by every weight exactly as the format decodes it, instead of the
// default fast path (activations rounded to 8-bit blocks for integer dot products where a kernel
// has one, as llama.cpp does; docs/kernels.md). Accuracy studies (sweep, eval --exact) use it so a
// weight-only point measures the weight format alone.
void UseExactKernels(LlamaModel& model);

// llama2.c legacy checkpoint: a 28-byte header of 7 int32 (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size (negative: untied classifier follows), seq_len), then f32 tensors in
// llama2.c order. The file is memory-mapped and read in place.
Result<LlamaModel> LoadLlama2c(const std::string& path);
// Same, over bytes in memory (tests, fuzzing): `name` stands for the file in messages.
Result<LlamaModel> LoadLlama2cFromBytes(std::vector<uint8_t> bytes, std::string name = "<memory>");
// GGUF, architectures "llama" and "qwen2".
Result<LlamaModel> LoadFromGguf(const std::string& path);
Result<LlamaModel> LoadFromGguf(std::shared_ptr<const GgufFile> file);
// Hugging Face folder: config.json + *.safetensors (LlamaForCausalLM, Qwen2ForCausalLM).
Result<LlamaModel> LoadFromHfFolder(const std::string& dir);
// Picks the loader from the path: a directory -> HF, "*.gguf" -> GGUF, anything else -> llama2.c.
Result<LlamaModel> LoadModel(const std::string& path);

struct LoadedModel {
  LlamaModel model;
  std::unique_ptr<Tokenizer> tokenizer;
};
// The model and its tokenizer: GGUF -> the tokenizer in its metadata; HF folder -> its
// tokenizer.json; llama2.c -> tokenizer_path, else "tokenizer.bin" or "tok<vocab>.bin" next to the
// model. A non-empty tokenizer_path overrides the choice (a llama2.c .bin or a tokenizer.json).
// The tokenizer may have fewer ids than the model's (padded) embedding, never more.
Result<LoadedModel> LoadModelWithTokenizer(const std::string& path,
                                           const std::string& tokenizer_path = "");

// Round-to-nearest quantization of every matrix of `model` (token embedding, the seven linear
// layers of each block, an untied classifier) into `format`, calibration-free; norms and biases
// stay f32. Each tensor is decoded alone (never the whole model at once) and quantized from f32;
// the packed copies are owned by the returned model (which also keeps `model`'s storage alive).
Result<LlamaModel> QuantizeModelWeights(const LlamaModel& model, const FormatPtr& format);
// The general form: choose(view, gguf_name) gives each matrix's format (null: keep it as stored).
// gguf_name is the GGUF tensor name whatever file the model came from ("token_embd.weight",
// "blk.3.ffn_down.weight", "output.weight" when untied).
using MatrixFormatChooser =
    std::function<FormatPtr(const WeightView& w, const std::string& gguf_name)>;
Result<LlamaModel> QuantizeModelWeights(const LlamaModel& model, const MatrixFormatChooser& choose);
// Every matrix of `model` with its GGUF name, in file order (the tied classifier omitted).
std::vector<std::pair<std::string, const WeightView*>> GgufMatrixNames(const LlamaModel& model);

// Sees the input of every linear layer just before the product (after activation quantization):
// x is (n_tokens, w.cols). layer is the block index, -1 for the classifier. Used for calibration.
using LinearInputObserver =
    std::function<void(int64_t layer, const WeightView& w, const float* x, int64_t n_tokens)>;

struct SessionOptions {
  int64_t max_tokens = 0;  // KV cache length; 0 -> min(config.context_length, 4096) (>= 1)
  int n_threads = 2;       // threads in total, the caller included
  LinearInputObserver linear_input_observer;  // optional
};

// One sequence being processed: its KV cache, scratch buffers and thread pool.
class LlamaSession {
 public:
  LlamaSession(const LlamaModel& model, const SessionOptions& options);
  ~LlamaSession();
  LlamaSession(const LlamaSession&) = delete;
  LlamaSession& operator=(const LlamaSession&) = delete;

  // Runs tokens (n = tokens.size() >= 1) at positions pos() .. pos() + n - 1, appending their
  // keys/values to the cache, and writes logits for the tokens [logits_from, n) to *logits as
  // ((n - logits_from), vocab_size) row-major (resized; empty when logits_from == n).
  // Errors: token id out of range, or the cache would overflow max_tokens().
  Status Forward(std::span<const int32_t> tokens, int64_t logits_from, std::vector<float>* logits);

  // Forgets the sequence (pos() becomes 0); the cache memory is kept.
  void Reset() { pos_ = 0; }
  int64_t pos() const { return pos_; }
  int64_t max_tokens() const { return max_tokens_; }
  const LlamaModel& model() const { return model_; }
  ThreadPool& pool() { return *pool_; }

 private:
  const LlamaModel& model_;
  int64_t max_tokens_;
  int64_t pos_ = 0;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<float> key_cache_;    // (n_layers, max_tokens, n_kv_heads * head_dim)
  std::vector<float> value_cache_;  // (n_layers, max_tokens, n_kv_heads * head_dim)
  std::vector<double> rope_freqs_;  // (rope_dim / 2) radians per position, scaling applied
  struct Activations;               // per-call scratch, sized for the largest batch seen
  std::unique_ptr<Activations> act_;
  LinearInputObserver linear_input_observer_;
};

struct SamplerOptions {
  float temperature = 0.8f;  // <= 0: greedy (argmax, lowest id on ties)
  int64_t top_k = 40;        // keep the k most likely tokens; <= 0: all
  float top_p = 0.95f;       // then the smallest prefix with probability mass >= top_p; >= 1: all
  uint64_t seed = 0;
};

// Picks the next token from a row of logits. Same seed + same logits -> same tokens.
class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);
  int32_t Sample(std::span<const float> logits);

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace lowbit
