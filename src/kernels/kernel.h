// Fused matrix kernels: y = x . W^T computed straight from W's packed bytes.
//
// Contract shared by every kernel family (src/kernels/*):
//   * A kernel is registered per (format, ISA). FindKernel(format, isa) returns the best entry at
//     or below `isa`, or nothing: the caller then falls back to the tiled dequantize + f32 path
//     of src/runtime/linear.cc (never a whole-matrix copy).
//   * RowRangeFn computes the outputs of rows [r0, r1) for all n_tokens tokens. Each output is
//     produced by exactly one call in a fixed accumulation order, so splitting rows across threads
//     never changes a bit. Kernels allocate nothing in the hot loop.
//   * Weights are read in the kernel's layout: the format's own packed bytes, or the bytes that
//     entry.repack produced once at load time from them (same information, SIMD-friendly order).
//   * Activations arrive as f32 rows; entries with wants_q8 also receive them quantized once per
//     call into Q8 blocks of 32 (see ActivationsQ8), for integer dot products.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "lowbit/format.h"

namespace lowbit::kernels {

// Instruction-set levels, ordered: a machine that runs a level runs every lower one.
enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const char* IsaName(Isa isa);  // "scalar", "avx2", "avx512"
// Highest level this CPU supports (CPUID: avx2+fma; avx512f+bw+vl+dq+vnni; an AVX-512 CPU
// without VNNI runs the avx2 level, so every kAvx512 kernel may use vpdpbusd).
Isa MaxSupportedIsa();
// AVX-512 VBMI (vpermb), which some AVX-512 kernels need beyond the level's own features.
bool CpuHasAvx512Vbmi();
// MaxSupportedIsa() lowered by LOWBIT_ISA=scalar|avx2|avx512 when set; resolved once. A level
// above MaxSupportedIsa() is ignored (never raises it); an unknown value is ignored too.
Isa ActiveIsa();
// "scalar" | "avx2" | "avx512" (as LOWBIT_ISA spells them) -> the level; nullopt otherwise.
std::optional<Isa> ParseIsa(const char* name);
// min(max_supported, ParseIsa(env)) when env names a level, else max_supported (ActiveIsa's rule).
Isa ResolveIsa(Isa max_supported, const char* env);

// Activations quantized per block of 32 along the reduction dimension (llama.cpp-style Q8):
// value[k] ~= d * q[k]; sum = sum of q over the block (for formats with an offset term).
struct Q8Block32 {
  float d;
  int32_t sum;
  int8_t q[32];
};

struct ActivationsQ8 {
  // (n_tokens, ceil(cols / 32)) blocks; the tail block is zero-padded.
  std::vector<Q8Block32> blocks;
  int64_t blocks_per_row = 0;
};

// Quantizes x: (n_tokens, cols) into out (resized): d = max|x| / 127 per block (f32 division),
// q = round(x * (127 / max|x|)) (one f32 product, ties away from zero), d = 0 and q = 0 for an
// all-zero block. Used once per call by the runtime for entries that want_q8. Non-finite inputs
// are the caller's problem (a NaN/Inf activation makes the whole block's d NaN/Inf).
void QuantizeActivationsQ8(const float* x, int64_t n_tokens, int64_t cols, ActivationsQ8* out);
// The same blocks computed with one level's code (min(isa, MaxSupportedIsa())): every level
// writes identical bits, which the unit tests check.
void QuantizeActivationsQ8At(Isa isa, const float* x, int64_t n_tokens, int64_t cols,
                             ActivationsQ8* out);

struct MatmulArgs {
  const uint8_t* w = nullptr;  // weights in the kernel's layout (packed or repacked)
  int64_t rows = 0;            // output features
  int64_t cols = 0;            // reduction length
  const Format* format = nullptr;
  const float* x = nullptr;                // (n_tokens, cols) f32
  const ActivationsQ8* x_q8 = nullptr;     // set when the entry wants_q8
  int64_t n_tokens = 0;
  float* y = nullptr;  // y[t * ldy + r]
  int64_t ldy = 0;
};

using RowRangeFn = void (*)(const MatmulArgs& args, int64_t r0, int64_t r1);
// Rewrites the format's packed (rows, cols) matrix into the kernel's layout.
using RepackFn = std::vector<uint8_t> (*)(const Format& format, const uint8_t* packed,
                                          int64_t rows, int64_t cols);

struct KernelEntry {
  const char* name = "";  // e.g. "q4_0.avx512"
  Isa isa = Isa::kScalar;
  RowRangeFn run = nullptr;
  RepackFn repack = nullptr;  // null: run() reads the format's own packed bytes
  bool wants_q8 = false;      // run() reads args.x_q8
  int64_t row_granule = 1;    // threads split rows in multiples of this
  // Q8 kernels of formats with a per-group offset (x = s * (c - z) + m) sum s * (c - z) * q and
  // m * q apart, so their rounding error scales with |s * (c - z)| + |m| rather than |x|; the
  // consistency test widens its bound for them (docs/kernels.md, "Tolerance").
  bool splits_offset = false;
  // > 0: the kernel multiplies by weights within this relative error of the format's (nf4's Q8
  // kernel: its table rounded to a 2^-14 grid, docs/kernels.md); the consistency test widens its
  // bound by it.
  double weight_rel_error = 0.0;
  // > 0: calls with more tokens take the tiled dequantize + f32 path instead (kernels whose per-token
  // work, such as AQLM's lookup tables, costs more than dequantizing the rows once for a long prompt).
  int64_t max_tokens = 0;
  // Row tasks per thread (more balance the load; fewer let a kernel reuse per-call work such as
  // AQLM's lookup tables across more rows).
  int tasks_per_thread = 4;
};

// A kernel family answers for the formats it handles (by family()/spec() of the format).
using KernelLookupFn = std::optional<KernelEntry> (*)(const Format& format, Isa isa);

// The kernel table: every family's lookup, asked in registration order. Honors LOWBIT_ACT (see
// ActivePath) for the formats that offer both activation paths.
std::optional<KernelEntry> FindKernel(const Format& format, Isa isa);

// Which activation side FindKernel picks where a format has kernels for both (kernels/gguf_*,
// kernels/integer_*): kDefault = the format's documented choice (docs/kernels.md); kF32 / kQ8
// force one where it exists. LOWBIT_ACT=f32|q8 sets the process-wide choice (resolved once).
enum class ActPath : int { kDefault = 0, kF32 = 1, kQ8 = 2 };
ActPath ActivePath();
std::optional<KernelEntry> FindKernel(const Format& format, Isa isa, ActPath path);

}  // namespace lowbit::kernels
