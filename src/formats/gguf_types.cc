// The "gguf" family: llama.cpp's (ggml's) GGUF tensor types with byte-identical block layouts.
// Spec: gguf:type=<name>. Sources: ggml-common.h / ggml-quants.c of ggml (llama.cpp) for the block
// structs and the reference row quantizers, and the `gguf` Python package (gguf/quants.py,
// gguf/constants.py: GGMLQuantizationType, GGML_QUANT_SIZES), which mirrors them in numpy and is
// the independent reference of tests/golden/gguf_golden_test.cc. Full layouts:
// docs/formats/gguf_types.md; k-quant / IQ4 decoders: gguf_kquants.cc.
//
// Types (block elements / bytes, ggml type id). Fields little-endian, "half" = IEEE fp16:
//   q8_0    32/34  id 8   half d; int8 q[32]                        x = d * q
//   q4_0    32/18  id 2   half d; u8 qs[16]                         x = d * (q - 8),  q in 0..15
//   q4_1    32/20  id 3   half d, half m; u8 qs[16]                 x = d * q + m,    q in 0..15
//   q5_0    32/22  id 6   half d; u32 qh; u8 qs[16]                 x = d * (q - 16), q in 0..31
//   q5_1    32/24  id 7   half d, half m; u32 qh; u8 qs[16]         x = d * q + m,    q in 0..31
//   mxfp4   32/17  id 39  u8 e (E8M0); u8 qs[16] (E2M1 codes)       x = d_e * kv[q]
//   q2_k .. q6_k, iq4_nl, iq4_xs: decode only (gguf_kquants.h).
// 4-bit element order (q4_*, q5_*, mxfp4, iq4_nl): element j < 16 is the LOW nibble of qs[j],
// element j + 16 the HIGH nibble of qs[j]. q5_*: bit 4 of element j is bit j of qh.
// mxfp4: kv = {0,1,2,3,4,6,8,12, 0,-1,-2,-3,-4,-6,-8,-12} (E2M1 doubled) and d_e = 2^(e-128), the
// "half" E8M0 value (e = 0, 1 give the subnormals 2^-128, 2^-127); every e is finite (no NaN).
//
// Encoding = ggml's reference quantizers (quantize_row_*_ref), float32 operation for operation:
//   q8_0: amax = max|x|, d = amax / 127, id = d ? 1/d : 0, q = roundf(x * id) (ties away from 0).
//   q4_0: max = the element of largest |x|, the FIRST one on ties, WITH its sign; d = max / -8,
//         q = min(15, (int)(x * id + 8.5)): the max element gets q = 0 (x = -8 d), ties round up.
//   q5_0: the same with d = max / -16, q = min(31, (int)(x * id + 16.5)).
//   q4_1: d = (max - min) / 15, q = min(15, (int)((x - min) * id + 0.5)), m = min.
//   q5_1: the same with 31.
//   mxfp4: amax = max|x|; e = amax > 0 ? floor(log2f(amax)) - 2 + 127 : 0 (log2f correctly
//         rounded to float, as glibc's log2f and numpy's float32 log2 give); d = d_e; each element
//         takes the code with the smallest |kv * d - x| in float32, the lowest code on ties (so
//         ties go toward zero magnitude and +0 beats -0).
//   The scale is quantized with the UNROUNDED float scale d and only then stored as fp16 (RNE), as
//   ggml does; decoding uses the stored fp16 value.
// Conversions ggml leaves to the platform (undefined in C) follow x86-64 builds of ggml and numpy:
//   a float code t outside the target's range becomes the low byte of (int32)t, and NaN / |t| >=
//   2^31 give 0 (cvttss2si). This only happens when the float scale d itself is subnormal (max|x|
//   below ~1e-36) or, for mxfp4, when max|x| < 2^-125 (e wraps to 232..255, which decodes the block
//   to 0); in the first case the fp16 scale is 0 and the block decodes to zeros either way.
// Deliberate differences from ggml, only where ggml produces non-finite or undefined results:
//   * an fp16 field (d or m) whose value exceeds the fp16 range SATURATES to +-65504 instead of
//     becoming +-Inf (ggml then decodes Inf/NaN weights); this needs max|x| above ~8.3e6 (q8_0),
//     5.2e5 (q4_0), 1.0e6 (q5_0) or a range above ~9.8e5 (q4_1) / 2.0e6 (q5_1), or |min| > 65504.
//     Elements are still coded with the unrounded d, so every other byte matches ggml.
//   * NaN inputs are encoded as 0 and +-Inf as +-FLT_MAX (ggml's result there depends on the
//     platform).
//   * all-zero q4_0/q5_0 blocks copy the sign of x[0] into the zero scale, as gguf.quants does
//     (ggml's C code always stores -0); both decode to zeros.
// Error bound (encodable types; computed per element from the block's own d, D = fp16(d), m, M):
//   q8_0: D == 0: |x|; else d (1/2 + 1e-4) + min(127, |x|/d + 0.5001) |d - D|.
//   q4_0/q5_0 (N = 8/16): D == 0 or d == 0: |x|; else with v = x/d:
//         |d| (max(1/2, v - (N - 1)) + 1e-4) + min(N, |v| + 0.5001) |d - D|
//         (v > N - 1/2 happens only for elements of the opposite sign to max: they clip to N - 1).
//   q4_1/q5_1 (N = 15/31): D == 0 or d == 0: |x - min| + |min - M|; d = Inf: Inf; else
//         d (1/2 + 1e-4) + min(N, v + 0.5001) |d - D| + |min - M| + 2^-23 (N |D| + |M|).
//   mxfp4: with a = |x|/d: d * (1/2 if a <= 4, 1 if a <= 8, 2 if a <= 12, else a - 12) plus
//         1e-6 (|x| + d) for the float32 comparisons.
//   The 1e-4 terms cover float32 rounding of x * id and of the + 8.5 / + 0.5 offsets (< 1e-5).
//   Decode-only types have no quantizer: their ErrorBound is +Inf.
// Tail: rows are padded with +0.0 to a whole block (BlockFormat), like ggml's rows which must be a
// multiple of the block.
#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "formats/block_format.h"
#include "formats/error_bound_math.h"
#include "formats/families.h"
#include "formats/gguf_kquants.h"
#include "formats/minifloat_codec.h"

namespace lowbit {
namespace {

using gguf::LoadHalf;
using gguf::LoadU32;

constexpr int kQk = 32;  // block length of every non-k type (QK4_0, QK8_0, QK_MXFP4, ...)
constexpr float kInfBound = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// Shared pieces

// fp16 store: round to nearest even, saturating at +-65504 (see "Deliberate differences").
uint16_t StoreHalf(float v) {
  return static_cast<uint16_t>(kFp16Codec.Encode(v, MinifloatCodec::Rounding::kNearestEven,
                                                 MinifloatCodec::Overflow::kSaturate));
}
void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xFF);
  p[1] = static_cast<uint8_t>(v >> 8);
}
float HalfValue(float v) { return HalfToFloat(StoreHalf(v)); }

// float -> 8-bit code the way x86-64 builds of ggml / numpy convert out-of-range values: truncate
// to int32 (NaN and |t| >= 2^31 give INT32_MIN) and keep the low byte. In range it is plain (int)t.
uint8_t LowByteOfInt32(float t) {
  if (!(t > -2147483648.0f && t < 2147483648.0f)) return 0;
  return static_cast<uint8_t>(static_cast<uint32_t>(static_cast<int32_t>(t)));
}

// Copies one block, NaN -> 0 and +-Inf -> +-FLT_MAX, so that every later step is defined.
std::array<float, kQk> Sanitized(const float* x) {
  std::array<float, kQk> out;
  for (int j = 0; j < kQk; ++j) {
    const float v = x[j];
    out[j] = std::isnan(v) ? 0.0f : std::isinf(v) ? std::copysign(FLT_MAX, v) : v;
  }
  return out;
}

float AbsMax(const std::array<float, kQk>& x) {
  float amax = 0.0f;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  return amax;
}

// The element of largest magnitude with its sign; the first one when magnitudes tie (numpy's
// argmax, and ggml's strict `amax < fabsf(v)` scan). All-zero blocks give x[0] (gguf.quants).
float SignedAbsMax(const std::array<float, kQk>& x) {
  int best = 0;
  for (int j = 1; j < kQk; ++j) {
    if (std::fabs(x[j]) > std::fabs(x[best])) best = j;
  }
  return x[best];
}

// Packs 32 codes (< 16 each, or < 32 with the 5th bit split off into qh) in ggml's nibble order.
void PackNibbles(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
  }
}
uint32_t HighBits(const uint8_t* q) {
  uint32_t qh = 0;
  for (int j = 0; j < kQk; ++j) qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
  return qh;
}
void PutU32(uint8_t* p, uint32_t v) {
  for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(v >> (8 * k));
}

// ---------------------------------------------------------------------------------------------
// Q8_0: half d; int8 q[32].

float Q8Scale(const std::array<float, kQk>& x) { return AbsMax(x) / 127.0f; }

void EncodeQ8_0(const float* in, uint8_t* out) {
  const auto x = Sanitized(in);
  const float d = Q8Scale(x);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  PutU16(out, StoreHalf(d));
  for (int j = 0; j < kQk; ++j) out[2 + j] = LowByteOfInt32(std::round(x[j] * id));
}

void DecodeQ8_0(const uint8_t* in, float* out) {
  const float d = LoadHalf(in);
  for (int j = 0; j < kQk; ++j) out[j] = static_cast<float>(static_cast<int8_t>(in[2 + j])) * d;
}

void BoundQ8_0(const float* in, float* bound) {
  const auto x = Sanitized(in);
  const double d = Q8Scale(x);
  const double big_d = HalfValue(static_cast<float>(d));
  for (int j = 0; j < kQk; ++j) {
    const double ax = std::fabs(static_cast<double>(x[j]));
    if (big_d == 0.0) {
      bound[j] = RoundUpToFloat(ax);  // q * 0 = 0
      continue;
    }
    const double q_max = std::min(127.0, ax / d + 0.5001);
    bound[j] = RoundUpToFloat(d * (0.5 + 1e-4) + q_max * std::fabs(d - big_d));
  }
}

// ---------------------------------------------------------------------------------------------
// Q4_0 / Q5_0: half d; [u32 qh;] u8 qs[16]. Symmetric with an offset: x = d * (q - N).

template <int kN>  // 8 for Q4_0, 16 for Q5_0
void EncodeSymmetric(const float* in, uint8_t* out) {
  const auto x = Sanitized(in);
  const float d = SignedAbsMax(x) / static_cast<float>(-kN);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const float offset = static_cast<float>(kN) + 0.5f;  // 8.5f / 16.5f
  uint8_t q[kQk];
  for (int j = 0; j < kQk; ++j) {
    const float scaled = x[j] * id;  // own statement: x * id + offset is never fused
    const float t = scaled + offset;
    q[j] = std::min<uint8_t>(2 * kN - 1, LowByteOfInt32(std::trunc(t)));
  }
  PutU16(out, StoreHalf(d));
  if constexpr (kN == 8) {
    PackNibbles(q, out + 2);
  } else {
    PutU32(out + 2, HighBits(q));
    PackNibbles(q, out + 6);
  }
}

template <int kN>
void DecodeSymmetric(const uint8_t* in, float* out) {
  const float d = LoadHalf(in);
  const uint32_t qh = kN == 8 ? 0u : LoadU32(in + 2);
  const uint8_t* qs = in + (kN == 8 ? 2 : 6);
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    out[j] = d * static_cast<float>(lo - kN);
    out[j + 16] = d * static_cast<float>(hi - kN);
  }
}

template <int kN>
void BoundSymmetric(const float* in, float* bound) {
  const auto x = Sanitized(in);
  const double d = SignedAbsMax(x) / static_cast<float>(-kN);
  const double big_d = HalfValue(static_cast<float>(d));
  for (int j = 0; j < kQk; ++j) {
    const double xj = x[j];
    if (d == 0.0 || big_d == 0.0) {
      bound[j] = RoundUpToFloat(std::fabs(xj));  // every element decodes to (q - N) * 0
      continue;
    }
    const double v = xj / d;
    const double steps = std::max(0.5, v - (kN - 1)) + 1e-4;
    const double q_max = std::min<double>(kN, std::fabs(v) + 0.5001);
    bound[j] = RoundUpToFloat(std::fabs(d) * steps + q_max * std::fabs(d - big_d));
  }
}

// ---------------------------------------------------------------------------------------------
// Q4_1 / Q5_1: half d, half m; [u32 qh;] u8 qs[16]. Asymmetric: x = d * q + m.

struct MinMax {
  float min;
  float max;
};

// First occurrences (ggml's strict scans), so the sign of a zero min/max is x's first one.
MinMax BlockMinMax(const std::array<float, kQk>& x) {
  MinMax r{x[0], x[0]};
  for (int j = 1; j < kQk; ++j) {
    if (x[j] < r.min) r.min = x[j];
    if (x[j] > r.max) r.max = x[j];
  }
  return r;
}

template <int kLevels>  // 15 for Q4_1, 31 for Q5_1
void EncodeAsymmetric(const float* in, uint8_t* out) {
  const auto x = Sanitized(in);
  const MinMax mm = BlockMinMax(x);
  const float d = (mm.max - mm.min) / static_cast<float>(kLevels);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t q[kQk];
  for (int j = 0; j < kQk; ++j) {
    const float scaled = (x[j] - mm.min) * id;  // own statement: never fused with + 0.5f
    const float t = scaled + 0.5f;
    q[j] = std::min<uint8_t>(kLevels, LowByteOfInt32(std::trunc(t)));
  }
  PutU16(out, StoreHalf(d));
  PutU16(out + 2, StoreHalf(mm.min));
  if constexpr (kLevels == 15) {
    PackNibbles(q, out + 4);
  } else {
    PutU32(out + 4, HighBits(q));
    PackNibbles(q, out + 8);
  }
}

template <int kLevels>
void DecodeAsymmetric(const uint8_t* in, float* out) {
  const float d = LoadHalf(in);
  const float m = LoadHalf(in + 2);
  const uint32_t qh = kLevels == 15 ? 0u : LoadU32(in + 4);
  const uint8_t* qs = in + (kLevels == 15 ? 4 : 8);
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    const float scaled_lo = d * static_cast<float>(lo);  // own statements: never fused with + m
    const float scaled_hi = d * static_cast<float>(hi);
    out[j] = scaled_lo + m;
    out[j + 16] = scaled_hi + m;
  }
}

template <int kLevels>
void BoundAsymmetric(const float* in, float* bound) {
  const auto x = Sanitized(in);
  const MinMax mm = BlockMinMax(x);
  const float d_float = (mm.max - mm.min) / static_cast<float>(kLevels);
  const double d = d_float;
  const double big_d = HalfValue(d_float);
  const double min = mm.min;
  const double big_m = HalfValue(mm.min);
  const double min_err = std::fabs(min - big_m);
  for (int j = 0; j < kQk; ++j) {
    const double above_min = static_cast<double>(x[j]) - min;
    if (std::isinf(d)) {
      bound[j] = kInfBound;  // max - min overflows float32 (|x| ~ 1e38): no useful bound
    } else if (d == 0.0 || big_d == 0.0) {
      bound[j] = RoundUpToFloat(above_min + min_err);  // every element decodes to q * 0 + M = M
    } else {
      const double q_max = std::min<double>(kLevels, above_min / d + 0.5001);
      bound[j] = RoundUpToFloat(d * (0.5 + 1e-4) + q_max * std::fabs(d - big_d) + min_err +
                         std::ldexp(kLevels * std::fabs(big_d) + std::fabs(big_m), -23));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// MXFP4: u8 e; u8 qs[16] of E2M1 codes (ggml's block_mxfp4).

constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// ggml's E8M0 "half" value 2^(e - 128), built from float32 bits (e < 2 are subnormals).
float E8m0Half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// log2f correctly rounded to float: double log2 is accurate to < 1 ulp of a double, far below
// the float rounding. Matters only just below powers of two, where log2 rounds up to the integer
// (e.g. log2f(8 - 2^-21) == 3.0f), which glibc's log2f and numpy's float32 log2 both do.
float Log2Float(float a) { return static_cast<float>(std::log2(static_cast<double>(a))); }

uint8_t Mxfp4Exponent(float amax) {
  if (!(amax > 0.0f)) return 0;
  const float t = std::floor(Log2Float(amax)) - 2.0f + 127.0f;
  return LowByteOfInt32(t);  // amax < 2^-125 wraps to 232..255 as in x86 ggml (see header)
}

uint8_t Mxfp4BestIndex(float x, float d) {
  int best = 0;
  float best_err = std::fabs(static_cast<float>(kMxfp4Values[0]) * d - x);
  for (int i = 1; i < 16; ++i) {
    const float err = std::fabs(static_cast<float>(kMxfp4Values[i]) * d - x);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return static_cast<uint8_t>(best);
}

void EncodeMxfp4(const float* in, uint8_t* out) {
  const auto x = Sanitized(in);
  const uint8_t e = Mxfp4Exponent(AbsMax(x));
  const float d = E8m0Half(e);
  uint8_t q[kQk];
  for (int j = 0; j < kQk; ++j) q[j] = Mxfp4BestIndex(x[j], d);
  out[0] = e;
  PackNibbles(q, out + 1);
}

void DecodeMxfp4(const uint8_t* in, float* out) {
  const float d = E8m0Half(in[0]);
  for (int j = 0; j < 16; ++j) {
    out[j] = d * static_cast<float>(kMxfp4Values[in[1 + j] & 0xF]);
    out[j + 16] = d * static_cast<float>(kMxfp4Values[in[1 + j] >> 4]);
  }
}

void BoundMxfp4(const float* in, float* bound) {
  const auto x = Sanitized(in);
  const double d = E8m0Half(Mxfp4Exponent(AbsMax(x)));
  for (int j = 0; j < kQk; ++j) {
    const double ax = std::fabs(static_cast<double>(x[j]));
    const double a = ax / d;
    const double steps = a <= 4.0 ? 0.5 : a <= 8.0 ? 1.0 : a <= 12.0 ? 2.0 : a - 12.0;
    bound[j] = RoundUpToFloat(steps * d + 1e-6 * (ax + d));
  }
}

// ---------------------------------------------------------------------------------------------
// The type table: one row per GGUF type, the only place the family lists them.

struct GgufType {
  const char* name;                              // value of type=, e.g. "q4_0"
  int ggml_type;                                 // ggml_type / gguf.GGMLQuantizationType id
  int block_size;                                // elements per block
  int block_bytes;                               // bytes per block
  void (*encode)(const float* x, uint8_t* out);  // nullptr: decode-only
  void (*decode)(const uint8_t* in, float* out);
  void (*bound)(const float* x, float* bound);  // nullptr: decode-only (+Inf)
  const char* preset;                           // preset name
  const char* description;                      // one line for `lowbit formats`
};

constexpr GgufType kTypes[] = {
    {"q8_0", 8, kQk, 34, EncodeQ8_0, DecodeQ8_0, BoundQ8_0, "q8_0",
     "llama.cpp Q8_0: int8 with an fp16 scale per 32"},
    {"q4_0", 2, kQk, 18, EncodeSymmetric<8>, DecodeSymmetric<8>, BoundSymmetric<8>, "q4_0",
     "llama.cpp Q4_0: 4-bit, fp16 scale per 32 (signed max -> -8)"},
    {"q4_1", 3, kQk, 20, EncodeAsymmetric<15>, DecodeAsymmetric<15>, BoundAsymmetric<15>, "q4_1",
     "llama.cpp Q4_1: 4-bit, fp16 scale and min per 32"},
    {"q5_0", 6, kQk, 22, EncodeSymmetric<16>, DecodeSymmetric<16>, BoundSymmetric<16>, "q5_0",
     "llama.cpp Q5_0: 5-bit, fp16 scale per 32 (signed max -> -16)"},
    {"q5_1", 7, kQk, 24, EncodeAsymmetric<31>, DecodeAsymmetric<31>, BoundAsymmetric<31>, "q5_1",
     "llama.cpp Q5_1: 5-bit, fp16 scale and min per 32"},
    {"mxfp4", 39, kQk, 17, EncodeMxfp4, DecodeMxfp4, BoundMxfp4, "mxfp4_gguf",
     "llama.cpp MXFP4: E2M1 with an E8M0 scale per 32, ggml's layout and rounding"},
    {"q2_k", 10, gguf::kQkK, gguf::kQ2KBytes, nullptr, gguf::DecodeQ2K, nullptr, "q2_k",
     "llama.cpp Q2_K: 2-bit k-quant, 4-bit scales/mins per 16, 256 super-block (decode only)"},
    {"q3_k", 11, gguf::kQkK, gguf::kQ3KBytes, nullptr, gguf::DecodeQ3K, nullptr, "q3_k",
     "llama.cpp Q3_K: 3-bit k-quant, 6-bit scales per 16, 256 super-block (decode only)"},
    {"q4_k", 12, gguf::kQkK, gguf::kQ4KBytes, nullptr, gguf::DecodeQ4K, nullptr, "q4_k",
     "llama.cpp Q4_K: 4-bit k-quant, 6-bit scales/mins per 32, 256 super-block (decode only)"},
    {"q5_k", 13, gguf::kQkK, gguf::kQ5KBytes, nullptr, gguf::DecodeQ5K, nullptr, "q5_k",
     "llama.cpp Q5_K: 5-bit k-quant, 6-bit scales/mins per 32, 256 super-block (decode only)"},
    {"q6_k", 14, gguf::kQkK, gguf::kQ6KBytes, nullptr, gguf::DecodeQ6K, nullptr, "q6_k",
     "llama.cpp Q6_K: 6-bit k-quant, int8 scales per 16, 256 super-block (decode only)"},
    {"iq4_nl", 20, gguf::kIq4NlBlock, gguf::kIq4NlBytes, nullptr, gguf::DecodeIq4Nl, nullptr,
     "iq4_nl", "llama.cpp IQ4_NL: non-linear 4-bit codebook, fp16 scale per 32 (decode only)"},
    {"iq4_xs", 23, gguf::kQkK, gguf::kIq4XsBytes, nullptr, gguf::DecodeIq4Xs, nullptr, "iq4_xs",
     "llama.cpp IQ4_XS: IQ4 codebook, 6-bit scales per 32, 256 super-block (decode only)"},
};

class GgufFormat final : public BlockFormat {
 public:
  explicit GgufFormat(const GgufType& type) : type_(type) {}

  std::string spec() const override { return std::string("gguf:type=") + type_.name; }
  // Integer codes with an fp16 scale per block (one real multiply per block); MXFP4 has E2M1
  // elements and an E8M0 scale. k-quants and IQ4 go through their tables: the fp16 default.
  MacOperand mac_operand() const override {
    const std::string_view name = type_.name;
    const int magnitude_bits = name == "q8_0"   ? 7
                               : name == "q4_0" ? 3
                               : name == "q4_1" ? 4
                               : name == "q5_0" ? 4
                               : name == "q5_1" ? 5
                                                : -1;
    if (magnitude_bits > 0) {
      return {.significand_bits = magnitude_bits, .exponent_bits = 0,
              .shared_block = type_.block_size, .shared_multiply = true};
    }
    if (name == "mxfp4") {
      return {.significand_bits = 2, .exponent_bits = 2, .shared_block = type_.block_size,
              .shared_bits = 8};
    }
    return MacOperand{};
  }
  std::string_view family() const override { return "gguf"; }
  int64_t block_size() const override { return type_.block_size; }
  int64_t block_bytes() const override { return type_.block_bytes; }
  bool can_quantize() const override { return type_.encode != nullptr; }
  std::optional<int> gguf_type() const override { return type_.ggml_type; }

  void EncodeBlock(const float* x, uint8_t* out) const override {
    LOWBIT_CHECK(type_.encode != nullptr);  // Quantize() refuses decode-only types first
    type_.encode(x, out);
  }
  void DecodeBlock(const uint8_t* in, float* out) const override { type_.decode(in, out); }
  void BlockErrorBound(const float* x, float* bound) const override {
    if (type_.bound == nullptr) {
      std::fill(bound, bound + type_.block_size, kInfBound);
      return;
    }
    type_.bound(x, bound);
  }

 private:
  const GgufType& type_;
};

Result<FormatPtr> MakeGguf(SpecParams& params) {
  std::vector<std::string_view> names;
  for (const GgufType& t : kTypes) names.push_back(t.name);
  LOWBIT_ASSIGN_OR_RETURN(std::string name, params.GetEnum("type", "q4_0", names));
  for (const GgufType& t : kTypes) {
    if (name == t.name) return FormatPtr(std::make_shared<GgufFormat>(t));
  }
  return InvalidArgument("format 'gguf': type='" + name + "' is not a GGUF type");
}

}  // namespace

void RegisterGgufFamily(FormatRegistry& registry) {
  std::string help = "type=";
  for (const GgufType& t : kTypes) {
    if (help.size() > 5) help += '|';
    help += t.name;
  }
  help += " (default q4_0; k-quants and iq4 are decode only)";
  registry.AddFamily({"gguf", "llama.cpp GGUF tensor types (byte-identical ggml blocks)", help,
                      "docs/formats/gguf_types.md", MakeGguf});
  for (const GgufType& t : kTypes) {
    registry.AddPreset({t.preset, std::string("gguf:type=") + t.name, t.description});
  }
}

}  // namespace lowbit
