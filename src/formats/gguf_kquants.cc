// Decoders of ggml's k-quants and IQ4 types (decode only; see gguf_kquants.h and
// docs/formats/gguf_types.md for the layouts). The element order of every type is derived from
// ggml's block definitions as documented by gguf-py (gguf/quants.py, `dequantize_blocks`); each
// function states it as "element i <- field" so the layout can be checked against the docs.
//
// Arithmetic (float32, in this exact order, never a fused multiply-add: the product is a statement
// of its own, which Clang's default -ffp-contract=on cannot fuse, and GCC does not contract in ISO
// mode (-std=c++20)):
//   Q2_K        (d * (sc & 15)) * q - dmin * (sc >> 4)
//   Q3_K, Q6_K  (d * sc) * q                  sc, q signed
//   Q4_K, Q5_K  (d * sc) * q - dmin * m
//   IQ4_NL      d * kvalue[q]
//   IQ4_XS      (d * (ls - 32)) * kvalue[q]
#include "formats/gguf_kquants.h"

namespace lowbit::gguf {

// Q2_K, 84 bytes: scales[16] @0, qs[64] @16, d @80, dmin @82.
// Element i = 128 h + 32 s + l (h < 2, s < 4, l < 32): 2-bit q = (qs[32 h + l] >> 2 s) & 3;
// sub-block i / 16 uses scales[i / 16]: low nibble scales d, high nibble scales dmin.
void DecodeQ2K(const uint8_t* in, float* out) {
  const uint8_t* scales = in;
  const uint8_t* qs = in + 16;
  const float d = LoadHalf(in + 80);
  const float dmin = LoadHalf(in + 82);
  for (int i = 0; i < kQkK; ++i) {
    const int h = i / 128, s = (i % 128) / 32, l = i % 32;
    const int q = (qs[32 * h + l] >> (2 * s)) & 3;
    const uint8_t sc = scales[i / 16];
    const float dl = d * static_cast<float>(sc & 0xF);
    const float ml = dmin * static_cast<float>(sc >> 4);
    const float scaled = dl * static_cast<float>(q);  // own statement: never fused with - ml
    out[i] = scaled - ml;
  }
}

// Q3_K, 110 bytes: hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
// 16 signed 6-bit scales: scale j = (low4 | high2 << 4) - 32 with
//   low4  = j < 8 ? scales[j] & 15 : scales[j - 8] >> 4,
//   high2 = (scales[8 + j % 4] >> 2 (j / 4)) & 3.
// Element i = 128 h + 32 s + l: low 2 bits (qs[32 h + l] >> 2 s) & 3 as in Q2_K; the "high" bit is
// bit i / 32 of hmask[i % 32], and a CLEAR bit subtracts 4: q = low2 - (bit ? 0 : 4), in -4..3.
void DecodeQ3K(const uint8_t* in, float* out) {
  const uint8_t* hmask = in;
  const uint8_t* qs = in + 32;
  const uint8_t* scales = in + 96;
  const float d = LoadHalf(in + 108);
  float dl[16];
  for (int j = 0; j < 16; ++j) {
    const int low4 = j < 8 ? (scales[j] & 0xF) : (scales[j - 8] >> 4);
    const int high2 = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    dl[j] = d * static_cast<float>((low4 | (high2 << 4)) - 32);
  }
  for (int i = 0; i < kQkK; ++i) {
    const int h = i / 128, s = (i % 128) / 32, l = i % 32;
    const int low2 = (qs[32 * h + l] >> (2 * s)) & 3;
    const int bit = (hmask[l] >> (i / 32)) & 1;
    out[i] = dl[i / 16] * static_cast<float>(low2 - (bit ? 0 : 4));
  }
}

// 12 bytes hold eight 6-bit scales and eight 6-bit mins (s = the 12 bytes):
//   j < 4 : scale = s[j] & 63                        min = s[j+4] & 63
//   j >= 4: scale = (s[j+4] & 15) | (s[j-4] >> 6) << 4  min = (s[j+4] >> 4) | (s[j] >> 6) << 4
void UnpackQ4KScaleMin(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

namespace {

// Q4_K and Q5_K share the header (d, dmin, 12 scale bytes) and the low-nibble order; Q5_K adds one
// high bit per element from qh (nullptr for Q4_K).
// Element i = 64 c + 32 t + l (c < 4, t < 2, l < 32): low4 = (qs[32 c + l] >> 4 t) & 15;
// Q5_K high bit = bit i / 32 of qh[l]; sub-block j = i / 32.
void DecodeQ4KOrQ5K(const uint8_t* in, const uint8_t* qh, const uint8_t* qs, float* out) {
  const float d = LoadHalf(in);
  const float dmin = LoadHalf(in + 2);
  const uint8_t* scales = in + 4;
  for (int j = 0; j < 8; ++j) {
    int sc = 0, m = 0;
    UnpackQ4KScaleMin(scales, j, &sc, &m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    for (int k = 0; k < 32; ++k) {
      const int i = 32 * j + k;
      const int c = j / 2, t = j % 2;
      int q = (qs[32 * c + k] >> (4 * t)) & 0xF;
      if (qh != nullptr) q |= ((qh[k] >> j) & 1) << 4;
      const float scaled = dl * static_cast<float>(q);  // own statement: never fused with - ml
      out[i] = scaled - ml;
    }
  }
}

}  // namespace

// Q4_K, 144 bytes: d @0, dmin @2, scales[12] @4, qs[128] @16.
void DecodeQ4K(const uint8_t* in, float* out) { DecodeQ4KOrQ5K(in, nullptr, in + 16, out); }

// Q5_K, 176 bytes: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
void DecodeQ5K(const uint8_t* in, float* out) { DecodeQ4KOrQ5K(in, in + 16, in + 48, out); }

// Q6_K, 210 bytes: ql[128] @0, qh[64] @128, scales[16] (int8) @192, d @208.
// Element i = 128 h + r (h < 2, r < 128):
//   low4  = (ql[64 h + r % 64] >> 4 (r / 64)) & 15
//   high2 = (qh[32 h + r % 32] >> 2 (r / 32)) & 3
//   q = (low4 | high2 << 4) - 32, scale = (int8) scales[i / 16].
void DecodeQ6K(const uint8_t* in, float* out) {
  const uint8_t* ql = in;
  const uint8_t* qh = in + 128;
  const uint8_t* scales = in + 192;
  const float d = LoadHalf(in + 208);
  for (int i = 0; i < kQkK; ++i) {
    const int h = i / 128, r = i % 128;
    const int low4 = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0xF;
    const int high2 = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
    const float dl = d * static_cast<float>(static_cast<int8_t>(scales[i / 16]));
    out[i] = dl * static_cast<float>((low4 | (high2 << 4)) - 32);
  }
}

// IQ4_NL, 18 bytes per 32: d @0, qs[16] @2. Element j < 16: low nibble of qs[j]; element j + 16:
// high nibble of qs[j] (the Q4_0 order); value d * kIq4Values[nibble].
void DecodeIq4Nl(const uint8_t* in, float* out) {
  const float d = LoadHalf(in);
  const uint8_t* qs = in + 2;
  for (int j = 0; j < 16; ++j) {
    out[j] = d * static_cast<float>(kIq4Values[qs[j] & 0xF]);
    out[j + 16] = d * static_cast<float>(kIq4Values[qs[j] >> 4]);
  }
}

// IQ4_XS, 136 bytes per 256: d @0, scales_h (u16) @2, scales_l[4] @4, qs[128] @8.
// Sub-block j (0..7, 32 elements): ls = ((scales_l[j / 2] >> 4 (j % 2)) & 15)
//                                       | ((scales_h >> 2 j) & 3) << 4, scale = ls - 32.
// Element 32 j + 16 t + l (t < 2, l < 16): nibble (qs[16 j + l] >> 4 t) & 15.
void DecodeIq4Xs(const uint8_t* in, float* out) {
  const float d = LoadHalf(in);
  const uint16_t scales_h = LoadU16(in + 2);
  const uint8_t* scales_l = in + 4;
  const uint8_t* qs = in + 8;
  for (int j = 0; j < 8; ++j) {
    const int ls = ((scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | (((scales_h >> (2 * j)) & 3) << 4);
    const float dl = d * static_cast<float>(ls - 32);
    for (int l = 0; l < 16; ++l) {
      const uint8_t b = qs[16 * j + l];
      out[32 * j + l] = dl * static_cast<float>(kIq4Values[b & 0xF]);
      out[32 * j + 16 + l] = dl * static_cast<float>(kIq4Values[b >> 4]);
    }
  }
}

}  // namespace lowbit::gguf
