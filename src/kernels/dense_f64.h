// Dense double-precision product Y = A B for training code (AQLM's Hessians and Hessian products):
// A (rows, depth), B (depth, n) and Y (rows, n), all row-major.
//
// Every output element is the chain acc = fma(a[r][k], b[k][c], acc) for k = 0 .. depth-1 from
// +0, at every ISA level (the scalar path calls std::fma), so results are bit-identical across
// levels and thread counts: the quantized bytes AQLM writes do not depend on the machine.
#pragma once

#include <cstdint>

#include "kernels/kernel.h"

namespace lowbit::kernels {

struct DenseF64Args {
  const double* a = nullptr;  // (rows, depth)
  const double* b = nullptr;  // (depth, n)
  double* y = nullptr;        // (rows, n)
  int64_t depth = 0, n = 0;
};

// Rows [r0, r1) of Y = A B. Callers split rows across threads.
void MultiplyRowsF64(const DenseF64Args& args, int64_t r0, int64_t r1);
// The same at a given level (tests compare levels).
void MultiplyRowsF64(Isa isa, const DenseF64Args& args, int64_t r0, int64_t r1);

namespace detail {
void MultiplyRowsF64Avx2(const DenseF64Args& args, int64_t r0, int64_t r1);
void MultiplyRowsF64Avx512(const DenseF64Args& args, int64_t r0, int64_t r1);
}  // namespace detail

}  // namespace lowbit::kernels
