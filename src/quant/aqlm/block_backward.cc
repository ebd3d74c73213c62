// Forward + backward of one transformer block with dense weights (definition in block_backward.h).
#include "quant/aqlm/block_backward.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/dense.h"
#include "quant/aqlm/rms_norm.h"
#include "runtime/ops.h"
#include "runtime/thread_pool.h"

namespace lowbit::aqlm {
namespace {

inline size_t Sz(int64_t a, int64_t b = 1) { return static_cast<size_t>(a * b); }

// y (n, rows) = x (n, cols) w^T for matrix i of the block (rows, cols): through the block's
// transposed copy when it has one.
template <class T>
void MatMulXWt(const T* x, const DenseBlock<T>& block, int i, int64_t n, int64_t rows, int64_t cols, T* y,
               ThreadPool& pool) {
  if (block.w_t[i] != nullptr) return MatMulTokens(x, block.w_t[i], n, cols, rows, y, pool);
  std::vector<T> wt(Sz(rows, cols));
  TransposeMatrix(block.w[i], rows, cols, wt.data(), pool);
  MatMulTokens(x, wt.data(), n, cols, rows, y, pool);
}

// dx (n, cols) = dy (n, rows) w (rows, cols), or += when accumulate.
template <class T>
void MatMulDyW(const T* dy, const T* w, int64_t n, int64_t rows, int64_t cols, T* dx,
               bool accumulate, ThreadPool& pool) {
  if (!accumulate) return MatMulTokens(dy, w, n, rows, cols, dx, pool);
  std::vector<T> part(Sz(n, cols));
  MatMulTokens(dy, w, n, rows, cols, part.data(), pool);
  for (size_t i = 0; i < part.size(); ++i) dx[i] += part[i];
}

// dw (rows, cols) = dy^T x for dy (n, rows), x (n, cols): one fma chain over the tokens in order
// per element, row blocks in parallel.
template <class T>
void MatMulDyTX(const T* dy, const T* x, int64_t n, int64_t rows, int64_t cols, T* dw,
                ThreadPool& pool) {
  std::vector<T> dyt(Sz(n, rows));
  TransposeMatrix(dy, n, rows, dyt.data(), pool);
  const kernels::DenseArgs<T> args{dyt.data(), x, dw, n, cols};
  const int64_t block = kernels::RowsPerTask(rows, pool.size());
  pool.ParallelFor((rows + block - 1) / block, [&](int64_t blk, int) {
    kernels::MultiplyRows<T>(args, blk * block, std::min(rows, (blk + 1) * block));
  });
}

// Rotates (or, inverse, rotates back: the transpose, used for gradients) the rope pairs of each
// head, with the pair layout of ApplyRope (runtime/ops.h).
template <class T>
void Rope(T* v, int64_t n_heads, int64_t head_dim, int64_t rope_dim, RopeLayout layout,
          const float* cos_sin, bool inverse) {
  const int64_t half = rope_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    T* head = v + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t ia = layout == RopeLayout::kAdjacentPairs ? 2 * i : i;
      const int64_t ib = layout == RopeLayout::kAdjacentPairs ? 2 * i + 1 : i + half;
      const T c = cos_sin[2 * i];
      const T s = inverse ? -static_cast<T>(cos_sin[2 * i + 1]) : static_cast<T>(cos_sin[2 * i + 1]);
      const T a = head[ia], b = head[ib];
      head[ia] = a * c - b * s;
      head[ib] = a * s + b * c;
    }
  }
}

// Causal attention products skip what the mask makes zero, a block of query rows at a time:
// block [r0, r1) of an (L, L) product only needs key columns [0, r1), and a lower triangular
// (L, L) factor only depth [0, r1). That is a little over half of the full square. Each element's
// fma chain over the kept terms is unchanged; the dropped terms are exact zeros at the end of the
// chain (their products are +-0, which leave a nonzero sum unchanged).
constexpr int64_t kQueryBlock = 48;  // 8 tiles of the dense kernel's 6 rows

// y (rows, n; ldy) = a (rows, depth; lda) b (depth, n; ldb) by the dense kernel, on this thread.
template <class T>
void Multiply(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t depth, int64_t rows, int64_t n, T* y,
              int64_t ldy) {
  kernels::DenseArgs<T> args{a, b, y, depth, n};
  args.lda = lda;
  args.ldb = ldb;
  args.ldy = ldy;
  kernels::MultiplyRows<T>(args, 0, rows);
}

// y (L, L; ldy) = a (L, depth; lda) b (depth, L; ldb) where causal: row t gets every column
// j <= t (and a few past it, up to its block's end); the rest is left as is.
template <class T>
void CausalScores(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t depth, int64_t L, T* y, int64_t ldy) {
  for (int64_t r0 = 0; r0 < L; r0 += kQueryBlock) {
    const int64_t r1 = std::min(L, r0 + kQueryBlock);
    Multiply(a + r0 * lda, lda, b, ldb, depth, r1 - r0, r1, y + r0 * ldy, ldy);
  }
}

// y (L, n; ldy) = a (L, L) b (L, n; ldb) for a lower triangular a (a[t][j] = 0 for j > t, packed
// rows of L): row block [r0, r1) sums over j < r1.
template <class T>
void LowerTimes(const T* a, int64_t L, const T* b, int64_t ldb, int64_t n, T* y, int64_t ldy) {
  for (int64_t r0 = 0; r0 < L; r0 += kQueryBlock) {
    const int64_t r1 = std::min(L, r0 + kQueryBlock);
    Multiply(a + r0 * L, L, b, ldb, r1, r1 - r0, n, y + r0 * ldy, ldy);
  }
}

// y (L, n; ldy) = a (L, L) b (L, n; ldb) for an upper triangular a (a[j][t] = 0 for t < j): row
// block [r0, r1) sums over t >= r0. The dropped terms are zeros at the start of each chain, where
// the sum is still +0 and stays +0, so this keeps every bit.
template <class T>
void UpperTimes(const T* a, int64_t L, const T* b, int64_t ldb, int64_t n, T* y, int64_t ldy) {
  for (int64_t r0 = 0; r0 < L; r0 += kQueryBlock) {
    const int64_t r1 = std::min(L, r0 + kQueryBlock);
    Multiply(a + r0 * L + r0, L, b + r0 * ldb, ldb, L - r0, r1 - r0, n, y + r0 * ldy, ldy);
  }
}

// One attention head of one sequence through the dense kernel: q (L, hd) with row stride
// q_stride, k_t (hd, L) the head's keys transposed. p (L, L) receives the causal softmax
// probabilities of each query row (exact zeros above the diagonal); the softmax runs in T with
// its sums in double. Scores are computed for the causal blocks only (CausalScores).
template <class T>
void CausalProbabilities(const T* q, int64_t q_stride, const T* k_t, int64_t seq_len, int64_t hd, T scale,
                         T* p) {
  CausalScores(q, q_stride, k_t, seq_len, hd, seq_len, p, seq_len);
  for (int64_t t = 0; t < seq_len; ++t) {
    T* row = p + t * seq_len;
    T max_value = row[0] * scale;
    for (int64_t j = 0; j <= t; ++j) {
      row[j] *= scale;
      max_value = std::max(max_value, row[j]);
    }
    double sum = 0.0;
    for (int64_t j = 0; j <= t; ++j) {
      row[j] = std::exp(row[j] - max_value);
      sum += static_cast<double>(row[j]);
    }
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t j = 0; j <= t; ++j) row[j] *= inv;
    std::fill(row + t + 1, row + seq_len, T(0));
  }
}

// out (cols, rows) = in (rows, cols) with row stride `stride`, transposed (one task's copy).
template <class T>
void TransposeStrided(const T* in, int64_t rows, int64_t cols, int64_t stride, T* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = in[r * stride + c];
  }
}

// The block's forward pass from x_in (n, dim); the output is st.y.
template <class T, class X>
void Forward(const LlamaConfig& c, const DenseBlock<T>& w, const std::vector<double>& rope_freqs,
             int64_t n_seq, int64_t seq_len, const X* x_in, ThreadPool& pool, BlockActivations<T>& st) {
  const int64_t n = n_seq * seq_len, dim = c.dim, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd, hidden = c.hidden_dim;
  const int64_t rope_dim = c.rope_dim > 0 ? c.rope_dim : hd;
  const int64_t heads_per_kv = c.n_heads / c.n_kv_heads;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
  st.n_seq = n_seq;
  st.seq_len = seq_len;
  std::vector<float>& cos_sin = st.cos_sin;
  cos_sin.resize(Sz(seq_len, rope_dim));
  for (int64_t t = 0; t < seq_len; ++t) RopeCosSin(rope_freqs, t, &cos_sin[Sz(t, rope_dim)]);
  // The input in T: read in place when it already is (no copy to fault in), else converted.
  const T* x = nullptr;
  std::vector<T> x_converted;
  if constexpr (std::is_same_v<X, T>) {
    x = x_in;
  } else {
    x_converted.assign(x_in, x_in + Sz(n, dim));
    x = x_converted.data();
  }
  std::vector<double>&r1 = st.r1, &r2 = st.r2;
  r1.resize(Sz(n));
  r2.resize(Sz(n));
  std::vector<T>&xn1 = st.xn1, &a = st.a, &q = st.q, &k = st.k, &v = st.v, &att = st.att, &h1 = st.h1;
  std::vector<T>&xn2 = st.xn2, &b = st.b, &gate = st.gate, &up = st.up, &s = st.s, &y = st.y;
  xn1.resize(Sz(n, dim));
  a.resize(Sz(n, dim));
  q.resize(Sz(n, q_dim));
  k.resize(Sz(n, kv_dim));
  v.resize(Sz(n, kv_dim));
  RmsNormForward(x, w.attn_norm, n, dim, c.rms_eps, r1, xn1.data(), a.data());
  MatMulXWt(a.data(), w, 0, n, q_dim, dim, q.data(), pool);
  MatMulXWt(a.data(), w, 1, n, kv_dim, dim, k.data(), pool);
  MatMulXWt(a.data(), w, 2, n, kv_dim, dim, v.data(), pool);
  for (int64_t t = 0; t < n; ++t) {
    T* qt = &q[Sz(t, q_dim)];
    T* kt = &k[Sz(t, kv_dim)];
    if (c.qkv_bias) {
      T* vt = &v[Sz(t, kv_dim)];
      for (int64_t i = 0; i < q_dim; ++i) qt[i] += w.bq[i];
      for (int64_t i = 0; i < kv_dim; ++i) kt[i] += w.bk[i];
      for (int64_t i = 0; i < kv_dim; ++i) vt[i] += w.bv[i];
    }
    const float* cs = &cos_sin[Sz(t % seq_len, rope_dim)];
    Rope(qt, c.n_heads, hd, rope_dim, c.rope_layout, cs, false);
    Rope(kt, c.n_kv_heads, hd, rope_dim, c.rope_layout, cs, false);
  }
  att.resize(Sz(n, q_dim));
  // One task per (sequence, query head): P = causal softmax(q k^T * scale), att = P v.
  pool.ParallelFor(n_seq * c.n_heads, [&](int64_t task, int) {
    const int64_t seq = task / c.n_heads, h = task % c.n_heads, kvh = h / heads_per_kv;
    const int64_t first = seq * seq_len;
    thread_local std::vector<T> k_t, p;
    k_t.resize(Sz(hd, seq_len));
    p.resize(Sz(seq_len, seq_len));
    TransposeStrided(&k[Sz(first, kv_dim) + Sz(kvh * hd)], seq_len, hd, kv_dim, k_t.data());
    CausalProbabilities(&q[Sz(first, q_dim) + Sz(h * hd)], q_dim, k_t.data(), seq_len, hd, scale, p.data());
    LowerTimes(p.data(), seq_len, &v[Sz(first, kv_dim) + Sz(kvh * hd)], kv_dim, hd,
               &att[Sz(first, q_dim) + Sz(h * hd)], q_dim);
  });
  h1.resize(Sz(n, dim));
  MatMulXWt(att.data(), w, 3, n, dim, q_dim, h1.data(), pool);
  for (size_t i = 0; i < h1.size(); ++i) h1[i] += x[i];
  xn2.resize(Sz(n, dim));
  b.resize(Sz(n, dim));
  gate.resize(Sz(n, hidden));
  up.resize(Sz(n, hidden));
  s.resize(Sz(n, hidden));
  RmsNormForward(h1.data(), w.ffn_norm, n, dim, c.rms_eps, r2, xn2.data(), b.data());
  MatMulXWt(b.data(), w, 4, n, hidden, dim, gate.data(), pool);
  MatMulXWt(b.data(), w, 5, n, hidden, dim, up.data(), pool);
  for (size_t i = 0; i < s.size(); ++i) {
    const T g = gate[i];
    s[i] = g / (T(1) + std::exp(-g)) * up[i];
  }
  y.resize(Sz(n, dim));
  MatMulXWt(s.data(), w, 6, n, dim, hidden, y.data(), pool);
  for (size_t i = 0; i < y.size(); ++i) y[i] += h1[i];
}

// The backward pass from dy = dL/dy (n, dim), overwritten: fills g and, when dx is non-null, dL/dx.
// Consumes st (its buffers are reused for gradients).
template <class T>
void Backward(const LlamaConfig& c, const DenseBlock<T>& w, BlockActivations<T>& st, std::vector<T>& dy,
              ThreadPool& pool, BlockGradients<T>& g, std::vector<T>* dx) {
  const int64_t n_seq = st.n_seq, seq_len = st.seq_len;
  const int64_t n = n_seq * seq_len, dim = c.dim, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd, hidden = c.hidden_dim;
  const int64_t rope_dim = c.rope_dim > 0 ? c.rope_dim : hd;
  const int64_t heads_per_kv = c.n_heads / c.n_kv_heads;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
  const std::vector<float>& cos_sin = st.cos_sin;
  const std::vector<double>&r1 = st.r1, &r2 = st.r2;
  std::vector<T>&xn1 = st.xn1, &a = st.a, &q = st.q, &k = st.k, &v = st.v, &att = st.att;
  std::vector<T>&xn2 = st.xn2, &b = st.b, &gate = st.gate, &up = st.up, &s = st.s;
  for (int i = 0; i < kBlockMatrices; ++i) {
    int64_t rows = 0, cols = 0;
    BlockMatrixShape(c, i, &rows, &cols);
    g.w[i].resize(Sz(rows, cols));
  }
  // FFN: y = h1 + s Wd^T.
  MatMulDyTX(dy.data(), s.data(), n, dim, hidden, g.w[6].data(), pool);
  std::vector<T> ds(Sz(n, hidden));
  MatMulDyW(dy.data(), w.w[6], n, dim, hidden, ds.data(), false, pool);
  // s = silu(gate) * up; silu'(g) = sig(g) (1 + g (1 - sig(g))). Reuse gate/up for their gradients.
  for (size_t i = 0; i < ds.size(); ++i) {
    const T gv = gate[i];
    const T sig = T(1) / (T(1) + std::exp(-gv));
    const T d_up = ds[i] * gv * sig;
    gate[i] = ds[i] * up[i] * sig * (T(1) + gv * (T(1) - sig));
    up[i] = d_up;
  }
  MatMulDyTX(gate.data(), b.data(), n, hidden, dim, g.w[4].data(), pool);
  MatMulDyTX(up.data(), b.data(), n, hidden, dim, g.w[5].data(), pool);
  std::vector<T> db(Sz(n, dim));
  MatMulDyW(gate.data(), w.w[4], n, hidden, dim, db.data(), false, pool);
  MatMulDyW(up.data(), w.w[5], n, hidden, dim, db.data(), true, pool);
  std::vector<T>& dh1 = dy;  // residual: dL/dh1 = dy + the path through the FFN norm
  RmsNormBackward(db.data(), xn2.data(), w.ffn_norm, r2, n, dim, dh1.data(), &g.ffn_norm);
  // Attention output projection: h1 = x + att Wo^T.
  MatMulDyTX(dh1.data(), att.data(), n, dim, q_dim, g.w[3].data(), pool);
  std::vector<T>& datt = att;  // att is not needed any more
  MatMulDyW(dh1.data(), w.w[3], n, dim, q_dim, datt.data(), false, pool);
  // Attention: one task per (sequence, kv head) owns dk/dv of that head and dq of its query heads
  // (summed over the heads of the group in order). Per head, with P recomputed:
  //   dP = d_att v^T, dS = P * (dP - rowsum(P * dP)) * scale, dq = dS k, dk += dS^T q, dv += P^T d_att.
  std::vector<T> dq(Sz(n, q_dim), T(0)), dk(Sz(n, kv_dim), T(0)), dv(Sz(n, kv_dim), T(0));
  pool.ParallelFor(n_seq * c.n_kv_heads, [&](int64_t task, int) {
    const int64_t seq = task / c.n_kv_heads, kvh = task % c.n_kv_heads;
    const int64_t first = seq * seq_len, L = seq_len;
    thread_local std::vector<T> k_t, v_t, p, dp, t_buf, part;
    k_t.resize(Sz(hd, L));
    v_t.resize(Sz(hd, L));
    p.resize(Sz(L, L));
    dp.resize(Sz(L, L));
    t_buf.resize(Sz(L, L));
    part.resize(Sz(L, hd));
    const T* keys = &k[Sz(first, kv_dim) + Sz(kvh * hd)];
    const T* values = &v[Sz(first, kv_dim) + Sz(kvh * hd)];
    T* dkeys = &dk[Sz(first, kv_dim) + Sz(kvh * hd)];
    T* dvalues = &dv[Sz(first, kv_dim) + Sz(kvh * hd)];
    TransposeStrided(keys, L, hd, kv_dim, k_t.data());
    TransposeStrided(values, L, hd, kv_dim, v_t.data());
    // part (L, hd) = a (L, L) b (L, hd; row stride ldb) for an upper triangular a (a transposed
    // causal matrix); then added into out (row stride kv_dim).
    auto accumulate = [&](const T* a, const T* b, int64_t ldb, T* out) {
      UpperTimes(a, L, b, ldb, hd, part.data(), hd);
      for (int64_t j = 0; j < L; ++j) {
        for (int64_t d = 0; d < hd; ++d) out[j * kv_dim + d] += part[Sz(j, hd) + Sz(d)];
      }
    };
    for (int64_t h = kvh * heads_per_kv; h < (kvh + 1) * heads_per_kv; ++h) {
      const T* qh = &q[Sz(first, q_dim) + Sz(h * hd)];
      const T* d_att = &datt[Sz(first, q_dim) + Sz(h * hd)];
      CausalProbabilities(qh, q_dim, k_t.data(), L, hd, scale, p.data());
      CausalScores(d_att, q_dim, v_t.data(), L, hd, L, dp.data(), L);  // dP, where P is nonzero
      // dp becomes dS (zero above the diagonal, where P is zero).
      for (int64_t t = 0; t < L; ++t) {
        const T* pt = &p[Sz(t, L)];
        T* dt = &dp[Sz(t, L)];
        double sum_pdp = 0.0;
        for (int64_t j = 0; j <= t; ++j) sum_pdp += static_cast<double>(pt[j]) * static_cast<double>(dt[j]);
        const T m = static_cast<T>(sum_pdp);
        for (int64_t j = 0; j <= t; ++j) dt[j] = pt[j] * (dt[j] - m) * scale;
        std::fill(dt + t + 1, dt + L, T(0));
      }
      LowerTimes(dp.data(), L, keys, kv_dim, hd, &dq[Sz(first, q_dim) + Sz(h * hd)], q_dim);
      TransposeStrided(dp.data(), L, L, L, t_buf.data());
      accumulate(t_buf.data(), qh, q_dim, dkeys);
      TransposeStrided(p.data(), L, L, L, t_buf.data());
      accumulate(t_buf.data(), d_att, q_dim, dvalues);
    }
  });
  for (int64_t t = 0; t < n; ++t) {
    const float* cs = &cos_sin[Sz(t % seq_len, rope_dim)];
    Rope(&dq[Sz(t, q_dim)], c.n_heads, hd, rope_dim, c.rope_layout, cs, true);
    Rope(&dk[Sz(t, kv_dim)], c.n_kv_heads, hd, rope_dim, c.rope_layout, cs, true);
  }
  MatMulDyTX(dq.data(), a.data(), n, q_dim, dim, g.w[0].data(), pool);
  MatMulDyTX(dk.data(), a.data(), n, kv_dim, dim, g.w[1].data(), pool);
  MatMulDyTX(dv.data(), a.data(), n, kv_dim, dim, g.w[2].data(), pool);
  std::vector<T>& da = db;
  MatMulDyW(dq.data(), w.w[0], n, q_dim, dim, da.data(), false, pool);
  MatMulDyW(dk.data(), w.w[1], n, kv_dim, dim, da.data(), true, pool);
  MatMulDyW(dv.data(), w.w[2], n, kv_dim, dim, da.data(), true, pool);
  // dL/dx: the residual path (dh1) plus the path through the attention norm.
  if (dx != nullptr) {
    *dx = dh1;
  } else {
    std::fill(xn2.begin(), xn2.end(), T(0));  // a scratch sink: xn2 is not needed any more
  }
  RmsNormBackward(da.data(), xn1.data(), w.attn_norm, r1, n, dim, dx != nullptr ? dx->data() : xn2.data(),
                  &g.attn_norm);
}

}  // namespace

void BlockMatrixShape(const LlamaConfig& c, int i, int64_t* rows, int64_t* cols) {
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  const int64_t shapes[kBlockMatrices][2] = {{q_dim, c.dim},      {kv_dim, c.dim},
                                            {kv_dim, c.dim},     {c.dim, q_dim},
                                            {c.hidden_dim, c.dim}, {c.hidden_dim, c.dim},
                                            {c.dim, c.hidden_dim}};
  *rows = shapes[i][0];
  *cols = shapes[i][1];
}

template <class T>
double BlockLoss(const LlamaConfig& c, const DenseBlock<T>& w, const std::vector<double>& rope_freqs,
                 int64_t n_seq, int64_t seq_len, const float* x_in, const float* target,
                 ThreadPool& pool, BlockGradients<T>* grads, std::vector<T>* out) {
  const int64_t n = n_seq * seq_len, dim = c.dim;
  BlockActivations<T> st;
  Forward(c, w, rope_freqs, n_seq, seq_len, x_in, pool, st);
  const std::vector<T>& y = st.y;
  double loss = 0.0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double e = static_cast<double>(y[i]) - static_cast<double>(target[i]);
    loss += e * e;
  }
  loss /= static_cast<double>(n * dim);
  if (out != nullptr) *out = y;
  if (grads == nullptr) return loss;
  std::vector<T> dy(Sz(n, dim));
  const double dl = 2.0 / static_cast<double>(n * dim);
  for (size_t i = 0; i < dy.size(); ++i) {
    dy[i] = static_cast<T>(dl * (static_cast<double>(y[i]) - static_cast<double>(target[i])));
  }
  Backward<T>(c, w, st, dy, pool, *grads, nullptr);
  return loss;
}

template <class T>
void BlockApply(const LlamaConfig& c, const DenseBlock<T>& w, const std::vector<double>& rope_freqs,
                int64_t n_seq, int64_t seq_len, T* x, ThreadPool& pool, BlockActivations<T>* st) {
  Forward(c, w, rope_freqs, n_seq, seq_len, x, pool, *st);
  std::copy(st->y.begin(), st->y.end(), x);
}

template <class T>
void BlockBackward(const LlamaConfig& c, const DenseBlock<T>& w, const std::vector<double>& rope_freqs,
                   int64_t n_seq, int64_t seq_len, const T* x, const T* dy, ThreadPool& pool,
                   BlockGradients<T>* grads, std::vector<T>* dx, std::vector<T>* out) {
  BlockActivations<T> st;
  Forward(c, w, rope_freqs, n_seq, seq_len, x, pool, st);
  if (out != nullptr) *out = st.y;
  std::vector<T> d(dy, dy + Sz(n_seq * seq_len, c.dim));
  Backward(c, w, st, d, pool, *grads, dx);
}

template <class T>
void BlockForwardKeep(const LlamaConfig& c, const DenseBlock<T>& w, const std::vector<double>& rope_freqs,
                      int64_t n_seq, int64_t seq_len, const T* x, ThreadPool& pool, BlockActivations<T>* st) {
  Forward(c, w, rope_freqs, n_seq, seq_len, x, pool, *st);
}

template <class T>
void BlockBackwardFrom(const LlamaConfig& c, const DenseBlock<T>& w, BlockActivations<T>& st,
                       std::vector<T>& dy, ThreadPool& pool, BlockGradients<T>* grads, std::vector<T>* dx) {
  Backward(c, w, st, dy, pool, *grads, dx);
}

template <class T>
void MatMulTokens(const T* a, const T* b, int64_t n, int64_t depth, int64_t rows, T* y,
                  ThreadPool& pool) {
  const kernels::DenseArgs<T> args{a, b, y, depth, rows};
  const int64_t block = kernels::RowsPerTask(n, pool.size());
  pool.ParallelFor((n + block - 1) / block, [&](int64_t blk, int) {
    kernels::MultiplyRows<T>(args, blk * block, std::min(n, (blk + 1) * block));
  });
}

// out (cols, rows) = in (rows, cols) transposed.
template <class T>
void TransposeMatrix(const T* in, int64_t rows, int64_t cols, T* out, ThreadPool& pool) {
  constexpr int64_t kTile = 32;
  pool.ParallelFor((rows + kTile - 1) / kTile, [&](int64_t blk, int) {
    const int64_t r0 = blk * kTile, r1 = std::min(rows, r0 + kTile);
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = std::min(cols, c0 + kTile);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) out[c * rows + r] = in[r * cols + c];
      }
    }
  });
}

template void TransposeMatrix<float>(const float*, int64_t, int64_t, float*, ThreadPool&);
template void MatMulTokens<float>(const float*, const float*, int64_t, int64_t, int64_t, float*, ThreadPool&);
template void MatMulTokens<double>(const double*, const double*, int64_t, int64_t, int64_t, double*, ThreadPool&);
template void TransposeMatrix<double>(const double*, int64_t, int64_t, double*, ThreadPool&);

template double BlockLoss<float>(const LlamaConfig&, const DenseBlock<float>&,
                                 const std::vector<double>&, int64_t, int64_t, const float*,
                                 const float*, ThreadPool&, BlockGradients<float>*,
                                 std::vector<float>*);
template double BlockLoss<double>(const LlamaConfig&, const DenseBlock<double>&,
                                  const std::vector<double>&, int64_t, int64_t, const float*,
                                  const float*, ThreadPool&, BlockGradients<double>*,
                                  std::vector<double>*);
template void BlockApply<float>(const LlamaConfig&, const DenseBlock<float>&, const std::vector<double>&,
                                int64_t, int64_t, float*, ThreadPool&, BlockActivations<float>*);
template void BlockApply<double>(const LlamaConfig&, const DenseBlock<double>&, const std::vector<double>&,
                                 int64_t, int64_t, double*, ThreadPool&, BlockActivations<double>*);
template void BlockBackward<float>(const LlamaConfig&, const DenseBlock<float>&,
                                   const std::vector<double>&, int64_t, int64_t, const float*,
                                   const float*, ThreadPool&, BlockGradients<float>*,
                                   std::vector<float>*, std::vector<float>*);
template void BlockForwardKeep<float>(const LlamaConfig&, const DenseBlock<float>&, const std::vector<double>&,
                                      int64_t, int64_t, const float*, ThreadPool&, BlockActivations<float>*);
template void BlockBackwardFrom<float>(const LlamaConfig&, const DenseBlock<float>&, BlockActivations<float>&,
                                       std::vector<float>&, ThreadPool&, BlockGradients<float>*,
                                       std::vector<float>*);
template void BlockForwardKeep<double>(const LlamaConfig&, const DenseBlock<double>&, const std::vector<double>&,
                                       int64_t, int64_t, const double*, ThreadPool&, BlockActivations<double>*);
template void BlockBackwardFrom<double>(const LlamaConfig&, const DenseBlock<double>&, BlockActivations<double>&,
                                        std::vector<double>&, ThreadPool&, BlockGradients<double>*,
                                        std::vector<double>*);
template void BlockBackward<double>(const LlamaConfig&, const DenseBlock<double>&,
                                    const std::vector<double>&, int64_t, int64_t, const double*,
                                    const double*, ThreadPool&, BlockGradients<double>*,
                                    std::vector<double>*, std::vector<double>*);

}  // namespace lowbit::aqlm
