// Helpers shared by the three shared-exponent block families of Zhang et al., "Revisiting
// Block-based Quantisation: What is Important for Sub-8-bit LLM Inference?" (EMNLP 2023):
// block floating point "bfp" (block_fp.cc), block minifloat "bm" (block_minifloat.cc) and block
// logarithm "bl" (block_log.cc). The three store a block the same way:
//
//   byte 0      the block's shared exponent field, an int8 (two's complement, -128..127)
//   bytes 1..   the B element codes of w bits each as a little-endian bit stream: element j
//               occupies stream bits [j*w, j*w + w), stream bit b is bit (b % 8) of byte 1 + b/8,
//               and a code's bit 0 comes first. The last byte's unused high bits are 0 (only when
//               B*w is not a multiple of 8); decoding ignores them.
//   block_bytes = 1 + ceil(B * w / 8).
//
// And they treat non-finite input the same way (none of them has a NaN or Inf code and all 256
// exponent values are numbers): a NaN element is stored as a zero with the NaN's sign bit and is
// left out of the block maximum; +-Inf is treated as +-FLT_MAX (the largest magnitude a finite
// input can have), so it saturates exactly like a huge finite value.
#pragma once

#include "formats/error_bound_math.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>

namespace lowbit::block_shared {

// Largest block any of the three families accepts (their `block` parameter is 2..256).
inline constexpr int kMaxBlock = 256;

// Bounds of the int8 shared exponent field.
inline constexpr int kMinSharedExponent = -128;
inline constexpr int kMaxSharedExponent = 127;

// Bytes holding n codes of `bits` bits.
constexpr int64_t PackedCodeBytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

// Writes n codes (each < 2^bits, bits <= 24) as the little-endian bit stream described above.
inline void PackCodes(const uint32_t* codes, int64_t n, int bits, uint8_t* out) {
  uint64_t acc = 0;
  int n_bits = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc |= static_cast<uint64_t>(codes[i]) << n_bits;
    n_bits += bits;
    while (n_bits >= 8) {
      *out++ = static_cast<uint8_t>(acc & 0xFFu);
      acc >>= 8;
      n_bits -= 8;
    }
  }
  if (n_bits > 0) *out = static_cast<uint8_t>(acc & 0xFFu);
}

// Reads n codes of `bits` bits from the little-endian bit stream at in.
inline void UnpackCodes(const uint8_t* in, int64_t n, int bits, uint32_t* codes) {
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t acc = 0;
  int n_bits = 0;
  for (int64_t i = 0; i < n; ++i) {
    while (n_bits < bits) {
      acc |= static_cast<uint64_t>(*in++) << n_bits;
      n_bits += 8;
    }
    codes[i] = static_cast<uint32_t>(acc & mask);
    acc >>= bits;
    n_bits -= bits;
  }
}

// The non-finite input rule above: NaN -> zero of the same sign, +-Inf -> +-FLT_MAX.
inline double SanitizeInput(float x) {
  if (std::isnan(x)) return std::signbit(x) ? -0.0 : 0.0;
  if (std::isinf(x)) return x > 0 ? static_cast<double>(FLT_MAX) : -static_cast<double>(FLT_MAX);
  return static_cast<double>(x);
}

// max |SanitizeInput(x_i)| over a block.
inline double BlockMaxAbs(const float* x, int64_t n) {
  double max_abs = 0.0;
  for (int64_t i = 0; i < n; ++i) max_abs = std::fmax(max_abs, std::fabs(SanitizeInput(x[i])));
  return max_abs;
}

// floor(log2 a) for finite a > 0, exact (frexp: a = f * 2^p with f in [0.5, 1)).
inline int FloorLog2(double a) {
  int p = 0;
  std::frexp(a, &p);
  return p - 1;
}

// Rounds a non-negative double to an integer, ties to even (IEEE roundTiesToEven), independent of
// the floating-point environment's rounding mode.
inline double RoundHalfEven(double q) {
  double r = std::floor(q);
  const double frac = q - r;  // exact: q and floor(q) share an exponent range
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0)) r += 1.0;
  return r;
}

using ::lowbit::RoundUpToFloat;

}  // namespace lowbit::block_shared
