// Shared preamble and helpers of the AVX-512 kernel files (*_avx512.cc, compiled with the AVX-512
// flags): include this first, never from other files. Helpers live in namespace kernels::avx512 so
// the AVX2 twins (simd_avx2.h) never share a mangled name with them.
#pragma once

// GCC 12's own AVX-512 intrinsic headers trip these (their _mm512_undefined_* idiom).
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // GCC-only warning group
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#define LOWBIT_SIMD_INLINE inline __attribute__((always_inline))

namespace lowbit::kernels::avx512 {

// The dword of 4 int8 activations at q, broadcast to every lane (the vpdpbusd operand).
LOWBIT_SIMD_INLINE __m512i Bcast32(const int8_t* q) {
  int32_t v;
  std::memcpy(&v, q, sizeof v);
  return _mm512_set1_epi32(v);
}

// The 8 code vectors of one 16-row interleaved unit (vector v: elements 4v .. 4v + 3 of each row,
// unsigned bytes): kBits = 8 reads them; 4 splits 4 vectors of nibbles (low nibble first),
// mapped through the 16-byte `lut` when kLut; 5 adds bit 4 from the 1-bit plane at p + 256, 6 adds
// bits 4..5 from the 2-bit planes at p + 256.
template <int kBits, bool kLut>
LOWBIT_SIMD_INLINE void DecodeCodes(const uint8_t* p, __m512i lut, __m512i* cv) {
  if constexpr (kBits == 8) {
    for (int j = 0; j < 8; ++j) cv[j] = _mm512_loadu_si512(p + 64 * j);
  } else {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int j = 0; j < 4; ++j) {
      const __m512i v = _mm512_loadu_si512(p + 64 * j);
      cv[2 * j] = _mm512_and_si512(v, m4);
      cv[2 * j + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      if constexpr (kLut) {
        cv[2 * j] = _mm512_shuffle_epi8(lut, cv[2 * j]);
        cv[2 * j + 1] = _mm512_shuffle_epi8(lut, cv[2 * j + 1]);
      }
    }
    if constexpr (kBits == 5) {
      // Bit v of each plane byte to bit 4 of code vector v (16-bit shifts by <= 4: the 0x10 mask
      // drops every bit that crossed a byte).
      const __m512i h = _mm512_loadu_si512(p + 256);
      const __m512i m10 = _mm512_set1_epi8(0x10);
      const __m512i s[8] = {_mm512_slli_epi16(h, 4),
                            _mm512_slli_epi16(h, 3),
                            _mm512_slli_epi16(h, 2),
                            _mm512_slli_epi16(h, 1),
                            h,
                            _mm512_srli_epi16(h, 1),
                            _mm512_srli_epi16(h, 2),
                            _mm512_srli_epi16(h, 3)};
      for (int v = 0; v < 8; ++v) cv[v] = _mm512_ternarylogic_epi32(cv[v], s[v], m10, 0xF8);
    }
    if constexpr (kBits == 6) {
      const __m512i m30 = _mm512_set1_epi8(0x30);
      for (int pl = 0; pl < 2; ++pl) {
        const __m512i h = _mm512_loadu_si512(p + 256 + 64 * pl);
        // Bits 2m..2m+1 of each byte to bits 4..5 (16-bit shifts by <= 4: the 0x30 mask drops
        // every bit that crossed a byte), then c |= those bits (ternary A | (B & C)).
        const __m512i s[4] = {_mm512_slli_epi16(h, 4), _mm512_slli_epi16(h, 2), h,
                              _mm512_srli_epi16(h, 2)};
        for (int m = 0; m < 4; ++m) {
          cv[4 * pl + m] = _mm512_ternarylogic_epi32(cv[4 * pl + m], s[m], m30, 0xF8);
        }
      }
    }
  }
}

}  // namespace lowbit::kernels::avx512
