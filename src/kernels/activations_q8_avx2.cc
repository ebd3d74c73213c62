// QuantizeActivationsQ8 with AVX2: the scalar definition (kernels/kernel.h) 8 lanes at a time, bit
// for bit, by the same steps as the AVX-512 version (activations_q8_avx512.cc): max|x| (vmaxps
// returns its second operand for a NaN first operand, as std::max(amax, NaN) keeps amax),
// d = amax / 127 and inv = 127 / amax in scalar code, one product x * inv, the clamp, round half
// away from zero as trunc + (frac >= 0.5) - (frac <= -0.5), and q = 0 for NaN products.
#include <immintrin.h>

#include <algorithm>

#include "kernels/activations_q8.h"

namespace lowbit::kernels {
namespace {

// Lanes i with 8 * part + i < n load x; the others read as 0 (vmaskmovps), as the scalar path
// uses 0 past the row.
__m256 LoadPart(const float* v, int64_t n, int part) {
  const int64_t valid = n - 8 * part;
  if (valid >= 8) return _mm256_loadu_ps(v + 8 * part);
  if (valid <= 0) return _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), lane);
  return _mm256_maskload_ps(v + 8 * part, mask);
}

float MaxOfLanes(__m256 a) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

int32_t SumOfLanes(__m256i a) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace

void QuantizeActivationsQ8Avx2(const float* x, int64_t n_tokens, int64_t cols, Q8Block32* blocks,
                               int64_t blocks_per_row) {
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256 half = _mm256_set1_ps(0.5f), minus_half = _mm256_set1_ps(-0.5f);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  // packs_epi32 / packs_epi16 interleave the two 128-bit lanes: this puts the dwords back.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      Q8Block32& blk = blocks[t * blocks_per_row + b];
      const float* v = x + t * cols + b * 32;
      const int64_t n = std::min<int64_t>(32, cols - b * 32);
      __m256 vs[4];
      __m256 a = _mm256_setzero_ps();
      for (int part = 0; part < 4; ++part) {
        vs[part] = LoadPart(v, n, part);
        a = _mm256_max_ps(_mm256_and_ps(vs[part], abs_mask), a);
      }
      const float amax = MaxOfLanes(a);
      blk.d = amax / 127.0f;
      const __m256 inv = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
      __m256i q[4];
      for (int part = 0; part < 4; ++part) {
        const __m256 scaled = _mm256_mul_ps(vs[part], inv);
        const __m256 ordered = _mm256_cmp_ps(scaled, scaled, _CMP_ORD_Q);
        const __m256 c = _mm256_min_ps(_mm256_max_ps(scaled, lo), hi);
        const __m256 tr = _mm256_round_ps(c, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const __m256 frac = _mm256_sub_ps(c, tr);
        __m256i qi = _mm256_cvttps_epi32(tr);
        // Compare masks are -1 where true: subtracting adds 1, adding subtracts 1.
        qi = _mm256_sub_epi32(qi, _mm256_castps_si256(_mm256_cmp_ps(frac, half, _CMP_GE_OQ)));
        qi = _mm256_add_epi32(qi, _mm256_castps_si256(_mm256_cmp_ps(frac, minus_half, _CMP_LE_OQ)));
        q[part] = _mm256_and_si256(qi, _mm256_castps_si256(ordered));
      }
      const __m256i packed =
          _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(blk.q),
                          _mm256_permutevar8x32_epi32(packed, order));
      blk.sum =
          SumOfLanes(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    }
  }
}

}  // namespace lowbit::kernels
