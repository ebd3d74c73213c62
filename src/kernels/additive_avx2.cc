// AQLM kernels, AVX2 level: 8 rows per gather (two halves of each 16-row block), the LUT built 8
// codewords at a time. Same operations per row as the scalar reference (additive_kernels.h).
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

void BuildLutAvx2(const AqlmPacked& p, const uint8_t* base, const float* x, int64_t n_tokens,
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
        for (; k + 8 <= K; k += 8) {
          __m256 acc = _mm256_setzero_ps();
          for (int64_t i = 0; i < n_j; ++i) {
            acc = _mm256_add_ps(acc, NoContract(_mm256_mul_ps(_mm256_set1_ps(xg[i]), _mm256_loadu_ps(cm + i * K + k))));
          }
          _mm256_storeu_ps(out + k, acc);
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

void AqlmRowRangeAvx2(const MatmulArgs& args, int64_t r0, int64_t r1) {
  const AqlmPacked p = ReadAqlmPacked(args.w);
  const int64_t K = p.k(), slots = p.slots();
  const float* scales = p.scales(args.w);
  const float* cb = p.codebook(args.w);
  // Partial sums carried across slot chunks, as in the AVX-512 level (exact float store/load).
  // 16 KiB of partial sums (L1): 256 row blocks at one token, 16 at 16 tokens, so one pass over
  // the LUT serves a whole task.
  constexpr int64_t kAccFloats = 4096;
  alignas(32) float acc[kAccFloats];
  for (int64_t t0 = 0; t0 < args.n_tokens; t0 += kAqlmTokenChunk) {
    const int64_t nt = Min(kAqlmTokenChunk, args.n_tokens - t0);
    const int64_t kSuper = kAccFloats / (nt * kAqlmRowBlock);
    const float* x = args.x + t0 * p.cols;
    const float* lut = p.b <= 8 ? AqlmLuts(p, args.w, x, nt, &BuildLutAvx2) : nullptr;
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
            __m256 acc0 = _mm256_load_ps(at), acc1 = _mm256_load_ps(at + 8);
            if (p.b <= 8) {
              const float* lt = lut + t * slots * K;
              for (int64_t s = s0; s < s1; ++s) {
                const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + s * 16));
                const float* ls = lt + s * K;
                acc0 = _mm256_add_ps(acc0, _mm256_i32gather_ps(ls, _mm256_cvtepu8_epi32(c), 4));
                acc1 = _mm256_add_ps(acc1, _mm256_i32gather_ps(ls, _mm256_cvtepu8_epi32(_mm_srli_si128(c, 8)), 4));
              }
            } else {
              const __m256i gv = _mm256_set1_epi32(p.g);
              for (int64_t s = s0; s < s1; ++s) {
                const int64_t j = s / p.m, m = s % p.m;
                const int64_t n_j = Min(p.g, p.cols - j * p.g);
                const __m128i c0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + s * 32));
                const __m128i c1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + s * 32 + 16));
                const __m256i i0 = _mm256_mullo_epi32(_mm256_cvtepu16_epi32(c0), gv);
                const __m256i i1 = _mm256_mullo_epi32(_mm256_cvtepu16_epi32(c1), gv);
                const float* cm = cb + m * K * p.g;
                const float* xg = x + t * p.cols + j * p.g;
                __m256 term0 = _mm256_setzero_ps(), term1 = _mm256_setzero_ps();
                for (int64_t i = 0; i < n_j; ++i) {
                  const __m256 xi = _mm256_set1_ps(xg[i]);
                  term0 = _mm256_add_ps(term0, NoContract(_mm256_mul_ps(xi, _mm256_i32gather_ps(cm + i, i0, 4))));
                  term1 = _mm256_add_ps(term1, NoContract(_mm256_mul_ps(xi, _mm256_i32gather_ps(cm + i, i1, 4))));
                }
                acc0 = _mm256_add_ps(acc0, term0);
                acc1 = _mm256_add_ps(acc1, term1);
              }
            }
            _mm256_store_ps(at, acc0);
            _mm256_store_ps(at + 8, acc1);
          }
        }
      }
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t rb = sb + b;
        const __m256 s0v = _mm256_loadu_ps(scales + rb * kAqlmRowBlock);
        const __m256 s1v = _mm256_loadu_ps(scales + rb * kAqlmRowBlock + 8);
        for (int64_t t = 0; t < nt; ++t) {
          float* at = acc + (b * nt + t) * kAqlmRowBlock;
          _mm256_store_ps(at, _mm256_mul_ps(_mm256_load_ps(at), s0v));
          _mm256_store_ps(at + 8, _mm256_mul_ps(_mm256_load_ps(at + 8), s1v));
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
