// Fused y = x . W^T kernels for additive-codebook weights (format "aqlm", formats/additive.h).
//
// Every (token, row) output is, for the format's definition w[r, jg+i] = s_r * sum_m C_m[k][i]:
//   term(t, j, m, k) = sum_{i = 0 .. n_j - 1} x[t, jg + i] * C_m[k][i]
//       (float32, in increasing i, starting from +0, multiply then add: no FMA contraction;
//        n_j = min(g, cols - jg), so the zero padding of the last group is never read)
//   y[t, r] = (sum over slots (j, m) in order j*M + m of term(t, j, m, code(r, j, m))) * s_r
//       (float32 additions in slot order from +0, then one float32 multiplication).
// b <= 8: term is precomputed for every code of every slot (the per-token lookup table, LUT[slot][k],
// slots * 2^b floats) once per call and token, then each row gathers one entry per slot; vector
// levels gather 8 (AVX2) or 16 (AVX-512) rows at once, lane = row, so every level performs the same
// operations per row and produces the same bits. b > 8 (1x16): a table of 2^16 entries per slot is
// larger than the work it saves, so term is computed directly from the gathered codeword (same
// operation order, same bits).
//
// Repacked layout (built once by RepackAqlm), sections at 64-byte aligned offsets:
//   AqlmPacked header
//   codebook f32: b <= 8: transposed (M, g, K) for the LUT build; b > 8: natural (M, K, g)
//   scales f32 (row_blocks * 16), zero for the padding rows
//   codes: per block of 16 rows, per slot, 16 codes (uint8 for b <= 8, else uint16 LE)
// Threads split rows in multiples of 16 (row_granule). The LUT of a call is cached per thread,
// keyed by the exact bytes of the codebook and of the activations, so the tasks a thread runs in
// one call build it once (T threads build it T times; it costs about 1/10 of the gathers).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kernel.h"

namespace lowbit::kernels {

constexpr int64_t kAqlmRowBlock = 16;
constexpr int64_t kAqlmTokenChunk = 16;  // tokens whose LUTs are built and cached together

struct AqlmPacked {
  int32_t m, b, g, reserved;
  int64_t rows, cols, groups, row_blocks;
  int64_t codebook_offset, scales_offset, codes_offset, total_bytes;

  int64_t k() const { return int64_t{1} << b; }
  int64_t slots() const { return groups * m; }
  int code_bytes() const { return b <= 8 ? 1 : 2; }
  const float* codebook(const uint8_t* base) const {
    return reinterpret_cast<const float*>(base + codebook_offset);
  }
  const float* scales(const uint8_t* base) const {
    return reinterpret_cast<const float*>(base + scales_offset);
  }
  // Codes of row block rb: (slots, 16).
  const uint8_t* codes(const uint8_t* base, int64_t rb) const {
    return base + codes_offset + rb * slots() * kAqlmRowBlock * code_bytes();
  }
};

inline AqlmPacked ReadAqlmPacked(const uint8_t* base) {
  AqlmPacked p;
  std::memcpy(&p, base, sizeof(p));
  return p;
}

std::vector<uint8_t> RepackAqlm(const Format& format, const uint8_t* packed, int64_t rows,
                                int64_t cols);

using AqlmLutBuildFn = void (*)(const AqlmPacked& p, const uint8_t* base, const float* x,
                                int64_t n_tokens, float* lut);
// The LUTs (n_tokens, slots, K) for x (n_tokens <= kAqlmTokenChunk rows of length cols), from the
// calling thread's cache, built with build() on a miss. The cache is keyed by the exact bytes of
// the codebook and of x (every builder produces the same bits). Defined in the plain (non-ISA)
// translation unit so no standard-library code is compiled with -mavx2/-mavx512 flags.
const float* AqlmLuts(const AqlmPacked& p, const uint8_t* base, const float* x, int64_t n_tokens,
                      AqlmLutBuildFn build);
// The scalar LUT builder (the order every level reproduces).
void BuildAqlmLutScalar(const AqlmPacked& p, const uint8_t* base, const float* x, int64_t n_tokens,
                        float* lut);

// The scalar reference of the accumulation order above (also used for the b > 8 path's tails).
void AqlmRowRangeScalar(const MatmulArgs& args, int64_t r0, int64_t r1);
void AqlmRowRangeAvx2(const MatmulArgs& args, int64_t r0, int64_t r1);
void AqlmRowRangeAvx512(const MatmulArgs& args, int64_t r0, int64_t r1);

// ---- The int16-LUT path (the default activation path; --exact / LOWBIT_ACT=f32 keep the f32
// path above). b <= 8 only. Per token t (chunks of 16 tokens, as above):
//   L[s][k]  the float32 LUT exactly as above;
//   M_t      = max |L[s][k]| over all slots and codes (exact); S_t = M_t / 32767 (f32 division),
//              inv_t = 32767 / M_t (f32 division);
//   Q[s][k]  = int16(round-to-nearest-even(L[s][k] * inv_t)), clamped to [-32767, 32767]
//              (M_t = 0: Q = 0 and S_t = 0; M_t not finite: S_t = NaN, every output NaN);
//   y[t, r]  = (float(sum over slots of Q[s][code(r, s)]) * S_t) * s_r
//              (the sum in int32: exact for slots < 65538, so its order is free).
// Error against the exact value: the float32 LUT's own error (as above) plus at most
// slots * S_t / 2 from rounding Q, times |s_r|, plus the three final roundings (docs/kernels.md,
// "AQLM"). The table lookups are vpermi2w permutes from registers instead of gathers.
// Repacked layout: the AqlmPacked header and codebook/scales sections as above, with rows padded to
// a multiple of 32 (row_blocks counts 16-row blocks) and the codes slot-major: (slots, rows_pad)
// uint8, so the codes of one slot for 32 consecutive rows are 32 contiguous bytes.
constexpr int64_t kAqlmLut16Rows = 32;
std::vector<uint8_t> RepackAqlmLut16(const Format& format, const uint8_t* packed, int64_t rows,
                                     int64_t cols);
// Q (n_tokens, slots, 256) int16 (entries k >= K are 0) and S (n_tokens) from the float LUT.
void QuantizeAqlmLut(const float* lut, int64_t n_tokens, int64_t slots, int64_t k, int16_t* q,
                     float* s);
void AqlmLut16RowRangeScalar(const MatmulArgs& args, int64_t r0, int64_t r1);
void AqlmLut16RowRangeAvx512(const MatmulArgs& args, int64_t r0, int64_t r1);

}  // namespace lowbit::kernels
