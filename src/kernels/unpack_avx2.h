// SIMD unpack of one unit's 32 codes into a 256-bit register (byte k = code k), following
// UnpackCodes of kernels/block_traits.h kind by kind. Included by the AVX2 and AVX-512 loop
// headers only (files compiled with -mavx2 or higher); internal linkage, so the two ISA builds
// never share a definition.
#pragma once

#include <immintrin.h>

#include "kernels/block_traits.h"

namespace lowbit::kernels {
namespace {

inline __m256i LowNibbles(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }

// Byte k of the result is 0xFF where bit k of the little-endian u32 at p is set.
inline __m256i BitsToBytes(const uint8_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, sizeof bits);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                       3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

template <CodeKind kKind, uint8_t kXor>
inline __m256i UnpackCodes256(const UnitRef& u) {
  const __m128i x128 = _mm_set1_epi8(static_cast<char>(kXor));
  const __m256i x256 = _mm256_set1_epi8(static_cast<char>(kXor));
  switch (kKind) {
    case CodeKind::kNibbleSplit:
    case CodeKind::kNibbleSplit5: {
      const __m128i v =
          _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(u.codes)), x128);
      const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
      __m256i c = LowNibbles(both);
      if (kKind == CodeKind::kNibbleSplit5) {
        c = _mm256_or_si256(c, _mm256_and_si256(BitsToBytes(u.aux), _mm256_set1_epi8(0x10)));
      }
      return c;
    }
    case CodeKind::kNibbleSelect:
    case CodeKind::kNibbleSelect5:
    case CodeKind::kSixBit: {
      const __m256i v =
          _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u.codes)), x256);
      __m256i c = LowNibbles(_mm256_srl_epi16(v, _mm_cvtsi32_si128(u.shift)));
      if (kKind != CodeKind::kNibbleSelect) {
        const __m256i a = _mm256_srl_epi16(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u.aux)),
            _mm_cvtsi32_si128(u.aux_shift));
        const __m256i hi = kKind == CodeKind::kSixBit
                               ? _mm256_and_si256(a, _mm256_set1_epi8(3))
                               : _mm256_and_si256(a, _mm256_set1_epi8(1));
        c = _mm256_or_si256(c, _mm256_slli_epi16(hi, 4));  // hi < 4: no bits cross bytes
      }
      return c;
    }
    case CodeKind::kNibblePairsLo:
    case CodeKind::kNibblePairsHi: {
      const __m128i v =
          _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(u.codes)), x128);
      const __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0x0F));
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
      const __m128i even = kKind == CodeKind::kNibblePairsLo ? lo : hi;
      const __m128i odd = kKind == CodeKind::kNibblePairsLo ? hi : lo;
      return _mm256_set_m128i(_mm_unpackhi_epi8(even, odd), _mm_unpacklo_epi8(even, odd));
    }
    case CodeKind::kBytes:
      return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u.codes)),
                              x256);
  }
  return _mm256_setzero_si256();
}

}  // namespace
}  // namespace lowbit::kernels
