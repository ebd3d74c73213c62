// Benchmark measurements behind `lowbit bench` and bench/matvec_bench.cc (docs/bench.md).
//
// Everything here reports ratios measured in the same run: a matvec's weight bytes per second
// against this machine's measured DRAM read bandwidth at the same thread count, and its time
// against the f32 product of the same shape, token count, thread count and instruction-set level.
// No test asserts on any of these numbers (timings are never test assertions).
//
// Statistic: every timed quantity is sampled repeatedly and the BEST (minimum) sample is used for
// the derived figures (GB/s, GFLOP/s, ratios); the median is reported next to it. On a machine
// shared with other work, interference only ever adds time, so the minimum is the least
// contaminated estimate of what the code itself costs; the median shows how noisy the run was.
// Bandwidth and matvec use the same statistic so that their ratio compares like with like.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/kernel.h"
#include "lowbit/format.h"
#include "lowbit/model.h"
#include "lowbit/status.h"

namespace lowbit::bench {

// ---- Machine ----

// Last-level (L3) cache size in bytes: sysfs cpu0/cache/index*/ (level 3), else
// sysconf(_SC_LEVEL3_CACHE_SIZE), else 32 MiB (a stated guess, flagged by *from_system = false).
int64_t L3CacheBytes(bool* from_system = nullptr);
// "model name" from /proc/cpuinfo, or "unknown CPU".
std::string CpuModelName();

// ---- Timing ----

struct TimingOptions {
  double min_time_s = 0.3;     // keep sampling until the samples add up to this much
  int64_t min_samples = 5;     // and at least this many samples were taken
  double max_time_s = 2.0;     // or once the samples add up to this much (slow cases: fewer
                               // samples rather than minutes per case)
  double min_sample_s = 1e-3;  // a sample batches calls until it lasts about this long
};

struct Timing {
  double best_s = 0.0;    // fastest sample, per call
  double median_s = 0.0;  // median sample, per call
  int64_t samples = 0;
  int64_t calls = 0;  // calls made in total, the warm-up call included
};

// Calls fn once to warm up, then in samples of k calls each (k chosen from the warm-up so that a
// sample lasts >= min_sample_s), until the TimingOptions are met.
Timing TimeCalls(const std::function<void()>& fn, const TimingOptions& options);

// ---- Read bandwidth ----

struct BandwidthResult {
  double gbps = 0.0;         // 1e9 bytes per second, from the best pass
  double median_gbps = 0.0;  // from the median pass
  int threads = 1;
  int64_t buffer_bytes = 0;
  int64_t bytes_read = 0;  // total traffic of the timed passes
  Timing timing;           // per pass over the buffer
};

// Streaming sum (64-bit integer adds, the widest vectors this CPU has) over a buffer of
// buffer_bytes, split across n_threads threads in chunks handed out dynamically; one timed sample
// = one pass. Passes repeat until min_traffic_bytes have been read and options are met. For DRAM
// bandwidth use a buffer of >= 4x the L3; for L3-resident bandwidth one of about half the L3.
BandwidthResult MeasureReadBandwidth(int64_t buffer_bytes, int n_threads, int64_t min_traffic_bytes,
                                     const TimingOptions& options);

// ---- Matvec weights ----

// A 64-byte aligned byte buffer.
class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(int64_t n_bytes);
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  int64_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> data_;
  int64_t size_ = 0;
};

// Benchmark input, not a model: a (rows, cols) matrix of N(0, 0.02) weights stored in `format`
// (null: plain f32). Only a band of up to kBandRows distinct rows is generated and quantized; the
// packed band rows are repeated down the matrix (every format decodes a row from its own bytes
// and the per-tensor header, and a kernel's speed does not depend on which rows repeat). A
// per-tensor header (tensor scale, codebook) is the band's, valid for a matrix made of the band's
// rows; only a header whose size depends on the row count forces quantizing the whole matrix.
// Decode-only formats (can_quantize() false, e.g. q4_k, q6_k) are filled with random bytes, and
// every block that decodes to a non-finite value (an fp16 scale field that happened to be
// Inf/NaN) is redrawn until the block decodes to finite values.
struct BenchMatrix {
  FormatPtr format;  // null: f32
  int64_t rows = 0;
  int64_t cols = 0;
  AlignedBytes packed;        // PackedBytes(rows, cols) (or 4 * rows * cols)
  bool random_bytes = false;  // filled by the decode-only rule above
  int64_t n_bytes() const { return packed.size(); }
};
constexpr int64_t kBandRows = 256;

Result<BenchMatrix> MakeBenchMatrix(const FormatPtr& format, int64_t rows, int64_t cols,
                                    uint64_t seed);

// ---- Matvec timing ----

struct MatvecCase {
  int64_t n_tokens = 1;
  int threads = 1;
  kernels::Isa isa = kernels::Isa::kScalar;
};

struct MatvecResult {
  std::string kernel;        // registered kernel name, "fallback" (tiled dequantize), or "f32"
  int64_t weight_bytes = 0;  // PackedBytes(rows, cols) of the format (4 * rows * cols for f32)
  int64_t copies = 0;        // distinct copies cycled through (see MatvecBench)
  Timing timing;             // per Linear call
  double weight_gbps = 0.0;  // weight_bytes / best time, 1e9 bytes per second
  double gflops = 0.0;       // 2 * rows * cols * n_tokens / best time, 1e9 per second
};

// Times lowbit::Linear on one matrix at one instruction-set level. So that every call streams its
// weights from DRAM, as in decoding where a model's matrices together far exceed the caches, the
// bench keeps `copies` copies of the weights (enough for max(4x the L3, 1 GiB) in total, at most
// kMaxCopies) and each call uses the next one. The 1 GiB floor matters where the L3 the system
// reports is smaller than the cache the process really sees (a VM on a host with stacked L3):
// with 4x a reported 32 MiB, 8-bit formats measured up to 169% of the DRAM probe. Each copy is
// given the kernel's layout with PrepareWeightForIsa, as the runtime does at load time. `resident`
// keeps a single copy instead, reused by every call: with a matrix that fits the caches this
// measures the kernel's own compute rate (what it could stream at most), the diagnostic for a
// kernel that stays under the DRAM line.
class MatvecBench {
 public:
  static constexpr int64_t kMaxCopies = 256;
  static constexpr int64_t kMinStreamBytes = int64_t{1} << 30;
  MatvecBench(const BenchMatrix& matrix, kernels::Isa isa, int64_t l3_bytes, bool resident = false);
  MatvecBench(const MatvecBench&) = delete;
  MatvecBench& operator=(const MatvecBench&) = delete;

  // Kernel name at this level: the registered entry's name, "fallback" or "f32".
  const std::string& kernel() const { return kernel_; }
  int64_t copies() const { return static_cast<int64_t>(views_.size()); }
  MatvecResult Run(const MatvecCase& c, ThreadPool& pool, const TimingOptions& options);
  // One product on the next copy: y: (n_tokens, rows) = x: (n_tokens, cols) . W^T.
  void Multiply(const float* x, int64_t n_tokens, float* y, ThreadPool& pool);

 private:
  kernels::Isa isa_;
  int64_t rows_;
  int64_t cols_;
  int64_t weight_bytes_;
  std::string kernel_;
  AlignedBytes copies_;            // copies() * stride bytes
  std::vector<WeightView> views_;  // one per copy, prepared for isa_
  size_t next_ = 0;                // the copy the next product reads
};

// Name of the kernel FindKernel gives format at isa: entry name, or "fallback"; "f32" for null.
std::string KernelNameFor(const Format* format, kernels::Isa isa);

// ---- End-to-end decode ----

// `model` with every matrix stored in the format named by spec. "f32" gives plain in-place f32
// views (format null), the runtime's unquantized baseline, decoded from whatever the file holds.
Result<LlamaModel> ModelWithWeightsIn(const LlamaModel& model, const std::string& spec);

struct DecodeOptions {
  int64_t generated_tokens = 128;
  int threads = 2;
  int repeats = 1;  // the whole prompt + generation is repeated; the best generation time counts
};

struct DecodeResult {
  double prompt_s = 0.0;      // prefill of the prompt, best repeat
  double generate_s = 0.0;    // generated_tokens single-token steps, best repeat
  double tokens_per_s = 0.0;  // generated_tokens / generate_s
  int64_t weight_bytes = 0;   // model.WeightBytes()
};

// Runs the prompt as one batch, then generated_tokens greedy single-token decode steps (argmax,
// end-of-sequence ignored so every format does the same amount of work).
Result<DecodeResult> MeasureDecode(const LlamaModel& model, std::span<const int32_t> prompt,
                                   const DecodeOptions& options);

}  // namespace lowbit::bench
