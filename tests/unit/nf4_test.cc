// The "nf4" family: the code table against the QLoRA construction (normal quantiles, computed here
// independently), code selection against bitsandbytes' published decision thresholds, a
// hand-computed block (ties, nibble order, scale bytes), f16 vs f32 scales, zero / NaN / Inf /
// outlier / subnormal-scale blocks, bad specs, and byte idempotence plus the error bound on
// adversarial data.
#include "formats/nf4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
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

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<uint8_t> Pack(const Format& f, const std::vector<float>& x, int64_t rows,
                          int64_t cols) {
  std::vector<uint8_t> packed(static_cast<size_t>(f.PackedBytes(rows, cols)), 0xAA);
  EXPECT_TRUE(f.Quantize(x.data(), rows, cols, packed.data()).ok());
  return packed;
}

std::vector<float> Unpack(const Format& f, const std::vector<uint8_t>& packed, int64_t rows,
                          int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  f.Dequantize(packed.data(), rows, cols, out.data());
  return out;
}

void ExpectInvalid(const std::string& spec, const std::string& key) {
  auto f = ParseFormat(spec);
  ASSERT_FALSE(f.ok()) << spec;
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << spec;
  EXPECT_NE(f.status().message().find(key), std::string::npos)
      << spec << ": '" << f.status().message() << "' does not name " << key;
}

// Standard normal quantile by bisection on Phi(x) = erfc(-x / sqrt 2) / 2 (to ~1e-15).
double NormalQuantile(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

// QLoRA, Appendix E / bitsandbytes create_normal_map(offset = 0.9677083, use_extra_value = True):
// 8 positive quantiles at p = linspace(offset, 0.5, 9)[:-1], 7 negative ones at
// -quantile(linspace(offset, 0.5, 8)[:-1]), and 0; sorted and divided by the largest.
// bitsandbytes evaluated this in float32, so the published constants agree to ~1e-7.
TEST(Nf4Format, TableIsTheQloraConstruction) {
  const double offset = 0.9677083;
  std::vector<double> v = {0.0};
  for (int k = 0; k < 8; ++k) v.push_back(NormalQuantile(offset - k * (offset - 0.5) / 8));
  for (int k = 0; k < 7; ++k) v.push_back(-NormalQuantile(offset - k * (offset - 0.5) / 7));
  std::sort(v.begin(), v.end());
  const double top = v.back();
  for (int c = 0; c < 16; ++c) {
    EXPECT_NEAR(kNf4Values[c], v[c] / top, 2e-7) << "code " << c;
    if (c > 0) {
      EXPECT_LT(kNf4Values[c - 1], kNf4Values[c]);
    }
  }
  EXPECT_EQ(kNf4Values[0], -1.0f);
  EXPECT_EQ(kNf4Values[7], 0.0f);
  EXPECT_EQ(kNf4Values[15], 1.0f);
  // The published decimal constants (bitsandbytes csrc/kernels.cu), rounded to float32.
  const double published[16] = {-1.0,
                                -0.6961928009986877,
                                -0.5250730514526367,
                                -0.39491748809814453,
                                -0.28444138169288635,
                                -0.18477343022823334,
                                -0.09105003625154495,
                                0.0,
                                0.07958029955625534,
                                0.16093020141124725,
                                0.24611230194568634,
                                0.33791524171829224,
                                0.44070982933044434,
                                0.5626170039176941,
                                0.7229568362236023,
                                1.0};
  // Decoding codes 0..15 with A = 1 (f32 bytes 00 00 80 3F; first code of a pair in the high
  // nibble) gives exactly those values.
  FormatPtr f = MustParse("nf4:block=16,scale=f32");
  const std::vector<uint8_t> packed = {0x00, 0x00, 0x80, 0x3F, 0x01, 0x23,
                                       0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF};
  const auto y = Unpack(*f, packed, 1, 16);
  for (int c = 0; c < 16; ++c) EXPECT_EQ(y[c], static_cast<float>(published[c])) << c;
}

// bitsandbytes' dQuantizeNF4 decision tree compares x / absmax against these thresholds (the
// midpoints, as published); away from the thresholds our exact nearest rounding must agree.
TEST(Nf4Format, CodesMatchBitsandbytesThresholds) {
  const double thresholds[15] = {-0.8480964004993439,   -0.6106329262256622,  -0.4599952697753906,
                                 -0.33967943489551544,  -0.23460740596055984, -0.13791173323988914,
                                 -0.045525018125772476, 0.03979014977812767,  0.1202552504837513,
                                 0.2035212516784668,    0.2920137718319893,   0.3893125355243683,
                                 0.5016634166240692,    0.6427869200706482,   0.8614784181118011};
  FormatPtr f = MustParse("nf4:block=64,scale=f32");
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  int compared = 0;
  for (int block = 0; block < 2000; ++block) {
    std::vector<float> x(64);
    x[0] = 1.0f;  // A = 1, so x / A = x exactly
    for (int i = 1; i < 64; ++i) x[i] = uni(rng);
    const auto p = Pack(*f, x, 1, 64);
    for (int i = 1; i < 64; ++i) {
      int expect = 0;
      bool near = false;
      for (double t : thresholds) {
        expect += x[i] > t;
        near |= std::fabs(x[i] - t) < 1e-6;
      }
      if (near) continue;
      const int code = i % 2 == 0 ? p[4 + i / 2] >> 4 : p[4 + i / 2] & 0x0F;
      ASSERT_EQ(code, expect) << "x=" << x[i];
      ++compared;
    }
  }
  EXPECT_GT(compared, 100000);
}

// Block of 16, f32 scale. A = 2 (bytes 00 00 00 40). r = x / A and the code whose value is
// nearest, ties to the lower code (midpoints M_k = (v_k + v_k+1) / 2):
//   2.0 -> 1 -> 15        -2.0 -> -1 -> 0        0 -> 7
//   1.0 -> 0.5 < M_12 = 0.50166 -> 12             0.1 -> 0.05 in (M_7, M_8) -> 8
//  -0.1 -> -0.05 in (M_5, M_6 = -0.04553) -> 6
//   v_8 = 0.0795803 -> r = v_8 / 2 = M_7 exactly: a tie -> 7; the next float up -> 8
//   v_6 = -0.0910500 -> r = M_6 exactly: tie -> 6; the next float toward 0 -> 7
//   1.9 -> 0.95 > M_14 = 0.86148 -> 15            -1.5 -> -0.75 in (M_0, M_1) -> 1
//   0.6 -> 0.3 in (M_10, M_11) -> 11              -0.5 -> -0.25 in (M_3, M_4) -> 4
//   0.35 -> 0.175 in (M_8, M_9) -> 9              1.3 -> 0.65 in (M_13, M_14) -> 14
// Codes 15,0,7,12,8,6,7,8,6,7,15,1,11,4,9,14; the first of each pair in the high nibble.
TEST(Nf4Format, HandVectorTiesAndNibbleOrder) {
  FormatPtr f = MustParse("nf4:block=16,scale=f32");
  const float v8 = kNf4Values[8], v6 = kNf4Values[6];
  const std::vector<float> x = {2.0f,  -2.0f,
                                0.0f,  1.0f,
                                0.1f,  -0.1f,
                                v8,    std::nextafter(v8, 1.0f),
                                v6,    std::nextafter(v6, 0.0f),
                                1.9f,  -1.5f,
                                0.6f,  -0.5f,
                                0.35f, 1.3f};
  const auto p = Pack(*f, x, 1, 16);
  EXPECT_EQ(p, (std::vector<uint8_t>{0x00, 0x00, 0x00, 0x40, 0xF0, 0x7C, 0x86, 0x78, 0x67, 0xF1,
                                     0xB4, 0x9E}));
  const int codes[16] = {15, 0, 7, 12, 8, 6, 7, 8, 6, 7, 15, 1, 11, 4, 9, 14};
  const auto y = Unpack(*f, p, 1, 16);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(y[i], kNf4Values[codes[i]] * 2.0f) << i;
}

// fp16 scale: A = fp16(0.3) = 0.300048828125 (0x34CD: exponent 13, mantissa 205 -> 1229 * 2^-12).
// The maximum takes code 15 and decodes to A; 0.15 -> r = 0.49992 -> 12 (below M_12 = 0.50166).
TEST(Nf4Format, F16ScaleBlock) {
  FormatPtr f = MustParse("nf4:block=16,scale=f16");
  std::vector<float> x(16, 0.0f);
  x[0] = 0.3f;
  x[1] = 0.15f;
  x[2] = -0.3f;
  const auto p = Pack(*f, x, 1, 16);
  ASSERT_EQ(p.size(), 2u + 8u);
  EXPECT_EQ(p[0] | p[1] << 8, 0x34CD);
  EXPECT_EQ(p[2], 0xFC);  // codes 15, 12
  EXPECT_EQ(p[3], 0x07);  // codes 0, 7
  const auto y = Unpack(*f, p, 1, 16);
  EXPECT_EQ(y[0], 0.300048828125f);
  EXPECT_EQ(y[2], -0.300048828125f);
  EXPECT_EQ(y[1], kNf4Values[12] * 0.300048828125f);
  // bits per weight: 4 + 16/64 for f16, 4 + 32/64 for f32 (bitsandbytes' storage cost).
  EXPECT_DOUBLE_EQ(MustParse("nf4_f16")->NominalBitsPerWeight(), 4.25);
  EXPECT_DOUBLE_EQ(MustParse("nf4")->NominalBitsPerWeight(), 4.5);
  EXPECT_DOUBLE_EQ(MustParse("nf4")->NominalBitsPerWeight(), 4.5);
  EXPECT_DOUBLE_EQ(MustParse("nf4:block=128")->NominalBitsPerWeight(), 4.25);
  EXPECT_EQ(MustParse("nf4_f16")->block_bytes(), 34);
  EXPECT_EQ(MustParse("nf4")->block_bytes(), 36);
}

TEST(Nf4Format, SpecsAndErrors) {
  EXPECT_EQ(MustParse("nf4")->spec(), "nf4:block=64,scale=f32");
  EXPECT_EQ(MustParse("nf4:scale=f16,block=4096")->spec(), "nf4:block=4096,scale=f16");
  EXPECT_EQ(MustParse("nf4")->spec(), "nf4:block=64,scale=f32");
  EXPECT_EQ(MustParse("nf4")->family(), "nf4");
  ExpectInvalid("nf4:block=8", "block");
  ExpectInvalid("nf4:block=4097", "block");
  ExpectInvalid("nf4:block=sixty", "block");
  ExpectInvalid("nf4:scale=bf16", "scale");
  ExpectInvalid("nf4:bits=4", "bits");  // unknown key
  Nf4Options options;
  options.block = 15;
  EXPECT_FALSE(MakeNf4Format(options).ok());
}

// Odd block: 17 codes in 9 bytes, the last low nibble unused (0).
TEST(Nf4Format, OddBlockPadsTheLastNibble) {
  FormatPtr f = MustParse("nf4:block=17,scale=f32");
  EXPECT_EQ(f->block_bytes(), 4 + 9);
  std::vector<float> x(17, 1.0f);
  const auto p = Pack(*f, x, 1, 17);
  for (int j = 0; j < 8; ++j) EXPECT_EQ(p[4 + j], 0xFF);
  EXPECT_EQ(p[12], 0xF0);
}

TEST(Nf4Format, ZeroBlocks) {
  for (const char* spec : {"nf4", "nf4_f16"}) {
    FormatPtr f = MustParse(spec);
    const int64_t s = std::string(spec) == "nf4" ? 4 : 2;
    const std::vector<float> x(64, 0.0f);
    const auto p = Pack(*f, x, 1, 64);
    for (int64_t i = 0; i < s; ++i) EXPECT_EQ(p[i], 0) << spec;
    for (size_t i = s; i < p.size(); ++i) EXPECT_EQ(p[i], 0x77) << spec;  // code 7 = 0.0
    for (float v : Unpack(*f, p, 1, 64)) EXPECT_EQ(v, 0.0f);
  }
}

// NaN -> code 7 (0), +-Inf -> 15 / 0 (+-A), neither sets A; a block without finite values is zero.
TEST(Nf4Format, NanAndInf) {
  FormatPtr f = MustParse("nf4:block=16,scale=f32");
  std::vector<float> x(16, 0.0f);
  x[0] = kNan;
  x[1] = kInf;
  x[2] = -kInf;
  x[3] = 0.5f;
  x[4] = -0.25f;
  const auto p = Pack(*f, x, 1, 16);
  EXPECT_EQ(p[3], 0x3F);  // A = 0.5f = 0x3F000000
  EXPECT_EQ(p[4], 0x7F);
  EXPECT_EQ(p[5], 0x0F);  // -Inf -> 0, 0.5 -> 15
  const auto y = Unpack(*f, p, 1, 16);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 0.5f);
  EXPECT_EQ(y[2], -0.5f);
  EXPECT_EQ(y[4], kNf4Values[2] * 0.5f);  // -0.5 -> between M_1 and M_2 = -0.45999
  std::vector<float> bound(16);
  f->ErrorBound(x.data(), 1, 16, bound.data());
  EXPECT_EQ(bound[0], kInf);
  std::vector<float> specials = {kNan, kInf, -kInf, kNan};
  specials.resize(16, kNan);
  for (float v : Unpack(*f, Pack(*f, specials, 1, 16), 1, 16)) EXPECT_EQ(v, 0.0f);
}

// One outlier: everything else in its block is rounded on the outlier's scale; other blocks are
// unaffected. With A = 100 every |x| < 100 * M_7 = 3.98 rounds to 0 (normal data).
TEST(Nf4Format, OutlierOnlyAffectsItsBlock) {
  FormatPtr f = MustParse("nf4");
  std::mt19937_64 rng(9);
  auto x = testing::RandomFloats(rng, 128, 0);
  x[3] = 100.0f;
  const auto y = Unpack(*f, Pack(*f, x, 1, 128), 1, 128);
  EXPECT_EQ(y[3], 100.0f);
  for (int i = 0; i < 64; ++i) {
    if (i != 3 && std::fabs(x[i]) < 3.9f) {
      EXPECT_EQ(y[i], 0.0f) << i;
    }
  }
  double err = 0;
  for (int i = 64; i < 128; ++i) err += std::fabs(x[i] - y[i]);
  EXPECT_LT(err / 64, 0.2);
}

// Subnormal fp16 scale (u = 2^-24): absmax 1.5u rounds (tie to even) to A = 2u, so the maximum's
// ratio is 0.75 and would round to v_14 = 0.72, from which the decoded block would give
// A = fp16(1.446u) = u. The maximum takes code 15 instead (decodes to 2u), keeping A.
TEST(Nf4Format, SubnormalF16ScaleKeepsTheMaximum) {
  FormatPtr f = MustParse("nf4:block=16,scale=f16");
  const float u = std::ldexp(1.0f, -24);
  std::vector<float> x(16, 0.0f);
  x[0] = 1.5f * u;
  x[1] = -0.75f * u;  // r = -0.375 in (M_2, M_3) -> code 3
  const auto p = Pack(*f, x, 1, 16);
  EXPECT_EQ(p[0] | p[1] << 8, 0x0002);
  EXPECT_EQ(p[2], 0xF3);
  const auto y = Unpack(*f, p, 1, 16);
  EXPECT_EQ(y[0], 2 * u);
  EXPECT_EQ(y[1], kNf4Values[3] * 2 * u);
  EXPECT_EQ(Pack(*f, y, 1, 16), p);
}

// Quantizing a dequantized block gives the same bytes (zero padding included: zeros are code 7 and
// do not change A), and the bound holds, on ordinary and adversarial data.
TEST(Nf4Format, QuantizeIsByteIdempotentAndWithinBound) {
  std::mt19937_64 rng(21);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int64_t checked = 0;
  for (const char* spec : {"nf4", "nf4_f16", "nf4:block=16,scale=f16", "nf4:block=17,scale=f32",
                           "nf4:block=256,scale=f16"}) {
    FormatPtr f = MustParse(spec);
    const int64_t b = f->block_size();
    for (int kind = 0; kind < 7; ++kind) {
      for (int trial = 0; trial < 60; ++trial) {
        const int64_t rows = 1 + trial % 3;
        const int64_t cols = trial % 2 ? 2 * b + 1 + static_cast<int64_t>(rng() % b) : 3 * b;
        std::vector<float> x(static_cast<size_t>(rows * cols));
        if (kind < testing::kNumRandomKinds) {
          x = testing::RandomFloats(rng, x.size(), kind);
        } else if (kind == 4) {  // float32-subnormal magnitudes: products v * A underflow
          const float s =
              static_cast<float>(std::ldexp(1.0, -140 + static_cast<int>(uni(rng) * 20)));
          for (auto& v : x) v = s * normal(rng);
        } else if (kind == 5) {  // subnormal fp16 scales
          const float s = static_cast<float>(std::pow(10.0, -9 + 4 * uni(rng)));
          for (auto& v : x) v = s * normal(rng);
        } else {  // specials and huge values
          for (auto& v : x) {
            const double r = uni(rng);
            v = r < 0.05 ? kNan : r < 0.1 ? kInf : r < 0.15 ? -kInf : r < 0.2 ? 3e38f : normal(rng);
          }
        }
        const auto p1 = Pack(*f, x, rows, cols);
        const auto y = Unpack(*f, p1, rows, cols);
        ASSERT_EQ(Pack(*f, y, rows, cols), p1) << spec << " kind " << kind << " trial " << trial;
        std::vector<float> bound(x.size());
        f->ErrorBound(x.data(), rows, cols, bound.data());
        for (size_t i = 0; i < x.size(); ++i) {
          if (!std::isfinite(x[i])) continue;
          ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound[i])
              << spec << " kind " << kind << " i " << i << " x=" << x[i] << " y=" << y[i];
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 500000);
}

// The bound is half the table gap around x / A, times A, plus float rounding: for x = 1.0 with
// A = 2 (r = 0.5 between v_12 and v_13) it is v_13 - v_12 = 0.12191 (+ 2^-23, half a float
// spacing at 2).
TEST(Nf4Format, BoundIsHalfTheLocalGap) {
  FormatPtr f = MustParse("nf4:block=16,scale=f32");
  std::vector<float> x(16, 0.0f);
  x[0] = 2.0f;
  x[1] = 1.0f;
  std::vector<float> bound(16);
  f->ErrorBound(x.data(), 1, 16, bound.data());
  const double gap = static_cast<double>(kNf4Values[13]) - kNf4Values[12];
  EXPECT_NEAR(bound[1], gap, 1e-6);
  EXPECT_GE(bound[1], gap);
  // Zero is itself a table value; the bound uses the interval below it: A * (v_7 - v_6) / 2.
  EXPECT_NEAR(bound[2], -kNf4Values[6], 1e-6);
}

}  // namespace
}  // namespace lowbit
