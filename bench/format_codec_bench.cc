// Reference quantize / dequantize throughput of every registered preset, next to a memcpy of the
// same f32 data measured in the same run (the baseline the ratio is printed against).
// These are the scalar reference codecs (the specification); fast kernels come with their own bench.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "lowbit/format_registry.h"

namespace {

constexpr int64_t kRows = 64;
constexpr int64_t kCols = 4096;

std::vector<float> Inputs() {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(kRows * kCols);
  for (auto& v : x) v = normal(rng);
  return x;
}

void BM_MemcpyF32(benchmark::State& state) {
  auto x = Inputs();
  std::vector<float> y(x.size());
  for (auto _ : state) {
    std::memcpy(y.data(), x.data(), x.size() * sizeof(float));
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(x.size() * sizeof(float)));
}
BENCHMARK(BM_MemcpyF32);

void BM_Quantize(benchmark::State& state, lowbit::FormatPtr f) {
  auto x = Inputs();
  std::vector<uint8_t> packed(f->PackedBytes(kRows, kCols));
  for (auto _ : state) {
    benchmark::DoNotOptimize(f->Quantize(x.data(), kRows, kCols, packed.data()).ok());
  }
  state.SetItemsProcessed(state.iterations() * kRows * kCols);
}

void BM_Dequantize(benchmark::State& state, lowbit::FormatPtr f) {
  auto x = Inputs();
  std::vector<uint8_t> packed(f->PackedBytes(kRows, kCols));
  if (f->can_quantize()) {
    (void)f->Quantize(x.data(), kRows, kCols, packed.data());
  }
  std::vector<float> y(x.size());
  for (auto _ : state) {
    f->Dequantize(packed.data(), kRows, kCols, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * kRows * kCols);
}

const bool kRegistered = [] {
  for (const auto& preset : lowbit::FormatRegistry::Get().presets()) {
    auto f = lowbit::ParseFormat(preset.spec);
    if (!f.ok()) continue;
    if ((*f)->can_quantize()) {
      benchmark::RegisterBenchmark(("BM_Quantize/" + preset.name).c_str(), BM_Quantize, *f);
    }
    benchmark::RegisterBenchmark(("BM_Dequantize/" + preset.name).c_str(), BM_Dequantize, *f);
  }
  return true;
}();

}  // namespace
