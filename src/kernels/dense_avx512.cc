// AVX-512 path of the dense product (dense.h): register tiles of 6 rows x 4 vectors (24
// accumulators: 64 floats or 32 doubles per row), so each B vector loaded feeds 6 FMAs. Full
// tiles run Tile6x4; the edges (fewer rows or vectors) the generic Tile.
//
// Depth blocking: k runs in blocks of kDepthBlock; a tile stores its accumulators to Y after a
// block and reloads them for the next. The store and reload are exact, so every element is still
// the one fma chain over k = 0 .. depth-1 that dense.h promises (the same bits as one pass), while
// a column block's packed panel (kDepthBlock x 64 values) stays in L2 for all the row tiles of
// the call. Without it, deep products (Hessians over 65,536 tokens, weight gradients over a
// batch's tokens) streamed a panel of megabytes per tile from L3 or DRAM.
#include <immintrin.h>

#include <array>
#include <utility>
#include <vector>

#include "kernels/dense.h"

namespace lowbit::kernels::detail {
namespace {

constexpr int kRows = 6;
constexpr int kMaxVecs = 4;

template <class T>
struct Vec;
template <>
struct Vec<double> {
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int kLanes = 8;
  static V Zero() { return _mm512_setzero_pd(); }
  static V Load(const double* p) { return _mm512_loadu_pd(p); }
  static V LoadMasked(Mask m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
  static V Broadcast(double a) { return _mm512_set1_pd(a); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static void Store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static void StoreMasked(double* p, Mask m, V v) { _mm512_mask_storeu_pd(p, m, v); }
};
template <>
struct Vec<float> {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;
  static V Zero() { return _mm512_setzero_ps(); }
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  static V LoadMasked(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static V Broadcast(float a) { return _mm512_set1_ps(a); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void StoreMasked(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
};

constexpr int64_t kDepthBlock = 1024;  // k per panel: 1024 x 64 floats = 256 KiB (doubles 512 KiB), in L2

// One depth block [k0, k0 + kc) of the tile at columns [c0, c0 + lanes * kVecs) of rows
// [r, r + kNr); `last_mask` limits the last vector. b: row k0 of those columns of B
// (b[k * ldb + j] is B[k0 + k][c0 + j]), the matrix itself or a packed panel. resume: start from
// the tile's values in Y (the chain so far) instead of +0.
template <class T, int kNr, int kVecs>
void Tile(const DenseArgs<T>& g, int64_t r, const T* b, int64_t ldb, int64_t c0, int64_t k0, int64_t kc,
          bool resume, typename Vec<T>::Mask last_mask) {
  using W = Vec<T>;
  constexpr int L = W::kLanes;
  const int64_t lda = g.stride_a(), ldy = g.stride_y();
  typename W::V acc[kNr][kVecs];
  for (int i = 0; i < kNr; ++i) {
    const T* yr = g.y + (r + i) * ldy + c0;
    for (int v = 0; v < kVecs; ++v) {
      acc[i][v] = !resume               ? W::Zero()
                  : v == kVecs - 1 ? W::LoadMasked(last_mask, yr + L * v)
                                   : W::Load(yr + L * v);
    }
  }
  const T* __restrict a = g.a + r * lda + k0;
  for (int64_t k = 0; k < kc; ++k) {
    const T* bk = b + k * ldb;
    typename W::V bv[kVecs];
    for (int v = 0; v < kVecs; ++v) {
      bv[v] = v == kVecs - 1 ? W::LoadMasked(last_mask, bk + L * v) : W::Load(bk + L * v);
    }
    for (int i = 0; i < kNr; ++i) {
      const typename W::V ai = W::Broadcast(a[i * lda + k]);
      for (int v = 0; v < kVecs; ++v) acc[i][v] = W::Fma(ai, bv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < kNr; ++i) {
    T* yr = g.y + (r + i) * ldy + c0;
    for (int v = 0; v < kVecs - 1; ++v) W::Store(yr + L * v, acc[i][v]);
    W::StoreMasked(yr + L * (kVecs - 1), last_mask, acc[i][kVecs - 1]);
  }
}

// The full tile, 6 rows x 4 vectors, with the accumulators in named variables: GCC 12 keeps an
// array of 24 vector accumulators on the stack (a store per FMA), which halves the speed.
template <class T>
void Tile6x4(const DenseArgs<T>& g, int64_t r, const T* b, int64_t ldb, int64_t c0, int64_t k0, int64_t kc,
             bool resume, typename Vec<T>::Mask last_mask) {
  using W = Vec<T>;
  using V = typename W::V;
  constexpr int L = W::kLanes;
  const int64_t lda = g.stride_a(), ldy = g.stride_y();
  const T* a = g.a + r * lda + k0;
#define LOWBIT_ROW_ACC(i)                                                                 \
  V c##i##0 = W::Zero(), c##i##1 = W::Zero(), c##i##2 = W::Zero(), c##i##3 = W::Zero(); \
  if (resume) {                                                                           \
    const T* yr = g.y + (r + (i)) * ldy + c0;                                             \
    c##i##0 = W::Load(yr);                                                                \
    c##i##1 = W::Load(yr + L);                                                            \
    c##i##2 = W::Load(yr + 2 * L);                                                        \
    c##i##3 = W::LoadMasked(last_mask, yr + 3 * L);                                       \
  }
  LOWBIT_ROW_ACC(0) LOWBIT_ROW_ACC(1) LOWBIT_ROW_ACC(2) LOWBIT_ROW_ACC(3) LOWBIT_ROW_ACC(4) LOWBIT_ROW_ACC(5)
#undef LOWBIT_ROW_ACC
  for (int64_t k = 0; k < kc; ++k) {
    const T* bk = b + k * ldb;
    const V b0 = W::Load(bk), b1 = W::Load(bk + L), b2 = W::Load(bk + 2 * L);
    const V b3 = W::LoadMasked(last_mask, bk + 3 * L);
#define LOWBIT_ROW_FMA(i)                              \
  {                                                    \
    const V ai = W::Broadcast(a[(i) * lda + k]);       \
    c##i##0 = W::Fma(ai, b0, c##i##0);                 \
    c##i##1 = W::Fma(ai, b1, c##i##1);                 \
    c##i##2 = W::Fma(ai, b2, c##i##2);                 \
    c##i##3 = W::Fma(ai, b3, c##i##3);                 \
  }
    LOWBIT_ROW_FMA(0) LOWBIT_ROW_FMA(1) LOWBIT_ROW_FMA(2) LOWBIT_ROW_FMA(3) LOWBIT_ROW_FMA(4) LOWBIT_ROW_FMA(5)
#undef LOWBIT_ROW_FMA
  }
#define LOWBIT_ROW_STORE(i)                                  \
  {                                                          \
    T* yr = g.y + (r + (i)) * ldy + c0;                      \
    W::Store(yr, c##i##0);                                   \
    W::Store(yr + L, c##i##1);                               \
    W::Store(yr + 2 * L, c##i##2);                           \
    W::StoreMasked(yr + 3 * L, last_mask, c##i##3);          \
  }
  LOWBIT_ROW_STORE(0) LOWBIT_ROW_STORE(1) LOWBIT_ROW_STORE(2) LOWBIT_ROW_STORE(3) LOWBIT_ROW_STORE(4)
  LOWBIT_ROW_STORE(5)
#undef LOWBIT_ROW_STORE
}

template <class T>
using TileFn = void (*)(const DenseArgs<T>&, int64_t, const T*, int64_t, int64_t, int64_t, int64_t, bool,
                        typename Vec<T>::Mask);

// kTiles[vecs - 1][nr - 1]: the tile of nr rows and vecs vectors.
template <class T, int kVecs, int... kNr>
constexpr std::array<TileFn<T>, kRows> RowTiles(std::integer_sequence<int, kNr...>) {
  return {&Tile<T, kNr + 1, kVecs>...};
}
template <class T, int... kVecs>
constexpr std::array<std::array<TileFn<T>, kRows>, kMaxVecs> Tiles(std::integer_sequence<int, kVecs...>) {
  return {RowTiles<T, kVecs + 1>(std::make_integer_sequence<int, kRows>())...};
}
template <class T>
constexpr auto kTiles = Tiles<T>(std::make_integer_sequence<int, kMaxVecs>());

}  // namespace

template <class T>
void MultiplyRowsAvx512(const DenseArgs<T>& g, int64_t r0, int64_t r1) {
  using W = Vec<T>;
  constexpr int64_t L = W::kLanes, kCols = L * kMaxVecs;
  const int64_t n = g.n, ldb = g.stride_b(), depth = g.depth;
  // With several row tiles per column block, each depth block of the column block's B is first
  // copied into a contiguous panel (kDepthBlock x kCols): the tiles then read B sequentially
  // instead of 4 lines per k at a stride of ldb. The arithmetic is unchanged.
  const bool pack = r1 - r0 >= 2 * kRows;
  thread_local std::vector<T> panel;
  if (pack) panel.resize(static_cast<size_t>(kDepthBlock * kCols));
  for (int64_t c0 = 0; c0 < n; c0 += kCols) {
    const int64_t width = n - c0 < kCols ? n - c0 : kCols;
    const int vecs = static_cast<int>((width + L - 1) / L);
    const int tail = static_cast<int>(width - L * (vecs - 1));
    const auto mask = static_cast<typename W::Mask>((1u << tail) - 1u);
    // depth 0 still runs one (empty) block, which stores the zeros.
    for (int64_t k0 = 0; k0 == 0 || k0 < depth; k0 += kDepthBlock) {
      const int64_t kc = depth - k0 < kDepthBlock ? depth - k0 : kDepthBlock;
      const T* b = g.b + k0 * ldb + c0;
      int64_t ld = ldb;
      if (pack) {
        DenseArgs<T> block = g;
        block.b = b;
        block.depth = kc;
        b = PackColumns(block, 0, width, kCols, &panel);
        ld = kCols;
      }
      for (int64_t r = r0; r < r1; r += kRows) {
        const int nr = static_cast<int>(r1 - r < kRows ? r1 - r : kRows);
        if (nr == kRows && vecs == kMaxVecs) {
          Tile6x4<T>(g, r, b, ld, c0, k0, kc, k0 > 0, mask);
        } else {
          kTiles<T>[vecs - 1][nr - 1](g, r, b, ld, c0, k0, kc, k0 > 0, mask);
        }
      }
    }
  }
}

template void MultiplyRowsAvx512<float>(const DenseArgs<float>&, int64_t, int64_t);
template void MultiplyRowsAvx512<double>(const DenseArgs<double>&, int64_t, int64_t);

}  // namespace lowbit::kernels::detail
