// AVX-512 level of the shared-exponent kernels (F + BW + VL + DQ; F16C for fp8 via fp16).
// One loop (Tile) for every format, templated on the chunk codec; the codec turns 16 element
// codes into 16 f32 lanes (a vpermps / vpermi2ps table lookup, an int8 or fp16 conversion or an
// exponent-field shift) and multiplies by the block's scale. Order of operations: see
// shared_exponent_kernels.h (the same bits as the scalar level).
#include <immintrin.h>

// GCC 12's own AVX-512 intrinsic headers trip these (their _mm512_undefined_* idiom).
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // GCC-only warning group
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <array>
#include <limits>
#include <utility>

#include "kernels/shared_exponent_kernels.h"

namespace lowbit::kernels {
namespace {

#define SE_INLINE inline __attribute__((always_inline))

// Byte shuffle + per-lane shift that put code i of a W-bit little-endian stream (16 codes, 2W
// bytes) into bits [0, W) of dword i; the bits above are the next codes (callers ignore them).
template <int W>
struct Unpack16Consts {
  alignas(64) uint8_t shuffle[64];
  alignas(64) uint32_t shift[16];
  constexpr Unpack16Consts() : shuffle{}, shift{} {
    for (int i = 0; i < 16; ++i) {
      const int byte = i * W / 8;
      shuffle[4 * i + 0] = static_cast<uint8_t>(byte);
      shuffle[4 * i + 1] = static_cast<uint8_t>(byte + 1 < 16 ? byte + 1 : 0x80);
      shuffle[4 * i + 2] = 0x80;
      shuffle[4 * i + 3] = 0x80;
      shift[i] = static_cast<uint32_t>(i * W % 8);
    }
  }
};

// Reads 16 bytes at p (the 2W code bytes and up to 16 - 2W more).
template <int W>
SE_INLINE __m512i Unpack16(const uint8_t* p) {
  static constexpr Unpack16Consts<W> kC;
  const __m512i bytes =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m512i v = _mm512_shuffle_epi8(bytes, _mm512_load_si512(kC.shuffle));
  return _mm512_srlv_epi32(v, _mm512_load_si512(kC.shift));
}

SE_INLINE __m128i Load16(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// v with its sign bit flipped where bit 31 of sign_bits is set (ternary logic A ^ (B & C)).
SE_INLINE __m512 ApplySign(__m512 v, __m512i sign_bits) {
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
      _mm512_castps_si512(v), sign_bits, _mm512_set1_epi32(static_cast<int>(0x80000000u)), 0x78));
}

// fp16 bits (s, mag) of an E4M3 byte: sign to bit 15, magnitude to bits 7..13; the fp16 value
// is then the E4M3 value * 2^-8 exactly (subnormals included).
SE_INLINE __m256i E4m3ToHalfBits(__m256i c16) {
  const __m256i shifted = _mm256_srai_epi16(_mm256_slli_epi16(c16, 8), 1);
  return _mm256_and_si256(shifted, _mm256_set1_epi16(static_cast<short>(0xBFFF)));
}

// Decodes 16 codes starting at byte p (raw values, before the scale).
template <SeKind K>
class Elements {
 public:
  explicit Elements(const SeTables& t) {
    if constexpr (K.decoder == SeDecoder::kTable) {
      // W <= 5: the full signed table (vpermps uses index bits 0..3, vpermi2ps 0..4; a 3-bit
      // table is repeated so the next code's bit 3 does not matter). W = 6: the 32 magnitudes.
      alignas(64) float table[32];
      for (int i = 0; i < 32; ++i) table[i] = t.raw[i & ((1 << (K.bits < 6 ? K.bits : 5)) - 1)];
      lo_ = _mm512_load_ps(table);
      hi_ = _mm512_load_ps(table + 16);
    }
  }

  SE_INLINE __m512 Decode16(const uint8_t* p) const {
    constexpr int W = K.bits;
    if constexpr (K.decoder == SeDecoder::kTable) {
      const __m512i idx = Unpack16<W>(p);
      if constexpr (W <= 4) return _mm512_permutexvar_ps(idx, lo_);
      if constexpr (W == 5) return _mm512_permutex2var_ps(lo_, idx, hi_);
      if constexpr (W == 6) return Table6(idx);
    } else if constexpr (K.decoder == SeDecoder::kTwosInt8) {
      return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(Load16(p)));
    } else if constexpr (K.decoder == SeDecoder::kSignMagInt) {
      const __m512i c = W == 8 ? _mm512_cvtepu8_epi32(Load16(p)) : Unpack16<W>(p);
      const __m512 mag =
          _mm512_cvtepi32_ps(_mm512_and_si512(c, _mm512_set1_epi32((1 << (W - 1)) - 1)));
      return ApplySign(mag, _mm512_slli_epi32(c, 32 - W));
    } else if constexpr (K.decoder == SeDecoder::kFp8E5m2) {
      // E5M2 is the upper byte of an fp16 (Inf and NaN included).
      return _mm512_cvtph_ps(_mm256_slli_epi16(_mm256_cvtepu8_epi16(Load16(p)), 8));
    } else if constexpr (K.decoder == SeDecoder::kFp8E4m3 || K.decoder == SeDecoder::kFp8E4m3Fin) {
      const __m256i c16 = _mm256_cvtepu8_epi16(Load16(p));
      __m512 v = _mm512_mul_ps(_mm512_cvtph_ps(E4m3ToHalfBits(c16)), _mm512_set1_ps(256.0f));
      if constexpr (K.decoder == SeDecoder::kFp8E4m3) {
        // S.1111.111 is NaN (OCP E4M3); through fp16 it would read 480.
        const __m256i mag = _mm256_and_si256(c16, _mm256_set1_epi16(0x7F));
        const __mmask16 nan = _mm256_cmpeq_epi16_mask(mag, _mm256_set1_epi16(0x7F));
        v = _mm512_mask_mov_ps(v, nan, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
      }
      return v;
    } else {
      static_assert(K.decoder == SeDecoder::kLog7);
      // f32 bits: sign to bit 31, the 7-bit field c to the exponent: 2^(c - 127), 0 -> +-0.
      const __m512i c = _mm512_cvtepu8_epi32(Load16(p));
      const __m512i bits = _mm512_srai_epi32(_mm512_slli_epi32(c, 24), 1);
      return _mm512_castsi512_ps(
          _mm512_and_si512(bits, _mm512_set1_epi32(static_cast<int>(0xBFFFFFFFu))));
    }
  }

  // 6-bit sign-magnitude codes in bits 0..5 of each dword (bits above ignored).
  SE_INLINE __m512 Table6(__m512i idx) const {
    return ApplySign(_mm512_permutex2var_ps(lo_, idx, hi_), _mm512_slli_epi32(idx, 26));
  }

 private:
  __m512 lo_ = _mm512_setzero_ps();
  __m512 hi_ = _mm512_setzero_ps();
};

// Decodes one 32-element chunk into two vectors of weights.
template <SeKind K>
class Codec {
 public:
  explicit Codec(const SeTables& t) : elements_(t), scale_(t.scale) {}

  SE_INLINE void Chunk(SeChunkPtrs p, float row_scale, __m512* w) const {
    if constexpr (K.layout == SeLayout::kBlocks) {
      constexpr int kGroupBytes = 2 * K.bits;  // 16 codes
      if constexpr (K.block == 32) {
        const __m512 s = _mm512_set1_ps(scale_[p.a[0]]);
        w[0] = _mm512_mul_ps(elements_.Decode16(p.a + 1), s);
        w[1] = _mm512_mul_ps(elements_.Decode16(p.a + 1 + kGroupBytes), s);
      } else {
        static_assert(K.block == 16);
        constexpr int kBlockBytes = 1 + kGroupBytes;
        w[0] = _mm512_mul_ps(elements_.Decode16(p.a + 1), _mm512_set1_ps(scale_[p.a[0]]));
        w[1] = _mm512_mul_ps(elements_.Decode16(p.a + kBlockBytes + 1),
                             _mm512_set1_ps(scale_[p.a[kBlockBytes]]));
      }
    } else {
      // 4+2 split: code = hi2 << 4 | lo4, then the 6-bit sign-magnitude table.
      const __m512 s = _mm512_set1_ps(row_scale);
      for (int g = 0; g < 2; ++g) {
        const __m512i hi = _mm512_slli_epi32(Unpack16<2>(p.a + 4 * g), 4);
        const __m512i lo = Unpack16<4>(p.b + 8 * g);
        // (lo & 0xF) | hi: ternary logic (A & C) | B.
        const __m512i code = _mm512_ternarylogic_epi32(lo, hi, _mm512_set1_epi32(0xF), 0xEC);
        w[g] = _mm512_mul_ps(elements_.Table6(code), s);
      }
    }
  }

 private:
  Elements<K> elements_;
  const float* scale_;
};

SE_INLINE float Reduce(__m512 a0, __m512 a1) {
  const __m512 s16 = _mm512_add_ps(a0, a1);
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(s16), _mm512_extractf32x8_ps(s16, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

struct TileArgs {
  const MatmulArgs* a;
  const SeGeometry* g;
  const uint8_t* w0;  // row 0 of the weights
};

// y for rows [r, r + R) x tokens [t, t + T): every chunk of the R rows is decoded once and
// used by the T tokens; each x chunk is loaded once for the R rows.
template <SeKind K, int R, int T>
SE_INLINE void Tile(const Codec<K>& codec, const TileArgs& ta, int64_t r, int64_t t) {
  const MatmulArgs& a = *ta.a;
  const SeGeometry& g = *ta.g;
  const uint8_t* rows[R];
  float row_scale[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = ta.w0 + (r + i) * g.row_bytes;
    row_scale[i] = K.layout == SeLayout::kFp6Split ? SeFp6SplitRowScale(rows[i]) : 1.0f;
  }
  __m512 acc[T][R][2];
  for (int j = 0; j < T; ++j)
    for (int i = 0; i < R; ++i) acc[j][i][0] = acc[j][i][1] = _mm512_setzero_ps();
  const float* x = a.x + t * a.cols;
  for (int64_t c = 0; c < g.n_fast; ++c) {
    __m512 w[R][2];
    for (int i = 0; i < R; ++i) codec.Chunk(SeChunk(g, rows[i], c), row_scale[i], w[i]);
    for (int j = 0; j < T; ++j) {
      const float* xc = x + j * a.cols + c * kSeChunk;
      const __m512 x0 = _mm512_loadu_ps(xc);
      const __m512 x1 = _mm512_loadu_ps(xc + 16);
      for (int i = 0; i < R; ++i) {
        acc[j][i][0] = _mm512_fmadd_ps(x0, w[i][0], acc[j][i][0]);
        acc[j][i][1] = _mm512_fmadd_ps(x1, w[i][1], acc[j][i][1]);
      }
    }
  }
  for (int64_t c = g.n_fast; c < g.n_chunks; ++c) {
    const int64_t n = SeMin(kSeChunk, a.cols - c * kSeChunk);
    const __mmask16 m0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
    const __mmask16 m1 = n >= 32   ? __mmask16(0xFFFF)
                         : n > 16 ? __mmask16((1u << (n - 16)) - 1)
                                  : __mmask16(0);
    __m512 w[R][2];
    for (int i = 0; i < R; ++i) {
      SeTailBuffer buf;
      codec.Chunk(SeTailChunk(g, rows[i], c, &buf), row_scale[i], w[i]);
    }
    for (int j = 0; j < T; ++j) {
      const float* xc = x + j * a.cols + c * kSeChunk;
      const __m512 x0 = _mm512_maskz_loadu_ps(m0, xc);
      const __m512 x1 = _mm512_maskz_loadu_ps(m1, xc + 16);
      for (int i = 0; i < R; ++i) {
        acc[j][i][0] = _mm512_mask3_fmadd_ps(x0, w[i][0], acc[j][i][0], m0);
        acc[j][i][1] = _mm512_mask3_fmadd_ps(x1, w[i][1], acc[j][i][1], m1);
      }
    }
  }
  for (int j = 0; j < T; ++j)
    for (int i = 0; i < R; ++i) a.y[(t + j) * a.ldy + r + i] = Reduce(acc[j][i][0], acc[j][i][1]);
}

template <SeKind K>
void RunAvx512(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const Codec<K> codec(SharedExponentTablesFor(*a.format));
  const SeGeometry g = MakeSeGeometry(K, a.cols, a.format->RowBytes(a.cols));
  const TileArgs ta{&a, &g, a.w + a.format->HeaderBytes(a.rows, a.cols)};
  int64_t t = 0;
  for (; t + 4 <= a.n_tokens; t += 4) {
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) Tile<K, 2, 4>(codec, ta, r, t);
    for (; r < r1; ++r) Tile<K, 1, 4>(codec, ta, r, t);
  }
  for (; t < a.n_tokens; ++t) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) Tile<K, 4, 1>(codec, ta, r, t);
    for (; r < r1; ++r) Tile<K, 1, 1>(codec, ta, r, t);
  }
}

template <size_t... I>
constexpr std::array<RowRangeFn, sizeof...(I)> MakeFns(std::index_sequence<I...>) {
  return {&RunAvx512<kSeKinds[I].kind>...};
}

}  // namespace

RowRangeFn SharedExponentAvx512Fn(int index) {
  static constexpr std::array<RowRangeFn, kNumSeKinds> kFns =
      MakeFns(std::make_index_sequence<kNumSeKinds>());
  return index >= 0 && index < kNumSeKinds ? kFns[index] : nullptr;
}

}  // namespace lowbit::kernels
