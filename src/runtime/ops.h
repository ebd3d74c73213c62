// The element-wise and attention operations of the Llama forward pass, on f32 vectors.
// Each function is deterministic (fixed evaluation order) and single-threaded; the caller
// parallelises across tokens and heads. Tested against hand-computed cases in
// tests/unit/runtime_test.cc.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/model.h"

namespace lowbit {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], i < n. The mean of squares is accumulated in
// double (in index order) and the scale rounded to f32 once. out may alias x.
void RmsNorm(const float* x, const float* weight, int64_t n, float eps, float* out);

// Radians per position for each rotated pair i < rope_dim/2:
//   theta^(-2i / rope_dim), then the config's scaling (linear: / factor; llama3: the
//   frequency-dependent rule), then divided by freq_factors[i] when given (GGUF rope_freqs).
std::vector<double> RopeFrequencies(const LlamaConfig& config,
                                    const std::vector<float>& freq_factors);

// cos_sin: (rope_dim / 2) pairs (cos, sin) of position * freqs[i], computed in double, stored f32.
void RopeCosSin(const std::vector<double>& freqs, int64_t position, float* cos_sin);

// Rotates the first rope_dim dims of each of n_heads heads (head_dim apart) in place:
//   (a, b) -> (a cos - b sin, a sin + b cos)
// where (a, b) = (v[2i], v[2i+1]) for kAdjacentPairs, (v[i], v[i + rope_dim/2]) for kNeox.
void ApplyRope(float* v, int64_t n_heads, int64_t head_dim, int64_t rope_dim, RopeLayout layout,
               const float* cos_sin);

// In place: x[i] = exp(x[i] - max) / sum_j exp(x[j] - max), sum accumulated in double.
void Softmax(float* x, int64_t n);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void SwiGlu(const float* gate, const float* up, int64_t n, float* out);

// One attention head for one query over n_keys cached positions (causality is the caller's
// choice of n_keys):
//   score[j] = dot(q, key j) * scale;  p = softmax(score);  out = sum_j p[j] * value j
// keys/values: rows of head_dim floats, `stride` floats apart. scores: scratch of n_keys floats.
// out: (head_dim), accumulated over j in increasing order. A non-null probs_format quantizes the
// row of probabilities p (n_keys values) before it multiplies the values (WxAy attention).
void AttendOneHead(const float* q, const float* keys, const float* values, int64_t stride,
                   int64_t n_keys, int64_t head_dim, float scale, const Format* probs_format,
                   float* scores, float* out);

}  // namespace lowbit
