// AVX2+FMA path of the dense f64 product (dense_f64.h): register tiles of 4 rows x 12 columns
// (12 accumulators of 4 doubles), one pass over k per tile.
#include <immintrin.h>

#include "kernels/dense_f64.h"

namespace lowbit::kernels::detail {
namespace {

constexpr int kRows = 4;
constexpr int kVecs = 3;
constexpr int kCols = 4 * kVecs;

inline __m256i LaneMask(int64_t lanes) {  // the first `lanes` (0..4) lanes set
  const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(lanes), idx);
}

}  // namespace

void MultiplyRowsF64Avx2(const DenseF64Args& g, int64_t r0, int64_t r1) {
  const int64_t n = g.n;
  for (int64_t c0 = 0; c0 < n; c0 += kCols) {
    __m256i mask[kVecs];
    for (int v = 0; v < kVecs; ++v) mask[v] = LaneMask(n - c0 - 4 * v);
    for (int64_t r = r0; r < r1; r += kRows) {
      const int nr = static_cast<int>(r1 - r < kRows ? r1 - r : kRows);
      __m256d acc[kRows][kVecs];
      for (int i = 0; i < kRows; ++i) {
        for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm256_setzero_pd();
      }
      for (int64_t k = 0; k < g.depth; ++k) {
        const double* hk = g.b + k * n + c0;
        __m256d hv[kVecs];
        for (int v = 0; v < kVecs; ++v) hv[v] = _mm256_maskload_pd(hk + 4 * v, mask[v]);
        for (int i = 0; i < kRows; ++i) {
          if (i >= nr) break;
          const __m256d a = _mm256_broadcast_sd(g.a + (r + i) * g.depth + k);
          for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm256_fmadd_pd(a, hv[v], acc[i][v]);
        }
      }
      for (int i = 0; i < nr; ++i) {
        for (int v = 0; v < kVecs; ++v) _mm256_maskstore_pd(g.y + (r + i) * n + c0 + 4 * v, mask[v], acc[i][v]);
      }
    }
  }
}

}  // namespace lowbit::kernels::detail
