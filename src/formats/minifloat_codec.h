// MinifloatCodec: scalar reference encode/decode of one ExMy element (sign, e exponent bits,
// m mantissa bits), shared by every family built from minifloats (ExMy, MX, block minifloat,
// FP6 4+2, GGUF MXFP4) and by fp16/bf16 scale fields.
//
// Value of a code (E = exponent field, M = mantissa field, emin = 1 - bias):
//   E == 0 : (-1)^s * 2^emin * M / 2^m                 (zero and subnormals)
//   E  > 0 : (-1)^s * 2^(E - bias) * (1 + M / 2^m)
// Special values (Specials):
//   kIeee         E all ones: M == 0 is +-Inf, M != 0 is NaN (fp16, bf16, fp8_e5m2).
//   kOneNan       no Inf; only E and M all ones is NaN (OCP fp8_e4m3 / ml_dtypes float8_e4m3fn).
//   kFinite       every code is a finite number (OCP fp6 / fp4; ml_dtypes float6_*fn and
//                 float4_e2m1fn).
//
// Encoding (float -> code), exact for every float input:
//   * rounding on the value grid: kNearestEven (IEEE 754 roundTiesToEven; ml_dtypes) or
//     kNearestAway (ties away from zero; the OCP MX reference code's default); with m == 0 every
//     normal significand is the single digit 1, and a tie between two normals goes to the larger
//     magnitude (as ml_dtypes float8_e8m0fnu does: 3 -> 4, 6 -> 8);
//   * subnormal results are kept (gradual underflow); a result that rounds to zero keeps the sign;
//   * overflow (the rounded magnitude exceeds the largest finite value):
//       kSaturate : clamp to +-max finite; +-Inf also clamps; NaN stays NaN where representable;
//       kIeee     : +-Inf for kIeee types, NaN for kOneNan types, +-max finite for kFinite types
//                   (which is what ml_dtypes does for each of them);
//   * NaN input: the canonical NaN (kIeee: E all ones, M = 100..0; kOneNan: all ones) with the
//     input's sign (any payload is dropped); kFinite types have no NaN: a NaN with the sign bit
//     clear encodes as -0 (code 1 << (e + m)) and one with the sign bit set as +0 (code 0), which
//     is exactly what ml_dtypes 0.6 does (its NaN stand-in is -0, then the input's sign is
//     applied by XOR; checked by tests/golden/minifloat_golden_test.cc). Block formats built on
//     kFinite elements signal NaN through their scale instead.
// Exactness: Encode(float) and EncodeDouble(double) round the exact input value (no double
// rounding): every grid point and midpoint is a double and the scaling below is by powers of two.
// Decode(code) is exact in double and in float for every format lowbit builds (<= 24 significand
// bits, exponents inside float's range).
// Valid parameters: kIeee needs man_bits >= 1 (a NaN needs a non-zero mantissa); kOneNan needs
// exp_bits + man_bits >= 2 (the all-ones NaN code must leave a positive finite value). The ExMy
// family validates these before it builds a codec.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "formats/exact_pow2.h"

namespace lowbit {

class MinifloatCodec {
 public:
  enum class Specials { kIeee, kOneNan, kFinite };
  enum class Rounding { kNearestEven, kNearestAway };
  enum class Overflow { kSaturate, kIeee };

  // exp_bits 1..8, man_bits 0..23; bias defaults to 2^(e-1) - 1.
  constexpr MinifloatCodec(int exp_bits, int man_bits, Specials specials)
      : MinifloatCodec(exp_bits, man_bits, (1 << (exp_bits - 1)) - 1, specials) {}
  constexpr MinifloatCodec(int exp_bits, int man_bits, int bias, Specials specials)
      : exp_bits_(exp_bits), man_bits_(man_bits), bias_(bias), specials_(specials) {}

  int exp_bits() const { return exp_bits_; }
  int man_bits() const { return man_bits_; }
  int bias() const { return bias_; }
  Specials specials() const { return specials_; }
  int total_bits() const { return 1 + exp_bits_ + man_bits_; }
  uint32_t sign_mask() const { return 1u << (exp_bits_ + man_bits_); }
  uint32_t num_codes() const { return 1u << total_bits(); }

  // Largest finite magnitude and its code (positive).
  double max_finite() const { return Decode(max_finite_code()); }
  uint32_t max_finite_code() const {
    const uint32_t exp_max = (1u << exp_bits_) - 1;
    const uint32_t man_max = (1u << man_bits_) - 1;
    switch (specials_) {
      case Specials::kIeee:
        return ((exp_max - 1) << man_bits_) | man_max;
      // The code just below the all-ones NaN (also right when man_bits == 0: E = exp_max - 1).
      case Specials::kOneNan:
        return ((exp_max << man_bits_) | man_max) - 1;
      case Specials::kFinite:
        break;
    }
    return (exp_max << man_bits_) | man_max;
  }
  // Smallest positive normal and subnormal magnitudes.
  double min_normal() const { return std::ldexp(1.0, 1 - bias_); }
  double min_subnormal() const { return std::ldexp(1.0, 1 - bias_ - man_bits_); }
  // Exponent of the largest finite value (floor(log2(max_finite()))).
  int emax() const { return static_cast<int>((max_finite_code() >> man_bits_)) - bias_; }

  bool IsNan(uint32_t code) const {
    const uint32_t exp_max = (1u << exp_bits_) - 1;
    const uint32_t e = (code >> man_bits_) & exp_max;
    const uint32_t m = code & ((1u << man_bits_) - 1);
    switch (specials_) {
      case Specials::kIeee:
        return e == exp_max && m != 0;
      case Specials::kOneNan:
        return e == exp_max && m == (1u << man_bits_) - 1;
      case Specials::kFinite:
        return false;
    }
    return false;
  }

  double Decode(uint32_t code) const {
    const uint32_t exp_max = (1u << exp_bits_) - 1;
    const bool negative = (code & sign_mask()) != 0;
    const uint32_t e = (code >> man_bits_) & exp_max;
    const uint32_t m = code & ((1u << man_bits_) - 1);
    double mag;
    if (IsNan(code)) {
      mag = std::nan("");
    } else if (specials_ == Specials::kIeee && e == exp_max) {
      mag = INFINITY;
    } else if (e == 0) {
      mag = std::ldexp(static_cast<double>(m), 1 - bias_ - man_bits_);
    } else {
      mag = std::ldexp(static_cast<double>((1u << man_bits_) | m),
                       static_cast<int>(e) - bias_ - man_bits_);
    }
    return negative ? -mag : mag;
  }

  // Rounds |x| onto this format's grid with an unbounded exponent range above (overflow is the
  // caller's business); exact because every grid point and midpoint is a double.
  double RoundMagnitude(double a, Rounding rounding) const {
    if (a == 0.0) return 0.0;
    const int e = std::max(FloorLog2(a), 1 - bias_);
    const double step = Pow2(e - man_bits_);
    const double q = a / step;
    double r = std::floor(q);
    const double frac = q - r;
    if (frac > 0.5 ||
        (frac == 0.5 && (rounding == Rounding::kNearestAway || std::fmod(r, 2.0) != 0.0))) {
      r += 1.0;
    }
    return r * step;
  }

  uint32_t Encode(float x, Rounding rounding = Rounding::kNearestEven,
                  Overflow overflow = Overflow::kIeee) const {
    return EncodeDouble(static_cast<double>(x), rounding, overflow);
  }

  // Same as Encode for a double input (rounded once, exactly): lets a caller encode a quotient
  // such as x / scale without first rounding it to float.
  uint32_t EncodeDouble(double x, Rounding rounding = Rounding::kNearestEven,
                        Overflow overflow = Overflow::kIeee) const {
    const uint32_t sign = std::signbit(x) ? sign_mask() : 0u;
    const uint32_t exp_max = (1u << exp_bits_) - 1;
    if (std::isnan(x)) {
      switch (specials_) {
        case Specials::kIeee:
          return sign | (exp_max << man_bits_) | (1u << (man_bits_ - 1));
        case Specials::kOneNan:
          return sign | (exp_max << man_bits_) | ((1u << man_bits_) - 1);
        case Specials::kFinite:
          return sign_mask() ^ sign;  // ml_dtypes: -0 with the sign XORed
      }
    }
    const double mag = std::isinf(x) ? INFINITY : RoundMagnitude(std::fabs(x), rounding);
    if (mag > max_finite()) {
      if (overflow == Overflow::kSaturate || specials_ == Specials::kFinite) {
        return sign | max_finite_code();
      }
      if (specials_ == Specials::kIeee) return sign | (exp_max << man_bits_);
      return sign | (exp_max << man_bits_) | ((1u << man_bits_) - 1);  // kOneNan: NaN
    }
    return sign | EncodeGridMagnitude(mag);
  }

  // Code of a finite magnitude that lies exactly on the grid (0 <= mag <= max_finite()).
  uint32_t EncodeGridMagnitude(double mag) const {
    if (mag == 0.0) return 0;
    if (mag < min_normal()) {
      return static_cast<uint32_t>(ScaleByPow2(mag, bias_ - 1 + man_bits_));
    }
    const int binade = FloorLog2(mag);  // mag = (1 + m / 2^man_bits) * 2^binade
    const uint32_t e = static_cast<uint32_t>(binade + bias_);
    const uint32_t m =
        static_cast<uint32_t>(ScaleByPow2(ScaleByPow2(mag, -binade) - 1.0, man_bits_));
    return (e << man_bits_) | m;
  }

  // Convenience: quantize-dequantize one value.
  double RoundTrip(float x, Rounding rounding = Rounding::kNearestEven,
                   Overflow overflow = Overflow::kIeee) const {
    return Decode(Encode(x, rounding, overflow));
  }

 private:
  int exp_bits_;
  int man_bits_;
  int bias_;
  Specials specials_;
};

// IEEE half and bfloat16 as codecs (scales and zero points of many formats are stored as fp16).
inline constexpr MinifloatCodec kFp16Codec(5, 10, MinifloatCodec::Specials::kIeee);
inline constexpr MinifloatCodec kBf16Codec(8, 7, MinifloatCodec::Specials::kIeee);

inline uint16_t FloatToHalf(float x) { return static_cast<uint16_t>(kFp16Codec.Encode(x)); }
inline float HalfToFloat(uint16_t h) { return static_cast<float>(kFp16Codec.Decode(h)); }
inline uint16_t FloatToBf16(float x) { return static_cast<uint16_t>(kBf16Codec.Encode(x)); }
inline float Bf16ToFloat(uint16_t h) { return static_cast<float>(kBf16Codec.Decode(h)); }

}  // namespace lowbit
