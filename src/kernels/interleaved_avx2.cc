// AVX2 level of the row-interleaved layout (kernels/interleaved.h): each 64-byte code vector of a
// 16-row group is two ymm halves (rows 0-7, rows 8-15); the 4-code dot of a row is pmaddubsw
// (u8 codes x s8 activations -> int16 pairs) + pmaddwd with ones (-> int32). pmaddubsw saturates
// at 32767, so only layouts whose codes are <= 128 get a kernel here (4- and 6-bit codes, mxfp4's
// table, the FP6 lut6 tables through four vpshufb pieces); 8-bit codes whose c - zero fits an
// int8 go through |w| x sign(q, w) instead (Dot4Signed); the FP8 lut8 tables keep the f32
// kernels. Same integer sums and float operations per lane as the AVX-512 level
// (interleaved.h), so both give the same bits.
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/interleaved.h"
#include "kernels/simd_avx2.h"

namespace lowbit::kernels {
namespace {

#define IL_INLINE LOWBIT_SIMD_INLINE

using avx2::Bcast32;
using avx2::DecodeCodes;

IL_INLINE __m256i Dot4(__m256i codes, const int8_t* q) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(codes, Bcast32(q)), _mm256_set1_epi16(1));
}

// 8-bit codes: w = c - zero as int8 (the selector checks -128 <= w <= 127), then |w| (u8, at most
// 128) times q with w's sign (vpsignb): pairs reach 2 * 128 * 127 < 32768, so pmaddubsw never
// saturates. Gives sum w q directly (no -zero * sum q term).
IL_INLINE __m256i Dot4Signed(__m256i abs_w, __m256i w, const int8_t* q) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(abs_w, _mm256_sign_epi8(Bcast32(q), w)),
                           _mm256_set1_epi16(1));
}

// 64-entry byte lookup (lut6): vpshufb reads index bits 0..3 in each 16-entry piece t[k]; bits
// 4 and 5 of the code (moved to bit 7 by 16-bit shifts, which only spill into the low bits of the
// next byte: codes are < 64) pick the piece through vpblendvb.
IL_INLINE __m256i Lookup64(__m256i c, const __m256i* t) {
  const __m256i b4 = _mm256_slli_epi16(c, 3), b5 = _mm256_slli_epi16(c, 2);
  const __m256i p01 =
      _mm256_blendv_epi8(_mm256_shuffle_epi8(t[0], c), _mm256_shuffle_epi8(t[1], c), b4);
  const __m256i p23 =
      _mm256_blendv_epi8(_mm256_shuffle_epi8(t[2], c), _mm256_shuffle_epi8(t[3], c), b4);
  return _mm256_blendv_epi8(p01, p23, b5);
}

template <int kSegs, IlScale kScale, bool kSigned, int kLut6>
IL_INLINE void LoadScales(const uint8_t* p, const IlDesc& d, __m256* s) {
  for (int seg = 0; seg < kSegs; ++seg) {
    if constexpr (kScale == IlScale::kF16) {
      s[seg] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32 * seg)));
      if constexpr (kLut6 != 0) s[seg] = _mm256_mul_ps(s[seg], _mm256_set1_ps(d.scale_unit));
    } else {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 16 * seg));
      const __m256i x = kSigned ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
      const __m256i e = _mm256_sub_epi32(x, _mm256_set1_epi32(d.bias));
      // 2^e for e in [-149, 127]: normal e >= -126 from the exponent field; below, 2^(e + 64)
      // (normal) times 2^-64 (exact: the product is the representable subnormal 2^e).
      const __m256i lowe = _mm256_cmpgt_epi32(_mm256_set1_epi32(-126), e);
      const __m256i e2 = _mm256_add_epi32(e, _mm256_and_si256(lowe, _mm256_set1_epi32(64)));
      __m256 v =
          _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e2, _mm256_set1_epi32(127)), 23));
      v = _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(0x1p-64f)),
                           _mm256_castsi256_ps(lowe));
      if (d.nan_byte >= 0) {
        const __m256i nan =
            _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(b), _mm256_set1_epi32(d.nan_byte));
        v = _mm256_blendv_ps(v, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()),
                             _mm256_castsi256_ps(nan));
      }
      s[seg] = v;
    }
  }
}

struct IlCtx {
  const MatmulArgs* a;
  const IlDesc* d;
  const uint8_t* base;
  int64_t units;
  int64_t unit_bytes;
  const int32_t* half_sums;
};

// Rows 8h .. 8h + 7 of groups g .. g + kG - 1 (side by side, unit u of each in turn: kIlStreams
// in interleaved.h), tokens [t0, t0 + T); out[gi * T + t].
template <int kBits, bool kLut, int kLut6, int kSegs, IlScale kScale, bool kSigned, bool kMin,
          int kUB, int T, int kG = 1>
IL_INLINE void Half(const IlCtx& c, int64_t g, int h, int64_t t0, __m256* out) {
  const MatmulArgs& a = *c.a;
  const IlDesc& d = *c.d;
  const __m256i lut =
      kLut ? _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d.lut16)))
           : _mm256_setzero_si256();
  [[maybe_unused]] __m256i tl[4], th[4];
  if constexpr (kLut6 != 0) {
    for (int k = 0; k < 4; ++k) {
      tl[k] = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(d.lut64 + 16 * k)));
      th[k] = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(d.lut64_hi + 16 * k)));
    }
  }
  const int64_t bpr = a.x_q8->blocks_per_row;
  __m256 acc_g[kG][T];
  for (int gi = 0; gi < kG; ++gi)
    for (int t = 0; t < T; ++t) acc_g[gi][t] = _mm256_setzero_ps();
  constexpr int64_t kCodeBytes = 64 * kBits;
  constexpr int64_t kScaleBytes = kSegs * 16 * (kScale == IlScale::kF16 ? 2 : 1);
  const int64_t fh = kScale == IlScale::kF16 ? 16 * h : 8 * h;  // scale bytes of this half
  for (int64_t u = 0; u < c.units; ++u) {
    for (int gi = 0; gi < kG; ++gi) {
      const uint8_t* p = c.base + ((g + gi) * c.units + u) * c.unit_bytes;
      __m256* acc = acc_g[gi];
      // The first half's pass streams the group from DRAM: every line kIlPrefetchBytes ahead, into
      // L2 (interleaved.h says why). The second half finds the group in L2.
      if (h == 0) {
        const char* ahead = reinterpret_cast<const char*>(p + kIlPrefetchBytes);
        for (int64_t line = 0; line < c.unit_bytes; line += 64)
          _mm_prefetch(ahead + line, _MM_HINT_T1);
      }
      // One set of scale (and min) fields for the unit's kUB blocks of 32.
      __m256 s[kSegs];
      LoadScales<kSegs, kScale, kSigned, kLut6>(p + kUB * kCodeBytes + fh, d, s);
      [[maybe_unused]] __m256 mn;
      if constexpr (kMin) {
        mn = _mm256_cvtph_ps(_mm_loadu_si128(
            reinterpret_cast<const __m128i*>(p + kUB * kCodeBytes + kScaleBytes + 16 * h)));
      }
      // The last unit of a row may hold fewer than kUB blocks of activations.
      const int64_t n_sub = kUB == 1 ? 1 : std::min<int64_t>(kUB, bpr - u * kUB);
      for (int64_t k = 0; k < n_sub; ++k) {
        __m256i cv[8];
        [[maybe_unused]] __m256i aw[8];
        if constexpr (kBits == 8) {
          const __m256i zero = _mm256_set1_epi8(static_cast<char>(d.zero));
          for (int v = 0; v < 8; ++v) {
            cv[v] = _mm256_sub_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                        p + k * kCodeBytes + 64 * v + 32 * h)),
                                    zero);
            aw[v] = _mm256_abs_epi8(cv[v]);
          }
        } else {
          DecodeCodes<kBits, kLut>(p + k * kCodeBytes + 32 * h, lut, cv);
        }
        [[maybe_unused]] __m256i ch[8];
        if constexpr (kLut6 != 0) {
          for (int v = 0; v < 8; ++v) {
            if constexpr (kLut6 == 2) ch[v] = Lookup64(cv[v], th);
            cv[v] = Lookup64(cv[v], tl);
          }
        }
        for (int t = 0; t < T; ++t) {
          const Q8Block32& b = a.x_q8->blocks[static_cast<size_t>((t0 + t) * bpr + u * kUB + k)];
          const __m256 dx = _mm256_set1_ps(b.d);
          if constexpr (kBits == 8) {
            static_assert(kLut6 == 0 && !kLut);
            constexpr int kPerSeg = 8 / kSegs;
            for (int seg = 0; seg < kSegs; ++seg) {
              __m256i i0 = _mm256_setzero_si256(), i1 = _mm256_setzero_si256();
              for (int v = seg * kPerSeg; v < (seg + 1) * kPerSeg; v += 2) {
                i0 = _mm256_add_epi32(i0, Dot4Signed(aw[v], cv[v], b.q + 4 * v));
                i1 = _mm256_add_epi32(i1, Dot4Signed(aw[v + 1], cv[v + 1], b.q + 4 * v + 4));
              }
              const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(i0, i1)), dx);
              acc[t] = _mm256_fmadd_ps(f, s[seg], acc[t]);
            }
          } else if constexpr (kSegs == 1) {
            __m256i i0 = _mm256_set1_epi32(-d.zero * b.sum), i1 = _mm256_setzero_si256();
            for (int v = 0; v < 8; v += 2) {
              i0 = _mm256_add_epi32(i0, Dot4(cv[v], b.q + 4 * v));
              i1 = _mm256_add_epi32(i1, Dot4(cv[v + 1], b.q + 4 * v + 4));
            }
            if constexpr (kLut6 == 2) {  // + 16 * sum hi * q (interleaved.h), exact
              __m256i h0 = _mm256_setzero_si256(), h1 = _mm256_setzero_si256();
              for (int v = 0; v < 8; v += 2) {
                h0 = _mm256_add_epi32(h0, Dot4(ch[v], b.q + 4 * v));
                h1 = _mm256_add_epi32(h1, Dot4(ch[v + 1], b.q + 4 * v + 4));
              }
              i1 = _mm256_add_epi32(i1, _mm256_slli_epi32(_mm256_add_epi32(h0, h1), 4));
            }
            const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(i0, i1)), dx);
            acc[t] = _mm256_fmadd_ps(f, s[0], acc[t]);
          } else {
            const int32_t* hs = c.half_sums + ((t0 + t) * c.units + u) * 2;
            __m256i i0 = _mm256_set1_epi32(-d.zero * hs[0]);
            __m256i i1 = _mm256_set1_epi32(-d.zero * hs[1]);
            for (int v = 0; v < 4; ++v) {
              i0 = _mm256_add_epi32(i0, Dot4(cv[v], b.q + 4 * v));
              i1 = _mm256_add_epi32(i1, Dot4(cv[v + 4], b.q + 16 + 4 * v));
            }
            if constexpr (kLut6 == 2) {
              __m256i h0 = _mm256_setzero_si256(), h1 = _mm256_setzero_si256();
              for (int v = 0; v < 4; ++v) {
                h0 = _mm256_add_epi32(h0, Dot4(ch[v], b.q + 4 * v));
                h1 = _mm256_add_epi32(h1, Dot4(ch[v + 4], b.q + 16 + 4 * v));
              }
              i0 = _mm256_add_epi32(i0, _mm256_slli_epi32(h0, 4));
              i1 = _mm256_add_epi32(i1, _mm256_slli_epi32(h1, 4));
            }
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(i0), dx), s[0], acc[t]);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(i1), dx), s[1], acc[t]);
          }
          if constexpr (kMin) {
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(static_cast<float>(b.sum) * b.d), mn, acc[t]);
          }
        }
      }  // k
    }  // gi
  }
  for (int gi = 0; gi < kG; ++gi)
    for (int t = 0; t < T; ++t) out[gi * T + t] = acc_g[gi][t];
}

template <int kBits, bool kLut, int kLut6, int kSegs, IlScale kScale, bool kSigned, bool kMin,
          int kUB = 1>
void Run(const MatmulArgs& a, int64_t r0, int64_t r1) {
  IlHeader hd;
  std::memcpy(&hd, a.w, sizeof hd);
  IlCtx c{&a, &hd.desc, a.w + kIlHeaderBytes, hd.units, hd.desc.UnitBytes(), nullptr};
  thread_local std::vector<int32_t> half_sums;
  if constexpr (kSegs == 2) {
    IlHalfSums(*a.x_q8, 0, a.n_tokens, &half_sums);
    c.half_sums = half_sums.data();
  }
  alignas(32) float lanes[8];
  int64_t r8 = r0 / 8;
  // One token: kIlStreams whole groups side by side, both halves (the second finds them in L2);
  // the rest as below. Same bits either way. Not for 8-bit codes: their 4 groups (750 KB at
  // 4096 columns) measured 3-5 points slower at 2 threads (q8_0 77 -> 72% of the DRAM probe),
  // while 4- to 6-bit formats gained 3-7 (docs/kernels.md, "Streams per thread").
  for (; kBits != 8 && a.n_tokens == 1 && r8 * 8 >= r0 && r8 % 2 == 0 &&
         (r8 + 2 * kIlStreams) * 8 <= r1;
       r8 += 2 * kIlStreams) {
    for (int h = 0; h < 2; ++h) {
      __m256 out[kIlStreams];
      Half<kBits, kLut, kLut6, kSegs, kScale, kSigned, kMin, kUB, 1, kIlStreams>(c, r8 / 2, h, 0,
                                                                                 out);
      for (int gi = 0; gi < kIlStreams; ++gi) {
        _mm256_store_ps(lanes, out[gi]);
        for (int64_t r = 0; r < 8; ++r) a.y[(r8 + 2 * gi + h) * 8 + r] = lanes[r];
      }
    }
  }
  for (; r8 * 8 < r1; ++r8) {
    const int64_t g = r8 / 2;
    const int h = static_cast<int>(r8 % 2);
    const int64_t lo = std::max(r0, r8 * 8), hi = std::min(r1, r8 * 8 + 8);
    auto store = [&](__m256 v, int64_t t) {
      _mm256_store_ps(lanes, v);
      for (int64_t r = lo; r < hi; ++r) a.y[t * a.ldy + r] = lanes[r - r8 * 8];
    };
    int64_t t = 0;
    for (; t + 2 <= a.n_tokens; t += 2) {
      __m256 out[2];
      Half<kBits, kLut, kLut6, kSegs, kScale, kSigned, kMin, kUB, 2>(c, g, h, t, out);
      store(out[0], t);
      store(out[1], t + 1);
    }
    for (; t < a.n_tokens; ++t) {
      __m256 out[1];
      Half<kBits, kLut, kLut6, kSegs, kScale, kSigned, kMin, kUB, 1>(c, g, h, t, out);
      store(out[0], t);
    }
  }
}

}  // namespace

RowRangeFn InterleavedAvx2Fn(const IlDesc& d) {
  // The two-table (nf4) and f32-scale layouts have an AVX-512 VBMI kernel only.
  if (d.lut8 != 0 || d.lut2 != 0 || d.scale == IlScale::kF32) return nullptr;
  if (d.bits == 8) {
    // Codes as int8 (Dot4Signed): q8_0 and int8 (zero 128), mxint8 (128), bfp8 (127, codes <= 254).
    if (d.has_min != 0 || d.lut != 0 || d.zero < 0 || d.zero > 128 || d.max_code - d.zero > 127) {
      return nullptr;
    }
    // mx E8M0 scales (mxint8): each half pays the exponent-to-float decode and the NaN blend
    // here, and the per-block se.int8 kernel measured faster (57-59% vs 49-53% of DRAM at 1-2
    // threads, 4096x11008, 2026-12-06 VM), so it keeps that kernel.
    if (d.nan_byte >= 0) return nullptr;
    const bool sg8 = d.exp_signed != 0;
    if (d.unit_blocks == 4) {
      return d.scale == IlScale::kF16 && d.segs == 1
                 ? &Run<8, false, 0, 1, IlScale::kF16, false, false, 4>
                 : nullptr;
    }
    if (d.scale == IlScale::kF16) {
      return d.segs == 1 ? &Run<8, false, 0, 1, IlScale::kF16, false, false> : nullptr;
    }
    if (d.segs == 1)
      return sg8 ? &Run<8, false, 0, 1, IlScale::kExp, true, false>
                 : &Run<8, false, 0, 1, IlScale::kExp, false, false>;
    if (d.segs == 2)
      return sg8 ? &Run<8, false, 0, 2, IlScale::kExp, true, false>
                 : &Run<8, false, 0, 2, IlScale::kExp, false, false>;
    return nullptr;
  }
  if (d.lut6 != 0) {
    // pmaddubsw pairs: lut6 1 holds u <= 2 * 60 (E2M3), lut6 2 lo <= 15 and hi <= 56 (E3M2).
    for (int c = 0; c < 64; ++c) {
      if (d.lut64[c] > 128 || d.lut64_hi[c] > 128) return nullptr;
    }
    if (d.has_min != 0 || d.lut != 0) return nullptr;
    const bool sg6 = d.exp_signed != 0;
#define IL6_CASE(L6, S, K, SG)                                  \
  if (d.lut6 == L6 && d.segs == S && d.scale == K && sg6 == SG) \
    return &Run<6, false, L6, S, K, SG, false>;
    IL6_CASE(1, 1, IlScale::kExp, false)
    IL6_CASE(1, 2, IlScale::kExp, false)
    IL6_CASE(1, 1, IlScale::kExp, true)
    IL6_CASE(1, 2, IlScale::kExp, true)
    IL6_CASE(2, 1, IlScale::kExp, false)
    IL6_CASE(2, 2, IlScale::kExp, false)
    IL6_CASE(2, 1, IlScale::kExp, true)
    IL6_CASE(2, 2, IlScale::kExp, true)
    IL6_CASE(1, 1, IlScale::kF16, false)
    IL6_CASE(2, 1, IlScale::kF16, false)
#undef IL6_CASE
    return nullptr;
  }
  if (d.lut) {
    for (uint8_t v : d.lut16) {
      if (v > 128) return nullptr;  // pmaddubsw: 2 * 128 * 127 < 32768
    }
  }
  const bool sg = d.exp_signed != 0;
  const bool mn = d.has_min != 0;
  if (d.unit_blocks == 4) {  // int groups of >= 128: fp16 fields once per 4 blocks
    if (d.scale != IlScale::kF16 || d.segs != 1 || d.lut != 0 || d.lut6 != 0) return nullptr;
    if (d.bits == 4)
      return d.has_min ? &Run<4, false, 0, 1, IlScale::kF16, false, true, 4>
                       : &Run<4, false, 0, 1, IlScale::kF16, false, false, 4>;
    return nullptr;
  }
#define IL_CASE(B, L, S, K, SG, M)                                                            \
  if (d.bits == B && (d.lut != 0) == L && d.segs == S && d.scale == K && sg == SG && mn == M) \
    return &Run<B, L, 0, S, K, SG, M>;
  if (d.scale == IlScale::kF16) {
    IL_CASE(4, false, 1, IlScale::kF16, false, false)
    IL_CASE(4, false, 1, IlScale::kF16, false, true)
    IL_CASE(6, false, 1, IlScale::kF16, false, false)
    IL_CASE(5, false, 1, IlScale::kF16, false, false)
    IL_CASE(6, false, 1, IlScale::kF16, false, true)
    IL_CASE(5, false, 1, IlScale::kF16, false, true)
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
  IL_CASE(5, false, 1, IlScale::kExp, true, false)
  IL_CASE(6, false, 2, IlScale::kExp, true, false)
  IL_CASE(5, false, 2, IlScale::kExp, true, false)
  IL_CASE(6, false, 1, IlScale::kExp, false, false)
  IL_CASE(5, false, 1, IlScale::kExp, false, false)
  IL_CASE(6, false, 2, IlScale::kExp, false, false)
  IL_CASE(5, false, 2, IlScale::kExp, false, false)
#undef IL_CASE
  return nullptr;
}

}  // namespace lowbit::kernels
