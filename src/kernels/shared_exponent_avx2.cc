// AVX2 + FMA (+ F16C) level of the shared-exponent kernels. One loop (Tile) for every format,
// templated on the codec, which turns 8 element codes into 8 f32 lanes (vpermps on a magnitude
// table of up to 32 entries, an int8 or fp16 conversion, or an exponent-field shift) times the
// block's scale. Order of operations: see shared_exponent_kernels.h (the same bits as the
// scalar and AVX-512 levels).
#include <immintrin.h>

#include <array>
#include <limits>
#include <utility>

#include "kernels/shared_exponent_kernels.h"

namespace lowbit::kernels {
namespace {

#define SE_INLINE inline __attribute__((always_inline))

// Shuffle + shift that put code i of a W-bit little-endian stream (8 codes, W bytes) into bits
// [0, W) of dword i; the bits above are the next codes (callers ignore them).
template <int W>
struct Unpack8Consts {
  alignas(32) uint8_t shuffle[32];
  alignas(32) uint32_t shift[8];
  constexpr Unpack8Consts() : shuffle{}, shift{} {
    for (int i = 0; i < 8; ++i) {
      const int byte = i * W / 8;
      shuffle[4 * i + 0] = static_cast<uint8_t>(byte);
      shuffle[4 * i + 1] = static_cast<uint8_t>(byte + 1 < 16 ? byte + 1 : 0x80);
      shuffle[4 * i + 2] = 0x80;
      shuffle[4 * i + 3] = 0x80;
      shift[i] = static_cast<uint32_t>(i * W % 8);
    }
  }
};

// Reads 16 bytes at p (the W code bytes and up to 16 - W more).
template <int W>
SE_INLINE __m256i Unpack8(const uint8_t* p) {
  static constexpr Unpack8Consts<W> kC;
  const __m256i bytes =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i v =
      _mm256_shuffle_epi8(bytes, _mm256_load_si256(reinterpret_cast<const __m256i*>(kC.shuffle)));
  return _mm256_srlv_epi32(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(kC.shift)));
}

SE_INLINE __m128i Load8(const uint8_t* p) {
  return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
}

// v with its sign flipped where bit 31 of sign_bits is set.
SE_INLINE __m256 ApplySign(__m256 v, __m256i sign_bits) {
  const __m256i sign = _mm256_and_si256(sign_bits, _mm256_set1_epi32(static_cast<int>(0x80000000u)));
  return _mm256_xor_ps(v, _mm256_castsi256_ps(sign));
}

// Lanes of b where bit 31 of sel is set, else a.
SE_INLINE __m256 Select(__m256 a, __m256 b, __m256i sel) {
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(sel));
}

template <SeKind K>
class Elements {
 public:
  static constexpr int kMagBits = K.bits - 1;

  explicit Elements(const SeTables& t) {
    if constexpr (K.decoder == SeDecoder::kTable) {
      // Magnitudes (codes with the sign bit clear), repeated to fill 8 entries when fewer.
      const int mask = (1 << kMagBits) - 1;
      for (int q = 0; q < 4; ++q) {
        alignas(32) float table[8];
        for (int i = 0; i < 8; ++i) table[i] = t.raw[(8 * q + i) & mask];
        t_[q] = _mm256_load_ps(table);
      }
    }
  }

  // Sign-magnitude codes of K.bits bits in the low bits of each dword.
  SE_INLINE __m256 Table(__m256i idx) const {
    __m256 mag = _mm256_permutevar8x32_ps(t_[0], idx);  // index bits 0..2
    if constexpr (kMagBits >= 4) {
      const __m256i bit3 = _mm256_slli_epi32(idx, 28);
      mag = Select(mag, _mm256_permutevar8x32_ps(t_[1], idx), bit3);
      if constexpr (kMagBits == 5) {
        const __m256 upper = Select(_mm256_permutevar8x32_ps(t_[2], idx),
                                    _mm256_permutevar8x32_ps(t_[3], idx), bit3);
        mag = Select(mag, upper, _mm256_slli_epi32(idx, 27));
      }
    }
    return ApplySign(mag, _mm256_slli_epi32(idx, 32 - K.bits));
  }

  // Decodes 8 codes starting at byte p (raw values, before the scale).
  SE_INLINE __m256 Decode8(const uint8_t* p) const {
    constexpr int W = K.bits;
    if constexpr (K.decoder == SeDecoder::kTable) {
      return Table(Unpack8<W>(p));
    } else if constexpr (K.decoder == SeDecoder::kTwosInt8) {
      return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(Load8(p)));
    } else if constexpr (K.decoder == SeDecoder::kSignMagInt) {
      const __m256i c = W == 8 ? _mm256_cvtepu8_epi32(Load8(p)) : Unpack8<W>(p);
      const __m256 mag =
          _mm256_cvtepi32_ps(_mm256_and_si256(c, _mm256_set1_epi32((1 << (W - 1)) - 1)));
      return ApplySign(mag, _mm256_slli_epi32(c, 32 - W));
    } else if constexpr (K.decoder == SeDecoder::kFp8E5m2) {
      // E5M2 is the upper byte of an fp16 (Inf and NaN included).
      return _mm256_cvtph_ps(_mm_slli_epi16(_mm_cvtepu8_epi16(Load8(p)), 8));
    } else if constexpr (K.decoder == SeDecoder::kFp8E4m3 || K.decoder == SeDecoder::kFp8E4m3Fin) {
      // fp16 bits: sign to bit 15, magnitude to bits 7..13, i.e. the E4M3 value * 2^-8.
      const __m128i c16 = _mm_cvtepu8_epi16(Load8(p));
      const __m128i h = _mm_and_si128(_mm_srai_epi16(_mm_slli_epi16(c16, 8), 1),
                                      _mm_set1_epi16(static_cast<short>(0xBFFF)));
      __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
      if constexpr (K.decoder == SeDecoder::kFp8E4m3) {
        // S.1111.111 is NaN (OCP E4M3); through fp16 it would read 480.
        const __m128i nan16 = _mm_cmpeq_epi16(_mm_and_si128(c16, _mm_set1_epi16(0x7F)),
                                              _mm_set1_epi16(0x7F));
        v = Select(v, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()),
                   _mm256_cvtepi16_epi32(nan16));
      }
      return v;
    } else {
      static_assert(K.decoder == SeDecoder::kLog7);
      // f32 bits: sign to bit 31, the 7-bit field c to the exponent: 2^(c - 127), 0 -> +-0.
      const __m256i c = _mm256_cvtepu8_epi32(Load8(p));
      const __m256i bits = _mm256_srai_epi32(_mm256_slli_epi32(c, 24), 1);
      return _mm256_castsi256_ps(
          _mm256_and_si256(bits, _mm256_set1_epi32(static_cast<int>(0xBFFFFFFFu))));
    }
  }

 private:
  __m256 t_[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                  _mm256_setzero_ps()};
};

// Decodes group j (elements 8j .. 8j + 7) of a 32-element chunk.
template <SeKind K>
class Codec {
 public:
  explicit Codec(const SeTables& t) : elements_(t), scale_(t.scale) {}

  SE_INLINE __m256 Group(SeChunkPtrs p, float row_scale, int j) const {
    if constexpr (K.layout == SeLayout::kBlocks) {
      constexpr int kGroupBytes = K.bits;  // 8 codes
      constexpr int kGroupsPerBlock = K.block / 8;
      constexpr int kBlockBytes = 1 + kGroupsPerBlock * kGroupBytes;
      const uint8_t* blk = p.a + (j / kGroupsPerBlock) * kBlockBytes;
      const uint8_t* codes = blk + 1 + (j % kGroupsPerBlock) * kGroupBytes;
      return _mm256_mul_ps(elements_.Decode8(codes), _mm256_set1_ps(scale_[blk[0]]));
    } else {
      // 4+2 split: code = hi2 << 4 | lo4.
      const __m256i hi = _mm256_slli_epi32(Unpack8<2>(p.a + 2 * j), 4);
      const __m256i lo = _mm256_and_si256(Unpack8<4>(p.b + 4 * j), _mm256_set1_epi32(0xF));
      return _mm256_mul_ps(elements_.Table(_mm256_or_si256(hi, lo)), _mm256_set1_ps(row_scale));
    }
  }

 private:
  Elements<K> elements_;
  const float* scale_;
};

SE_INLINE float Reduce(const __m256* acc) {
  const __m256 s8 = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

struct TileArgs {
  const MatmulArgs* a;
  const SeGeometry* g;
  const uint8_t* w0;  // row 0 of the weights
};

// y for rows [r, r + R) x tokens [t, t + T); each group of 8 weights is decoded once for the T
// tokens and each x group loaded once for the R rows.
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
  __m256 acc[T][R][4];
  for (int q = 0; q < T; ++q)
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < 4; ++j) acc[q][i][j] = _mm256_setzero_ps();
  const float* x = a.x + t * a.cols;
  for (int64_t c = 0; c < g.n_fast; ++c) {
    SeChunkPtrs p[R];
    for (int i = 0; i < R; ++i) {
      p[i] = SeChunk(g, rows[i], c);
      SePrefetch<K.layout>(p[i], kSePrefetchBytes);
    }
    for (int j = 0; j < 4; ++j) {
      __m256 w[R];
      for (int i = 0; i < R; ++i) w[i] = codec.Group(p[i], row_scale[i], j);
      for (int q = 0; q < T; ++q) {
        const __m256 xv = _mm256_loadu_ps(x + q * a.cols + c * kSeChunk + 8 * j);
        for (int i = 0; i < R; ++i) acc[q][i][j] = _mm256_fmadd_ps(xv, w[i], acc[q][i][j]);
      }
    }
  }
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t c = g.n_fast; c < g.n_chunks; ++c) {
    const int64_t n = SeMin(kSeChunk, a.cols - c * kSeChunk);
    SeTailBuffer buf[R];
    SeChunkPtrs p[R];
    for (int i = 0; i < R; ++i) p[i] = SeTailChunk(g, rows[i], c, &buf[i]);
    for (int j = 0; j < 4; ++j) {
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - 8 * j)), iota);
      __m256 w[R];
      for (int i = 0; i < R; ++i) w[i] = codec.Group(p[i], row_scale[i], j);
      for (int q = 0; q < T; ++q) {
        const __m256 xv = _mm256_maskload_ps(x + q * a.cols + c * kSeChunk + 8 * j, mask);
        for (int i = 0; i < R; ++i) {
          acc[q][i][j] = _mm256_blendv_ps(acc[q][i][j], _mm256_fmadd_ps(xv, w[i], acc[q][i][j]),
                                          _mm256_castsi256_ps(mask));
        }
      }
    }
  }
  for (int q = 0; q < T; ++q)
    for (int i = 0; i < R; ++i) a.y[(t + q) * a.ldy + r + i] = Reduce(acc[q][i]);
}

template <SeKind K>
void RunAvx2(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const Codec<K> codec(SharedExponentTablesFor(*a.format));
  const SeGeometry g = MakeSeGeometry(K, a.cols, a.format->RowBytes(a.cols));
  const TileArgs ta{&a, &g, a.w + a.format->HeaderBytes(a.rows, a.cols)};
  int64_t t = 0;
  for (; t + 2 <= a.n_tokens; t += 2) {
    for (int64_t r = r0; r < r1; ++r) Tile<K, 1, 2>(codec, ta, r, t);
  }
  for (; t < a.n_tokens; ++t) {
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) Tile<K, 2, 1>(codec, ta, r, t);
    for (; r < r1; ++r) Tile<K, 1, 1>(codec, ta, r, t);
  }
}

template <size_t... I>
constexpr std::array<RowRangeFn, sizeof...(I)> MakeFns(std::index_sequence<I...>) {
  return {&RunAvx2<kSeKinds[I].kind>...};
}

}  // namespace

RowRangeFn SharedExponentAvx2Fn(int index) {
  static constexpr std::array<RowRangeFn, kNumSeKinds> kFns =
      MakeFns(std::make_index_sequence<kNumSeKinds>());
  return index >= 0 && index < kNumSeKinds ? kFns[index] : nullptr;
}

}  // namespace lowbit::kernels
