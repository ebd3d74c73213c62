// AQLM kernels, AVX-512 level: one 16-row block per gather, the LUT built 16 codewords at a time.
// Same operations per row as the scalar reference (additive_kernels.h).
// GCC 12 reports its own _mm512_undefined_* helpers inside the intrinsic headers as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // GCC-only warning group
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

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
  constexpr int64_t kSuper = 32;
  alignas(64) float acc[kSuper * kAqlmTokenChunk * kAqlmRowBlock];
  for (int64_t t0 = 0; t0 < args.n_tokens; t0 += kAqlmTokenChunk) {
    const int64_t nt = Min(kAqlmTokenChunk, args.n_tokens - t0);
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

}  // namespace lowbit::kernels
