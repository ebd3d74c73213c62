// Row-interleaved integer-dot kernels ("il16"): the batch-1 fast path for every block format
// whose weights are small integers times a per-block scale (docs/kernels.md, "Interleaved Q8
// kernels").
//
// A load-time repack (KernelEntry::repack) rewrites the format's packed rows into groups of 16
// rows. Within a group, unit u (elements 32u .. 32u + 31 of every row) is stored as
//   [codes: 64 * bits bytes][scales: segs x 16 fields][mins: 16 fp16, when has_min]
// where every weight is w = scale_seg * (c - zero) [+ min] with c an unsigned code:
//   * codes, bits = 4: 4 vectors of 64 bytes; in vector j, dword r (row r) byte i holds element
//     8j + i in its low nibble and element 8j + 4 + i in its high nibble (a vpand / vpsrlw gives
//     16 rows x 4 consecutive codes, one dword per row: exactly what vpdpbusd multiplies with a
//     broadcast dword of 4 activations). With `lut`, the nibble is an index into lut16 (vpshufb):
//     mxfp4's E2M1 values x 2 are the integers -12..12, c = 2 v + 12. With `lut2` as well (AVX-512
//     VBMI only) the weight is lut16[c] + 256 * lut16_hi[c] - zero, two vpdpbusd per code vector:
//     nf4, whose table is no integer grid, as its values x 2^14 rounded (the one inexact layout:
//     `table_rel_error` below bounds the relative error of a weight; docs/kernels.md).
//   * bits = 5: the 4-bit layout of c & 15, then 1 vector of 64 bytes of c >> 4: code vector v has
//     its high bit in bit v of each byte.
//   * bits = 6: the 4-bit layout of c & 15, then 2 vectors of 64 bytes of c >> 4: code vector v
//     (elements 4v .. 4v + 3; v = 2j low nibbles, 2j + 1 high nibbles of vector j) has its 2 high
//     bits in vector v / 4, bits 2 (v % 4) .. 2 (v % 4) + 1 of each byte.
//   * bits = 6 with lut6 (AVX-512 VBMI only): c is the format's own 6-bit element code and the
//     integer weight comes from 64-entry byte tables (vpermb): lut6 = 1: lut64[c] - zero (FP6
//     E2M3 x 8: -60..60); lut6 = 2: lut64[c] + 16 * lut64_hi[c] - zero (FP6 E3M2 x 16: -448..448,
//     beyond a byte), two vpdpbusd per code vector whose int32 sums combine exactly.
//   * bits = 8: 8 vectors; vector j, dword r = elements 4j .. 4j + 3 of row r. With lut8 = P
//     (AVX-512 VBMI only; FP8 E4M3 x 2^9, |v| < 2^18): c is the format's sign-magnitude code,
//     |v| = sum_j lut128[j][c & 127] << 8j over P byte tables (vpermi2b), and the sign is applied
//     to the activations (q negated where c's bit 7 is set) so every vpdpbusd stays u8 x s8;
//     the P int32 sums combine exactly (|v| * 127 * 32 < 2^31 is checked at repack). A block
//     holding a NaN code gets the NaN scale byte, so its rows come out NaN as the reference's.
//   * scale kF16: the format's own fp16 field (one per unit; fp6split: the row's scale in every
//     unit, times scale_unit = 2^-shift, the element grid's denominator, applied in f32); kF32: the
//     format's own f32 field (nf4's absmax; its scale_unit 2^-14 multiplies float(isum)); kExp: the
//     block's shared byte b, scale = 2^(b - bias) (b read signed when exp_signed), NaN where b ==
//     nan_byte. The exponent folds in the element's power-of-two denominator (mxfp4: 2^-1), so it
//     is exact.
// Rows past the matrix are zero codes (c = zero) with scale 0 / 2^0; their outputs are not stored.
//
// Per output lane (row) and token, in unit order:
//   isum = sum_k c_k q_k - zero * sum_k q_k  (int32, exact: vpdpbusd / pmaddubsw+pmaddwd)
//   acc = fma(float(isum) * d_x, scale_seg, acc)        once per segment (16 or 32 elements)
//   acc = fma(float(xsum) * d_x, min, acc)              formats with a min
//   (KernelEntry::splits_offset)
// y = acc (no horizontal reduction: a lane is a row). Every token runs the same operations alone
// or in a batch, and every row the same operations in any group split, so results do not depend
// on the thread count or the batch size.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/kernel.h"

namespace lowbit::kernels {

inline constexpr int64_t kIlRows = 16;
inline constexpr int64_t kIlHeaderBytes = 1024;
// The vector levels prefetch every line of a unit this many bytes ahead, into L2 (T1). An L1
// prefetch holds one of the core's few line-fill buffers until its line arrives, an L2 one only a
// superqueue entry, so more lines are in flight. On a 2-core Xeon VM L2 beat L1 by about 10 points
// of the DRAM probe for the 4- and 5-bit formats at AVX-512 and 15-25 at AVX2; 12 KiB measured
// better than 8, 16 or 32 KiB (docs/kernels.md). The stream is sequential: only the distance
// matters.
inline constexpr int64_t kIlPrefetchBytes = 12 * 1024;

// At batch 1 the AVX-512 kernels run this many whole groups side by side (unit u of each in
// turn), so each thread streams that many regions of the matrix at once instead of one. On the
// 2-core Xeon VM this took the two-table kernels (nf4, FP6 E3M2) from about 81% of the DRAM probe
// to about 94% at 2 threads and q4_0 from 92% to about 100%; 4 streams beat 2 (docs/kernels.md,
// "Streams per thread"). Every output still takes the same operations in the same order.
inline constexpr int kIlStreams = 4;

enum class IlScale : int32_t { kF16 = 0, kExp = 1, kF32 = 2 };

struct IlDesc {
  int32_t bits = 4;  // storage width of a code: 4, 5, 6 or 8
  int32_t lut = 0;   // bits == 4: the nibble indexes lut16
  int32_t segs = 1;  // scale segments per unit of 32: 1 or 2 (blocks of 16)
  IlScale scale = IlScale::kF16;
  int32_t exp_signed = 0;  // kExp: the shared byte is an int8
  int32_t has_min = 0;     // fp16 min per unit (q4_1, q5_1, int asym)
  int32_t zero = 0;        // c - zero is the integer weight
  int32_t bias = 0;        // kExp: scale = 2^(b - bias)
  int32_t nan_byte = -1;   // kExp: b == nan_byte -> NaN scale (mx E8M0 0xFF)
  uint8_t lut16[16] = {};
  int32_t lut6 = 0;       // bits == 6: 0 none, 1 one table, 2 lo + 16 * hi tables (file comment)
  // lut6 (fp6split) and lut2 (nf4): the unit scale is the field * scale_unit (a power of two).
  float scale_unit = 1.0f;
  int32_t lut2 = 0;  // bits == 4 with lut: the second byte table lut16_hi (file comment)
  uint8_t lut16_hi[16] = {};
  // The largest |Value(c) * scale_unit - table value| / |table value| over the codes (0 where the
  // grid is exact): the weights' own rounding, which the consistency test adds to its bound.
  double table_rel_error = 0.0;
  uint8_t lut64[64] = {};
  uint8_t lut64_hi[64] = {};
  // Blocks of 32 per unit sharing one set of scale / min fields: 1, or 4 for int formats whose
  // groups are >= 128 (int4_g128, row, tensor), so their fields cost what the format stores;
  // nf4: its block / 32 (1, 2 or 4).
  int32_t unit_blocks = 1;
  int32_t lut8 = 0;  // bits == 8: byte tables of the magnitude (0: codes are c - zero)
  uint8_t lut128[3][128] = {};
  // The largest code c the repack writes (AVX2's 8-bit kernel needs c - zero to fit an int8).
  int32_t max_code = 255;

  // The integer weight (before the scale) of code c; rows past the matrix use a code giving 0.
  int32_t Value(int c) const {
    if (lut8 != 0) {
      int32_t m = 0;
      for (int j = 0; j < lut8; ++j) m += int32_t{lut128[j][c & 127]} << (8 * j);
      return (c & 128) != 0 ? -m : m;
    }
    if (lut6 == 1) return lut64[c & 63] - zero;
    if (lut6 == 2) return lut64[c & 63] + 16 * lut64_hi[c & 63] - zero;
    if (lut) return lut16[c & 15] + (lut2 != 0 ? 256 * lut16_hi[c & 15] : 0) - zero;
    return c - zero;
  }

  int64_t CodeBytes() const { return 64 * bits; }
  int64_t ScaleFieldBytes() const {
    return scale == IlScale::kF32 ? 4 : scale == IlScale::kF16 ? 2 : 1;
  }
  int64_t UnitBytes() const {
    return unit_blocks * CodeBytes() + segs * 16 * ScaleFieldBytes() + (has_min ? 32 : 0);
  }
};

// First kIlHeaderBytes of a repacked matrix.
struct IlHeader {
  IlDesc desc;
  int64_t rows, cols, units, groups;
};
static_assert(sizeof(IlHeader) <= kIlHeaderBytes);

// The layout of a format, or nothing when its weights are not small integers times a per-16/32
// scale this layout can hold (checked against the format's own tables, not its name).
std::optional<IlDesc> InterleavedDescFor(const Format& format);

// The repack (KernelEntry::repack) of formats with an IlDesc.
std::vector<uint8_t> InterleavedRepack(const Format& format, const uint8_t* packed, int64_t rows,
                                       int64_t cols);

// Row-range functions per level (null where that level has no instantiation for desc).
RowRangeFn InterleavedAvx512Fn(const IlDesc& desc);
RowRangeFn InterleavedAvx2Fn(const IlDesc& desc);
// The lut6 / lut8 kernels (AVX-512 + VBMI: interleaved_vbmi.cc); null for other descs.
RowRangeFn InterleavedVbmiFn(const IlDesc& desc);

// The interleaved Q8 entry of a format at the highest level <= isa that has one.
std::optional<KernelEntry> LookupInterleavedKernel(const Format& format, Isa isa);

// Per-16-element activation sums for kernels with 2 segments per unit: out[(t * units + u) * 2 + h]
// = sum of q over elements 16h .. 16h + 15 of block u of token t.
void IlHalfSums(const ActivationsQ8& x, int64_t t0, int64_t n_tokens, std::vector<int32_t>* out);

}  // namespace lowbit::kernels
