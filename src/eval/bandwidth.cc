// Machine facts (L3 size, CPU name), the repeated-call timer, and the streaming read-bandwidth
// measurement of `lowbit bench` (src/eval/bench.h, docs/bench.md).
#include <unistd.h>

// U64 vectors only cross always_inline functions, so the vector-ABI note GCC prints is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "eval/bench.h"
#include "runtime/thread_pool.h"

namespace lowbit::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// "32768K" / "32M" / "1024" -> bytes; 0 when unparsable.
int64_t ParseCacheSize(const std::string& text) {
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (end == text.c_str() || value <= 0) return 0;
  switch (*end) {
    case 'K':
      return value << 10;
    case 'M':
      return value << 20;
    case 'G':
      return value << 30;
    default:
      return value;
  }
}

#define LOWBIT_INLINE inline __attribute__((always_inline))

// Sums n 64-bit words with 4 independent vector accumulators (integer adds never reassociate
// wrongly, and 4 chains hide the add latency); the tail is summed scalar.
template <class V>
LOWBIT_INLINE uint64_t SumImpl(const uint64_t* p, int64_t n) {
  constexpr int64_t kLanes = sizeof(V) / sizeof(uint64_t);
  V acc[4] = {};
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    for (int a = 0; a < 4; ++a) {
      V v;
      std::memcpy(&v, p + i + a * kLanes, sizeof(V));
      acc[a] += v;
    }
  }
  uint64_t sum = 0;
  for (int a = 0; a < 4; ++a)
    for (int64_t l = 0; l < kLanes; ++l) sum += acc[a][l];
  for (; i < n; ++i) sum += p[i];
  return sum;
}

typedef uint64_t U64x2 __attribute__((vector_size(16)));
typedef uint64_t U64x4 __attribute__((vector_size(32)));
typedef uint64_t U64x8 __attribute__((vector_size(64)));

uint64_t SumSse2(const uint64_t* p, int64_t n) { return SumImpl<U64x2>(p, n); }
__attribute__((target("avx2"))) uint64_t SumAvx2(const uint64_t* p, int64_t n) {
  return SumImpl<U64x4>(p, n);
}
__attribute__((target("avx512f"))) uint64_t SumAvx512(const uint64_t* p, int64_t n) {
  return SumImpl<U64x8>(p, n);
}

using SumFn = uint64_t (*)(const uint64_t*, int64_t);

// The machine's bandwidth is measured with the widest loads it has, whatever LOWBIT_ISA says:
// it is a property of the machine, not of a kernel level. Resolved once.
SumFn WidestSum() {
  static const SumFn fn = [] {
    switch (kernels::MaxSupportedIsa()) {
      case kernels::Isa::kAvx512:
        return &SumAvx512;
      case kernels::Isa::kAvx2:
        return &SumAvx2;
      default:
        return &SumSse2;
    }
  }();
  return fn;
}

}  // namespace

int64_t L3CacheBytes(bool* from_system) {
  if (from_system != nullptr) *from_system = true;
  const std::filesystem::path dir = "/sys/devices/system/cpu/cpu0/cache";
  std::error_code ec;
  int64_t best = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("index", 0) != 0) continue;
    if (ReadFirstLine((entry.path() / "level").string()) != "3") continue;
    best = std::max(best, ParseCacheSize(ReadFirstLine((entry.path() / "size").string())));
  }
  if (best > 0) return best;
#ifdef _SC_LEVEL3_CACHE_SIZE
  const long sc = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (sc > 0) return sc;
#endif
  if (from_system != nullptr) *from_system = false;
  return int64_t{32} << 20;
}

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "unknown CPU" : line.substr(start);
  }
  return "unknown CPU";
}

Timing TimeCalls(const std::function<void()>& fn, const TimingOptions& options) {
  Timing t;
  const auto w0 = Clock::now();
  fn();
  const double warm_s = std::max(Seconds(w0, Clock::now()), 1e-9);
  t.calls = 1;
  // Calls per sample: enough that one sample lasts min_sample_s (timer overhead negligible).
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(options.min_sample_s / warm_s) + 1, 1,
                                        int64_t{1} << 20);
  std::vector<double> per_call;
  double total_s = 0.0;
  while (true) {
    const auto s0 = Clock::now();
    for (int64_t i = 0; i < k; ++i) fn();
    const double sample_s = Seconds(s0, Clock::now());
    t.calls += k;
    total_s += sample_s;
    per_call.push_back(sample_s / static_cast<double>(k));
    const bool enough = total_s >= options.min_time_s &&
                        static_cast<int64_t>(per_call.size()) >= options.min_samples;
    if (enough || total_s >= options.max_time_s) break;
  }
  std::sort(per_call.begin(), per_call.end());
  t.samples = static_cast<int64_t>(per_call.size());
  t.best_s = per_call.front();
  t.median_s = per_call[per_call.size() / 2];
  return t;
}

BandwidthResult MeasureReadBandwidth(int64_t buffer_bytes, int n_threads, int64_t min_traffic_bytes,
                                     const TimingOptions& options) {
  LOWBIT_CHECK(buffer_bytes >= 4096 && n_threads >= 1);
  const int64_t n_words = buffer_bytes / 8;
  AlignedBytes buffer(n_words * 8);
  auto* words = reinterpret_cast<uint64_t*>(buffer.data());
  ThreadPool pool(n_threads);
  // Chunks handed out dynamically keep every thread busy to the end of a pass; 64 KiB minimum so
  // the hand-out cost stays negligible. Pages are first touched by the thread that will mostly
  // read them (the same dynamic split, so only roughly; it matters on NUMA machines only).
  const int64_t chunk_words =
      std::max<int64_t>(8192, n_words / (16 * static_cast<int64_t>(n_threads)));
  const int64_t n_chunks = (n_words + chunk_words - 1) / chunk_words;
  pool.ParallelFor(n_chunks, [&](int64_t c, int) {
    const int64_t w0 = c * chunk_words;
    const int64_t w1 = std::min(n_words, w0 + chunk_words);
    for (int64_t i = w0; i < w1; ++i) words[i] = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
  });
  const SumFn sum = WidestSum();
  std::vector<uint64_t> partial(static_cast<size_t>(n_chunks));
  std::atomic<uint64_t> sink{0};
  auto pass = [&] {
    pool.ParallelFor(n_chunks, [&](int64_t c, int) {
      const int64_t w0 = c * chunk_words;
      partial[static_cast<size_t>(c)] = sum(words + w0, std::min(n_words, w0 + chunk_words) - w0);
    });
    uint64_t total = 0;
    for (uint64_t v : partial) total += v;
    sink.fetch_add(total, std::memory_order_relaxed);  // keeps the sums observable
  };
  TimingOptions o = options;
  o.min_sample_s = 0.0;  // one pass per sample
  const int64_t bytes = n_words * 8;
  o.min_samples = std::max<int64_t>(o.min_samples, (min_traffic_bytes + bytes - 1) / bytes);
  o.max_time_s = std::max(o.max_time_s, 60.0);  // the traffic requirement comes first
  BandwidthResult r;
  r.timing = TimeCalls(pass, o);
  r.threads = n_threads;
  r.buffer_bytes = bytes;
  r.bytes_read = (r.timing.calls - 1) * bytes;
  r.gbps = static_cast<double>(bytes) / r.timing.best_s * 1e-9;
  r.median_gbps = static_cast<double>(bytes) / r.timing.median_s * 1e-9;
  return r;
}

AlignedBytes::AlignedBytes(int64_t n_bytes) : size_(n_bytes) {
  LOWBIT_CHECK(n_bytes >= 0);
  const size_t rounded = (static_cast<size_t>(n_bytes) + 63) / 64 * 64;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, std::max<size_t>(rounded, 64)));
  LOWBIT_CHECK(p != nullptr);
  data_.reset(p);
}

void AlignedBytes::Free::operator()(uint8_t* p) const { std::free(p); }

}  // namespace lowbit::bench
