// The matrix loops of the AVX-512 level (F, BW, VL, DQ and VNNI), written once and templated on a
// Traits class of kernels/block_traits.h. Included by *_avx512.cc files only.
//
// Per output (row r, token t), in this fixed order (docs/kernels.md):
//   f32 activations: the unit's 32 weights are decoded to f32 exactly as the reference decoder
//     does (2 vectors of 16); accumulator 2 (u % 2) + h takes the FMA w * x of half h of unit u;
//     y = reduce((acc0 + acc1) + (acc2 + acc3)) with reduce = a fixed halving tree (512 -> 256 ->
//     128 -> 64 -> 32 bits).
//   Q8 activations: units go in pairs (u, u + 1) as one 512-bit vector; vpdpbusd gives 16 int32
//     lanes (lane l = elements 4l..4l+3 of the pair, exact); acc[(u / 2) % 2] = fma(float(lanes),
//     scale * d_x, acc) (+ the min term, a second FMA); y = reduce(acc0 + acc1).
// Token tiles share one decode of a unit; they never change an output's order, so a batch of n
// tokens gives each token the bits of n = 1.
#pragma once

// GCC 12's _mm512_cast*128/256 intrinsics leave the upper lanes undefined on purpose, which its
// -Wmaybe-uninitialized reports inside the intrinsic headers; every such lane is overwritten here.
#if !defined(__clang__)  // GCC-only warning group
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <algorithm>

#include "kernels/block_traits.h"
#include "kernels/unpack_avx2.h"

namespace lowbit::kernels::avx512 {
namespace {

inline float Reduce16(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

constexpr int Log2(int v) { return v <= 1 ? 0 : 1 + Log2(v / 2); }

// The unit's 32 f32 weights in 2 vectors of 16, exactly the reference decoder's values.
template <class T>
inline void DecodeF32(const UnitRef& ref, __m512* w) {
  const __m256i codes = UnpackCodes256<T::kKind, T::kXor>(ref);
  for (int h = 0; h < 2; ++h) {
    const __m512i idx =
        _mm512_cvtepu8_epi32(h == 0 ? _mm256_castsi256_si128(codes) : _mm256_extracti128_si256(codes, 1));
    const __m512 scale = _mm512_set1_ps(ref.scale[h]);
    if constexpr (T::kHasLut) {
      w[h] = _mm512_mul_ps(_mm512_permutexvar_ps(idx, _mm512_loadu_ps(T::kLut)), scale);
    } else {
      const __m512 q = _mm512_cvtepi32_ps(_mm512_sub_epi32(idx, _mm512_set1_epi32(T::kZero)));
      w[h] = _mm512_mul_ps(scale, q);
      if constexpr (T::kHasMin) w[h] = _mm512_add_ps(w[h], _mm512_set1_ps(ref.min[h]));
    }
  }
}

template <class T, int kTokens>
inline void RowF32(const T& traits, const MatmulArgs& a, int64_t r, int64_t t0) {
  const uint8_t* row = traits.Row(a.w, r);
  const int64_t n_full = a.cols / kUnit;
  const int64_t n_units = (a.cols + kUnit - 1) / kUnit;
  alignas(64) uint8_t scratch[64];
  __m512 acc[kTokens][4];
  for (int t = 0; t < kTokens; ++t)
    for (int g = 0; g < 4; ++g) acc[t][g] = _mm512_setzero_ps();
  for (int64_t u = 0; u < n_units; ++u) {
    UnitRef ref;
    traits.Unit(row, u, &ref, scratch);
    __m512 w[2];
    DecodeF32<T>(ref, w);
    const int g0 = 2 * static_cast<int>(u % 2);
    if (u < n_full) {
      for (int t = 0; t < kTokens; ++t) {
        const float* x = a.x + (t0 + t) * a.cols + u * kUnit;
        acc[t][g0] = _mm512_fmadd_ps(w[0], _mm512_loadu_ps(x), acc[t][g0]);
        acc[t][g0 + 1] = _mm512_fmadd_ps(w[1], _mm512_loadu_ps(x + 16), acc[t][g0 + 1]);
      }
    } else {  // the row's last, partial unit: lanes past cols take no part
      const int n = static_cast<int>(a.cols - u * kUnit);
      const __mmask32 valid = static_cast<__mmask32>((uint64_t{1} << n) - 1);
      const __mmask16 m0 = static_cast<__mmask16>(valid), m1 = static_cast<__mmask16>(valid >> 16);
      w[0] = _mm512_maskz_mov_ps(m0, w[0]);
      w[1] = _mm512_maskz_mov_ps(m1, w[1]);
      for (int t = 0; t < kTokens; ++t) {
        const float* x = a.x + (t0 + t) * a.cols + u * kUnit;
        acc[t][g0] = _mm512_fmadd_ps(w[0], _mm512_maskz_loadu_ps(m0, x), acc[t][g0]);
        acc[t][g0 + 1] = _mm512_fmadd_ps(w[1], _mm512_maskz_loadu_ps(m1, x + 16), acc[t][g0 + 1]);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t) {
    a.y[(t0 + t) * a.ldy + r] = Reduce16(_mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]),
                                                       _mm512_add_ps(acc[t][2], acc[t][3])));
  }
}

// Per-lane factors of a unit pair: lanes 0-3 half 0 of unit u, 4-7 half 1, 8-15 unit u + 1.
inline __m512 PairSplat(float a0, float a1, float b0, float b1) {
  const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_setr_ps(a0, a1, b0, b1)));
}

template <class T, int kTokens>
inline void RowQ8(const T& traits, const MatmulArgs& a, int64_t r, int64_t t0) {
  const uint8_t* row = traits.Row(a.w, r);
  const int64_t n_units = (a.cols + kUnit - 1) / kUnit;
  const int64_t bpr = a.x_q8->blocks_per_row;
  const Q8Block32* xb = a.x_q8->blocks.data() + t0 * bpr;
  const __m512i ones8 = _mm512_set1_epi8(1);
  alignas(64) uint8_t scratch[2][64];
  __m512 acc[kTokens][2];
  for (int t = 0; t < kTokens; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  for (int64_t u = 0; u < n_units; u += 2) {
    const bool pair = u + 1 < n_units;
    UnitRef ra, rb;
    traits.Unit(row, u, &ra, scratch[0]);
    __m256i cb = _mm256_setzero_si256();
    if (pair) {
      traits.Unit(row, u + 1, &rb, scratch[1]);
      cb = UnpackCodes256<T::kKind, T::kXor>(rb);
    }
    const __m512i codes =
        _mm512_inserti64x4(_mm512_castsi256_si512(UnpackCodes256<T::kKind, T::kXor>(ra)), cb, 1);
    const __m512 scale = PairSplat(ra.scale[0], ra.scale[1], rb.scale[0], rb.scale[1]);
    [[maybe_unused]] const __m512 min = PairSplat(ra.min[0], ra.min[1], rb.min[0], rb.min[1]);
    for (int t = 0; t < kTokens; ++t) {
      const Q8Block32& ba = xb[t * bpr + u];
      const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ba.q));
      __m256i qb = _mm256_setzero_si256();
      float db = 0.0f;
      if (pair) {
        const Q8Block32& bb = xb[t * bpr + u + 1];
        qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bb.q));
        db = bb.d;
      }
      const __m512i xq = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
      __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, xq);
      [[maybe_unused]] __m512i lanesum;
      if constexpr (T::kZero != 0 || T::kHasMin) {
        lanesum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones8, xq);
      }
      if constexpr (T::kZero != 0) {
        isum = _mm512_sub_epi32(isum, _mm512_slli_epi32(lanesum, Log2(T::kZero)));
      }
      const __m512 dx = _mm512_insertf32x8(_mm512_set1_ps(ba.d), _mm256_set1_ps(db), 1);
      __m512& acc_u = acc[t][(u / 2) % 2];
      acc_u = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(scale, dx), acc_u);
      if constexpr (T::kHasMin) {
        acc_u = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanesum), _mm512_mul_ps(min, dx), acc_u);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t) {
    a.y[(t0 + t) * a.ldy + r] = Reduce16(_mm512_add_ps(acc[t][0], acc[t][1]));
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
      for (; t + 4 <= a.n_tokens; t += 4) RowF32<T, 4>(traits, a, r, t);
      for (; t + 2 <= a.n_tokens; t += 2) RowF32<T, 2>(traits, a, r, t);
      for (; t < a.n_tokens; ++t) RowF32<T, 1>(traits, a, r, t);
    }
  }
}

}  // namespace
}  // namespace lowbit::kernels::avx512
