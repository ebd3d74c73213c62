// The documented error bound of every encodable preset, checked on 10^6 random blocks each
// (several input distributions). Release-only suite: too slow under the sanitizers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "format_test_util.h"
#include "test_support.h"

namespace lowbit {
namespace {

class FormatErrorBound : public ::testing::TestWithParam<std::string> {};

TEST_P(FormatErrorBound, HoldsOnAMillionRandomBlocks) {
  const PresetInfo* preset = FormatRegistry::Get().FindPreset(GetParam());
  ASSERT_NE(preset, nullptr);
  FormatPtr f = testing::MustParse(preset->spec);
  ASSERT_NE(f, nullptr);
  if (!f->can_quantize()) GTEST_SKIP() << "decode-only";
  // Per-row/per-tensor formats: a 32-element row counts as one block.
  const int64_t block = f->block_size() > 0 ? f->block_size() : 32;
  const int64_t kBlocks = 1000000;
  const int64_t cols = block * std::max<int64_t>(1, 4096 / block);
  const int64_t rows_per_batch = std::max<int64_t>(1, 65536 / cols);
  const int64_t blocks_per_batch = rows_per_batch * (cols / block);
  std::mt19937_64 rng(20261123);
  std::vector<float> bound(static_cast<size_t>(rows_per_batch * cols));
  int64_t checked_blocks = 0, checked_values = 0, overflowed = 0;
  double worst_ratio = 0.0;
  for (int64_t batch = 0; checked_blocks < kBlocks; ++batch) {
    auto x = testing::RandomFloats(rng, bound.size(), static_cast<int>(batch));
    auto r = testing::QuantizeDequantize(*f, x, rows_per_batch, cols);
    f->ErrorBound(x.data(), rows_per_batch, cols, bound.data());
    if (batch == 0 && std::all_of(bound.begin(), bound.end(), [](float b) { return std::isinf(b); })) {
      // Learned per-tensor codebooks (aqlm) have no a-priori bound: nothing to check here.
      GTEST_SKIP() << f->spec() << ": no finite error bound (learned codebooks)";
    }
    for (size_t i = 0; i < x.size(); ++i) {
      if (std::isinf(bound[i])) {  // overflows to Inf/NaN by definition (IEEE overflow mode)
        ++overflowed;
        continue;
      }
      const double err = std::fabs(static_cast<double>(x[i]) - r.values[i]);
      ASSERT_LE(err, bound[i]) << f->spec() << " batch " << batch << " element " << i
                               << " x=" << x[i] << " qdq=" << r.values[i];
      if (bound[i] > 0) worst_ratio = std::max(worst_ratio, err / bound[i]);
    }
    checked_blocks += blocks_per_batch;
    checked_values += static_cast<int64_t>(x.size());
  }
  RecordProperty("blocks_checked", std::to_string(checked_blocks));
  RecordProperty("worst_error_over_bound", std::to_string(worst_ratio));
  std::printf("%-16s %lld blocks, %lld values (%lld overflow to Inf/NaN), worst |err|/bound = %.4f\n",
              GetParam().c_str(), static_cast<long long>(checked_blocks),
              static_cast<long long>(checked_values), static_cast<long long>(overflowed), worst_ratio);
}

INSTANTIATE_TEST_SUITE_P(AllPresets, FormatErrorBound,
                         ::testing::ValuesIn(testing::AllPresetNames()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FormatErrorBound);

}  // namespace
}  // namespace lowbit
