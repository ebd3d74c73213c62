// Hugging Face config.json for the decoder-only models lowbit runs (Llama family, Qwen2).
//
// Required keys: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
// vocab_size. Optional keys take transformers' defaults for LlamaConfig / Qwen2Config:
//   num_key_value_heads = num_attention_heads, head_dim = hidden_size / num_attention_heads,
//   rms_norm_eps = 1e-6, rope_theta = 10000, tie_word_embeddings = false, hidden_act = "silu",
//   max_position_embeddings = 2048 (llama) / 32768 (qwen2), rope_scaling = none,
//   attention_bias = false, except model_type "qwen2" whose q/k/v projections always carry a bias
//   (transformers' Qwen2Attention has no attention_bias key).
// Validation: integers positive, heads divide hidden_size (unless head_dim is given), KV heads
// divide heads; errors name the file and key ("config.json: field 'hidden_size': ...").
// quantization_config (optional): quant_method (a string) is always read; for "aqlm" also
// in_group_size, out_group_size, num_codebooks, nbits_per_codebook (positive integers, transformers'
// AqlmConfig defaults 8, 1, 1, 16) and linear_weights_not_to_quantize (strings). docs/aqlm_hf.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

struct RopeScaling {
  std::string
      type;  // "rope_type" (or the older "type"): "linear", "dynamic", "llama3", "yarn", ...
  double factor = 1.0;
  // llama3 / yarn parameters (0 when absent).
  double low_freq_factor = 0.0;
  double high_freq_factor = 0.0;
  int64_t original_max_position_embeddings = 0;
};

struct HfQuantizationConfig {
  std::string quant_method;  // "aqlm", "gptq", ...
  // AQLM (quant_method "aqlm") only.
  int64_t in_group_size = 8;
  int64_t out_group_size = 1;
  int64_t num_codebooks = 1;
  int64_t nbits_per_codebook = 16;
  std::vector<std::string> linear_weights_not_to_quantize;  // e.g. "lm_head.weight"
};

struct HfConfig {
  std::vector<std::string> architectures;  // e.g. {"LlamaForCausalLM"}
  std::string model_type;                  // "llama", "qwen2", ...
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  std::string hidden_act = "silu";
  std::string torch_dtype;  // "bfloat16", "float16", "float32" or empty
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // eos_token_id may be one id or a list
  std::optional<HfQuantizationConfig> quantization_config;
};

// Parses config.json text; `name` stands for the file in messages.
Result<HfConfig> ParseHfConfig(std::string_view json_text, const std::string& name = "config.json");
// Reads path (a config.json file, or a folder containing one).
Result<HfConfig> LoadHfConfig(const std::string& path);

}  // namespace lowbit
