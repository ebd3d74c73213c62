// The "float" family: plain IEEE 754 storage types, so that every tensor of a model file (GGUF F32,
// F16, BF16; safetensors F32/F16/BF16) goes through the format registry like a quantized one.
//
// Types (spec "float:type=T"; presets f32, f16, bf16; GGUF type ids from ggml.h's enum ggml_type):
//   f32  binary32: 1 sign, 8 exponent (bias 127), 23 mantissa bits  4 bytes  GGUF type 0
//   f16  binary16: 1 sign, 5 exponent (bias 15),  10 mantissa bits  2 bytes  GGUF type 1
//   bf16 bfloat16: 1 sign, 8 exponent (bias 127),  7 mantissa bits  2 bytes  GGUF type 30
// Storage: element-wise, little-endian, no header, no blocks (block_size 1), so bits per weight are
// exactly 32, 16, 16 and there is no tail padding.
// Range: f16 max finite 65504, min normal 2^-14, min subnormal 2^-24; bf16 max finite
//   (2 - 2^-7) * 2^127, min normal 2^-126, min subnormal 2^-133.
// Rounding (f16, bf16): IEEE roundTiesToEven on the value (MinifloatCodec, which is the spec);
//   subnormals are kept (gradual underflow); a result that rounds to zero keeps the input's sign.
// Special values: +-0 and +-Inf are preserved; NaN stays NaN (canonical quiet NaN with the input's
//   sign on encode); overflow follows IEEE: a finite |x| that rounds above the max finite value
//   becomes +-Inf (f16: |x| >= 65520, the midpoint between 65504 and 2^16; bf16:
//   |x| >= (2 - 2^-8) * 2^127). Decoding maps every code to its exact value (NaN codes to NaN).
// f32 is a byte copy: every value, NaN payloads included, is preserved bit for bit.
// Error bound: 0 for f32; half a unit in the last place of x's binade for f16/bf16 (the subnormal
//   step below the normal range), +Inf where x overflows to Inf.
// Sources: IEEE 754-2019 (binary16, binary32, roundTiesToEven); bfloat16 as in Google's TPU docs
// and
//   ml_dtypes; GGUF type ids from ggml's ggml.h (GGML_TYPE_F32 = 0, F16 = 1, BF16 = 30).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "formats/families.h"
#include "formats/minifloat_codec.h"

namespace lowbit {
namespace {

enum class FloatType { kF32, kF16, kBf16 };

struct FloatTypeInfo {
  FloatType type;
  const char* name;
  int bytes;
  int gguf_type;
  const MinifloatCodec* codec;  // nullptr for f32 (a byte copy)
  // Smallest finite magnitude that rounds (to nearest even) past the max finite value: the
  // midpoint between max finite and 2^(emax + 1).
  float overflow_threshold;
};

const FloatTypeInfo& InfoFor(FloatType type) {
  static const FloatTypeInfo kInfos[] = {
      {FloatType::kF32, "f32", 4, 0, nullptr, std::numeric_limits<float>::infinity()},
      // 65504 = (2 - 2^-10) * 2^15; midpoint to 2^16 is (2 - 2^-11) * 2^15 = 65520.
      {FloatType::kF16, "f16", 2, 1, &kFp16Codec, 65520.0f},
      // (2 - 2^-8) * 2^127: the midpoint between bf16's max finite and 2^128.
      {FloatType::kBf16, "bf16", 2, 30, &kBf16Codec, std::ldexp(2.0f - std::ldexp(1.0f, -8), 127)},
  };
  for (const auto& info : kInfos) {
    if (info.type == type) return info;
  }
  LOWBIT_CHECK(false);
  return kInfos[0];
}

// Exact binary16 -> binary32 by bit manipulation (every f16 value is a float). Equal to
// kFp16Codec.Decode for every code (checked exhaustively in float_format_test.cc), but keeps
// NaN sign and payload and needs no libm.
inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  uint32_t bits;
  if (e == 0) {
    // Zero or subnormal: m * 2^-24, exact in float.
    float mag = static_cast<float>(m) * 0x1p-24f;
    std::memcpy(&bits, &mag, 4);
    bits |= sign;
  } else if (e == 0x1f) {
    bits = sign | 0x7f800000u | (m << 13);  // Inf (m == 0) or NaN
  } else {
    bits = sign | ((e + 127 - 15) << 23) | (m << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// bfloat16 is the top half of a binary32: decoding is a shift (exact, NaN payload kept).
inline float Bf16BitsToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

class FloatFormat final : public Format {
 public:
  explicit FloatFormat(FloatType type) : info_(InfoFor(type)) {}

  std::string spec() const override { return std::string("float:type=") + info_.name; }
  std::string_view family() const override { return "float"; }
  int64_t block_size() const override { return 1; }
  int64_t block_bytes() const override { return info_.bytes; }
  int64_t RowBytes(int64_t cols) const override { return cols * info_.bytes; }
  ToleranceClass tolerance() const override { return ToleranceClass::kExact; }
  std::optional<int> gguf_type() const override { return info_.gguf_type; }
  MacOperand mac_operand() const override {
    if (info_.codec == nullptr) return {.significand_bits = 24, .exponent_bits = 8};
    return {.significand_bits = info_.codec->man_bits() + 1,
            .exponent_bits = info_.codec->exp_bits()};
  }

  Status Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const override {
    const int64_t n = rows * cols;
    if (info_.codec == nullptr) {
      std::memcpy(out, x, static_cast<size_t>(n) * 4);
      return Status::Ok();
    }
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t code = static_cast<uint16_t>(info_.codec->Encode(x[i]));
      out[2 * i] = static_cast<uint8_t>(code & 0xff);
      out[2 * i + 1] = static_cast<uint8_t>(code >> 8);
    }
    return Status::Ok();
  }

  void DequantizeRows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t row_begin,
                      int64_t row_end, float* out) const override {
    (void)rows;
    const int64_t n = (row_end - row_begin) * cols;
    const uint8_t* src = packed + row_begin * RowBytes(cols);
    switch (info_.type) {
      case FloatType::kF32:
        std::memcpy(out, src, static_cast<size_t>(n) * 4);
        return;
      case FloatType::kF16:
        for (int64_t i = 0; i < n; ++i) {
          out[i] = HalfBitsToFloat(static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8)));
        }
        return;
      case FloatType::kBf16:
        for (int64_t i = 0; i < n; ++i) {
          out[i] = Bf16BitsToFloat(static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8)));
        }
        return;
    }
  }

  void ErrorBound(const float* x, int64_t rows, int64_t cols, float* bound) const override {
    const int64_t n = rows * cols;
    if (info_.codec == nullptr) {
      for (int64_t i = 0; i < n; ++i) bound[i] = 0.0f;
      return;
    }
    const int man_bits = info_.codec->man_bits();
    const int emin = 1 - info_.codec->bias();
    for (int64_t i = 0; i < n; ++i) {
      const float a = std::fabs(x[i]);
      if (!std::isfinite(a)) {
        bound[i] = 0.0f;  // +-Inf is stored exactly; NaN has no meaningful error
      } else if (a >= info_.overflow_threshold) {
        bound[i] = std::numeric_limits<float>::infinity();  // IEEE overflow to Inf
      } else {
        // Grid step in x's binade is 2^(e - man_bits), e = max(floor(log2 a), emin); RNE errs by
        // at most half of it (also when rounding up into the next binade).
        int exp2 = 0;
        std::frexp(a, &exp2);  // a = f * 2^exp2, f in [0.5, 1): floor(log2 a) = exp2 - 1
        const int e = a == 0.0f ? emin : std::max(exp2 - 1, emin);
        bound[i] = std::ldexp(1.0f, e - man_bits - 1);
      }
    }
  }

 private:
  const FloatTypeInfo& info_;
};

Result<FormatPtr> MakeFloat(SpecParams& params) {
  LOWBIT_ASSIGN_OR_RETURN(std::string type, params.GetEnum("type", "f32", {"f32", "f16", "bf16"}));
  FloatType t = FloatType::kF32;
  if (type == "f16") t = FloatType::kF16;
  if (type == "bf16") t = FloatType::kBf16;
  return FormatPtr(std::make_shared<FloatFormat>(t));
}

}  // namespace

void RegisterFloatFamily(FormatRegistry& registry) {
  registry.AddFamily({"float", "IEEE floating point storage (f32, f16, bf16)", "type=f32|f16|bf16",
                      "docs/formats/float.md", MakeFloat});
  registry.AddPreset({"f32", "float:type=f32", "IEEE binary32, unquantized (GGUF F32)"});
  registry.AddPreset({"f16", "float:type=f16", "IEEE binary16, round to nearest even (GGUF F16)"});
  registry.AddPreset({"bf16", "float:type=bf16", "bfloat16, round to nearest even (GGUF BF16)"});
}

}  // namespace lowbit
