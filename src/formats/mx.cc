// The "mx" family: OCP Microscaling v1.0 blocks (E8M0 scale + FP8/FP6/FP4/INT8 elements).
// Definition, bit layout, rounding and special values: see mx.h and docs/formats/mx.md.
#include "formats/mx.h"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>

#include "formats/block_format.h"
#include "formats/error_bound_math.h"
#include "formats/exact_pow2.h"
#include "formats/families.h"
#include "formats/minifloat_codec.h"

namespace lowbit {
namespace {

struct ElementInfo {
  MxElement element;
  std::string_view name;  // spec value
  int bits;
  // Element minifloat (absent for int8). Parameters from the OCP MX v1.0 spec, section 5.3
  // (FP8 as in the OCP 8-bit floating point spec v1.0; FP6/FP4 have no Inf/NaN codes).
  std::optional<MinifloatCodec> codec;
};

const std::array<ElementInfo, 6>& Elements() {
  using S = MinifloatCodec::Specials;
  static const std::array<ElementInfo, 6> kElements = {{
      {MxElement::kFp8E4m3, "fp8_e4m3", 8, MinifloatCodec(4, 3, S::kOneNan)},
      {MxElement::kFp8E5m2, "fp8_e5m2", 8, MinifloatCodec(5, 2, S::kIeee)},
      {MxElement::kFp6E3m2, "fp6_e3m2", 6, MinifloatCodec(3, 2, S::kFinite)},
      {MxElement::kFp6E2m3, "fp6_e2m3", 6, MinifloatCodec(2, 3, S::kFinite)},
      {MxElement::kFp4E2m1, "fp4_e2m1", 4, MinifloatCodec(2, 1, S::kFinite)},
      {MxElement::kInt8, "int8", 8, std::nullopt},
  }};
  return kElements;
}

const ElementInfo& InfoFor(MxElement element) {
  for (const auto& info : Elements()) {
    if (info.element == element) return info;
  }
  LOWBIT_CHECK(false);
  return Elements()[0];
}

// INT8 elements: two's complement k with value k * 2^-6 (spec 5.3, "MXINT8").
constexpr double kInt8Step = 1.0 / 64.0;
constexpr int kInt8MaxCode = 127;  // symmetric saturation, as the MX reference code does

// Rounds a non-negative double to the nearest integer, ties per rule.
double RoundToInteger(double q, MxRounding rounding) {
  double r = std::floor(q);
  const double frac = q - r;
  if (frac > 0.5 || (frac == 0.5 && (rounding == MxRounding::kAway || std::fmod(r, 2.0) != 0.0))) {
    r += 1.0;
  }
  return r;
}

class MxFormat final : public BlockFormat {
 public:
  explicit MxFormat(const MxOptions& options) : options_(options), info_(InfoFor(options.element)) {
    if (info_.codec) {
      max_finite_ = info_.codec->max_finite();
      emax_ = info_.codec->emax();
      for (uint32_t c = 0; c < info_.codec->num_codes(); ++c) {
        element_values_[c] = static_cast<float>(info_.codec->Decode(c));
      }
    } else {
      max_finite_ = kInt8MaxCode * kInt8Step;
      emax_ = 0;  // largest normal 127/64 lies in [2^0, 2^1)
      for (uint32_t c = 0; c < 256; ++c) {
        element_values_[c] = static_cast<float>(static_cast<int8_t>(c) * kInt8Step);
      }
    }
  }

  // Elements per the OCP MX spec (INT8: 7 magnitude bits), an E8M0 scale: an 8-bit adder per
  // block.
  MacOperand mac_operand() const override {
    MacOperand op{.significand_bits = 7,
                  .exponent_bits = 0,
                  .shared_block = options_.block,
                  .shared_bits = 8};
    if (info_.codec) {
      op.significand_bits = info_.codec->man_bits() + 1;
      op.exponent_bits = info_.codec->exp_bits();
    }
    return op;
  }
  std::string spec() const override {
    return std::string("mx:elem=") + std::string(info_.name) +
           ",block=" + std::to_string(options_.block) +
           ",scale=" + (options_.scale_rule == MxScaleRule::kFloor ? "floor" : "ceil") +
           ",round=" + (options_.rounding == MxRounding::kAway ? "away" : "even");
  }
  std::string_view family() const override { return "mx"; }
  int64_t block_size() const override { return options_.block; }
  int64_t block_bytes() const override { return 1 + options_.block * info_.bits / 8; }

  void EncodeBlock(const float* x, uint8_t* out) const override {
    const int k = options_.block;
    const std::optional<double> max_abs = FiniteMaxAbs(x);
    if (!max_abs) {
      out[0] = kE8m0Nan;
      std::memset(out + 1, 0, static_cast<size_t>(block_bytes() - 1));
      return;
    }
    const int e = SharedExponent(*max_abs);
    const double limit = SaturationLimit(e);
    out[0] = static_cast<uint8_t>(e + kE8m0Bias);
    // Little-endian bit stream of k codes of info_.bits bits each (k * bits is a multiple of 8).
    uint8_t* p = out + 1;
    uint32_t acc = 0;
    int n_bits = 0;
    for (int i = 0; i < k; ++i) {
      acc |= EncodeElement(ScaleByPow2(static_cast<double>(x[i]), -e), limit) << n_bits;
      n_bits += info_.bits;
      while (n_bits >= 8) {
        *p++ = static_cast<uint8_t>(acc & 0xFFu);
        acc >>= 8;
        n_bits -= 8;
      }
    }
    LOWBIT_CHECK(n_bits == 0 && p == out + block_bytes());
  }

  void DecodeBlock(const uint8_t* in, float* out) const override {
    const int k = options_.block;
    if (in[0] == kE8m0Nan) {
      std::fill(out, out + k, std::numeric_limits<float>::quiet_NaN());
      return;
    }
    // Exact in float: element values are multiples of 2^-16 with at most 8 significant bits, so
    // each product with 2^-127..2^127 is a float (a multiple of 2^-143) or overflows to +-Inf.
    const float scale = E8m0ToFloat(in[0]);
    const uint8_t* p = in + 1;
    const uint32_t mask = (1u << info_.bits) - 1;
    uint32_t acc = 0;
    int n_bits = 0;
    for (int i = 0; i < k; ++i) {
      while (n_bits < info_.bits) {
        acc |= static_cast<uint32_t>(*p++) << n_bits;
        n_bits += 8;
      }
      out[i] = element_values_[acc & mask] * scale;
      acc >>= info_.bits;
      n_bits -= info_.bits;
    }
  }

  // For finite blocks: half the element grid step at |x_i| / 2^e (scaled back by 2^e), or the
  // clipping error |x_i| - limit * 2^e where |x_i| / 2^e exceeds the saturation limit.
  void BlockErrorBound(const float* x, float* bound) const override {
    const int k = options_.block;
    const std::optional<double> max_abs = FiniteMaxAbs(x);
    if (!max_abs) {
      std::fill(bound, bound + k, std::numeric_limits<float>::infinity());
      return;
    }
    const int e = SharedExponent(*max_abs);
    const double limit = SaturationLimit(e);
    for (int i = 0; i < k; ++i) {
      const double y = std::ldexp(std::fabs(static_cast<double>(x[i])), -e);
      const double err = y > limit ? y - limit : HalfStep(y);
      bound[i] = RoundUpToFloat(std::ldexp(err, e));
    }
  }

 private:
  // max |x_i|, or nullopt if any element is NaN or +-Inf.
  std::optional<double> FiniteMaxAbs(const float* x) const {
    double max_abs = 0.0;
    for (int i = 0; i < options_.block; ++i) {
      if (!std::isfinite(x[i])) return std::nullopt;
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(x[i])));
    }
    return max_abs;
  }

  // Rounds a magnitude onto the element grid (subnormals included, no upper bound).
  double RoundElement(double mag) const {
    if (info_.codec) {
      return info_.codec->RoundMagnitude(mag, options_.rounding == MxRounding::kAway
                                                  ? MinifloatCodec::Rounding::kNearestAway
                                                  : MinifloatCodec::Rounding::kNearestEven);
    }
    return RoundToInteger(mag / kInt8Step, options_.rounding) * kInt8Step;
  }

  // The shared exponent e of a finite block (X = 2^e), spec section 6.3 for scale=floor.
  int SharedExponent(double max_abs) const {
    if (max_abs == 0.0) return -kE8m0Bias;  // all-zero block: the smallest scale, code 0x00
    int e = std::clamp(FloorLog2(max_abs) - emax_, -kE8m0Bias, kE8m0Bias);
    // ceil: at e the max lies in the element's top binade [2^emax, 2^(emax+1)); if it clips there,
    // at e + 1 it lies in [2^(emax-1), 2^emax) and rounds to at most 2^emax <= max_finite, unless
    // the float32 limit binds (max within rounding of 2^128): then no exponent avoids clipping and
    // e stays.
    if (options_.scale_rule == MxScaleRule::kCeil && e < kE8m0Bias &&
        RoundElement(std::ldexp(max_abs, -e)) > max_finite_ &&
        RoundElement(std::ldexp(max_abs, -(e + 1))) <= SaturationLimit(e + 1)) {
      ++e;
    }
    return e;
  }

  // Largest element magnitude allowed at shared exponent e: max_finite, lowered only where
  // max_finite * 2^e would exceed FLT_MAX (reachable under scale=ceil alone) to the largest
  // element value whose product with 2^e is a finite float.
  double SaturationLimit(int e) const {
    const double float_limit = ScaleByPow2(static_cast<double>(FLT_MAX), -e);
    if (max_finite_ <= float_limit) return max_finite_;
    LOWBIT_CHECK(info_.codec.has_value());  // int8: 127/64 * 2^127 < FLT_MAX
    uint32_t code = info_.codec->max_finite_code();
    while (info_.codec->Decode(code) > float_limit) --code;  // positive codes ascend in value
    return info_.codec->Decode(code);
  }

  // Element code of y = x / 2^e: rounded, saturated at +-limit, sign of zero kept (minifloats).
  uint32_t EncodeElement(double y, double limit) const {
    const double mag = std::min(RoundElement(std::fabs(y)), limit);
    if (info_.codec) {
      return (std::signbit(y) ? info_.codec->sign_mask() : 0u) |
             info_.codec->EncodeGridMagnitude(mag);
    }
    const int q = static_cast<int>(mag / kInt8Step);
    return static_cast<uint8_t>(static_cast<int8_t>(std::signbit(y) ? -q : q));
  }

  // Half the distance between the element grid points around magnitude y (0 for y = 0).
  double HalfStep(double y) const {
    if (y == 0.0) return 0.0;
    if (!info_.codec) return kInt8Step / 2;
    const MinifloatCodec& c = *info_.codec;
    int exp2 = 0;
    std::frexp(y, &exp2);
    const int binade = std::max(exp2 - 1, 1 - c.bias());  // subnormals share the lowest step
    return std::ldexp(1.0, binade - c.man_bits() - 1);
  }

  MxOptions options_;
  const ElementInfo& info_;
  double max_finite_ = 0.0;
  int emax_ = 0;
  std::array<float, 256> element_values_{};  // value of each element code
};

Result<FormatPtr> MakeFromParams(SpecParams& params) {
  std::vector<std::string_view> element_names;
  for (const auto& info : Elements()) element_names.push_back(info.name);
  LOWBIT_ASSIGN_OR_RETURN(std::string elem, params.GetEnum("elem", "fp8_e4m3", element_names));
  LOWBIT_ASSIGN_OR_RETURN(int64_t block, params.GetInt("block", 32, 8, 256));
  LOWBIT_ASSIGN_OR_RETURN(std::string scale, params.GetEnum("scale", "floor", {"floor", "ceil"}));
  LOWBIT_ASSIGN_OR_RETURN(std::string round, params.GetEnum("round", "away", {"away", "even"}));
  MxOptions options;
  for (const auto& info : Elements()) {
    if (info.name == elem) options.element = info.element;
  }
  options.block = static_cast<int>(block);
  options.scale_rule = scale == "floor" ? MxScaleRule::kFloor : MxScaleRule::kCeil;
  options.rounding = round == "away" ? MxRounding::kAway : MxRounding::kEven;
  return MakeMxFormat(options);
}

}  // namespace

float E8m0ToFloat(uint8_t code) {
  if (code == kE8m0Nan) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(code) - kE8m0Bias);
}

int MxElementBits(MxElement element) { return InfoFor(element).bits; }

Result<FormatPtr> MakeMxFormat(const MxOptions& options) {
  if (options.block < 8 || options.block > 256 || options.block % 8 != 0) {
    return InvalidArgument("format 'mx': block=" + std::to_string(options.block) +
                           " must be a multiple of 8 in [8, 256] (the spec uses 32; 6- and "
                           "4-bit elements must fill whole bytes)");
  }
  return FormatPtr(std::make_shared<MxFormat>(options));
}

void RegisterMxFamily(FormatRegistry& registry) {
  registry.AddFamily({
      "mx",
      "OCP Microscaling (MX v1.0): E8M0 power-of-two scale per block of FP8/FP6/FP4/INT8",
      "elem=fp8_e4m3|fp8_e5m2|fp6_e3m2|fp6_e2m3|fp4_e2m1|int8, block=8..256 (multiple of 8, "
      "spec 32), scale=floor|ceil, round=away|even",
      "docs/formats/mx.md",
      MakeFromParams,
  });
  const auto add = [&](const char* name, const char* elem, const char* scale, const char* round,
                       const char* description) {
    registry.AddPreset(
        {name, std::string("mx:elem=") + elem + ",block=32,scale=" + scale + ",round=" + round,
         description});
  };
  add("mxfp8_e4m3", "fp8_e4m3", "floor", "away", "OCP MXFP8 E4M3 (max 448), E8M0 scale per 32");
  add("mxfp8_e5m2", "fp8_e5m2", "floor", "away", "OCP MXFP8 E5M2 (max 57344), E8M0 scale per 32");
  add("mxfp6_e3m2", "fp6_e3m2", "floor", "away", "OCP MXFP6 E3M2 (max 28), E8M0 scale per 32");
  add("mxfp6_e2m3", "fp6_e2m3", "floor", "away", "OCP MXFP6 E2M3 (max 7.5), E8M0 scale per 32");
  add("mxfp4", "fp4_e2m1", "floor", "away", "OCP MXFP4 E2M1 (max 6), E8M0 scale per 32");
  add("mxint8", "int8", "floor", "away", "OCP MXINT8 (k/64, |k| <= 127), E8M0 scale per 32");
  add("mxfp4_rne", "fp4_e2m1", "floor", "even", "MXFP4 with round-to-nearest-even elements");
  add("mxfp4_ceil", "fp4_e2m1", "ceil", "away", "MXFP4 with the non-clipping (ceil) scale");
  add("mxfp8_e4m3_ceil", "fp8_e4m3", "ceil", "away",
      "MXFP8 E4M3 with the non-clipping (ceil) scale");
}

}  // namespace lowbit
