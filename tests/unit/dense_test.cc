// Dense product in float and double (src/kernels/dense.*): every level bit-identical to the scalar fma chain,
// and the scalar chain within the fma-chain error bound of the exact product, on shapes that are
// not multiples of the register tiles (6 rows; 4 or 2 vectors of columns) and on partial row
// ranges; 13 rows or more split in two, or whole, run full tiles next to edges, and 12+ rows in
// one call read B through a packed panel. Depths past 1,024 cross the AVX-512 path's depth blocks
// (the accumulators stored to Y and resumed), which must not change a bit either.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/dense.h"

namespace lowbit::kernels {
namespace {

template <class T>
void CheckLevelsAndBound() {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (const int64_t n : {1, 3, 8, 12, 13, 24, 25, 31, 32, 33, 47, 64, 65, 100, 130}) {
    for (const int64_t rows : {1, 3, 4, 5, 6, 9, 13, 14, 25}) {
     for (const int64_t depth : {n, n + 5, n + 1029}) {
      std::vector<T> x(static_cast<size_t>(rows * depth)), h(static_cast<size_t>(depth * n));
      for (T& v : x) v = static_cast<T>(normal(rng));
      for (T& v : h) v = static_cast<T>(normal(rng));
      if (n > 2) x[1] = 0.0;  // zeros must not be skipped in a way that changes signs
      std::vector<T> ref(static_cast<size_t>(rows * n), T(-1));
      DenseArgs<T> args{x.data(), h.data(), ref.data(), depth, n};
      MultiplyRows<T>(Isa::kScalar, args, 0, rows);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < n; ++c) {
          long double exact = 0.0L, abs = 0.0L;
          for (int64_t k = 0; k < depth; ++k) {
            const long double p = static_cast<long double>(x[size_t(r * depth + k)]) * h[size_t(k * n + c)];
            exact += p;
            abs += std::fabs(p);
          }
          // depth fmas in a chain: |err| <= gamma_depth * sum |x h|, gamma_k = k u / (1 - k u),
          // u = 2^-53 or 2^-24 (Higham, section 3.1).
          const double u = std::ldexp(1.0, -std::numeric_limits<T>::digits), nn = static_cast<double>(depth);
          const double bound = nn * u / (1 - nn * u) * static_cast<double>(abs);
          EXPECT_LE(std::fabs(static_cast<double>(exact) - ref[size_t(r * n + c)]), bound)
              << "n=" << n << " rows=" << rows << " (" << r << "," << c << ")";
        }
      }
      for (int level = 0; level <= static_cast<int>(MaxSupportedIsa()); ++level) {
        const Isa isa = static_cast<Isa>(level);
        std::vector<T> y(ref.size(), T(-1));
        // Two calls over a split row range: the split must not matter.
        const int64_t mid = rows / 2;
        DenseArgs<T> level_args{x.data(), h.data(), y.data(), depth, n};
        MultiplyRows<T>(isa, level_args, 0, mid);
        MultiplyRows<T>(isa, level_args, mid, rows);
        EXPECT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * sizeof(T)))
            << IsaName(isa) << " n=" << n << " rows=" << rows << " depth=" << depth;
        // The same product on sub-blocks of wider matrices (row strides): same bits, and the
        // padding of y untouched.
        const int64_t lda = depth + 3, ldb = n + 5, ldy = n + 2;
        std::vector<T> xa(static_cast<size_t>(rows * lda), T(7)), hb(static_cast<size_t>(depth * ldb), T(7));
        std::vector<T> ys(static_cast<size_t>(rows * ldy), T(-3));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = 0; k < depth; ++k) xa[size_t(r * lda + k)] = x[size_t(r * depth + k)];
        for (int64_t k = 0; k < depth; ++k)
          for (int64_t c = 0; c < n; ++c) hb[size_t(k * ldb + c)] = h[size_t(k * n + c)];
        DenseArgs<T> strided{xa.data(), hb.data(), ys.data(), depth, n, lda, ldb, ldy};
        MultiplyRows<T>(isa, strided, 0, rows);
        for (int64_t r = 0; r < rows; ++r) {
          EXPECT_EQ(0, std::memcmp(&ys[size_t(r * ldy)], &ref[size_t(r * n)], size_t(n) * sizeof(T)))
              << IsaName(isa) << " strided row " << r;
          for (int64_t c = n; c < ldy; ++c) EXPECT_EQ(ys[size_t(r * ldy + c)], T(-3));
        }
      }
     }
    }
  }
}

TEST(Dense, DoubleLevelsAreBitIdenticalAndWithinTheFmaChainBound) { CheckLevelsAndBound<double>(); }
TEST(Dense, FloatLevelsAreBitIdenticalAndWithinTheFmaChainBound) { CheckLevelsAndBound<float>(); }

}  // namespace
}  // namespace lowbit::kernels
