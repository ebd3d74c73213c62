// The matrix loops of the AVX2+FMA level, written once and templated on a Traits class of
// kernels/block_traits.h. Included by *_avx2.cc files only.
//
// Per output (row r, token t), in this fixed order (docs/kernels.md):
//   f32 activations: the unit's 32 weights are decoded to f32 exactly as the reference decoder
//     does, in 4 groups of 8 lanes; accumulator g (0..3) takes the FMA w * x of group g of every
//     unit in unit order; y = hsum((acc0 + acc1) + (acc2 + acc3)), hsum = ((l0+l4)+(l2+l6)) +
//     ((l1+l5)+(l3+l7)).
//   Q8 activations: per unit, 8 int32 lanes (lane l = elements 4l..4l+3, exact) via
//     pmaddubsw + pmaddwd; acc[u % 2] = fma(float(lanes), scale * d_x, acc[u % 2]) (+ the min term,
//     a second FMA); y = hsum(acc0 + acc1).
// Token tiles share one decode of a unit; they never change an output's order, so a batch of n
// tokens gives each token the bits of n = 1.
#pragma once

#include <immintrin.h>

#include <algorithm>

#include "kernels/block_traits.h"
#include "kernels/unpack_avx2.h"

namespace lowbit::kernels::avx2 {
namespace {

inline float Hsum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

inline __m256 HalfSplat(const float* v) {
  return _mm256_set_m128(_mm_set1_ps(v[1]), _mm_set1_ps(v[0]));
}

constexpr int Log2(int v) { return v <= 1 ? 0 : 1 + Log2(v / 2); }

// The unit's 32 f32 weights in 4 vectors of 8, exactly the reference decoder's values.
template <class T>
inline void DecodeF32(const UnitRef& ref, __m256* w) {
  const __m256i codes = UnpackCodes256<T::kKind, T::kXor>(ref);
  const __m128i halves[2] = {_mm256_castsi256_si128(codes), _mm256_extracti128_si256(codes, 1)};
  for (int g = 0; g < 4; ++g) {
    const __m128i bytes = g % 2 == 0 ? halves[g / 2] : _mm_srli_si128(halves[g / 2], 8);
    const __m256i idx = _mm256_cvtepu8_epi32(bytes);
    const __m256 scale = _mm256_set1_ps(ref.scale[g / 2]);
    if constexpr (T::kHasLut) {
      const __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(T::kLut), idx);
      const __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(T::kLut + 8), idx);
      const __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));  // sign = bit 3
      w[g] = _mm256_mul_ps(_mm256_blendv_ps(lo, hi, sel), scale);
    } else {
      const __m256 q = _mm256_cvtepi32_ps(_mm256_sub_epi32(idx, _mm256_set1_epi32(T::kZero)));
      w[g] = _mm256_mul_ps(scale, q);
      if constexpr (T::kHasMin) w[g] = _mm256_add_ps(w[g], _mm256_set1_ps(ref.min[g / 2]));
    }
  }
}

template <class T, int kTokens>
inline void RowF32(const T& traits, const MatmulArgs& a, int64_t r, int64_t t0) {
  const uint8_t* row = traits.Row(a.w, r);
  const int64_t n_full = a.cols / kUnit;
  const int64_t n_units = (a.cols + kUnit - 1) / kUnit;
  alignas(32) uint8_t scratch[64];
  __m256 acc[kTokens][4];
  for (int t = 0; t < kTokens; ++t)
    for (int g = 0; g < 4; ++g) acc[t][g] = _mm256_setzero_ps();
  for (int64_t u = 0; u < n_units; ++u) {
    UnitRef ref;
    traits.Unit(row, u, &ref, scratch);
    __m256 w[4];
    DecodeF32<T>(ref, w);
    if (u < n_full) {
      for (int t = 0; t < kTokens; ++t) {
        const float* x = a.x + (t0 + t) * a.cols + u * kUnit;
        for (int g = 0; g < 4; ++g)
          acc[t][g] = _mm256_fmadd_ps(w[g], _mm256_loadu_ps(x + 8 * g), acc[t][g]);
      }
    } else {  // the row's last, partial unit: lanes past cols take no part
      const int n = static_cast<int>(a.cols - u * kUnit);
      for (int g = 0; g < 4; ++g) {
        const __m256i lane = _mm256_add_epi32(_mm256_set1_epi32(8 * g),
                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
        w[g] = _mm256_and_ps(w[g], _mm256_castsi256_ps(mask));
        for (int t = 0; t < kTokens; ++t) {
          const float* x = a.x + (t0 + t) * a.cols + u * kUnit;
          acc[t][g] = _mm256_fmadd_ps(w[g], _mm256_maskload_ps(x + 8 * g, mask), acc[t][g]);
        }
      }
    }
  }
  for (int t = 0; t < kTokens; ++t) {
    a.y[(t0 + t) * a.ldy + r] = Hsum8(_mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][1]),
                                                    _mm256_add_ps(acc[t][2], acc[t][3])));
  }
}

template <class T, int kTokens>
inline void RowQ8(const T& traits, const MatmulArgs& a, int64_t r, int64_t t0) {
  const uint8_t* row = traits.Row(a.w, r);
  const int64_t n_units = (a.cols + kUnit - 1) / kUnit;
  const Q8Block32* xb = a.x_q8->blocks.data() + t0 * a.x_q8->blocks_per_row;
  const int64_t bpr = a.x_q8->blocks_per_row;
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  alignas(32) uint8_t scratch[64];
  __m256 acc[kTokens][2];
  for (int t = 0; t < kTokens; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (int64_t u = 0; u < n_units; ++u) {
    UnitRef ref;
    traits.Unit(row, u, &ref, scratch);
    const __m256i codes = UnpackCodes256<T::kKind, T::kXor>(ref);
    const __m256 scale = HalfSplat(ref.scale);
    [[maybe_unused]] const __m256 min = HalfSplat(ref.min);
    // 8-bit codes do not fit pmaddubsw's unsigned operand with a signed product: use |q| and
    // move q's sign onto the activation instead (|q| <= 128, |xq| <= 127: no int16 saturation).
    [[maybe_unused]] const __m256i q_signed =
        T::kZero == 128 ? _mm256_xor_si256(codes, _mm256_set1_epi8(static_cast<char>(0x80)))
                        : codes;
    [[maybe_unused]] const __m256i q_abs = _mm256_abs_epi8(q_signed);
    for (int t = 0; t < kTokens; ++t) {
      const Q8Block32& blk = xb[t * bpr + u];
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.q));
      __m256i isum;
      [[maybe_unused]] __m256i lanesum;
      if constexpr (T::kZero == 128) {
        isum = _mm256_madd_epi16(_mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(xq, q_signed)),
                                 ones16);
      } else {
        isum = _mm256_madd_epi16(_mm256_maddubs_epi16(codes, xq), ones16);
        if constexpr (T::kZero != 0 || T::kHasMin) {
          lanesum = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, xq), ones16);
        }
        if constexpr (T::kZero != 0) {
          isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(lanesum, Log2(T::kZero)));
        }
      }
      const __m256 dx = _mm256_set1_ps(blk.d);
      __m256& acc_u = acc[t][u % 2];
      acc_u = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(scale, dx), acc_u);
      if constexpr (T::kHasMin) {
        acc_u = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanesum), _mm256_mul_ps(min, dx), acc_u);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t) {
    a.y[(t0 + t) * a.ldy + r] = Hsum8(_mm256_add_ps(acc[t][0], acc[t][1]));
  }
}

template <class T, bool kQ8>
void Run(const MatmulArgs& a, int64_t r0, int64_t r1) {
  T traits(*a.format, a.cols);
  ReadTensorHeader(traits, a.w);
  for (int64_t r = r0; r < r1; ++r) {
    int64_t t = 0;
    if constexpr (kQ8) {
      for (; t + 4 <= a.n_tokens; t += 4) RowQ8<T, 4>(traits, a, r, t);
      for (; t + 2 <= a.n_tokens; t += 2) RowQ8<T, 2>(traits, a, r, t);
      for (; t < a.n_tokens; ++t) RowQ8<T, 1>(traits, a, r, t);
    } else {
      for (; t + 2 <= a.n_tokens; t += 2) RowF32<T, 2>(traits, a, r, t);
      for (; t < a.n_tokens; ++t) RowF32<T, 1>(traits, a, r, t);
    }
  }
}

}  // namespace
}  // namespace lowbit::kernels::avx2
