// AVX2+FMA path of the dense product (dense.h): register tiles of 6 rows x 2 vectors (12
// accumulators, 2 B vectors and a broadcast: 15 of the 16 ymm registers; 8 doubles or 16 floats
// per row), one pass over k per tile. Full tiles run Tile6x2 with named accumulators (an array of
// them stays on the stack under GCC 12, a store per FMA); the edges the masked generic loop.
#include <immintrin.h>

#include <vector>

#include "kernels/dense.h"

namespace lowbit::kernels::detail {
namespace {

constexpr int kRows = 6;
constexpr int kVecs = 2;

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
  static V Load(const double* p) { return _mm256_loadu_pd(p); }
  static V Broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static void Store(double* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
  static void Store(double* p, V v) { _mm256_storeu_pd(p, v); }
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
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  static V Broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void Store(float* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
  static void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
};

// Rows [r, r + 6) x columns [c0, c0 + 2 * lanes), all inside the matrices; b: those columns of B
// (b[k * ldb + j] is B[k][c0 + j]), the matrix itself or a packed panel.
template <class T>
void Tile6x2(const DenseArgs<T>& g, int64_t r, const T* b, int64_t ldb, int64_t c0) {
  using W = Vec<T>;
  using V = typename W::V;
  constexpr int L = W::kLanes;
  const int64_t lda = g.stride_a(), ldy = g.stride_y(), depth = g.depth;
  const T* a = g.a + r * lda;
#define LOWBIT_ROW_ACC(i) V c##i##0 = W::Zero(), c##i##1 = W::Zero();
  LOWBIT_ROW_ACC(0) LOWBIT_ROW_ACC(1) LOWBIT_ROW_ACC(2) LOWBIT_ROW_ACC(3) LOWBIT_ROW_ACC(4) LOWBIT_ROW_ACC(5)
#undef LOWBIT_ROW_ACC
  for (int64_t k = 0; k < depth; ++k) {
    const T* bk = b + k * ldb;
    const V b0 = W::Load(bk), b1 = W::Load(bk + L);
#define LOWBIT_ROW_FMA(i)                          \
  {                                                \
    const V ai = W::Broadcast(a + (i) * lda + k);  \
    c##i##0 = W::Fma(ai, b0, c##i##0);             \
    c##i##1 = W::Fma(ai, b1, c##i##1);             \
  }
    LOWBIT_ROW_FMA(0) LOWBIT_ROW_FMA(1) LOWBIT_ROW_FMA(2) LOWBIT_ROW_FMA(3) LOWBIT_ROW_FMA(4) LOWBIT_ROW_FMA(5)
#undef LOWBIT_ROW_FMA
  }
#define LOWBIT_ROW_STORE(i)                    \
  {                                            \
    T* yr = g.y + (r + (i)) * ldy + c0;        \
    W::Store(yr, c##i##0);                     \
    W::Store(yr + L, c##i##1);                 \
  }
  LOWBIT_ROW_STORE(0) LOWBIT_ROW_STORE(1) LOWBIT_ROW_STORE(2) LOWBIT_ROW_STORE(3) LOWBIT_ROW_STORE(4)
  LOWBIT_ROW_STORE(5)
#undef LOWBIT_ROW_STORE
}

}  // namespace

template <class T>
void MultiplyRowsAvx2(const DenseArgs<T>& g, int64_t r0, int64_t r1) {
  using W = Vec<T>;
  constexpr int64_t L = W::kLanes, kCols = L * kVecs;
  const int64_t n = g.n, lda = g.stride_a(), ldb = g.stride_b(), ldy = g.stride_y(), depth = g.depth;
  // As at AVX-512: a contiguous panel of the block's columns of B when several row tiles use it.
  const bool pack = r1 - r0 >= 2 * kRows;
  thread_local std::vector<T> panel;
  if (pack) panel.resize(static_cast<size_t>(depth * kCols));
  for (int64_t c0 = 0; c0 < n; c0 += kCols) {
    __m256i mask[kVecs];
    for (int v = 0; v < kVecs; ++v) mask[v] = W::Mask(n - c0 - L * v);
    const int64_t width = n - c0 < kCols ? n - c0 : kCols;
    const T* b = g.b + c0;
    int64_t ld = ldb;
    if (pack) {
      b = PackColumns(g, c0, width, kCols, &panel);
      ld = kCols;
    }
    for (int64_t r = r0; r < r1; r += kRows) {
      const int nr = static_cast<int>(r1 - r < kRows ? r1 - r : kRows);
      if (nr == kRows && width == kCols) {
        Tile6x2<T>(g, r, b, ld, c0);
        continue;
      }
      typename W::V acc[kRows][kVecs];
      for (int i = 0; i < kRows; ++i) {
        for (int v = 0; v < kVecs; ++v) acc[i][v] = W::Zero();
      }
      for (int64_t k = 0; k < depth; ++k) {
        const T* bk = b + k * ld;
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
