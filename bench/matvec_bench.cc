// Matvec y = x . W^T of every registered preset at the active instruction-set level (LOWBIT_ISA
// lowers it), through the runtime's lowbit::Linear, with the ratios of `lowbit bench` measured in
// the same run: weight GB/s against this machine's DRAM read bandwidth at the same thread count
// (frac_dram) and the speed-up over the f32 product of the same shape, threads and n (x_f32).
// The machinery (weights cycled through >= 4x L3 of copies, decode-only formats filled with
// decodable random bytes) is src/eval/bench.h; docs/bench.md explains the measurements.
//
//   matvec_bench --benchmark_filter='BM_Matvec/q4_0/'    one format
//   matvec_bench --benchmark_filter='4096x11008/threads:2/n:1$'   the target case
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "eval/bench.h"
#include "lowbit/format_registry.h"
#include "runtime/thread_pool.h"

namespace {

using lowbit::FormatPtr;
using lowbit::ThreadPool;
namespace bench = lowbit::bench;
namespace kernels = lowbit::kernels;

int64_t L3() {
  static const int64_t l3 = bench::L3CacheBytes();
  return l3;
}

// DRAM read bandwidth at a thread count, measured once per process.
double DramGbps(int threads) {
  static std::map<int, double> cache;
  auto it = cache.find(threads);
  if (it != cache.end()) return it->second;
  const bench::BandwidthResult r = bench::MeasureReadBandwidth(
      std::max<int64_t>(4 * L3(), int64_t{128} << 20), threads, int64_t{1} << 30, {});
  return cache[threads] = r.gbps;
}

// Seconds per call of lowbit::Linear on `matrix` (best of the samples), at the active level.
double TimeLinear(const bench::BenchMatrix& matrix, int threads, int64_t n) {
  bench::MatvecBench mb(matrix, kernels::ActiveIsa(), L3());
  ThreadPool pool(threads);
  return mb.Run({n, threads, kernels::ActiveIsa()}, pool, {}).timing.best_s;
}

// The f32 baseline per (rows, cols, threads, n), measured once per process.
double F32Seconds(int64_t rows, int64_t cols, int threads, int64_t n) {
  static std::map<std::tuple<int64_t, int64_t, int, int64_t>, double> cache;
  const auto key = std::make_tuple(rows, cols, threads, n);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto matrix = bench::MakeBenchMatrix(nullptr, rows, cols, 7);
  return cache[key] = TimeLinear(*matrix, threads, n);
}

// Args: {threads, n}.
void BM_Matvec(benchmark::State& state, FormatPtr format, int64_t rows, int64_t cols) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t n = state.range(1);
  auto matrix = bench::MakeBenchMatrix(format, rows, cols, 7);
  if (!matrix.ok()) {
    state.SkipWithError(matrix.status().message().c_str());
    return;
  }
  const double dram_gbps = DramGbps(threads);
  const double f32_s = F32Seconds(rows, cols, threads, n);
  bench::MatvecBench mb(*matrix, kernels::ActiveIsa(), L3());
  ThreadPool pool(threads);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (float& v : x) v = normal(rng);
  std::vector<float> y(static_cast<size_t>(n * rows));
  mb.Multiply(x.data(), n, y.data(), pool);  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    mb.Multiply(x.data(), n, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  const double per_call =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
      static_cast<double>(state.iterations());
  const double gbps = static_cast<double>(matrix->n_bytes()) / per_call * 1e-9;
  state.SetBytesProcessed(state.iterations() * matrix->n_bytes());
  state.counters["weight_GBps"] = gbps;
  state.counters["frac_dram"] = gbps / dram_gbps;
  state.counters["x_f32"] = f32_s / per_call;
  state.counters["GFLOPs"] = 2.0 * static_cast<double>(rows * cols * n) / per_call * 1e-9;
  state.counters["copies"] = static_cast<double>(mb.copies());
  state.SetLabel(std::string(kernels::IsaName(kernels::ActiveIsa())) + " " + mb.kernel() +
                 (matrix->random_bytes ? " random-bytes" : ""));
}

void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const bool dram = state.range(1) != 0;
  const int64_t bytes = dram ? std::max<int64_t>(4 * L3(), int64_t{128} << 20) : L3() / 2;
  bench::BandwidthResult r;
  for (auto _ : state) {
    r = bench::MeasureReadBandwidth(bytes, threads, int64_t{1} << 30, {});
    state.SetIterationTime(r.timing.best_s);
  }
  state.counters["GBps"] = r.gbps;
  state.counters["median_GBps"] = r.median_gbps;
  state.SetLabel(dram ? "DRAM (buffer 4x L3)" : "L3-resident (buffer L3/2)");
}
BENCHMARK(BM_ReadBandwidth)
    ->ArgsProduct({{1, 2}, {1, 0}})
    ->ArgNames({"threads", "dram"})
    ->UseManualTime()
    ->Iterations(1);

const bool kRegistered = [] {
  struct Shape {
    int64_t rows, cols;
  };
  std::vector<std::pair<std::string, FormatPtr>> formats = {{"f32", nullptr}};
  for (const auto& preset : lowbit::FormatRegistry::Get().presets()) {
    auto f = lowbit::ParseFormat(preset.spec);
    if (f.ok() && preset.name != "f32") formats.emplace_back(preset.name, *f);
  }
  for (Shape s : {Shape{4096, 4096}, Shape{4096, 11008}}) {
    for (const auto& [name, f] : formats) {
      const std::string label =
          "BM_Matvec/" + name + "/" + std::to_string(s.rows) + "x" + std::to_string(s.cols);
      benchmark::RegisterBenchmark(label.c_str(), BM_Matvec, f, s.rows, s.cols)
          ->ArgsProduct({{1, 2}, {1, 16}})
          ->ArgNames({"threads", "n"})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
