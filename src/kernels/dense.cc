// Scalar path and dispatch of the dense product (dense.h).
#include "kernels/dense.h"

#include <cmath>

namespace lowbit::kernels {
namespace {

template <class T>
void MultiplyRowsScalar(const DenseArgs<T>& g, int64_t r0, int64_t r1) {
  const int64_t n = g.n, lda = g.stride_a(), ldb = g.stride_b(), ldy = g.stride_y();
  for (int64_t r = r0; r < r1; ++r) {
    T* yr = g.y + r * ldy;
    for (int64_t c = 0; c < n; ++c) yr[c] = T(0);
    for (int64_t k = 0; k < g.depth; ++k) {
      const T a = g.a[r * lda + k];
      const T* hk = g.b + k * ldb;
      for (int64_t c = 0; c < n; ++c) yr[c] = std::fma(a, hk[c], yr[c]);
    }
  }
}

}  // namespace

template <class T>
void MultiplyRows(Isa isa, const DenseArgs<T>& args, int64_t r0, int64_t r1) {
  switch (isa) {
    case Isa::kAvx512: return detail::MultiplyRowsAvx512(args, r0, r1);
    case Isa::kAvx2: return detail::MultiplyRowsAvx2(args, r0, r1);
    case Isa::kScalar: break;
  }
  MultiplyRowsScalar(args, r0, r1);
}

template <class T>
void MultiplyRows(const DenseArgs<T>& args, int64_t r0, int64_t r1) {
  MultiplyRows(ActiveIsa(), args, r0, r1);
}

template void MultiplyRows<float>(Isa, const DenseArgs<float>&, int64_t, int64_t);
template void MultiplyRows<double>(Isa, const DenseArgs<double>&, int64_t, int64_t);
template void MultiplyRows<float>(const DenseArgs<float>&, int64_t, int64_t);
template void MultiplyRows<double>(const DenseArgs<double>&, int64_t, int64_t);

}  // namespace lowbit::kernels
