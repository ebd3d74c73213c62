// AVX2+FMA path of the dense product (dense.h): register tiles of 4 rows x 3 vectors (12
// accumulators: 12 doubles or 24 floats per row), one pass over k per tile.
#include <immintrin.h>

#include "kernels/dense.h"

namespace lowbit::kernels::detail {
namespace {

constexpr int kRows = 4;
constexpr int kVecs = 3;

template <class T>
struct Vec;
template <>
struct Vec<double> {
  using V = __m256d;
  static constexpr int kLanes = 4;
  static __m256i Mask(int64_t lanes) {  // the first `lanes` (clamped to 0..4) lanes set
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(lanes), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static V Zero() { return _mm256_setzero_pd(); }
  static V Load(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  static V Broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static void Store(double* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
};
template <>
struct Vec<float> {
  using V = __m256;
  static constexpr int kLanes = 8;
  static __m256i Mask(int64_t lanes) {  // the first `lanes` (clamped to 0..8) lanes set
    const int32_t l = static_cast<int32_t>(lanes < 0 ? 0 : lanes > 8 ? 8 : lanes);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V Zero() { return _mm256_setzero_ps(); }
  static V Load(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  static V Broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void Store(float* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
};

}  // namespace

template <class T>
void MultiplyRowsAvx2(const DenseArgs<T>& g, int64_t r0, int64_t r1) {
  using W = Vec<T>;
  constexpr int64_t L = W::kLanes, kCols = L * kVecs;
  const int64_t n = g.n, lda = g.stride_a(), ldb = g.stride_b(), ldy = g.stride_y();
  for (int64_t c0 = 0; c0 < n; c0 += kCols) {
    __m256i mask[kVecs];
    for (int v = 0; v < kVecs; ++v) mask[v] = W::Mask(n - c0 - L * v);
    for (int64_t r = r0; r < r1; r += kRows) {
      const int nr = static_cast<int>(r1 - r < kRows ? r1 - r : kRows);
      typename W::V acc[kRows][kVecs];
      for (int i = 0; i < kRows; ++i) {
        for (int v = 0; v < kVecs; ++v) acc[i][v] = W::Zero();
      }
      for (int64_t k = 0; k < g.depth; ++k) {
        const T* bk = g.b + k * ldb + c0;
        typename W::V bv[kVecs];
        for (int v = 0; v < kVecs; ++v) bv[v] = W::Load(bk + L * v, mask[v]);
        for (int i = 0; i < kRows; ++i) {
          if (i >= nr) break;
          const typename W::V a = W::Broadcast(g.a + (r + i) * lda + k);
          for (int v = 0; v < kVecs; ++v) acc[i][v] = W::Fma(a, bv[v], acc[i][v]);
        }
      }
      for (int i = 0; i < nr; ++i) {
        for (int v = 0; v < kVecs; ++v) W::Store(g.y + (r + i) * ldy + c0 + L * v, mask[v], acc[i][v]);
      }
    }
  }
}

template void MultiplyRowsAvx2<float>(const DenseArgs<float>&, int64_t, int64_t);
template void MultiplyRowsAvx2<double>(const DenseArgs<double>&, int64_t, int64_t);

}  // namespace lowbit::kernels::detail
