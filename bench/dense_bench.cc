// The dense training product (src/kernels/dense.h) at every ISA level this machine runs, on the
// shape of one SmolLM2-135M FFN product in AQLM fine-tuning (1024 tokens x 576 -> 1536), one
// thread. The scalar level (the same fma chain through std::fma) is the baseline measured in the
// same run; each row reports GFLOP/s, and `vs_scalar` is its speed-up over that baseline.
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "kernels/dense.h"

namespace {

using lowbit::kernels::Isa;

constexpr int64_t kTokens = 1024, kDepth = 576, kOut = 1536;

template <class T>
struct Operands {
  std::vector<T> a, b, y;
  Operands() : a(kTokens * kDepth), b(kDepth * kOut), y(kTokens * kOut) {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (T& v : a) v = static_cast<T>(normal(rng));
    for (T& v : b) v = static_cast<T>(normal(rng));
  }
};

template <class T>
double SecondsPerProduct(Isa isa, Operands<T>& o) {
  const lowbit::kernels::DenseArgs<T> args{o.a.data(), o.b.data(), o.y.data(), kDepth, kOut};
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    lowbit::kernels::MultiplyRows<T>(isa, args, 0, kTokens);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

template <class T>
void BM_Dense(benchmark::State& state, Isa isa) {
  Operands<T> o;
  const double scalar = SecondsPerProduct(Isa::kScalar, o);
  const lowbit::kernels::DenseArgs<T> args{o.a.data(), o.b.data(), o.y.data(), kDepth, kOut};
  for (auto _ : state) {
    lowbit::kernels::MultiplyRows<T>(isa, args, 0, kTokens);
    benchmark::DoNotOptimize(o.y.data());
  }
  const double flops = 2.0 * kTokens * kDepth * kOut;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["vs_scalar"] = scalar / SecondsPerProduct(isa, o);
}

const bool kRegistered = [] {
  for (int level = 0; level <= static_cast<int>(lowbit::kernels::MaxSupportedIsa()); ++level) {
    const Isa isa = static_cast<Isa>(level);
    const std::string name = lowbit::kernels::IsaName(isa);
    benchmark::RegisterBenchmark(("BM_DenseF32/" + name).c_str(), BM_Dense<float>, isa)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_DenseF64/" + name).c_str(), BM_Dense<double>, isa)->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
