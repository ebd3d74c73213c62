// AVX-512 (+VNNI) level of the k-quant interleaved kernels (kernels/kquant_kernels.h): one zmm
// lane per row of a 16-row group; vpdpbusd multiplies 16 rows x 4 codes with a broadcast dword of
// 4 Q8 activations. Order of operations: kquant_kernels.h (the same per lane as the scalar level).
#include "kernels/simd_avx512.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/interleaved.h"
#include "kernels/kquant_kernels.h"

namespace lowbit::kernels {
namespace {

#define KQ_INLINE LOWBIT_SIMD_INLINE

using avx512::Bcast32;

// The 8 code vectors of one unit: 4-bit codes, or 6-bit (q6_k) with the 2-bit planes.
template <bool kSix>
KQ_INLINE void DecodeCodes(const uint8_t* p, __m512i* cv) {
  avx512::DecodeCodes<kSix ? 6 : 4, false>(p, _mm512_setzero_si512(), cv);
}

KQ_INLINE __m512i Load16U8(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
KQ_INLINE __m512i Load16I8(const uint8_t* p) {
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
KQ_INLINE __m512 LoadHalf16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

struct Ctx {
  const MatmulArgs* a;
  const uint8_t* base;
  int64_t sblocks;
  int64_t units;             // Q8 blocks per row
  const int32_t* half_sums;  // q6_k: (token, unit, half)
};

template <int T, int kG = 1>
KQ_INLINE void GroupQ4K(const Ctx& c, int64_t g, int64_t t0, __m512* out) {
  const Q8Block32* xb[T];
  for (int t = 0; t < T; ++t) xb[t] = c.a->x_q8->blocks.data() + (t0 + t) * c.units;
  // kG groups side by side, super-block s of each in turn (kIlStreams in interleaved.h).
  __m512 acc_g[kG][T];
  for (int gi = 0; gi < kG; ++gi)
    for (int t = 0; t < T; ++t) acc_g[gi][t] = _mm512_setzero_ps();
  for (int64_t s = 0; s < c.sblocks; ++s) {
    for (int gi = 0; gi < kG; ++gi) {
      const uint8_t* p = c.base + ((g + gi) * c.sblocks + s) * kKqQ4KRecord;
      __m512* acc = acc_g[gi];
      __m512 accs[T], accm[T];
      for (int t = 0; t < T; ++t) accs[t] = accm[t] = _mm512_setzero_ps();
      const int jn = static_cast<int>(std::min<int64_t>(8, c.units - 8 * s));
      for (int j = 0; j < jn; ++j) {
        const uint8_t* pc = p + 320 + 256 * j;
        // Into L2, as the row-interleaved kernels do (kIlPrefetchBytes in interleaved.h says why).
        for (int l = 0; l < 4; ++l) {
          _mm_prefetch(reinterpret_cast<const char*>(pc + 4 * kKqQ4KRecord + 64 * l), _MM_HINT_T1);
        }
        __m512i cv[8];
        DecodeCodes<false>(pc, cv);
        const __m512i sc = Load16U8(p + 64 + 16 * j);
        const __m512 m = _mm512_cvtepi32_ps(Load16U8(p + 192 + 16 * j));
        for (int t = 0; t < T; ++t) {
          const Q8Block32& b = xb[t][8 * s + j];
          __m512i i0 = _mm512_setzero_si512(), i1 = _mm512_setzero_si512();
          for (int v = 0; v < 8; v += 2) {
            i0 = _mm512_dpbusd_epi32(i0, cv[v], Bcast32(b.q + 4 * v));
            i1 = _mm512_dpbusd_epi32(i1, cv[v + 1], Bcast32(b.q + 4 * v + 4));
          }
          const __m512i ps = _mm512_mullo_epi32(_mm512_add_epi32(i0, i1), sc);
          accs[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ps), _mm512_set1_ps(b.d), accs[t]);
          const float xs = static_cast<float>(b.sum) * b.d;
          accm[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(xs), accm[t]);
        }
      }
      const __m512 d = LoadHalf16(p), dmin = LoadHalf16(p + 32);
      for (int t = 0; t < T; ++t) {
        acc[t] = _mm512_fmadd_ps(d, accs[t], acc[t]);
        acc[t] = _mm512_fnmadd_ps(dmin, accm[t], acc[t]);
      }
    }  // gi
  }
  for (int gi = 0; gi < kG; ++gi)
    for (int t = 0; t < T; ++t) out[gi * T + t] = acc_g[gi][t];
}

template <int T, int kG = 1>
KQ_INLINE void GroupQ6K(const Ctx& c, int64_t g, int64_t t0, __m512* out) {
  const Q8Block32* xb[T];
  for (int t = 0; t < T; ++t) xb[t] = c.a->x_q8->blocks.data() + (t0 + t) * c.units;
  // kG groups side by side, super-block s of each in turn (kIlStreams in interleaved.h).
  __m512 acc_g[kG][T];
  for (int gi = 0; gi < kG; ++gi)
    for (int t = 0; t < T; ++t) acc_g[gi][t] = _mm512_setzero_ps();
  for (int64_t s = 0; s < c.sblocks; ++s) {
    for (int gi = 0; gi < kG; ++gi) {
      const uint8_t* p = c.base + ((g + gi) * c.sblocks + s) * kKqQ6KRecord;
      __m512* acc = acc_g[gi];
      __m512 accs[T];
      for (int t = 0; t < T; ++t) accs[t] = _mm512_setzero_ps();
      const int jn = static_cast<int>(std::min<int64_t>(8, c.units - 8 * s));
      for (int j = 0; j < jn; ++j) {
        const uint8_t* pc = p + 384 * j;
        for (int l = 0; l < 6; ++l) {
          _mm_prefetch(reinterpret_cast<const char*>(pc + 3 * kKqQ6KRecord + 64 * l), _MM_HINT_T1);
        }
        __m512i cv[8];
        DecodeCodes<true>(pc, cv);
        const __m512i sc0 = Load16I8(p + 3072 + 32 * j), sc1 = Load16I8(p + 3072 + 32 * j + 16);
        for (int t = 0; t < T; ++t) {
          const int64_t u = 8 * s + j;
          const Q8Block32& b = xb[t][u];
          const int32_t* hs = c.half_sums + ((t0 + t) * c.units + u) * 2;
          __m512i i0 = _mm512_set1_epi32(-32 * hs[0]), i1 = _mm512_set1_epi32(-32 * hs[1]);
          for (int v = 0; v < 4; ++v) {
            i0 = _mm512_dpbusd_epi32(i0, cv[v], Bcast32(b.q + 4 * v));
            i1 = _mm512_dpbusd_epi32(i1, cv[v + 4], Bcast32(b.q + 16 + 4 * v));
          }
          const __m512i ps =
              _mm512_add_epi32(_mm512_mullo_epi32(i0, sc0), _mm512_mullo_epi32(i1, sc1));
          accs[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ps), _mm512_set1_ps(b.d), accs[t]);
        }
      }
      const __m512 d = LoadHalf16(p + 3328);
      for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(d, accs[t], acc[t]);
    }  // gi
  }
  for (int gi = 0; gi < kG; ++gi)
    for (int t = 0; t < T; ++t) out[gi * T + t] = acc_g[gi][t];
}

template <bool kQ4>
void Run(const MatmulArgs& a, const KqHeader& h, int64_t r0, int64_t r1) {
  Ctx c{&a, a.w + kKqHeaderBytes, h.sblocks, a.x_q8->blocks_per_row, nullptr};
  thread_local std::vector<int32_t> half_sums;
  if constexpr (!kQ4) {
    IlHalfSums(*a.x_q8, 0, a.n_tokens, &half_sums);
    c.half_sums = half_sums.data();
  }
  alignas(64) float lanes[16];
  int64_t g = r0 / kKqRows;
  // One token: kIlStreams whole groups side by side (interleaved.h); same bits either way.
  for (; a.n_tokens == 1 && g * kKqRows >= r0 && (g + kIlStreams) * kKqRows <= r1;
       g += kIlStreams) {
    __m512 out[kIlStreams];
    if constexpr (kQ4) {
      GroupQ4K<1, kIlStreams>(c, g, 0, out);
    } else {
      GroupQ6K<1, kIlStreams>(c, g, 0, out);
    }
    for (int gi = 0; gi < kIlStreams; ++gi) {
      _mm512_store_ps(lanes, out[gi]);
      for (int64_t r = 0; r < kKqRows; ++r) a.y[(g + gi) * kKqRows + r] = lanes[r];
    }
  }
  for (; g * kKqRows < r1; ++g) {
    const int64_t lo = std::max(r0, g * kKqRows), hi = std::min(r1, g * kKqRows + kKqRows);
    auto store = [&](__m512 v, int64_t t) {
      _mm512_store_ps(lanes, v);
      for (int64_t r = lo; r < hi; ++r) a.y[t * a.ldy + r] = lanes[r - g * kKqRows];
    };
    auto tile = [&]<int T>(int64_t t) {
      __m512 out[T];
      if constexpr (kQ4) {
        GroupQ4K<T>(c, g, t, out);
      } else {
        GroupQ6K<T>(c, g, t, out);
      }
      for (int i = 0; i < T; ++i) store(out[i], t + i);
    };
    int64_t t = 0;
    for (; t + 4 <= a.n_tokens; t += 4) tile.template operator()<4>(t);
    for (; t + 2 <= a.n_tokens; t += 2) tile.template operator()<2>(t);
    for (; t < a.n_tokens; ++t) tile.template operator()<1>(t);
  }
}

}  // namespace

void KquantRunAvx512(const MatmulArgs& a, int64_t r0, int64_t r1) {
  KqHeader h;
  std::memcpy(&h, a.w, sizeof h);
  if (h.type == KqType::kQ4K) {
    Run<true>(a, h, r0, r1);
  } else {
    Run<false>(a, h, r0, r1);
  }
}

}  // namespace lowbit::kernels
