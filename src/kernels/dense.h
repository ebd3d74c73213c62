// Dense product Y = A B in float or double, for training code (AQLM's Hessians, Hessian products
// and the forward/backward passes of fine-tuning): A (rows, depth), B (depth, n) and Y (rows, n),
// all row-major, with row strides lda, ldb, ldy (0: packed, i.e. depth, n, n), so callers can
// multiply sub-blocks of larger matrices.
//
// Every output element is the chain acc = fma(a[r][k], b[k][c], acc) for k = 0 .. depth-1 from
// +0, at every ISA level (the scalar path calls std::fma), so results are bit-identical across
// levels and thread counts: the quantized bytes AQLM writes do not depend on the machine.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kernel.h"

namespace lowbit::kernels {

template <class T>
struct DenseArgs {
  const T* a = nullptr;  // (rows, depth)
  const T* b = nullptr;  // (depth, n)
  T* y = nullptr;        // (rows, n)
  int64_t depth = 0, n = 0;
  int64_t lda = 0, ldb = 0, ldy = 0;  // row strides; 0: packed

  int64_t stride_a() const { return lda > 0 ? lda : depth; }
  int64_t stride_b() const { return ldb > 0 ? ldb : n; }
  int64_t stride_y() const { return ldy > 0 ? ldy : n; }
};

// Rows [r0, r1) of Y = A B, T = float or double. Callers split rows across threads.
template <class T>
void MultiplyRows(const DenseArgs<T>& args, int64_t r0, int64_t r1);

// Rows per task when callers split a product of `rows` rows over `threads` threads. Each call
// packs its own panels of B (all of B, a depth block at a time), so small tasks copy B over and
// over: with 16-48 rows per task that copying cost more than the arithmetic on the shapes of AQLM
// training. About four tasks per thread keep dynamic scheduling balanced; a multiple of the
// 6-row tile. The split never changes a bit (each element is one chain over the whole depth).
inline int64_t RowsPerTask(int64_t rows, int threads) {
  const int64_t tasks = 4 * static_cast<int64_t>(threads < 1 ? 1 : threads);
  const int64_t per_task = (rows + tasks - 1) / tasks;
  return per_task <= 6 ? 6 : (per_task + 5) / 6 * 6;
}
// The same at a given level (tests compare levels).
template <class T>
void MultiplyRows(Isa isa, const DenseArgs<T>& args, int64_t r0, int64_t r1);

namespace detail {
// Columns [c0, c0 + width) of B copied into *panel with row stride ld (depth rows), for the
// vector levels: their tiles then read B sequentially. Returns the panel's data.
template <class T>
const T* PackColumns(const DenseArgs<T>& g, int64_t c0, int64_t width, int64_t ld, std::vector<T>* panel) {
  const int64_t ldb = g.stride_b();
  for (int64_t k = 0; k < g.depth; ++k) {
    std::memcpy(panel->data() + k * ld, g.b + k * ldb + c0, static_cast<size_t>(width) * sizeof(T));
  }
  return panel->data();
}

template <class T>
void MultiplyRowsAvx2(const DenseArgs<T>& args, int64_t r0, int64_t r1);
template <class T>
void MultiplyRowsAvx512(const DenseArgs<T>& args, int64_t r0, int64_t r1);
}  // namespace detail

}  // namespace lowbit::kernels
