// The float family (f32, f16, bf16): exact bit layouts, round-to-nearest-even at the tie points,
// overflow, subnormals, NaN/Inf, and the error bound. Expected codes are derived by hand in the
// comments from the IEEE 754 / bfloat16 definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "formats/minifloat_codec.h"
#include "lowbit/format_registry.h"

namespace lowbit {
namespace {

FormatPtr Must(const std::string& spec) {
  auto f = ParseFormat(spec);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f.ok() ? *f : nullptr;
}

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint32_t ToBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

// Encodes one value and returns the 16-bit code read back little-endian.
uint16_t Encode16(const Format& f, float x) {
  uint8_t out[2] = {0xaa, 0xaa};
  EXPECT_TRUE(f.Quantize(&x, 1, 1, out).ok());
  return static_cast<uint16_t>(out[0] | (out[1] << 8));
}

float Decode16(const Format& f, uint16_t code) {
  const uint8_t in[2] = {static_cast<uint8_t>(code & 0xff), static_cast<uint8_t>(code >> 8)};
  float out = 0;
  f.Dequantize(in, 1, 1, &out);
  return out;
}

TEST(FloatFormat, PresetsSpecsAndSizes) {
  struct Case {
    const char* preset;
    const char* spec;
    int bytes;
    int gguf_type;
  };
  for (const Case& c : {Case{"f32", "float:type=f32", 4, 0}, Case{"f16", "float:type=f16", 2, 1},
                        Case{"bf16", "float:type=bf16", 2, 30}}) {
    FormatPtr f = Must(c.preset);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->spec(), c.spec);
    EXPECT_EQ(f->family(), "float");
    EXPECT_EQ(f->block_size(), 1);
    EXPECT_EQ(f->block_bytes(), c.bytes);
    EXPECT_EQ(f->PackedBytes(3, 7), 21 * c.bytes);
    EXPECT_DOUBLE_EQ(f->NominalBitsPerWeight(), 8.0 * c.bytes);
    ASSERT_TRUE(f->gguf_type().has_value());
    EXPECT_EQ(*f->gguf_type(), c.gguf_type);
  }
  // The family default is f32.
  FormatPtr def = Must("float");
  ASSERT_NE(def, nullptr);
  EXPECT_EQ(def->spec(), "float:type=f32");
}

TEST(FloatFormat, RejectsUnknownType) {
  auto f = ParseFormat("float:type=f8");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("type"), std::string::npos) << f.status().message();
  EXPECT_FALSE(ParseFormat("float:type=f16,bits=3").ok());
}

TEST(FloatFormat, F32IsAByteCopyIncludingNanPayloads) {
  FormatPtr f = Must("f32");
  // A signalling NaN with payload 1, a negative quiet NaN with a payload, -0, Inf, a subnormal.
  const std::vector<uint32_t> bits = {0x7f800001u, 0xffc12345u, 0x80000000u, 0x7f800000u,
                                      0x00000001u, 0x3f800000u, 0xc0490fdbu};
  std::vector<float> x;
  for (uint32_t b : bits) x.push_back(FromBits(b));
  std::vector<uint8_t> packed(f->PackedBytes(1, x.size()));
  ASSERT_TRUE(f->Quantize(x.data(), 1, x.size(), packed.data()).ok());
  ASSERT_EQ(packed.size(), 4 * bits.size());
  EXPECT_EQ(0, std::memcmp(packed.data(), bits.data(), packed.size()));  // little-endian host
  std::vector<float> back(x.size());
  f->Dequantize(packed.data(), 1, x.size(), back.data());
  for (size_t i = 0; i < bits.size(); ++i) EXPECT_EQ(ToBits(back[i]), bits[i]) << i;
  std::vector<float> bound(x.size(), -1.0f);
  f->ErrorBound(x.data(), 1, x.size(), bound.data());
  for (float b : bound) EXPECT_EQ(b, 0.0f);
}

// Hand-derived binary16 codes (sign | 5-bit exponent, bias 15 | 10-bit mantissa).
TEST(FloatFormat, F16HandVectors) {
  FormatPtr f = Must("f16");
  struct Case {
    float x;
    uint16_t code;
  };
  const Case cases[] = {
      {1.0f, 0x3c00},                        // e = 15, m = 0
      {-2.0f, 0xc000},                       // sign, e = 16
      {0.5f, 0x3800},                        // e = 14
      {65504.0f, 0x7bff},                    // max finite: e = 30, m = 1023
      {65519.0f, 0x7bff},                    // below the midpoint 65520: rounds down
      {65520.0f, 0x7c00},                    // the midpoint: tie to even (m = 1024) -> Inf
      {1e6f, 0x7c00},                        // overflow -> +Inf
      {-1e6f, 0xfc00},                       // overflow -> -Inf
      {0x1p-14f, 0x0400},                    // min normal
      {0x1p-24f, 0x0001},                    // min subnormal
      {0x1p-25f, 0x0000},                    // half the min subnormal: tie to even -> +0
      {0x1.8p-25f, 0x0001},                  // 0.75 * 2^-24 rounds up
      {0x1.8p-24f, 0x0002},                  // 1.5 * 2^-24: tie between codes 1 and 2 -> 2 (even)
      {-0x1p-26f, 0x8000},                   // underflow keeps the sign
      {1.0f + 0x1p-11f, 0x3c00},             // 1 + half ulp: tie -> even mantissa 0
      {1.0f + 0x1.8p-10f, 0x3c02},           // 1 + 1.5 ulp: tie between m=1 and m=2 -> 2
      {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},  // just above the tie -> up
      {0.1f, 0x2e66},  // 0.1 = 1.6 * 2^-4: m = round(0.6 * 1024 = 614.4) = 614
      {-0.0f, 0x8000},
      {std::numeric_limits<float>::infinity(), 0x7c00},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Encode16(*f, c.x), c.code) << "x=" << c.x;
  }
  // NaN: canonical quiet NaN keeping the sign.
  EXPECT_EQ(Encode16(*f, std::numeric_limits<float>::quiet_NaN()), 0x7e00);
  EXPECT_EQ(Encode16(*f, -std::numeric_limits<float>::quiet_NaN()), 0xfe00);
  // Decoding the same codes gives the grid values.
  EXPECT_EQ(Decode16(*f, 0x3c00), 1.0f);
  EXPECT_EQ(Decode16(*f, 0x7bff), 65504.0f);
  EXPECT_EQ(Decode16(*f, 0x0001), 0x1p-24f);
  EXPECT_EQ(Decode16(*f, 0x03ff), 1023 * 0x1p-24f);
  EXPECT_EQ(Decode16(*f, 0x2e66), 0x1.998p-4f);  // 1 + 614/1024 = 1.599609375 = 0x1.998p0
  EXPECT_EQ(ToBits(Decode16(*f, 0x8000)), 0x80000000u);
  EXPECT_EQ(Decode16(*f, 0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Decode16(*f, 0x7c01)));
  EXPECT_TRUE(std::isnan(Decode16(*f, 0xfe00)));
}

// Hand-derived bfloat16 codes (the top 16 bits of the binary32, rounded to nearest even).
TEST(FloatFormat, Bf16HandVectors) {
  FormatPtr f = Must("bf16");
  struct Case {
    uint32_t x_bits;
    uint16_t code;
  };
  const Case cases[] = {
      {0x3f800000u, 0x3f80},  // 1.0
      {0x3f808000u, 0x3f80},  // 1 + 2^-8: exactly half an ulp, tie -> even (0x3f80)
      {0x3f818000u, 0x3f82},  // 1 + 3 * 2^-8: tie between 0x3f81 and 0x3f82 -> even
      {0x3f808001u, 0x3f81},  // just above the tie -> up
      {0x3f807fffu, 0x3f80},  // just below the tie -> down
      {0x40490fdbu, 0x4049},  // pi: low half 0x0fdb < 0x8000 -> down
      {0x7f7f0000u, 0x7f7f},  // max finite
      {0x7f7f7fffu, 0x7f7f},  // below the overflow midpoint
      {0x7f7f8000u, 0x7f80},  // the midpoint (2 - 2^-8) * 2^127: tie -> even -> +Inf
      {0xff7fffffu, 0xff80},  // -float max -> -Inf
      {0x00008000u, 0x0000},  // half the smallest bf16 subnormal (2^-134): tie -> +0
      {0x00018000u, 0x0002},  // 1.5 subnormal steps: tie -> even code 2
      {0x00010000u, 0x0001},  // smallest bf16 subnormal 2^-133
      {0x80000001u, 0x8000},  // tiny negative underflows to -0
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Encode16(*f, FromBits(c.x_bits)), c.code) << std::hex << c.x_bits;
  }
  EXPECT_EQ(Encode16(*f, std::numeric_limits<float>::quiet_NaN()), 0x7fc0);
  EXPECT_EQ(Decode16(*f, 0x3f81), 1.0f + 0x1p-7f);
  EXPECT_EQ(Decode16(*f, 0xff80), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Decode16(*f, 0x7f81)));
}

TEST(FloatFormat, CodesAreLittleEndian) {
  FormatPtr f = Must("f16");
  const float x[2] = {1.0f, -2.0f};  // codes 0x3c00, 0xc000
  uint8_t out[4];
  ASSERT_TRUE(f->Quantize(x, 1, 2, out).ok());
  EXPECT_EQ(out[0], 0x00);
  EXPECT_EQ(out[1], 0x3c);
  EXPECT_EQ(out[2], 0x00);
  EXPECT_EQ(out[3], 0xc0);
}

// The fast decoders equal the codec (the spec) on every one of the 65536 codes, and every
// non-NaN code re-encodes to itself.
TEST(FloatFormat, ExhaustiveDecodeMatchesCodecAndReencodes) {
  for (const char* name : {"f16", "bf16"}) {
    FormatPtr f = Must(name);
    const MinifloatCodec& codec = std::string(name) == "f16" ? kFp16Codec : kBf16Codec;
    std::vector<uint8_t> packed(2 * 65536);
    for (uint32_t c = 0; c < 65536; ++c) {
      packed[2 * c] = static_cast<uint8_t>(c & 0xff);
      packed[2 * c + 1] = static_cast<uint8_t>(c >> 8);
    }
    std::vector<float> values(65536);
    f->Dequantize(packed.data(), 256, 256, values.data());
    std::vector<uint8_t> again(packed.size());
    ASSERT_TRUE(f->Quantize(values.data(), 256, 256, again.data()).ok());
    int nan_codes = 0;
    for (uint32_t c = 0; c < 65536; ++c) {
      const double expected = codec.Decode(c);
      if (std::isnan(expected)) {
        ASSERT_TRUE(std::isnan(values[c])) << name << " code " << c;
        ++nan_codes;
        continue;
      }
      ASSERT_EQ(static_cast<double>(values[c]), expected) << name << " code " << c;
      ASSERT_EQ(std::signbit(values[c]), std::signbit(expected)) << name << " code " << c;
      ASSERT_EQ(again[2 * c] | (again[2 * c + 1] << 8), static_cast<int>(c))
          << name << " code " << c;
    }
    // NaN codes: exponent all ones, mantissa != 0, both signs: 2 * (2^m - 1).
    EXPECT_EQ(nan_codes, 2 * ((1 << codec.man_bits()) - 1)) << name;
  }
}

// Bounds: half an ulp of x's binade; Inf where x overflows. The tie cases hit the bound exactly.
TEST(FloatFormat, ErrorBoundIsHalfAnUlpAndTight) {
  FormatPtr f16 = Must("f16");
  FormatPtr bf16 = Must("bf16");
  auto bound_of = [](const Format& f, float x) {
    float b = -1.0f;
    f.ErrorBound(&x, 1, 1, &b);
    return b;
  };
  EXPECT_EQ(bound_of(*f16, 1.0f), 0x1p-11f);  // ulp 2^-10 in [1, 2)
  EXPECT_EQ(bound_of(*f16, 1.9f), 0x1p-11f);
  EXPECT_EQ(bound_of(*f16, -3.0f), 0x1p-10f);  // [2, 4): ulp 2^-9
  EXPECT_EQ(bound_of(*f16, 65504.0f), 16.0f);  // [2^15, 2^16): ulp 32
  EXPECT_EQ(bound_of(*f16, 65519.0f), 16.0f);
  EXPECT_TRUE(std::isinf(bound_of(*f16, 65520.0f)));
  EXPECT_EQ(bound_of(*f16, 1e-7f), 0x1p-25f);  // subnormal range: step 2^-24
  EXPECT_EQ(bound_of(*f16, 0.0f), 0x1p-25f);
  EXPECT_EQ(bound_of(*bf16, 1.0f), 0x1p-8f);      // 7 mantissa bits
  EXPECT_EQ(bound_of(*bf16, 1e-40f), 0x1p-134f);  // subnormal step 2^-133
  EXPECT_TRUE(std::isinf(bound_of(*bf16, FromBits(0x7f7f8000u))));
  EXPECT_EQ(bound_of(*bf16, FromBits(0x7f7f7fffu)), 0x1p119f);
  // Ties: the error equals the bound (so a bound of half as much would fail).
  const float tie16 = 1.0f + 0x1p-11f;
  EXPECT_EQ(std::fabs(Decode16(*f16, Encode16(*f16, tie16)) - tie16), bound_of(*f16, tie16));
  const float tie_bf = FromBits(0x3f808000u);
  EXPECT_EQ(std::fabs(Decode16(*bf16, Encode16(*bf16, tie_bf)) - tie_bf), bound_of(*bf16, tie_bf));

  // Random values over the whole float range: the error never exceeds the bound.
  std::mt19937_64 rng(7);
  std::vector<float> x;
  while (x.size() < 200000) {
    const float v = FromBits(static_cast<uint32_t>(rng()));
    if (std::isfinite(v)) x.push_back(v);
  }
  for (const FormatPtr& f : {f16, bf16}) {
    std::vector<uint8_t> packed(f->PackedBytes(1, x.size()));
    ASSERT_TRUE(f->Quantize(x.data(), 1, x.size(), packed.data()).ok());
    std::vector<float> y(x.size()), bound(x.size());
    f->Dequantize(packed.data(), 1, x.size(), y.data());
    f->ErrorBound(x.data(), 1, x.size(), bound.data());
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound[i])
          << f->spec() << " x=" << x[i];
      if (!std::isinf(bound[i])) {
        ASSERT_TRUE(std::isfinite(y[i])) << f->spec() << " x=" << x[i];
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
