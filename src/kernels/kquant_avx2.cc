// AVX2 level of the k-quant interleaved kernels (kernels/kquant_kernels.h): each 64-byte vector of
// a 16-row group is two ymm halves (rows 0-7, rows 8-15): a single token takes both halves in one
// pass, token pairs one half at a time (the second pass over a group finds it in L2). The 4-code
// dot of a row is pmaddubsw (u8 codes x s8 activations -> int16 pairs, <= 2 * 63 * 127: no
// saturation) + pmaddwd (-> int32), the same integers as vpdpbusd. The int16 sums of several
// pmaddubsw results are kept in int16 where they provably fit, and pmaddwd with the sub-block scale
// gives sc * isum directly (no pmulld); the integers are the same, and the float operations per
// lane are those of the header comment, so this level gives the bits of the scalar and AVX-512
// levels.
#include "kernels/simd_avx2.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/interleaved.h"
#include "kernels/kquant_kernels.h"

namespace lowbit::kernels {
namespace {

#define KQ_INLINE LOWBIT_SIMD_INLINE

// The 8 code vectors of one unit for rows 8h .. 8h + 7 (p already offset by 32 h): 4-bit codes, or
// 6-bit (q6_k) with the 2-bit planes.
template <bool kSix>
KQ_INLINE void DecodeCodes(const uint8_t* p, __m256i* cv) {
  avx2::DecodeCodes<kSix ? 6 : 4, false>(p, _mm256_setzero_si256(), cv);
}

// u8 codes x a broadcast dword of 4 s8 activations -> int16 pairs (c0 q0 + c1 q1 per lane).
KQ_INLINE __m256i Maddubs4(__m256i codes, const int8_t* q) {
  return _mm256_maddubs_epi16(codes, avx2::Bcast32(q));
}

KQ_INLINE __m256i Load8U8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
KQ_INLINE __m256i Load8I8(const uint8_t* p) {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
KQ_INLINE __m256 LoadHalf8(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

struct Ctx {
  const MatmulArgs* a;
  const uint8_t* base;
  int64_t sblocks;
  int64_t units;
  const int32_t* half_sums;
};

// Halves h0 .. h0 + H - 1 (rows 8h .. 8h + 7) of group g, tokens [t0, t0 + T): out[hh * T + t].
// H = 2 decodes both halves in one pass (the activations' broadcasts are shared).
template <int T, int H>
KQ_INLINE void HalvesQ4K(const Ctx& c, int64_t g, int h0, int64_t t0, __m256* out) {
  const Q8Block32* xb[T];
  for (int t = 0; t < T; ++t) xb[t] = c.a->x_q8->blocks.data() + (t0 + t) * c.units;
  __m256 acc[H][T];
  for (int hh = 0; hh < H; ++hh)
    for (int t = 0; t < T; ++t) acc[hh][t] = _mm256_setzero_ps();
  const uint8_t* p = c.base + g * c.sblocks * kKqQ4KRecord;
  for (int64_t s = 0; s < c.sblocks; ++s, p += kKqQ4KRecord) {
    __m256 accs[H][T], accm[H][T];
    for (int hh = 0; hh < H; ++hh)
      for (int t = 0; t < T; ++t) accs[hh][t] = accm[hh][t] = _mm256_setzero_ps();
    const int jn = static_cast<int>(std::min<int64_t>(8, c.units - 8 * s));
    for (int j = 0; j < jn; ++j) {
      const uint8_t* pc = p + 320 + 256 * j;
      // Into L2, as the row-interleaved kernels do (kIlPrefetchBytes in interleaved.h says why).
      if (h0 == 0) {
        for (int l = 0; l < 4; ++l) {
          _mm_prefetch(reinterpret_cast<const char*>(pc + 4 * kKqQ4KRecord + 64 * l), _MM_HINT_T1);
        }
      }
      for (int hh = 0; hh < H; ++hh) {
        const int h = h0 + hh;
        __m256i cv[8];
        DecodeCodes<false>(pc + 32 * h, cv);
        // The row's scale in both int16 halves of its dword: pmaddwd then gives sc * isum.
        const __m256i sc32 = Load8U8(p + 64 + 16 * j + 8 * h);
        const __m256i sc = _mm256_or_si256(sc32, _mm256_slli_epi32(sc32, 16));
        const __m256 m = _mm256_cvtepi32_ps(Load8U8(p + 192 + 16 * j + 8 * h));
        for (int t = 0; t < T; ++t) {
          const Q8Block32& b = xb[t][8 * s + j];
          // int16 lanes: each pmaddubsw lane is c0 q0 + c1 q1 with c <= 15, |q| <= 127, so
          // |.| <= 3810 and the sum of all 8 is <= 30480: exact in int16.
          __m256i i0 = Maddubs4(cv[0], b.q), i1 = Maddubs4(cv[1], b.q + 4);
          for (int v = 2; v < 8; v += 2) {
            i0 = _mm256_add_epi16(i0, Maddubs4(cv[v], b.q + 4 * v));
            i1 = _mm256_add_epi16(i1, Maddubs4(cv[v + 1], b.q + 4 * v + 4));
          }
          const __m256i ps = _mm256_madd_epi16(_mm256_add_epi16(i0, i1), sc);
          accs[hh][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ps), _mm256_set1_ps(b.d), accs[hh][t]);
          const float xs = static_cast<float>(b.sum) * b.d;
          accm[hh][t] = _mm256_fmadd_ps(m, _mm256_set1_ps(xs), accm[hh][t]);
        }
      }
    }
    for (int hh = 0; hh < H; ++hh) {
      const __m256 d = LoadHalf8(p + 16 * (h0 + hh)), dmin = LoadHalf8(p + 32 + 16 * (h0 + hh));
      for (int t = 0; t < T; ++t) {
        acc[hh][t] = _mm256_fmadd_ps(d, accs[hh][t], acc[hh][t]);
        acc[hh][t] = _mm256_fnmadd_ps(dmin, accm[hh][t], acc[hh][t]);
      }
    }
  }
  for (int hh = 0; hh < H; ++hh)
    for (int t = 0; t < T; ++t) out[hh * T + t] = acc[hh][t];
}

template <int T, int H>
KQ_INLINE void HalvesQ6K(const Ctx& c, int64_t g, int h0, int64_t t0, __m256* out) {
  const Q8Block32* xb[T];
  for (int t = 0; t < T; ++t) xb[t] = c.a->x_q8->blocks.data() + (t0 + t) * c.units;
  __m256 acc[H][T];
  for (int hh = 0; hh < H; ++hh)
    for (int t = 0; t < T; ++t) acc[hh][t] = _mm256_setzero_ps();
  const uint8_t* p = c.base + g * c.sblocks * kKqQ6KRecord;
  for (int64_t s = 0; s < c.sblocks; ++s, p += kKqQ6KRecord) {
    __m256 accs[H][T];
    for (int hh = 0; hh < H; ++hh)
      for (int t = 0; t < T; ++t) accs[hh][t] = _mm256_setzero_ps();
    const int jn = static_cast<int>(std::min<int64_t>(8, c.units - 8 * s));
    for (int j = 0; j < jn; ++j) {
      const uint8_t* pc = p + 384 * j;
      if (h0 == 0) {
        for (int l = 0; l < 6; ++l) {
          _mm_prefetch(reinterpret_cast<const char*>(pc + 3 * kKqQ6KRecord + 64 * l), _MM_HINT_T1);
        }
      }
      for (int hh = 0; hh < H; ++hh) {
        const int h = h0 + hh;
        __m256i cv[8];
        DecodeCodes<true>(pc + 32 * h, cv);
        // Sub-block scales as int16: sc_h in both halves of a dword (for pmaddwd with the code
        // sums), and (sc_0, sc_1) in the two halves (for the zero-point term).
        const __m256i s0 = Load8I8(p + 3072 + 32 * j + 8 * h);
        const __m256i s1 = Load8I8(p + 3072 + 32 * j + 16 + 8 * h);
        const __m256i sc0 = _mm256_blend_epi16(s0, _mm256_slli_epi32(s0, 16), 0xAA);
        const __m256i sc1 = _mm256_blend_epi16(s1, _mm256_slli_epi32(s1, 16), 0xAA);
        const __m256i sc01 = _mm256_blend_epi16(s0, _mm256_slli_epi32(s1, 16), 0xAA);
        for (int t = 0; t < T; ++t) {
          const int64_t u = 8 * s + j;
          const Q8Block32& b = xb[t][u];
          const int32_t* hs = c.half_sums + ((t0 + t) * c.units + u) * 2;
          // int16 lanes: a pmaddubsw lane is <= 2 * 63 * 127 = 16002, so two of them add exactly.
          const __m256i a0 = _mm256_add_epi16(Maddubs4(cv[0], b.q), Maddubs4(cv[1], b.q + 4));
          const __m256i a1 = _mm256_add_epi16(Maddubs4(cv[2], b.q + 8), Maddubs4(cv[3], b.q + 12));
          const __m256i b0 = _mm256_add_epi16(Maddubs4(cv[4], b.q + 16), Maddubs4(cv[5], b.q + 20));
          const __m256i b1 = _mm256_add_epi16(Maddubs4(cv[6], b.q + 24), Maddubs4(cv[7], b.q + 28));
          // sc_0 hs_0 + sc_1 hs_1 (|hs| <= 16 * 127 fits int16), times 32: the zero-point term.
          const __m256i hpair = _mm256_set1_epi32(static_cast<int32_t>(
              (static_cast<uint32_t>(hs[1]) << 16) | (static_cast<uint32_t>(hs[0]) & 0xFFFFu)));
          const __m256i zterm = _mm256_slli_epi32(_mm256_madd_epi16(sc01, hpair), 5);
          const __m256i ps = _mm256_sub_epi32(
              _mm256_add_epi32(
                  _mm256_add_epi32(_mm256_madd_epi16(a0, sc0), _mm256_madd_epi16(a1, sc0)),
                  _mm256_add_epi32(_mm256_madd_epi16(b0, sc1), _mm256_madd_epi16(b1, sc1))),
              zterm);
          accs[hh][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ps), _mm256_set1_ps(b.d), accs[hh][t]);
        }
      }
    }
    for (int hh = 0; hh < H; ++hh) {
      const __m256 d = LoadHalf8(p + 3328 + 16 * (h0 + hh));
      for (int t = 0; t < T; ++t) acc[hh][t] = _mm256_fmadd_ps(d, accs[hh][t], acc[hh][t]);
    }
  }
  for (int hh = 0; hh < H; ++hh)
    for (int t = 0; t < T; ++t) out[hh * T + t] = acc[hh][t];
}

template <bool kQ4>
void Run(const MatmulArgs& a, const KqHeader& hd, int64_t r0, int64_t r1) {
  Ctx c{&a, a.w + kKqHeaderBytes, hd.sblocks, a.x_q8->blocks_per_row, nullptr};
  thread_local std::vector<int32_t> half_sums;
  if constexpr (!kQ4) {
    IlHalfSums(*a.x_q8, 0, a.n_tokens, &half_sums);
    c.half_sums = half_sums.data();
  }
  alignas(32) float lanes[8];
  for (int64_t g = r0 / kKqRows; g * kKqRows < r1; ++g) {
    // Stores rows [max(r0, first), min(r1, first + 8)) of half h from v.
    auto store = [&](__m256 v, int h, int64_t t) {
      const int64_t first = g * kKqRows + 8 * h;
      const int64_t lo = std::max(r0, first), hi = std::min(r1, first + 8);
      _mm256_store_ps(lanes, v);
      for (int64_t r = lo; r < hi; ++r) a.y[t * a.ldy + r] = lanes[r - first];
    };
    // Halves [h0, h0 + H) of the group for tokens [t, t + T).
    auto tile = [&]<int T, int H>(int h0, int64_t t) {
      __m256 out[T * H];
      if constexpr (kQ4) {
        HalvesQ4K<T, H>(c, g, h0, t, out);
      } else {
        HalvesQ6K<T, H>(c, g, h0, t, out);
      }
      for (int hh = 0; hh < H; ++hh)
        for (int i = 0; i < T; ++i) store(out[hh * T + i], h0 + hh, t + i);
    };
    const bool need0 = r0<g * kKqRows + 8, need1 = r1> g * kKqRows + 8;
    if (need0 && need1) {  // one pass over both halves at n = 1; token pairs per half
      int64_t t = 0;
      for (int h = 0; h < 2 && a.n_tokens >= 2; ++h) {
        for (t = 0; t + 2 <= a.n_tokens; t += 2) tile.template operator()<2, 1>(h, t);
      }
      if (t < a.n_tokens) tile.template operator()<1, 2>(0, t);
    } else {
      const int h = need0 ? 0 : 1;
      int64_t t = 0;
      for (; t + 2 <= a.n_tokens; t += 2) tile.template operator()<2, 1>(h, t);
      for (; t < a.n_tokens; ++t) tile.template operator()<1, 1>(h, t);
    }
  }
}

}  // namespace

void KquantRunAvx2(const MatmulArgs& a, int64_t r0, int64_t r1) {
  KqHeader h;
  std::memcpy(&h, a.w, sizeof h);
  if (h.type == KqType::kQ4K) {
    Run<true>(a, h, r0, r1);
  } else {
    Run<false>(a, h, r0, r1);
  }
}

}  // namespace lowbit::kernels
