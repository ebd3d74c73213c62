// Scalar path and dispatch of the dense f64 product (dense_f64.h).
#include "kernels/dense_f64.h"

#include <cmath>

namespace lowbit::kernels {
namespace {

void MultiplyRowsF64Scalar(const DenseF64Args& g, int64_t r0, int64_t r1) {
  const int64_t n = g.n;
  for (int64_t r = r0; r < r1; ++r) {
    double* yr = g.y + r * n;
    for (int64_t c = 0; c < n; ++c) yr[c] = 0.0;
    for (int64_t k = 0; k < g.depth; ++k) {
      const double a = g.a[r * g.depth + k];
      const double* hk = g.b + k * n;
      for (int64_t c = 0; c < n; ++c) yr[c] = std::fma(a, hk[c], yr[c]);
    }
  }
}

}  // namespace

void MultiplyRowsF64(Isa isa, const DenseF64Args& args, int64_t r0, int64_t r1) {
  switch (isa) {
    case Isa::kAvx512: return detail::MultiplyRowsF64Avx512(args, r0, r1);
    case Isa::kAvx2: return detail::MultiplyRowsF64Avx2(args, r0, r1);
    case Isa::kScalar: break;
  }
  MultiplyRowsF64Scalar(args, r0, r1);
}

void MultiplyRowsF64(const DenseF64Args& args, int64_t r0, int64_t r1) {
  MultiplyRowsF64(ActiveIsa(), args, r0, r1);
}

}  // namespace lowbit::kernels
