// Block floating point ("bfp", src/formats/block_fp.cc): hand-computed blocks, the exact byte
// layout, the shared-exponent rule at its edges (powers of two, clamping, tiny/huge/subnormal
// blocks), NaN/Inf handling, spec errors and storage cost; plus a brute-force reference that
// finds the nearest grid point by search instead of by division and rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/format_registry.h"
#include "format_test_util.h"
#include "test_support.h"

namespace lowbit {
namespace {

using Qdq = testing::QdqResult;
using testing::Block16;
using testing::RunRow;

FormatPtr Parse(const std::string& spec) { return testing::MustParse(spec); }

// bfp:w=4 (sign + 3-bit magnitude, M <= 7), block 16. max|x| = 1.5: floor(log2 1.5) = 0, so
// E = 1 and one mantissa unit is 2^(1-3) = 0.25. Each M = round_half_even(|x| / 0.25):
//   1.5 -> 6;  -0.3 -> 1.2 -> 1;  0.8125 -> 3.25 -> 3;  0.125 -> 0.5 -> 0 (tie, even);
//   0.375 -> 1.5 -> 2 (tie, even);  0.625 -> 2.5 -> 2 (tie, even);  -0.125 -> 0 with sign;
//   1.0 -> 4;  0 -> 0;  -0.0 -> 0 with sign;  0.9 -> 3.6 -> 4;  1.4 -> 5.6 -> 6;
//   0.0625 -> 0.25 -> 0;  0.1875 -> 0.75 -> 1;  -1.125 -> 4.5 -> 4 (tie, even);  0.5 -> 2.
// Codes (bit 3 = sign): 6, 9, 3, 0, 2, 2, 8, 4, 0, 8, 4, 6, 0, 1, 12, 2; two per byte, element
// 2j in the low nibble of byte 1 + j.
TEST(BlockFp, HandComputedBlockW4) {
  FormatPtr f = Parse("bfp:w=4,block=16");
  ASSERT_NE(f, nullptr);
  const std::vector<float> x = {1.5f, -0.3f, 0.8125f, 0.125f, 0.375f,  0.625f,  -0.125f, 1.0f,
                                0.0f, -0.0f, 0.9f,    1.4f,   0.0625f, 0.1875f, -1.125f, 0.5f};
  const Qdq r = RunRow(*f, x);
  const std::vector<uint8_t> expected_bytes = {0x01, 0x96, 0x03, 0x22, 0x48,
                                               0x80, 0x64, 0x10, 0x2C};
  EXPECT_EQ(r.bytes, expected_bytes);
  const std::vector<float> expected = {1.5f, -0.25f, 0.75f, 0.0f, 0.5f, 0.5f,  -0.0f, 1.0f,
                                       0.0f, -0.0f,  1.0f,  1.5f, 0.0f, 0.25f, -1.0f, 0.5f};
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(r.values[i], expected[i]) << "i=" << i;
    EXPECT_EQ(std::signbit(r.values[i]), std::signbit(expected[i])) << "sign of zero, i=" << i;
  }
  // No element saturates, so every bound is half a unit, 0.125.
  std::vector<float> bound(x.size());
  f->ErrorBound(x.data(), 1, 16, bound.data());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(bound[i], 0.125f) << "i=" << i;
    EXPECT_LE(std::fabs(static_cast<double>(x[i]) - r.values[i]), bound[i]) << "i=" << i;
  }
}

// w=6 codes straddle bytes. max = 31/32: floor(log2) = -1, E = 0, unit 2^-5, so x = M/32 gives M.
// Codes (bit 5 = sign): c0 = 31, c1 = 32|1 = 33, c2 = 16, c3 = 0, c4 = 5, c5 = 32|17 = 49.
// Stream: byte1 = c0 | (c1 << 6) & 0xFF = 0x1F | 0x40 = 0x5F; byte2 = c1 >> 2 | c2 << 4 = 0x08;
// byte3 = c2 >> 4 | c3 << 2 = 0x01; byte4 = c4 | c5 << 6 = 0x05 | 0x40 = 0x45; byte5 = c5 >> 2
// = 0x0C; the remaining ten zero codes fill bytes 6..12 with 0. block_bytes = 1 + 96/8 = 13.
TEST(BlockFp, PackedLayoutW6StraddlesBytes) {
  FormatPtr f = Parse("bfp6");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->block_bytes(), 13);
  const std::vector<float> x =
      Block16({31 / 32.0f, -1 / 32.0f, 16 / 32.0f, 0.0f, 5 / 32.0f, -17 / 32.0f});
  const Qdq r = RunRow(*f, x);
  const std::vector<uint8_t> expected = {0x00, 0x5F, 0x08, 0x01, 0x45, 0x0C, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(r.bytes, expected);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(r.values[i], x[i]) << "exact, i=" << i;
}

// A maximum that is an exact power of two, under the two exponent rules.
// exp=floor1: floor(log2 2) + 1 = 2, unit 2^(2-7) = 2^-5, M = 64, decoded exactly.
// exp=ceil (the default): ceil(log2 2) = 1, unit 2^-6, 2.0 would need M = 128 > 127 and
// saturates to 127/64 = 1.984375; -0.5 = -32 units is exact.
TEST(BlockFp, PowerOfTwoMaximumUnderBothExponentRules) {
  FormatPtr floor1 = Parse("bfp:w=8,block=16,exp=floor1");
  ASSERT_NE(floor1, nullptr);
  const Qdq r = RunRow(*floor1, Block16({2.0f, -0.5f}));
  EXPECT_EQ(r.bytes[0], 0x02);
  EXPECT_EQ(r.bytes[1], 64);         // +2.0 = 64 * 2^-5
  EXPECT_EQ(r.bytes[2], 0x80 | 16);  // -0.5 = -16 * 2^-5
  EXPECT_EQ(r.values[0], 2.0f);
  EXPECT_EQ(r.values[1], -0.5f);

  FormatPtr ceil = Parse("bfp8");
  ASSERT_NE(ceil, nullptr);
  const Qdq c = RunRow(*ceil, Block16({2.0f, -0.5f}));
  EXPECT_EQ(c.bytes[0], 0x01);
  EXPECT_EQ(c.bytes[1], 127);
  EXPECT_EQ(c.bytes[2], 0x80 | 32);
  EXPECT_EQ(c.values[0], 1.984375f);
  EXPECT_EQ(c.values[1], -0.5f);
}

// Re-quantizing where the maximum rounds down to a power of two: w=3, max 1.2 -> E = 1 under both
// rules (1.2 is no power of two), unit 0.5, M = round(2.4) = 2, i.e. 1.0.
// floor1: re-quantizing 1.0 gives E = floor(0) + 1 = 1 again and the same bytes (idempotent).
// ceil: re-quantizing 1.0 gives E = ceil(0) = 0, unit 0.25, 1.0 saturates to 3 * 0.25 = 0.75 -
// the documented reason Format::idempotent() is false for exp=ceil.
TEST(BlockFp, RequantizingWhenMaxRoundsToPowerOfTwo) {
  FormatPtr floor1 = Parse("bfp:w=3,block=16,exp=floor1");
  ASSERT_NE(floor1, nullptr);
  EXPECT_TRUE(floor1->idempotent());
  const Qdq once = RunRow(*floor1, Block16({1.2f, -0.7f, 0.3f}));
  EXPECT_EQ(once.bytes[0], 0x01);
  EXPECT_EQ(once.values[0], 1.0f);
  EXPECT_EQ(once.values[1], -0.5f);  // 0.7 / 0.5 = 1.4 -> 1
  EXPECT_EQ(once.values[2], 0.5f);   // 0.3 / 0.5 = 0.6 -> 1
  const Qdq twice = RunRow(*floor1, once.values);
  EXPECT_EQ(twice.bytes, once.bytes);

  FormatPtr ceil = Parse("bfp3");
  ASSERT_NE(ceil, nullptr);
  EXPECT_FALSE(ceil->idempotent());
  const Qdq c1 = RunRow(*ceil, Block16({1.2f, -0.7f, 0.3f}));
  EXPECT_EQ(c1.bytes, once.bytes);
  const Qdq c2 = RunRow(*ceil, c1.values);
  EXPECT_EQ(c2.bytes[0], 0x00);
  EXPECT_EQ(c2.values[0], 0.75f);
  EXPECT_EQ(c2.values[1], -0.5f);
  EXPECT_EQ(c2.values[2], 0.5f);
}

// Away from power-of-two maxima the ceil rule is idempotent too: blocks whose dequantized maximum
// is not a power of two re-quantize to the same bytes.
TEST(BlockFp, CeilRuleIsIdempotentAwayFromPowerOfTwoMaxima) {
  std::mt19937_64 rng(11);
  for (const char* name : {"bfp8", "bfp6", "bfp4", "bfp3", "bfp6_b32"}) {
    FormatPtr f = Parse(name);
    ASSERT_NE(f, nullptr);
    const int64_t b = f->block_size();
    int checked = 0;
    for (int kind = 0; kind < testing::kNumRandomKinds; ++kind) {
      const std::vector<float> x = testing::RandomFloats(rng, static_cast<size_t>(64 * b), kind);
      const Qdq once = RunRow(*f, x);
      const Qdq twice = RunRow(*f, once.values);
      for (int64_t blk = 0; blk < 64; ++blk) {
        float max_abs = 0.0f;
        for (int64_t i = 0; i < b; ++i) max_abs = std::max(max_abs, std::fabs(once.values[blk * b + i]));
        int exp2 = 0;
        if (max_abs == 0.0f || std::frexp(max_abs, &exp2) == 0.5f) continue;  // power of two
        for (int64_t i = 0; i < b; ++i) {
          ASSERT_EQ(twice.values[blk * b + i], once.values[blk * b + i]) << name;
        }
        ++checked;
      }
    }
    EXPECT_GT(checked, 100) << name;
  }
}

// Saturation at the block max: w=4, max 1.9 -> E = 1, unit 0.25, 1.9 / 0.25 = 7.6 rounds to 8,
// above the largest code 7, so 1.75; 1.875 = 7.5 units ties to even 8 and saturates too.
// The bound there is the clipping error 1.9 - 1.75 = 0.15 (larger than half a unit).
TEST(BlockFp, SaturatesAtTheBlockMaximum) {
  FormatPtr f = Parse("bfp4");
  ASSERT_NE(f, nullptr);
  const std::vector<float> x = Block16({1.9f, 1.875f, -1.8f});
  const Qdq r = RunRow(*f, x);
  EXPECT_EQ(r.bytes[0], 0x01);
  EXPECT_EQ(r.bytes[1], 0x77);  // codes 7 and 7
  EXPECT_EQ(r.bytes[2], 0x0F);  // code 8|7 = 15 (-1.8 -> 7.2 -> 7), then 0
  EXPECT_EQ(r.values[0], 1.75f);
  EXPECT_EQ(r.values[1], 1.75f);
  EXPECT_EQ(r.values[2], -1.75f);
  std::vector<float> bound(16);
  f->ErrorBound(x.data(), 1, 16, bound.data());
  EXPECT_GE(bound[0], 1.9f - 1.75f);
  EXPECT_LT(bound[0], 0.1501f);
  EXPECT_EQ(bound[1], 0.125f);  // 1.875 - 1.75 = 0.125 = half a unit
  EXPECT_EQ(bound[2], 0.125f);
  for (int i = 0; i < 3; ++i) EXPECT_LE(std::fabs(x[i] - r.values[i]), bound[i]);
}

// Exponents of tiny, huge and subnormal blocks (w=8: unit 2^(E-7), M <= 127).
TEST(BlockFp, SharedExponentOfTinyHugeAndSubnormalBlocks) {
  FormatPtr f = Parse("bfp8");
  ASSERT_NE(f, nullptr);
  {
    // 1e-30 = 1.26765 * 2^-100: E = -99 (0x9D), M = round(1.26765 * 64 = 81.13) = 81.
    const Qdq r = RunRow(*f, Block16({1e-30f}));
    EXPECT_EQ(r.bytes[0], 0x9D);
    EXPECT_EQ(r.bytes[1], 81);
    EXPECT_EQ(r.values[0], std::ldexp(81.0f, -106));
  }
  {
    // 1e30 = 1.57772 * 2^99: E = 100 (0x64), M = round(1.57772 * 64 = 100.97) = 101.
    const Qdq r = RunRow(*f, Block16({-1e30f}));
    EXPECT_EQ(r.bytes[0], 0x64);
    EXPECT_EQ(r.bytes[1], 0x80 | 101);
    EXPECT_EQ(r.values[0], -std::ldexp(101.0f, 93));
  }
  {
    // Subnormal floats: max 2^-130 wants E = -129, clamped to -128 (0x80); unit 2^-135, so
    // 2^-130 = 32 units exactly, 3 * 2^-140 = 0.09375 units -> 0, and denorm_min -> 0.
    const float denorm_min = std::numeric_limits<float>::denorm_min();
    const Qdq r = RunRow(*f, Block16({std::ldexp(1.0f, -130), std::ldexp(3.0f, -140), denorm_min}));
    EXPECT_EQ(r.bytes[0], 0x80);
    EXPECT_EQ(r.bytes[1], 32);
    EXPECT_EQ(r.values[0], std::ldexp(1.0f, -130));
    EXPECT_EQ(r.values[1], 0.0f);
    EXPECT_EQ(r.values[2], 0.0f);
  }
  {
    // FLT_MAX: floor(log2) + 1 = 128 is clamped to 127 (0x7F); FLT_MAX / 2^120 = 255.99 and
    // 2^127 / 2^120 = 128 both saturate to 127; 2^126 is 64 units exactly.
    const Qdq r = RunRow(*f, Block16({FLT_MAX, std::ldexp(1.0f, 127), std::ldexp(1.0f, 126)}));
    EXPECT_EQ(r.bytes[0], 0x7F);
    EXPECT_EQ(r.bytes[1], 127);
    EXPECT_EQ(r.bytes[2], 127);
    EXPECT_EQ(r.bytes[3], 64);
    EXPECT_EQ(r.values[0], std::ldexp(127.0f, 120));
    EXPECT_EQ(r.values[2], std::ldexp(1.0f, 126));
  }
}

// All-zero block: E = -128 (log2 0 = -inf, clamped) and zero codes, signs of -0.0 kept.
TEST(BlockFp, AllZeroBlock) {
  FormatPtr f = Parse("bfp5");
  ASSERT_NE(f, nullptr);
  const Qdq r = RunRow(*f, Block16({0.0f, -0.0f}));
  ASSERT_EQ(r.bytes.size(), 11u);  // 1 + 16 * 5 / 8
  EXPECT_EQ(r.bytes[0], 0x80);
  // code0 = 0 at stream bits 0..4, code1 = 0b10000 (sign only) at bits 5..9: bit 9 is bit 1 of
  // byte 2.
  EXPECT_EQ(r.bytes[1], 0x00);
  EXPECT_EQ(r.bytes[2], 0x02);
  for (size_t i = 3; i < r.bytes.size(); ++i) EXPECT_EQ(r.bytes[i], 0) << "byte " << i;
  for (float v : r.values) EXPECT_EQ(v, 0.0f);
  EXPECT_FALSE(std::signbit(r.values[0]));
  EXPECT_TRUE(std::signbit(r.values[1]));
}

// Documented non-finite handling: NaN -> zero with the NaN's sign, ignored for E; +-Inf -> like
// +-FLT_MAX (E = 127, saturated code), which flushes the block's ordinary values to zero.
TEST(BlockFp, NanAndInfInputs) {
  FormatPtr f = Parse("bfp8");
  ASSERT_NE(f, nullptr);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  {
    // max over non-NaN = 0.75: E = floor(-0.415) + 1 = 0, unit 2^-7, 0.75 = 96 units.
    const Qdq r = RunRow(*f, Block16({nan, 0.75f, -nan}));
    EXPECT_EQ(r.bytes[0], 0x00);
    EXPECT_EQ(r.bytes[1], 0x00);
    EXPECT_EQ(r.bytes[2], 96);
    EXPECT_EQ(r.bytes[3], 0x80);
    EXPECT_EQ(r.values[0], 0.0f);
    EXPECT_FALSE(std::signbit(r.values[0]));
    EXPECT_EQ(r.values[1], 0.75f);
    EXPECT_TRUE(std::signbit(r.values[2]));
  }
  {
    const Qdq r = RunRow(*f, Block16({inf, -inf, 1.0f}));
    EXPECT_EQ(r.bytes[0], 0x7F);
    EXPECT_EQ(r.bytes[1], 127);
    EXPECT_EQ(r.bytes[2], 0x80 | 127);
    EXPECT_EQ(r.values[0], std::ldexp(127.0f, 120));
    EXPECT_EQ(r.values[1], -std::ldexp(127.0f, 120));
    EXPECT_EQ(r.values[2], 0.0f);
  }
}

TEST(BlockFp, BadSpecsNameTheKey) {
  for (const char* spec : {"bfp:w=9", "bfp:w=2", "bfp:block=0", "bfp:block=1", "bfp:block=257",
                           "bfp:w=x", "bfp:w=6,e=3"}) {
    auto f = ParseFormat(spec);
    ASSERT_FALSE(f.ok()) << spec;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << spec;
  }
  EXPECT_NE(ParseFormat("bfp:w=9").status().message().find("w=9"), std::string::npos);
  EXPECT_NE(ParseFormat("bfp:block=0").status().message().find("block=0"), std::string::npos);
  EXPECT_NE(ParseFormat("bfp:w=6,e=3").status().message().find("'e'"), std::string::npos);
}

TEST(BlockFp, PresetsSpecsAndBitsPerWeight) {
  struct Case {
    const char* name;
    const char* spec;
    double bits_per_weight;
  };
  for (const Case& c :
       {Case{"bfp8", "bfp:w=8,block=16,exp=ceil", 8.5}, Case{"bfp6", "bfp:w=6,block=16,exp=ceil", 6.5},
        Case{"bfp5", "bfp:w=5,block=16,exp=ceil", 5.5}, Case{"bfp4", "bfp:w=4,block=16,exp=ceil", 4.5},
        Case{"bfp3", "bfp:w=3,block=16,exp=ceil", 3.5}, Case{"bfp8_b32", "bfp:w=8,block=32,exp=ceil", 8.25},
        Case{"bfp6_b32", "bfp:w=6,block=32,exp=ceil", 6.25}, Case{"bfp4_b32", "bfp:w=4,block=32,exp=ceil", 4.25}}) {
    FormatPtr f = Parse(c.name);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->spec(), c.spec);
    EXPECT_EQ(f->family(), "bfp");
    EXPECT_DOUBLE_EQ(f->NominalBitsPerWeight(), c.bits_per_weight) << c.name;
  }
  // bfp6, block 16: 6 + 8/16 = 6.5 bits, i.e. 32 / 6.5 = 4.92x the density of float32.
  EXPECT_NEAR(32.0 / Parse("bfp6")->NominalBitsPerWeight(), 4.923, 0.001);
  // Defaults, and a block whose codes do not fill whole bytes: 3 * 7 = 21 bits -> 3 bytes + 1.
  EXPECT_EQ(Parse("bfp")->spec(), "bfp:w=8,block=16,exp=ceil");
  FormatPtr odd = Parse("bfp:block=3,w=7");
  ASSERT_NE(odd, nullptr);
  EXPECT_EQ(odd->spec(), "bfp:w=7,block=3,exp=ceil");
  EXPECT_EQ(odd->block_bytes(), 4);
  EXPECT_DOUBLE_EQ(odd->BitsPerWeight(1, 3), 32.0 / 3.0);
}

// Reference by search: E = the smallest integer with max|x| <= 2^E (ceil; clamped), then for each element
// the magnitude M in 0..2^(w-1)-1 minimising |x| - M * 2^(E-w+1)|, ties to even M.
TEST(BlockFp, MatchesBruteForceNearestSearch) {
  std::mt19937_64 rng(7);
  for (const char* name : {"bfp8", "bfp6", "bfp5", "bfp4", "bfp3", "bfp4_b32"}) {
    FormatPtr f = Parse(name);
    ASSERT_NE(f, nullptr);
    const int w = name[3] - '0';
    const int64_t b = f->block_size();
    const int max_m = (1 << (w - 1)) - 1;
    for (int kind = 0; kind < testing::kNumRandomKinds; ++kind) {
      const std::vector<float> x = testing::RandomFloats(rng, static_cast<size_t>(64 * b), kind);
      const Qdq r = RunRow(*f, x);
      for (int64_t blk = 0; blk < 64; ++blk) {
        double max_abs = 0.0;
        for (int64_t i = 0; i < b; ++i)
          max_abs = std::max(max_abs, std::fabs(double{x[blk * b + i]}));
        int e = -128;
        if (max_abs > 0.0) {
          e = -200;
          while (!(max_abs <= std::ldexp(1.0, e))) ++e;
          e = std::min(std::max(e, -128), 127);
        }
        ASSERT_EQ(static_cast<int8_t>(r.bytes[blk * f->block_bytes()]), e) << name;
        const double unit = std::ldexp(1.0, e - (w - 1));
        for (int64_t i = 0; i < b; ++i) {
          const double a = std::fabs(double{x[blk * b + i]});
          int best = 0;
          for (int m = 1; m <= max_m; ++m) {
            const double d = std::fabs(a - m * unit), d_best = std::fabs(a - best * unit);
            if (d < d_best || (d == d_best && m % 2 == 0)) best = m;
          }
          const float expected = static_cast<float>(std::copysign(best * unit, x[blk * b + i]));
          ASSERT_EQ(r.values[blk * b + i], expected) << name << " x=" << x[blk * b + i];
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
