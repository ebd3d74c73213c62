// The matrix loops of the scalar level, written once and templated on a Traits class of
// kernels/block_traits.h. Included by the scalar kernel files only (plain -O2 code, no ISA flags).
//
// Order of operations (the scalar reference of the fused kernels; the SIMD levels keep the same
// math with wider lanes, see docs/kernels.md):
//   f32 activations: each unit is decoded to its 32 float weights exactly as the format's reference
//     decoder does; y = sum over units, in order, of sum over the unit's 32 elements, in order, of
//     w[k] * x[k] (one f32 product and one f32 sum each: no contraction in ISO C++ mode).
//   Q8 activations: per unit and 16-element half h: isum_h = sum (code - kZero) * xq (int32, exact)
//     and xsum_h = sum xq; y += (scale_h * d_x) * isum_h [+ (min_h * d_x) * xsum_h], in unit order.
// Each output depends only on its own row and token, so any split of rows over threads and any
// number of tokens per call give the same bits.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/block_traits.h"

namespace lowbit::kernels::scalar {
namespace {  // internal linkage: every including file gets its own copy

template <class T>
void DecodeUnitF32(const UnitRef& ref, float* w) {
  uint8_t code[kUnit];
  UnpackCodes<T::kKind, T::kXor>(ref, code);
  for (int k = 0; k < kUnit; ++k) {
    const int h = k / 16;
    if constexpr (T::kHasLut) {
      w[k] = T::kLut[code[k]] * ref.scale[h];
    } else {
      const float scaled = ref.scale[h] * static_cast<float>(code[k] - T::kZero);
      w[k] = T::kHasMin ? scaled + ref.min[h] : scaled;
    }
  }
}

template <class T>
void RunF32(const MatmulArgs& a, int64_t r0, int64_t r1) {
  T traits(*a.format, a.cols);
  ReadTensorHeader(traits, a.w);
  const int64_t n_units = (a.cols + kUnit - 1) / kUnit;
  uint8_t scratch[64];
  float w[kUnit];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = traits.Row(a.w, r);
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const float* x = a.x + t * a.cols;
      float acc = 0.0f;
      for (int64_t u = 0; u < n_units; ++u) {
        UnitRef ref;
        traits.Unit(row, u, &ref, scratch);
        DecodeUnitF32<T>(ref, w);
        const int n = static_cast<int>(std::min<int64_t>(kUnit, a.cols - u * kUnit));
        for (int k = 0; k < n; ++k) {
          const float p = w[k] * x[u * kUnit + k];
          acc += p;
        }
      }
      a.y[t * a.ldy + r] = acc;
    }
  }
}

template <class T>
void RunQ8(const MatmulArgs& a, int64_t r0, int64_t r1) {
  T traits(*a.format, a.cols);
  ReadTensorHeader(traits, a.w);
  const int64_t n_units = (a.cols + kUnit - 1) / kUnit;
  uint8_t scratch[64];
  uint8_t code[kUnit];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = traits.Row(a.w, r);
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const Q8Block32* xb = a.x_q8->blocks.data() + t * a.x_q8->blocks_per_row;
      float acc = 0.0f;
      for (int64_t u = 0; u < n_units; ++u) {
        UnitRef ref;
        traits.Unit(row, u, &ref, scratch);
        UnpackCodes<T::kKind, T::kXor>(ref, code);
        for (int h = 0; h < 2; ++h) {
          int32_t isum = 0, xsum = 0;
          for (int k = 16 * h; k < 16 * h + 16; ++k) {
            isum += (code[k] - T::kZero) * xb[u].q[k];
            xsum += xb[u].q[k];
          }
          const float s = ref.scale[h] * xb[u].d;
          const float p = s * static_cast<float>(isum);
          acc += p;
          if constexpr (T::kHasMin) {
            const float m = ref.min[h] * xb[u].d;
            const float pm = m * static_cast<float>(xsum);
            acc += pm;
          }
        }
      }
      a.y[t * a.ldy + r] = acc;
    }
  }
}

template <class T, bool kQ8>
void Run(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if constexpr (kQ8) {
    RunQ8<T>(a, r0, r1);
  } else {
    RunF32<T>(a, r0, r1);
  }
}

}  // namespace
}  // namespace lowbit::kernels::scalar
