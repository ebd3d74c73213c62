// The "int" family: spec parsing and errors, exact sizes and bits per weight, hand-computed blocks
// (scale bytes, codes, packed bit layout, ties), per-tensor vs per-row vs per-group fields, zero /
// outlier / NaN / Inf / huge / subnormal-scale groups, and a stress test that quantize ->
// dequantize -> quantize reproduces the same BYTES (and stays within ErrorBound) on adversarial
// data: narrow groups far from zero, constant groups, subnormal fp16 scales, zero-padded tails.
#include "formats/integer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "format_test_util.h"
#include "formats/minifloat_codec.h"
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

std::vector<float> Qdq(const Format& f, const std::vector<float>& x, int64_t rows, int64_t cols) {
  return Unpack(f, Pack(f, x, rows, cols), rows, cols);
}

void ExpectInvalid(const std::string& spec, const std::string& key) {
  auto f = ParseFormat(spec);
  ASSERT_FALSE(f.ok()) << spec;
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << spec;
  EXPECT_NE(f.status().message().find(key), std::string::npos)
      << spec << ": '" << f.status().message() << "' does not name " << key;
}

TEST(IntFormat, CanonicalSpecsAndDefaults) {
  EXPECT_EQ(MustParse("int")->spec(), "int:bits=4,mode=sym,group=128");
  EXPECT_EQ(MustParse("int:group=row,bits=3")->spec(), "int:bits=3,mode=sym,group=row");
  EXPECT_EQ(MustParse("int:mode=asym,group=tensor")->spec(), "int:bits=4,mode=asym,group=tensor");
  EXPECT_EQ(MustParse("int:group=0032")->spec(), "int:bits=4,mode=sym,group=32");
  EXPECT_EQ(MustParse("INT:BITS=2,MODE=ASYM,GROUP=64")->spec(), "int:bits=2,mode=asym,group=64");
  EXPECT_EQ(MustParse("int4_g128_asym")->spec(), "int:bits=4,mode=asym,group=128");
  EXPECT_EQ(MustParse("int")->family(), "int");
}

TEST(IntFormat, BadSpecsNameTheKey) {
  ExpectInvalid("int:bits=9", "bits");
  ExpectInvalid("int:bits=1", "bits");
  ExpectInvalid("int:bits=four", "bits");
  ExpectInvalid("int:group=0", "group");
  ExpectInvalid("int:group=-32", "group");
  ExpectInvalid("int:group=65537", "group");
  ExpectInvalid("int:group=32x", "group");
  ExpectInvalid("int:group=block", "group");
  ExpectInvalid("int:mode=foo", "mode");
  ExpectInvalid("int:scale=row", "scale");  // unknown key
  IntOptions options;
  options.bits = 9;
  EXPECT_FALSE(MakeIntFormat(options).ok());
}

TEST(IntFormat, SizesAndBitsPerWeight) {
  // Groups: B + 8F/g with F = 2 (sym: d) or 4 (asym: d, m) bytes of fields.
  EXPECT_DOUBLE_EQ(MustParse("int4_g128")->BitsPerWeight(4, 256), 4.0 + 16.0 / 128);  // 4.125
  EXPECT_DOUBLE_EQ(MustParse("int4_g128_asym")->BitsPerWeight(4, 256), 4.25);
  EXPECT_DOUBLE_EQ(MustParse("int4_g32")->NominalBitsPerWeight(), 4.5);
  EXPECT_DOUBLE_EQ(MustParse("int4_g32_asym")->NominalBitsPerWeight(), 5.0);
  EXPECT_DOUBLE_EQ(MustParse("int3_g128_asym")->NominalBitsPerWeight(), 3.25);
  EXPECT_DOUBLE_EQ(MustParse("int2_g64_asym")->NominalBitsPerWeight(), 2.5);
  EXPECT_DOUBLE_EQ(MustParse("int8_g32")->NominalBitsPerWeight(), 8.5);
  // 5 elements of 3 bits = 15 bits -> 2 code bytes, + 2 (d) = 4 bytes per block.
  FormatPtr odd = MustParse("int:bits=3,mode=sym,group=5");
  EXPECT_EQ(odd->block_size(), 5);
  EXPECT_EQ(odd->block_bytes(), 4);
  EXPECT_EQ(odd->RowBytes(11), 3 * 4);  // 11 columns: 3 blocks (the last padded)
  // Per row: the row's fields, then ceil(cols * B / 8) code bytes.
  FormatPtr row = MustParse("int:bits=4,mode=asym,group=row");
  EXPECT_EQ(row->block_size(), 0);
  EXPECT_EQ(row->block_bytes(), 0);
  EXPECT_EQ(row->HeaderBytes(3, 7), 0);
  EXPECT_EQ(row->RowBytes(7), 4 + 4);
  EXPECT_DOUBLE_EQ(MustParse("int8")->BitsPerWeight(10, 4096), 8.0 + 16.0 / 4096);
  // Per tensor: the fields once, in the header; rows hold only codes.
  FormatPtr tensor = MustParse("int:bits=3,mode=sym,group=tensor");
  EXPECT_EQ(tensor->block_size(), -1);
  EXPECT_EQ(tensor->HeaderBytes(5, 7), 2);
  EXPECT_EQ(tensor->RowBytes(7), 3);  // 21 bits
  EXPECT_EQ(tensor->PackedBytes(5, 7), 2 + 5 * 3);
}

// int4 sym, one block of 8. A = 0.9f = 0.89999997615814208984375; A / 7 = 0.128571425...;
// fp16 spacing in [0.125, 0.25) is 2^-13 and 0.128571425 * 2^13 = 1053.26, so
// d = 1053 * 2^-13 = 0.1285400390625: exponent field 12 (2^-3), mantissa 1053 - 1024 = 29 ->
// bits 0x301D. Codes q = round(x / d), ties away from zero:
//   0.9                      -> 7.0017 -> 7           (0x7)
//   3.5 d = 0.44989013671875 -> tie    -> 4           (0x4)   (3.5 d = 7371 * 2^-14, a float)
//  -3.5 d                    -> tie    -> -4          (0xC)
//   next float below 3.5 d   -> 3.4999 -> 3           (0x3)
//   0                        -> 0                     (0x0)
//  -0.9                      -> -7                    (0x9)
//   0.5 d = 0.06427001953125 -> tie    -> 1           (0x1)
//   next float below 0.5 d   -> 0                     (0x0)
// Element 2k sits in the low nibble of code byte k.
TEST(IntFormat, SymHandVectorWithTies) {
  FormatPtr f = MustParse("int:bits=4,mode=sym,group=8");
  const float d = 0.1285400390625f;
  const float mid35 = 0.44989013671875f, mid05 = 0.06427001953125f;
  ASSERT_EQ(mid35, 3.5f * d);
  ASSERT_EQ(mid05, 0.5f * d);
  const std::vector<float> x = {0.9f, mid35, -mid35, std::nextafter(mid35, 0.0f),
                                0.0f, -0.9f, mid05,  std::nextafter(mid05, 0.0f)};
  const auto packed = Pack(*f, x, 1, 8);
  EXPECT_EQ(packed, (std::vector<uint8_t>{0x1D, 0x30, 0x47, 0x3C, 0x90, 0x01}));
  const auto y = Unpack(*f, packed, 1, 8);
  const std::vector<float> expect = {7 * d, 4 * d, -4 * d, 3 * d, 0.0f, -7 * d, d, 0.0f};
  EXPECT_EQ(y, expect);
  // The bound is half a step for an interior element: a tie sits exactly on it.
  std::vector<float> bound(8);
  f->ErrorBound(x.data(), 1, 8, bound.data());
  EXPECT_EQ(bound[1], 0.5f * d);
  EXPECT_EQ(std::fabs(x[1] - y[1]), bound[1]);
}

// int4 asym, one block of 8: lo = -1 -> m = -1 (0xBC00); hi = 2 -> d = fp16(3 / 15) =
// fp16(0.2) = 1638 * 2^-13 = 0.199951171875 (exponent 12, mantissa 614 = 0x266 -> 0x3266).
// top = -1 + 15 d = 1.999267578125 (exact), and (top - m) / 15 = d: no adjustment.
// u = nearest((x - m) / d), ties up:
//   -1   -> lo -> 0                        2 -> hi -> 15 (decodes to 1.999267578125)
//    0   -> 1 / d    = 5.0012 -> 5          0.5 -> 1.5 / d = 7.5018 -> 8
//   -0.9 -> 0.1000000238 / d = 0.50012 -> 1 (just past the midpoint)
//    1.9 -> 2.9 / d  = 14.5035 -> 15        0.3 -> 1.3000000119 / d = 6.5016 -> 7
//    1.0 -> 2 / d    = 10.0024 -> 10
// Bytes: [d LE][m LE] then pairs (low nibble first): (0,15)=F0 (5,8)=85 (1,15)=F1 (7,10)=A7.
TEST(IntFormat, AsymHandVector) {
  FormatPtr f = MustParse("int:bits=4,mode=asym,group=8");
  const std::vector<float> x = {-1.0f, 2.0f, 0.0f, 0.5f, -0.9f, 1.9f, 0.3f, 1.0f};
  const auto packed = Pack(*f, x, 1, 8);
  EXPECT_EQ(packed, (std::vector<uint8_t>{0x66, 0x32, 0x00, 0xBC, 0xF0, 0x85, 0xF1, 0xA7}));
  const double d = 0.199951171875;
  const std::vector<int> u = {0, 15, 5, 8, 1, 15, 7, 10};
  const auto y = Unpack(*f, packed, 1, 8);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(y[i], static_cast<float>(-1.0 + d * u[i])) << i;
  EXPECT_EQ(y[2], -0.000244140625f);  // zero is not on this grid
}

// The stream layout for widths that straddle bytes. int3 asym, x = 0..7: m = 0, d = fp16(7/7) = 1,
// codes 0..7; stream value sum(i << 3i) = 0xFAC688 -> bytes 88 C6 FA. int6 asym, x = {1,2,3,64}:
// m = 1, d = 1, codes {0,1,2,63}: (1 << 6) | (2 << 12) | (63 << 18) = 0xFC2040 -> 40 20 FC.
// int2 asym, x = {0,1,2,3}: codes 0..3 -> 0b11100100 = E4.
TEST(IntFormat, CodesAreALittleEndianBitStream) {
  {
    FormatPtr f = MustParse("int:bits=3,mode=asym,group=8");
    const auto p = Pack(*f, {0, 1, 2, 3, 4, 5, 6, 7}, 1, 8);
    EXPECT_EQ(p, (std::vector<uint8_t>{0x00, 0x3C, 0x00, 0x00, 0x88, 0xC6, 0xFA}));
  }
  {
    FormatPtr f = MustParse("int:bits=6,mode=asym,group=4");
    const auto p = Pack(*f, {1, 2, 3, 64}, 1, 4);
    EXPECT_EQ(p, (std::vector<uint8_t>{0x00, 0x3C, 0x00, 0x3C, 0x40, 0x20, 0xFC}));
  }
  {
    FormatPtr f = MustParse("int:bits=2,mode=asym,group=4");
    const auto p = Pack(*f, {0, 1, 2, 3}, 1, 4);
    EXPECT_EQ(p, (std::vector<uint8_t>{0x00, 0x3C, 0x00, 0x00, 0xE4}));
  }
  {
    // int8 sym: one byte per element, two's complement. A = 127 -> d = 1.
    FormatPtr f = MustParse("int:bits=8,mode=sym,group=4");
    const auto p = Pack(*f, {127, -127, -1, 5}, 1, 4);
    EXPECT_EQ(p, (std::vector<uint8_t>{0x00, 0x3C, 0x7F, 0x81, 0xFF, 0x05}));
  }
  {
    // A 5-element int3 block: 15 bits in 2 bytes, bit 15 unused (0). x = {3,-3,1,0,-2}:
    // A = 3 -> d = 1; codes 3, -3 = 0b101, 1, 0, -2 = 0b110:
    // 3 | 5 << 3 | 1 << 6 | 0 << 9 | 6 << 12 = 0x606B -> 6B 60.
    FormatPtr f = MustParse("int:bits=3,mode=sym,group=5");
    const auto p = Pack(*f, {3, -3, 1, 0, -2}, 1, 5);
    EXPECT_EQ(p, (std::vector<uint8_t>{0x00, 0x3C, 0x6B, 0x60}));
  }
}

// Sym never writes -2^(B-1); decoding that code gives -2^(B-1) * d (here -8 * 1).
TEST(IntFormat, UnusedSymCodeDecodes) {
  FormatPtr f = MustParse("int:bits=4,mode=sym,group=2");
  const std::vector<uint8_t> packed = {0x00, 0x3C, 0x78};  // d = 1, codes 8 (-8) and 7
  EXPECT_EQ(Unpack(*f, packed, 1, 2), (std::vector<float>{-8.0f, 7.0f}));
}

// One 2 x 4 tensor, int4 sym, three ways.
//   tensor: A = 14 -> d = fp16(2) = 2 (0x4000). row0 / 2 = {0.5, 1, 1.5, 3.5} -> {1, 1, 2, 4}
//           (ties away), row1 / 2 = {7, -3.5, 0, 1.75} -> {7, -4, 0, 2}.
//   row:    row0 A = 7 -> d = 1 (0x3C00), codes {1, 2, 3, 7}; row1 as above with d = 2.
//   group=2: the first block {1, 2}: d = fp16(2/7) = 1170 * 2^-12 = 0.28564453125;
//           1 / d = 3.5009 -> 4 (1.142578125), 2 -> 7 (1.99951171875).
TEST(IntFormat, TensorRowAndGroupFields) {
  const std::vector<float> x = {1, 2, 3, 7, 14, -7, 0, 3.5f};
  FormatPtr tensor = MustParse("int:bits=4,mode=sym,group=tensor");
  const auto pt = Pack(*tensor, x, 2, 4);
  EXPECT_EQ(pt, (std::vector<uint8_t>{0x00, 0x40, 0x11, 0x42, 0xC7, 0x20}));
  EXPECT_EQ(Unpack(*tensor, pt, 2, 4), (std::vector<float>{2, 2, 4, 8, 14, -8, 0, 4}));
  std::vector<float> second(4);
  tensor->DequantizeRows(pt.data(), 2, 4, 1, 2, second.data());  // reads the header, then row 1
  EXPECT_EQ(second, (std::vector<float>{14, -8, 0, 4}));

  FormatPtr row = MustParse("int:bits=4,mode=sym,group=row");
  const auto pr = Pack(*row, x, 2, 4);
  EXPECT_EQ(pr, (std::vector<uint8_t>{0x00, 0x3C, 0x21, 0x73, 0x00, 0x40, 0xC7, 0x20}));
  EXPECT_EQ(Unpack(*row, pr, 2, 4), (std::vector<float>{1, 2, 3, 7, 14, -8, 0, 4}));

  FormatPtr group = MustParse("int:bits=4,mode=sym,group=2");
  const auto pg = Pack(*group, x, 2, 4);
  EXPECT_EQ(pg.size(), 2u * 2 * 3);
  EXPECT_EQ(pg[0] | pg[1] << 8, 0x3492);  // 0.28564453125: exponent 13, mantissa 146
  EXPECT_EQ(pg[2], 0x74);
  const auto yg = Unpack(*group, pg, 2, 4);
  EXPECT_EQ(yg[0], 1.142578125f);
  EXPECT_EQ(yg[1], 1.99951171875f);
}

TEST(IntFormat, AllZeroGroupsAreZeroBytes) {
  for (const char* spec :
       {"int4_g128", "int4_g128_asym", "int8", "int:bits=3,mode=asym,group=tensor"}) {
    FormatPtr f = MustParse(spec);
    const int64_t rows = 2, cols = 200;
    const std::vector<float> x(rows * cols, 0.0f);
    const auto p = Pack(*f, x, rows, cols);
    for (uint8_t b : p) ASSERT_EQ(b, 0) << spec;
    for (float v : Unpack(*f, p, rows, cols)) ASSERT_EQ(v, 0.0f) << spec;
    // -0.0 inputs give the same bytes: fields are never -0.
    const std::vector<float> neg(rows * cols, -0.0f);
    EXPECT_EQ(Pack(*f, neg, rows, cols), p) << spec;
  }
}

// One outlier only costs precision inside its own group.
TEST(IntFormat, OutlierStaysInItsGroup) {
  std::mt19937_64 rng(7);
  auto x = testing::RandomFloats(rng, 256, 0);
  x[5] = 1000.0f;
  FormatPtr g32 = MustParse("int4_g32"), row = MustParse("int4_row");
  const auto yg = Qdq(*g32, x, 1, 256), yr = Qdq(*row, x, 1, 256);
  // Per row, d = fp16(1000 / 7) = 142.875: every |x| < 71 rounds to 0.
  double err_row = 0, err_group = 0;
  for (int i = 32; i < 256; ++i) {
    EXPECT_EQ(yr[i], 0.0f) << i;
    err_row += std::fabs(x[i] - yr[i]);
    err_group += std::fabs(x[i] - yg[i]);
  }
  EXPECT_EQ(yr[5], 7 * 142.875f);
  EXPECT_EQ(yg[5], 7 * 142.875f);
  EXPECT_LT(err_group, 0.2 * err_row);
  // In the outlier's own group, the small values are zero too.
  EXPECT_EQ(yg[6], 0.0f);
}

// NaN / Inf: they do not set the scale; NaN encodes as 0, +-Inf as +-Q (sym), hi / lo (asym).
TEST(IntFormat, NanAndInfBehaviour) {
  {
    // sym: A = 2 over the finite values -> d = fp16(2/7) = 0.28564453125.
    FormatPtr f = MustParse("int:bits=4,mode=sym,group=8");
    const std::vector<float> x = {kNan, kInf, -kInf, 2.0f, -1.0f, 0.0f, -kNan, 0.5f};
    const auto y = Qdq(*f, x, 1, 8);
    const float d = 0.28564453125f;
    EXPECT_EQ(y, (std::vector<float>{0.0f, 7 * d, -7 * d, 7 * d, -4 * d, 0.0f, 0.0f, 2 * d}));
    std::vector<float> bound(8);
    f->ErrorBound(x.data(), 1, 8, bound.data());
    EXPECT_EQ(bound[0], kInf);
    EXPECT_EQ(bound[1], kInf);
  }
  {
    // asym: lo = -1, hi = 2 as in AsymHandVector; NaN -> as 0 (code 5), +Inf -> hi (15),
    // -Inf -> lo (0).
    FormatPtr f = MustParse("int:bits=4,mode=asym,group=8");
    const std::vector<float> x = {kNan, kInf, -kInf, -1.0f, 2.0f, 0.0f, 0.0f, 0.0f};
    const auto p = Pack(*f, x, 1, 8);
    // codes {5, 15, 0, 0, 15, 5, 5, 5}, low nibble first
    EXPECT_EQ(p[4], 0xF5);
    EXPECT_EQ(p[5], 0x00);
    EXPECT_EQ(p[6], 0x5F);
    EXPECT_EQ(p[7], 0x55);
  }
  {
    // A group with no finite value is all zeros; NaN inside an all-positive group takes lo.
    FormatPtr f = MustParse("int:bits=4,mode=asym,group=4");
    EXPECT_EQ(Qdq(*f, {kNan, kInf, -kInf, kNan}, 1, 4), (std::vector<float>(4, 0.0f)));
    const auto y = Qdq(*f, {kNan, 3.0f, 4.0f, 5.0f}, 1, 4);
    EXPECT_EQ(y[0], 3.0f);  // clamp(0, 3, 5) = 3 = lo -> code 0 -> m = 3
  }
}

// Huge inputs: the fp16 scale saturates at 65504 and magnitudes beyond Q * 65504 clip.
TEST(IntFormat, HugeValuesSaturateTheScale) {
  FormatPtr f = MustParse("int:bits=4,mode=sym,group=4");
  const std::vector<float> x = {3.0e38f, -3.0e38f, 65504.0f * 3, 1.0f};
  const auto p = Pack(*f, x, 1, 4);
  EXPECT_EQ(p[0] | p[1] << 8, 0x7BFF);  // 65504
  const auto y = Unpack(*f, p, 1, 4);
  EXPECT_EQ(y, (std::vector<float>{7 * 65504.0f, -7 * 65504.0f, 3 * 65504.0f, 0.0f}));
  std::vector<float> bound(4);
  f->ErrorBound(x.data(), 1, 4, bound.data());
  EXPECT_GE(bound[0], 3.0e38f - 7 * 65504.0f);  // the clipped part is in the bound
  FormatPtr a = MustParse("int:bits=4,mode=asym,group=4");
  const auto ya = Qdq(*a, {-3.0e38f, 3.0e38f, 0.0f, 1.0f}, 1, 4);
  EXPECT_EQ(ya[0], -65504.0f);
  EXPECT_EQ(ya[1], -65504.0f + 15 * 65504.0f);
}

// Subnormal fp16 scale (units u = 2^-24). int4 sym (Q = 7), A = 10.5u: A / Q = 1.5u, a tie
// that rounds to even: d = 2u (fp16 bits 0x0002). Plain rounding would give the largest element
// round(10.5 / 2) = 5, i.e. 10u, and the decoded group would then yield d = fp16(10u / 7) = u:
// not idempotent. So the element with |x| = A takes Q: 14u, an error of 3.5u = Q * (fp16 spacing
// at d) / 2. The others round normally: -3u / 2u = -1.5 -> -2 (away), u / 2u = 0.5 -> 1.
TEST(IntFormat, SubnormalScaleKeepsTheLargestCode) {
  FormatPtr f = MustParse("int:bits=4,mode=sym,group=4");
  const float u = std::ldexp(1.0f, -24);
  const std::vector<float> x = {10.5f * u, -3.0f * u, u, 0.0f};
  const auto p = Pack(*f, x, 1, 4);
  EXPECT_EQ(p[0] | p[1] << 8, 0x0002);  // d = 2 * 2^-24 (subnormal fp16)
  const auto y = Unpack(*f, p, 1, 4);
  // -3u / 2u = -1.5 -> -2 (away); u / 2u = 0.5 -> 1.
  EXPECT_EQ(y, (std::vector<float>{14 * u, -4 * u, 2 * u, 0.0f}));
  EXPECT_EQ(Pack(*f, y, 1, 4), p);  // without the rule the scale would become 2^-24
  std::vector<float> bound(4);
  f->ErrorBound(x.data(), 1, 4, bound.data());
  EXPECT_EQ(bound[0], 3.5f * u);
  EXPECT_EQ(bound[1], u);  // d / 2 for the others
}

// A zero-padded tail whose real values are all negative: hi = 0 (the padding). Grid (units of
// 2^-24): lo = -51 -> m = -51; d = fp16(51/15 = 3.4) = 3, top = -51 + 45 = -6 < 0 <= hi, so d goes
// up to 4 and top = 9. The grid points around 0 are -3 and +1; x = -0.5 would round to +1, above
// the padding's 0, and the decoded row (which re-quantizes with fresh zero padding) would then
// have hi = +1 and re-encode differently. Such an element takes the largest grid value <= 0
// instead (-3).
TEST(IntFormat, ZeroPaddedNegativeTailReencodesIdentically) {
  FormatPtr f = MustParse("int:bits=4,mode=asym,group=32");
  const float u = std::ldexp(1.0f, -24);
  const std::vector<float> x = {-51 * u, -0.5f * u};
  const auto p = Pack(*f, x, 1, 2);
  EXPECT_EQ(p[0] | p[1] << 8, 0x0004);       // d = 4 * 2^-24
  EXPECT_EQ(p[2] | p[3] << 8, 0x8000 | 51);  // m = -51 * 2^-24
  const auto y = Unpack(*f, p, 1, 2);
  EXPECT_EQ(y, (std::vector<float>{-51 * u, -3 * u}));
  EXPECT_EQ(Pack(*f, y, 1, 2), p);
  std::vector<float> bound(2);
  f->ErrorBound(x.data(), 1, 2, bound.data());
  EXPECT_GE(bound[1], 2.5f * u);
}

// Data generators for the stress test: each returns one row of n values.
std::vector<float> StressRow(std::mt19937_64& rng, int kind, int64_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::vector<float> v(static_cast<size_t>(n));
  switch (kind) {
    case 0:
    case 1:
    case 2:
    case 3:
      return testing::RandomFloats(rng, static_cast<size_t>(n), kind);
    case 4: {  // narrow groups far from zero: c + eps * N(0, 1), relative width 1e-2 .. 1e-8
      const double c = (uni(rng) < 0.5 ? -1 : 1) * std::pow(10.0, 4 * uni(rng) - 1);
      const double eps = c * std::pow(10.0, -2 - 6 * uni(rng));
      for (auto& x : v) x = static_cast<float>(c + eps * normal(rng));
      break;
    }
    case 5: {  // constant rows, fp16-representable or not
      const float c =
          static_cast<float>(std::ldexp(uni(rng) * 2 - 1, static_cast<int>(uni(rng) * 40) - 20));
      std::fill(v.begin(), v.end(), c);
      break;
    }
    case 6: {  // subnormal fp16 scales: magnitudes around 1e-8 .. 1e-5, one sign or both
      const float s = static_cast<float>(std::pow(10.0, -8 + 3 * uni(rng)));
      const int sign_mode = static_cast<int>(uni(rng) * 3);
      for (auto& x : v) {
        float t = s * normal(rng);
        if (sign_mode == 1) t = std::fabs(t);
        if (sign_mode == 2) t = -std::fabs(t);
        x = t;
      }
      break;
    }
    case 7: {  // one sign, with exact zeros sprinkled in
      const bool negative = uni(rng) < 0.5;
      for (auto& x : v) {
        const float t = std::fabs(normal(rng));
        x = uni(rng) < 0.2 ? 0.0f : (negative ? -t : t);
      }
      break;
    }
    case 8: {  // specials mixed into normal data, and float32 subnormals
      for (auto& x : v) {
        const double r = uni(rng);
        x = r < 0.05   ? kNan
            : r < 0.1  ? kInf
            : r < 0.15 ? -kInf
            : r < 0.25 ? std::numeric_limits<float>::denorm_min() * static_cast<float>(r * 100)
            : r < 0.3  ? 1e30f
                       : normal(rng);
      }
      break;
    }
    default: {  // tiny positive minimum with a large spread
      for (auto& x : v)
        x = static_cast<float>(std::ldexp(uni(rng), static_cast<int>(uni(rng) * 30) - 28));
      break;
    }
  }
  return v;
}
constexpr int kNumStressKinds = 10;

// Bytes of a packed tensor that must survive quantize -> dequantize -> quantize: everything except
// the codes of zero padding in a row's last block (never decoded). Those may change in one corner:
// a tail block whose real values are all <= 0 and include an exact 0 (or NaN / +Inf, coded as the
// maximum 0): hi = 0 from the padding, and the real zero decodes to top > 0, after which the
// fresh padding is no longer the maximum (docs/formats/integer.md, "Idempotence").
bool SameExceptPaddingCodes(const std::string& spec, const Format& f, const std::vector<float>& x,
                            int64_t rows, int64_t cols, const std::vector<uint8_t>& a,
                            const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return false;
  const int64_t g = f.block_size();
  if (g <= 0 || cols % g == 0) return a == b;
  const int bits = spec[9] - '0';  // "int:bits=N,..."
  const int64_t field_bytes = spec.find("mode=asym") != std::string::npos ? 4 : 2;
  const int64_t real = cols % g;  // real elements in the last block
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row_start = r * f.RowBytes(cols);
    const int64_t last = row_start + f.RowBytes(cols) - f.block_bytes();
    for (int64_t i = row_start; i < last + field_bytes; ++i) {
      if (a[i] != b[i]) return false;
    }
    for (int64_t bit = 0; bit < real * bits; ++bit) {
      const int64_t byte = last + field_bytes + bit / 8;
      if (((a[byte] ^ b[byte]) >> (bit % 8)) & 1) return false;
    }
    if (!std::equal(a.begin() + last, a.begin() + row_start + f.RowBytes(cols), b.begin() + last)) {
      // Only the documented corner may change padding codes.
      bool all_nonpositive = true, has_max_zero = false;
      for (int64_t c = cols - real; c < cols; ++c) {
        const float v = x[r * cols + c];
        if (std::isfinite(v) && v > 0) all_nonpositive = false;
        if (v == 0 || std::isnan(v) || v == kInf) has_max_zero = true;
      }
      if (!all_nonpositive || !has_max_zero) return false;
    }
  }
  return true;
}

// quantize(dequantize(quantize(x))) gives the same values and the same bytes (padding codes aside,
// see above), and |x - qdq(x)| <= ErrorBound for finite x, over every preset of the family and
// some odd shapes, with tails.
TEST(IntFormat, QuantizeIsIdempotentAndWithinBound) {
  std::vector<std::string> specs = {
      "int:bits=5,mode=asym,group=7",   "int:bits=7,mode=sym,group=3",
      "int:bits=2,mode=sym,group=row",  "int:bits=3,mode=asym,group=tensor",
      "int:bits=6,mode=asym,group=row", "int:bits=8,mode=asym,group=16",
      "int:bits=2,mode=asym,group=1",   "int:bits=8,mode=asym,group=tensor"};
  for (const auto& p : FormatRegistry::Get().presets()) {
    if (p.spec.rfind("int:", 0) == 0) specs.push_back(p.spec);
  }
  std::mt19937_64 rng(11);
  int64_t checked = 0;
  for (const auto& spec : specs) {
    FormatPtr f = MustParse(spec);
    const int64_t b = f->block_size() > 0 ? f->block_size() : 64;
    for (int kind = 0; kind < kNumStressKinds; ++kind) {
      for (int trial = 0; trial < 60; ++trial) {
        const int64_t rows = 1 + trial % 3;
        const int64_t cols = trial % 2 ? 2 * b + 1 + static_cast<int64_t>(rng() % b) : 2 * b;
        std::vector<float> x;
        for (int64_t r = 0; r < rows; ++r) {
          auto row = StressRow(rng, kind, cols);
          x.insert(x.end(), row.begin(), row.end());
        }
        const auto p1 = Pack(*f, x, rows, cols);
        const auto y = Unpack(*f, p1, rows, cols);
        const auto p2 = Pack(*f, y, rows, cols);
        ASSERT_EQ(Unpack(*f, p2, rows, cols), y) << spec << " kind " << kind << " trial " << trial;
        ASSERT_TRUE(SameExceptPaddingCodes(spec, *f, x, rows, cols, p1, p2))
            << spec << " kind " << kind << " trial " << trial;
        std::vector<float> bound(x.size());
        f->ErrorBound(x.data(), rows, cols, bound.data());
        for (size_t i = 0; i < x.size(); ++i) {
          if (!std::isfinite(x[i])) continue;
          ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound[i])
              << spec << " kind " << kind << " trial " << trial << " i " << i << " x=" << x[i]
              << " y=" << y[i];
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 1000000);
}

// The bound is tight enough to notice a rounding off by one step: for normal data every element's
// bound is exactly d / 2 (the largest element's is |A - 7d| <= 7 * 2^-11 d), and in every group
// some element comes within 10% of it.
TEST(IntFormat, BoundIsHalfAStepForOrdinaryData) {
  FormatPtr f = MustParse("int4_g128");
  std::mt19937_64 rng(5);
  const auto x = testing::RandomFloats(rng, 128 * 64, 0);
  const auto p = Pack(*f, x, 64, 128);
  const auto y = Unpack(*f, p, 64, 128);
  std::vector<float> bound(x.size());
  f->ErrorBound(x.data(), 64, 128, bound.data());
  for (int r = 0; r < 64; ++r) {
    const float d = HalfToFloat(static_cast<uint16_t>(p[r * 66] | p[r * 66 + 1] << 8));
    double worst = 0;
    float amax = 0;
    for (int c = 0; c < 128; ++c) amax = std::max(amax, std::fabs(x[r * 128 + c]));
    for (int c = 0; c < 128; ++c) {
      const size_t i = static_cast<size_t>(r * 128 + c);
      if (std::fabs(x[i]) == amax) {
        // Set to +-7: |A - 7d| <= 7 * 2^-11 * d (d normal), far below d / 2.
        ASSERT_LE(bound[i], 7 * 0x1p-11 * d) << "row " << r;
        continue;
      }
      ASSERT_EQ(bound[i], 0.5f * d) << "row " << r << " col " << c;
      worst = std::max(worst, std::fabs(static_cast<double>(x[i]) - y[i]) / bound[i]);
    }
    EXPECT_GT(worst, 0.9) << "row " << r;
  }
}

}  // namespace
}  // namespace lowbit
