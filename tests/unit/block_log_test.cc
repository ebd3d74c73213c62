// Block logarithm ("bl", src/formats/block_log.cc): hand-computed blocks, the byte layout,
// log-domain rounding at the sqrt(2) threshold, underflow to zero, the shared exponent at its
// clamps (tiny, huge, subnormal blocks), NaN/Inf, spec errors and storage cost; plus a reference
// that rounds with long-double log2 instead of the format's exact squared-mantissa test.
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

// bl8: k = 7, codes c = 1..127 are 2^(c - 127 + S), c = 0 is zero; one code per byte, bit 7 sign.
// Block max 3.0: log2 3 = 1.585 rounds to S = 2, so code 127 = 4.0 and code 1 = 2^-124.
//   3.0        -> r = 2:    c = 127 -> 0x7F (4.0)
//   1.4        -> log2 = 0.485 (1.4 < sqrt 2): r = 0, c = 125 -> 0x7D (1.0)
//   1.42       -> log2 = 0.506: r = 1, c = 126 -> 0x7E (2.0)
//  -0.7        -> log2 = -0.515: r = -1, c = 124 -> 0xFC (-0.5)
//   2^-120     -> c = -120 - 2 + 127 = 5 -> 0x05 (exact)
//   2^-124     -> c = 1 -> 0x01, the smallest code
//   2^-125     -> r = -125 < -124: underflow -> 0x00
//   1.42*2^-125 -> log2 = -124.494: r = -124 -> 0x01 (2^-124)
//   1.4*2^-125  -> r = -125: underflow -> 0x00
//  -0.0        -> 0x80
TEST(BlockLog, HandComputedBlockK7) {
  FormatPtr f = Parse("bl8");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->block_bytes(), 17);
  const std::vector<float> x =
      Block16({3.0f, 1.4f, 1.42f, -0.7f, std::ldexp(1.0f, -120), std::ldexp(1.0f, -124),
               std::ldexp(1.0f, -125), std::ldexp(1.42f, -125), std::ldexp(1.4f, -125), -0.0f});
  const Qdq r = RunRow(*f, x);
  const std::vector<uint8_t> expected_bytes = {0x02, 0x7F, 0x7D, 0x7E, 0xFC, 0x05, 0x01, 0x00, 0x01,
                                               0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(r.bytes, expected_bytes);
  const std::vector<float> expected =
      Block16({4.0f, 1.0f, 2.0f, -0.5f, std::ldexp(1.0f, -120), std::ldexp(1.0f, -124), 0.0f,
               std::ldexp(1.0f, -124), 0.0f, -0.0f});
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(r.values[i], expected[i]) << "i=" << i;
    EXPECT_EQ(std::signbit(r.values[i]), std::signbit(expected[i])) << "i=" << i;
  }
  // Bounds: (sqrt(2) - 1) |x| inside the code range, |x| where the element underflows.
  std::vector<float> bound(16);
  f->ErrorBound(x.data(), 1, 16, bound.data());
  EXPECT_NEAR(bound[0], 0.41421356 * 3.0, 1e-6);
  EXPECT_NEAR(bound[1], 0.41421356 * 1.4, 1e-6);
  EXPECT_EQ(bound[6], std::ldexp(1.0f, -125));
  EXPECT_EQ(bound[8], std::ldexp(1.4f, -125));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_LE(std::fabs(x[i] - r.values[i]), bound[i]);
}

// bl4: k = 3, codes c = 1..7 are 2^(c - 7 + S); two 4-bit codes per byte (element 2j low nibble).
// Block max 0.75: log2 0.75 = -0.415 rounds to S = 0.
//   0.75   -> r = 0:  c = 7           -> 7  (1.0)
//   0.3    -> log2 = -1.737: r = -2, c = 5 -> 5 (0.25)
//  -0.04   -> log2 = -4.644: r = -5, c = 2 -> 8|2 = 10 (-1/32)
//   0.02   -> log2 = -5.644: r = -6, c = 1 -> 1 (1/64)
//   0.011  -> below 2^-6.5 = 0.0110485: r = -7 < -6, underflow -> 0
//   0.0111 -> above 2^-6.5: r = -6, c = 1 -> 1 (1/64)
// Bytes: 7 | 5 << 4 = 0x57, 10 | 1 << 4 = 0x1A, 0 | 1 << 4 = 0x10, then zeros.
TEST(BlockLog, HandComputedBlockK3) {
  FormatPtr f = Parse("bl4");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->block_bytes(), 9);
  const std::vector<float> x = Block16({0.75f, 0.3f, -0.04f, 0.02f, 0.011f, 0.0111f});
  const Qdq r = RunRow(*f, x);
  const std::vector<uint8_t> expected_bytes = {0x00, 0x57, 0x1A, 0x10, 0x00,
                                               0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(r.bytes, expected_bytes);
  const std::vector<float> expected = Block16({1.0f, 0.25f, -0.03125f, 0.015625f, 0.0f, 0.015625f});
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(r.values[i], expected[i]) << "i=" << i;
}

// bl6: k = 5, 6-bit codes. Block max 1.0: S = 0, code 31 = 1.0, -0.5 = 32 | 30 = 62.
// byte1 = 31 | (62 << 6) & 0xFF = 0x9F, byte2 = 62 >> 2 = 0x0F.
TEST(BlockLog, PackedLayoutK5) {
  FormatPtr f = Parse("bl6");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->block_bytes(), 13);
  const Qdq r = RunRow(*f, Block16({1.0f, -0.5f}));
  const std::vector<uint8_t> expected = {0x00, 0x9F, 0x0F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(r.bytes, expected);
  EXPECT_EQ(r.values[0], 1.0f);
  EXPECT_EQ(r.values[1], -0.5f);
}

// The rounding threshold is 2^(e + 1/2): the float just below sqrt(2) (1.41421354) rounds to
// 2^0 and the next float up (1.41421366) to 2^1. No float equals the threshold (sqrt(2) is
// irrational), so there are no ties.
TEST(BlockLog, RoundsAtTheSqrt2Threshold) {
  FormatPtr f = Parse("bl8");
  ASSERT_NE(f, nullptr);
  const float below = 1.41421354f;
  const float above = std::nextafter(below, 2.0f);
  ASSERT_LT(static_cast<double>(below), std::sqrt(2.0));
  ASSERT_GT(static_cast<double>(above), std::sqrt(2.0));
  const Qdq r = RunRow(*f, Block16({2.0f, below, above, -below * 0.25f, -above * 0.25f}));
  EXPECT_EQ(r.values[1], 1.0f);
  EXPECT_EQ(r.values[2], 2.0f);
  EXPECT_EQ(r.values[3], -0.25f);
  EXPECT_EQ(r.values[4], -0.5f);
}

// Quantizing a dequantized block reproduces it: the max 3.0 became 4.0 = 2^2, and
// RoundLog2(4.0) = 2 = S again.
TEST(BlockLog, RequantizingIsIdempotent) {
  FormatPtr f = Parse("bl5");
  ASSERT_NE(f, nullptr);
  const Qdq once = RunRow(*f, Block16({3.0f, -0.3f, 0.05f, 1e-3f}));
  const Qdq twice = RunRow(*f, once.values);
  EXPECT_EQ(twice.bytes, once.bytes);
  EXPECT_EQ(once.values[0], 4.0f);
}

TEST(BlockLog, SharedExponentOfTinyHugeAndSubnormalBlocks) {
  FormatPtr f = Parse("bl8");
  ASSERT_NE(f, nullptr);
  {
    // log2 1e30 = 99.66 -> S = 100 (0x64): the max becomes 2^100 (code 127).
    const Qdq r = RunRow(*f, Block16({1e30f}));
    EXPECT_EQ(r.bytes[0], 0x64);
    EXPECT_EQ(r.bytes[1], 0x7F);
    EXPECT_EQ(r.values[0], std::ldexp(1.0f, 100));
  }
  {
    // log2 1e-30 = -99.66 -> S = -100 (0x9C): 2^-100.
    const Qdq r = RunRow(*f, Block16({-1e-30f}));
    EXPECT_EQ(r.bytes[0], 0x9C);
    EXPECT_EQ(r.bytes[1], 0xFF);
    EXPECT_EQ(r.values[0], -std::ldexp(1.0f, -100));
  }
  {
    // denorm_min = 2^-149: S = -149 is clamped to -128 (0x80); k = 7 reaches down to code
    // c = -149 + 128 + 127 = 106, so the subnormal is kept exactly.
    const float denorm_min = std::numeric_limits<float>::denorm_min();
    const Qdq r = RunRow(*f, Block16({denorm_min}));
    EXPECT_EQ(r.bytes[0], 0x80);
    EXPECT_EQ(r.bytes[1], 106);
    EXPECT_EQ(r.values[0], denorm_min);
    // With k = 3 the same block underflows: c = -149 + 128 + 7 < 1.
    const Qdq r3 = RunRow(*Parse("bl4"), Block16({denorm_min}));
    EXPECT_EQ(r3.bytes[0], 0x80);
    EXPECT_EQ(r3.values[0], 0.0f);
  }
  {
    // FLT_MAX rounds to 2^128 (mantissa ~2 >= sqrt 2): S = 128 clamps to 127 and the element
    // saturates to 2^127; 1.3 * 2^127 rounds to 2^127 itself (same code); +-Inf acts as FLT_MAX.
    const float inf = std::numeric_limits<float>::infinity();
    const Qdq r = RunRow(*f, Block16({FLT_MAX, std::ldexp(1.3f, 127), inf, -inf}));
    EXPECT_EQ(r.bytes[0], 0x7F);
    for (int i = 1; i <= 3; ++i) EXPECT_EQ(r.bytes[i], 0x7F) << i;
    EXPECT_EQ(r.bytes[4], 0xFF);
    EXPECT_EQ(r.values[0], std::ldexp(1.0f, 127));
    EXPECT_EQ(r.values[3], -std::ldexp(1.0f, 127));
    std::vector<float> bound(16);
    const std::vector<float> x = Block16({FLT_MAX});
    f->ErrorBound(x.data(), 1, 16, bound.data());
    EXPECT_LE(std::fabs(static_cast<double>(FLT_MAX) - r.values[0]), bound[0]);
  }
}

TEST(BlockLog, AllZeroBlockAndNan) {
  FormatPtr f = Parse("bl8");
  ASSERT_NE(f, nullptr);
  const Qdq zeros = RunRow(*f, Block16({0.0f, -0.0f}));
  EXPECT_EQ(zeros.bytes[0], 0x80);
  EXPECT_EQ(zeros.bytes[1], 0x00);
  EXPECT_EQ(zeros.bytes[2], 0x80);
  for (float v : zeros.values) EXPECT_EQ(v, 0.0f);
  // NaN: zero with the NaN's sign, left out of the max (S = RoundLog2(0.75) = 0).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Qdq r = RunRow(*f, Block16({nan, 0.75f, -nan}));
  EXPECT_EQ(r.bytes[0], 0x00);
  EXPECT_EQ(r.bytes[1], 0x00);
  EXPECT_EQ(r.bytes[2], 0x7F);
  EXPECT_EQ(r.bytes[3], 0x80);
  EXPECT_EQ(r.values[1], 1.0f);
}

TEST(BlockLog, BadSpecsNameTheKey) {
  for (const char* spec : {"bl:k=0", "bl:k=8", "bl:block=0", "bl:block=257", "bl:e=3"}) {
    auto f = ParseFormat(spec);
    ASSERT_FALSE(f.ok()) << spec;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << spec;
  }
  EXPECT_NE(ParseFormat("bl:k=8").status().message().find("k=8"), std::string::npos);
}

TEST(BlockLog, PresetsSpecsAndBitsPerWeight) {
  struct Case {
    const char* name;
    const char* spec;
    double bits_per_weight;
  };
  for (const Case& c : {Case{"bl8", "bl:k=7,block=16", 8.5}, Case{"bl6", "bl:k=5,block=16", 6.5},
                        Case{"bl5", "bl:k=4,block=16", 5.5}, Case{"bl4", "bl:k=3,block=16", 4.5}}) {
    FormatPtr f = Parse(c.name);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->spec(), c.spec);
    EXPECT_EQ(f->family(), "bl");
    EXPECT_DOUBLE_EQ(f->NominalBitsPerWeight(), c.bits_per_weight) << c.name;
  }
  EXPECT_EQ(Parse("bl")->spec(), "bl:k=7,block=16");
  // 2-bit elements (k = 1: +-2^S or +-0): 3 * 2 = 6 bits -> 1 byte, plus the exponent byte.
  FormatPtr tiny = Parse("bl:k=1,block=3");
  ASSERT_NE(tiny, nullptr);
  EXPECT_EQ(tiny->block_bytes(), 2);
}

// Reference: S = the integer nearest to log2 max|x| (long double log2; clamped), each element the
// integer r nearest to log2|x|, kept if 1 <= r - S + 2^k - 1 (else 0), capped at S.
TEST(BlockLog, MatchesLog2Reference) {
  std::mt19937_64 rng(13);
  for (const char* name : {"bl8", "bl6", "bl5", "bl4"}) {
    FormatPtr f = Parse(name);
    ASSERT_NE(f, nullptr);
    const int k = name[2] - '0' - 1;
    const int top = (1 << k) - 1;
    const int64_t b = f->block_size();
    for (int kind = 0; kind < testing::kNumRandomKinds; ++kind) {
      const std::vector<float> x = testing::RandomFloats(rng, static_cast<size_t>(64 * b), kind);
      const Qdq r = RunRow(*f, x);
      for (int64_t blk = 0; blk < 64; ++blk) {
        long double max_abs = 0.0L;
        for (int64_t i = 0; i < b; ++i) {
          max_abs = std::max(max_abs, std::fabs(static_cast<long double>(x[blk * b + i])));
        }
        const int s = max_abs > 0
                          ? std::clamp(static_cast<int>(std::lround(std::log2(max_abs))), -128, 127)
                          : -128;
        ASSERT_EQ(static_cast<int8_t>(r.bytes[blk * f->block_bytes()]), s) << name;
        for (int64_t i = 0; i < b; ++i) {
          const float xi = x[blk * b + i];
          float expected = 0.0f;
          if (xi != 0.0f) {
            const int rr = std::min(
                static_cast<int>(std::lround(std::log2(std::fabs(static_cast<long double>(xi))))),
                s);
            if (rr - s + top >= 1) expected = std::ldexp(1.0f, rr);
          }
          expected = std::copysign(expected, xi);
          ASSERT_EQ(r.values[blk * b + i], expected) << name << " x=" << xi;
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
