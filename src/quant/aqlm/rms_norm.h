// RMS normalization with a gain, forward and backward, over rows of a (n, dim) matrix, for the
// AQLM fine-tuning passes (block_backward.cc, global_finetune.cc). Sums over the feature axis and
// over tokens accumulate in double.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace lowbit::aqlm {

// Per token: inv_rms[t] = 1 / sqrt(mean(x_t^2) + eps), xn = x * inv_rms, out = xn * gain.
template <class T>
void RmsNormForward(const T* x, const T* gain, int64_t n, int64_t dim, float eps,
                    std::vector<double>& inv_rms, T* xn, T* out) {
  for (int64_t t = 0; t < n; ++t) {
    const T* xt = x + t * dim;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += static_cast<double>(xt[i]) * static_cast<double>(xt[i]);
    const double r = 1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + static_cast<double>(eps));
    inv_rms[static_cast<size_t>(t)] = r;
    const T rt = static_cast<T>(r);
    for (int64_t i = 0; i < dim; ++i) {
      xn[t * dim + i] = xt[i] * rt;
      out[t * dim + i] = xn[t * dim + i] * gain[i];
    }
  }
}

// Given d_out (gradient of out = xn * gain): d_gain (summed over tokens, double) and dx += the
// gradient through the normalization: dx_j = r (dxn_j - xn_j * sum_i(dxn_i xn_i) / dim).
template <class T>
void RmsNormBackward(const T* d_out, const T* xn, const T* gain, const std::vector<double>& inv_rms,
                     int64_t n, int64_t dim, T* dx, std::vector<T>* d_gain) {
  std::vector<double> dg(static_cast<size_t>(dim), 0.0);
  std::vector<T> dxn(static_cast<size_t>(dim));
  for (int64_t t = 0; t < n; ++t) {
    const T* dot_row = d_out + t * dim;
    const T* xn_t = xn + t * dim;
    double dot = 0.0;
    for (int64_t i = 0; i < dim; ++i) {
      dg[static_cast<size_t>(i)] += static_cast<double>(dot_row[i]) * static_cast<double>(xn_t[i]);
      dxn[static_cast<size_t>(i)] = dot_row[i] * gain[i];
      dot += static_cast<double>(dxn[static_cast<size_t>(i)]) * static_cast<double>(xn_t[i]);
    }
    const T r = static_cast<T>(inv_rms[static_cast<size_t>(t)]);
    const T m = static_cast<T>(dot / static_cast<double>(dim));
    for (int64_t i = 0; i < dim; ++i) dx[t * dim + i] += r * (dxn[static_cast<size_t>(i)] - xn_t[i] * m);
  }
  if (d_gain != nullptr) {
    d_gain->resize(static_cast<size_t>(dim));
    for (int64_t i = 0; i < dim; ++i) (*d_gain)[static_cast<size_t>(i)] = static_cast<T>(dg[static_cast<size_t>(i)]);
  }
}

}  // namespace lowbit::aqlm
