// Row-interleaved Q8 kernels of the GGUF k-quants q4_k and q6_k ("kq16"): the batch-1 fast path
// for these two types (docs/kernels.md, "K-quant and NF4 interleaved kernels").
//
// A load-time repack (KernelEntry::repack) rewrites the format's packed rows (formats/
// gguf_kquants.h: 256-element super-blocks) into groups of 16 rows. A group stores, per super-block
// s, one record holding the same information as the 16 rows' super-blocks, in SIMD order (field
// f of row r at f + r * width, so one vector load gives the field of all 16 rows):
//
//   q4_k record (2368 bytes; the 16 packed super-blocks take 2304):
//     [0, 32)      d     fp16 x 16 rows (the format's own bits)
//     [32, 64)     dmin  fp16 x 16
//     [64, 192)    sc    unit j (0..7): 16 bytes at 64 + 16 j, the 6-bit scale of row r at byte r
//     [192, 320)   m     the 6-bit mins, same order
//     [320, 2368)  codes unit j at 320 + 256 j: 4 vectors of 64 bytes; vector v, dword r (row r),
//                  byte i = element 8v + i (low nibble) | element 8v + 4 + i (high nibble) << 4
//   q6_k record (3360 bytes = 16 x 210):
//     [0, 3072)    codes unit j at 384 j: the 4-bit layout above of c & 15 (256 bytes), then 2
//                  vectors of the high bits: code group g (elements 4g .. 4g + 3, g = 0..7) keeps
//                  bits 4..5 of its codes in vector g / 4, bits 2 (g % 4) .. 2 (g % 4) + 1
//     [3072, 3328) sc    sub-block b (0..15, 16 elements): int8 x 16 rows at 3072 + 16 b
//     [3328, 3360) d     fp16 x 16
// Codes are unsigned: q4_k c in 0..15 (x = d sc c - dmin m), q6_k c in 0..63 (x = d sc (c - 32)).
// Rows past the matrix are all-zero records (d = dmin = 0); their outputs are never stored.
//
// Per output lane (row) and token, super-block by super-block, units j = 0..7 in order (units past
// the row's Q8 blocks are skipped: the activations' tail block is zero-padded):
//   q4_k: isum_j = sum_k c_k q_k (int32, exact); ps_j = sc_j * isum_j (int32, exact, < 2^22);
//         accs = fma(float(ps_j), d_x, accs); accm = fma(float(m_j), float(xsum_j) * d_x, accm)
//         then acc = fma(d, accs, acc); acc = fma(-dmin, accm, acc)
//   q6_k: i_h = sum_{k in half h} c_k q_k - 32 xsum_h (int32, exact);
//         ps_j = sc_{2j} i_0 + sc_{2j+1} i_1 (int32, exact, |.| < 2^24, so float(ps_j) is exact);
//         accs = fma(float(ps_j), d_x, accs) then acc = fma(d, accs, acc)
// with accs = accm = 0 at each super-block and acc = 0 at the row start; y = acc. Every level
// (scalar with std::fma, AVX2, AVX-512) performs exactly these operations per lane, so all levels,
// every row split and every token batch give the same bits.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/kernel.h"

namespace lowbit::kernels {

inline constexpr int64_t kKqRows = 16;
inline constexpr int64_t kKqHeaderBytes = 64;
inline constexpr int64_t kKqQ4KRecord = 2368;
inline constexpr int64_t kKqQ6KRecord = 3360;

enum class KqType : int32_t { kQ4K = 0, kQ6K = 1 };

// First kKqHeaderBytes of a repacked matrix.
struct KqHeader {
  KqType type;
  int32_t reserved;
  int64_t rows, cols, groups, sblocks;  // sblocks: super-blocks per row
};
static_assert(sizeof(KqHeader) <= kKqHeaderBytes);

// q4_k / q6_k of the gguf family, or nothing.
std::optional<KqType> KqTypeOf(const Format& format);

// The repack (KernelEntry::repack) of q4_k / q6_k.
std::vector<uint8_t> KquantRepack(const Format& format, const uint8_t* packed, int64_t rows,
                                  int64_t cols);

// Row-range functions per level (run on the repacked layout, Q8 activations).
void KquantRunScalar(const MatmulArgs& a, int64_t r0, int64_t r1);
void KquantRunAvx2(const MatmulArgs& a, int64_t r0, int64_t r1);
void KquantRunAvx512(const MatmulArgs& a, int64_t r0, int64_t r1);

}  // namespace lowbit::kernels
