// Matrix products of the runtime, written once for every storage format.
//
// Linear computes y = x . W^T for W in any Format: rows of W are dequantized a tile at a time
// (kTileRows rows) into a per-thread f32 buffer via Format::DequantizeRows, f32 matrices are read
// in place, and each output is an f32 dot product in ONE fixed order:
//   lane l (0..7) accumulates x[k] * w[k] for k = l, l + 8, l + 16, ... (k < cols), in increasing
//   k; then y = ((lane0 + lane4) + (lane1 + lane5)) + ((lane2 + lane6) + (lane3 + lane7)).
// Every product and sum is an IEEE f32 operation (no FMA contraction, no -ffast-math), so the
// result does not depend on the thread count, the tile a row falls into, how many tokens are
// multiplied at once, or the instruction set (the AVX2 path runs the same operations 8 lanes wide).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernel.h"
#include "lowbit/model.h"

namespace lowbit {

class ThreadPool;

constexpr int64_t kTileRows = 32;

// y: (n_tokens, w.rows) = x: (n_tokens, w.cols) . W^T, rows split across the pool's threads.
void Linear(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);

// The same product with the kernels of one instruction-set level (benchmarks and tests; the
// runtime uses kernels::ActiveIsa()).
void Linear(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            kernels::Isa isa);

// Chooses w's kernel at `isa` once (stored in w.kernel_plan, shared by copies of the view) and
// gives w the layout that kernel reads (a load-time repack, owned by the plan) when it wants one.
// f32 matrices and formats without a kernel get no plan. Linear works without a plan too (it
// then looks the kernel up per call). `path` picks the activation side where a format has both
// (kernels::ActPath; the loaders use ActivePath(), i.e. LOWBIT_ACT or the default: Q8 activations
// where an integer-dot kernel exists). ActPath::kF32 keeps every product in f32 (the exact path:
// the result equals a float64 reference on the decoded weights to f32 rounding), which Linear
// then uses for this matrix at this level whatever LOWBIT_ACT says.
void PrepareWeightForIsa(WeightView& w, kernels::Isa isa,
                         kernels::ActPath path = kernels::ActivePath());
// PrepareWeightForIsa for every matrix of the model (the loaders call it with ActiveIsa()).
void PrepareModelForIsa(LlamaModel& model, kernels::Isa isa,
                        kernels::ActPath path = kernels::ActivePath());

// out: (cols) = row `row` of W as f32 (embedding lookup).
void ReadRow(const WeightView& w, int64_t row, float* out);
// The whole (rows, cols) matrix as f32, row-major, row by row as ReadRow decodes it.
std::vector<float> ReadMatrix(const WeightView& w);

// The dot product with exactly the accumulation order documented above.
float Dot(const float* a, const float* b, int64_t n);

// out[j] = Dot(x, rows + j * ldw, n) for j < n_rows (attention scores: several rows at once, the
// same bits as one Dot per row).
void DotRows(const float* x, const float* rows, int64_t ldw, int64_t n_rows, int64_t n, float* out);

// out[d] = p[0] * rows[d] + p[1] * rows[ldw + d] + ... for d < n, summed from 0 in increasing j
// with f32 multiplies and adds (attention's weighted sum of values; any level, identical bits).
void AddScaledRows(const float* p, const float* rows, int64_t ldw, int64_t n_rows, int64_t n,
                   float* out);

// Name of the kernel path chosen at first use: "avx2" or "generic" (LOWBIT_ISA=scalar forces
// "generic"; both give identical bits).
const char* LinearKernelName();

}  // namespace lowbit
