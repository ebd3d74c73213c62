// Block minifloat ("bm", src/formats/block_minifloat.cc): hand-computed blocks for E4M3, E2M1 and
// E3M2 elements, the byte layout, the shared-exponent rule (block max in the element's top
// binade) at its edges, saturation, subnormals, NaN/Inf, spec errors and storage cost; plus a
// brute-force reference that picks the nearest element value from the full code table.
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

// bm8 = E4M3 elements, bias 7, every code finite: top binade exponent emax = 15 - 7 = 8, largest
// element 1.875 * 2^8 = 480, smallest normal 2^-6, smallest subnormal 2^-9.
// Block max 3.0: S = floor(log2 3) = 1, so elements are x * 2^(emax - S) = x * 128.
//   3.0    -> 384 = 1.5 * 2^8:  F = 15, M = 4  -> 0x7C
//   1.0    -> 128 = 2^7:        F = 14, M = 0  -> 0x70
//  -0.5    -> 64 = 2^6:         F = 13, M = 0  -> 0xE8 (sign)
//   3.1    -> 396.8: step 32 in [256, 512): 12.4 -> 12 -> 384 -> 0x7C (3.0)
//   1.0625 -> 136: step 16 in [128, 256): 8.5, tie to even 8 -> 128 -> 0x70 (1.0)
//   1.1875 -> 152: 9.5, tie to even 10 -> 160 = 1.25 * 2^7: F = 14, M = 2 -> 0x72 (1.25)
//   2^-14  -> 2^-7: subnormal, step 2^-9: M = 4, F = 0 -> 0x04 (exact)
//   2^-17  -> 2^-10 = half the smallest subnormal: tie to even 0 -> 0x00
//   3*2^-18 -> 0.75 * 2^-9 -> M = 1 -> 0x01 (2^-9 / 128 = 2^-16)
//  -0.0    -> 0x80
TEST(BlockMinifloat, HandComputedBlockE4M3) {
  FormatPtr f = Parse("bm8");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->block_bytes(), 17);
  const std::vector<float> x =
      Block16({3.0f, 1.0f, -0.5f, 3.1f, 1.0625f, 1.1875f, std::ldexp(1.0f, -14),
               std::ldexp(1.0f, -17), std::ldexp(3.0f, -18), -0.0f});
  const Qdq r = RunRow(*f, x);
  const std::vector<uint8_t> expected_bytes = {0x01, 0x7C, 0x70, 0xE8, 0x7C, 0x70, 0x72, 0x04, 0x00,
                                               0x01, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(r.bytes, expected_bytes);
  const std::vector<float> expected =
      Block16({3.0f, 1.0f, -0.5f, 3.0f, 1.0f, 1.25f, std::ldexp(1.0f, -14), 0.0f,
               std::ldexp(1.0f, -16), -0.0f});
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(r.values[i], expected[i]) << "i=" << i;
    EXPECT_EQ(std::signbit(r.values[i]), std::signbit(expected[i])) << "i=" << i;
  }
  // Bounds: half the element step at each element, scaled back by 2^-7: 3.1 -> 16 / 128;
  // 1.1875 -> 8 / 128; the subnormals -> 2^-10 / 128 = 2^-17.
  std::vector<float> bound(16);
  f->ErrorBound(x.data(), 1, 16, bound.data());
  EXPECT_EQ(bound[3], 0.125f);
  EXPECT_EQ(bound[5], 0.0625f);
  EXPECT_EQ(bound[8], std::ldexp(1.0f, -17));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_LE(std::fabs(x[i] - r.values[i]), bound[i]);
}

// bm4 = E2M1, bias 1: values 0, 0.5 | 1, 1.5 | 2, 3 | 4, 6; emax = 2, largest 6.
// Block max 0.7: S = floor(log2 0.7) = -1, elements are x * 2^(2 - (-1)) = x * 8.
//   0.7     -> 5.6: step 2 in [4, 8): 2.8 -> 3 -> 6 (0.75):  F = 3, M = 1 -> 0b0111 = 7
//   0.3     -> 2.4: step 1 in [2, 4): 2 (0.25):              F = 2, M = 0 -> 0b0100 = 4
//  -0.1     -> 0.8: subnormal step 0.5: 1.6 -> 2 -> 1.0 (-0.125): F = 1, M = 0 + sign -> 0b1010
//   0.03125 -> 0.25: 0.5 units, tie to even 0 -> 0
//   0.09375 -> 0.75: 1.5 units, tie to even 2 -> 1.0 (0.125): code 0b0010 = 2
//   0.5625  -> 4.5: 2.25 -> 2 -> 4 (0.5): F = 3, M = 0 -> 0b0110 = 6
//   0.625   -> 5: 2.5, tie to even 2 -> 4 (0.5): 6
// Two codes per byte, element 2j in the low nibble: 0x47, 0x0A, 0x62, 0x06, then zeros.
TEST(BlockMinifloat, HandComputedBlockE2M1) {
  FormatPtr f = Parse("bm4");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->block_bytes(), 9);
  const std::vector<float> x = Block16({0.7f, 0.3f, -0.1f, 0.03125f, 0.09375f, 0.5625f, 0.625f});
  const Qdq r = RunRow(*f, x);
  const std::vector<uint8_t> expected_bytes = {0xFF, 0x47, 0x0A, 0x62, 0x06,
                                               0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(r.bytes, expected_bytes);
  const std::vector<float> expected = Block16({0.75f, 0.25f, -0.125f, 0.0f, 0.125f, 0.5f, 0.5f});
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(r.values[i], expected[i]) << "i=" << i;
}

// bm6 = E3M2, bias 3, emax = 4: block max 1.0 gives S = 0 and element 16 = 2^4: F = 7, M = 0,
// code 0b011100 = 28; -1.0 is 32 | 28 = 60. Six-bit codes: byte1 = 28 | (60 << 6) & 0xFF = 0x1C,
// byte2 = 60 >> 2 = 0x0F.
TEST(BlockMinifloat, PackedLayoutE3M2) {
  FormatPtr f = Parse("bm6");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->block_bytes(), 13);
  const Qdq r = RunRow(*f, Block16({1.0f, -1.0f}));
  const std::vector<uint8_t> expected = {0x00, 0x1C, 0x0F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(r.bytes, expected);
  EXPECT_EQ(r.values[0], 1.0f);
  EXPECT_EQ(r.values[1], -1.0f);
}

// The block max rounds within the top binade or saturates: E4M3, max 3.9 -> S = 1, element 499.2
// rounds (step 32) to 512, above 480, so it saturates to 480 (3.75, code 0x7F); 3.8 -> 486.4 ->
// 15.2 -> 480 too. Quantizing the result again keeps S = floor(log2 3.75) = 1 and the bytes.
TEST(BlockMinifloat, SaturatesAtTheBlockMaximumAndIsIdempotent) {
  FormatPtr f = Parse("bm8");
  ASSERT_NE(f, nullptr);
  const std::vector<float> x = Block16({3.9f, -3.8f, 0.3f});
  const Qdq once = RunRow(*f, x);
  EXPECT_EQ(once.bytes[0], 0x01);
  EXPECT_EQ(once.bytes[1], 0x7F);
  EXPECT_EQ(once.bytes[2], 0xFF);
  EXPECT_EQ(once.values[0], 3.75f);
  EXPECT_EQ(once.values[1], -3.75f);
  std::vector<float> bound(16);
  f->ErrorBound(x.data(), 1, 16, bound.data());
  EXPECT_GE(bound[0], 3.9f - 3.75f);  // clipping error 0.15 > half step 0.125
  EXPECT_LT(bound[0], 0.1501f);
  EXPECT_LE(std::fabs(x[0] - once.values[0]), bound[0]);
  const Qdq twice = RunRow(*f, once.values);
  EXPECT_EQ(twice.bytes, once.bytes);
}

// Shared exponents of tiny, huge and subnormal blocks (E4M3: element = x * 2^(8 - S)).
TEST(BlockMinifloat, SharedExponentOfTinyHugeAndSubnormalBlocks) {
  FormatPtr f = Parse("bm8");
  ASSERT_NE(f, nullptr);
  {
    // 1e30 = 1.57772 * 2^99: S = 99 (0x63); element 1.57772 * 256 = 403.9, step 32: 12.62 -> 13
    // -> 416 = 1.625 * 2^8: F = 15, M = 5 -> 0x7D; value 1.625 * 2^99.
    const Qdq r = RunRow(*f, Block16({1e30f}));
    EXPECT_EQ(r.bytes[0], 0x63);
    EXPECT_EQ(r.bytes[1], 0x7D);
    EXPECT_EQ(r.values[0], std::ldexp(1.625f, 99));
  }
  {
    // 1e-30 = 1.26765 * 2^-100: S = -100 (0x9C); element 324.5 / 32 = 10.14 -> 10 -> 320 =
    // 1.25 * 2^8: M = 2 -> 0x7A; value 1.25 * 2^-100.
    const Qdq r = RunRow(*f, Block16({1e-30f}));
    EXPECT_EQ(r.bytes[0], 0x9C);
    EXPECT_EQ(r.bytes[1], 0x7A);
    EXPECT_EQ(r.values[0], std::ldexp(1.25f, -100));
  }
  {
    // Subnormal floats: floor(log2 2^-140) = -140 is clamped to -128 (0x80), so elements are
    // x * 2^136: 2^-140 -> 2^-4, a normal element (F = -4 + 7 = 3, M = 0: 0x18), exact;
    // denorm_min 2^-149 -> 2^-13, below half the smallest subnormal 2^-9: 0.
    const float denorm_min = std::numeric_limits<float>::denorm_min();
    const Qdq r = RunRow(*f, Block16({std::ldexp(1.0f, -140), -denorm_min}));
    EXPECT_EQ(r.bytes[0], 0x80);
    EXPECT_EQ(r.bytes[1], 0x18);
    EXPECT_EQ(r.bytes[2], 0x80);
    EXPECT_EQ(r.values[0], std::ldexp(1.0f, -140));
    EXPECT_EQ(r.values[1], 0.0f);
    EXPECT_TRUE(std::signbit(r.values[1]));
  }
  {
    // FLT_MAX: S = floor(log2) = 127 (no clamp needed); element (2 - 2^-23) * 2^8 > 480
    // saturates: 1.875 * 2^127. +-Inf behaves like +-FLT_MAX.
    const float inf = std::numeric_limits<float>::infinity();
    const Qdq r = RunRow(*f, Block16({FLT_MAX, inf, -inf, 1.0f}));
    EXPECT_EQ(r.bytes[0], 0x7F);
    EXPECT_EQ(r.bytes[1], 0x7F);
    EXPECT_EQ(r.bytes[2], 0x7F);
    EXPECT_EQ(r.bytes[3], 0xFF);
    EXPECT_EQ(r.values[0], std::ldexp(1.875f, 127));
    EXPECT_EQ(r.values[2], -std::ldexp(1.875f, 127));
    EXPECT_EQ(r.values[3], 0.0f);  // 1.0 * 2^-119 is far below the smallest subnormal
  }
}

TEST(BlockMinifloat, AllZeroBlockAndNan) {
  FormatPtr f = Parse("bm8");
  ASSERT_NE(f, nullptr);
  const Qdq zeros = RunRow(*f, Block16({0.0f, -0.0f}));
  EXPECT_EQ(zeros.bytes[0], 0x80);  // S = -128
  EXPECT_EQ(zeros.bytes[1], 0x00);
  EXPECT_EQ(zeros.bytes[2], 0x80);
  for (float v : zeros.values) EXPECT_EQ(v, 0.0f);
  // NaN: zero with the NaN's sign, left out of the max (S from 0.75: floor(log2) = -1).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Qdq r = RunRow(*f, Block16({nan, 0.75f, -nan}));
  EXPECT_EQ(r.bytes[0], 0xFF);
  EXPECT_EQ(r.bytes[1], 0x00);
  EXPECT_EQ(r.bytes[3], 0x80);
  EXPECT_EQ(r.values[1], 0.75f);
  EXPECT_EQ(r.values[0], 0.0f);
  EXPECT_TRUE(std::signbit(r.values[2]));
}

TEST(BlockMinifloat, BadSpecsNameTheKey) {
  for (const char* spec :
       {"bm:e=5,m=3", "bm:e=0", "bm:e=8,m=0", "bm:m=7", "bm:block=0", "bm:block=257", "bm:w=6"}) {
    auto f = ParseFormat(spec);
    ASSERT_FALSE(f.ok()) << spec;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << spec;
  }
  EXPECT_NE(ParseFormat("bm:e=5,m=3").status().message().find("e=5,m=3"), std::string::npos);
  EXPECT_NE(ParseFormat("bm:block=0").status().message().find("block=0"), std::string::npos);
}

TEST(BlockMinifloat, PresetsSpecsAndBitsPerWeight) {
  struct Case {
    const char* name;
    const char* spec;
    double bits_per_weight;
  };
  for (const Case& c :
       {Case{"bm8", "bm:e=4,m=3,block=16", 8.5}, Case{"bm8_e2m5", "bm:e=2,m=5,block=16", 8.5},
        Case{"bm6", "bm:e=3,m=2,block=16", 6.5}, Case{"bm5", "bm:e=2,m=2,block=16", 5.5},
        Case{"bm4", "bm:e=2,m=1,block=16", 4.5}}) {
    FormatPtr f = Parse(c.name);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->spec(), c.spec);
    EXPECT_EQ(f->family(), "bm");
    EXPECT_DOUBLE_EQ(f->NominalBitsPerWeight(), c.bits_per_weight) << c.name;
  }
  EXPECT_EQ(Parse("bm")->spec(), "bm:e=4,m=3,block=16");
  EXPECT_EQ(Parse("bm:block=32,m=1,e=1")->spec(), "bm:e=1,m=1,block=32");
}

// Reference by search: S = the largest integer with 2^S <= max|x| (clamped to [-128, 127]);
// each element becomes the code whose value v * 2^(S - emax) is nearest to |x|, ties to the even
// code, where v runs over the whole table of non-negative E/M codes (decoded independently here).
TEST(BlockMinifloat, MatchesBruteForceNearestSearch) {
  struct Case {
    const char* name;
    int e, m;
  };
  std::mt19937_64 rng(11);
  for (const Case& c : {Case{"bm8", 4, 3}, Case{"bm8_e2m5", 2, 5}, Case{"bm6", 3, 2},
                        Case{"bm5", 2, 2}, Case{"bm4", 2, 1}}) {
    FormatPtr f = Parse(c.name);
    ASSERT_NE(f, nullptr);
    const int bias = (1 << (c.e - 1)) - 1;
    const int emax = (1 << c.e) - 1 - bias;
    std::vector<double> table;  // value of code k = (F << m) | M, k = 0 .. 2^(e+m) - 1
    for (int field = 0; field < (1 << c.e); ++field) {
      for (int man = 0; man < (1 << c.m); ++man) {
        table.push_back(field == 0 ? std::ldexp(man, 1 - bias - c.m)
                                   : std::ldexp((1 << c.m) + man, field - bias - c.m));
      }
    }
    const int64_t b = f->block_size();
    for (int kind = 0; kind < testing::kNumRandomKinds; ++kind) {
      const std::vector<float> x = testing::RandomFloats(rng, static_cast<size_t>(64 * b), kind);
      const Qdq r = RunRow(*f, x);
      for (int64_t blk = 0; blk < 64; ++blk) {
        double max_abs = 0.0;
        for (int64_t i = 0; i < b; ++i)
          max_abs = std::max(max_abs, std::fabs(double{x[blk * b + i]}));
        int s = -128;
        if (max_abs > 0.0) {
          s = 200;
          while (std::ldexp(1.0, s) > max_abs) --s;
          s = std::min(std::max(s, -128), 127);
        }
        ASSERT_EQ(static_cast<int8_t>(r.bytes[blk * f->block_bytes()]), s) << c.name;
        for (int64_t i = 0; i < b; ++i) {
          const double a = std::fabs(double{x[blk * b + i]});
          size_t best = 0;
          for (size_t k = 1; k < table.size(); ++k) {
            const double d = std::fabs(a - std::ldexp(table[k], s - emax));
            const double d_best = std::fabs(a - std::ldexp(table[best], s - emax));
            if (d < d_best || (d == d_best && k % 2 == 0)) best = k;
          }
          const float expected =
              static_cast<float>(std::copysign(std::ldexp(table[best], s - emax), x[blk * b + i]));
          ASSERT_EQ(r.values[blk * b + i], expected) << c.name << " x=" << x[blk * b + i];
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
