// Properties every registered preset must have, checked by walking the registry: a new format is
// tested here the day it is registered. Family-specific facts live in each family's own test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "format_test_util.h"
#include "test_support.h"

namespace lowbit {
namespace {

using testing::AllPresetNames;
using testing::MustParse;
using testing::QuantizeDequantize;
using testing::SameValue;
using testing::TestCols;

class FormatProperties : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const PresetInfo* preset = FormatRegistry::Get().FindPreset(GetParam());
    ASSERT_NE(preset, nullptr);
    spec_ = preset->spec;
    format_ = MustParse(spec_);
    ASSERT_NE(format_, nullptr);
  }
  std::string spec_;
  FormatPtr format_;
};

TEST_P(FormatProperties, SpecRoundTrips) {
  EXPECT_EQ(format_->spec(), spec_);
  FormatPtr again = MustParse(format_->spec());
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->spec(), spec_);
  EXPECT_EQ(again->block_size(), format_->block_size());
  // Names are case-insensitive.
  std::string upper = GetParam();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  FormatPtr by_upper = MustParse(upper);
  ASSERT_NE(by_upper, nullptr);
  EXPECT_EQ(by_upper->spec(), spec_);
  // The family is registered and its documentation page exists.
  const FamilyInfo* family = FormatRegistry::Get().FindFamily(format_->family());
  ASSERT_NE(family, nullptr) << format_->family();
  EXPECT_FALSE(testing::ReadFileBytes(std::string(LOWBIT_SOURCE_DIR) + "/" + family->doc_page).empty())
      << "missing doc page " << family->doc_page;
}

TEST_P(FormatProperties, SizesAreConsistent) {
  const Format& f = *format_;
  if (f.block_size() > 0) {
    EXPECT_GT(f.block_bytes(), 0);
    for (int64_t cols : {int64_t{1}, f.block_size(), 3 * f.block_size() + 1}) {
      const int64_t blocks = (cols + f.block_size() - 1) / f.block_size();
      EXPECT_EQ(f.RowBytes(cols), blocks * f.block_bytes()) << "cols=" << cols;
    }
    EXPECT_DOUBLE_EQ(f.BitsPerWeight(7, 4 * f.block_size()),
                     8.0 * f.block_bytes() / f.block_size() +
                         8.0 * f.HeaderBytes(7, 4 * f.block_size()) / (28.0 * f.block_size()));
  }
  const double bpw = f.NominalBitsPerWeight();
  EXPECT_GT(bpw, 1.0);
  EXPECT_LE(bpw, 32.0);
}

TEST_P(FormatProperties, RandomBytesDecodeWithoutCrashing) {
  const Format& f = *format_;
  std::mt19937_64 rng(1);
  for (bool tail : {false, true}) {
    const int64_t rows = 3, cols = TestCols(f, tail);
    std::vector<uint8_t> packed(static_cast<size_t>(f.PackedBytes(rows, cols)));
    for (auto& b : packed) b = static_cast<uint8_t>(rng());
    std::vector<float> out(static_cast<size_t>(rows * cols), 12345.0f);
    f.Dequantize(packed.data(), rows, cols, out.data());
    // Row ranges decode the same values as the whole tensor.
    std::vector<float> middle(static_cast<size_t>(cols));
    f.DequantizeRows(packed.data(), rows, cols, 1, 2, middle.data());
    for (int64_t c = 0; c < cols; ++c) {
      ASSERT_TRUE(SameValue(middle[c], out[cols + c])) << "col " << c;
    }
  }
}

TEST_P(FormatProperties, ZerosStayZero) {
  if (!format_->can_quantize()) GTEST_SKIP() << "decode-only";
  const int64_t rows = 2, cols = TestCols(*format_, true);
  std::vector<float> x(static_cast<size_t>(rows * cols), 0.0f);
  auto r = QuantizeDequantize(*format_, x, rows, cols);
  for (float v : r.values) ASSERT_EQ(v, 0.0f);
}

// Quantizing a dequantized tensor changes nothing: dequantized values are exactly representable.
TEST_P(FormatProperties, QuantizeIsIdempotent) {
  if (!format_->can_quantize()) GTEST_SKIP() << "decode-only";
  if (!format_->idempotent()) GTEST_SKIP() << "not idempotent by definition (see its doc page)";
  const Format& f = *format_;
  std::mt19937_64 rng(2);
  for (int kind = 0; kind < testing::kNumRandomKinds; ++kind) {
    for (bool tail : {false, true}) {
      const int64_t rows = 4, cols = TestCols(f, tail);
      auto x = testing::RandomFloats(rng, static_cast<size_t>(rows * cols), kind);
      auto once = QuantizeDequantize(f, x, rows, cols);
      auto twice = QuantizeDequantize(f, once.values, rows, cols);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(SameValue(once.values[i], twice.values[i]))
            << f.spec() << " kind " << kind << " element " << i << ": x=" << x[i]
            << " qdq=" << once.values[i] << " qdq(qdq)=" << twice.values[i];
      }
    }
  }
}

// A row of length n gives the same values as the first n elements of the zero-padded row.
TEST_P(FormatProperties, TailsMatchZeroPadding) {
  if (!format_->can_quantize() || format_->block_size() <= 1) GTEST_SKIP() << "no block tail";
  const Format& f = *format_;
  const int64_t b = f.block_size();
  std::mt19937_64 rng(3);
  for (int64_t n = 1; n <= 2 * b + 1; n += (b > 16 ? 7 : 1)) {
    const int64_t padded = (n + b - 1) / b * b;
    auto x = testing::RandomFloats(rng, static_cast<size_t>(padded), 0);
    std::fill(x.begin() + n, x.end(), 0.0f);
    auto full = QuantizeDequantize(f, x, 1, padded);
    std::vector<float> head(x.begin(), x.begin() + n);
    auto part = QuantizeDequantize(f, head, 1, n);
    EXPECT_EQ(part.bytes.size(), full.bytes.size());
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(SameValue(part.values[i], full.values[i])) << "n=" << n << " i=" << i;
    }
  }
}

// Adversarial inputs: no crash, and documented-finite outputs where inputs are finite and small.
TEST_P(FormatProperties, AdversarialBlocksAreHandled) {
  if (!format_->can_quantize()) GTEST_SKIP() << "decode-only";
  const Format& f = *format_;
  const int64_t cols = TestCols(f, true);
  const float kNan = std::numeric_limits<float>::quiet_NaN();
  const float kInf = std::numeric_limits<float>::infinity();
  const float kDenorm = std::numeric_limits<float>::denorm_min();
  std::vector<std::vector<float>> cases = {
      std::vector<float>(cols, kDenorm),
      std::vector<float>(cols, -1e-40f),
      std::vector<float>(cols, 3.0e38f),
      std::vector<float>(cols, -std::numeric_limits<float>::max()),
  };
  for (float special : {kNan, kInf, -kInf, 1e30f, -1e30f, 1e-30f}) {
    std::vector<float> row(cols);
    for (int64_t i = 0; i < cols; ++i) row[i] = 0.01f * static_cast<float>(i % 7 - 3);
    row[cols / 3] = special;
    cases.push_back(row);
  }
  for (const auto& row : cases) {
    auto r = QuantizeDequantize(f, row, 1, cols);
    ASSERT_EQ(r.values.size(), row.size());
  }
  // Subnormal-only blocks reconstruct within the format's own bound.
  std::vector<float> bound(cols);
  for (const auto& row : {cases[0], cases[1]}) {
    auto r = QuantizeDequantize(f, row, 1, cols);
    f.ErrorBound(row.data(), 1, cols, bound.data());
    for (int64_t i = 0; i < cols; ++i) {
      if (std::isinf(bound[i])) continue;  // overflows to Inf/NaN by definition
      ASSERT_LE(std::fabs(row[i] - r.values[i]), bound[i]) << "i=" << i << " x=" << row[i];
    }
  }
}

TEST_P(FormatProperties, ErrorBoundHoldsOnRandomBlocks) {
  if (!format_->can_quantize()) GTEST_SKIP() << "decode-only";
  const Format& f = *format_;
  std::mt19937_64 rng(4);
  const int64_t rows = 16, cols = TestCols(f, true);
  std::vector<float> bound(static_cast<size_t>(rows * cols));
  for (int kind = 0; kind < testing::kNumRandomKinds; ++kind) {
    auto x = testing::RandomFloats(rng, bound.size(), kind);
    auto r = QuantizeDequantize(f, x, rows, cols);
    f.ErrorBound(x.data(), rows, cols, bound.data());
    for (size_t i = 0; i < x.size(); ++i) {
      if (std::isinf(bound[i])) continue;  // overflows to Inf/NaN by definition
      ASSERT_LE(std::fabs(static_cast<double>(x[i]) - r.values[i]), bound[i])
          << f.spec() << " kind " << kind << " element " << i << " x=" << x[i]
          << " qdq=" << r.values[i];
    }
  }
}

TEST(FormatRegistryWide, DecodeOnlyFormatsRefuseToQuantize) {
  int decode_only = 0;
  for (const std::string& name : AllPresetNames()) {
    FormatPtr f = MustParse(name);
    ASSERT_NE(f, nullptr);
    if (f->can_quantize()) continue;
    ++decode_only;
    std::vector<float> x(static_cast<size_t>(TestCols(*f, false)), 1.0f);
    std::vector<uint8_t> out(static_cast<size_t>(f->PackedBytes(1, x.size())));
    EXPECT_EQ(f->Quantize(x.data(), 1, x.size(), out.data()).code(), StatusCode::kUnimplemented)
        << name;
  }
  EXPECT_GE(decode_only, 7);  // the GGUF k-quants and IQ4 types
}

INSTANTIATE_TEST_SUITE_P(AllPresets, FormatProperties, ::testing::ValuesIn(AllPresetNames()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FormatProperties);

}  // namespace
}  // namespace lowbit
