// AVX-512 level of the shared-exponent kernels (F + BW + VL + DQ; F16C for fp8 via fp16).
// One loop (Tile) for every format, templated on the chunk codec; the codec turns 16 element
// codes into 16 f32 lanes (a vpermps / vpermi2ps table lookup, an int8 or fp16 conversion or an
// exponent-field shift) and multiplies by the block's scale. Order of operations: see
// shared_exponent_kernels.h (the same bits as the scalar level).
#include "kernels/simd_avx512.h"

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

// fp16 bits of 32 E4M3 bytes: sign to bit 15, magnitude to bits 7..13; the fp16 value is then
// the E4M3 value * 2^-8 exactly (subnormals included; S.1111.111 reads 480, not NaN). The bytes
// are sign-extended to words (bits 7..15 = sign), so << 7 leaves sign copies in bits 14 and 15
// and the AND clears bit 14.
SE_INLINE __m512i E4m3ToHalfBits(__m256i bytes) {
  return _mm512_and_si512(_mm512_slli_epi16(_mm512_cvtepi8_epi16(bytes), 7),
                          _mm512_set1_epi16(static_cast<short>(0xBFFF)));
}

// fp16 bits of 32 E5M2 bytes: the byte is the upper half of an fp16 (Inf and NaN included).
SE_INLINE __m512i E5m2ToHalfBits(__m256i bytes) {
  return _mm512_slli_epi16(_mm512_cvtepu8_epi16(bytes), 8);
}

SE_INLINE __m512 HalfLo(__m512i h) { return _mm512_cvtph_ps(_mm512_castsi512_si256(h)); }
SE_INLINE __m512 HalfHi(__m512i h) { return _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)); }

// Lanes holding an OCP E4M3 NaN code (S.1111.111).
SE_INLINE __mmask32 E4m3NanCodes(__m256i bytes) {
  return _mm256_cmpeq_epi8_mask(_mm256_or_si256(bytes, _mm256_set1_epi8(static_cast<char>(0x80))),
                                _mm256_set1_epi8(static_cast<char>(0xFF)));
}

// The 32 codes of a chunk as one vector: block 32: the codes after the shared byte; block 16:
// the codes of both blocks (bytes 1..16 and 18..33).
template <int kBlock>
SE_INLINE __m256i ChunkBytes8(const uint8_t* chunk) {
  if constexpr (kBlock == 32) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk + 1));
  } else {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(Load16(chunk + 1)), Load16(chunk + 18),
                                   1);
  }
}

// Word-granular unpacking for the 6-bit tables (raw values as fp16, SeTables::raw_half): a byte
// shuffle + per-word shift put code i of a chunk into bits [0, 6) of word i (bits above: other
// codes, ignored by the 64-entry word lookup). vpshufb stays within 128-bit lanes, so lanes 2-3
// (codes 16..31) get their own 16-byte load.
struct Unpack32x6Consts {
  alignas(64) uint8_t shuffle[64];
  alignas(64) uint16_t shift[32];
  constexpr Unpack32x6Consts() : shuffle{}, shift{} {
    for (int i = 0; i < 32; ++i) {
      const int lane = i / 8;
      const int base = lane < 2 ? 0 : 12;  // stream byte at the lane's load
      const int bit = 6 * i;
      shuffle[2 * i + 0] = static_cast<uint8_t>(bit / 8 - base);
      shuffle[2 * i + 1] = static_cast<uint8_t>(bit / 8 - base + 1);
      shift[i] = static_cast<uint16_t>(bit % 8);
    }
  }
};

// Codes 0..15 are read from lo16 (12 bytes used of 16), codes 16..31 from hi16.
SE_INLINE __m512i Unpack32x6(const uint8_t* lo16, const uint8_t* hi16) {
  static constexpr Unpack32x6Consts kC;
  const __m512i v =
      _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(Load16(lo16)), 0xFF00, Load16(hi16));
  return _mm512_srlv_epi16(_mm512_shuffle_epi8(v, _mm512_load_si512(kC.shuffle)),
                           _mm512_load_si512(kC.shift));
}

// fp6split's 32 codes hi2 << 4 | lo4 as words (bits above 5: other codes): each lane's 4
// nibble bytes and 2 crumb bytes lie in the first 16 bytes of the planes' chunk.
struct UnpackSplitConsts {
  alignas(64) uint8_t lo_shuffle[64];
  alignas(64) uint8_t hi_shuffle[64];
  alignas(64) uint16_t lo_shift[32];
  alignas(64) uint16_t hi_shift[32];
  constexpr UnpackSplitConsts() : lo_shuffle{}, hi_shuffle{}, lo_shift{}, hi_shift{} {
    for (int i = 0; i < 32; ++i) {
      // Nibble i in bits 0..3 (the select below keeps only those).
      lo_shuffle[2 * i + 0] = static_cast<uint8_t>(i / 2);
      lo_shuffle[2 * i + 1] = 0x80;
      lo_shift[i] = static_cast<uint16_t>(4 * (i % 2));
      // Crumb i: its byte in the word's upper half, shifted down to bits 4..5.
      hi_shuffle[2 * i + 0] = 0x80;
      hi_shuffle[2 * i + 1] = static_cast<uint8_t>(i / 4);
      hi_shift[i] = static_cast<uint16_t>(4 + 2 * (i % 4));
    }
  }
};

SE_INLINE __m512i UnpackSplit(const uint8_t* hi2, const uint8_t* lo4) {
  static constexpr UnpackSplitConsts kC;
  const __m512i lo = _mm512_srlv_epi16(
      _mm512_shuffle_epi8(_mm512_broadcast_i32x4(Load16(lo4)), _mm512_load_si512(kC.lo_shuffle)),
      _mm512_load_si512(kC.lo_shift));
  const __m512i hi = _mm512_srlv_epi16(
      _mm512_shuffle_epi8(_mm512_broadcast_i32x4(Load16(hi2)), _mm512_load_si512(kC.hi_shuffle)),
      _mm512_load_si512(kC.hi_shift));
  // Bitwise select: bits 0..3 from lo, the rest from hi (ternary logic C ? A : B).
  return _mm512_ternarylogic_epi32(lo, hi, _mm512_set1_epi16(0x000F), 0xE4);
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
    } else {
      static_assert(K.decoder == SeDecoder::kLog7);
      // f32 bits: sign to bit 31, the 7-bit field c to the exponent: 2^(c - 127), 0 -> +-0.
      // Sign-extended, bits 7..31 hold the sign; << 23 leaves copies in bits 30 and 31.
      const __m512i c = _mm512_cvtepi8_epi32(Load16(p));
      return _mm512_castsi512_ps(_mm512_and_si512(
          _mm512_slli_epi32(c, 23), _mm512_set1_epi32(static_cast<int>(0xBFFFFFFFu))));
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

// Decodes one 32-element chunk into two vectors of weights, in two steps so that a tile tests
// the chunks of all its rows for the rare cases before decoding any: Load reads what Fast needs
// and returns nonzero when the chunk must take the exact path instead (an OCP E4M3 NaN code, a
// scale whose fold overflows). Exact decodes any chunk (out of line; the tails use it too) and
// gives the same bits as Fast wherever Fast applies.
template <SeKind K, bool H>
class Codec {
 public:
  struct Loaded {
    SeChunkPtrs p;
    float row_scale;
    __m256i bytes;  // fp8: the chunk's 32 codes
  };

  explicit Codec(const SeTables& t)
      : elements_(t), scale_(t.scale), scale_fold_(t.scale_fold), fold_ok_(t.fold_ok) {
    LOWBIT_CHECK(t.fold_exp == SeFoldExp(K.decoder));
    if constexpr (H) {
      static_assert(K.decoder == SeDecoder::kTable && K.bits == 6);
      LOWBIT_CHECK(t.raw_half_exact);
      half_lo_ = _mm512_loadu_si512(t.raw_half);
      half_hi_ = _mm512_loadu_si512(t.raw_half + 32);
    }
    // bm's E4M3 scales 2^(S - 8) fold to 2^S, a float for every int8 S: no overflow check.
    if constexpr (K.decoder == SeDecoder::kFp8E4m3Fin) LOWBIT_CHECK(t.all_fold_ok);
  }

  SE_INLINE uint32_t Load(SeChunkPtrs p, float row_scale, Loaded* ld) const {
    ld->p = p;
    ld->row_scale = row_scale;
    if constexpr (kIsFp8) ld->bytes = ChunkBytes8<K.block>(p.a);
    if constexpr (K.decoder == SeDecoder::kFp8E4m3) {
      const uint32_t fold_bad = (fold_ok_[p.a[0]] & fold_ok_[p.a[kSecondScale]]) ^ 1u;
      return static_cast<uint32_t>(E4m3NanCodes(ld->bytes)) | fold_bad;
    }
    return 0;
  }

  SE_INLINE void Fast(const Loaded& ld, __m512* w) const {
    const SeChunkPtrs p = ld.p;
    if constexpr (H) {
      // 64-entry lookup of the signed codes' fp16 bits, then one widening per 16.
      __m512i codes;
      if constexpr (K.layout == SeLayout::kFp6Split) {
        codes = UnpackSplit(p.a, p.b);
      } else {
        codes = Unpack32x6(p.a + 1, p.a + 1 + kSecondScale + (K.block == 32 ? 12 : 0));
      }
      const __m512i h = _mm512_permutex2var_epi16(half_lo_, codes, half_hi_);
      if constexpr (K.layout == SeLayout::kFp6Split) {
        const __m512 s = _mm512_set1_ps(ld.row_scale);
        w[0] = _mm512_mul_ps(HalfLo(h), s);
        w[1] = _mm512_mul_ps(HalfHi(h), s);
      } else {
        w[0] = _mm512_mul_ps(HalfLo(h), _mm512_set1_ps(scale_[p.a[0]]));
        w[1] = _mm512_mul_ps(HalfHi(h), _mm512_set1_ps(scale_[p.a[kSecondScale]]));
      }
    } else if constexpr (kIsE4m3) {
      // (E4M3 value * 2^-8, exact in fp16) * (scale * 2^8): the same real product the reference
      // rounds once, so the same float.
      const __m512i h = E4m3ToHalfBits(ld.bytes);
      w[0] = _mm512_mul_ps(HalfLo(h), _mm512_set1_ps(scale_fold_[p.a[0]]));
      w[1] = _mm512_mul_ps(HalfHi(h), _mm512_set1_ps(scale_fold_[p.a[kSecondScale]]));
    } else if constexpr (K.decoder == SeDecoder::kFp8E5m2) {
      const __m512i h = E5m2ToHalfBits(ld.bytes);
      w[0] = _mm512_mul_ps(HalfLo(h), _mm512_set1_ps(scale_[p.a[0]]));
      w[1] = _mm512_mul_ps(HalfHi(h), _mm512_set1_ps(scale_[p.a[kSecondScale]]));
    } else if constexpr (K.layout == SeLayout::kBlocks) {
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
      const __m512 s = _mm512_set1_ps(ld.row_scale);
      for (int g = 0; g < 2; ++g) {
        const __m512i hi = _mm512_slli_epi32(Unpack16<2>(p.a + 4 * g), 4);
        const __m512i lo = Unpack16<4>(p.b + 8 * g);
        // (lo & 0xF) | hi: ternary logic (A & C) | B.
        const __m512i code = _mm512_ternarylogic_epi32(lo, hi, _mm512_set1_epi32(0xF), 0xEC);
        w[g] = _mm512_mul_ps(elements_.Table6(code), s);
      }
    }
  }

  // w32[0..32): the chunk's weights, whatever its codes and scales.
  __attribute__((noinline)) void Exact(SeChunkPtrs p, float row_scale, float* w32) const {
    Loaded ld;
    const uint32_t trouble = Load(p, row_scale, &ld);
    __m512 w[2];
    if constexpr (kIsE4m3) {
      if (trouble != 0) {
        // (value * 2^-8) * 2^8 (exact), NaN codes replaced, then * scale.
        const __m512i h = E4m3ToHalfBits(ld.bytes);
        const __m512 k256 = _mm512_set1_ps(256.0f);
        __m512 v0 = _mm512_mul_ps(HalfLo(h), k256);
        __m512 v1 = _mm512_mul_ps(HalfHi(h), k256);
        if constexpr (K.decoder == SeDecoder::kFp8E4m3) {
          const __mmask32 nan = E4m3NanCodes(ld.bytes);
          const __m512 qnan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN());
          v0 = _mm512_mask_mov_ps(v0, static_cast<__mmask16>(nan), qnan);
          v1 = _mm512_mask_mov_ps(v1, static_cast<__mmask16>(nan >> 16), qnan);
        }
        w[0] = _mm512_mul_ps(v0, _mm512_set1_ps(scale_[p.a[0]]));
        w[1] = _mm512_mul_ps(v1, _mm512_set1_ps(scale_[p.a[kSecondScale]]));
      } else {
        Fast(ld, w);
      }
    } else {
      (void)trouble;
      Fast(ld, w);
    }
    _mm512_storeu_ps(w32, w[0]);
    _mm512_storeu_ps(w32 + 16, w[1]);
  }

 private:
  static constexpr bool kIsE4m3 =
      K.decoder == SeDecoder::kFp8E4m3 || K.decoder == SeDecoder::kFp8E4m3Fin;
  static constexpr bool kIsFp8 = kIsE4m3 || K.decoder == SeDecoder::kFp8E5m2;
  // Byte of the second half's scale (block 16: 1 + 16 * bits / 8).
  static constexpr int kSecondScale = K.block == 32 ? 0 : 1 + 2 * K.bits;

  Elements<K> elements_;
  const float* scale_;
  const float* scale_fold_;
  const uint8_t* fold_ok_;
  __m512i half_lo_ = _mm512_setzero_si512();  // H: fp16 bits of raw[0..32)
  __m512i half_hi_ = _mm512_setzero_si512();  // and raw[32..64)
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
template <SeKind K, bool H, int R, int T>
SE_INLINE void Tile(const Codec<K, H>& codec, const TileArgs& ta, int64_t r, int64_t t) {
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
    typename Codec<K, H>::Loaded ld[R];
    uint32_t trouble = 0;
    for (int i = 0; i < R; ++i) {
      const SeChunkPtrs p = SeChunk(g, rows[i], c);
      SePrefetch<K.layout>(p, kSePrefetchBytes);
      trouble |= codec.Load(p, row_scale[i], &ld[i]);
    }
    __m512 w[R][2];
    if (__builtin_expect(trouble != 0, 0)) {
      alignas(64) float buf[R][kSeChunk];
      for (int i = 0; i < R; ++i) codec.Exact(SeChunk(g, rows[i], c), row_scale[i], buf[i]);
      for (int i = 0; i < R; ++i) {
        w[i][0] = _mm512_load_ps(buf[i]);
        w[i][1] = _mm512_load_ps(buf[i] + 16);
      }
    } else {
      for (int i = 0; i < R; ++i) codec.Fast(ld[i], w[i]);
    }
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
    alignas(64) float buf[R][kSeChunk];
    for (int i = 0; i < R; ++i) {
      SeTailBuffer tail;
      codec.Exact(SeTailChunk(g, rows[i], c, &tail), row_scale[i], buf[i]);
    }
    for (int j = 0; j < T; ++j) {
      const float* xc = x + j * a.cols + c * kSeChunk;
      const __m512 x0 = _mm512_maskz_loadu_ps(m0, xc);
      const __m512 x1 = _mm512_maskz_loadu_ps(m1, xc + 16);
      for (int i = 0; i < R; ++i) {
        acc[j][i][0] = _mm512_mask3_fmadd_ps(x0, _mm512_load_ps(buf[i]), acc[j][i][0], m0);
        acc[j][i][1] = _mm512_mask3_fmadd_ps(x1, _mm512_load_ps(buf[i] + 16), acc[j][i][1], m1);
      }
    }
  }
  for (int j = 0; j < T; ++j)
    for (int i = 0; i < R; ++i) a.y[(t + j) * a.ldy + r + i] = Reduce(acc[j][i][0], acc[j][i][1]);
}

template <SeKind K, bool H>
void RunWith(const SeTables& tables, const MatmulArgs& a, int64_t r0, int64_t r1) {
  const Codec<K, H> codec(tables);
  const SeGeometry g = MakeSeGeometry(K, a.cols, a.format->RowBytes(a.cols));
  const TileArgs ta{&a, &g, a.w + a.format->HeaderBytes(a.rows, a.cols)};
  int64_t t = 0;
  for (; t + 4 <= a.n_tokens; t += 4) {
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) Tile<K, H, 2, 4>(codec, ta, r, t);
    for (; r < r1; ++r) Tile<K, H, 1, 4>(codec, ta, r, t);
  }
  for (; t < a.n_tokens; ++t) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) Tile<K, H, 4, 1>(codec, ta, r, t);
    for (; r < r1; ++r) Tile<K, H, 1, 1>(codec, ta, r, t);
  }
}

template <SeKind K>
void RunAvx512(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const SeTables& tables = SharedExponentTablesFor(*a.format);
  if constexpr (K.decoder == SeDecoder::kTable && K.bits == 6) {
    if (tables.raw_half_exact) return RunWith<K, true>(tables, a, r0, r1);
  }
  RunWith<K, false>(tables, a, r0, r1);
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
