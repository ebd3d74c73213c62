// The AVX-512 (+VNNI) row-interleaved kernel templates (kernels/interleaved.h), shared by the
// plain level (interleaved_avx512.cc) and the VBMI variants (interleaved_vbmi.cc, whose lut6
// tables need vpermb). Include from those two files only: each instantiates what its flags allow.
// One zmm lane per row of a 16-row group, vpdpbusd of 16 rows x 4 codes against a broadcast
// dword of 4 Q8 activations. Order of operations: interleaved.h.
#pragma once

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/interleaved.h"
#include "kernels/simd_avx512.h"

namespace lowbit::kernels {
namespace {

#define IL_INLINE LOWBIT_SIMD_INLINE

// Every line of the unit kIlPrefetchBytes ahead (interleaved.h), into L2.
IL_INLINE void PrefetchUnitAhead(const uint8_t* p, int64_t unit_bytes) {
  const char* ahead = reinterpret_cast<const char*>(p + kIlPrefetchBytes);
  for (int64_t line = 0; line < unit_bytes; line += 64) _mm_prefetch(ahead + line, _MM_HINT_T1);
}

using avx512::Bcast32;
using avx512::DecodeCodes;

// kUnit: times d.scale_unit (fp6split: an fp16 times 2^-shift >= 2^-12, exact).
template <int kSegs, IlScale kScale, bool kSigned, bool kUnit>
IL_INLINE void LoadScales(const uint8_t* p, const IlDesc& d, __m512* s) {
  for (int seg = 0; seg < kSegs; ++seg) {
    if constexpr (kScale == IlScale::kF16 || kScale == IlScale::kF32) {
      s[seg] = kScale == IlScale::kF16 ? _mm512_cvtph_ps(_mm256_loadu_si256(
                                             reinterpret_cast<const __m256i*>(p + 32 * seg)))
                                       : _mm512_loadu_ps(p + 64 * seg);
      if constexpr (kUnit) s[seg] = _mm512_mul_ps(s[seg], _mm512_set1_ps(d.scale_unit));
    } else {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * seg));
      const __m512i x = kSigned ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
      const __m512 e = _mm512_cvtepi32_ps(_mm512_sub_epi32(x, _mm512_set1_epi32(d.bias)));
      // 2^e, exact for e in [-149, 127] (checked when the layout was chosen).
      s[seg] = _mm512_scalef_ps(_mm512_set1_ps(1.0f), e);
      if (d.nan_byte >= 0) {
        const __mmask16 nan =
            _mm512_cmpeq_epi32_mask(_mm512_cvtepu8_epi32(b), _mm512_set1_epi32(d.nan_byte));
        s[seg] = _mm512_mask_mov_ps(s[seg], nan,
                                    _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
      }
    }
  }
}

struct IlCtx {
  const MatmulArgs* a;
  int64_t blocks;  // Q8 blocks of 32 per token
  const IlDesc* d;
  const uint8_t* base;  // group 0
  int64_t units;
  int64_t unit_bytes;
  const int32_t* half_sums;  // kSegs == 2: (token - t_first, unit, half)
  int64_t t_first;
};

// The outputs of group g for tokens [t0, t0 + T).
// kLut: 0 codes are the integers, 1 the nibble indexes lut16 by vpshufb, 2 by vpermb (VBMI), 3
// lut16 and lut16_hi by vpermb (lut2: nf4).
template <int kBits, int kLut, int kLut6, int kSegs, IlScale kScale, bool kSigned, bool kMin,
          int kUB, int T, int kG = 1>
IL_INLINE void Group(const IlCtx& c, int64_t g, int64_t t0, __m512* out) {
  const MatmulArgs& a = *c.a;
  const IlDesc& d = *c.d;
  const __m512i lut =
      kLut ? _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d.lut16)))
           : _mm512_setzero_si512();
  [[maybe_unused]] __m512i lut_lo, lut_hi;
  if constexpr (kLut == 3) {
    lut_hi = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d.lut16_hi)));
  }
  if constexpr (kLut6 != 0) {
    lut_lo = _mm512_loadu_si512(d.lut64);
    lut_hi = _mm512_loadu_si512(d.lut64_hi);
  }
  const int64_t bpr = a.x_q8->blocks_per_row;
  const Q8Block32* xb[T];
  for (int t = 0; t < T; ++t) xb[t] = a.x_q8->blocks.data() + (t0 + t) * bpr;
  // kG groups side by side (unit u of each in turn): kG streams of the matrix in flight.
  __m512 acc_g[kG][T];
  const uint8_t* p_g[kG];
  for (int gi = 0; gi < kG; ++gi) {
    p_g[gi] = c.base + (g + gi) * c.units * c.unit_bytes;
    for (int t = 0; t < T; ++t) acc_g[gi][t] = _mm512_setzero_ps();
  }
  constexpr int64_t kCodeBytes = 64 * kBits;
  constexpr int64_t kScaleBytes =
      kSegs * 16 * (kScale == IlScale::kF32 ? 4 : kScale == IlScale::kF16 ? 2 : 1);
  constexpr bool kUnitScale = kLut6 != 0;
  // lut2 (nf4): 2^-14 multiplies float(isum) instead of the scale, where it is exact (an integer
  // times 2^-14; A * 2^-14 would lose bits for a subnormal A).
  [[maybe_unused]] const __m512 isum_unit = _mm512_set1_ps(d.scale_unit);
  for (int64_t u = 0; u < c.units; ++u) {
    for (int gi = 0; gi < kG; ++gi) {
      const uint8_t* p = p_g[gi] + u * c.unit_bytes;
      __m512* acc = acc_g[gi];
      PrefetchUnitAhead(p, c.unit_bytes);  // a unit is 5 to 9 lines
      // One set of scale (and min) fields for the unit's kUB blocks of 32.
      __m512 s[kSegs];
      LoadScales<kSegs, kScale, kSigned, kUnitScale>(p + kUB * kCodeBytes, d, s);
      [[maybe_unused]] __m512 mn;
      if constexpr (kMin) {
        const uint8_t* min_fields = p + kUB * kCodeBytes + kScaleBytes;
        mn = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(min_fields)));
      }
      // The last unit of a row may hold fewer than kUB blocks of activations.
      const int64_t n_sub = kUB == 1 ? 1 : std::min<int64_t>(kUB, c.blocks - u * kUB);
      for (int64_t k = 0; k < n_sub; ++k) {
        __m512i cv[8];
        [[maybe_unused]] __m512i ch[8];  // lut6 == 2 / lut2: the second table's bytes
        if constexpr (kLut == 3) {
          static_assert(kBits == 4 && kLut6 == 0);
          // As kLut == 2, once per table.
          for (int j = 0; j < 4; ++j) {
            const __m512i v = _mm512_loadu_si512(p + k * kCodeBytes + 64 * j);
            const __m512i v4 = _mm512_srli_epi16(v, 4);
            cv[2 * j] = _mm512_permutexvar_epi8(v, lut);
            ch[2 * j] = _mm512_permutexvar_epi8(v, lut_hi);
            cv[2 * j + 1] = _mm512_permutexvar_epi8(v4, lut);
            ch[2 * j + 1] = _mm512_permutexvar_epi8(v4, lut_hi);
          }
        } else if constexpr (kLut == 2) {
          static_assert(kBits == 4);
          // vpermb reads index bits 0..5 and lut holds lut16 four times over, so the bits above the
          // nibble (the other nibble, or bits the 16-bit shift brought in) pick the same entry: no
          // masking, one shuffle per 64 codes.
          for (int j = 0; j < 4; ++j) {
            const __m512i v = _mm512_loadu_si512(p + k * kCodeBytes + 64 * j);
            cv[2 * j] = _mm512_permutexvar_epi8(v, lut);
            cv[2 * j + 1] = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), lut);
          }
        } else {
          DecodeCodes<kBits, kLut != 0>(p + k * kCodeBytes, lut, cv);
        }
        // lut6: the 6-bit codes through the 64-byte tables (vpermb ignores index bits 6..7).
        if constexpr (kLut6 != 0) {
          for (int v = 0; v < 8; ++v) {
            if constexpr (kLut6 == 2) ch[v] = _mm512_permutexvar_epi8(cv[v], lut_hi);
            cv[v] = _mm512_permutexvar_epi8(cv[v], lut_lo);
          }
        }
        for (int t = 0; t < T; ++t) {
          const Q8Block32& b = xb[t][u * kUB + k];
          const __m512 dx = _mm512_set1_ps(b.d);
          if constexpr (kSegs == 1) {
            // Two chains of 4 vpdpbusd, then one add (all exact int32).
            __m512i i0 = _mm512_set1_epi32(-d.zero * b.sum), i1 = _mm512_setzero_si512();
            for (int v = 0; v < 8; v += 2) {
              i0 = _mm512_dpbusd_epi32(i0, cv[v], Bcast32(b.q + 4 * v));
              i1 = _mm512_dpbusd_epi32(i1, cv[v + 1], Bcast32(b.q + 4 * v + 4));
            }
            if constexpr (kLut6 == 2 || kLut == 3) {
              // + 16 (lut6) or 256 (lut2) * sum hi * q: |hi| <= 255, so the 32-term sum times 256
              // stays inside int32 (< 2^28), and so does the total (|weight| <= 2^14 for lut2).
              __m512i h0 = _mm512_setzero_si512(), h1 = _mm512_setzero_si512();
              for (int v = 0; v < 8; v += 2) {
                h0 = _mm512_dpbusd_epi32(h0, ch[v], Bcast32(b.q + 4 * v));
                h1 = _mm512_dpbusd_epi32(h1, ch[v + 1], Bcast32(b.q + 4 * v + 4));
              }
              i1 = _mm512_add_epi32(i1,
                                    _mm512_slli_epi32(_mm512_add_epi32(h0, h1), kLut == 3 ? 8 : 4));
            }
            __m512 fi = _mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1));
            if constexpr (kLut == 3) fi = _mm512_mul_ps(fi, isum_unit);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(fi, dx), s[0], acc[t]);
          } else {
            const int32_t* hs = c.half_sums + ((t0 + t - c.t_first) * c.units + u) * 2;
            __m512i i0 = _mm512_set1_epi32(-d.zero * hs[0]);
            __m512i i1 = _mm512_set1_epi32(-d.zero * hs[1]);
            for (int v = 0; v < 4; ++v) {
              i0 = _mm512_dpbusd_epi32(i0, cv[v], Bcast32(b.q + 4 * v));
              i1 = _mm512_dpbusd_epi32(i1, cv[v + 4], Bcast32(b.q + 16 + 4 * v));
            }
            if constexpr (kLut6 == 2) {
              __m512i h0 = _mm512_setzero_si512(), h1 = _mm512_setzero_si512();
              for (int v = 0; v < 4; ++v) {
                h0 = _mm512_dpbusd_epi32(h0, ch[v], Bcast32(b.q + 4 * v));
                h1 = _mm512_dpbusd_epi32(h1, ch[v + 4], Bcast32(b.q + 16 + 4 * v));
              }
              i0 = _mm512_add_epi32(i0, _mm512_slli_epi32(h0, 4));
              i1 = _mm512_add_epi32(i1, _mm512_slli_epi32(h1, 4));
            }
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(i0), dx), s[0], acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(i1), dx), s[1], acc[t]);
          }
          if constexpr (kMin) {
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(static_cast<float>(b.sum) * b.d), mn, acc[t]);
          }
        }
      }  // k
    }  // gi
  }
  for (int gi = 0; gi < kG; ++gi)
    for (int t = 0; t < T; ++t) out[gi * T + t] = acc_g[gi][t];
}

// lut8 (interleaved.h): 8-bit sign-magnitude codes whose magnitude is kParts bytes from
// 128-entry tables. Per code vector: the parts (vpermi2b, shared by the tokens), then per token
// the activations negated where the code is negative and one vpdpbusd per part; per segment the
// parts' sums combine as A0 + (A1 << 8) + (A2 << 16) (exact), then as in Group.
template <int kParts, int kSegs, bool kSigned, int T, int kG = 1>
IL_INLINE void Group8(const IlCtx& c, int64_t g, int64_t t0, __m512* out) {
  const MatmulArgs& a = *c.a;
  const IlDesc& d = *c.d;
  __m512i tlo[kParts], thi[kParts];
  for (int j = 0; j < kParts; ++j) {
    tlo[j] = _mm512_loadu_si512(d.lut128[j]);
    thi[j] = _mm512_loadu_si512(d.lut128[j] + 64);
  }
  const int64_t bpr = a.x_q8->blocks_per_row;
  const Q8Block32* xb[T];
  for (int t = 0; t < T; ++t) xb[t] = a.x_q8->blocks.data() + (t0 + t) * bpr;
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc_g[kG][T];  // kG groups side by side, as in Group
  const uint8_t* p_g[kG];
  for (int gi = 0; gi < kG; ++gi) {
    p_g[gi] = c.base + (g + gi) * c.units * c.unit_bytes;
    for (int t = 0; t < T; ++t) acc_g[gi][t] = _mm512_setzero_ps();
  }
  for (int64_t u = 0; u < c.units; ++u) {
    for (int gi = 0; gi < kG; ++gi) {
      const uint8_t* p = p_g[gi] + u * c.unit_bytes;
      __m512* acc = acc_g[gi];
      PrefetchUnitAhead(p, c.unit_bytes);
      __m512 s[kSegs];
      LoadScales<kSegs, IlScale::kExp, kSigned, false>(p + 512, d, s);
      constexpr int kPerSeg = 8 / kSegs;
      for (int seg = 0; seg < kSegs; ++seg) {
        __m512i part_sum[T][kParts];
        for (int t = 0; t < T; ++t)
          for (int j = 0; j < kParts; ++j) part_sum[t][j] = _mm512_setzero_si512();
        for (int v = seg * kPerSeg; v < (seg + 1) * kPerSeg; ++v) {
          const __m512i codes = _mm512_loadu_si512(p + 64 * v);
          const __mmask64 neg = _mm512_movepi8_mask(codes);
          __m512i part[kParts];
          for (int j = 0; j < kParts; ++j)
            part[j] = _mm512_permutex2var_epi8(tlo[j], codes, thi[j]);
          for (int t = 0; t < T; ++t) {
            const __m512i q = Bcast32(xb[t][u].q + 4 * v);
            const __m512i qs = _mm512_mask_sub_epi8(q, neg, zero, q);
            for (int j = 0; j < kParts; ++j)
              part_sum[t][j] = _mm512_dpbusd_epi32(part_sum[t][j], part[j], qs);
          }
        }
        for (int t = 0; t < T; ++t) {
          __m512i isum = part_sum[t][0];
          for (int j = 1; j < kParts; ++j)
            isum = _mm512_add_epi32(isum, _mm512_slli_epi32(part_sum[t][j], 8 * j));
          const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(xb[t][u].d));
          acc[t] = _mm512_fmadd_ps(f, s[seg], acc[t]);
        }
      }
    }  // gi
  }
  for (int gi = 0; gi < kG; ++gi)
    for (int t = 0; t < T; ++t) out[gi * T + t] = acc_g[gi][t];
}

template <int kParts, int kSegs, bool kSigned>
struct Lut8Group {
  template <int T, int kG = 1>
  IL_INLINE static void Run(const IlCtx& c, int64_t g, int64_t t0, __m512* out) {
    Group8<kParts, kSegs, kSigned, T, kG>(c, g, t0, out);
  }
};

template <int kBits, int kLut, int kLut6, int kSegs, IlScale kScale, bool kSigned, bool kMin,
          int kUB>
struct PlainGroup {
  template <int T, int kG = 1>
  IL_INLINE static void Run(const IlCtx& c, int64_t g, int64_t t0, __m512* out) {
    Group<kBits, kLut, kLut6, kSegs, kScale, kSigned, kMin, kUB, T, kG>(c, g, t0, out);
  }
};

// Every group of rows [r0, r1) for every token, tokens in tiles of 4, 2, 1 (G::Run<T>).
template <class G, int kSegs>
void RunGroups(const MatmulArgs& a, int64_t r0, int64_t r1) {
  IlHeader h;
  std::memcpy(&h, a.w, sizeof h);
  IlCtx c{&a,      a.x_q8->blocks_per_row, &h.desc, a.w + kIlHeaderBytes,
          h.units, h.desc.UnitBytes(),     nullptr, 0};
  thread_local std::vector<int32_t> half_sums;
  if constexpr (kSegs == 2) {
    IlHalfSums(*a.x_q8, 0, a.n_tokens, &half_sums);
    c.half_sums = half_sums.data();
  }
  alignas(64) float lanes[16];
  int64_t g = r0 / kIlRows;
  // One token: kIlStreams whole groups side by side, so that kIlStreams regions of the matrix
  // stream at once (interleaved.h); the rest one group at a time. Same bits either way.
  for (; a.n_tokens == 1 && g * kIlRows >= r0 && (g + kIlStreams) * kIlRows <= r1;
       g += kIlStreams) {
    __m512 out[kIlStreams];
    G::template Run<1, kIlStreams>(c, g, 0, out);
    for (int gi = 0; gi < kIlStreams; ++gi) {
      _mm512_store_ps(lanes, out[gi]);
      for (int64_t r = 0; r < kIlRows; ++r) a.y[(g + gi) * kIlRows + r] = lanes[r];
    }
  }
  for (; g * kIlRows < r1; ++g) {
    const int64_t lo = std::max(r0, g * kIlRows), hi = std::min(r1, g * kIlRows + kIlRows);
    auto store = [&](__m512 v, int64_t t) {
      _mm512_store_ps(lanes, v);
      for (int64_t r = lo; r < hi; ++r) a.y[t * a.ldy + r] = lanes[r - g * kIlRows];
    };
    int64_t t = 0;
    for (; t + 4 <= a.n_tokens; t += 4) {
      __m512 out[4];
      G::template Run<4>(c, g, t, out);
      for (int i = 0; i < 4; ++i) store(out[i], t + i);
    }
    for (; t + 2 <= a.n_tokens; t += 2) {
      __m512 out[2];
      G::template Run<2>(c, g, t, out);
      for (int i = 0; i < 2; ++i) store(out[i], t + i);
    }
    for (; t < a.n_tokens; ++t) {
      __m512 out[1];
      G::template Run<1>(c, g, t, out);
      store(out[0], t);
    }
  }
}

template <int kBits, int kLut, int kLut6, int kSegs, IlScale kScale, bool kSigned, bool kMin,
          int kUB = 1>
void Run(const MatmulArgs& a, int64_t r0, int64_t r1) {
  RunGroups<PlainGroup<kBits, kLut, kLut6, kSegs, kScale, kSigned, kMin, kUB>, kSegs>(a, r0, r1);
}

template <int kParts, int kSegs, bool kSigned>
void RunLut8(const MatmulArgs& a, int64_t r0, int64_t r1) {
  RunGroups<Lut8Group<kParts, kSegs, kSigned>, 1>(a, r0, r1);  // no half sums: zero is 0
}

}  // namespace
}  // namespace lowbit::kernels
