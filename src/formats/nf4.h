// NormalFloat-4 (NF4), family "nf4" (docs/formats/nf4.md, code in nf4.cc).
//
// Source: Dettmers, Pagnoni, Holtzman, Zettlemoyer, "QLoRA: Efficient Finetuning of Quantized
// LLMs", NeurIPS 2023 (arXiv:2305.14314), section 3 and Appendix E, whose 16 NF4 values are the
// table bitsandbytes uses (csrc/kernels.cu, nf4_dequantization_lut / dDequantizeNF4). kNf4Values
// below are those published constants rounded to float32.
//
// Spec:  nf4:block=N,scale=f32|f16        defaults: block=64 (16..4096), scale=f32
//
// What: blocks of N elements sharing one absmax scale A; element i decodes to
//   x'_i = kNf4Values[c_i] * A   (a float32 multiplication), c_i a 4-bit code.
// bitsandbytes stores A as float32 (without "double quantization"): scale=f32, 4 + 32/N bits per
// weight (4.5 at N = 64); scale=f16 stores A as IEEE binary16: 4 + 16/N (4.25 at N = 64).
//
// Bit layout of one block (block_bytes = S + ceil(N/2), S = 4 for f32, 2 for f16):
//   bytes [0, S)   A, little-endian float32 or binary16
//   byte  S + j    (c_{2j} << 4) | c_{2j+1}: the first element of each pair in the HIGH nibble,
//                  as bitsandbytes packs it (kQuantizeBlockwise: first value shifted left by 4).
//                  For odd N the low nibble of the last byte is 0.
//   (bitsandbytes keeps A in a separate array; here each block carries its own A.)
//
// Encoding one block:
//   A = max |x| over the finite elements (f16: rounded to nearest even, saturating at 65504).
//   c = the code whose table value is nearest to x / A, in exact arithmetic: c = the number of
//   midpoints M_k = (v_k + v_{k+1}) / 2 (k = 0..14) with x > A * M_k, so a tie goes to the LOWER
//   code, like bitsandbytes' "x > threshold" decision tree. (bitsandbytes multiplies by a float
//   reciprocal of A and compares with 8-digit rounded midpoints, so its codes can differ from these
//   in the last float bit near a midpoint; no tie exists for the values a model holds.)
//   Magnitudes above A (f16 scale rounded down, or saturated) clip to codes 0 / 15 (-A / +A).
//   Elements with |x| == A's source maximum take code 15 (+) or 0 (-): the natural choice for an
//   f32 scale; for an f16 scale it also covers subnormal A, where the ratio can be far from 1,
//   so the decoded block has the same absmax (idempotence).
//   When products v * A are float32 subnormals, a code is replaced by the code nearest to its own
//   decoded value (the same decoded float), so re-encoding a decoded block gives the same bytes.
// Special values: A == 0 (all-zero block, or an f16 absmax below 2^-25) encodes every element as
//   code 7 (0.0). NaN does not enter A and encodes as code 7 (0.0); +Inf / -Inf do not enter A and
//   encode as 15 / 0 (+A / -A). A block with no finite element has A = 0.
// Decoding never fails: NaN/Inf/negative A (never written by the encoder) follow IEEE arithmetic.
// Tail: rows are padded with +0.0 to a whole block (BlockFormat); zeros encode as code 7.
#pragma once

#include <cstdint>

#include "lowbit/format.h"

namespace lowbit {

// The NF4 code values, code 0..15 (QLoRA Appendix E / bitsandbytes), as float32.
inline constexpr float kNf4Values[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

struct Nf4Options {
  int block = 64;          // 16..4096
  bool f16_scale = false;  // false: float32 absmax (bitsandbytes)
};

// Code of element i of a block, from its code bytes (those after the scale): element 2j is the
// HIGH nibble of byte j (bit layout above).
inline int Nf4CodeAt(const uint8_t* codes, int64_t i) {
  return i % 2 == 0 ? codes[i / 2] >> 4 : codes[i / 2] & 0x0F;
}

// Bytes of a block's absmax field (4 for scale=f32, 2 for f16) of an nf4 format.
inline int64_t Nf4ScaleBytes(const Format& f) {
  return f.block_bytes() - (f.block_size() + 1) / 2;
}

// Builds an NF4 format; InvalidArgument naming the field for out-of-range options.
Result<FormatPtr> MakeNf4Format(const Nf4Options& options);

}  // namespace lowbit
