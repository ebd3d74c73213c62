// Shared-exponent block formats as the fused kernels see them (docs/kernels_shared_exponent.md).
//
// Every format handled here decodes an element as
//     w = raw(code) * scale
// where raw(code) is an exact float that depends on the element code only and scale is an exact
// float that depends on the block's shared field only (one byte: E8M0 for mx, an int8 exponent
// for bfp/bm/bl) or, for fp6split, on the row's fp16 scale. The product is one IEEE f32
// multiplication, so it is exactly the value Format::DequantizeRows produces (the references
// compute the same real product and round it once; see each family's file comment). Kernels then
// accumulate fma(x[k], w[k], acc) in the fixed order described in shared_exponent_kernels.h.
//
// SeKind names the code -> raw decoder (what a kernel is compiled for); SeTables holds the
// run-time numbers (256 scale values, 256 raw values) built from the format's spec parameters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "lowbit/format.h"

namespace lowbit::kernels {

enum class SeDecoder : int {
  kTable,        // code of 3..6 bits, sign-magnitude (sign = top bit): raw = value[code]
  kTwosInt8,     // mxint8: raw = (int8) code
  kSignMagInt,   // bfp w = 5..8: raw = +-(code & (2^(w-1) - 1))
  kFp8E4m3,      // OCP E4M3 (all-ones magnitude is NaN), via the fp16 conversion
  kFp8E4m3Fin,   // E4M3 with every code finite (bm8), via the fp16 conversion
  kFp8E5m2,      // OCP E5M2 (IEEE Inf/NaN): the upper byte of an fp16
  kLog7,         // bl k = 7: raw = 2^(c - 127) (c = code & 0x7F, 0 -> +-0): f32 bits c << 23
};

enum class SeLayout : int {
  kBlocks,    // [shared byte][codes as a little-endian bit stream] per block (mx, bfp, bm, bl)
  kFp6Split,  // fp6split: [fp16 scale][2-bit plane][4-bit plane] per row
};

// What a kernel instantiation is compiled for (a structural type: usable as a template argument).
struct SeKind {
  SeLayout layout = SeLayout::kBlocks;
  SeDecoder decoder = SeDecoder::kTable;
  int bits = 4;    // bits per element code
  int block = 32;  // elements per block: 16 or 32 (kFp6Split: 0, one scale per row)

  constexpr bool operator==(const SeKind&) const = default;
};

// Run-time numbers of one format.
struct SeTables {
  SeKind kind;
  // scale[b] for the block's shared byte b; NaN where the format says the block is NaN (E8M0
  // 0xFF). Every other entry is an exact power of two (a float32 normal or subnormal).
  float scale[256];
  // raw[c] for every code c < 2^bits (entries above are 0); exact floats.
  float raw[256];
  // Fast-path scales of decoders that produce raw(code) * 2^-fold_exp (the E4M3 codes read as
  // fp16: 2^-8): scale_fold[b] = scale[b] * 2^fold_exp, so one multiplication by it gives the
  // same real product raw * scale, rounded once, i.e. the same float. fold_ok[b] = 0 where
  // scale[b] * 2^fold_exp is not a float (overflow); kernels decode such blocks in two steps
  // (* 2^fold_exp, then * scale[b]). NaN scales stay NaN (fold_ok = 1). fold_exp = 0: scale_fold
  // equals scale and every fold_ok is 1.
  // raw as fp16 bits where every raw value is an fp16 (raw_half_exact); the 6-bit table kernels
  // then look codes up as words and widen with one conversion (exact either way).
  bool raw_half_exact = false;
  uint16_t raw_half[256];
  int fold_exp = 0;
  bool all_fold_ok = true;  // every fold_ok[b] is 1
  float scale_fold[256];
  uint8_t fold_ok[256];
};

// The fold exponent of a decoder (see SeTables::fold_exp): 8 for the E4M3 decoders, else 0.
constexpr int SeFoldExp(SeDecoder decoder) {
  return decoder == SeDecoder::kFp8E4m3 || decoder == SeDecoder::kFp8E4m3Fin ? 8 : 0;
}

// The kernel kind and tables of a format, or nothing when this family has no kernel for it (the
// runtime then uses the tiled dequantize path). Matches by family() and the spec's parameters.
std::optional<SeTables> BuildSharedExponentTables(const Format& format);

// The tables of args.format, built once per distinct spec and cached (thread-safe).
const SeTables& SharedExponentTablesFor(const Format& format);

}  // namespace lowbit::kernels
