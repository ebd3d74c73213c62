// Shared helpers of the AVX2 kernel files (*_avx2.cc, compiled with -mavx2 -mfma -mf16c): include
// this first, never from other files. Namespace kernels::avx2 keeps them apart from the AVX-512
// twins (simd_avx512.h).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#define LOWBIT_SIMD_INLINE inline __attribute__((always_inline))

namespace lowbit::kernels::avx2 {

// The dword of 4 int8 activations at q, broadcast to every lane (the pmaddubsw operand).
LOWBIT_SIMD_INLINE __m256i Bcast32(const int8_t* q) {
  int32_t v;
  std::memcpy(&v, q, sizeof v);
  return _mm256_set1_epi32(v);
}

// Code vectors of rows 8h .. 8h + 7 of one 16-row interleaved unit (p already offset by 32 h):
// 4 vectors of nibbles split low nibble first, mapped through `lut` when kLut; kBits = 5 adds bit 4
// from the 1-bit plane at p + 256, 6 adds bits 4..5 from the 2-bit planes at p + 256.
template <int kBits, bool kLut>
LOWBIT_SIMD_INLINE void DecodeCodes(const uint8_t* p, __m256i lut, __m256i* cv) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int j = 0; j < 4; ++j) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64 * j));
    cv[2 * j] = _mm256_and_si256(v, m4);
    cv[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if constexpr (kLut) {
      cv[2 * j] = _mm256_shuffle_epi8(lut, cv[2 * j]);
      cv[2 * j + 1] = _mm256_shuffle_epi8(lut, cv[2 * j + 1]);
    }
  }
  if constexpr (kBits == 5) {
    // Bit v of each plane byte to bit 4 of code vector v (16-bit shifts by <= 4: the 0x10 mask
    // drops every bit that crossed a byte).
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 256));
    const __m256i m10 = _mm256_set1_epi8(0x10);
    const __m256i s[8] = {_mm256_slli_epi16(h, 4),
                          _mm256_slli_epi16(h, 3),
                          _mm256_slli_epi16(h, 2),
                          _mm256_slli_epi16(h, 1),
                          h,
                          _mm256_srli_epi16(h, 1),
                          _mm256_srli_epi16(h, 2),
                          _mm256_srli_epi16(h, 3)};
    for (int v = 0; v < 8; ++v) cv[v] = _mm256_or_si256(cv[v], _mm256_and_si256(s[v], m10));
  }
  if constexpr (kBits == 6) {
    const __m256i m30 = _mm256_set1_epi8(0x30);
    for (int pl = 0; pl < 2; ++pl) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 256 + 64 * pl));
      const __m256i s[4] = {_mm256_slli_epi16(h, 4), _mm256_slli_epi16(h, 2), h,
                            _mm256_srli_epi16(h, 2)};
      for (int m = 0; m < 4; ++m) {
        cv[4 * pl + m] = _mm256_or_si256(cv[4 * pl + m], _mm256_and_si256(s[m], m30));
      }
    }
  }
}

}  // namespace lowbit::kernels::avx2
