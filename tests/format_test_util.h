// Shared helpers for the registry-wide format property tests (unit and consistency suites).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lowbit/format_registry.h"

namespace lowbit::testing {

// Every preset name, in registry order (the parameter list of the property suites).
inline std::vector<std::string> AllPresetNames() {
  std::vector<std::string> names;
  for (const auto& p : FormatRegistry::Get().presets()) names.push_back(p.name);
  return names;
}

inline FormatPtr MustParse(const std::string& spec) {
  auto f = ParseFormat(spec);
  EXPECT_TRUE(f.ok()) << spec << ": " << f.status().message();
  return f.ok() ? *f : nullptr;
}

// A row length that exercises the format: a few blocks (plus a tail when tail is set).
inline int64_t TestCols(const Format& f, bool tail) {
  const int64_t b = f.block_size() > 0 ? f.block_size() : 64;
  return 3 * b + (tail ? (b > 1 ? b / 2 + 1 : 1) : 0);
}

struct QdqResult {
  std::vector<uint8_t> bytes;  // the packed tensor
  std::vector<float> values;   // its dequantization
};

inline QdqResult QuantizeDequantize(const Format& f, const std::vector<float>& x, int64_t rows,
                                    int64_t cols) {
  QdqResult r;
  r.bytes.resize(static_cast<size_t>(f.PackedBytes(rows, cols)));
  Status st = f.Quantize(x.data(), rows, cols, r.bytes.data());
  EXPECT_TRUE(st.ok()) << f.spec() << ": " << st.message();
  r.values.resize(x.size());
  f.Dequantize(r.bytes.data(), rows, cols, r.values.data());
  return r;
}

// One row: quantize -> dequantize.
inline QdqResult RunRow(const Format& f, const std::vector<float>& x) {
  return QuantizeDequantize(f, x, 1, static_cast<int64_t>(x.size()));
}

// A 16-element block: head, then zeros.
inline std::vector<float> Block16(std::vector<float> head) {
  head.resize(16, 0.0f);
  return head;
}

// Float equality for test purposes: equal values (+0 == -0), or both NaN.
inline bool SameValue(float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }

}  // namespace lowbit::testing
