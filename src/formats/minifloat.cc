// ExMy minifloat family "exmy" (docs/formats/minifloat.md).
//
// What: elements are 1 + e + m bit minifloats (MinifloatCodec: sign, e exponent bits with a
// bias, m mantissa bits, IEEE-style subnormals), optionally multiplied by an fp16 scale per row
// or per group of g elements along the row.
//   exmy:e=<1..5>,m=<0..7>,bias=<-64..64>,special=ieee|onenan|finite,overflow=sat|ieee,
//        scale=none|row|<g>
// Bit layout (w = 1 + e + m; codes form the little-endian bitstream of minifloat.h):
//   scale=none : storage block of B = 8 / gcd(w, 8) elements in B * w / 8 bytes
//                (fp8: 1 element per byte; fp6: 4 in 3 bytes; fp4: 2 in 1 byte).
//   scale=<g>  : block = [fp16 scale, little-endian][g codes, ceil(g * w / 8) bytes].
//   scale=row  : row   = [fp16 scale, little-endian][cols codes, ceil(cols * w / 8) bytes].
// Range: +-max_finite (448 for OCP E4M3, 57344 for E5M2, 28 / 7.5 / 6 for the OCP fp6 / fp4
// types), times the scale where there is one.
// Rounding: round to nearest, ties to even, of the exact input (or of the exact x / scale).
// Special values (special=):
//   ieee   = E all ones is Inf (M = 0) or NaN;
//   onenan = only the all-ones code is NaN, no Inf (OCP E4M3);
//   finite = no Inf/NaN (OCP FP6/FP4).
//   Zero keeps its sign; subnormals are kept (gradual underflow).
// Overflow (overflow=):
//   ieee = a value that rounds above max_finite becomes +-Inf (special=ieee), NaN (onenan) or
//          +-max_finite (finite): ml_dtypes' conversion semantics;
//   sat  = clamp to +-max_finite (Inf too). Scaled formats require sat (their default).
// NaN: encodes as the element NaN; finite types store -0 for +NaN and +0 for -NaN (ml_dtypes'
// mapping, see minifloat_codec.h).
// Scaled variants: the scale rule and why quantize(dequantize(q)) == q are in minifloat.h.
// Tail: a row is padded with +0 to a whole storage block / group; the padding is stored.
// Sources: OCP 8-bit Floating Point Specification (OFP8) rev 1.0, 2023 (E4M3, E5M2);
// OCP Microscaling Formats (MX) Specification v1.0, 2023, section 5.3 (FP6 E3M2 / E2M3,
// FP4 E2M1); IEEE 754-2019 (roundTiesToEven, subnormals); ml_dtypes 0.6 (golden tests).
#include "formats/error_bound_math.h"
#include "formats/minifloat.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "formats/block_format.h"
#include "formats/families.h"

namespace lowbit {

void PackCodes(const uint32_t* codes, int64_t n, int bits, uint8_t* out) {
  const uint64_t mask = bits >= 32 ? 0xFFFFFFFFull : ((1ull << bits) - 1);
  uint64_t acc = 0;
  int n_acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc |= (static_cast<uint64_t>(codes[i]) & mask) << n_acc;
    n_acc += bits;
    while (n_acc >= 8) {
      *out++ = static_cast<uint8_t>(acc);
      acc >>= 8;
      n_acc -= 8;
    }
  }
  if (n_acc > 0) *out = static_cast<uint8_t>(acc);
}

uint32_t UnpackCode(const uint8_t* in, int64_t i, int bits) {
  const int64_t first_bit = i * bits;
  const int64_t first_byte = first_bit / 8;
  const int shift = static_cast<int>(first_bit % 8);
  const int n_bytes = (shift + bits + 7) / 8;
  uint64_t acc = 0;
  for (int k = 0; k < n_bytes; ++k) acc |= static_cast<uint64_t>(in[first_byte + k]) << (8 * k);
  const uint64_t mask = bits >= 32 ? 0xFFFFFFFFull : ((1ull << bits) - 1);
  return static_cast<uint32_t>((acc >> shift) & mask);
}

MinifloatElement::MinifloatElement(MinifloatCodec codec, MinifloatCodec::Overflow overflow)
    : codec_(codec), overflow_(overflow), max_finite_(codec.max_finite()) {
  LOWBIT_CHECK(codec_.total_bits() <= 16);
  table_.resize(codec_.num_codes());
  for (uint32_t c = 0; c < codec_.num_codes(); ++c)
    table_[c] = static_cast<float>(codec_.Decode(c));
}

namespace {

}  // namespace

float MinifloatElement::ErrorBound(float x, float scale) const {
  const double ax = std::fabs(static_cast<double>(x));
  if (scale == 0.0f) return static_cast<float>(ax);  // the group stores zeros
  const double s = scale;
  const double q = ax / s;
  if (q >= max_finite_) {
    // Above max_finite + half the top step, RNE leaves the finite grid: with overflow=ieee that
    // is Inf or NaN (no finite bound) unless the type has neither.
    const double half_top_step = std::ldexp(1.0, codec_.emax() - codec_.man_bits() - 1);
    if (overflow_ == MinifloatCodec::Overflow::kIeee &&
        codec_.specials() != MinifloatCodec::Specials::kFinite &&
        q >= max_finite_ + half_top_step) {
      return std::numeric_limits<float>::infinity();
    }
    return RoundUpToFloat(ax - s * max_finite_);  // clipped (or rounded) to max_finite
  }
  // Half a grid step of q's binade (subnormal binade below 2^emin), in x's units.
  const int emin = 1 - codec_.bias();
  const int binade = q > 0.0 ? std::max(std::ilogb(q), emin) : emin;
  return static_cast<float>(s * std::ldexp(1.0, binade - codec_.man_bits() - 1));
}

namespace {

double GroupAbsMax(const float* x, int64_t n) {
  double a = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isnan(x[i])) a = std::max(a, std::fabs(static_cast<double>(x[i])));
  }
  return a;
}

// The fp16 scale of a group (minifloat.h): RNE(absmax / max_finite) saturated at 65504, lowered
// one fp16 step when the largest element would not land on max_finite.
uint16_t ChooseScale(const MinifloatCodec& codec, double max_finite, double absmax) {
  using R = MinifloatCodec::Rounding;
  using O = MinifloatCodec::Overflow;
  uint16_t s_bits = static_cast<uint16_t>(
      kFp16Codec.EncodeDouble(absmax / max_finite, R::kNearestEven, O::kSaturate));
  if (s_bits != 0) {
    const double s = kFp16Codec.Decode(s_bits);
    const uint32_t top = codec.EncodeDouble(absmax / s, R::kNearestEven, O::kSaturate);
    if (top != codec.max_finite_code()) --s_bits;  // positive fp16: bits - 1 is the next value down
  }
  return s_bits;
}

}  // namespace

uint16_t MinifloatElement::QuantizeScaled(const float* x, int64_t n, uint32_t* codes) const {
  const uint16_t s_bits = ChooseScale(codec_, max_finite_, GroupAbsMax(x, n));
  const double s = kFp16Codec.Decode(s_bits);
  for (int64_t i = 0; i < n; ++i) {
    // s == 0: keep only the sign of zero (and NaN); no finite value is representable.
    const double q = s > 0.0 ? static_cast<double>(x[i]) / s : static_cast<double>(x[i]) * 0.0;
    codes[i] = Encode(q);
  }
  return s_bits;
}

void MinifloatElement::ScaledErrorBound(const float* x, int64_t n, float* bound) const {
  const float s = HalfToFloat(ChooseScale(codec_, max_finite_, GroupAbsMax(x, n)));
  for (int64_t i = 0; i < n; ++i) bound[i] = ErrorBound(x[i], s);
}

namespace {

using Specials = MinifloatCodec::Specials;
using Overflow = MinifloatCodec::Overflow;

constexpr int64_t kMaxGroup = 65536;

struct ExmyParams {
  int e = 4;
  int m = 3;
  int bias = 7;
  Specials specials = Specials::kIeee;
  Overflow overflow = Overflow::kIeee;
  int64_t group = -1;  // -1: scale=none, 0: scale=row, > 0: scale=<group>

  int bits() const { return 1 + e + m; }
  MinifloatCodec codec() const { return MinifloatCodec(e, m, bias, specials); }
  std::string Spec() const {
    const char* special = specials == Specials::kIeee     ? "ieee"
                          : specials == Specials::kOneNan ? "onenan"
                                                          : "finite";
    const std::string scale = group < 0 ? "none" : group == 0 ? "row" : std::to_string(group);
    return "exmy:e=" + std::to_string(e) + ",m=" + std::to_string(m) +
           ",bias=" + std::to_string(bias) + ",special=" + special +
           ",overflow=" + (overflow == Overflow::kSaturate ? "sat" : "ieee") + ",scale=" + scale;
  }
};

void WriteScale(uint16_t s, uint8_t* out) {
  out[0] = static_cast<uint8_t>(s & 0xFF);
  out[1] = static_cast<uint8_t>(s >> 8);
}
uint16_t ReadScale(const uint8_t* in) { return static_cast<uint16_t>(in[0] | (in[1] << 8)); }

// scale=none: element-wise conversion; the block is only the storage unit of whole bytes.
class PlainMinifloatFormat final : public BlockFormat {
 public:
  explicit PlainMinifloatFormat(const ExmyParams& p)
      : p_(p), elem_(p.codec(), p.overflow), block_(8 / std::gcd(p.bits(), 8)) {}

  std::string spec() const override { return p_.Spec(); }
  MacOperand mac_operand() const override {
    // A group scale (scale=<n>) is an fp16 multiply per group; a row scale is amortized away.
    return {.significand_bits = p_.m + 1, .exponent_bits = p_.e,
            .shared_block = p_.group > 0 ? p_.group : 0, .shared_multiply = p_.group > 0};
  }
  std::string_view family() const override { return "exmy"; }
  int64_t block_size() const override { return block_; }
  int64_t block_bytes() const override { return block_ * p_.bits() / 8; }

  void EncodeBlock(const float* x, uint8_t* out) const override {
    uint32_t codes[8];
    for (int64_t i = 0; i < block_; ++i) codes[i] = elem_.Encode(x[i]);
    PackCodes(codes, block_, p_.bits(), out);
  }
  void DecodeBlock(const uint8_t* in, float* out) const override {
    for (int64_t i = 0; i < block_; ++i) out[i] = elem_.Decode(UnpackCode(in, i, p_.bits()));
  }
  void BlockErrorBound(const float* x, float* bound) const override {
    for (int64_t i = 0; i < block_; ++i) bound[i] = elem_.ErrorBound(x[i], 1.0f);
  }

 private:
  ExmyParams p_;
  MinifloatElement elem_;
  int64_t block_;
};

// scale=<g>: [fp16 scale][g codes] per block.
class GroupScaledMinifloatFormat final : public BlockFormat {
 public:
  explicit GroupScaledMinifloatFormat(const ExmyParams& p) : p_(p), elem_(p.codec(), p.overflow) {}

  std::string spec() const override { return p_.Spec(); }
  MacOperand mac_operand() const override {
    // A group scale (scale=<n>) is an fp16 multiply per group; a row scale is amortized away.
    return {.significand_bits = p_.m + 1, .exponent_bits = p_.e,
            .shared_block = p_.group > 0 ? p_.group : 0, .shared_multiply = p_.group > 0};
  }
  std::string_view family() const override { return "exmy"; }
  int64_t block_size() const override { return p_.group; }
  int64_t block_bytes() const override { return 2 + (p_.group * p_.bits() + 7) / 8; }

  void EncodeBlock(const float* x, uint8_t* out) const override {
    std::vector<uint32_t> codes(static_cast<size_t>(p_.group));
    WriteScale(elem_.QuantizeScaled(x, p_.group, codes.data()), out);
    PackCodes(codes.data(), p_.group, p_.bits(), out + 2);
  }
  void DecodeBlock(const uint8_t* in, float* out) const override {
    const float s = HalfToFloat(ReadScale(in));
    for (int64_t i = 0; i < p_.group; ++i)
      out[i] = s * elem_.Decode(UnpackCode(in + 2, i, p_.bits()));
  }
  void BlockErrorBound(const float* x, float* bound) const override {
    elem_.ScaledErrorBound(x, p_.group, bound);
  }

 private:
  ExmyParams p_;
  MinifloatElement elem_;
};

// scale=row: [fp16 scale][cols codes] per row.
class RowScaledMinifloatFormat final : public Format {
 public:
  explicit RowScaledMinifloatFormat(const ExmyParams& p) : p_(p), elem_(p.codec(), p.overflow) {}

  std::string spec() const override { return p_.Spec(); }
  MacOperand mac_operand() const override {
    // A group scale (scale=<n>) is an fp16 multiply per group; a row scale is amortized away.
    return {.significand_bits = p_.m + 1, .exponent_bits = p_.e,
            .shared_block = p_.group > 0 ? p_.group : 0, .shared_multiply = p_.group > 0};
  }
  std::string_view family() const override { return "exmy"; }
  int64_t block_size() const override { return 0; }
  int64_t block_bytes() const override { return 0; }
  int64_t RowBytes(int64_t cols) const override { return 2 + (cols * p_.bits() + 7) / 8; }

  Status Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const override {
    std::vector<uint32_t> codes(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* dst = out + r * RowBytes(cols);
      WriteScale(elem_.QuantizeScaled(x + r * cols, cols, codes.data()), dst);
      PackCodes(codes.data(), cols, p_.bits(), dst + 2);
    }
    return Status::Ok();
  }
  void DequantizeRows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t row_begin,
                      int64_t row_end, float* out) const override {
    (void)rows;
    for (int64_t r = row_begin; r < row_end; ++r) {
      const uint8_t* src = packed + r * RowBytes(cols);
      const float s = HalfToFloat(ReadScale(src));
      float* dst = out + (r - row_begin) * cols;
      for (int64_t c = 0; c < cols; ++c)
        dst[c] = s * elem_.Decode(UnpackCode(src + 2, c, p_.bits()));
    }
  }
  void ErrorBound(const float* x, int64_t rows, int64_t cols, float* bound) const override {
    for (int64_t r = 0; r < rows; ++r) elem_.ScaledErrorBound(x + r * cols, cols, bound + r * cols);
  }

 private:
  ExmyParams p_;
  MinifloatElement elem_;
};

Result<FormatPtr> MakeExmy(SpecParams& params) {
  ExmyParams p;
  LOWBIT_ASSIGN_OR_RETURN(const int64_t e, params.GetInt("e", 4, 1, 5));
  LOWBIT_ASSIGN_OR_RETURN(const int64_t m, params.GetInt("m", 3, 0, 7));
  p.e = static_cast<int>(e);
  p.m = static_cast<int>(m);
  // The bias range keeps every value (and value * fp16 scale) a normal float32.
  LOWBIT_ASSIGN_OR_RETURN(const int64_t bias, params.GetInt("bias", (1 << (p.e - 1)) - 1, -64, 64));
  p.bias = static_cast<int>(bias);
  LOWBIT_ASSIGN_OR_RETURN(const std::string special,
                          params.GetEnum("special", "ieee", {"ieee", "onenan", "finite"}));
  const std::string scale = params.GetString("scale", "none");
  if (scale == "none") {
    p.group = -1;
  } else if (scale == "row") {
    p.group = 0;
  } else {
    int64_t g = 0;
    bool digits = !scale.empty() && scale.size() <= 6 && scale[0] != '0';
    for (char c : scale) digits = digits && c >= '0' && c <= '9';
    if (digits) g = std::stoll(scale);
    if (!digits || g < 1 || g > kMaxGroup) {
      return InvalidArgument("format 'exmy': scale='" + scale +
                             "' is not none, row or a group size in [1, " +
                             std::to_string(kMaxGroup) + "]");
    }
    p.group = g;
  }
  // Plain conversion defaults to IEEE/ml_dtypes overflow; scaled formats to saturation.
  LOWBIT_ASSIGN_OR_RETURN(
      const std::string overflow,
      params.GetEnum("overflow", p.group < 0 ? "ieee" : "sat", {"sat", "ieee"}));
  p.overflow = overflow == "sat" ? Overflow::kSaturate : Overflow::kIeee;
  if (p.group >= 0 && p.overflow == Overflow::kIeee) {
    // A scaled element only overflows for +-Inf or |x| > 65504 * max_finite; turning those into
    // NaN would also break quantize(dequantize(q)) == q, so scaled formats always saturate.
    return InvalidArgument(
        "format 'exmy': overflow=ieee needs scale=none (scaled formats "
        "saturate: use overflow=sat)");
  }
  if (special == "ieee") {
    p.specials = Specials::kIeee;
    if (p.e < 2 || p.m < 1) {
      return InvalidArgument(
          "format 'exmy': special=ieee needs e >= 2 and m >= 1 (E all ones is "
          "Inf/NaN, NaN needs a non-zero mantissa); got e=" +
          std::to_string(p.e) + ",m=" + std::to_string(p.m) +
          " (try special=finite or special=onenan)");
    }
  } else if (special == "onenan") {
    p.specials = Specials::kOneNan;
    if (p.e + p.m < 2) {
      return InvalidArgument(
          "format 'exmy': special=onenan needs e + m >= 2 (the all-ones NaN "
          "code must leave a positive finite value); got e=" +
          std::to_string(p.e) + ",m=" + std::to_string(p.m));
    }
  } else {
    p.specials = Specials::kFinite;
  }
  if (p.group < 0) return FormatPtr(std::make_shared<PlainMinifloatFormat>(p));
  if (p.group == 0) return FormatPtr(std::make_shared<RowScaledMinifloatFormat>(p));
  return FormatPtr(std::make_shared<GroupScaledMinifloatFormat>(p));
}

}  // namespace

void RegisterMinifloatFamily(FormatRegistry& registry) {
  registry.AddFamily({"exmy", "ExMy minifloat (fp8/fp6/fp4), optional fp16 scale per row or group",
                      "e=1..5, m=0..7, bias=<-64..64> (default 2^(e-1)-1), "
                      "special=ieee|onenan|finite (default ieee), overflow=sat|ieee (default ieee "
                      "for scale=none; scaled formats need sat), scale=none|row|<g> (default none)",
                      "docs/formats/minifloat.md", MakeExmy});
  const struct {
    const char* name;
    const char* spec;
    const char* description;
  } kPresets[] = {
      {"fp8_e4m3", "exmy:e=4,m=3,bias=7,special=onenan,overflow=ieee,scale=none",
       "OCP FP8 E4M3 (ml_dtypes float8_e4m3fn): max 448, no Inf, overflow -> NaN"},
      {"fp8_e5m2", "exmy:e=5,m=2,bias=15,special=ieee,overflow=ieee,scale=none",
       "OCP FP8 E5M2 (ml_dtypes float8_e5m2): IEEE-style, max 57344, overflow -> Inf"},
      {"fp6_e3m2", "exmy:e=3,m=2,bias=3,special=finite,overflow=ieee,scale=none",
       "OCP MX FP6 E3M2 element (ml_dtypes float6_e3m2fn): max 28, saturating"},
      {"fp6_e2m3", "exmy:e=2,m=3,bias=1,special=finite,overflow=ieee,scale=none",
       "OCP MX FP6 E2M3 element (ml_dtypes float6_e2m3fn): max 7.5, saturating"},
      {"fp4_e2m1", "exmy:e=2,m=1,bias=1,special=finite,overflow=ieee,scale=none",
       "OCP MX FP4 E2M1 element (ml_dtypes float4_e2m1fn): {0,0.5,1,1.5,2,3,4,6}"},
      {"fp8_e4m3_row", "exmy:e=4,m=3,bias=7,special=onenan,overflow=sat,scale=row",
       "FP8 E4M3 weights with one fp16 scale per row (absmax -> 448)"},
      {"fp8_e4m3_g32", "exmy:e=4,m=3,bias=7,special=onenan,overflow=sat,scale=32",
       "FP8 E4M3 weights with an fp16 scale per 32 (8.5 bits/weight)"},
      {"fp8_e5m2_row", "exmy:e=5,m=2,bias=15,special=ieee,overflow=sat,scale=row",
       "FP8 E5M2 weights with one fp16 scale per row"},
      {"fp6_e3m2_g32", "exmy:e=3,m=2,bias=3,special=finite,overflow=sat,scale=32",
       "FP6 E3M2 weights with an fp16 scale per 32 (6.5 bits/weight)"},
      {"fp6_e2m3_g32", "exmy:e=2,m=3,bias=1,special=finite,overflow=sat,scale=32",
       "FP6 E2M3 weights with an fp16 scale per 32 (6.5 bits/weight)"},
      {"fp4_e2m1_g32", "exmy:e=2,m=1,bias=1,special=finite,overflow=sat,scale=32",
       "FP4 E2M1 weights with an fp16 scale per 32 (4.5 bits/weight)"},
      {"fp4_e2m1_g16", "exmy:e=2,m=1,bias=1,special=finite,overflow=sat,scale=16",
       "FP4 E2M1 weights with an fp16 scale per 16 (5 bits/weight)"},
      {"fp5_e2m2_g32", "exmy:e=2,m=2,bias=1,special=finite,overflow=sat,scale=32",
       "FP5 E2M2 weights with an fp16 scale per 32 (5.5 bits/weight)"},
      {"fp3_e1m1_g32", "exmy:e=1,m=1,bias=0,special=finite,overflow=sat,scale=32",
       "FP3 E1M1 weights with an fp16 scale per 32 (3.5 bits/weight)"},
  };
  for (const auto& p : kPresets) registry.AddPreset({p.name, p.spec, p.description});
}

}  // namespace lowbit
