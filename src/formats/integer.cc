// Integer (uniform) quantization, family "int": the reference codec. The definition (values,
// bit layout, rounding, special values, tails) is the doc block of integer.h and
// docs/formats/integer.md; comments here explain why each step keeps it exact and idempotent.
#include "formats/error_bound_math.h"
#include "formats/integer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "formats/block_format.h"
#include "formats/families.h"
#include "formats/minifloat_codec.h"

namespace lowbit {
namespace {

constexpr double kHalfMax = 65504.0;
constexpr int64_t kMaxGroup = 65536;

// The fp16 value nearest to a finite double (ties to even), saturating at +-65504; -0 -> +0 so
// that equal fields always have equal bytes.
double RoundToHalf(double v) {
  const double mag = std::min(
      kFp16Codec.RoundMagnitude(std::fabs(v), MinifloatCodec::Rounding::kNearestEven), kHalfMax);
  if (mag == 0.0) return 0.0;
  return v < 0 ? -mag : mag;
}

// Binary16 bits of a value that is already an fp16 number (from RoundToHalf).
uint16_t HalfBitsOf(double v) {
  const uint16_t sign = v < 0 ? 0x8000 : 0;
  return static_cast<uint16_t>(sign | kFp16Codec.EncodeGridMagnitude(std::fabs(v)));
}

// Gap between an fp16 value v >= 0 and the next larger one.
double HalfStepAbove(double v) {
  if (v < 0x1p-14) return 0x1p-24;  // subnormal spacing
  int e = 0;
  std::frexp(v, &e);  // v in [2^(e-1), 2^e)
  return std::ldexp(1.0, e - 1 - 10);
}

// The nearest integer k in [0, max_code] to (x - m) / d in exact arithmetic, ties to the larger k;
// x finite, d > 0. Every threshold m + k*d and m + (k + 1/2)*d is exact in double (m and d are
// fp16 numbers, k <= 255: < 2^25 in magnitude with a granularity >= 2^-25), so the comparisons
// decide exactly even where the double quotient is inexact.
int NearestCode(double x, double m, double d, int max_code) {
  const double t = (x - m) / d;
  int k = 0;
  if (t >= max_code) {
    k = max_code;
  } else if (t > 0) {
    k = static_cast<int>(t);  // 0 <= t < 256: a safe conversion
  }
  while (k > 0 && x < m + k * d) --k;
  while (k < max_code && x >= m + (k + 1) * d) ++k;
  if (k < max_code && x >= m + (k + 0.5) * d) ++k;
  return k;
}

// Fields of one group (block, row or tensor) as the encoder chose them.
struct IntFields {
  float d = 0.0f;     // step, an fp16 value >= 0
  float m = 0.0f;     // asym offset (fp16 value); 0 for sym
  float amax = 0.0f;  // sym: largest finite |x|
  float lo = 0.0f;    // asym: smallest / largest finite x
  float hi = 0.0f;
  float top = 0.0f;  // asym: decoded value of code U (float(m + d*U)); sym: d*Q
  int zero_cap = 0;  // asym with hi == 0: largest canonical code whose value is < 0
};

class IntCodec {
 public:
  IntCodec(int bits, bool asym)
      : bits_(bits), asym_(asym), max_code_(asym ? (1 << bits) - 1 : (1 << (bits - 1)) - 1) {}

  int bits() const { return bits_; }
  bool asym() const { return asym_; }
  int64_t field_bytes() const { return asym_ ? 4 : 2; }
  int64_t CodeBytes(int64_t n) const { return (n * bits_ + 7) / 8; }

  IntFields ChooseFields(const float* x, int64_t n) const {
    IntFields f;
    bool any = false;
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      if (!std::isfinite(v)) continue;
      if (!any) {
        f.lo = f.hi = v;
        any = true;
      } else {
        f.lo = std::min(f.lo, v);
        f.hi = std::max(f.hi, v);
      }
      f.amax = std::max(f.amax, std::fabs(v));
    }
    if (!asym_) {
      f.d = static_cast<float>(RoundToHalf(static_cast<double>(f.amax) / max_code_));
      f.top = f.d * static_cast<float>(max_code_);
      return f;
    }
    f.m = static_cast<float>(RoundToHalf(f.lo));
    f.d = f.lo < f.hi ? static_cast<float>(AsymStep(f.hi, f.m)) : 0.0f;
    f.top = DecodeAsym(f.d, f.m, max_code_);
    if (f.d > 0 && f.hi == 0.0f) {
      // d > 0 with hi == 0 implies m < 0 (m == 0 would give d == 0), so code 0 qualifies.
      int z = max_code_;
      while (z > 0 && DecodeAsym(f.d, f.m, z) >= 0.0f) --z;
      f.zero_cap = Canonical(DecodeAsym(f.d, f.m, z), f);
    }
    return f;
  }

  void WriteFields(const IntFields& f, uint8_t* out) const {
    PutHalf(HalfBitsOf(f.d), out);
    if (asym_) PutHalf(HalfBitsOf(f.m), out + 2);
  }

  // Only d and m matter for decoding.
  IntFields ReadFields(const uint8_t* in) const {
    IntFields f;
    f.d = HalfToFloat(static_cast<uint16_t>(in[0] | (in[1] << 8)));
    if (asym_) f.m = HalfToFloat(static_cast<uint16_t>(in[2] | (in[3] << 8)));
    return f;
  }

  // Codes of x[0..n) into a code area of CodeBytes(n) bytes.
  void EncodeCodes(const float* x, int64_t n, const IntFields& f, uint8_t* codes) const {
    std::memset(codes, 0, static_cast<size_t>(CodeBytes(n)));
    const uint32_t mask = (1u << bits_) - 1;
    for (int64_t i = 0; i < n; ++i) {
      const int code = asym_ ? EncodeAsym(x[i], f) : EncodeSym(x[i], f);
      PutCode(codes, i, static_cast<uint32_t>(code) & mask);
    }
  }

  void DecodeCodes(const uint8_t* codes, int64_t n, const IntFields& f, float* out) const {
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t raw = GetCode(codes, i);
      if (asym_) {
        out[i] = DecodeAsym(f.d, f.m, static_cast<int>(raw));
      } else {
        const int q = (raw & (1u << (bits_ - 1))) ? static_cast<int>(raw) - (1 << bits_)
                                                  : static_cast<int>(raw);
        out[i] = f.d * static_cast<float>(q);
      }
    }
  }

  // Per-element bound on |x - decode(encode(x))| from the group's fields (finite x; +Inf else).
  void Bounds(const float* x, int64_t n, const IntFields& f, float* bound) const {
    for (int64_t i = 0; i < n; ++i) bound[i] = RoundUpToFloat(Bound(x[i], f));
  }

 private:
  // Decoded value of an asym code, in float32 exactly as the decoder computes it (d * u is exact,
  // so a fused multiply-add gives the same result).
  static float DecodeAsym(float d, float m, int u) { return d * static_cast<float>(u) + m; }

  // fp16((top - m) / U) evaluated in double; 0 when top <= m.
  double StepFor(double top, double m) const {
    return top > m ? RoundToHalf((top - m) / max_code_) : 0.0;
  }

  // The asym step (see integer.h): d = fp16((hi - m) / U), moved to a fixed point of
  // d -> StepFor(float(m + d*U), m) so that the decoded group (whose maximum is float(m + d*U))
  // yields d again, and raised one fp16 step while hi >= 0 > top. Both maps are monotone in d;
  // the loop takes at most one extra round on everything the stress tests throw at it (64 is a
  // guard, not a limit that is ever reached).
  double AsymStep(float hi, float m) const {
    double d = StepFor(hi, m);
    for (int round = 0; round < 64; ++round) {
      const float top = DecodeAsym(static_cast<float>(d), m, max_code_);
      const double again = StepFor(top, m);
      if (again != d) {
        d = again;
        continue;
      }
      if (hi >= 0.0f && top < 0.0f) {
        d = std::min(d + HalfStepAbove(d), kHalfMax);
        continue;
      }
      break;
    }
    return d;
  }

  // The canonical code of y, a decoded value of this group: 0 for m, U for top, else the code
  // nearest to y. It decodes back to y: y = float(m + d*u) lies within half a float spacing of
  // m + d*u, and the grid point nearest y is no farther, so it rounds to y as well. Re-encoding a
  // decoded value therefore always lands on the same code.
  int Canonical(float y, const IntFields& f) const {
    if (y <= f.m) return 0;
    if (y >= f.top) return max_code_;
    return NearestCode(y, f.m, f.d, max_code_);
  }

  int EncodeSym(float x, const IntFields& f) const {
    if (f.d == 0.0f || std::isnan(x)) return 0;
    const float a = std::fabs(x);
    const int q = (std::isinf(x) || a == f.amax) ? max_code_ : NearestCode(a, 0.0, f.d, max_code_);
    return std::signbit(x) ? -q : q;
  }

  int EncodeAsym(float x, const IntFields& f) const {
    if (f.d == 0.0f) return 0;
    if (std::isnan(x)) {
      x = std::clamp(0.0f, f.lo, f.hi);
    } else if (std::isinf(x)) {
      x = x > 0 ? f.hi : f.lo;
    }
    if (x == f.lo) return 0;
    if (x == f.hi) return max_code_;
    const int c = Canonical(DecodeAsym(f.d, f.m, NearestCode(x, f.m, f.d, max_code_)), f);
    // hi == 0 may be zero padding, which re-quantizes as an exact 0 again: no other element may
    // decode to a value >= 0, or it would become (or tie with) the group's maximum next time.
    if (f.hi == 0.0f && DecodeAsym(f.d, f.m, c) >= 0.0f) return f.zero_cap;
    return c;
  }

  double Bound(float xf, const IntFields& f) const {
    if (!std::isfinite(xf)) return INFINITY;
    const double x = xf, d = f.d;
    if (!asym_) {
      const double a = std::fabs(x), top = d * max_code_;
      // The largest magnitude is set to +-Q (decoding is exact): off by |A - Q*d|, which is at
      // most Q * (fp16 spacing at d) / 2, or the clipped part when d saturated.
      if (d > 0 && xf != 0.0f && std::fabs(xf) == f.amax) return std::fabs(a - top);
      // Nearest rounding on the grid d*[-Q, Q], plus clipping beyond Q*d.
      return d / 2 + std::max(0.0, a - top);
    }
    const double m = f.m, top = m + d * max_code_;
    // Decoding rounds m + d*u to float: at most half a float spacing at the group's largest value.
    const double slack = 0.5 * FloatSpacing(std::max(std::fabs(m), std::fabs(top)));
    if (d > 0 && xf == f.lo) return std::fabs(x - m);            // code 0 decodes to exactly m
    if (d > 0 && xf == f.hi) return std::fabs(x - top) + slack;  // code U decodes to float(top)
    double b = d / 2 + std::max({0.0, m - x, x - top}) + slack;
    if (d > 0 && f.hi == 0.0f) {
      // Elements are capped at the largest grid value below 0, which lies within a step of 0.
      const double cap = static_cast<double>(DecodeAsym(f.d, f.m, f.zero_cap));
      b = std::max(b, std::fabs(x - cap) + slack);
    }
    return b;
  }

  static void PutHalf(uint16_t h, uint8_t* out) {
    out[0] = static_cast<uint8_t>(h & 0xFF);
    out[1] = static_cast<uint8_t>(h >> 8);
  }

  // Element i occupies stream bits [i*B, (i+1)*B); B <= 8 so it touches at most two bytes.
  void PutCode(uint8_t* codes, int64_t i, uint32_t code) const {
    const int64_t bit = i * bits_;
    const int64_t byte = bit / 8;
    const int shift = static_cast<int>(bit % 8);
    codes[byte] = static_cast<uint8_t>(codes[byte] | ((code << shift) & 0xFF));
    if (shift + bits_ > 8)
      codes[byte + 1] = static_cast<uint8_t>(codes[byte + 1] | (code >> (8 - shift)));
  }

  uint32_t GetCode(const uint8_t* codes, int64_t i) const {
    const int64_t bit = i * bits_;
    const int64_t byte = bit / 8;
    const int shift = static_cast<int>(bit % 8);
    uint32_t v = static_cast<uint32_t>(codes[byte]) >> shift;
    if (shift + bits_ > 8) v |= static_cast<uint32_t>(codes[byte + 1]) << (8 - shift);
    return v & ((1u << bits_) - 1);
  }

  int bits_;
  bool asym_;
  int max_code_;  // Q (sym) or U (asym)
};

std::string IntSpec(const IntCodec& codec, const std::string& group) {
  return "int:bits=" + std::to_string(codec.bits()) + ",mode=" + (codec.asym() ? "asym" : "sym") +
         ",group=" + group;
}

// group=<g>: blocks of g elements along a row.
class IntGroupFormat final : public BlockFormat {
 public:
  IntGroupFormat(IntCodec codec, int64_t group) : codec_(codec), group_(group) {}

  std::string spec() const override { return IntSpec(codec_, std::to_string(group_)); }
  // Symmetric codes carry bits - 1 magnitude bits; asymmetric ones are unsigned, and the group's
  // fp16 scale (and zero point) is one real multiply per group.
  MacOperand mac_operand() const override {
    return {.significand_bits = codec_.asym() ? codec_.bits() : codec_.bits() - 1,
            .exponent_bits = 0, .shared_block = group_, .shared_multiply = true};
  }
  std::string_view family() const override { return "int"; }
  int64_t block_size() const override { return group_; }
  int64_t block_bytes() const override { return codec_.field_bytes() + codec_.CodeBytes(group_); }

  void EncodeBlock(const float* x, uint8_t* out) const override {
    const IntFields f = codec_.ChooseFields(x, group_);
    codec_.WriteFields(f, out);
    codec_.EncodeCodes(x, group_, f, out + codec_.field_bytes());
  }
  void DecodeBlock(const uint8_t* in, float* out) const override {
    codec_.DecodeCodes(in + codec_.field_bytes(), group_, codec_.ReadFields(in), out);
  }
  void BlockErrorBound(const float* x, float* bound) const override {
    codec_.Bounds(x, group_, codec_.ChooseFields(x, group_), bound);
  }

 private:
  IntCodec codec_;
  int64_t group_;
};

// group=row: one set of fields per row, stored at the start of the row.
class IntRowFormat final : public Format {
 public:
  explicit IntRowFormat(IntCodec codec) : codec_(codec) {}

  std::string spec() const override { return IntSpec(codec_, "row"); }
  MacOperand mac_operand() const override {
    return {.significand_bits = codec_.asym() ? codec_.bits() : codec_.bits() - 1,
            .exponent_bits = 0};
  }
  std::string_view family() const override { return "int"; }
  int64_t block_size() const override { return 0; }
  int64_t block_bytes() const override { return 0; }
  int64_t RowBytes(int64_t cols) const override {
    return codec_.field_bytes() + codec_.CodeBytes(cols);
  }

  Status Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * cols;
      uint8_t* dst = out + r * RowBytes(cols);
      const IntFields f = codec_.ChooseFields(row, cols);
      codec_.WriteFields(f, dst);
      codec_.EncodeCodes(row, cols, f, dst + codec_.field_bytes());
    }
    return Status::Ok();
  }

  void DequantizeRows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t row_begin,
                      int64_t row_end, float* out) const override {
    (void)rows;
    for (int64_t r = row_begin; r < row_end; ++r) {
      const uint8_t* src = packed + r * RowBytes(cols);
      codec_.DecodeCodes(src + codec_.field_bytes(), cols, codec_.ReadFields(src),
                         out + (r - row_begin) * cols);
    }
  }

  void ErrorBound(const float* x, int64_t rows, int64_t cols, float* bound) const override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * cols;
      codec_.Bounds(row, cols, codec_.ChooseFields(row, cols), bound + r * cols);
    }
  }

 private:
  IntCodec codec_;
};

// group=tensor: one set of fields for the whole tensor, in the header.
class IntTensorFormat final : public Format {
 public:
  explicit IntTensorFormat(IntCodec codec) : codec_(codec) {}

  std::string spec() const override { return IntSpec(codec_, "tensor"); }
  MacOperand mac_operand() const override {
    return {.significand_bits = codec_.asym() ? codec_.bits() : codec_.bits() - 1,
            .exponent_bits = 0};
  }
  std::string_view family() const override { return "int"; }
  int64_t block_size() const override { return -1; }
  int64_t block_bytes() const override { return 0; }
  int64_t HeaderBytes(int64_t rows, int64_t cols) const override {
    (void)rows;
    (void)cols;
    return codec_.field_bytes();
  }
  int64_t RowBytes(int64_t cols) const override { return codec_.CodeBytes(cols); }

  Status Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const override {
    const IntFields f = codec_.ChooseFields(x, rows * cols);
    codec_.WriteFields(f, out);
    uint8_t* body = out + codec_.field_bytes();
    for (int64_t r = 0; r < rows; ++r) {
      codec_.EncodeCodes(x + r * cols, cols, f, body + r * RowBytes(cols));
    }
    return Status::Ok();
  }

  void DequantizeRows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t row_begin,
                      int64_t row_end, float* out) const override {
    (void)rows;
    const IntFields f = codec_.ReadFields(packed);
    const uint8_t* body = packed + codec_.field_bytes();
    for (int64_t r = row_begin; r < row_end; ++r) {
      codec_.DecodeCodes(body + r * RowBytes(cols), cols, f, out + (r - row_begin) * cols);
    }
  }

  void ErrorBound(const float* x, int64_t rows, int64_t cols, float* bound) const override {
    codec_.Bounds(x, rows * cols, codec_.ChooseFields(x, rows * cols), bound);
  }

 private:
  IntCodec codec_;
};

// "tensor" | "row" | a positive integer.
Result<int64_t> ParseGroup(const std::string& text) {
  if (text == "tensor") return kIntGroupTensor;
  if (text == "row") return kIntGroupRow;
  int64_t g = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), g);
  if (ec != std::errc() || end != text.data() + text.size() || g < 1 || g > kMaxGroup) {
    return InvalidArgument("format 'int': group='" + text +
                           "' is not tensor, row or an integer in [1, " +
                           std::to_string(kMaxGroup) + "]");
  }
  return g;
}

Result<FormatPtr> MakeIntFromSpec(SpecParams& params) {
  LOWBIT_ASSIGN_OR_RETURN(const int64_t bits, params.GetInt("bits", 4, 2, 8));
  LOWBIT_ASSIGN_OR_RETURN(const std::string mode, params.GetEnum("mode", "sym", {"sym", "asym"}));
  LOWBIT_ASSIGN_OR_RETURN(const int64_t group, ParseGroup(params.GetString("group", "128")));
  IntOptions options;
  options.bits = static_cast<int>(bits);
  options.asym = mode == "asym";
  options.group = group;
  return MakeIntFormat(options);
}

}  // namespace

Result<FormatPtr> MakeIntFormat(const IntOptions& options) {
  if (options.bits < 2 || options.bits > 8) {
    return InvalidArgument("format 'int': bits=" + std::to_string(options.bits) +
                           " is out of range [2, 8]");
  }
  if (options.group < kIntGroupTensor || options.group > kMaxGroup) {
    return InvalidArgument("format 'int': group=" + std::to_string(options.group) +
                           " is not tensor, row or an integer in [1, " + std::to_string(kMaxGroup) +
                           "]");
  }
  const IntCodec codec(options.bits, options.asym);
  if (options.group == kIntGroupTensor) return FormatPtr(std::make_shared<IntTensorFormat>(codec));
  if (options.group == kIntGroupRow) return FormatPtr(std::make_shared<IntRowFormat>(codec));
  return FormatPtr(std::make_shared<IntGroupFormat>(codec, options.group));
}

void RegisterIntegerFamily(FormatRegistry& registry) {
  registry.AddFamily({"int", "Integer (uniform) quantization, fp16 scale (and offset)",
                      "bits=2..8, mode=sym|asym, group=tensor|row|<1..65536>",
                      "docs/formats/integer.md", MakeIntFromSpec});
  const PresetInfo presets[] = {
      {"int8", "int:bits=8,mode=sym,group=row", "8-bit symmetric, one fp16 scale per row"},
      {"int8_tensor", "int:bits=8,mode=sym,group=tensor",
       "8-bit symmetric, one fp16 scale for the whole tensor"},
      {"int8_g32", "int:bits=8,mode=sym,group=32", "8-bit symmetric, fp16 scale per 32 (8.5 b/w)"},
      {"int4_row", "int:bits=4,mode=sym,group=row", "4-bit symmetric, one fp16 scale per row"},
      {"int4_g128", "int:bits=4,mode=sym,group=128",
       "4-bit symmetric, fp16 scale per 128 (4.125 b/w)"},
      {"int4_g128_asym", "int:bits=4,mode=asym,group=128",
       "4-bit asymmetric, fp16 scale + min per 128 (4.25 b/w)"},
      {"int4_g32", "int:bits=4,mode=sym,group=32", "4-bit symmetric, fp16 scale per 32 (4.5 b/w)"},
      {"int4_g32_asym", "int:bits=4,mode=asym,group=32",
       "4-bit asymmetric, fp16 scale + min per 32 (5 b/w)"},
      {"int3_g128_asym", "int:bits=3,mode=asym,group=128",
       "3-bit asymmetric, fp16 scale + min per 128 (3.25 b/w)"},
      {"int2_g64_asym", "int:bits=2,mode=asym,group=64",
       "2-bit asymmetric, fp16 scale + min per 64 (2.5 b/w)"},
      // The sweep grid's integer family: fp16 scale per 32 at every width.
      {"int6_g32", "int:bits=6,mode=sym,group=32", "6-bit symmetric, fp16 scale per 32 (6.5 b/w)"},
      {"int5_g32", "int:bits=5,mode=sym,group=32", "5-bit symmetric, fp16 scale per 32 (5.5 b/w)"},
      {"int3_g32_asym", "int:bits=3,mode=asym,group=32",
       "3-bit asymmetric, fp16 scale + min per 32 (4 b/w)"},
      {"int2_g32_asym", "int:bits=2,mode=asym,group=32",
       "2-bit asymmetric, fp16 scale + min per 32 (3 b/w)"},
  };
  for (const PresetInfo& p : presets) registry.AddPreset(p);
}

}  // namespace lowbit
