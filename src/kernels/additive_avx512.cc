// AQLM kernels, AVX-512 level: one 16-row block per gather, the LUT built 16 codewords at a time.
// Same operations per row as the scalar reference (additive_kernels.h). The int16-LUT path looks
// 32 rows up at once with four vpermi2w over the slot's 256-entry table held in 8 registers.
#include "kernels/simd_avx512.h"

#include <vector>

#include "kernels/additive_kernels.h"

namespace lowbit::kernels {
namespace {

// Local min: no standard-library template is instantiated with this file's ISA flags.
inline int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// Products are kept as separate roundings (GCC contracts mul + add into FMA under -mfma for C++),
// so this level adds exactly what the scalar reference adds.
template <class T>
inline T NoContract(T v) {
  asm("" : "+x"(v));
  return v;
}

void BuildLutAvx512(const AqlmPacked& p, const uint8_t* base, const float* x, int64_t n_tokens,
                    float* lut) {
  const int64_t K = p.k(), slots = p.slots();
  const float* ct = p.codebook(base);  // (M, g, K)
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t j = 0; j < p.groups; ++j) {
      const int64_t n_j = Min(p.g, p.cols - j * p.g);
      const float* xg = x + t * p.cols + j * p.g;
      for (int m = 0; m < p.m; ++m) {
        float* out = lut + (t * slots + j * p.m + m) * K;
        const float* cm = ct + m * p.g * K;
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
          __m512 acc = _mm512_setzero_ps();
          for (int64_t i = 0; i < n_j; ++i) {
            acc = _mm512_add_ps(acc, NoContract(_mm512_mul_ps(_mm512_set1_ps(xg[i]), _mm512_loadu_ps(cm + i * K + k))));
          }
          _mm512_storeu_ps(out + k, acc);
        }
        for (; k < K; ++k) {
          float acc = 0.0f;
          for (int64_t i = 0; i < n_j; ++i) acc += NoContract(xg[i] * cm[i * K + k]);
          out[k] = acc;
        }
      }
    }
  }
}

}  // namespace

void AqlmRowRangeAvx512(const MatmulArgs& args, int64_t r0, int64_t r1) {
  const AqlmPacked p = ReadAqlmPacked(args.w);
  const int64_t K = p.k(), slots = p.slots();
  const float* scales = p.scales(args.w);
  const float* cb = p.codebook(args.w);
  // Partial sums of up to kSuper row blocks x 16 tokens, carried across slot chunks (a float
  // store/load is exact, so chunking keeps the scalar reference's order).
  // 16 KiB of partial sums (L1): 256 row blocks at one token, 16 at 16 tokens, so one pass over
  // the LUT serves a whole task.
  constexpr int64_t kAccFloats = 4096;
  alignas(64) float acc[kAccFloats];
  for (int64_t t0 = 0; t0 < args.n_tokens; t0 += kAqlmTokenChunk) {
    const int64_t nt = Min(kAqlmTokenChunk, args.n_tokens - t0);
    const int64_t kSuper = kAccFloats / (nt * kAqlmRowBlock);
    const float* x = args.x + t0 * p.cols;
    const float* lut = p.b <= 8 ? AqlmLuts(p, args.w, x, nt, &BuildLutAvx512) : nullptr;
    // Slots per chunk: the LUT slice of a chunk (nt * chunk * K floats) stays about 128 KiB.
    const int64_t chunk = p.b <= 8 ? (32768 / (nt * K) > 4 ? 32768 / (nt * K) : 4) : slots;
    const int64_t rb_end = (r1 + kAqlmRowBlock - 1) / kAqlmRowBlock;
    for (int64_t sb = r0 / kAqlmRowBlock; sb < rb_end; sb += kSuper) {
      const int64_t nb = Min(kSuper, rb_end - sb);
      for (int64_t i = 0; i < nb * nt * kAqlmRowBlock; ++i) acc[i] = 0.0f;
      for (int64_t s0 = 0; s0 < slots; s0 += chunk) {
        const int64_t s1 = Min(slots, s0 + chunk);
        for (int64_t b = 0; b < nb; ++b) {
          const uint8_t* codes = p.codes(args.w, sb + b);
          for (int64_t t = 0; t < nt; ++t) {
            float* at = acc + (b * nt + t) * kAqlmRowBlock;
            __m512 a = _mm512_load_ps(at);
            if (p.b <= 8) {
              const float* lt = lut + t * slots * K;
              for (int64_t s = s0; s < s1; ++s) {
                const __m512i idx = _mm512_cvtepu8_epi32(
                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + s * 16)));
                a = _mm512_add_ps(a, _mm512_i32gather_ps(idx, lt + s * K, 4));
              }
            } else {
              const __m512i gv = _mm512_set1_epi32(p.g);
              for (int64_t s = s0; s < s1; ++s) {
                const int64_t j = s / p.m, m = s % p.m;
                const int64_t n_j = Min(p.g, p.cols - j * p.g);
                const __m512i idx = _mm512_mullo_epi32(
                    _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + s * 32))), gv);
                const float* cm = cb + m * K * p.g;
                const float* xg = x + t * p.cols + j * p.g;
                __m512 term = _mm512_setzero_ps();
                for (int64_t i = 0; i < n_j; ++i) {
                  term = _mm512_add_ps(term, NoContract(_mm512_mul_ps(_mm512_set1_ps(xg[i]), _mm512_i32gather_ps(idx, cm + i, 4))));
                }
                a = _mm512_add_ps(a, term);
              }
            }
            _mm512_store_ps(at, a);
          }
        }
      }
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t rb = sb + b;
        const __m512 sv = _mm512_loadu_ps(scales + rb * kAqlmRowBlock);
        for (int64_t t = 0; t < nt; ++t) {
          float* at = acc + (b * nt + t) * kAqlmRowBlock;
          _mm512_store_ps(at, _mm512_mul_ps(_mm512_load_ps(at), sv));
          float* y = args.y + (t0 + t) * args.ldy;
          for (int64_t lane = 0; lane < kAqlmRowBlock; ++lane) {
            const int64_t r = rb * kAqlmRowBlock + lane;
            if (r >= r0 && r < r1) y[r] = at[lane];
          }
        }
      }
    }
  }
}

namespace {

// QuantizeAqlmLut (additive_lut16.cc) with the same operations: exact max |L|, one f32 product and
// a round-to-nearest-even conversion per entry.
void QuantizeLutAvx512(const float* lut, int64_t n_tokens, int64_t slots, int64_t k, int16_t* q,
                       float* s) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 big = _mm512_set1_ps(3.40282347e38f);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* l = lut + t * slots * k;
    int16_t* qt = q + t * slots * 256;
    const int64_t n = slots * k;
    __m512 mx = _mm512_setzero_ps();
    __mmask16 bad = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512 a = _mm512_and_ps(_mm512_loadu_ps(l + i), abs_mask);
      bad |= _mm512_cmp_ps_mask(a, big, _CMP_NLE_UQ);  // NaN or Inf
      mx = _mm512_max_ps(mx, a);
    }
    float max_abs = _mm512_reduce_max_ps(mx);
    bool finite = bad == 0;
    for (; i < n; ++i) {
      const float a = l[i] < 0 ? -l[i] : l[i];
      if (!(a <= 3.40282347e38f)) finite = false;
      max_abs = a > max_abs ? a : max_abs;
    }
    for (int64_t j = 0; j < slots * 256; j += 32) _mm512_storeu_si512(qt + j, _mm512_setzero_si512());
    if (!finite) {
      s[t] = __builtin_nanf("");
      continue;
    }
    if (max_abs == 0.0f) {
      s[t] = 0.0f;
      continue;
    }
    s[t] = max_abs / 32767.0f;
    const __m512 inv = _mm512_set1_ps(32767.0f / max_abs);
    const __m512i lim = _mm512_set1_epi32(32767);
    for (int64_t sl = 0; sl < slots; ++sl) {
      for (int64_t c = 0; c < k; c += 16) {
        const __mmask16 m = k - c >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (k - c)) - 1u);
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, l + sl * k + c), inv));
        v = _mm512_max_epi32(_mm512_min_epi32(v, lim), _mm512_sub_epi32(_mm512_setzero_si512(), lim));
        _mm256_mask_storeu_epi16(qt + sl * 256 + c, m, _mm512_cvtepi32_epi16(v));
      }
    }
  }
}

// 32 int16 table entries for 32 codes (bits 0..7 of each word of idx) from the 256-entry table in
// tb[0..7] (tb[2h], tb[2h + 1] hold entries 64h .. 64h + 63).
inline __m512i Lookup256(const __m512i* tb, __m512i idx) {
  const __m512i q0 = _mm512_permutex2var_epi16(tb[0], idx, tb[1]);
  const __m512i q1 = _mm512_permutex2var_epi16(tb[2], idx, tb[3]);
  const __m512i q2 = _mm512_permutex2var_epi16(tb[4], idx, tb[5]);
  const __m512i q3 = _mm512_permutex2var_epi16(tb[6], idx, tb[7]);
  const __mmask32 b6 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(0x40));
  const __mmask32 b7 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(0x80));
  const __m512i lo = _mm512_mask_blend_epi16(b6, q0, q1);
  const __m512i hi = _mm512_mask_blend_epi16(b6, q2, q3);
  return _mm512_mask_blend_epi16(b7, lo, hi);
}

}  // namespace

void AqlmLut16RowRangeAvx512(const MatmulArgs& args, int64_t r0, int64_t r1) {
  const AqlmPacked p = ReadAqlmPacked(args.w);
  const int64_t K = p.k(), slots = p.slots(), rows_pad = p.row_blocks * kAqlmRowBlock;
  const float* scales = p.scales(args.w);
  const uint8_t* codes = args.w + p.codes_offset;
  // Per-thread scratch, reused across calls (kernels allocate nothing in the steady state).
  thread_local std::vector<int16_t> q;
  thread_local std::vector<int32_t> acc;
  const int64_t rb0 = r0 / kAqlmLut16Rows * kAqlmLut16Rows;  // r0 is a multiple of 32 (granule)
  const int64_t nb = (r1 - rb0 + kAqlmLut16Rows - 1) / kAqlmLut16Rows;
  for (int64_t t0 = 0; t0 < args.n_tokens; t0 += kAqlmTokenChunk) {
    const int64_t nt = Min(kAqlmTokenChunk, args.n_tokens - t0);
    const float* x = args.x + t0 * p.cols;
    const float* lut = AqlmLuts(p, args.w, x, nt, &BuildLutAvx512);
    if (q.size() < static_cast<size_t>(nt * slots * 256)) q.resize(static_cast<size_t>(nt * slots * 256));
    if (acc.size() < static_cast<size_t>(nt * nb * kAqlmLut16Rows)) {
      acc.resize(static_cast<size_t>(nt * nb * kAqlmLut16Rows));
    }
    float s[kAqlmTokenChunk];
    QuantizeLutAvx512(lut, nt, slots, K, q.data(), s);
    for (int64_t i = 0; i < nt * nb * kAqlmLut16Rows; i += 16) {
      _mm512_storeu_si512(acc.data() + i, _mm512_setzero_si512());
    }
    for (int64_t sl = 0; sl < slots; ++sl) {
      const uint8_t* cs = codes + sl * rows_pad + rb0;
      for (int64_t t = 0; t < nt; ++t) {
        const int16_t* tq = q.data() + (t * slots + sl) * 256;
        __m512i tb[8];
        for (int h = 0; h < 8; ++h) tb[h] = _mm512_loadu_si512(tq + 32 * h);
        int32_t* at = acc.data() + t * nb * kAqlmLut16Rows;
        for (int64_t b = 0; b < nb; ++b) {
          const __m512i idx = _mm512_cvtepu8_epi16(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cs + b * kAqlmLut16Rows)));
          const __m512i v = Lookup256(tb, idx);
          int32_t* ab = at + b * kAqlmLut16Rows;
          _mm512_storeu_si512(ab, _mm512_add_epi32(_mm512_loadu_si512(ab),
                                                   _mm512_cvtepi16_epi32(_mm512_castsi512_si256(v))));
          _mm512_storeu_si512(ab + 16, _mm512_add_epi32(_mm512_loadu_si512(ab + 16),
                                                        _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(v, 1))));
        }
      }
    }
    for (int64_t t = 0; t < nt; ++t) {
      const int32_t* at = acc.data() + t * nb * kAqlmLut16Rows;
      float* y = args.y + (t0 + t) * args.ldy;
      const __m512 st = _mm512_set1_ps(s[t]);
      for (int64_t r = rb0; r < r1; r += 16) {
        const __m512 v = _mm512_mul_ps(
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(at + (r - rb0))), st),
            _mm512_loadu_ps(scales + r));
        const int64_t lo = r < r0 ? r0 - r : 0;
        const int64_t hi = r1 - r < 16 ? r1 - r : 16;
        const __mmask16 m = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
        _mm512_mask_storeu_ps(y + r, m, v);
      }
    }
  }
}

}  // namespace lowbit::kernels
