// Fused y = x . W^T kernels for the shared-exponent block formats (mx, bfp, bm, bl, fp6split):
// the kernel kinds, the row geometry every instruction set shares, and the accumulation order
// that makes every level produce the same bits. docs/kernels_shared_exponent.md has the details.
//
// Accumulation order (identical for scalar, AVX2 and AVX-512, and for any thread count, row
// tiling or number of tokens multiplied at once):
//   * a row is cut into chunks of 32 elements (k = 32c .. 32c + 31); element k belongs to virtual
//     lane k mod 32 (AVX-512: 2 zmm accumulators, AVX2: 4 ymm, scalar: float[32]);
//   * each lane accumulates acc = fma(x[k], w[k], acc) (one rounding) for its k in increasing
//     order, starting from +0, where w[k] = raw(code) * scale is the exact decoded weight;
//     lanes of a partial last chunk with k >= cols are left untouched;
//   * y = tree sum of the 32 lanes: s16[l] = v[l] + v[l+16], s8[l] = s16[l] + s16[l+8], then +4,
//     +2, +1 (each a plain f32 addition).
// Weights are read in the format's own packed layout (no repack): each block is decoded straight
// from its bytes. The vector decoders read up to 16 bytes past a code group; chunks for which that
// could leave the row (and a partial last chunk) are decoded from a zero-padded stack copy.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/kernel.h"
#include "kernels/shared_exponent_desc.h"

namespace lowbit::kernels {

struct SeKindEntry {
  SeKind kind;
  const char* name;
};

// Every kind a kernel is compiled for; LookupSharedExponentKernel answers for a format whose
// tables are of one of these kinds.
inline constexpr SeKindEntry kSeKinds[] = {
    {{SeLayout::kBlocks, SeDecoder::kTable, 3, 16}, "se.table3.b16"},
    {{SeLayout::kBlocks, SeDecoder::kTable, 3, 32}, "se.table3.b32"},
    {{SeLayout::kBlocks, SeDecoder::kTable, 4, 16}, "se.table4.b16"},
    {{SeLayout::kBlocks, SeDecoder::kTable, 4, 32}, "se.table4.b32"},
    {{SeLayout::kBlocks, SeDecoder::kTable, 5, 16}, "se.table5.b16"},
    {{SeLayout::kBlocks, SeDecoder::kTable, 5, 32}, "se.table5.b32"},
    {{SeLayout::kBlocks, SeDecoder::kTable, 6, 16}, "se.table6.b16"},
    {{SeLayout::kBlocks, SeDecoder::kTable, 6, 32}, "se.table6.b32"},
    {{SeLayout::kBlocks, SeDecoder::kTwosInt8, 8, 16}, "se.int8.b16"},
    {{SeLayout::kBlocks, SeDecoder::kTwosInt8, 8, 32}, "se.int8.b32"},
    {{SeLayout::kBlocks, SeDecoder::kSignMagInt, 5, 16}, "se.signmag5.b16"},
    {{SeLayout::kBlocks, SeDecoder::kSignMagInt, 5, 32}, "se.signmag5.b32"},
    {{SeLayout::kBlocks, SeDecoder::kSignMagInt, 6, 16}, "se.signmag6.b16"},
    {{SeLayout::kBlocks, SeDecoder::kSignMagInt, 6, 32}, "se.signmag6.b32"},
    {{SeLayout::kBlocks, SeDecoder::kSignMagInt, 7, 16}, "se.signmag7.b16"},
    {{SeLayout::kBlocks, SeDecoder::kSignMagInt, 7, 32}, "se.signmag7.b32"},
    {{SeLayout::kBlocks, SeDecoder::kSignMagInt, 8, 16}, "se.signmag8.b16"},
    {{SeLayout::kBlocks, SeDecoder::kSignMagInt, 8, 32}, "se.signmag8.b32"},
    {{SeLayout::kBlocks, SeDecoder::kFp8E4m3, 8, 16}, "se.e4m3.b16"},
    {{SeLayout::kBlocks, SeDecoder::kFp8E4m3, 8, 32}, "se.e4m3.b32"},
    {{SeLayout::kBlocks, SeDecoder::kFp8E4m3Fin, 8, 16}, "se.e4m3fin.b16"},
    {{SeLayout::kBlocks, SeDecoder::kFp8E4m3Fin, 8, 32}, "se.e4m3fin.b32"},
    {{SeLayout::kBlocks, SeDecoder::kFp8E5m2, 8, 16}, "se.e5m2.b16"},
    {{SeLayout::kBlocks, SeDecoder::kFp8E5m2, 8, 32}, "se.e5m2.b32"},
    {{SeLayout::kBlocks, SeDecoder::kLog7, 8, 16}, "se.log7.b16"},
    {{SeLayout::kBlocks, SeDecoder::kLog7, 8, 32}, "se.log7.b32"},
    {{SeLayout::kFp6Split, SeDecoder::kTable, 6, 0}, "se.fp6split"},
};
inline constexpr int kNumSeKinds = static_cast<int>(sizeof(kSeKinds) / sizeof(kSeKinds[0]));

// Index of kind in kSeKinds, or -1.
constexpr int SeKindIndex(const SeKind& kind) {
  for (int i = 0; i < kNumSeKinds; ++i) {
    if (kSeKinds[i].kind == kind) return i;
  }
  return -1;
}

// Per-level kernels of kSeKinds[index] (shared_exponent_{scalar,avx2,avx512}.cc).
RowRangeFn SharedExponentScalarFn(int index);
RowRangeFn SharedExponentAvx2Fn(int index);
RowRangeFn SharedExponentAvx512Fn(int index);

// fp6split's per-row fp16 scale (row bytes 0..1, little-endian) as a float.
float SeFp6SplitRowScale(const uint8_t* row);

// Everything below is compiled into each instruction-set file with that file's flags; the
// anonymous namespace keeps one private copy per file (no cross-ISA ODR merging).
namespace {

constexpr int64_t kSeChunk = 32;    // elements per chunk (= virtual lanes)
constexpr int64_t kSeOverRead = 16;  // bytes a vector decoder may read past a code group

// Where a row's chunks live.
struct SeGeometry {
  SeLayout layout;
  int64_t cols;
  int64_t row_bytes;
  int64_t n_chunks;  // ceil(cols / 32)
  int64_t n_fast;    // chunks [0, n_fast) are whole and may be decoded in place
  // kBlocks: chunk c starts at byte c * chunk_bytes of the row.
  int64_t chunk_bytes;
  // kFp6Split: the 2-bit plane of chunk c at 2 + 8c, the 4-bit plane at lo_offset + 16c.
  int64_t hi_bytes;
  int64_t lo_offset;
  int64_t lo_bytes;
};

// Byte pointers of one chunk: kBlocks: a = the chunk's first block; kFp6Split: a = its 2-bit
// plane bytes, b = its 4-bit plane bytes.
struct SeChunkPtrs {
  const uint8_t* a;
  const uint8_t* b;
};

// Zero-padded copies for chunks that may not be decoded in place.
struct SeTailBuffer {
  alignas(64) uint8_t a[128];
  alignas(64) uint8_t b[64];
};

// Software prefetch distance of the vector levels. A tile streams R rows at once, each only a few
// KiB long and right after the previous tile's, a pattern the hardware prefetchers follow late:
// without this, a core reached about a third of its DRAM read bandwidth on 4096 x 11008 (AMD
// Zen, docs/kernels_shared_exponent.md "Speed"). Each chunk requests its row's bytes this far
// ahead (lines already requested cost one load slot). The distance is per row, so R rows keep
// R times this in flight: 2048 suited Zen, but on the 2-core Xeon VM it left the AVX-512 tiles at
// 80-85% of DRAM where 512 reaches 87-93% (scan: docs/kernels_shared_exponent.md, "Software
// prefetch").
constexpr int64_t kSePrefetchBytes = 512;

template <SeLayout L>
inline void SePrefetch(SeChunkPtrs p, int64_t distance) {
  // Integer arithmetic: the address may lie past the row (and the tensor); a prefetch never
  // faults, but forming such a pointer would be undefined.
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p.a) + distance));
  if constexpr (L == SeLayout::kFp6Split) {
    __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p.b) + distance));
  }
}

inline int64_t SeMin(int64_t p, int64_t q) { return p < q ? p : q; }
inline int64_t SeMax(int64_t p, int64_t q) { return p > q ? p : q; }

inline SeGeometry MakeSeGeometry(const SeKind& kind, int64_t cols, int64_t row_bytes) {
  SeGeometry g{};
  g.layout = kind.layout;
  g.cols = cols;
  g.row_bytes = row_bytes;
  g.n_chunks = (cols + kSeChunk - 1) / kSeChunk;
  const int64_t whole = cols / kSeChunk;
  if (kind.layout == SeLayout::kBlocks) {
    const int64_t block_bytes = 1 + kind.block * kind.bits / 8;
    g.chunk_bytes = (kSeChunk / kind.block) * block_bytes;
    // Chunk c is read up to byte (c + 1) * chunk_bytes + kSeOverRead of the row.
    const int64_t safe = (row_bytes - kSeOverRead) / g.chunk_bytes;
    g.n_fast = SeMax(0, SeMin(whole, row_bytes >= kSeOverRead ? safe : 0));
  } else {
    g.hi_bytes = (cols + 3) / 4;
    g.lo_offset = 2 + g.hi_bytes;
    g.lo_bytes = (cols + 1) / 2;
    // The 4-bit plane ends the row: chunk c reads it up to 16 (c + 1) + kSeOverRead; its 2-bit
    // plane reads end before that.
    const int64_t safe = (g.lo_bytes - kSeOverRead) / 16;
    g.n_fast = SeMax(0, SeMin(whole, g.lo_bytes >= kSeOverRead ? safe : 0));
  }
  return g;
}

inline SeChunkPtrs SeChunk(const SeGeometry& g, const uint8_t* row, int64_t c) {
  if (g.layout == SeLayout::kBlocks) return {row + c * g.chunk_bytes, nullptr};
  return {row + 2 + 8 * c, row + g.lo_offset + 16 * c};
}

// The chunk's bytes that exist in the row, copied into buf (the rest zero). Zero bytes decode
// to +-0 weights with a finite scale; lanes past cols are masked anyway.
inline SeChunkPtrs SeTailChunk(const SeGeometry& g, const uint8_t* row, int64_t c,
                               SeTailBuffer* buf) {
  std::memset(buf, 0, sizeof(*buf));
  if (g.layout == SeLayout::kBlocks) {
    const int64_t begin = c * g.chunk_bytes;
    const int64_t n = SeMin(g.chunk_bytes, g.row_bytes - begin);
    std::memcpy(buf->a, row + begin, static_cast<size_t>(n));
    return {buf->a, nullptr};
  }
  const int64_t n_hi = SeMin(8, g.hi_bytes - 8 * c);
  const int64_t n_lo = SeMin(16, g.lo_bytes - 16 * c);
  std::memcpy(buf->a, row + 2 + 8 * c, static_cast<size_t>(n_hi));
  std::memcpy(buf->b, row + g.lo_offset + 16 * c, static_cast<size_t>(n_lo));
  return {buf->a, buf->b};
}

// The tree of the 32 lanes (see the file comment), shared by the scalar path and the tests.
inline float SeReduce32(const float* v) {
  float s[16];
  for (int l = 0; l < 16; ++l) s[l] = v[l] + v[l + 16];
  for (int l = 0; l < 8; ++l) s[l] = s[l] + s[l + 8];
  for (int l = 0; l < 4; ++l) s[l] = s[l] + s[l + 4];
  for (int l = 0; l < 2; ++l) s[l] = s[l] + s[l + 2];
  return s[0] + s[1];
}

}  // namespace

}  // namespace lowbit::kernels
