// Scalar level of the shared-exponent kernels: the accumulation order of
// shared_exponent_kernels.h written out one lane at a time (std::fma per element), so it gives
// the same bits as the AVX2 and AVX-512 levels and serves machines without them.
#include <array>
#include <cmath>
#include <utility>

#include "kernels/shared_exponent_kernels.h"

namespace lowbit::kernels {
namespace {

// Code i of a little-endian bit stream of W-bit codes (read within the block's bytes).
template <int W>
inline uint32_t StreamCode(const uint8_t* codes, int i) {
  const int bit = i * W;
  const int byte = bit / 8;
  const int shift = bit % 8;
  uint32_t v = codes[byte];
  if (shift + W > 8) v |= static_cast<uint32_t>(codes[byte + 1]) << 8;
  return (v >> shift) & ((1u << W) - 1);
}

template <SeKind K>
struct ScalarCodec {
  const SeTables& t;

  // w[0..32): the chunk's decoded weights, raw(code) * scale (one f32 multiplication each).
  void Chunk(SeChunkPtrs p, float row_scale, float* w) const {
    if constexpr (K.layout == SeLayout::kBlocks) {
      constexpr int kBlockBytes = 1 + K.block * K.bits / 8;
      for (int b = 0; b < kSeChunk / K.block; ++b) {
        const uint8_t* blk = p.a + b * kBlockBytes;
        const float s = t.scale[blk[0]];
        for (int i = 0; i < K.block; ++i) {
          w[b * K.block + i] = t.raw[StreamCode<K.bits>(blk + 1, i)] * s;
        }
      }
    } else {
      for (int i = 0; i < kSeChunk; ++i) {
        const uint32_t code = (((p.a[i / 4] >> (2 * (i % 4))) & 0x3u) << 4) |
                              ((p.b[i / 2] >> (4 * (i % 2))) & 0xFu);
        w[i] = t.raw[code] * row_scale;
      }
    }
  }
};

template <SeKind K>
void RunScalar(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const ScalarCodec<K> codec{SharedExponentTablesFor(*a.format)};
  const int64_t row_bytes = a.format->RowBytes(a.cols);
  const uint8_t* w0 = a.w + a.format->HeaderBytes(a.rows, a.cols);
  const SeGeometry g = MakeSeGeometry(K, a.cols, row_bytes);
  constexpr int64_t kTokens = 8;  // tokens sharing one decoded chunk
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w0 + r * row_bytes;
    const float row_scale = K.layout == SeLayout::kFp6Split ? SeFp6SplitRowScale(row) : 1.0f;
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kTokens) {
      const int64_t nt = SeMin(kTokens, a.n_tokens - t0);
      float acc[kTokens][kSeChunk] = {};
      for (int64_t c = 0; c < g.n_chunks; ++c) {
        SeTailBuffer buf;
        const SeChunkPtrs p = c < g.n_fast ? SeChunk(g, row, c) : SeTailChunk(g, row, c, &buf);
        float w[kSeChunk];
        codec.Chunk(p, row_scale, w);
        const int64_t n = SeMin(kSeChunk, a.cols - c * kSeChunk);
        for (int64_t t = 0; t < nt; ++t) {
          const float* x = a.x + (t0 + t) * a.cols + c * kSeChunk;
          for (int64_t l = 0; l < n; ++l) acc[t][l] = std::fma(x[l], w[l], acc[t][l]);
        }
      }
      for (int64_t t = 0; t < nt; ++t) a.y[(t0 + t) * a.ldy + r] = SeReduce32(acc[t]);
    }
  }
}

template <size_t... I>
constexpr std::array<RowRangeFn, sizeof...(I)> MakeFns(std::index_sequence<I...>) {
  return {&RunScalar<kSeKinds[I].kind>...};
}

}  // namespace

RowRangeFn SharedExponentScalarFn(int index) {
  static constexpr std::array<RowRangeFn, kNumSeKinds> kFns =
      MakeFns(std::make_index_sequence<kNumSeKinds>());
  return index >= 0 && index < kNumSeKinds ? kFns[index] : nullptr;
}

}  // namespace lowbit::kernels
