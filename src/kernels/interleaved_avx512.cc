// AVX-512 (+VNNI) kernels of the row-interleaved layout (kernels/interleaved.h): one zmm lane per
// row of a 16-row group, vpdpbusd of 16 rows x 4 codes against a broadcast dword of 4 Q8
// activations. Order of operations: interleaved.h.
#include "kernels/simd_avx512.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/interleaved.h"

namespace lowbit::kernels {
namespace {

#define IL_INLINE LOWBIT_SIMD_INLINE

using avx512::Bcast32;
using avx512::DecodeCodes;

template <int kSegs, IlScale kScale, bool kSigned>
IL_INLINE void LoadScales(const uint8_t* p, const IlDesc& d, __m512* s) {
  for (int seg = 0; seg < kSegs; ++seg) {
    if constexpr (kScale == IlScale::kF16) {
      s[seg] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * seg)));
    } else {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * seg));
      const __m512i x = kSigned ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
      const __m512 e = _mm512_cvtepi32_ps(_mm512_sub_epi32(x, _mm512_set1_epi32(d.bias)));
      // 2^e, exact for e in [-149, 127] (checked when the layout was chosen).
      s[seg] = _mm512_scalef_ps(_mm512_set1_ps(1.0f), e);
      if (d.nan_byte >= 0) {
        const __mmask16 nan = _mm512_cmpeq_epi32_mask(_mm512_cvtepu8_epi32(b),
                                                      _mm512_set1_epi32(d.nan_byte));
        s[seg] = _mm512_mask_mov_ps(s[seg], nan,
                                    _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
      }
    }
  }
}

struct IlCtx {
  const MatmulArgs* a;
  const IlDesc* d;
  const uint8_t* base;  // group 0
  int64_t units;
  int64_t unit_bytes;
  const int32_t* half_sums;  // kSegs == 2: (token - t_first, unit, half)
  int64_t t_first;
};

// The outputs of group g for tokens [t0, t0 + T).
template <int kBits, bool kLut, int kSegs, IlScale kScale, bool kSigned, bool kMin, int T>
IL_INLINE void Group(const IlCtx& c, int64_t g, int64_t t0, __m512* out) {
  const MatmulArgs& a = *c.a;
  const IlDesc& d = *c.d;
  const __m512i lut = kLut ? _mm512_broadcast_i32x4(_mm_loadu_si128(
                                 reinterpret_cast<const __m128i*>(d.lut16)))
                           : _mm512_setzero_si512();
  const int64_t bpr = a.x_q8->blocks_per_row;
  const Q8Block32* xb[T];
  for (int t = 0; t < T; ++t) xb[t] = a.x_q8->blocks.data() + (t0 + t) * bpr;
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const uint8_t* p = c.base + g * c.units * c.unit_bytes;
  constexpr int64_t kCodeBytes = 64 * kBits;
  constexpr int64_t kScaleBytes = kSegs * 16 * (kScale == IlScale::kF16 ? 2 : 1);
  for (int64_t u = 0; u < c.units; ++u, p += c.unit_bytes) {
    _mm_prefetch(reinterpret_cast<const char*>(p + 8 * c.unit_bytes), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p + 8 * c.unit_bytes + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p + 8 * c.unit_bytes + 128), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p + 8 * c.unit_bytes + 192), _MM_HINT_T0);
    if constexpr (kBits >= 6) {
      _mm_prefetch(reinterpret_cast<const char*>(p + 8 * c.unit_bytes + 256), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + 8 * c.unit_bytes + 320), _MM_HINT_T0);
    }
    if constexpr (kBits == 8) {
      _mm_prefetch(reinterpret_cast<const char*>(p + 8 * c.unit_bytes + 384), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + 8 * c.unit_bytes + 448), _MM_HINT_T0);
    }
    __m512i cv[8];
    DecodeCodes<kBits, kLut>(p, lut, cv);
    __m512 s[kSegs];
    LoadScales<kSegs, kScale, kSigned>(p + kCodeBytes, d, s);
    [[maybe_unused]] __m512 mn;
    if constexpr (kMin) {
      mn = _mm512_cvtph_ps(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kCodeBytes + kScaleBytes)));
    }
    for (int t = 0; t < T; ++t) {
      const Q8Block32& b = xb[t][u];
      const __m512 dx = _mm512_set1_ps(b.d);
      if constexpr (kSegs == 1) {
        // Two chains of 4 vpdpbusd, then one add (all exact int32).
        __m512i i0 = _mm512_set1_epi32(-d.zero * b.sum), i1 = _mm512_setzero_si512();
        for (int v = 0; v < 8; v += 2) {
          i0 = _mm512_dpbusd_epi32(i0, cv[v], Bcast32(b.q + 4 * v));
          i1 = _mm512_dpbusd_epi32(i1, cv[v + 1], Bcast32(b.q + 4 * v + 4));
        }
        const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1)), dx);
        acc[t] = _mm512_fmadd_ps(f, s[0], acc[t]);
      } else {
        const int32_t* hs = c.half_sums + ((t0 + t - c.t_first) * c.units + u) * 2;
        __m512i i0 = _mm512_set1_epi32(-d.zero * hs[0]);
        __m512i i1 = _mm512_set1_epi32(-d.zero * hs[1]);
        for (int v = 0; v < 4; ++v) {
          i0 = _mm512_dpbusd_epi32(i0, cv[v], Bcast32(b.q + 4 * v));
          i1 = _mm512_dpbusd_epi32(i1, cv[v + 4], Bcast32(b.q + 16 + 4 * v));
        }
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(i0), dx), s[0], acc[t]);
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(i1), dx), s[1], acc[t]);
      }
      if constexpr (kMin) {
        acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(static_cast<float>(b.sum) * b.d), mn, acc[t]);
      }
    }
  }
  for (int t = 0; t < T; ++t) out[t] = acc[t];
}

template <int kBits, bool kLut, int kSegs, IlScale kScale, bool kSigned, bool kMin>
void Run(const MatmulArgs& a, int64_t r0, int64_t r1) {
  IlHeader h;
  std::memcpy(&h, a.w, sizeof h);
  IlCtx c{&a, &h.desc, a.w + kIlHeaderBytes, h.units, h.desc.UnitBytes(), nullptr, 0};
  thread_local std::vector<int32_t> half_sums;
  if constexpr (kSegs == 2) {
    IlHalfSums(*a.x_q8, 0, a.n_tokens, &half_sums);
    c.half_sums = half_sums.data();
  }
  alignas(64) float lanes[16];
  for (int64_t g = r0 / kIlRows; g * kIlRows < r1; ++g) {
    const int64_t lo = std::max(r0, g * kIlRows), hi = std::min(r1, g * kIlRows + kIlRows);
    auto store = [&](__m512 v, int64_t t) {
      _mm512_store_ps(lanes, v);
      for (int64_t r = lo; r < hi; ++r) a.y[t * a.ldy + r] = lanes[r - g * kIlRows];
    };
    int64_t t = 0;
    for (; t + 4 <= a.n_tokens; t += 4) {
      __m512 out[4];
      Group<kBits, kLut, kSegs, kScale, kSigned, kMin, 4>(c, g, t, out);
      for (int i = 0; i < 4; ++i) store(out[i], t + i);
    }
    for (; t + 2 <= a.n_tokens; t += 2) {
      __m512 out[2];
      Group<kBits, kLut, kSegs, kScale, kSigned, kMin, 2>(c, g, t, out);
      for (int i = 0; i < 2; ++i) store(out[i], t + i);
    }
    for (; t < a.n_tokens; ++t) {
      __m512 out[1];
      Group<kBits, kLut, kSegs, kScale, kSigned, kMin, 1>(c, g, t, out);
      store(out[0], t);
    }
  }
}

}  // namespace

RowRangeFn InterleavedAvx512Fn(const IlDesc& d) {
  const bool f16 = d.scale == IlScale::kF16;
  const bool sg = d.exp_signed != 0;
  const bool mn = d.has_min != 0;
#define IL_CASE(B, L, S, K, SG, M)                                                      \
  if (d.bits == B && (d.lut != 0) == L && d.segs == S && d.scale == K && sg == SG && mn == M) \
    return &Run<B, L, S, K, SG, M>;
  // fp16 scale per unit (GGUF, int): sign flag unused.
  if (f16) {
    IL_CASE(4, false, 1, IlScale::kF16, false, false)
    IL_CASE(4, false, 1, IlScale::kF16, false, true)
    IL_CASE(6, false, 1, IlScale::kF16, false, false)
    IL_CASE(6, false, 1, IlScale::kF16, false, true)
    IL_CASE(8, false, 1, IlScale::kF16, false, false)
    IL_CASE(8, false, 1, IlScale::kF16, false, true)
    return nullptr;
  }
  IL_CASE(4, true, 1, IlScale::kExp, false, false)
  IL_CASE(4, true, 2, IlScale::kExp, false, false)
  IL_CASE(4, false, 1, IlScale::kExp, false, false)
  IL_CASE(4, false, 2, IlScale::kExp, false, false)
  IL_CASE(4, true, 1, IlScale::kExp, true, false)
  IL_CASE(4, true, 2, IlScale::kExp, true, false)
  IL_CASE(4, false, 1, IlScale::kExp, true, false)
  IL_CASE(4, false, 2, IlScale::kExp, true, false)
  IL_CASE(6, false, 1, IlScale::kExp, true, false)
  IL_CASE(6, false, 2, IlScale::kExp, true, false)
  IL_CASE(6, false, 1, IlScale::kExp, false, false)
  IL_CASE(6, false, 2, IlScale::kExp, false, false)
  IL_CASE(8, false, 1, IlScale::kExp, true, false)
  IL_CASE(8, false, 2, IlScale::kExp, true, false)
  IL_CASE(8, false, 1, IlScale::kExp, false, false)
  IL_CASE(8, false, 2, IlScale::kExp, false, false)
#undef IL_CASE
  return nullptr;
}

}  // namespace lowbit::kernels
