// AVX-512 path of the dense f64 product (dense_f64.h): register tiles of 4 rows x 32 columns
// (16 accumulators), one pass over k per tile, so each H element loaded feeds 4 FMAs.
#include <immintrin.h>

#include "kernels/dense_f64.h"

namespace lowbit::kernels::detail {
namespace {

constexpr int kRows = 4;

// Columns [c0, c0 + 8 * kVecs) of rows [r, r + nr), nr <= kRows; `mask` limits the last vector.
template <int kVecs>
inline void Tile(const DenseF64Args& g, int64_t r, int nr, int64_t c0, __mmask8 last_mask) {
  __m512d acc[kRows][kVecs];
  for (int i = 0; i < kRows; ++i) {
    for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_setzero_pd();
  }
  for (int64_t k = 0; k < g.depth; ++k) {
    const double* hk = g.b + k * g.n + c0;
    __m512d hv[kVecs];
    for (int v = 0; v < kVecs; ++v) {
      hv[v] = v == kVecs - 1 ? _mm512_maskz_loadu_pd(last_mask, hk + 8 * v) : _mm512_loadu_pd(hk + 8 * v);
    }
    for (int i = 0; i < kRows; ++i) {
      if (i >= nr) break;
      const __m512d a = _mm512_set1_pd(g.a[(r + i) * g.depth + k]);
      for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_fmadd_pd(a, hv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < nr; ++i) {
    double* yr = g.y + (r + i) * g.n + c0;
    for (int v = 0; v < kVecs - 1; ++v) _mm512_storeu_pd(yr + 8 * v, acc[i][v]);
    _mm512_mask_storeu_pd(yr + 8 * (kVecs - 1), last_mask, acc[i][kVecs - 1]);
  }
}

}  // namespace

void MultiplyRowsF64Avx512(const DenseF64Args& g, int64_t r0, int64_t r1) {
  const int64_t n = g.n;
  for (int64_t c0 = 0; c0 < n; c0 += 32) {
    const int64_t width = n - c0 < 32 ? n - c0 : 32;
    const int vecs = static_cast<int>((width + 7) / 8);
    const int tail = static_cast<int>(width - 8 * (vecs - 1));
    const __mmask8 mask = static_cast<__mmask8>((1u << tail) - 1u);
    for (int64_t r = r0; r < r1; r += kRows) {
      const int nr = static_cast<int>(r1 - r < kRows ? r1 - r : kRows);
      switch (vecs) {
        case 4: Tile<4>(g, r, nr, c0, mask); break;
        case 3: Tile<3>(g, r, nr, c0, mask); break;
        case 2: Tile<2>(g, r, nr, c0, mask); break;
        default: Tile<1>(g, r, nr, c0, mask); break;
      }
    }
  }
}

}  // namespace lowbit::kernels::detail
