// AVX2 level of the nf4 interleaved kernels (kernels/nf4_kernels.h): each 64-byte code vector of a
// 16-row group is two ymm halves (rows 0-7, rows 8-15), one half at a time (the second pass over a
// group finds it in L2). vpermps on ymm indexes 8 entries, so code i of 8 rows is looked up in both
// halves of the table and bit 3 of the code (moved to the sign bit) selects with blendvps: the
// exact table value, so this level gives the bits of the scalar and AVX-512 levels.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/nf4.h"
#include "kernels/nf4_kernels.h"

namespace lowbit::kernels {
namespace {

#define NF4_INLINE inline __attribute__((always_inline))

// Rows 8 hf .. 8 hf + 7 of group g, tokens [t0, t0 + T).
template <int T, bool kF16>
NF4_INLINE void Half(const MatmulArgs& a, const Nf4Header& h, const float* x, int64_t stride,
                     int64_t g, int hf, int64_t t0, __m256* out) {
  const __m256 lut_lo = _mm256_loadu_ps(kNf4Values), lut_hi = _mm256_loadu_ps(kNf4Values + 8);
  const float* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = x + (t0 + t) * stride;
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const int64_t units = h.block / 32;
  const uint8_t* p = a.w + kNf4HeaderBytes + g * h.blocks * h.record_bytes;
  for (int64_t b = 0; b < h.blocks; ++b, p += h.record_bytes) {
    __m256 am[T][4];
    for (int t = 0; t < T; ++t)
      for (int m = 0; m < 4; ++m) am[t][m] = _mm256_setzero_ps();
    const uint8_t* codes = p + 16 * h.scale_bytes;
    for (int64_t u = 0; u < units; ++u) {
      const int64_t k0 = b * h.block + 32 * u;
      for (int v = 0; v < 4; ++v) {
        const uint8_t* pv = codes + 256 * u + 64 * v;
        if (hf == 0)
          _mm_prefetch(reinterpret_cast<const char*>(pv + 4 * h.record_bytes), _MM_HINT_T0);
        const __m256i cv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pv + 32 * hf));
        for (int i = 0; i < 8; ++i) {
          const __m256i idx = i == 0 ? cv : _mm256_srli_epi32(cv, 4 * i);
          const __m256i sel = i == 7 ? cv : _mm256_slli_epi32(cv, 28 - 4 * i);
          const __m256 w =
              _mm256_blendv_ps(_mm256_permutevar8x32_ps(lut_lo, idx),
                               _mm256_permutevar8x32_ps(lut_hi, idx), _mm256_castsi256_ps(sel));
          for (int t = 0; t < T; ++t) {
            am[t][i % 4] = _mm256_fmadd_ps(w, _mm256_set1_ps(xt[t][k0 + 8 * v + i]), am[t][i % 4]);
          }
        }
      }
    }
    __m256 scale;
    if constexpr (kF16) {
      scale = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * hf)));
    } else {
      scale = _mm256_loadu_ps(reinterpret_cast<const float*>(p) + 8 * hf);
    }
    for (int t = 0; t < T; ++t) {
      const __m256 s =
          _mm256_add_ps(_mm256_add_ps(am[t][0], am[t][1]), _mm256_add_ps(am[t][2], am[t][3]));
      acc[t] = _mm256_fmadd_ps(s, scale, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t] = acc[t];
}

template <bool kF16>
void Run(const MatmulArgs& a, const Nf4Header& h, int64_t r0, int64_t r1) {
  thread_local std::vector<float> buf;
  int64_t stride = 0;
  const float* x = Nf4Activations(a, h, &buf, &stride);
  alignas(32) float lanes[8];
  for (int64_t g = r0 / kNf4Rows; g * kNf4Rows < r1; ++g) {
    for (int hf = 0; hf < 2; ++hf) {
      const int64_t first = g * kNf4Rows + 8 * hf;
      const int64_t lo = std::max(r0, first), hi = std::min(r1, first + 8);
      if (lo >= hi) continue;
      auto tile = [&]<int T>(int64_t t) {
        __m256 out[T];
        Half<T, kF16>(a, h, x, stride, g, hf, t, out);
        for (int i = 0; i < T; ++i) {
          _mm256_store_ps(lanes, out[i]);
          for (int64_t r = lo; r < hi; ++r) a.y[(t + i) * a.ldy + r] = lanes[r - first];
        }
      };
      int64_t t = 0;
      for (; t + 2 <= a.n_tokens; t += 2) tile.template operator()<2>(t);
      for (; t < a.n_tokens; ++t) tile.template operator()<1>(t);
    }
  }
}

}  // namespace

void Nf4RunAvx2(const MatmulArgs& a, int64_t r0, int64_t r1) {
  Nf4Header h;
  std::memcpy(&h, a.w, sizeof h);
  if (h.scale_bytes == 2) {
    Run<true>(a, h, r0, r1);
  } else {
    Run<false>(a, h, r0, r1);
  }
}

}  // namespace lowbit::kernels
