// AssembleLlamaWeights: the one place that knows which matrices and vectors a Llama-family model
// has and their shapes. Each file loader supplies its own tensor names and a reader with
//   Result<WeightView> Matrix(const std::string& name, int64_t rows, int64_t cols) const;
//   Result<std::vector<float>> Vector(const std::string& name, int64_t n) const;
// so adding a tensor (or fixing a shape) happens here once, not per file format.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "lowbit/model.h"

namespace lowbit {

// Tensor names of one file convention; per-layer names are appended to layer_prefix + "<l>.".
struct LlamaTensorNames {
  std::string token_embedding, output_norm, output;
  std::string layer_prefix;
  std::string attn_norm, wq, wk, wv, wo, bq, bk, bv, ffn_norm, w_gate, w_up, w_down;
};

inline const LlamaTensorNames kGgufTensorNames = {
    "token_embd.weight", "output_norm.weight", "output.weight", "blk.",
    "attn_norm.weight",  "attn_q.weight",      "attn_k.weight", "attn_v.weight",
    "attn_output.weight", "attn_q.bias",       "attn_k.bias",   "attn_v.bias",
    "ffn_norm.weight",   "ffn_gate.weight",    "ffn_up.weight", "ffn_down.weight"};

inline const LlamaTensorNames kHfTensorNames = {
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "model.layers.",
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "self_attn.q_proj.bias",
    "self_attn.k_proj.bias", "self_attn.v_proj.bias", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};

// Norm gains and biases are copied out as f32 at load time, so checking them costs nothing: a NaN
// or Inf there would silently turn every logit into NaN. `where` names the file.
inline Status CheckFiniteVector(const std::string& where, const std::string& name,
                                const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return DataLoss(where + ": tensor '" + name + "' element " + std::to_string(i) + " is " +
                      (std::isnan(v[i]) ? "NaN" : "infinite") +
                      " (norm gains and biases must be finite)");
    }
  }
  return Status::Ok();
}

// Fills m's weights from r according to m.config (which must be final and validated).
template <class Reader>
Status AssembleLlamaWeights(const Reader& r, const LlamaTensorNames& n, LlamaModel& m) {
  const LlamaConfig& c = m.config;
  const int64_t dim = c.dim, q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  const int64_t hidden = c.hidden_dim;
  LOWBIT_ASSIGN_OR_RETURN(m.token_embedding, r.Matrix(n.token_embedding, c.vocab_size, dim));
  // Layers are appended as their tensors are found, never allocated up front: n_layers comes from
  // the file's metadata, and a hostile block_count must not allocate before a tensor is missing.
  m.layers.clear();
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights& w = m.layers.emplace_back();
    const std::string b = n.layer_prefix + std::to_string(l) + ".";
    LOWBIT_ASSIGN_OR_RETURN(w.attn_norm, r.Vector(b + n.attn_norm, dim));
    LOWBIT_ASSIGN_OR_RETURN(w.wq, r.Matrix(b + n.wq, q_dim, dim));
    LOWBIT_ASSIGN_OR_RETURN(w.wk, r.Matrix(b + n.wk, kv_dim, dim));
    LOWBIT_ASSIGN_OR_RETURN(w.wv, r.Matrix(b + n.wv, kv_dim, dim));
    LOWBIT_ASSIGN_OR_RETURN(w.wo, r.Matrix(b + n.wo, dim, q_dim));
    if (c.qkv_bias) {
      LOWBIT_ASSIGN_OR_RETURN(w.bq, r.Vector(b + n.bq, q_dim));
      LOWBIT_ASSIGN_OR_RETURN(w.bk, r.Vector(b + n.bk, kv_dim));
      LOWBIT_ASSIGN_OR_RETURN(w.bv, r.Vector(b + n.bv, kv_dim));
    }
    LOWBIT_ASSIGN_OR_RETURN(w.ffn_norm, r.Vector(b + n.ffn_norm, dim));
    LOWBIT_ASSIGN_OR_RETURN(w.w_gate, r.Matrix(b + n.w_gate, hidden, dim));
    LOWBIT_ASSIGN_OR_RETURN(w.w_up, r.Matrix(b + n.w_up, hidden, dim));
    LOWBIT_ASSIGN_OR_RETURN(w.w_down, r.Matrix(b + n.w_down, dim, hidden));
  }
  LOWBIT_ASSIGN_OR_RETURN(m.output_norm, r.Vector(n.output_norm, dim));
  if (c.tied_embeddings) {
    m.output = m.token_embedding;
  } else {
    LOWBIT_ASSIGN_OR_RETURN(m.output, r.Matrix(n.output, c.vocab_size, dim));
  }
  return Status::Ok();
}

}  // namespace lowbit
