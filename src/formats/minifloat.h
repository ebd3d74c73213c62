// ExMy minifloat family ("exmy"): shared pieces used by minifloat.cc and fp6_split.cc.
//
// Element: one MinifloatCodec (minifloat_codec.h) code of 1 + e + m bits, round-to-nearest-even.
//
// Packed sub-byte codes (PackCodes / UnpackCode): a little-endian bitstream. Element i occupies
// stream bits [i * bits, (i + 1) * bits), value bit j at stream bit i * bits + j; stream bit k is
// bit (k % 8) of byte k / 8. Example, 6-bit codes a, b, c, d in 3 bytes:
//   byte 0 = b1 b0 a5 a4 a3 a2 a1 a0      (MSB ... LSB)
//   byte 1 = c3 c2 c1 c0 b5 b4 b3 b2
//   byte 2 = d5 d4 d3 d2 d1 d0 c5 c4
// 4-bit codes: element 2k in the low nibble of byte k, element 2k + 1 in the high nibble.
// Unused bits at the end of the stream are 0.
//
// Scaled groups (scale=row|<g>, and the fp6split family): one fp16 scale s per group of n values.
//   a  = max |x_i| over the group's non-NaN values (+Inf counts as infinitely large)
//   s  = fp16 RNE of the exact a / max_finite, saturated at 65504 (so +-Inf or huge values clip);
//        if s > 0 and a / s does not round to max_finite (possible only when s is an fp16
//        subnormal that rounded up), s is lowered by one fp16 step: then a / s > max_finite
//        and the largest element saturates to max_finite.
//   code_i = Encode(x_i / s) with RNE, the quotient computed exactly (double), saturating
//        (exmy requires overflow=sat with a scale); s == 0 (a zero block, or
//        a / max_finite below half the smallest fp16 subnormal) stores +-0 codes (NaN stays NaN).
//   decode: y_i = s * value(code_i), exact in float.
// Why quantize(dequantize(q)) == q: with the rule above the largest element always decodes to
// exactly s * max_finite, so the re-quantizer sees a' = s * max_finite, gets a' / max_finite = s
// exactly, finds the top element on max_finite, keeps s, and every y_i / s = value(code_i) exactly.
// (For s an fp16 normal the lowering never triggers: RNE moves s by at most 2^-11 relative, less
// than half the top grid step of any m <= 7 format, 2^-8 / (2 - 2^-m) relative.)
#pragma once

#include <cstdint>
#include <vector>

#include "formats/minifloat_codec.h"
#include "lowbit/format.h"

namespace lowbit {

// Writes ceil(n * bits / 8) bytes (bits 1..32).
void PackCodes(const uint32_t* codes, int64_t n, int bits, uint8_t* out);
uint32_t UnpackCode(const uint8_t* in, int64_t i, int bits);

// One element type plus its overflow rule, with a decode table (codes of <= 16 bits).
class MinifloatElement {
 public:
  MinifloatElement(MinifloatCodec codec, MinifloatCodec::Overflow overflow);

  const MinifloatCodec& codec() const { return codec_; }
  MinifloatCodec::Overflow overflow() const { return overflow_; }
  int bits() const { return codec_.total_bits(); }
  float Decode(uint32_t code) const { return table_[code & (table_.size() - 1)]; }
  uint32_t Encode(double x) const {
    return codec_.EncodeDouble(x, MinifloatCodec::Rounding::kNearestEven, overflow_);
  }

  // Bound on |x - Decode(Encode(x / scale)) * scale| (scale > 0, x finite); +Inf where the
  // element overflows to Inf/NaN (overflow=ieee on a type with Inf or NaN).
  float ErrorBound(float x, float scale) const;

  // Scaled groups (see the file comment): returns the fp16 scale bits and fills codes[0..n).
  uint16_t QuantizeScaled(const float* x, int64_t n, uint32_t* codes) const;
  void ScaledErrorBound(const float* x, int64_t n, float* bound) const;

 private:
  MinifloatCodec codec_;
  MinifloatCodec::Overflow overflow_;
  double max_finite_;
  std::vector<float> table_;
};

}  // namespace lowbit
