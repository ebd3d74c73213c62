// libFuzzer target: format spec strings (ParseFormat: presets, families, key=value parameters).
// A spec that parses must print a canonical spec that parses to the same spec, and its format must
// quantize and dequantize a small pseudo-random tensor (shape and values derived from the input)
// within its own ErrorBound, and decode arbitrary bytes without reading out of bounds.
#include <cmath>
#include <random>

#include "fuzz_common.h"
#include "lowbit/format_registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  const std::string_view spec(reinterpret_cast<const char*>(data), size);
  Result<FormatPtr> parsed = ParseFormat(spec);
  if (!parsed.ok()) {
    fuzz::CheckError(parsed.status());
    return 0;
  }
  const Format& f = **parsed;
  const std::string canonical = f.spec();
  Result<FormatPtr> again = ParseFormat(canonical);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK((*again)->spec() == canonical);

  uint64_t seed = 1469598103934665603ull;  // FNV-1a of the input picks the shape and the values
  for (size_t i = 0; i < size; ++i) seed = (seed ^ data[i]) * 1099511628211ull;
  std::mt19937_64 rng(seed);
  const int64_t rows = 1 + static_cast<int64_t>(rng() % 3);
  const int64_t cols = 1 + static_cast<int64_t>(rng() % 300);
  const int64_t n_bytes = f.PackedBytes(rows, cols);
  FUZZ_CHECK(n_bytes > 0);
  if (n_bytes > (int64_t{1} << 24)) return 0;  // an absurd block size (a harness limit, not a bug)

  std::vector<float> x(static_cast<size_t>(rows * cols));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 40) - 20);
  for (float& v : x) v = normal(rng) * scale;
  std::vector<uint8_t> packed(static_cast<size_t>(n_bytes));
  std::vector<float> y(x.size()), bound(x.size());
  if (f.can_quantize()) {
    const Status st = f.Quantize(x.data(), rows, cols, packed.data());
    FUZZ_CHECK(st.ok());
    f.Dequantize(packed.data(), rows, cols, y.data());
    f.ErrorBound(x.data(), rows, cols, bound.data());
    for (size_t i = 0; i < x.size(); ++i) {
      // An infinite bound means "no finite bound" (IEEE overflow to Inf/NaN): anything goes.
      if (std::isinf(bound[i])) continue;
      if (!(std::fabs(x[i] - y[i]) <= bound[i])) {
        std::fprintf(stderr, "%s: element %zu: x = %.9g, dequantized %.9g, bound %.9g\n",
                     canonical.c_str(), i, x[i], y[i], bound[i]);
        FUZZ_CHECK(false);
      }
    }
  } else {
    FUZZ_CHECK(f.Quantize(x.data(), rows, cols, packed.data()).code() ==
               StatusCode::kUnimplemented);
  }
  // Any bytes decode (to something, NaN allowed) without reading past PackedBytes.
  for (uint8_t& b : packed) b = static_cast<uint8_t>(rng());
  f.Dequantize(packed.data(), rows, cols, y.data());
  f.DequantizeRows(packed.data(), rows, cols, rows - 1, rows, y.data());
  return 0;
}
