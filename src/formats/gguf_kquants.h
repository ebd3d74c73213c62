// GGUF (llama.cpp / ggml) block decoders for the decode-only types: the k-quants Q2_K..Q6_K
// (256-element super-blocks) and the non-linear 4-bit types IQ4_NL (32) and IQ4_XS (256).
// Internal to src/formats: the gguf family (gguf_types.cc) owns the type table and registration.
//
// Byte layouts are ggml's (ggml-common.h block_q2_K ... block_iq4_xs, as read by the `gguf` Python
// package's gguf/quants.py). Every multi-byte field is little-endian; fp16 fields are IEEE half.
// Each decoder reproduces the reference's float32 arithmetic operation for operation (products of a
// fp16 scale with a small integer, then the element product and, for the "min" types, one
// subtraction; never a fused multiply-add), so results are bit-identical to gguf.quants.dequantize.
// Any byte pattern decodes: NaN/Inf fp16 fields give NaN/Inf elements, nothing is validated.
#pragma once

#include <cstdint>

#include "formats/minifloat_codec.h"

namespace lowbit::gguf {

// ggml's super-block length (QK_K) and the byte sizes of the decode-only blocks.
inline constexpr int kQkK = 256;
inline constexpr int kQ2KBytes = 84;   // scales[16] qs[64] d dmin
inline constexpr int kQ3KBytes = 110;  // hmask[32] qs[64] scales[12] d
inline constexpr int kQ4KBytes = 144;  // d dmin scales[12] qs[128]
inline constexpr int kQ5KBytes = 176;  // d dmin scales[12] qh[32] qs[128]
inline constexpr int kQ6KBytes = 210;  // ql[128] qh[64] scales[16] d
inline constexpr int kIq4NlBlock = 32;
inline constexpr int kIq4NlBytes = 18;   // d qs[16]
inline constexpr int kIq4XsBytes = 136;  // d scales_h(u16) scales_l[4] qs[128]

// The 16 IQ4_NL / IQ4_XS code values (ggml's kvalues_iq4nl, also gguf.quants.IQ4_NL.kvalues).
inline constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// Little-endian loads of the fp16 / integer fields (independent of the host byte order).
inline uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}
inline uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline float LoadHalf(const uint8_t* p) { return HalfToFloat(LoadU16(p)); }

// One block in (the type's block bytes), its elements out (256, or 32 for IQ4_NL).
void DecodeQ2K(const uint8_t* in, float* out);
void DecodeQ3K(const uint8_t* in, float* out);
void DecodeQ4K(const uint8_t* in, float* out);
void DecodeQ5K(const uint8_t* in, float* out);
void DecodeQ6K(const uint8_t* in, float* out);
void DecodeIq4Nl(const uint8_t* in, float* out);
void DecodeIq4Xs(const uint8_t* in, float* out);

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed scale bytes.
void UnpackQ4KScaleMin(const uint8_t* scales, int j, int* scale, int* min);

}  // namespace lowbit::gguf
