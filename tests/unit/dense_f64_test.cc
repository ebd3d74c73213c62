// Dense f64 product (src/kernels/dense_f64.*): every level bit-identical to the scalar fma chain,
// and the scalar chain within the fma-chain error bound of the exact product, on shapes that are
// not multiples of the register tiles (4 rows; 32 or 12 columns) and on partial row ranges.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/dense_f64.h"

namespace lowbit::kernels {
namespace {

TEST(DenseF64, LevelsAreBitIdenticalAndWithinTheFmaChainBound) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (const int64_t n : {1, 3, 8, 12, 13, 31, 32, 33, 47, 100}) {
    for (const int64_t rows : {1, 3, 4, 5, 9}) {
     for (const int64_t depth : {n, n + 5}) {
      std::vector<double> x(static_cast<size_t>(rows * depth)), h(static_cast<size_t>(depth * n));
      for (double& v : x) v = normal(rng);
      for (double& v : h) v = normal(rng);
      if (n > 2) x[1] = 0.0;  // zeros must not be skipped in a way that changes signs
      std::vector<double> ref(static_cast<size_t>(rows * n), -1.0);
      DenseF64Args args{x.data(), h.data(), ref.data(), depth, n};
      MultiplyRowsF64(Isa::kScalar, args, 0, rows);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < n; ++c) {
          long double exact = 0.0L, abs = 0.0L;
          for (int64_t k = 0; k < depth; ++k) {
            const long double p = static_cast<long double>(x[size_t(r * depth + k)]) * h[size_t(k * n + c)];
            exact += p;
            abs += std::fabs(p);
          }
          // depth fmas in a chain: |err| <= gamma_depth * sum |x h|, gamma_k = k u / (1 - k u),
          // u = 2^-53 (Higham, section 3.1).
          const double u = std::ldexp(1.0, -53), nn = static_cast<double>(depth);
          const double bound = nn * u / (1 - nn * u) * static_cast<double>(abs);
          EXPECT_LE(std::fabs(static_cast<double>(exact) - ref[size_t(r * n + c)]), bound)
              << "n=" << n << " rows=" << rows << " (" << r << "," << c << ")";
        }
      }
      for (int level = 0; level <= static_cast<int>(MaxSupportedIsa()); ++level) {
        const Isa isa = static_cast<Isa>(level);
        std::vector<double> y(ref.size(), -1.0);
        // Two calls over a split row range: the split must not matter.
        const int64_t mid = rows / 2;
        DenseF64Args level_args{x.data(), h.data(), y.data(), depth, n};
        MultiplyRowsF64(isa, level_args, 0, mid);
        MultiplyRowsF64(isa, level_args, mid, rows);
        EXPECT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * sizeof(double)))
            << IsaName(isa) << " n=" << n << " rows=" << rows << " depth=" << depth;
      }
     }
    }
  }
}

}  // namespace
}  // namespace lowbit::kernels
