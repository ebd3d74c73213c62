// Row-interleaved f32 kernels of nf4 ("nf4.il16"): the batch-1 fast path of the NormalFloat-4
// format (formats/nf4.h; docs/kernels.md, "K-quant and NF4 interleaved kernels").
//
// NF4's 16 code values are not an integer grid, so the activations stay f32 and every weight is
// looked up in the 16-entry table (vpermps: one instruction gives 16 rows' values). A load-time
// repack (KernelEntry::repack) rewrites the packed rows into groups of 16 rows; per block b of N
// elements (N = block_size(), a multiple of 32) a group holds one record of 16 S + 8 N bytes:
//   [0, 16 S)        the 16 rows' absmax scales A, the format's own bits (S = 4: f32, 2: f16)
//   [16 S, ...)      unit u (elements 32 u .. 32 u + 31 of the block) at 16 S + 256 u: 4 vectors
//                    of 64 bytes; in vector v the dword of row r holds the codes of elements
//                    32 u + 8 v + i, i = 0..7, code i in bits 4 i .. 4 i + 3 (so a right shift by
//                    4 i puts code i in the low 4 bits of all 16 dwords: vpermps reads only those)
// Elements past cols get code 7 (the value 0.0); rows past the matrix are zero bytes (A = 0).
//
// Per output lane (row) and token, blocks in order:
//   a_m = 0 (m = 0..3); for u, v, i in order: a_{i % 4} = fma(kNf4Values[c], x[32 u + 8 v + i],
//   a_{i % 4}) s = (a_0 + a_1) + (a_2 + a_3); acc = fma(s, A, acc)              (acc = 0 at the row
//   start)
// y = acc. The scale is applied once per block instead of per weight (reference: x' = v * A, then
// x' * x): each term still passes through a bounded number of roundings (docs/kernels.md,
// "Tolerance"). Activations of a row whose cols is not a multiple of N are read from a zero-padded
// copy. Every level (scalar with std::fma, AVX2, AVX-512) performs these operations per lane, so
// all levels, row splits and token batches give the same bits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kernel.h"

namespace lowbit::kernels {

inline constexpr int64_t kNf4Rows = 16;
inline constexpr int64_t kNf4HeaderBytes = 64;

// First kNf4HeaderBytes of a repacked matrix.
struct Nf4Header {
  int64_t rows, cols, groups;
  int64_t block;         // N
  int64_t scale_bytes;   // S
  int64_t blocks;        // per row
  int64_t record_bytes;  // 16 S + 8 N
};
static_assert(sizeof(Nf4Header) <= kNf4HeaderBytes);

// The repack (KernelEntry::repack) of nf4 with block % 32 == 0.
std::vector<uint8_t> Nf4Repack(const Format& format, const uint8_t* packed, int64_t rows,
                               int64_t cols);

// Row-range functions per level (run on the repacked layout, f32 activations).
void Nf4RunScalar(const MatmulArgs& a, int64_t r0, int64_t r1);
void Nf4RunAvx2(const MatmulArgs& a, int64_t r0, int64_t r1);
void Nf4RunAvx512(const MatmulArgs& a, int64_t r0, int64_t r1);

// The activations as (n_tokens, blocks * N) rows: a.x itself when cols == blocks * N, else a
// zero-padded copy in *buf. Returns the row stride through *stride.
inline const float* Nf4Activations(const MatmulArgs& a, const Nf4Header& h, std::vector<float>* buf,
                                   int64_t* stride) {
  const int64_t padded = h.blocks * h.block;
  *stride = padded;
  if (padded == a.cols) return a.x;
  buf->assign(static_cast<size_t>(a.n_tokens * padded), 0.0f);
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    std::memcpy(buf->data() + t * padded, a.x + t * a.cols,
                static_cast<size_t>(a.cols) * sizeof(float));
  }
  return buf->data();
}

}  // namespace lowbit::kernels
