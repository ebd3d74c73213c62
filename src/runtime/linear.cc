#include "runtime/linear.h"

// V8 values only cross always_inline functions, so the vector-ABI note GCC prints is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/thread_pool.h"

namespace lowbit {
namespace {

// GCC/Clang vector extension: 8 f32 lanes. Without AVX the compiler lowers each operation to two
// SSE operations on the same lanes, so both paths compute identical bits.
typedef float V8 __attribute__((vector_size(32)));

#define LOWBIT_INLINE inline __attribute__((always_inline))

LOWBIT_INLINE V8 Load8(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Adds the tail elements k0..n-1 into their lanes (k mod 8, as if the vector loop went on) and
// reduces the lanes with the fixed tree.
LOWBIT_INLINE float Finish(V8 acc, const float* x, const float* w, int64_t k0, int64_t n) {
  float lane[8];
  std::memcpy(lane, &acc, sizeof(lane));
  for (int64_t k = k0; k < n; ++k) lane[k - k0] += x[k] * w[k];
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

// y[t * ldy + r] = dot(x row t, w row r) for MT tokens x MR rows; x and w rows have length n,
// w rows are ldw floats apart.
template <int MT, int MR>
LOWBIT_INLINE void Block(const float* x, const float* w, int64_t n, float* y, int64_t ldy,
                         int64_t ldw) {
  V8 acc[MT][MR];
  for (int t = 0; t < MT; ++t)
    for (int r = 0; r < MR; ++r) acc[t][r] = V8{0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    V8 wv[MR];
    for (int r = 0; r < MR; ++r) wv[r] = Load8(w + r * ldw + k);
    for (int t = 0; t < MT; ++t) {
      const V8 xv = Load8(x + t * n + k);
      for (int r = 0; r < MR; ++r) acc[t][r] += xv * wv[r];
    }
  }
  for (int t = 0; t < MT; ++t)
    for (int r = 0; r < MR; ++r) y[t * ldy + r] = Finish(acc[t][r], x + t * n, w + r * ldw, k, n);
}

// y: (n_tokens, ldy) columns [0, n_rows) = x: (n_tokens, n) . w: (n_rows, n)^T.
template <int MT, int MR>
LOWBIT_INLINE void TileImpl(const float* x, int64_t n_tokens, int64_t n, const float* w,
                            int64_t n_rows, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + MT <= n_tokens; t += MT) {
    int64_t r = 0;
    for (; r + MR <= n_rows; r += MR)
      Block<MT, MR>(x + t * n, w + r * n, n, y + t * ldy + r, ldy, n);
    for (; r < n_rows; ++r) Block<MT, 1>(x + t * n, w + r * n, n, y + t * ldy + r, ldy, n);
  }
  for (; t < n_tokens; ++t) {
    int64_t r = 0;
    for (; r + MR <= n_rows; r += MR)
      Block<1, MR>(x + t * n, w + r * n, n, y + t * ldy + r, ldy, n);
    for (; r < n_rows; ++r) Block<1, 1>(x + t * n, w + r * n, n, y + t * ldy + r, ldy, n);
  }
}

// Register blocking: 4 tokens x 2 rows = 8 accumulators fits the 16 ymm registers of AVX2; the
// generic path (2 xmm per V8) uses 2 x 2.
__attribute__((target("avx2"))) void TileAvx2(const float* x, int64_t n_tokens, int64_t n,
                                              const float* w, int64_t n_rows, float* y,
                                              int64_t ldy) {
  TileImpl<4, 2>(x, n_tokens, n, w, n_rows, y, ldy);
}

void TileGeneric(const float* x, int64_t n_tokens, int64_t n, const float* w, int64_t n_rows,
                 float* y, int64_t ldy) {
  TileImpl<2, 2>(x, n_tokens, n, w, n_rows, y, ldy);
}

__attribute__((target("avx2"))) float DotAvx2(const float* a, const float* b, int64_t n) {
  float y;
  Block<1, 1>(a, b, n, &y, 1, n);
  return y;
}

float DotGeneric(const float* a, const float* b, int64_t n) {
  float y;
  Block<1, 1>(a, b, n, &y, 1, n);
  return y;
}

// out[j] = Dot(x, rows + j * ldw, n): MR rows at a time, so MR independent add chains run at once
// where one Dot call waits on one (the bits are Dot's: each row keeps its own lanes and order).
template <int MR>
LOWBIT_INLINE void DotRowsImpl(const float* x, const float* rows, int64_t ldw, int64_t n_rows,
                               int64_t n, float* out) {
  int64_t j = 0;
  for (; j + MR <= n_rows; j += MR) Block<1, MR>(x, rows + j * ldw, n, out + j, 1, ldw);
  for (; j < n_rows; ++j) Block<1, 1>(x, rows + j * ldw, n, out + j, 1, ldw);
}

__attribute__((target("avx2"))) void DotRowsAvx2(const float* x, const float* rows, int64_t ldw,
                                                 int64_t n_rows, int64_t n, float* out) {
  DotRowsImpl<4>(x, rows, ldw, n_rows, n, out);
}

void DotRowsGeneric(const float* x, const float* rows, int64_t ldw, int64_t n_rows, int64_t n,
                    float* out) {
  DotRowsImpl<2>(x, rows, ldw, n_rows, n, out);
}

// out[d] = sum over j in increasing order of p[j] * rows[j * ldw + d], from 0: per element the
// same f32 multiplies and adds as the plain loop, with 64 outputs held in registers across j.
LOWBIT_INLINE void AddScaledRowsImpl(const float* p, const float* rows, int64_t ldw, int64_t n_rows,
                                     int64_t n, float* out) {
  constexpr int kChunks = 8;  // V8 accumulators: 64 outputs per pass over the rows
  int64_t d = 0;
  for (; d + 8 * kChunks <= n; d += 8 * kChunks) {
    V8 acc[kChunks];
    for (int c = 0; c < kChunks; ++c) acc[c] = V8{0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; j < n_rows; ++j) {
      const float pj = p[j];
      const V8 pv = V8{pj, pj, pj, pj, pj, pj, pj, pj};
      const float* v = rows + j * ldw + d;
      for (int c = 0; c < kChunks; ++c) acc[c] += pv * Load8(v + 8 * c);
    }
    std::memcpy(out + d, acc, sizeof(acc));
  }
  for (; d + 8 <= n; d += 8) {
    V8 acc = V8{0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; j < n_rows; ++j) {
      const float pj = p[j];
      acc += V8{pj, pj, pj, pj, pj, pj, pj, pj} * Load8(rows + j * ldw + d);
    }
    std::memcpy(out + d, &acc, sizeof(acc));
  }
  for (; d < n; ++d) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n_rows; ++j) acc += p[j] * rows[j * ldw + d];
    out[d] = acc;
  }
}

__attribute__((target("avx2"))) void AddScaledRowsAvx2(const float* p, const float* rows,
                                                       int64_t ldw, int64_t n_rows, int64_t n,
                                                       float* out) {
  AddScaledRowsImpl(p, rows, ldw, n_rows, n, out);
}

void AddScaledRowsGeneric(const float* p, const float* rows, int64_t ldw, int64_t n_rows, int64_t n,
                          float* out) {
  AddScaledRowsImpl(p, rows, ldw, n_rows, n, out);
}

using TileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t);
using DotFn = float (*)(const float*, const float*, int64_t);
using RowsFn = void (*)(const float*, const float*, int64_t, int64_t, int64_t, float*);

struct Kernels {
  TileFn tile;
  DotFn dot;
  RowsFn dot_rows;
  RowsFn add_scaled_rows;
  const char* name;
};

// Resolved once: the CPU feature check never runs inside a loop.
const Kernels& GetKernels() {
  static const Kernels kernels = [] {
    const char* isa = std::getenv("LOWBIT_ISA");
    const bool force_scalar = isa != nullptr && std::string(isa) == "scalar";
    if (!force_scalar && __builtin_cpu_supports("avx2")) {
      return Kernels{&TileAvx2, &DotAvx2, &DotRowsAvx2, &AddScaledRowsAvx2, "avx2"};
    }
    return Kernels{&TileGeneric, &DotGeneric, &DotRowsGeneric, &AddScaledRowsGeneric, "generic"};
  }();
  return kernels;
}

}  // namespace

const char* LinearKernelName() { return GetKernels().name; }

float Dot(const float* a, const float* b, int64_t n) { return GetKernels().dot(a, b, n); }

void DotRows(const float* x, const float* rows, int64_t ldw, int64_t n_rows, int64_t n,
             float* out) {
  GetKernels().dot_rows(x, rows, ldw, n_rows, n, out);
}

void AddScaledRows(const float* p, const float* rows, int64_t ldw, int64_t n_rows, int64_t n,
                   float* out) {
  GetKernels().add_scaled_rows(p, rows, ldw, n_rows, n, out);
}

std::vector<float> ReadMatrix(const WeightView& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r) ReadRow(w, r, &out[static_cast<size_t>(r * w.cols)]);
  return out;
}

void ReadRow(const WeightView& w, int64_t row, float* out) {
  LOWBIT_CHECK(row >= 0 && row < w.rows);
  if (w.is_f32()) {
    std::memcpy(out, w.data + 4 * row * w.cols, sizeof(float) * static_cast<size_t>(w.cols));
  } else {
    w.format->DequantizeRows(w.data, w.rows, w.cols, row, row + 1, out);
  }
}

namespace {

// What PrepareWeightForIsa stores in WeightView::kernel_plan.
struct KernelPlan {
  kernels::Isa isa;
  kernels::ActPath path;
  kernels::KernelEntry entry;
  std::vector<uint8_t> repacked;  // entry.repack's output; empty when the kernel reads w.data
};

// Rows per pool task: about 4 tasks per thread (dynamic hand-out evens out uneven progress), at
// least 16 rows so a task streams a few KiB at least, a multiple of the entry's granule. Which task
// computes a row never changes its bits.
int64_t RowsPerTask(int64_t rows, int threads, int64_t granule, int tasks_per_thread = 4) {
  const int64_t tasks = static_cast<int64_t>(std::max(1, tasks_per_thread)) * threads;
  const int64_t target = std::max<int64_t>(16, (rows + tasks - 1) / tasks);
  return (target + granule - 1) / granule * granule;
}

// The f32 path and the tiled dequantize + f32 fallback (formats without a fused kernel).
void LinearTiled(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool& pool) {
  const Kernels& kernels = GetKernels();
  const int64_t n_tiles = (w.rows + kTileRows - 1) / kTileRows;
  pool.ParallelFor(n_tiles, [&](int64_t tile, int /*thread*/) {
    const int64_t r0 = tile * kTileRows;
    const int64_t r1 = std::min(w.rows, r0 + kTileRows);
    const float* wt;
    if (w.is_f32()) {
      wt = reinterpret_cast<const float*>(w.data) + r0 * w.cols;
    } else {
      // Per-thread buffer for one dequantized tile: kTileRows * cols floats, reused across calls.
      thread_local std::vector<float> buffer;
      buffer.resize(static_cast<size_t>(kTileRows * w.cols));
      w.format->DequantizeRows(w.data, w.rows, w.cols, r0, r1, buffer.data());
      wt = buffer.data();
    }
    kernels.tile(x, n_tokens, w.cols, wt, r1 - r0, y + r0, w.rows);
  });
}

}  // namespace

void PrepareWeightForIsa(WeightView& w, kernels::Isa isa, kernels::ActPath path) {
  w.kernel_plan.reset();
  if (w.is_f32()) return;
  std::optional<kernels::KernelEntry> entry = kernels::FindKernel(*w.format, isa, path);
  if (!entry) return;
  auto plan = std::make_shared<KernelPlan>();
  plan->isa = isa;
  plan->path = path;
  plan->entry = *entry;
  if (entry->repack != nullptr) plan->repacked = entry->repack(*w.format, w.data, w.rows, w.cols);
  w.kernel_plan = std::move(plan);
}

void PrepareModelForIsa(LlamaModel& model, kernels::Isa isa, kernels::ActPath path) {
  PrepareWeightForIsa(model.token_embedding, isa, path);
  for (LayerWeights& l : model.layers) {
    for (WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      PrepareWeightForIsa(*w, isa, path);
    }
  }
  PrepareWeightForIsa(model.output, isa, path);
}

void Linear(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            kernels::Isa isa) {
  LOWBIT_CHECK(w.data != nullptr && w.rows > 0 && w.cols > 0 && n_tokens > 0);
  if (w.is_f32()) {
    LinearTiled(w, x, n_tokens, y, pool);
    return;
  }
  // The kernel: the one prepared at load time when it is for this level (with the activation path
  // chosen then), else looked up now (a kernel that wants a repacked layout then repacks for this
  // call only: tests and benchmarks).
  std::optional<kernels::KernelEntry> entry;
  const uint8_t* data = w.data;
  std::vector<uint8_t> repacked;
  const auto* plan = static_cast<const KernelPlan*>(w.kernel_plan.get());
  if (plan != nullptr && plan->isa == isa) {
    entry = plan->entry;
    if (entry->repack != nullptr) data = plan->repacked.data();
  } else {
    entry = kernels::FindKernel(*w.format, isa);
    if (entry && entry->repack != nullptr) {
      repacked = entry->repack(*w.format, w.data, w.rows, w.cols);
      data = repacked.data();
    }
  }
  if (!entry || (entry->max_tokens > 0 && n_tokens > entry->max_tokens)) {
    LinearTiled(w, x, n_tokens, y, pool);
    return;
  }
  kernels::MatmulArgs args;
  args.w = data;
  args.rows = w.rows;
  args.cols = w.cols;
  args.format = w.format.get();
  args.x = x;
  args.n_tokens = n_tokens;
  args.y = y;
  args.ldy = w.rows;
  if (entry->wants_q8) {
    // Quantized once per call, read by every row (calls come from one thread at a time per
    // session; thread_local keeps concurrent sessions apart).
    thread_local kernels::ActivationsQ8 x_q8;
    kernels::QuantizeActivationsQ8(x, n_tokens, w.cols, &x_q8);
    args.x_q8 = &x_q8;
  }
  const int64_t rows_per_task = RowsPerTask(
      w.rows, pool.size(), std::max<int64_t>(1, entry->row_granule), entry->tasks_per_thread);
  const int64_t n_tasks = (w.rows + rows_per_task - 1) / rows_per_task;
  const kernels::RowRangeFn run = entry->run;
  pool.ParallelFor(n_tasks, [&](int64_t task, int /*thread*/) {
    const int64_t r0 = task * rows_per_task;
    run(args, r0, std::min(w.rows, r0 + rows_per_task));
  });
}

void Linear(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  Linear(w, x, n_tokens, y, pool, kernels::ActiveIsa());
}

}  // namespace lowbit
