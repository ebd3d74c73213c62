// OCP Microscaling (MX) v1.0 block formats: MXFP8 (E4M3, E5M2), MXFP6 (E3M2, E2M3), MXFP4 (E2M1)
// and MXINT8. Source: OCP Microscaling Formats (MX) Specification v1.0, Sept 2023
// (https://www.opencompute.org/documents/ocp-microscaling-formats-mx-v1-0-spec-final-pdf), with
// the conversion algorithm of its section 6.3 (= Algorithm 1 of Rouhani et al. 2023,
// arXiv:2310.10537).
//
// What: blocks of k elements (spec: k = 32; here 8..256, a multiple of 8) sharing one E8M0 scale
// X = 2^(code - 127). An element decodes to X * P_i, where P_i is the element's own value.
//
// Bit layout of one block (block_bytes = 1 + k * element_bits / 8):
//   byte 0       E8M0 scale code: unsigned biased exponent, bias 127; 0x00..0xFE = 2^-127..2^127,
//                0xFF = NaN (no zero, no Inf, no sign).
//   bytes 1..    the k element codes as a little-endian bit stream: element j occupies stream bits
//                [j*w, j*w + w) (w = element bits), stream bit b is bit (b % 8) of byte 1 + b / 8.
//                fp8/int8: one element per byte; fp4: element 2i in the low nibble of byte 1 + i,
//                element 2i+1 in the high nibble; fp6: 4 elements in 3 bytes:
//                  byte+0 = e0[5:0]        | e1[1:0] << 6
//                  byte+1 = e1[5:2]        | e2[3:0] << 4
//                  byte+2 = e2[5:4]        | e3[5:0] << 2
// Elements (sign-magnitude minifloats, bias 2^(E-1) - 1, subnormals, OCP meanings of all-ones):
//   fp8_e4m3 max 448 (S.1111.111 = NaN, no Inf)  fp8_e5m2 max 57344 (IEEE-like Inf/NaN)
//   fp6_e3m2 max 28   fp6_e2m3 max 7.5   fp4_e2m1 max 6   (fp6/fp4: every code finite)
//   int8     8-bit two's complement with an implicit scale 2^-6: -2 .. 127/64.
//
// Encoding one block (x_1..x_k floats):
//   * any NaN or +-Inf in the block: scale code 0xFF (NaN) and all element codes 0; the whole block
//     decodes to NaN (spec 5.3: a NaN scale makes every element NaN; E8M0 has no Inf and the
//     shared exponent of an infinite max is out of range, which the reference code maps to NaN).
//   * shared exponent, with M = max|x_i| and emax = exponent of the element's largest normal
//     (8, 15, 4, 2, 2, 0 for e4m3, e5m2, e3m2, e2m3, e2m1, int8):
//       scale=floor (spec): e = floor(log2 M) - emax. The largest magnitude lands in the element's
//                           top binade and may clip (e.g. 957 -> e = 1, 478.5 -> 448, i.e. 896).
//       scale=ceil:         the smallest e for which no element clips: e = floor's e if
//                           round(M / 2^e) <= max_finite, else e + 1 (one more binade always
//                           suffices, float32's range aside: see below). Rounding-aware, so
//                           quantizing a dequantized block reproduces its bytes.
//     then e is clamped to [-127, 127]. M = 0 (all-zero block) gives e = -127, i.e. code 0x00.
//     Float32 input never reaches the upper clamp except ceil/int8 with M >= 1.9921875 * 2^127.
//   * elements: P_i = round(x_i / 2^e) on the element grid (round=away: ties away from zero, the
//     MX reference code's default; round=even: ties to even), keeping the sign of zero; magnitudes
//     above max_finite saturate to +-max_finite (never Inf/NaN). int8 saturates symmetrically to
//     +-127 (the reference code's max 127/64), so code 0x80 (-2) is decoded but never produced.
//     Under scale=ceil a block whose max rounds to 2^128 (beyond float32) would decode to Inf at
//     e + 1; there e stays at floor's value and elements saturate at the largest element value
//     whose product with X is a finite float.
//   * subnormal float inputs are kept (the spec does not flush them; the paper's Algorithm 1 does).
// Decoding: X * P_i computed in float32 is exact for every code pair (products are small integers
//   times powers of two >= 2^-143); products beyond FLT_MAX (only from bytes the encoder never
//   writes) are +-Inf, element NaN/Inf codes stay NaN/Inf.
// Tail: rows are padded with +0.0 to a whole block (BlockFormat).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "lowbit/format.h"

namespace lowbit {

enum class MxElement { kFp8E4m3, kFp8E5m2, kFp6E3m2, kFp6E2m3, kFp4E2m1, kInt8 };
enum class MxScaleRule { kFloor, kCeil };
enum class MxRounding { kAway, kEven };

struct MxOptions {
  MxElement element = MxElement::kFp8E4m3;
  int block = 32;  // 8..256, a multiple of 8
  MxScaleRule scale_rule = MxScaleRule::kFloor;
  MxRounding rounding = MxRounding::kAway;
};

inline constexpr uint8_t kE8m0Nan = 0xFF;
inline constexpr int kE8m0Bias = 127;

// Value of an E8M0 scale code: 2^(code - 127), NaN for 0xFF. Every value is an exact float
// (2^-127 is a float32 subnormal).
float E8m0ToFloat(uint8_t code);

// Bits per element code (8, 6 or 4).
int MxElementBits(MxElement element);

// Builds an MX format; InvalidArgument (naming the field) for a bad block size.
Result<FormatPtr> MakeMxFormat(const MxOptions& options);

}  // namespace lowbit
