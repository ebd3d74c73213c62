// Unit tests of the FP6 4+2 split layout (src/formats/fp6_split.cc): hand-computed rows for
// E3M2 and E2M3, and a bit-surgery check that the two planes hold exactly the plain exmy fp6
// codes of the same row (exmy scale=row, whose 6-bit codes are unpacked here independently).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/format_registry.h"
#include "test_support.h"

namespace lowbit {
namespace {

FormatPtr Get(const std::string& spec) {
  auto f = ParseFormat(spec);
  EXPECT_TRUE(f.ok()) << spec << ": " << f.status().ToString();
  return f.ok() ? *f : nullptr;
}

std::vector<uint8_t> Pack(const Format& f, const std::vector<float>& x, int64_t rows = 1) {
  const int64_t cols = static_cast<int64_t>(x.size()) / rows;
  std::vector<uint8_t> out(static_cast<size_t>(f.PackedBytes(rows, cols)), 0xAA);
  EXPECT_TRUE(f.Quantize(x.data(), rows, cols, out.data()).ok());
  return out;
}

std::vector<float> Unpack(const Format& f, const std::vector<uint8_t>& packed, int64_t rows,
                          int64_t cols) {
  std::vector<float> y(static_cast<size_t>(rows * cols));
  f.Dequantize(packed.data(), rows, cols, y.data());
  return y;
}

TEST(Fp6Split, PresetsAndSpec) {
  EXPECT_EQ(Get("fp6_e3m2_split")->spec(), "fp6split:e=3");
  EXPECT_EQ(Get("fp6_e2m3_split")->spec(), "fp6split:e=2");
  EXPECT_EQ(Get("fp6split")->spec(), "fp6split:e=3");
  auto f = Get("fp6_e3m2_split");
  EXPECT_EQ(f->family(), "fp6split");
  EXPECT_EQ(f->block_size(), 0);
  // Row bytes: 2 (scale) + ceil(cols / 4) + ceil(cols / 2).
  EXPECT_EQ(f->RowBytes(5), 2 + 2 + 3);
  EXPECT_EQ(f->RowBytes(4096), 2 + 1024 + 2048);
  EXPECT_DOUBLE_EQ(f->NominalBitsPerWeight(), 6.0 + 16.0 / 4096);
  for (const char* bad : {"fp6split:e=4", "fp6split:e=1", "fp6split:m=2"}) {
    auto r = ParseFormat(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_NE(ParseFormat("fp6split:e=4").status().message().find("e=4"), std::string::npos);
}

TEST(Fp6Split, E3m2HandComputedRow) {
  // absmax 28 = max_finite -> scale 1.0 (fp16 0x3C00). E3M2 bias 3 codes (s eee mm):
  //   28     = 2^4 * 1.75  -> 0 111 11 = 0x1F  (hi 01, lo 1111)
  //   -1     = 2^0         -> 1 011 00 = 0x2C  (hi 10, lo 1100)
  //   0.5    = 2^-1        -> 0 010 00 = 0x08  (hi 00, lo 1000)
  //   3      = 2^1 * 1.5   -> 0 100 10 = 0x12  (hi 01, lo 0010)
  //   0.0625 = 2^-2 * 1/4  -> 0 000 01 = 0x01  (hi 00, lo 0001)   (min subnormal)
  // 2-bit plane byte 0 = hi3 hi2 hi1 hi0 = 01 00 10 01 = 0x49; byte 1 = hi4 = 0x00.
  // 4-bit plane: (lo1 lo0) = 0xCF, (lo3 lo2) = 0x28, (pad lo4) = 0x01.
  auto f = Get("fp6_e3m2_split");
  const std::vector<float> x = {28.0f, -1.0f, 0.5f, 3.0f, 0.0625f};
  const auto packed = Pack(*f, x);
  EXPECT_EQ(packed, (std::vector<uint8_t>{0x00, 0x3C, 0x49, 0x00, 0xCF, 0x28, 0x01}));
  EXPECT_EQ(Unpack(*f, packed, 1, 5), x);
}

TEST(Fp6Split, E2m3HandComputedRow) {
  // absmax 15 -> scale 15 / 7.5 = 2 (fp16 0x4000); x / 2 = 7.5, 0.125, -1, 0.3, 2.25.
  // E2M3 bias 1 codes (s ee mmm):
  //   7.5   = 2^2 * 1.875 -> 0 11 111 = 0x1F  (hi 01, lo 1111)
  //   0.125 = 2^0 * 1/8   -> 0 00 001 = 0x01  (hi 00, lo 0001)   (min subnormal)
  //   -1    = 2^0         -> 1 01 000 = 0x28  (hi 10, lo 1000)
  //   0.3   -> subnormal grid k/8: 2.4 -> 2 -> 0 00 010 = 0x02 (decodes 0.25 * 2 = 0.5)
  //   2.25  = 2^1 * 1.125 -> 0 10 001 = 0x11  (hi 01, lo 0001)
  // 2-bit plane: hi3 hi2 hi1 hi0 = 00 10 00 01 = 0x21; hi4 = 0x01.
  // 4-bit plane: 0x1F, 0x28, 0x01.
  auto f = Get("fp6_e2m3_split");
  const auto packed = Pack(*f, {15.0f, 0.25f, -2.0f, 0.6f, 4.5f});
  EXPECT_EQ(packed, (std::vector<uint8_t>{0x00, 0x40, 0x21, 0x01, 0x1F, 0x28, 0x01}));
  EXPECT_EQ(Unpack(*f, packed, 1, 5), (std::vector<float>{15.0f, 0.25f, -2.0f, 0.5f, 4.5f}));
}

// The 6-bit code i of an exmy scale=row row: bits [16 + 6i, 16 + 6i + 6) of the row, LSB first.
uint32_t ExmyCode(const uint8_t* row, int64_t i) {
  uint32_t code = 0;
  for (int j = 0; j < 6; ++j) {
    const int64_t bit = 16 + 6 * i + j;
    code |= static_cast<uint32_t>((row[bit / 8] >> (bit % 8)) & 1) << j;
  }
  return code;
}

TEST(Fp6Split, PlanesHoldThePlainExmyCodes) {
  struct Case {
    const char* split;
    const char* plain;
  } cases[] = {
      {"fp6_e3m2_split", "exmy:e=3,m=2,bias=3,special=finite,overflow=sat,scale=row"},
      {"fp6_e2m3_split", "exmy:e=2,m=3,bias=1,special=finite,overflow=sat,scale=row"},
  };
  std::mt19937_64 rng(5);
  for (const auto& c : cases) {
    auto split = Get(c.split);
    auto plain = Get(c.plain);
    for (int64_t cols : {1, 2, 3, 4, 5, 37, 64, 255}) {
      for (int kind = 0; kind < ::lowbit::testing::kNumRandomKinds; ++kind) {
        const int64_t rows = 3;
        const auto x = ::lowbit::testing::RandomFloats(rng, static_cast<size_t>(rows * cols), kind);
        const auto s = Pack(*split, x, rows);
        const auto p = Pack(*plain, x, rows);
        ASSERT_EQ(split->RowBytes(cols), 2 + (cols + 3) / 4 + (cols + 1) / 2);
        for (int64_t r = 0; r < rows; ++r) {
          const uint8_t* srow = s.data() + r * split->RowBytes(cols);
          const uint8_t* prow = p.data() + r * plain->RowBytes(cols);
          ASSERT_EQ(srow[0], prow[0]) << c.split << " scale";
          ASSERT_EQ(srow[1], prow[1]) << c.split << " scale";
          const uint8_t* hi = srow + 2;
          const uint8_t* lo = hi + (cols + 3) / 4;
          for (int64_t i = 0; i < cols; ++i) {
            const uint32_t code = ExmyCode(prow, i);
            ASSERT_EQ((hi[i / 4] >> (2 * (i % 4))) & 0x3, code >> 4) << c.split << " i=" << i;
            ASSERT_EQ((lo[i / 2] >> (4 * (i % 2))) & 0xF, code & 0xF) << c.split << " i=" << i;
          }
          // Unused slots of each plane's last byte are zero.
          if (cols % 4 != 0) {
            EXPECT_EQ(hi[cols / 4] >> (2 * (cols % 4)), 0);
          }
          if (cols % 2 != 0) {
            EXPECT_EQ(lo[cols / 2] >> 4, 0);
          }
        }
        // Same values decoded; and quantize(dequantize(q)) == q.
        const auto ys = Unpack(*split, s, rows, cols);
        EXPECT_EQ(ys, Unpack(*plain, p, rows, cols));
        EXPECT_EQ(Pack(*split, ys, rows), s);
      }
    }
  }
}

TEST(Fp6Split, ZeroRowNanAndInf) {
  auto f = Get("fp6_e3m2_split");
  // Zero row: scale 0, all codes 0.
  for (uint8_t b : Pack(*f, std::vector<float>(6, 0.0f))) EXPECT_EQ(b, 0);
  // +Inf: scale saturates at 65504 (0x7BFF), Inf clips to max (0x1F); +NaN stores -0 (0x20).
  const auto packed = Pack(*f, {INFINITY, std::numeric_limits<float>::quiet_NaN()});
  EXPECT_EQ(packed[0], 0xFF);
  EXPECT_EQ(packed[1], 0x7B);
  EXPECT_EQ(packed[2], 0x01 | (0x2 << 2));  // hi pieces: 0x1F >> 4 = 1, 0x20 >> 4 = 2
  EXPECT_EQ(packed[3], 0x0F);               // lo pieces: 0xF, 0x0
  const auto y = Unpack(*f, packed, 1, 2);
  EXPECT_EQ(y[0], 28.0f * 65504.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_TRUE(std::signbit(y[1]));
}

TEST(Fp6Split, ErrorBoundHolds) {
  std::mt19937_64 rng(9);
  for (const char* spec : {"fp6_e3m2_split", "fp6_e2m3_split"}) {
    auto f = Get(spec);
    for (int kind = 0; kind < ::lowbit::testing::kNumRandomKinds; ++kind) {
      const int64_t rows = 16, cols = 100;
      const auto x = ::lowbit::testing::RandomFloats(rng, rows * cols, kind);
      const auto y = Unpack(*f, Pack(*f, x, rows), rows, cols);
      std::vector<float> bound(x.size());
      f->ErrorBound(x.data(), rows, cols, bound.data());
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound[i]) << spec << " " << i;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
