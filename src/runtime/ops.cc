#include "runtime/ops.h"

#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "runtime/linear.h"

namespace lowbit {

void RmsNorm(const float* x, const float* weight, int64_t n, float eps, float* out) {
  double sum_sq = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(
      1.0 / std::sqrt(sum_sq / static_cast<double>(n) + static_cast<double>(eps)));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

std::vector<double> RopeFrequencies(const LlamaConfig& config,
                                    const std::vector<float>& freq_factors) {
  const int64_t rope_dim = config.rope_dim > 0 ? config.rope_dim : config.head_dim;
  const int64_t n_pairs = rope_dim / 2;
  std::vector<double> freqs(static_cast<size_t>(n_pairs));
  const RopeScalingParams& s = config.rope_scaling;
  for (int64_t i = 0; i < n_pairs; ++i) {
    double f =
        std::pow(config.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(rope_dim));
    if (s.type == RopeScalingType::kLinear) {
      f /= s.factor;
    } else if (s.type == RopeScalingType::kLlama3) {
      // Llama 3.1 rule (HF transformers _compute_llama3_parameters): wavelengths longer than
      // original_context / low_freq_factor are slowed by `factor`, shorter than
      // original_context / high_freq_factor are kept, and the band between is interpolated.
      const double wavelength = 2.0 * std::numbers::pi / f;
      const double low_wavelength =
          static_cast<double>(s.original_context_length) / s.low_freq_factor;
      const double high_wavelength =
          static_cast<double>(s.original_context_length) / s.high_freq_factor;
      if (wavelength > low_wavelength) {
        f /= s.factor;
      } else if (wavelength >= high_wavelength) {
        const double smooth =
            (static_cast<double>(s.original_context_length) / wavelength - s.low_freq_factor) /
            (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
    if (!freq_factors.empty()) f /= static_cast<double>(freq_factors[static_cast<size_t>(i)]);
    freqs[static_cast<size_t>(i)] = f;
  }
  return freqs;
}

void RopeCosSin(const std::vector<double>& freqs, int64_t position, float* cos_sin) {
  for (size_t i = 0; i < freqs.size(); ++i) {
    const double angle = static_cast<double>(position) * freqs[i];
    cos_sin[2 * i] = static_cast<float>(std::cos(angle));
    cos_sin[2 * i + 1] = static_cast<float>(std::sin(angle));
  }
}

void ApplyRope(float* v, int64_t n_heads, int64_t head_dim, int64_t rope_dim, RopeLayout layout,
               const float* cos_sin) {
  const int64_t half = rope_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = v + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t ia = layout == RopeLayout::kAdjacentPairs ? 2 * i : i;
      const int64_t ib = layout == RopeLayout::kAdjacentPairs ? 2 * i + 1 : i + half;
      const float c = cos_sin[2 * i];
      const float s = cos_sin[2 * i + 1];
      const float a = head[ia];
      const float b = head[ib];
      head[ia] = a * c - b * s;
      head[ib] = a * s + b * c;
    }
  }
}

void Softmax(float* x, int64_t n) {
  float max_value = x[0];
  for (int64_t i = 1; i < n; ++i) max_value = std::max(max_value, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max_value);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void SwiGlu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void AttendOneHead(const float* q, const float* keys, const float* values, int64_t stride,
                   int64_t n_keys, int64_t head_dim, float scale, const Format* probs_format,
                   float* scores, float* out) {
  DotRows(q, keys, stride, n_keys, head_dim, scores);
  for (int64_t j = 0; j < n_keys; ++j) scores[j] *= scale;
  Softmax(scores, n_keys);
  if (probs_format != nullptr) {
    thread_local std::vector<uint8_t> packed;
    packed.resize(static_cast<size_t>(probs_format->PackedBytes(1, n_keys)));
    LOWBIT_CHECK(probs_format->Quantize(scores, 1, n_keys, packed.data()).ok());
    probs_format->DequantizeRows(packed.data(), 1, n_keys, 0, 1, scores);
  }
  AddScaledRows(scores, values, stride, n_keys, head_dim, out);
}

}  // namespace lowbit
