// Integer (uniform) quantization: family "int" (docs/formats/integer.md, code in integer.cc).
//
// Spec:  int:bits=B,mode=sym|asym,group=tensor|row|<g>     defaults: bits=4, mode=sym, group=128
//   B = 2..8; g = 1..65536. A "group" is the set of elements that share one scale (and offset):
//   g consecutive elements of a row (a block), one whole row (group=row) or the whole tensor
//   (group=tensor).
//
// Values (d, m are IEEE binary16 numbers; decoding evaluates in float32):
//   sym : x' = d * q        q in [-Q, Q], Q = 2^(B-1) - 1 (B-bit two's complement; the code
//                           -2^(B-1) is never written and decodes to -2^(B-1) * d)
//   asym: x' = d * u + m    u in [0, U],  U = 2^B - 1 (unsigned)
//   d * q and d * u are exact in float32 (<= 19 significant bits, >= 2^-24), so sym decoding is
//   exact and asym decoding is the float nearest to d * u + m.
//
// Bit layout (fields little-endian binary16; F = 2 bytes for sym [d], 4 for asym [d][m]):
//   group=<g>   : block (g elements) = [fields: F bytes][codes: ceil(g*B/8) bytes]
//   group=row   : row  = [fields: F bytes][codes: ceil(cols*B/8) bytes]      block_size() == 0
//   group=tensor: header = [fields: F bytes]; row = [codes: ceil(cols*B/8)]  block_size() == -1
//   Codes are a little-endian bit stream: element i occupies bits [i*B, (i+1)*B) of the code
//   area, stream bit j being bit (j % 8) of byte j / 8 (for B = 4: element 2k in the low nibble of
//   byte k). Bits past the last element are 0.
// Bits per weight: B + 8F/g for groups (int4 g128: 4.125 sym, 4.25 asym); B + 8F/cols per row;
//   B + 8F/(rows*cols) per tensor (codes padded to whole bytes per row/block).
//
// Encoding (the reference: exact real arithmetic unless "double" is said):
//   sym : A = max |x| over the finite x of the group; d = fp16(A / Q) (round to nearest even,
//         saturating at 65504; A / Q in double, which is exact for the rounding decision).
//         q = round(x / d), ties away from zero, clamped to [-Q, Q]. Elements with |x| == A take
//         +-Q: for a normal d that is what rounding gives; for a subnormal d (A < Q * 2^-14) it
//         costs at most Q * 2^-25 and keeps d recoverable from the decoded group (idempotence).
//   asym: lo, hi = min, max over the finite x; m = fp16(lo) (nearest even, saturating).
//         d = 0 when lo == hi; else d = fp16((hi - m) / U) (double, nearest even, saturating),
//         then two adjustments that make (m, d) recoverable from the decoded group:
//           - d is replaced by fp16((top - m) / U), top = float(m + d * U), until it is a fixed
//             point (a safety net: hi is itself a float, so top rounds back to hi or lands
//             within rounding distance of d; this essentially never moves d);
//           - if hi >= 0 but top < 0, d goes up one fp16 step (so a zero-padded tail keeps its
//             zeros inside [m, top]).
//         Codes: x == lo takes 0 (decodes to exactly m), x == hi takes U (decodes to top); other
//         x take the nearest u (ties toward larger u), then the code nearest to u's own decoded
//         float (the same float; differs only when the grid is finer than float32 around m,
//         where several codes decode to one float). When
//         hi == 0 exactly, no other element may decode to a value >= 0 (the largest code with a
//         negative value is used instead): zero padding then re-encodes identically.
//   Each rule above changes nothing for ordinary weight groups; together they make quantize ->
//   dequantize -> quantize reproduce the same values and bytes for every finite input, except the
//   (never decoded) codes of zero padding in a tail block whose real values are all <= 0 and
//   include an exact 0, NaN or +Inf (see docs/formats/integer.md, "Idempotence").
// Special values: the all-zero group (and any group whose scale rounds to 0) has d = 0 and decodes
//   to 0 (sym) or m (asym). NaN and +-Inf do not enter A / lo / hi; NaN encodes as 0.0 would
//   (clamped into [lo, hi] for asym), +Inf as the group maximum (sym: +Q, asym: U), -Inf as the
//   minimum. A group with no finite element is encoded as all zeros. Magnitudes beyond the
//   saturated fp16 scale clip to the extreme codes. No float -> int conversion sees NaN/Inf.
// Decoding never fails: NaN/Inf/negative fields (never written by the encoder) follow IEEE
//   arithmetic.
// Tail: block rows are padded with +0.0 to whole blocks (BlockFormat); row/tensor groups have no
//   padding elements.
#pragma once

#include <cstdint>

#include "lowbit/format.h"

namespace lowbit {

struct IntOptions {
  int bits = 4;         // 2..8
  bool asym = false;    // false: sym
  int64_t group = 128;  // > 0: elements per block; kIntGroupRow or kIntGroupTensor
};

inline constexpr int64_t kIntGroupRow = 0;
inline constexpr int64_t kIntGroupTensor = -1;

// Builds an integer format; InvalidArgument naming the field for out-of-range options.
Result<FormatPtr> MakeIntFormat(const IntOptions& options);

}  // namespace lowbit
