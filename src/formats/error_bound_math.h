// Small helpers shared by the formats' ErrorBound() implementations: bounds are computed in
// double and must never shrink when narrowed to the float the API returns.
#pragma once

#include <cmath>
#include <limits>

namespace lowbit {

// Smallest float >= b; +Inf when b is NaN or beyond the float range.
inline float RoundUpToFloat(double b) {
  if (!(b <= static_cast<double>(std::numeric_limits<float>::max()))) {
    return std::numeric_limits<float>::infinity();
  }
  float f = static_cast<float>(b);
  if (static_cast<double>(f) < b) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

// Spacing of float32 numbers at magnitude |v| (the larger one at a power of two).
inline double FloatSpacing(double v) {
  v = std::fabs(v);
  if (v < 0x1p-126) return 0x1p-149;
  int e = 0;
  std::frexp(v, &e);
  return std::ldexp(1.0, e - 1 - 23);
}

}  // namespace lowbit
