// Powers of two and binary exponents of doubles from their bits: the same values as std::ldexp
// and std::frexp, without the libm calls, which took most of the time of quantizing a model to
// the MX and minifloat formats (perf on SmolLM2-135M to mxfp4: scalbn and frexp ~35%).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace lowbit {

// 2^n exactly (a normal double for -1022 <= n <= 1023; std::ldexp outside that range).
inline double Pow2(int n) {
  if (n >= -1022 && n <= 1023) return std::bit_cast<double>(static_cast<uint64_t>(n + 1023) << 52);
  return std::ldexp(1.0, n);
}

// std::ldexp(x, n): a product with a normal power of two is exact or rounded once to nearest,
// which is ldexp's result too (overflow gives +-Inf in both).
inline double ScaleByPow2(double x, int n) {
  if (n >= -1022 && n <= 1023) return x * Pow2(n);
  return std::ldexp(x, n);
}

// floor(log2(a)) for a finite a > 0: std::frexp's exponent minus one.
inline int FloorLog2(double a) {
  const int biased = static_cast<int>((std::bit_cast<uint64_t>(a) >> 52) & 0x7FF);
  if (biased != 0) return biased - 1023;
  int exp2 = 0;
  std::frexp(a, &exp2);  // subnormal
  return exp2 - 1;
}

}  // namespace lowbit
