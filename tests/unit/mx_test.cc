// The "mx" family (OCP Microscaling v1.0): hand-computed blocks for every element type, the exact
// packed bit layout, the floor / ceil scale rules, scale clamping, zero / NaN / Inf blocks, and an
// exhaustive decode of every E8M0 scale code times every element code against the spec's formulas
// (written out here independently of MinifloatCodec).
#include "formats/mx.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "format_test_util.h"
#include "lowbit/format_registry.h"
#include "test_support.h"

namespace lowbit {
namespace {

using testing::MustParse;
using testing::SameValue;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// One element type as the spec defines it (sections 5.2-5.3): sign-magnitude minifloat with e
// exponent and m mantissa bits, or (int8) two's complement times 2^-6.
struct ElementDef {
  const char* name;  // spec value of elem=
  int bits;
  int exp_bits, man_bits, bias;  // minifloats only
  bool is_int8;
};
const ElementDef kElementDefs[] = {
    {"fp8_e4m3", 8, 4, 3, 7, false}, {"fp8_e5m2", 8, 5, 2, 15, false},
    {"fp6_e3m2", 6, 3, 2, 3, false}, {"fp6_e2m3", 6, 2, 3, 1, false},
    {"fp4_e2m1", 4, 2, 1, 1, false}, {"int8", 8, 0, 0, 0, true},
};

// Value of an element code from the spec's definitions.
double RefElementValue(const ElementDef& d, uint32_t code) {
  if (d.is_int8) return static_cast<int8_t>(code) / 64.0;
  const uint32_t e_all = (1u << d.exp_bits) - 1, m_all = (1u << d.man_bits) - 1;
  const bool negative = (code >> (d.exp_bits + d.man_bits)) & 1u;
  const uint32_t e = (code >> d.man_bits) & e_all;
  const uint32_t m = code & m_all;
  double v;
  if (std::string(d.name) == "fp8_e4m3" && e == e_all && m == m_all) {
    v = std::nan("");  // OCP E4M3: S.1111.111 is NaN, no Inf
  } else if (std::string(d.name) == "fp8_e5m2" && e == e_all) {
    v = m == 0 ? INFINITY : std::nan("");  // OCP E5M2: IEEE-like specials
  } else if (e == 0) {
    v = std::ldexp(static_cast<double>(m), 1 - d.bias - d.man_bits);
  } else {
    v = std::ldexp(static_cast<double>((1u << d.man_bits) + m),
                   static_cast<int>(e) - d.bias - d.man_bits);
  }
  return negative ? -v : v;
}

// Packs one block by the documented layout, written out byte by byte (not as a bit stream).
std::vector<uint8_t> PackBlock(uint8_t scale, const std::vector<uint32_t>& codes, int bits) {
  std::vector<uint8_t> out = {scale};
  if (bits == 8) {
    for (uint32_t c : codes) out.push_back(static_cast<uint8_t>(c));
  } else if (bits == 4) {
    for (size_t i = 0; i < codes.size(); i += 2) {
      out.push_back(static_cast<uint8_t>(codes[i] | codes[i + 1] << 4));
    }
  } else {
    for (size_t i = 0; i < codes.size(); i += 4) {
      const uint32_t c0 = codes[i], c1 = codes[i + 1], c2 = codes[i + 2], c3 = codes[i + 3];
      out.push_back(static_cast<uint8_t>(c0 | (c1 & 0x3u) << 6));
      out.push_back(static_cast<uint8_t>(c1 >> 2 | (c2 & 0xFu) << 4));
      out.push_back(static_cast<uint8_t>(c2 >> 4 | c3 << 2));
    }
  }
  return out;
}

std::vector<uint8_t> Quantize(const Format& f, const std::vector<float>& x) {
  std::vector<uint8_t> packed(static_cast<size_t>(f.PackedBytes(1, x.size())));
  EXPECT_TRUE(f.Quantize(x.data(), 1, x.size(), packed.data()).ok());
  return packed;
}

std::vector<float> Dequantize(const Format& f, const std::vector<uint8_t>& packed, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  f.Dequantize(packed.data(), 1, n, out.data());
  return out;
}

// A 32-element block: the given leading values, then zeros.
std::vector<float> Block(std::vector<float> head) {
  head.resize(32, 0.0f);
  return head;
}

// Quantize-dequantize of the leading values of a 32-element block.
std::vector<float> Qdq(const std::string& spec, const std::vector<float>& head) {
  FormatPtr f = MustParse(spec);
  auto out = Dequantize(*f, Quantize(*f, Block(head)), 32);
  out.resize(head.size());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Spec strings, presets, sizes, bad values.

TEST(MxSpec, PresetsHaveTheSpecsAndSizesOfTheStandard) {
  struct Row {
    const char* preset;
    const char* spec;
    int64_t block_bytes;  // 1 scale byte + 32 * element bits / 8
    double bits_per_weight;
  };
  const Row rows[] = {
      {"mxfp8_e4m3", "mx:elem=fp8_e4m3,block=32,scale=floor,round=away", 33, 8.25},
      {"mxfp8_e5m2", "mx:elem=fp8_e5m2,block=32,scale=floor,round=away", 33, 8.25},
      {"mxfp6_e3m2", "mx:elem=fp6_e3m2,block=32,scale=floor,round=away", 25, 6.25},
      {"mxfp6_e2m3", "mx:elem=fp6_e2m3,block=32,scale=floor,round=away", 25, 6.25},
      {"mxfp4", "mx:elem=fp4_e2m1,block=32,scale=floor,round=away", 17, 4.25},
      {"mxint8", "mx:elem=int8,block=32,scale=floor,round=away", 33, 8.25},
      {"mxfp4_rne", "mx:elem=fp4_e2m1,block=32,scale=floor,round=even", 17, 4.25},
      {"mxfp4_ceil", "mx:elem=fp4_e2m1,block=32,scale=ceil,round=away", 17, 4.25},
      {"mxfp8_e4m3_ceil", "mx:elem=fp8_e4m3,block=32,scale=ceil,round=away", 33, 8.25},
  };
  for (const Row& r : rows) {
    const PresetInfo* p = FormatRegistry::Get().FindPreset(r.preset);
    ASSERT_NE(p, nullptr) << r.preset;
    EXPECT_EQ(p->spec, r.spec);
    FormatPtr f = MustParse(r.preset);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->spec(), r.spec);
    EXPECT_EQ(f->family(), "mx");
    EXPECT_EQ(f->block_size(), 32);
    EXPECT_EQ(f->block_bytes(), r.block_bytes) << r.preset;
    EXPECT_DOUBLE_EQ(f->NominalBitsPerWeight(), r.bits_per_weight) << r.preset;
    EXPECT_FALSE(f->gguf_type().has_value()) << "GGUF's MXFP4 is a different layout";
  }
}

TEST(MxSpec, DefaultsAndOtherBlockSizes) {
  FormatPtr f = MustParse("mx");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->spec(), "mx:elem=fp8_e4m3,block=32,scale=floor,round=away");
  // fp6 at block 8: 1 + 8 * 6 / 8 = 7 bytes; fp4 at block 256: 1 + 128 = 129 bytes.
  f = MustParse("mx:elem=fp6_e2m3,block=8");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->block_bytes(), 7);
  EXPECT_EQ(f->spec(), "mx:elem=fp6_e2m3,block=8,scale=floor,round=away");
  f = MustParse("MX:round=even,block=256,elem=fp4_e2m1");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->block_bytes(), 129);
  EXPECT_EQ(f->spec(), "mx:elem=fp4_e2m1,block=256,scale=floor,round=even");
  // A 40-column row of block 32 is two blocks (the tail padded): 2 * 33 bytes.
  EXPECT_EQ(MustParse("mxint8")->RowBytes(40), 66);
}

TEST(MxSpec, BadValuesAreErrorsThatNameTheField) {
  const struct {
    const char* spec;
    const char* needle;
  } cases[] = {
      {"mx:elem=fp5_e2m2", "elem"},  {"mx:elem=e4m3", "elem"},           {"mx:block=12", "block"},
      {"mx:block=0", "block"},       {"mx:block=512", "block"},          {"mx:block=3x", "block"},
      {"mx:scale=nearest", "scale"}, {"mx:round=up", "round"},           {"mx:round=", "round"},
      {"mx:bits=4", "bits"},         {"mx:elem=int8,elem=int8", "elem"},
  };
  for (const auto& c : cases) {
    auto f = ParseFormat(c.spec);
    ASSERT_FALSE(f.ok()) << c.spec;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << c.spec;
    EXPECT_NE(f.status().message().find(c.needle), std::string::npos)
        << c.spec << ": " << f.status().message();
  }
  // The direct API rejects what the grammar cannot express.
  MxOptions options;
  options.block = 20;
  EXPECT_FALSE(MakeMxFormat(options).ok());
}

// ---------------------------------------------------------------------------------------------
// Exhaustive decode.

TEST(MxE8m0, EveryScaleCodeDecodesToItsPowerOfTwo) {
  for (int code = 0; code < 255; ++code) {
    // 2^(code - 127): 2^-127 (a float subnormal) .. 2^127.
    EXPECT_EQ(E8m0ToFloat(static_cast<uint8_t>(code)), std::ldexp(1.0, code - 127)) << code;
  }
  EXPECT_TRUE(std::isnan(E8m0ToFloat(0xFF)));
  EXPECT_EQ(E8m0ToFloat(0x7F), 1.0f);
  EXPECT_EQ(E8m0ToFloat(0x00), std::ldexp(1.0f, -127));
  EXPECT_EQ(E8m0ToFloat(0xFE), std::ldexp(1.0f, 127));
}

TEST(MxElements, SpotValuesOfTheReferenceDefinitions) {
  // The test's own reference against values printed in the spec's element tables.
  EXPECT_EQ(RefElementValue(kElementDefs[0], 0x7E), 448.0);   // E4M3 max normal
  EXPECT_EQ(RefElementValue(kElementDefs[0], 0x01), 0x1p-9);  // E4M3 min subnormal
  EXPECT_TRUE(std::isnan(RefElementValue(kElementDefs[0], 0xFF)));
  EXPECT_EQ(RefElementValue(kElementDefs[1], 0x7B), 57344.0);  // E5M2 max normal
  EXPECT_EQ(RefElementValue(kElementDefs[1], 0xFC), -INFINITY);
  EXPECT_EQ(RefElementValue(kElementDefs[1], 0x01), 0x1p-16);     // E5M2 min subnormal
  EXPECT_EQ(RefElementValue(kElementDefs[2], 0x1F), 28.0);        // E3M2 max
  EXPECT_EQ(RefElementValue(kElementDefs[2], 0x01), 0.0625);      // E3M2 min subnormal
  EXPECT_EQ(RefElementValue(kElementDefs[3], 0x1F), 7.5);         // E2M3 max
  EXPECT_EQ(RefElementValue(kElementDefs[3], 0x01), 0.125);       // E2M3 min subnormal
  EXPECT_EQ(RefElementValue(kElementDefs[4], 0x07), 6.0);         // E2M1 max
  EXPECT_EQ(RefElementValue(kElementDefs[4], 0x09), -0.5);        // E2M1 -min subnormal
  EXPECT_EQ(RefElementValue(kElementDefs[5], 0x7F), 127 / 64.0);  // INT8 max
  EXPECT_EQ(RefElementValue(kElementDefs[5], 0x80), -2.0);        // INT8 min
}

// Every E8M0 code x every element code of every type: decode gives X * P exactly (in float:
// +-Inf where the product overflows), NaN for the NaN scale and for element NaN codes.
TEST(MxDecode, EveryScaleCodeTimesEveryElementCodeIsExact) {
  int64_t checked = 0;
  for (const ElementDef& d : kElementDefs) {
    FormatPtr f = MustParse(std::string("mx:elem=") + d.name);
    ASSERT_NE(f, nullptr);
    const uint32_t n_codes = 1u << d.bits;
    for (int scale = 0; scale < 256; ++scale) {
      for (uint32_t first = 0; first < n_codes; first += 32) {
        std::vector<uint32_t> codes(32);
        for (uint32_t j = 0; j < 32; ++j) codes[j] = (first + j) % n_codes;
        const auto packed = PackBlock(static_cast<uint8_t>(scale), codes, d.bits);
        ASSERT_EQ(static_cast<int64_t>(packed.size()), f->block_bytes());
        const auto out = Dequantize(*f, packed, 32);
        for (uint32_t j = 0; j < 32; ++j) {
          const float want =
              scale == 0xFF
                  ? kNan
                  : static_cast<float>(std::ldexp(RefElementValue(d, codes[j]), scale - 127));
          ASSERT_TRUE(SameValue(out[j], want) && std::signbit(out[j]) == std::signbit(want))
              << d.name << " scale 0x" << std::hex << scale << " code 0x" << codes[j] << ": got "
              << out[j] << " want " << want;
          ++checked;
        }
      }
    }
  }
  // 256 scales x (256 + 256 + 64 + 64 + 16(+16 padding to a block) + 256) codes.
  EXPECT_EQ(checked, 256 * (256 + 256 + 64 + 64 + 32 + 256));
}

// ---------------------------------------------------------------------------------------------
// Packed bit layout (hand-computed codes).

TEST(MxLayout, Fp4PacksElement2iInTheLowNibble) {
  // max 6 -> floor(log2 6) - emax(E2M1)=2 - 2 = 0 -> scale code 127 = 0x7F. E2M1 codes (bias 1):
  // 6 = 1.5 * 2^2 -> 0.11.1 = 0x7; -0.5 (subnormal, M=1) -> 1.00.1 = 0x9; 1 -> 0.01.0 = 0x2;
  // 1.5 -> 0.01.1 = 0x3; -3 = -1.5 * 2 -> 1.10.1 = 0xD; 4 -> 0.11.0 = 0x6.
  FormatPtr f = MustParse("mxfp4");
  const auto packed = Quantize(*f, Block({6, -0.5f, 1, 1.5f, -3, 4}));
  std::vector<uint8_t> want = {0x7F, 0x97, 0x32, 0x6D};
  want.resize(17, 0x00);
  EXPECT_EQ(packed, want);
}

TEST(MxLayout, Fp6PacksFourElementsInThreeBytes) {
  // max 7.5 -> floor(log2 7.5) = 2 - emax(E2M3)=2 -> 0 -> 0x7F. E2M3 codes (bias 1):
  // 7.5 = 1.875 * 4 -> 0.11.111 = 0x1F; -1.125 -> 1.01.001 = 0x29; -0.375 (subnormal 3/8)
  // -> 1.00.011 = 0x23; 3 = 1.5 * 2 -> 0.10.100 = 0x14; then 0.5 (subnormal 4/8) -> 0x04.
  // byte1 = 0x1F | (0x29 & 3) << 6 = 0x5F; byte2 = 0x29 >> 2 | (0x23 & 15) << 4 = 0x0A | 0x30 =
  // 0x3A; byte3 = 0x23 >> 4 | 0x14 << 2 = 0x02 | 0x50 = 0x52; byte4 = 0x04 (element 4, next group).
  FormatPtr f = MustParse("mxfp6_e2m3");
  const auto packed = Quantize(*f, Block({7.5f, -1.125f, -0.375f, 3, 0.5f}));
  std::vector<uint8_t> want = {0x7F, 0x5F, 0x3A, 0x52, 0x04};
  want.resize(25, 0x00);
  EXPECT_EQ(packed, want);
  EXPECT_EQ(packed, PackBlock(
                        0x7F,
                        [] {
                          std::vector<uint32_t> c = {0x1F, 0x29, 0x23, 0x14, 0x04};
                          c.resize(32, 0);
                          return c;
                        }(),
                        6));
}

TEST(MxLayout, Fp6E3m2AndFp8AndInt8Codes) {
  // E3M2 (bias 3), max 28 -> e = 4 - 4 = 0: 28 = 1.75 * 16 -> 0.111.11 = 0x1F; -0.0625 (min
  // subnormal) -> 1.000.01 = 0x21; 1 -> 0.011.00 = 0x0C; 0.25 (min normal) -> 0.001.00 = 0x04.
  // bytes: 0x1F | (0x21 & 3) << 6 = 0x5F; 0x21 >> 2 | (0x0C & 15) << 4 = 0x08 | 0xC0 = 0xC8;
  // 0x0C >> 4 | 0x04 << 2 = 0x10.
  auto p = Quantize(*MustParse("mxfp6_e3m2"), Block({28, -0.0625f, 1, 0.25f}));
  EXPECT_EQ((std::vector<uint8_t>(p.begin(), p.begin() + 4)),
            (std::vector<uint8_t>{0x7F, 0x5F, 0xC8, 0x10}));
  // E4M3, max 448 -> e = 8 - 8 = 0: 448 -> 0x7E, -1 -> 0xB8, 2^-9 -> 0x01, -0.0 -> 0x80.
  p = Quantize(*MustParse("mxfp8_e4m3"), Block({448, -1, 0x1p-9f, -0.0f}));
  EXPECT_EQ((std::vector<uint8_t>(p.begin(), p.begin() + 5)),
            (std::vector<uint8_t>{0x7F, 0x7E, 0xB8, 0x01, 0x80}));
  // E5M2, max 57344 -> e = 15 - 15 = 0: 57344 -> 0x7B, -1 -> 0xBC, 2^-16 -> 0x01.
  p = Quantize(*MustParse("mxfp8_e5m2"), Block({57344, -1, 0x1p-16f}));
  EXPECT_EQ((std::vector<uint8_t>(p.begin(), p.begin() + 4)),
            (std::vector<uint8_t>{0x7F, 0x7B, 0xBC, 0x01}));
  // INT8, max 1.5 -> floor(log2 1.5) = 0 - emax 0 -> 0x7F: 1.5 = 96/64 -> 0x60, -1/64 -> 0xFF,
  // -1.5 -> -96 = 0xA0.
  p = Quantize(*MustParse("mxint8"), Block({1.5f, -1 / 64.0f, -1.5f}));
  EXPECT_EQ((std::vector<uint8_t>(p.begin(), p.begin() + 4)),
            (std::vector<uint8_t>{0x7F, 0x60, 0xFF, 0xA0}));
}

// ---------------------------------------------------------------------------------------------
// Scale rules.

TEST(MxFloorRule, ClipsTheLargestValueAsTheSpecSays) {
  // max 957: floor(log2 957) = 9, emax(E4M3) = 8 -> e = 1 (scale code 128 = 0x80).
  // 957 / 2 = 478.5 > 448 -> saturates to 448 (0x7E) -> 896. 1 / 2 = 0.5 = 2^-1 -> 0.0110.000 =
  // 0x30.
  FormatPtr f = MustParse("mxfp8_e4m3");
  const auto packed = Quantize(*f, Block({957, 1, 2, 3}));
  EXPECT_EQ(packed[0], 0x80);
  EXPECT_EQ(packed[1], 0x7E);
  EXPECT_EQ(packed[2], 0x30);
  const auto out = Dequantize(*f, packed, 32);
  EXPECT_EQ(out[0], 896.0f);
  EXPECT_EQ(out[1], 1.0f);
  EXPECT_EQ(out[2], 2.0f);
  EXPECT_EQ(out[3], 3.0f);
  // The bound admits the clipping error 957 - 896 = 61 and, for 3 (3/2 = 1.5 in [1, 2), step
  // 1/8), half a step times the scale: 1/16 * 2 = 0.125.
  std::vector<float> bound(32);
  const auto x = Block({957, 1, 2, 3});
  f->ErrorBound(x.data(), 1, 32, bound.data());
  EXPECT_EQ(bound[0], 61.0f);
  EXPECT_EQ(bound[3], 0.125f);
}

TEST(MxFloorRule, LargestValueLandsInTheTopBinadeOfEveryElement) {
  // max 7 for fp4: e = 2 - 2 = 0; 7 ties 6|8 -> 8 (away) or 8 (even: 8 = 1.0 * 2^3) -> clips to 6.
  EXPECT_EQ(Qdq("mxfp4", {7})[0], 6.0f);
  EXPECT_EQ(Qdq("mxfp4_rne", {7})[0], 6.0f);
  // 40 for E3M2: floor(log2 40) = 5, emax 4 -> e = 1: 20 -> grid step 4 in [16, 32) -> 20 -> 40.
  EXPECT_EQ(Qdq("mxfp6_e3m2", {40})[0], 40.0f);
  // 60 for E3M2: e = 1: 30 > 28 -> 28 -> 56.
  EXPECT_EQ(Qdq("mxfp6_e3m2", {60})[0], 56.0f);
  // 15.5 for E2M3: floor(log2) = 3, emax 2 -> e = 1: 7.75 > 7.5 -> 7.5 -> 15.
  EXPECT_EQ(Qdq("mxfp6_e2m3", {15.5f})[0], 15.0f);
  // 65000 for E5M2: floor(log2) = 15 -> e = 0: 65000 -> 65536 on the grid > 57344 -> 57344.
  EXPECT_EQ(Qdq("mxfp8_e5m2", {65000})[0], 57344.0f);
  // 1.999 for INT8: e = 0: 127.936/64 -> 128 -> saturates at +127 (not -128's twin): 127/64.
  EXPECT_EQ(Qdq("mxint8", {1.999f, -1.999f})[0], 127 / 64.0f);
  const auto p = Quantize(*MustParse("mxint8"), Block({1.999f, -1.999f}));
  EXPECT_EQ(p[1], 0x7F);
  EXPECT_EQ(p[2], 0x81) << "-127, never 0x80 (-128)";
}

TEST(MxCeilRule, DoesNotClip) {
  // 957 under ceil: at e = 1, 478.5 rounds (step 32) to 480 > 448 -> e = 2: 239.25 rounds (step
  // 16 in [128, 256)) to 240 -> 960 (scale code 0x81).
  FormatPtr f = MustParse("mxfp8_e4m3_ceil");
  const auto packed = Quantize(*f, Block({957, 1}));
  EXPECT_EQ(packed[0], 0x81);
  EXPECT_EQ(Dequantize(*f, packed, 32)[0], 960.0f);
  // 920: at e = 1, 460 rounds to 448 (not a clip: rounding error 12 < half step 16) -> e stays 1.
  EXPECT_EQ(Quantize(*f, Block({920}))[0], 0x80);
  EXPECT_EQ(Qdq("mxfp8_e4m3_ceil", {920})[0], 896.0f);
  // fp4, max 7: at e = 0, 7 -> 8 > 6; e = 1: 3.5 ties 3|4 -> 4 (away and even) -> 8.
  EXPECT_EQ(Qdq("mxfp4_ceil", {7, 1})[0], 8.0f);
  EXPECT_EQ(Qdq("mx:elem=fp4_e2m1,scale=ceil,round=even", {7})[0], 8.0f);
  // fp4, max 6.9: rounds to 6 at e = 0 -> no clip, e = 0.
  EXPECT_EQ(Qdq("mxfp4_ceil", {6.9f})[0], 6.0f);
  // INT8, max 1.999: 128/64 clips at e = 0 -> e = 1: 0.9995 -> 64/64 -> 2.
  EXPECT_EQ(Qdq("mx:elem=int8,scale=ceil", {1.999f})[0], 2.0f);
  // E5M2 65000: at e = 0 it rounds to 65536 > 57344 -> e = 1: 32500 in [16384, 32768) (step
  // 4096) rounds to 32768 -> 65536.
  EXPECT_EQ(Qdq("mx:elem=fp8_e5m2,scale=ceil", {65000})[0], 65536.0f);
}

TEST(MxCeilRule, NearFloatMaxSaturatesInsteadOfOverflowing) {
  // fp4 ceil, max = FLT_MAX ~ 2^128: at e = 125, FLT_MAX / 2^125 ~ 8 clips; at e = 126 it rounds to
  // 4 and 4 * 2^126 = 2^128 is not a float, so e stays 125 and the element saturates at 6:
  // 6 * 2^125 = 1.5 * 2^127.
  FormatPtr f = MustParse("mxfp4_ceil");
  const auto packed = Quantize(*f, Block({FLT_MAX}));
  EXPECT_EQ(packed[0], 125 + 127);
  EXPECT_EQ(Dequantize(*f, packed, 32)[0], std::ldexp(1.5f, 127));
  // INT8 ceil at FLT_MAX: e would be 128, clamped to 127; element saturates at 127: 127/64 * 2^127.
  FormatPtr g = MustParse("mx:elem=int8,scale=ceil");
  const auto p = Quantize(*g, Block({-FLT_MAX}));
  EXPECT_EQ(p[0], 0xFE);
  EXPECT_EQ(p[1], 0x81);
  EXPECT_EQ(Dequantize(*g, p, 32)[0], -std::ldexp(127 / 64.0f, 127));
}

// ---------------------------------------------------------------------------------------------
// Rounding ties (scale 1: each block's max puts e at 0).

TEST(MxRounding, TiesGoAwayOrToEvenForEveryElementType) {
  struct Case {
    const char* elem;
    float max;  // sets e = 0
    float x, away, even;
  };
  const Case cases[] = {
      // E4M3 [1, 2) step 1/8: 1.0625 ties 1|1.125; 1.3125 ties 1.25|1.375 (even: 1.25 = M 010).
      {"fp8_e4m3", 448, 1.0625f, 1.125f, 1.0f},
      {"fp8_e4m3", 448, -1.3125f, -1.375f, -1.25f},
      {"fp8_e4m3", 448, 0x1p-10f, 0x1p-9f, 0.0f},  // half the min subnormal 2^-9: ties 0|2^-9
      // E5M2 [1, 2) step 1/4: 1.125 ties 1|1.25.
      {"fp8_e5m2", 57344, 1.125f, 1.25f, 1.0f},
      {"fp8_e5m2", 57344, 0x1p-17f, 0x1p-16f, 0.0f},  // half the min subnormal
      // E3M2 [1, 2) step 1/4: 1.375 ties 1.25|1.5 (even: 1.5 = M 10).
      {"fp6_e3m2", 28, 1.375f, 1.5f, 1.5f},
      {"fp6_e3m2", 28, 1.125f, 1.25f, 1.0f},
      // E2M3 [1, 2) step 1/8; subnormals step 1/8: 0.0625 ties 0|0.125.
      {"fp6_e2m3", 7.5f, 1.0625f, 1.125f, 1.0f},
      {"fp6_e2m3", 7.5f, -0.0625f, -0.125f, -0.0f},
      // E2M1: 2.5 ties 2|3, 5 ties 4|6, 0.25 ties 0|0.5, 1.25 ties 1|1.5.
      {"fp4_e2m1", 6, 2.5f, 3.0f, 2.0f},
      {"fp4_e2m1", 6, -5, -6, -4},
      {"fp4_e2m1", 6, 0.25f, 0.5f, 0.0f},
      {"fp4_e2m1", 6, 1.25f, 1.5f, 1.0f},
      // INT8 step 1/64: 2.5/64 ties 2|3, -2.5/64 ties -2|-3, 1.5/64 ties 1|2 (even 2).
      {"int8", 1.5f, 2.5f / 64, 3.0f / 64, 2.0f / 64},
      {"int8", 1.5f, -2.5f / 64, -3.0f / 64, -2.0f / 64},
      {"int8", 1.5f, 1.5f / 64, 2.0f / 64, 2.0f / 64},
  };
  for (const Case& c : cases) {
    const std::string base = std::string("mx:elem=") + c.elem;
    const auto away = Qdq(base + ",round=away", {c.max, c.x});
    const auto even = Qdq(base + ",round=even", {c.max, c.x});
    EXPECT_EQ(away[0], c.max) << c.elem;
    EXPECT_EQ(away[1], c.away) << c.elem << " x=" << c.x;
    EXPECT_EQ(even[1], c.even) << c.elem << " x=" << c.x;
    EXPECT_EQ(std::signbit(even[1]), std::signbit(c.even)) << c.elem << " x=" << c.x;
  }
}

TEST(MxRounding, ValuesOnTheGridAtAnyScaleAreExact) {
  // Every element value times 2^e (e = -3 and 17 via the block max) comes back unchanged.
  for (const ElementDef& d : kElementDefs) {
    FormatPtr f = MustParse(std::string("mx:elem=") + d.name);
    const uint32_t n_codes = 1u << d.bits;
    // The top element of the grid sets e: its value has floor(log2) = emax.
    double top = 0;
    for (uint32_t c = 0; c < n_codes; ++c) {
      const double v = RefElementValue(d, c);
      if (std::isfinite(v)) top = std::max(top, v);
    }
    for (int e : {-3, 17}) {
      for (uint32_t first = 0; first < n_codes; first += 31) {
        std::vector<float> x = {static_cast<float>(std::ldexp(top, e))};
        for (uint32_t c = first; c < std::min(first + 31, n_codes); ++c) {
          const double v = RefElementValue(d, c);
          if (d.is_int8 && c == 0x80) continue;  // -2 would outgrow the top value and move e
          if (std::isfinite(v)) x.push_back(static_cast<float>(std::ldexp(v, e)));
        }
        x.resize(32, 0.0f);
        const auto packed = Quantize(*f, x);
        EXPECT_EQ(packed[0], e + 127) << d.name;
        const auto out = Dequantize(*f, packed, 32);
        for (size_t i = 0; i < 32; ++i) {
          ASSERT_EQ(out[i], x[i]) << d.name << " e=" << e << " i=" << i;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Scale clamping, zeros, NaN and Inf.

TEST(MxScaleClamp, TinyBlocksUseTheSmallestScale) {
  // max 2^-149 (the smallest float subnormal): floor rule gives e = -149 - 8 = -157 -> clamped to
  // -127 (code 0x00); 2^-149 / 2^-127 = 2^-22 is below half the E4M3 min subnormal 2^-9 -> 0.
  FormatPtr f = MustParse("mxfp8_e4m3");
  auto p = Quantize(*f, Block({std::numeric_limits<float>::denorm_min()}));
  EXPECT_EQ(p[0], 0x00);
  EXPECT_EQ(p[1], 0x00);
  // max 2^-130 (subnormal): e = -138 -> -127; 2^-130 / 2^-127 = 0.125 = 2^-3 is an E4M3 normal
  // (0.0100.000 = 0x20) -> exact. 3 * 2^-140 -> 3 * 2^-13 < 2^-10 -> 0.
  p = Quantize(*f, Block({0x1p-130f, 3 * 0x1p-140f}));
  EXPECT_EQ(p[0], 0x00);
  EXPECT_EQ(p[1], 0x20);
  EXPECT_EQ(p[2], 0x00);
  EXPECT_EQ(Dequantize(*f, p, 32)[0], 0x1p-130f);
  // fp4: 2^-128 / 2^-127 = 0.5, the E2M1 subnormal (0x1); 1.5 * 2^-128 ties 0.5|1 -> 1 (away).
  const auto out = Qdq("mxfp4", {0x1p-128f, 0x1.8p-128f, -0x1p-129f});
  EXPECT_EQ(out[0], 0x1p-128f);
  EXPECT_EQ(out[1], 0x1p-127f);
  EXPECT_EQ(out[2], -0x1p-128f) << "2^-129 -> 0.25, ties 0|0.5 -> 0.5 (away)";
}

TEST(MxScaleClamp, HugeBlocksStayFinite) {
  // 1e38: floor(log2 1e38) = 126 -> E4M3 e = 118 (code 245); 1e38 / 2^118 = 300.9 -> grid step 32
  // in [256, 512) -> 288 -> 288 * 2^118.
  FormatPtr f = MustParse("mxfp8_e4m3");
  auto p = Quantize(*f, Block({1e38f, -1e38f}));
  EXPECT_EQ(p[0], 245);
  auto out = Dequantize(*f, p, 32);
  EXPECT_EQ(out[0], std::ldexp(288.0f, 118));
  EXPECT_EQ(out[1], -std::ldexp(288.0f, 118));
  // INT8: e = 126 - 0 = 126; 1e38 / 2^126 = 1.1755 -> 75.2/64 -> 75 -> 75 * 2^120.
  out = Qdq("mxint8", {1e38f});
  EXPECT_EQ(out[0], std::ldexp(75.0f, 120));
  // -FLT_MAX for every element type decodes to a finite value (the floor rule never overflows).
  for (const ElementDef& d : kElementDefs) {
    const auto v = Qdq(std::string("mx:elem=") + d.name, {-FLT_MAX, FLT_MAX});
    EXPECT_TRUE(std::isfinite(v[0]) && std::isfinite(v[1])) << d.name;
    EXPECT_LT(v[0], 0.0f) << d.name;
  }
}

TEST(MxSpecialBlocks, AllZeroBlockUsesScaleCodeZero) {
  for (const PresetInfo& preset : FormatRegistry::Get().presets()) {
    FormatPtr f = MustParse(preset.name);
    if (f->family() != "mx") continue;
    const std::vector<float> zeros(32, 0.0f);
    const auto packed = Quantize(*f, zeros);
    EXPECT_EQ(packed, std::vector<uint8_t>(static_cast<size_t>(f->block_bytes()), 0x00))
        << preset.name;
    for (float v : Dequantize(*f, packed, 32)) EXPECT_EQ(v, 0.0f) << preset.name;
    // -0.0 keeps its sign in minifloat elements (sign bit only), int8 has one zero.
    const auto neg = Quantize(*f, std::vector<float>(32, -0.0f));
    EXPECT_EQ(neg[0], 0x00) << preset.name;
    for (float v : Dequantize(*f, neg, 32)) EXPECT_EQ(v, 0.0f) << preset.name;
  }
}

TEST(MxSpecialBlocks, NanOrInfMakesTheWholeBlockNan) {
  for (const ElementDef& d : kElementDefs) {
    FormatPtr f = MustParse(std::string("mx:elem=") + d.name);
    for (float special : {kNan, -kNan, kInf, -kInf}) {
      // Two blocks: the special value sits in the second; the first is untouched.
      std::vector<float> x(64, 1.0f);
      x[40] = special;
      const auto packed = Quantize(*f, x);
      const size_t bb = static_cast<size_t>(f->block_bytes());
      EXPECT_EQ(packed[bb], 0xFF) << d.name << " " << special;
      for (size_t i = bb + 1; i < 2 * bb; ++i) EXPECT_EQ(packed[i], 0x00) << d.name;
      const auto out = Dequantize(*f, packed, 64);
      for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], 1.0f) << d.name;
      for (int i = 32; i < 64; ++i) EXPECT_TRUE(std::isnan(out[i])) << d.name << " i=" << i;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Every parameter combination: byte-exact idempotence and the error bound (the registry-wide
// suites cover the presets only).

TEST(MxAllParameters, RequantizingIsByteExactAndErrorsStayWithinTheBound) {
  std::mt19937_64 rng(7);
  int64_t checked = 0;
  for (const ElementDef& d : kElementDefs) {
    for (const char* scale : {"floor", "ceil"}) {
      for (const char* round : {"away", "even"}) {
        for (int block : {8, 32, 256}) {
          const std::string spec = std::string("mx:elem=") + d.name +
                                   ",block=" + std::to_string(block) + ",scale=" + scale +
                                   ",round=" + round;
          FormatPtr f = MustParse(spec);
          ASSERT_NE(f, nullptr);
          const int64_t cols = 3 * block + block / 2 + 1;
          std::vector<std::vector<float>> rows;
          for (int kind = 0; kind < testing::kNumRandomKinds; ++kind) {
            rows.push_back(testing::RandomFloats(rng, static_cast<size_t>(cols), kind));
          }
          // Huge and tiny magnitudes: float's ends, where clamping and saturation happen.
          std::vector<float> edge(static_cast<size_t>(cols));
          std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
          for (int64_t i = 0; i < cols; ++i) {
            const int sel = static_cast<int>(i % 4);
            edge[i] = sel == 0   ? FLT_MAX * uni(rng)
                      : sel == 1 ? std::ldexp(uni(rng), 127)
                      : sel == 2 ? std::ldexp(uni(rng), -130)
                                 : std::ldexp(uni(rng), -147);
          }
          rows.push_back(edge);
          rows.push_back(std::vector<float>(static_cast<size_t>(cols), FLT_MAX));
          rows.push_back(std::vector<float>(static_cast<size_t>(cols), std::ldexp(1.75f, 127)));
          std::vector<float> bound(static_cast<size_t>(cols));
          for (const auto& x : rows) {
            const auto q1 = Quantize(*f, x);
            const auto y = Dequantize(*f, q1, cols);
            const auto q2 = Quantize(*f, y);
            ASSERT_EQ(q1, q2) << spec;
            f->ErrorBound(x.data(), 1, cols, bound.data());
            for (int64_t i = 0; i < cols; ++i) {
              ASSERT_TRUE(std::isfinite(y[i])) << spec << " x=" << x[i];
              ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound[i])
                  << spec << " i=" << i << " x=" << x[i] << " y=" << y[i];
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 100000);
}

// The error bound is half a step, not more: over random blocks the rounding error of elements
// below their block's largest magnitude (which may sit at the saturation limit, where the bound is
// the exact clipping error) reaches more than 90% of it. A bound of a whole step would stay <= 50%.
TEST(MxAllParameters, ErrorBoundIsHalfAStepNotMore) {
  std::mt19937_64 rng(11);
  for (const ElementDef& d : kElementDefs) {
    for (const char* scale : {"floor", "ceil"}) {
      const std::string spec = std::string("mx:elem=") + d.name + ",scale=" + scale;
      FormatPtr f = MustParse(spec);
      const auto x = testing::RandomFloats(rng, 32 * 256, 0);
      const auto y = Dequantize(*f, Quantize(*f, x), static_cast<int64_t>(x.size()));
      std::vector<float> bound(x.size());
      f->ErrorBound(x.data(), 1, static_cast<int64_t>(x.size()), bound.data());
      double worst = 0;
      for (size_t b = 0; b < x.size(); b += 32) {
        float top = 0;
        for (size_t i = b; i < b + 32; ++i) top = std::max(top, std::fabs(y[i]));
        for (size_t i = b; i < b + 32; ++i) {
          const double err = std::fabs(static_cast<double>(x[i]) - y[i]);
          ASSERT_LE(err, bound[i]) << spec << " x=" << x[i];
          if (std::fabs(y[i]) < top) worst = std::max(worst, err / bound[i]);
        }
      }
      EXPECT_GT(worst, 0.9) << spec;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The real binary.

TEST(MxCli, QdqPrintsTheClippedValue) {
  const std::string cmd =
      std::string("echo 957 1 2 3 | ") + LOWBIT_CLI + " qdq --format mxfp8_e4m3";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[256];
  while (fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
  EXPECT_EQ(pclose(pipe), 0) << cmd;
  EXPECT_EQ(output, "896\n1\n2\n3\n");
}

TEST(MxCli, BadSpecExitsWithCode2AndNamesTheField) {
  const std::string cmd = std::string("echo 1 | ") + LOWBIT_CLI + " qdq --format mx:elem=fp7 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[256];
  while (fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
  const int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(output.find("elem"), std::string::npos) << output;
}

}  // namespace
}  // namespace lowbit
