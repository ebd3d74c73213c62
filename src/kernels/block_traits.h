// Per-format block decoders for the fused kernels of kernels/gguf_* and kernels/integer_*.
//
// The matrix loops (kernels/loops_{scalar,avx2,avx512}.h) are written once per instruction set and
// templated on a Traits class from this file. A Traits class describes how one format stores a
// UNIT of 32 consecutive weights of a row (the granule of the loops and of the Q8 activations):
//
//   value[k] = scale[k / 16] * (code[k] - kZero) + min[k / 16]     (integer formats)
//   value[k] = scale[k / 16] * kLut[code[k]]                       (codebook formats, kLut set)
//
//   * code[k] is an unsigned 4..8-bit integer unpacked from the unit's bytes as CodeKind says,
//     after XOR-ing the raw bytes with kXor (turns two's-complement codes into offset binary:
//     q = code - kZero with kZero = 8 for 4 bits, 128 for 8 bits);
//   * scale / min are float32 values computed exactly as the format's reference decoder computes
//     them (e.g. Q4_K: d * sc and -(dmin * m)), so the f32-activation kernels reproduce the
//     reference's decoded weights bit for bit; only the dot product's order differs.
//
// Everything here is portable C++ (headers are decoded with scalar code in every ISA: they cost a
// few operations per 32 weights); the ISA loops only SIMD-unpack the code bytes.
// Formats whose rows are not padded to whole units (int group=row / tensor) hand the last partial
// unit's bytes through a zero-filled scratch copy, so no loop ever reads past a row's end.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#ifdef __F16C__
#include <immintrin.h>
#endif

#include "formats/gguf_kquants.h"
#include "formats/minifloat_codec.h"
#include "formats/nf4.h"
#include "kernels/kernel.h"

namespace lowbit::kernels {

inline constexpr int kUnit = 32;  // weights per unit (= one Q8Block32 of activations)

// How the 32 codes of a unit sit in its bytes (element k = 0..31 of the unit).
enum class CodeKind {
  kNibbleSplit,    // 16 bytes: k < 16 low nibble of byte k, k >= 16 high nibble of byte k - 16
                   // (ggml q4_0 / q4_1 order)
  kNibbleSplit5,   // kNibbleSplit + bit 4 of code k = bit k of the u32 at aux (q5_0 / q5_1)
  kNibbleSelect,   // 32 bytes: code k = (byte k >> shift) & 15 (q4_k)
  kNibbleSelect5,  // kNibbleSelect + bit 4 = (aux[k] >> aux_shift) & 1 (q5_k)
  kSixBit,         // (byte k >> shift) & 15 | ((aux[k] >> aux_shift) & 3) << 4 (q6_k)
  kNibblePairsLo,  // 16 bytes: k even low nibble of byte k / 2, k odd high nibble (int4 stream)
  kNibblePairsHi,  // 16 bytes: k even HIGH nibble of byte k / 2, k odd low nibble (nf4)
  kBytes,          // 32 bytes, one code per byte (q8_0, int8)
};

// Where one unit's codes are and its per-16-element scales/mins.
struct UnitRef {
  const uint8_t* codes = nullptr;
  const uint8_t* aux = nullptr;
  int shift = 0;
  int aux_shift = 0;
  float scale[2] = {0.0f, 0.0f};
  float min[2] = {0.0f, 0.0f};
};

// IEEE binary16 -> float32, exact for every code (the same value as HalfToFloat, without its
// generic minifloat decoder in the hot loop): F16C where the file is built with it.
inline float LoadF16(const uint8_t* p) {
  const uint16_t h = gguf::LoadU16(p);
#ifdef __F16C__
  return _cvtsh_ss(h);
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in float
    const float v = static_cast<float>(man) * 0x1p-24f;
    return sign ? -v : v;
  }
  const uint32_t bits = sign | (exp == 0x1F ? 0x7F800000u | (man << 13)
                                            : ((exp + 112) << 23) | (man << 13));
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
#endif
}
inline float LoadF32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Portable unpack of one unit's 32 codes (the scalar loops, and the specification the SIMD
// unpackers of loops_avx2.h / loops_avx512.h follow).
template <CodeKind kKind, uint8_t kXor>
inline void UnpackCodes(const UnitRef& u, uint8_t* code) {
  auto b = [&](int i) { return static_cast<uint8_t>(u.codes[i] ^ kXor); };
  for (int k = 0; k < kUnit; ++k) {
    int c = 0;
    switch (kKind) {
      case CodeKind::kNibbleSplit:
        c = k < 16 ? b(k) & 15 : b(k - 16) >> 4;
        break;
      case CodeKind::kNibbleSplit5:
        c = (k < 16 ? b(k) & 15 : b(k - 16) >> 4) | (((gguf::LoadU32(u.aux) >> k) & 1) << 4);
        break;
      case CodeKind::kNibbleSelect:
        c = (b(k) >> u.shift) & 15;
        break;
      case CodeKind::kNibbleSelect5:
        c = ((b(k) >> u.shift) & 15) | (((u.aux[k] >> u.aux_shift) & 1) << 4);
        break;
      case CodeKind::kSixBit:
        c = ((b(k) >> u.shift) & 15) | (((u.aux[k] >> u.aux_shift) & 3) << 4);
        break;
      case CodeKind::kNibblePairsLo:
        c = k % 2 == 0 ? b(k / 2) & 15 : b(k / 2) >> 4;
        break;
      case CodeKind::kNibblePairsHi:
        c = k % 2 == 0 ? b(k / 2) >> 4 : b(k / 2) & 15;
        break;
      case CodeKind::kBytes:
        c = b(k);
        break;
    }
    code[k] = static_cast<uint8_t>(c);
  }
}

// ---------------------------------------------------------------------------------------------
// GGUF types (layouts: src/formats/gguf_types.cc and gguf_kquants.h). Every row is padded to whole
// blocks, so units never run past a row.

// Common shape of the 32-element GGUF blocks: fp16 d at 0, optional fp16 m at 2, optional u32 qh,
// then the codes.
template <int kBytesPerBlock, int kCodeOffset, int kAuxOffset, bool kMin, CodeKind kKindT,
          int kZeroT, uint8_t kXorT>
struct Gguf32Traits {
  static constexpr CodeKind kKind = kKindT;
  static constexpr int kZero = kZeroT;
  static constexpr uint8_t kXor = kXorT;
  static constexpr bool kHasMin = kMin;
  static constexpr bool kHasLut = false;
  static constexpr const float* kLut = nullptr;

  int64_t row_bytes;
  Gguf32Traits(const Format& f, int64_t cols) : row_bytes(f.RowBytes(cols)) {}
  const uint8_t* Row(const uint8_t* w, int64_t r) const { return w + r * row_bytes; }
  void Unit(const uint8_t* row, int64_t u, UnitRef* ref, uint8_t* /*scratch*/) const {
    const uint8_t* blk = row + u * kBytesPerBlock;
    ref->codes = blk + kCodeOffset;
    ref->aux = blk + kAuxOffset;
    ref->scale[0] = ref->scale[1] = LoadF16(blk);
    if constexpr (kMin) ref->min[0] = ref->min[1] = LoadF16(blk + 2);
  }
};

// q8_0: d; int8 q[32]. Codes XOR 0x80 = q + 128.
using Q8_0Traits = Gguf32Traits<34, 2, 0, false, CodeKind::kBytes, 128, 0x80>;
// q4_0: d; qs[16]; x = d (q - 8).
using Q4_0Traits = Gguf32Traits<18, 2, 0, false, CodeKind::kNibbleSplit, 8, 0>;
// q4_1: d, m; qs[16]; x = d q + m.
using Q4_1Traits = Gguf32Traits<20, 4, 0, true, CodeKind::kNibbleSplit, 0, 0>;
// q5_0: d; qh; qs[16]; x = d (q - 16).
using Q5_0Traits = Gguf32Traits<22, 6, 2, false, CodeKind::kNibbleSplit5, 16, 0>;
// q5_1: d, m; qh; qs[16]; x = d q + m.
using Q5_1Traits = Gguf32Traits<24, 8, 4, true, CodeKind::kNibbleSplit5, 0, 0>;

// q4_k / q5_k: 256-element super-blocks of 8 units; unit j uses the 6-bit scale/min j:
// x = (d sc) q - dmin m. Codes of unit j: qs[32 (j / 2) + k] >> 4 (j % 2); q5_k's bit 4 is bit j of
// qh[k].
template <bool kFive>
struct QkKTraits {
  static constexpr CodeKind kKind = kFive ? CodeKind::kNibbleSelect5 : CodeKind::kNibbleSelect;
  static constexpr int kZero = 0;
  static constexpr uint8_t kXor = 0;
  static constexpr bool kHasMin = true;
  static constexpr bool kHasLut = false;
  static constexpr const float* kLut = nullptr;
  static constexpr int kBlockBytes = kFive ? gguf::kQ5KBytes : gguf::kQ4KBytes;
  static constexpr int kQsOffset = kFive ? 48 : 16;

  int64_t row_bytes;
  QkKTraits(const Format& f, int64_t cols) : row_bytes(f.RowBytes(cols)) {}
  const uint8_t* Row(const uint8_t* w, int64_t r) const { return w + r * row_bytes; }
  void Unit(const uint8_t* row, int64_t u, UnitRef* ref, uint8_t* /*scratch*/) const {
    const uint8_t* blk = row + (u / 8) * kBlockBytes;
    const int j = static_cast<int>(u % 8);
    int sc = 0, m = 0;
    gguf::UnpackQ4KScaleMin(blk + 4, j, &sc, &m);
    const float d = LoadF16(blk), dmin = LoadF16(blk + 2);
    ref->scale[0] = ref->scale[1] = d * static_cast<float>(sc);
    ref->min[0] = ref->min[1] = -(dmin * static_cast<float>(m));
    ref->codes = blk + kQsOffset + 32 * (j / 2);
    ref->shift = 4 * (j % 2);
    ref->aux = blk + 16;
    ref->aux_shift = j;
  }
};

// q6_k: 256-element super-blocks; element i = 32 j + k of unit j (h = j / 4):
//   low4 = (ql[64 h + 32 (j % 2) + k] >> 4 ((j % 4) / 2)) & 15, high2 = (qh[32 h + k] >> 2 (j % 4)) & 3,
//   x = (d * scales[2 j + k / 16]) (q - 32)   (gguf_kquants.cc, DecodeQ6K, with r = 32 (j % 4) + k).
struct Q6KTraits {
  static constexpr CodeKind kKind = CodeKind::kSixBit;
  static constexpr int kZero = 32;
  static constexpr uint8_t kXor = 0;
  static constexpr bool kHasMin = false;
  static constexpr bool kHasLut = false;
  static constexpr const float* kLut = nullptr;

  int64_t row_bytes;
  Q6KTraits(const Format& f, int64_t cols) : row_bytes(f.RowBytes(cols)) {}
  const uint8_t* Row(const uint8_t* w, int64_t r) const { return w + r * row_bytes; }
  void Unit(const uint8_t* row, int64_t u, UnitRef* ref, uint8_t* /*scratch*/) const {
    const uint8_t* blk = row + (u / 8) * gguf::kQ6KBytes;
    const int j = static_cast<int>(u % 8), h = j / 4;
    const float d = LoadF16(blk + 208);
    const uint8_t* scales = blk + 192;
    ref->scale[0] = d * static_cast<float>(static_cast<int8_t>(scales[2 * j]));
    ref->scale[1] = d * static_cast<float>(static_cast<int8_t>(scales[2 * j + 1]));
    ref->codes = blk + 64 * h + 32 * (j % 2);
    ref->shift = 4 * ((j % 4) / 2);
    ref->aux = blk + 128 + 32 * h;
    ref->aux_shift = 2 * (j % 4);
  }
};

// ---------------------------------------------------------------------------------------------
// int family (src/formats/integer.h) with 4 or 8 bits. group = g (a multiple of 32): blocks of
// [fp16 d (, fp16 m)][codes]; group = row: one such block per row, codes not padded to 32;
// group = tensor: the fields once in a header, rows of codes after it. Codes are a little-endian
// bit stream (4 bits: element 2i in the low nibble of byte i); sym codes are two's complement.
template <int kBits, bool kAsym>
struct IntTraits {
  static constexpr CodeKind kKind = kBits == 4 ? CodeKind::kNibblePairsLo : CodeKind::kBytes;
  static constexpr int kZero = kAsym ? 0 : (kBits == 4 ? 8 : 128);
  static constexpr uint8_t kXor = kAsym ? 0 : (kBits == 4 ? 0x88 : 0x80);
  static constexpr bool kHasMin = kAsym;
  static constexpr bool kHasLut = false;
  static constexpr const float* kLut = nullptr;
  static constexpr int kFieldBytes = kAsym ? 4 : 2;
  static constexpr int kUnitBytes = kUnit * kBits / 8;

  int64_t row_bytes, header_bytes, group, block_bytes, code_bytes_per_row;
  bool per_tensor;
  float tensor_d = 0.0f, tensor_m = 0.0f;

  IntTraits(const Format& f, int64_t cols)
      : row_bytes(f.RowBytes(cols)),
        header_bytes(f.HeaderBytes(1, cols)),
        group(f.block_size() > 0 ? f.block_size() : cols),
        block_bytes(f.block_size() > 0 ? f.block_bytes() : 0),
        code_bytes_per_row((cols * kBits + 7) / 8),
        per_tensor(f.block_size() < 0) {}

  // Tensor-wide fields live in the header of the packed tensor.
  void ReadHeader(const uint8_t* w) {
    if (!per_tensor) return;
    tensor_d = LoadF16(w);
    if constexpr (kAsym) tensor_m = LoadF16(w + 2);
  }
  const uint8_t* Row(const uint8_t* w, int64_t r) const { return w + header_bytes + r * row_bytes; }

  void Unit(const uint8_t* row, int64_t u, UnitRef* ref, uint8_t* scratch) const {
    const uint8_t* fields;
    const uint8_t* codes;
    if (block_bytes > 0) {  // group = g: whole blocks, padded
      const int64_t units_per_group = group / kUnit;
      fields = row + (u / units_per_group) * block_bytes;
      codes = fields + kFieldBytes + (u % units_per_group) * kUnitBytes;
    } else {
      fields = row;  // group = row (tensor: unused)
      const uint8_t* area = per_tensor ? row : row + kFieldBytes;
      const int64_t begin = u * kUnitBytes;
      codes = area + begin;
      if (begin + kUnitBytes > code_bytes_per_row) {  // last partial unit: copy, zero-fill
        std::memset(scratch, 0, kUnitBytes);
        std::memcpy(scratch, codes, static_cast<size_t>(code_bytes_per_row - begin));
        // The zero-filled lanes lie past cols: they meet zero Q8 activations or masked f32 ones.
        codes = scratch;
      }
    }
    ref->codes = codes;
    if (per_tensor) {
      ref->scale[0] = ref->scale[1] = tensor_d;
      ref->min[0] = ref->min[1] = tensor_m;
    } else {
      ref->scale[0] = ref->scale[1] = LoadF16(fields);
      if constexpr (kAsym) ref->min[0] = ref->min[1] = LoadF16(fields + 2);
    }
  }
};

// nf4 (src/formats/nf4.h): blocks of N (a multiple of 32) = [scale A: f32 or f16][N / 2 bytes],
// element 2i in the HIGH nibble of byte i; x = kNf4Values[code] * A.
struct Nf4Traits {
  static constexpr CodeKind kKind = CodeKind::kNibblePairsHi;
  static constexpr int kZero = 0;
  static constexpr uint8_t kXor = 0;
  static constexpr bool kHasMin = false;
  // kHasLut, not kLut != nullptr: under ASan GCC does not treat a global's address as a
  // constant expression in `if constexpr`.
  static constexpr bool kHasLut = true;
  static constexpr const float* kLut = kNf4Values;

  int64_t row_bytes, block, block_bytes, scale_bytes;
  Nf4Traits(const Format& f, int64_t cols)
      : row_bytes(f.RowBytes(cols)),
        block(f.block_size()),
        block_bytes(f.block_bytes()),
        scale_bytes(f.block_bytes() - f.block_size() / 2) {}
  const uint8_t* Row(const uint8_t* w, int64_t r) const { return w + r * row_bytes; }
  void Unit(const uint8_t* row, int64_t u, UnitRef* ref, uint8_t* /*scratch*/) const {
    const int64_t units_per_block = block / kUnit;
    const uint8_t* blk = row + (u / units_per_block) * block_bytes;
    ref->codes = blk + scale_bytes + (u % units_per_block) * 16;
    ref->scale[0] = ref->scale[1] = scale_bytes == 2 ? LoadF16(blk) : LoadF32(blk);
  }
};

// Traits classes that need the packed tensor's header (int group=tensor) read it here.
template <class T>
inline void ReadTensorHeader(T& traits, const uint8_t* w) {
  if constexpr (requires { traits.ReadHeader(w); }) traits.ReadHeader(w);
}

}  // namespace lowbit::kernels
