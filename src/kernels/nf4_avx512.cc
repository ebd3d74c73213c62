// AVX-512 level of the nf4 interleaved kernels (kernels/nf4_kernels.h): one zmm lane per row of a
// 16-row group; a right shift of the code vector by 4 i and one vpermps over the 16-entry table
// give the values of code i of all 16 rows; FMA with the broadcast activation. Order of
// operations: nf4_kernels.h (the same per lane as the scalar level).
#include "kernels/simd_avx512.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/nf4.h"
#include "kernels/nf4_kernels.h"

namespace lowbit::kernels {
namespace {

#define NF4_INLINE inline __attribute__((always_inline))

template <int T, bool kF16>
NF4_INLINE void Group(const MatmulArgs& a, const Nf4Header& h, const float* x, int64_t stride,
                      int64_t g, int64_t t0, __m512* out) {
  const __m512 lut = _mm512_loadu_ps(kNf4Values);
  const float* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = x + (t0 + t) * stride;
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const int64_t units = h.block / 32;
  const uint8_t* p = a.w + kNf4HeaderBytes + g * h.blocks * h.record_bytes;
  for (int64_t b = 0; b < h.blocks; ++b, p += h.record_bytes) {
    __m512 am[T][4];
    for (int t = 0; t < T; ++t)
      for (int m = 0; m < 4; ++m) am[t][m] = _mm512_setzero_ps();
    const uint8_t* codes = p + 16 * h.scale_bytes;
    for (int64_t u = 0; u < units; ++u) {
      const int64_t k0 = b * h.block + 32 * u;
      for (int v = 0; v < 4; ++v) {
        const uint8_t* pv = codes + 256 * u + 64 * v;
        _mm_prefetch(reinterpret_cast<const char*>(pv + 4 * h.record_bytes), _MM_HINT_T0);
        const __m512i cv = _mm512_loadu_si512(pv);
        for (int i = 0; i < 8; ++i) {
          const __m512i idx = i == 0 ? cv : _mm512_srli_epi32(cv, 4 * i);
          const __m512 w = _mm512_permutexvar_ps(idx, lut);
          for (int t = 0; t < T; ++t) {
            am[t][i % 4] = _mm512_fmadd_ps(w, _mm512_set1_ps(xt[t][k0 + 8 * v + i]), am[t][i % 4]);
          }
        }
      }
    }
    __m512 scale;
    if constexpr (kF16) {
      scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    } else {
      scale = _mm512_loadu_ps(reinterpret_cast<const float*>(p));
    }
    for (int t = 0; t < T; ++t) {
      const __m512 s =
          _mm512_add_ps(_mm512_add_ps(am[t][0], am[t][1]), _mm512_add_ps(am[t][2], am[t][3]));
      acc[t] = _mm512_fmadd_ps(s, scale, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t] = acc[t];
}

template <bool kF16>
void Run(const MatmulArgs& a, const Nf4Header& h, int64_t r0, int64_t r1) {
  thread_local std::vector<float> buf;
  int64_t stride = 0;
  const float* x = Nf4Activations(a, h, &buf, &stride);
  alignas(64) float lanes[16];
  for (int64_t g = r0 / kNf4Rows; g * kNf4Rows < r1; ++g) {
    const int64_t lo = std::max(r0, g * kNf4Rows), hi = std::min(r1, g * kNf4Rows + kNf4Rows);
    auto tile = [&]<int T>(int64_t t) {
      __m512 out[T];
      Group<T, kF16>(a, h, x, stride, g, t, out);
      for (int i = 0; i < T; ++i) {
        _mm512_store_ps(lanes, out[i]);
        for (int64_t r = lo; r < hi; ++r) a.y[(t + i) * a.ldy + r] = lanes[r - g * kNf4Rows];
      }
    };
    int64_t t = 0;
    for (; t + 4 <= a.n_tokens; t += 4) tile.template operator()<4>(t);
    for (; t + 2 <= a.n_tokens; t += 2) tile.template operator()<2>(t);
    for (; t < a.n_tokens; ++t) tile.template operator()<1>(t);
  }
}

}  // namespace

void Nf4RunAvx512(const MatmulArgs& a, int64_t r0, int64_t r1) {
  Nf4Header h;
  std::memcpy(&h, a.w, sizeof h);
  if (h.scale_bytes == 2) {
    Run<true>(a, h, r0, r1);
  } else {
    Run<false>(a, h, r0, r1);
  }
}

}  // namespace lowbit::kernels
