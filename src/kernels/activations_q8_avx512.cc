// QuantizeActivationsQ8 with AVX-512: the scalar definition (kernels/kernel.h) 16 lanes at a time,
// bit for bit. Every step is the same IEEE f32 operation on the same value: max|x| (exact in any
// order; vmaxps returns its second operand for a NaN first operand, as std::max(amax, NaN) keeps
// amax), d = amax / 127 and inv = 127 / amax in scalar code, one product x * inv, the clamp, then
// round half away from zero as trunc + (frac >= 0.5) - (frac <= -0.5) with frac = v - trunc(v)
// exact. NaN products give q = 0 like the scalar path.
// GCC 12 reports -Wmaybe-uninitialized inside its own intrinsic headers (the reduce and convert
// helpers start from an undefined vector whose every lane they overwrite).
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // GCC-only warning group
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <algorithm>

#include "kernels/activations_q8.h"

namespace lowbit::kernels {

void QuantizeActivationsQ8Avx512(const float* x, int64_t n_tokens, int64_t cols, Q8Block32* blocks,
                                 int64_t blocks_per_row) {
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const __m512 half = _mm512_set1_ps(0.5f), minus_half = _mm512_set1_ps(-0.5f);
  const __m512i one = _mm512_set1_epi32(1);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      Q8Block32& blk = blocks[t * blocks_per_row + b];
      const float* v = x + t * cols + b * 32;
      const int64_t n = std::min<int64_t>(32, cols - b * 32);
      const __mmask16 m0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
      const __mmask16 m1 =
          n >= 32 ? __mmask16(0xFFFF) : (n > 16 ? __mmask16((1u << (n - 16)) - 1) : __mmask16(0));
      // Elements past the row load as 0, which the scalar path uses for them too.
      const __m512 v0 = _mm512_maskz_loadu_ps(m0, v);
      const __m512 v1 = _mm512_maskz_loadu_ps(m1, v + 16);
      __m512 a = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps());
      a = _mm512_max_ps(_mm512_abs_ps(v1), a);
      const float amax = _mm512_reduce_max_ps(a);
      blk.d = amax / 127.0f;
      const __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
      __m512i q[2];
      const __m512 vs[2] = {v0, v1};
      for (int h = 0; h < 2; ++h) {
        const __m512 scaled = _mm512_mul_ps(vs[h], inv);
        const __mmask16 ordered = _mm512_cmp_ps_mask(scaled, scaled, _CMP_ORD_Q);
        const __m512 c = _mm512_min_ps(_mm512_max_ps(scaled, lo), hi);
        const __m512 tr = _mm512_roundscale_ps(c, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const __m512 frac = _mm512_sub_ps(c, tr);
        __m512i qi = _mm512_cvttps_epi32(tr);
        qi = _mm512_mask_add_epi32(qi, _mm512_cmp_ps_mask(frac, half, _CMP_GE_OQ), qi, one);
        qi = _mm512_mask_sub_epi32(qi, _mm512_cmp_ps_mask(frac, minus_half, _CMP_LE_OQ), qi, one);
        q[h] = _mm512_maskz_mov_epi32(ordered, qi);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(blk.q + 16 * h), _mm512_cvtepi32_epi8(q[h]));
      }
      blk.sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
    }
  }
}

}  // namespace lowbit::kernels
