// Unit tests of the ExMy minifloat family (src/formats/minifloat.cc) and MinifloatCodec:
// hand-computed values (derivations in the comments), the packed bit layout, the bias and
// special parameters, scaled variants, and a brute-force nearest-even reference over every
// valid (e, m, special) combination. ml_dtypes cross-checks live in tests/golden/.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "formats/minifloat_codec.h"
#include "lowbit/format_registry.h"
#include "test_support.h"

namespace lowbit {
namespace {

using Specials = MinifloatCodec::Specials;
using Overflow = MinifloatCodec::Overflow;
using Rounding = MinifloatCodec::Rounding;

FormatPtr Get(const std::string& spec) {
  auto f = ParseFormat(spec);
  EXPECT_TRUE(f.ok()) << spec << ": " << f.status().ToString();
  return f.ok() ? *f : nullptr;
}

// Packed bytes of one row.
std::vector<uint8_t> Pack(const Format& f, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> out(static_cast<size_t>(f.PackedBytes(1, n)), 0xAA);
  EXPECT_TRUE(f.Quantize(x.data(), 1, n, out.data()).ok());
  return out;
}

std::vector<float> Unpack(const Format& f, const std::vector<uint8_t>& packed, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  f.Dequantize(packed.data(), 1, n, y.data());
  return y;
}

// Code of one value through a plain 8-bit preset (1 element = 1 byte).
uint32_t Code8(const std::string& spec, float x) { return Pack(*Get(spec), {x})[0]; }

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

constexpr const char* kE4m3Sat = "exmy:e=4,m=3,bias=7,special=onenan,overflow=sat,scale=none";
constexpr const char* kE5m2Sat = "exmy:e=5,m=2,bias=15,special=ieee,overflow=sat,scale=none";

// --- FP8 E4M3 (OCP OFP8: bias 7, no Inf, S.1111.111 is NaN) ---------------------------------

TEST(MinifloatE4m3, MaxFiniteAndTies) {
  // max = 2^(15-7) * 1.110b = 256 * 1.75 = 448, code 0.1111.110 = 0x7E.
  EXPECT_EQ(Code8("fp8_e4m3", 448.0f), 0x7Eu);
  // 464 = 448 + 16 lies halfway to the (NaN-coded) 480: ties to even -> mantissa 110 -> 448.
  EXPECT_EQ(Code8("fp8_e4m3", 464.0f), 0x7Eu);
  // 465 rounds to 480 > 448: overflow=ieee gives NaN (0x7F), overflow=sat gives 448.
  EXPECT_EQ(Code8("fp8_e4m3", 465.0f), 0x7Fu);
  EXPECT_EQ(Code8(kE4m3Sat, 465.0f), 0x7Eu);
  EXPECT_EQ(Code8("fp8_e4m3", -465.0f), 0xFFu);
  EXPECT_EQ(Code8(kE4m3Sat, -465.0f), 0xFEu);
  // No Inf: +-Inf -> NaN (ieee) or +-448 (sat).
  EXPECT_EQ(Code8("fp8_e4m3", INFINITY), 0x7Fu);
  EXPECT_EQ(Code8(kE4m3Sat, -INFINITY), 0xFEu);
  EXPECT_EQ(Code8("fp8_e4m3", NAN), 0x7Fu);
  EXPECT_EQ(Code8(kE4m3Sat, NAN), 0x7Fu) << "saturation keeps NaN";
  // 1.0 = 2^0: E = 0 + 7 = 0111, M = 0 -> 0x38; -2.0 -> 1.1000.000 = 0xC0.
  EXPECT_EQ(Code8("fp8_e4m3", 1.0f), 0x38u);
  EXPECT_EQ(Code8("fp8_e4m3", -2.0f), 0xC0u);
  // 1.0625 = 1 + 1/16 is halfway between 1.0 (M=000) and 1.125 (M=001): even -> 1.0.
  EXPECT_EQ(Code8("fp8_e4m3", 1.0625f), 0x38u);
  // 1.1875 is halfway between 1.125 (M=001) and 1.25 (M=010): even -> 1.25 = 0x3A.
  EXPECT_EQ(Code8("fp8_e4m3", 1.1875f), 0x3Au);
}

TEST(MinifloatE4m3, Subnormals) {
  // emin = 1 - 7 = -6; subnormal step 2^(-6-3) = 2^-9. Code 0x01 = 2^-9, 0x07 = 7 * 2^-9,
  // 0x08 = 2^-6 (min normal).
  auto f = Get("fp8_e4m3");
  const auto y = Unpack(*f, {0x01, 0x07, 0x08, 0x80, 0x81}, 5);
  EXPECT_EQ(y[0], std::ldexp(1.0f, -9));
  EXPECT_EQ(y[1], 7 * std::ldexp(1.0f, -9));
  EXPECT_EQ(y[2], std::ldexp(1.0f, -6));
  EXPECT_EQ(Bits(y[3]), Bits(-0.0f));
  EXPECT_EQ(y[4], -std::ldexp(1.0f, -9));
  // 2^-10 is halfway between 0 and 2^-9: ties to even -> 0; just above -> 0x01.
  EXPECT_EQ(Code8("fp8_e4m3", std::ldexp(1.0f, -10)), 0x00u);
  EXPECT_EQ(Code8("fp8_e4m3", std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01u);
  // 3 * 2^-10 is halfway between 0x01 and 0x02: even -> 0x02. Sign of an underflow is kept.
  EXPECT_EQ(Code8("fp8_e4m3", 3 * std::ldexp(1.0f, -10)), 0x02u);
  EXPECT_EQ(Code8("fp8_e4m3", -std::ldexp(1.0f, -12)), 0x80u);
}

// --- FP8 E5M2 (IEEE-style: bias 15, Inf and NaN) ----------------------------------------------

TEST(MinifloatE5m2, MaxInfNan) {
  // max = 2^(30-15) * 1.11b = 32768 * 1.75 = 57344, code 0.11110.11 = 0x7B.
  EXPECT_EQ(Code8("fp8_e5m2", 57344.0f), 0x7Bu);
  // The next step would be 65536; 61440 is the tie and goes to the even 65536 -> Inf (0x7C).
  EXPECT_EQ(Code8("fp8_e5m2", 61440.0f), 0x7Cu);
  EXPECT_EQ(Code8("fp8_e5m2", 61439.0f), 0x7Bu);
  EXPECT_EQ(Code8("fp8_e5m2", -1e6f), 0xFCu);
  EXPECT_EQ(Code8(kE5m2Sat, -1e6f), 0xFBu);
  EXPECT_EQ(Code8(kE5m2Sat, INFINITY), 0x7Bu);
  EXPECT_EQ(Code8("fp8_e5m2", -INFINITY), 0xFCu);
  EXPECT_EQ(Code8("fp8_e5m2", NAN), 0x7Eu);  // canonical quiet NaN 0.11111.10
  const auto y = Unpack(*Get("fp8_e5m2"), {0x7B, 0x7C, 0xFC, 0x7D, 0x01}, 5);
  EXPECT_EQ(y[0], 57344.0f);
  EXPECT_EQ(y[1], INFINITY);
  EXPECT_EQ(y[2], -INFINITY);
  EXPECT_TRUE(std::isnan(y[3]));
  EXPECT_EQ(y[4], std::ldexp(1.0f, -16));  // min subnormal 2^(1-15-2)
}

// --- FP6 / FP4 (OCP MX v1.0: no Inf/NaN, saturating) -------------------------------------------

TEST(MinifloatFp4, E2m1GridAndTies) {
  // E2M1 bias 1: E=0: 0, 0.5; E=1: 1, 1.5; E=2: 2, 3; E=3: 4, 6.
  auto f = Get("fp4_e2m1");
  std::vector<uint8_t> codes = {0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE};  // 0..15
  const auto y = Unpack(*f, codes, 16);
  const float grid[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(y[c], grid[c]) << c;
    EXPECT_EQ(y[c + 8], -grid[c]) << c + 8;
    EXPECT_TRUE(std::signbit(y[c + 8]));
  }
  // Ties go to the even code: 0.25 -> 0 (code 0), 0.75 -> 1 (code 2), 1.25 -> 1 (2),
  // 1.75 -> 2 (4), 2.5 -> 2 (4), 3.5 -> 4 (6), 5 -> 4 (6); 7 and 100 saturate to 6 (7).
  const std::vector<float> x = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 7.0f, 100.0f, -0.0f};
  const std::vector<uint32_t> want = {0, 2, 2, 4, 4, 6, 6, 7, 7, 8};
  const auto packed = Pack(*f, x);
  ASSERT_EQ(packed.size(), 5u);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ((packed[i / 2] >> (4 * (i % 2))) & 0xF, want[i]) << x[i];
  }
  // NaN has no code: +NaN -> -0 (0x8), -NaN -> +0 (0x0), as ml_dtypes does.
  const auto nan_packed =
      Pack(*f, {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()});
  EXPECT_EQ(nan_packed[0], 0x08);
}

TEST(MinifloatFp6, RangesAndSubnormals) {
  // E3M2 bias 3: max 2^(7-3) * 1.75 = 28, min subnormal 2^(1-3-2) = 1/16.
  // E2M3 bias 1: max 2^(3-1) * 1.875 = 7.5, min subnormal 2^(1-1-3) = 1/8.
  const MinifloatCodec e3m2(3, 2, 3, Specials::kFinite), e2m3(2, 3, 1, Specials::kFinite);
  EXPECT_EQ(e3m2.max_finite(), 28.0);
  EXPECT_EQ(e3m2.min_subnormal(), 0.0625);
  EXPECT_EQ(e2m3.max_finite(), 7.5);
  EXPECT_EQ(e2m3.min_subnormal(), 0.125);
  // Through the presets: 30 saturates (finite type), 1/32 ties to 0, 3/32 ties up to 2/16.
  auto f = Get("fp6_e3m2");
  const auto y = Unpack(*f, Pack(*f, {30.0f, 1.0f / 32, 3.0f / 32, -INFINITY}), 4);
  EXPECT_EQ(y[0], 28.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 0.125f);
  EXPECT_EQ(y[3], -28.0f);
  auto g = Get("fp6_e2m3");
  const auto z = Unpack(*g, Pack(*g, {7.75f, 7.7f, 0.0625f, 0.1875f}), 4);
  EXPECT_EQ(z[0], 7.5f);  // saturates
  EXPECT_EQ(z[1], 7.5f);
  EXPECT_EQ(z[2], 0.0f);   // tie between 0 and 1/8 -> 0
  EXPECT_EQ(z[3], 0.25f);  // tie between 1/8 (odd code 1) and 2/8 (even code 2)
}

// --- Packed layout -----------------------------------------------------------------------------

TEST(MinifloatLayout, SixBitCodesAreALittleEndianBitstream) {
  // E3M2 codes: 1.0 = 0.011.00 = 0x0C, 2.0 = 0.100.00 = 0x10, -1.0 = 1.011.00 = 0x2C,
  // 28 = 0.111.11 = 0x1F. Stream a, b, c, d (LSB first):
  //   byte0 = b1 b0 a5..a0 = 00 001100 = 0x0C
  //   byte1 = c3..c0 b5..b2 = 1100 0100 = 0xC4
  //   byte2 = d5..d0 c5 c4 = 011111 10 = 0x7E
  auto f = Get("fp6_e3m2");
  EXPECT_EQ(f->block_size(), 4);
  EXPECT_EQ(f->block_bytes(), 3);
  EXPECT_EQ(Pack(*f, {1.0f, 2.0f, -1.0f, 28.0f}), (std::vector<uint8_t>{0x0C, 0xC4, 0x7E}));
  // A 5-element row pads to two blocks; the padding codes are +0.
  EXPECT_EQ(Pack(*f, {1.0f, 2.0f, -1.0f, 28.0f, 1.0f}),
            (std::vector<uint8_t>{0x0C, 0xC4, 0x7E, 0x0C, 0x00, 0x00}));
}

TEST(MinifloatLayout, StorageBlockIsTheSmallestWholeByteRun) {
  struct Case {
    const char* spec;
    int64_t block, bytes;
  } cases[] = {
      {"fp4_e2m1", 2, 1},      {"fp8_e4m3", 1, 1},
      {"exmy:e=2,m=2", 8, 5},                                          // 5 bits
      {"exmy:e=5,m=7", 8, 13}, {"exmy:e=1,m=0,special=finite", 4, 1},  // 13 and 2 bits
      {"exmy:e=3,m=3", 8, 7},  {"exmy:e=5,m=6", 2, 3},                 // 7 and 12 bits
  };
  for (const auto& c : cases) {
    auto f = Get(c.spec);
    EXPECT_EQ(f->block_size(), c.block) << c.spec;
    EXPECT_EQ(f->block_bytes(), c.bytes) << c.spec;
  }
  // Fp4 nibble order: element 0 in the low nibble. 1.0 = 0x2, -6 = 0xF, 0.5 = 0x1.
  EXPECT_EQ(Pack(*Get("fp4_e2m1"), {1.0f, -6.0f, 0.5f}), (std::vector<uint8_t>{0xF2, 0x01}));
  // 5-bit E2M2 (bias 1, ieee): 1.0 = 0.01.00 = 0x04, 1.25 = 0x05, -1.0 = 0x14 in 8 slots:
  // bits 0-4 = 00100, 5-9 = 00101, 10-14 = 10100 -> byte0 = 101 00100 = 0xA4,
  // byte1 = 0 10100 00 = 0x50, bytes 2-4 = 0.
  EXPECT_EQ(Pack(*Get("exmy:e=2,m=2"), {1.0f, 1.25f, -1.0f}),
            (std::vector<uint8_t>{0xA4, 0x50, 0x00, 0x00, 0x00}));
}

// --- Parameters: bias, special, validation, spec ------------------------------------------------

TEST(MinifloatParams, BiasShiftsTheGrid) {
  // E4M3 onenan with bias 8 instead of 7: every value halves, max 224.
  auto f = Get("exmy:e=4,m=3,bias=8,special=onenan");
  EXPECT_EQ(Unpack(*f, {0x7E, 0x38}, 2), (std::vector<float>{224.0f, 0.5f}));
  // E2M1 finite with bias 0: the fp4 grid doubled {0,1,2,3,4,6,8,12}.
  auto g = Get("exmy:e=2,m=1,bias=0,special=finite");
  const auto y = Unpack(*g, {0x10, 0x32, 0x54, 0x76}, 8);
  EXPECT_EQ(y, (std::vector<float>{0, 1, 2, 3, 4, 6, 8, 12}));
  // Negative bias: E2M1 bias -2 -> grid times 8; 100 saturates to 48.
  auto h = Get("exmy:e=2,m=1,bias=-2,special=finite");
  EXPECT_EQ(Unpack(*h, Pack(*h, {100.0f, 4.0f}), 2), (std::vector<float>{48.0f, 4.0f}));
}

TEST(MinifloatParams, OneNanWithoutMantissaBits) {
  // E2M0 onenan, bias 1: E=1 -> 1, E=2 -> 2, E=3 -> NaN; max finite 2 (code 0b010).
  const MinifloatCodec c(2, 0, 1, Specials::kOneNan);
  EXPECT_EQ(c.max_finite_code(), 2u);
  EXPECT_EQ(c.max_finite(), 2.0);
  EXPECT_TRUE(c.IsNan(3));
  // 3 is the tie between 2 (E=2) and 4 (E=3, "even" on an unbounded grid) -> overflow -> NaN.
  EXPECT_EQ(c.Encode(2.9f), 2u);
  EXPECT_EQ(c.Encode(3.0f), 3u);
  EXPECT_EQ(c.Encode(3.0f, Rounding::kNearestEven, Overflow::kSaturate), 2u);
  // E2M0 finite, bias 1: 1, 2, 4. With one significand digit every normal is "odd": a tie
  // between normals goes to the larger magnitude (ml_dtypes float8_e8m0fnu: 3 -> 4, 6 -> 8).
  const MinifloatCodec f(2, 0, 1, Specials::kFinite);
  EXPECT_EQ(f.Encode(1.5f), 2u);  // 1.5 -> 2 (code E=2)
  EXPECT_EQ(f.Encode(3.0f), 3u);  // 3 -> 4 (code E=3)
  EXPECT_EQ(f.Encode(0.5f), 0u);  // tie between 0 (even) and 1 -> 0
  // E1M1 onenan, bias 0, emin = 1: 01 = 2^1 * 1/2 = 1 (subnormal), 10 = 2^1 * 1.0 = 2, 11 = NaN.
  const MinifloatCodec d(1, 1, 0, Specials::kOneNan);
  EXPECT_EQ(d.Decode(1), 1.0);
  EXPECT_EQ(d.Decode(2), 2.0);
  EXPECT_TRUE(d.IsNan(3));
  EXPECT_EQ(d.max_finite(), 2.0);
}

TEST(MinifloatParams, InvalidCombinationsNameTheField) {
  struct Case {
    const char* spec;
    const char* field;
  } cases[] = {
      {"exmy:e=3,m=0,special=ieee", "special=ieee"},
      {"exmy:e=1,m=2,special=ieee", "special=ieee"},
      {"exmy:e=1,m=0,special=onenan", "special=onenan"},
      {"exmy:e=6,m=2", "e=6"},
      {"exmy:e=2,m=8", "m=8"},
      {"exmy:e=4,m=3,bias=65", "bias=65"},
      {"exmy:e=4,m=3,special=nan", "special"},
      {"exmy:e=4,m=3,overflow=wrap", "overflow"},
      {"exmy:e=4,m=3,scale=abc", "scale='abc'"},
      {"exmy:e=4,m=3,scale=0", "scale='0'"},
      {"exmy:e=4,m=3,scale=65537", "scale='65537'"},
      {"exmy:e=4,m=3,rounding=odd", "rounding"},
      {"exmy:e=4,m=3,overflow=ieee,scale=row", "overflow=ieee"},
  };
  for (const auto& c : cases) {
    auto f = ParseFormat(c.spec);
    ASSERT_FALSE(f.ok()) << c.spec;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << c.spec;
    EXPECT_NE(f.status().message().find(c.field), std::string::npos)
        << c.spec << ": " << f.status().message();
  }
  // Boundary cases that are valid.
  for (const char* ok :
       {"exmy:e=1,m=0,special=finite", "exmy:e=2,m=0,special=onenan", "exmy:e=2,m=1,special=ieee",
        "exmy:e=5,m=7,bias=-64,special=finite", "exmy:e=4,m=3,scale=65536"}) {
    EXPECT_TRUE(ParseFormat(ok).ok()) << ok;
  }
}

TEST(MinifloatParams, CanonicalSpecAndDefaults) {
  EXPECT_EQ(Get("exmy")->spec(), "exmy:e=4,m=3,bias=7,special=ieee,overflow=ieee,scale=none");
  EXPECT_EQ(Get("exmy:scale=row,e=2,m=1,special=finite")->spec(),
            "exmy:e=2,m=1,bias=1,special=finite,overflow=sat,scale=row");
  EXPECT_EQ(Get("EXMY:e=3,m=2,special=finite,scale=32,overflow=sat")->spec(),
            "exmy:e=3,m=2,bias=3,special=finite,overflow=sat,scale=32");
  for (const char* preset :
       {"fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "fp8_e4m3_row", "fp8_e4m3_g32",
        "fp6_e3m2_g32", "fp4_e2m1_g32", "fp4_e2m1_g16"}) {
    auto f = Get(preset);
    ASSERT_NE(f, nullptr) << preset;
    EXPECT_EQ(f->family(), "exmy");
    EXPECT_EQ(Get(f->spec())->spec(), f->spec());
  }
  // Bits per weight of a 4096 x 4096 tensor: fp4 + fp16 per 32 = 4 + 16/32 = 4.5, etc.
  EXPECT_DOUBLE_EQ(Get("fp4_e2m1_g32")->NominalBitsPerWeight(), 4.5);
  EXPECT_DOUBLE_EQ(Get("fp4_e2m1_g16")->NominalBitsPerWeight(), 5.0);
  EXPECT_DOUBLE_EQ(Get("fp6_e3m2_g32")->NominalBitsPerWeight(), 6.5);
  EXPECT_DOUBLE_EQ(Get("fp8_e4m3_g32")->NominalBitsPerWeight(), 8.5);
  EXPECT_DOUBLE_EQ(Get("fp6_e2m3")->NominalBitsPerWeight(), 6.0);
  EXPECT_DOUBLE_EQ(Get("fp8_e4m3_row")->NominalBitsPerWeight(), 8.0 + 16.0 / 4096);
}

// --- Brute-force reference over every valid element type ---------------------------------------

// Nearest-even on an explicit grid of the positive finite values: the closest value; on a tie
// the one whose significand integer (M for subnormals, 2^m + M for normals) is even; when both
// are odd (m == 0: every normal significand is 1) the larger. Out of range: the clamp.
struct GridPoint {
  double value;
  uint32_t code;
  uint32_t significand;
};

uint32_t BruteForceSat(const std::vector<GridPoint>& grid, double a) {
  size_t best = 0;
  for (size_t i = 1; i < grid.size(); ++i) {
    const double d = std::fabs(grid[i].value - a), db = std::fabs(grid[best].value - a);
    const bool even = grid[i].significand % 2 == 0, best_even = grid[best].significand % 2 == 0;
    if (d < db || (d == db && (even || !best_even))) best = i;  // grid ascends: later = larger
  }
  return grid[best].code;
}

TEST(MinifloatCodecReference, MatchesBruteForceForEveryValidType) {
  std::mt19937_64 rng(7);
  int64_t compared = 0;
  for (int e = 1; e <= 5; ++e) {
    for (int m = 0; m <= 7; ++m) {
      for (Specials sp : {Specials::kIeee, Specials::kOneNan, Specials::kFinite}) {
        if (sp == Specials::kIeee && (e < 2 || m < 1)) continue;
        if (sp == Specials::kOneNan && e + m < 2) continue;
        const int bias = (1 << (e - 1)) - 1;
        const MinifloatCodec c(e, m, bias, sp);
        // The grid from the definition: E == 0 -> 2^(1-bias) * M / 2^m, else 2^(E-bias)(1+M/2^m).
        std::vector<GridPoint> grid;
        const uint32_t exp_max = (1u << e) - 1;
        for (uint32_t E = 0; E <= exp_max; ++E) {
          for (uint32_t M = 0; M < (1u << m); ++M) {
            if (sp == Specials::kIeee && E == exp_max) continue;
            if (sp == Specials::kOneNan && E == exp_max && M == (1u << m) - 1) continue;
            const double v = E == 0 ? std::ldexp(M, 1 - bias - m)
                                    : std::ldexp((1u << m) + M, static_cast<int>(E) - bias - m);
            grid.push_back({v, (E << m) | M, E == 0 ? M : (1u << m) + M});
          }
        }
        const double max_finite = grid.back().value;
        ASSERT_EQ(c.max_finite(), max_finite) << e << " " << m;
        for (const GridPoint& g : grid) {
          ASSERT_EQ(c.Decode(g.code), g.value);
          ASSERT_EQ(c.Decode(g.code | c.sign_mask()), -g.value);
        }
        // Inputs: every grid point, midpoint and a float either side, plus random values.
        std::vector<float> xs;
        for (size_t i = 0; i + 1 < grid.size(); ++i) {
          const float mid = static_cast<float>((grid[i].value + grid[i + 1].value) / 2);
          xs.insert(xs.end(), {static_cast<float>(grid[i].value), mid, std::nextafter(mid, 0.0f),
                               std::nextafter(mid, INFINITY)});
        }
        std::uniform_real_distribution<double> u(0.0, 1.3 * max_finite);
        for (int i = 0; i < 300; ++i) xs.push_back(static_cast<float>(u(rng)));
        for (float x : xs) {
          for (float sx : {x, -x}) {
            const uint32_t want =
                BruteForceSat(grid, std::fabs(sx)) | (std::signbit(sx) ? c.sign_mask() : 0);
            ASSERT_EQ(c.Encode(sx, Rounding::kNearestEven, Overflow::kSaturate), want)
                << "e=" << e << " m=" << m << " x=" << sx;
            ++compared;
          }
        }
      }
    }
  }
  std::cout << "[minifloat] brute-force reference: " << compared << " encodes compared\n";
  RecordProperty("brute_force_encodes_compared", std::to_string(compared));
}

// --- Error bounds -------------------------------------------------------------------------------

TEST(MinifloatErrorBound, HalfStepClipAndOverflow) {
  auto ieee = Get("fp8_e4m3");
  auto sat = Get(kE4m3Sat);
  // 1.01 lies in binade [1, 2): step 2^-3, bound 2^-4. 465: ieee -> NaN (no bound); sat -> 17.
  // 460 < 464 rounds to 448: bound = clip distance 12 (< half the top step 16).
  const std::vector<float> x = {1.01f, 465.0f, 460.0f, 0.0f};
  std::vector<float> b_ieee(4), b_sat(4);
  ieee->ErrorBound(x.data(), 1, 4, b_ieee.data());
  sat->ErrorBound(x.data(), 1, 4, b_sat.data());
  EXPECT_EQ(b_ieee[0], 0.0625f);
  EXPECT_EQ(b_ieee[1], INFINITY);
  EXPECT_EQ(b_ieee[2], 12.0f);
  EXPECT_EQ(b_ieee[3], std::ldexp(1.0f, -10));  // half the subnormal step 2^-9
  EXPECT_EQ(b_sat[1], 17.0f);
  EXPECT_EQ(b_sat[2], 12.0f);
}

// --- Scaled variants ----------------------------------------------------------------------------

TEST(MinifloatScaled, GroupLayoutAndValues) {
  // fp4_e2m1_g32: absmax 3 -> scale 3 / 6 = 0.5 (fp16 0x3800). x / 0.5 = 6, -3, 1.5, 0.2, so
  // codes 7, 0xD, 3, 0 (0.2 < 0.25 rounds to 0). Block = [00 38][16 bytes of nibbles].
  auto f = Get("fp4_e2m1_g32");
  EXPECT_EQ(f->block_size(), 32);
  EXPECT_EQ(f->block_bytes(), 18);
  std::vector<float> x(32, 0.0f);
  x[0] = 3.0f, x[1] = -1.5f, x[2] = 0.75f, x[3] = 0.1f;
  const auto packed = Pack(*f, x);
  ASSERT_EQ(packed.size(), 18u);
  EXPECT_EQ(packed[0], 0x00);
  EXPECT_EQ(packed[1], 0x38);
  EXPECT_EQ(packed[2], 0xD7);
  EXPECT_EQ(packed[3], 0x03);
  for (size_t i = 4; i < 18; ++i) EXPECT_EQ(packed[i], 0) << i;
  const auto y = Unpack(*f, packed, 32);
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(y[1], -1.5f);
  EXPECT_EQ(y[2], 0.75f);
  EXPECT_EQ(y[3], 0.0f);
}

TEST(MinifloatScaled, ScaleIsRoundedToFp16BeforeTheElements) {
  // Row absmax 1: 1/448 = 2^-9 * 1.142857..; fp16 keeps 10 bits: 1170/1024 (0.29 rounds down),
  // bits = (6 << 10) | 146 = 0x1892, s = 1170 * 2^-19. 1/s = 448.11 > 448 saturates, so the row's
  // 1.0 decodes to 448 * s = 524160 / 524288 = 0.999755859375.
  auto f = Get("fp8_e4m3_row");
  EXPECT_EQ(f->block_size(), 0);
  const auto packed = Pack(*f, {1.0f, -0.5f});
  ASSERT_EQ(packed.size(), 4u);
  EXPECT_EQ(packed[0], 0x92);
  EXPECT_EQ(packed[1], 0x18);
  EXPECT_EQ(packed[2], 0x7E);
  const auto y = Unpack(*f, packed, 2);
  EXPECT_EQ(y[0], 0.999755859375f);
  // -0.5 / s = -224.05 -> -224 (step 16 in [128, 256)): 224 * s = 0.4998779296875.
  EXPECT_EQ(y[1], -0.4998779296875f);
}

TEST(MinifloatScaled, SubnormalScaleIsLoweredToKeepIdempotence) {
  // absmax a = 9 * 2^-24 in fp4 (max 6): a / 6 = 1.5 * 2^-24 ties to the even fp16 subnormal
  // 2 * 2^-24; then a / s = 4.5 would round to 4, not 6, and a requantization of the decoded 4s
  // would pick scale RNE(4s/6) = 2^-24 (a different block). The rule lowers s to 2^-24
  // (bits 0x0001): a / s = 9 saturates to 6 and the block decodes to 6 * 2^-24.
  auto f = Get("fp4_e2m1_g16");
  std::vector<float> x(16, 0.0f);
  x[0] = 9 * std::ldexp(1.0f, -24);
  x[1] = -std::ldexp(1.0f, -24);  // / s = -1 -> code 0xA
  const auto packed = Pack(*f, x);
  EXPECT_EQ(packed[0], 0x01);
  EXPECT_EQ(packed[1], 0x00);
  EXPECT_EQ(packed[2], 0xA7);
  const auto y = Unpack(*f, packed, 16);
  EXPECT_EQ(y[0], 6 * std::ldexp(1.0f, -24));
  EXPECT_EQ(y[1], -std::ldexp(1.0f, -24));
  EXPECT_EQ(Pack(*f, y), packed);
}

TEST(MinifloatScaled, ZeroTinyHugeAndNanBlocks) {
  auto f = Get("fp8_e4m3_g32");
  std::vector<float> x(32, 0.0f);
  // All zeros: scale 0, codes 0.
  for (uint8_t b : Pack(*f, x)) EXPECT_EQ(b, 0);
  // absmax / 448 below half the smallest fp16 subnormal 2^-25: scale 0, only signs survive.
  x[0] = 1e-9f, x[1] = -1e-9f;
  auto packed = Pack(*f, x);
  EXPECT_EQ(packed[0] | packed[1], 0);
  EXPECT_EQ(packed[2], 0x00);
  EXPECT_EQ(packed[3], 0x80);
  // +Inf: the scale saturates at 65504 (0x7BFF) and Inf clips to 448 (0x7E); NaN stays NaN.
  x[0] = INFINITY, x[1] = NAN, x[2] = 1.0f;
  packed = Pack(*f, x);
  EXPECT_EQ(packed[0], 0xFF);
  EXPECT_EQ(packed[1], 0x7B);
  EXPECT_EQ(packed[2], 0x7E);
  EXPECT_EQ(packed[3], 0x7F);
  const auto y = Unpack(*f, packed, 32);
  EXPECT_EQ(y[0], 448.0f * 65504.0f);
  EXPECT_TRUE(std::isnan(y[1]));
  EXPECT_EQ(y[2], 0.0f);  // 1 / 65504 underflows E4M3 (min subnormal 2^-9 * 65504 = 128)
}

TEST(MinifloatScaled, IdempotentAndWithinBoundOnRandomBlocks) {
  // Random data, including absmax spread over fp16's subnormal range, through every scaled
  // preset: quantize(dequantize(q)) == q and |x - y| <= ErrorBound.
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exp_dist(-40, 20);
  for (const char* spec :
       {"fp8_e4m3_row", "fp8_e4m3_g32", "fp8_e5m2_row", "fp6_e3m2_g32", "fp6_e2m3_g32",
        "fp4_e2m1_g32", "fp4_e2m1_g16", "exmy:e=3,m=4,bias=2,special=onenan,scale=7",
        "exmy:e=2,m=0,special=onenan,scale=5"}) {
    auto f = Get(spec);
    const int64_t rows = 64, cols = 96;
    std::vector<float> x(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      const int e = exp_dist(rng);
      for (int64_t c = 0; c < cols; ++c)
        x[r * cols + c] = std::ldexp(u(rng), e + (c % 3 == 0 ? -8 : 0));
    }
    std::vector<uint8_t> q(f->PackedBytes(rows, cols)), q2(q.size());
    ASSERT_TRUE(f->Quantize(x.data(), rows, cols, q.data()).ok());
    std::vector<float> y(x.size()), bound(x.size());
    f->Dequantize(q.data(), rows, cols, y.data());
    f->ErrorBound(x.data(), rows, cols, bound.data());
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound[i]) << spec << " i=" << i;
    }
    ASSERT_TRUE(f->Quantize(y.data(), rows, cols, q2.data()).ok());
    EXPECT_EQ(q, q2) << spec;
  }
}

}  // namespace
}  // namespace lowbit
