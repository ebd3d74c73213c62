// Forward + backward of one transformer block with dense weights (definition in block_backward.h).
#include "quant/aqlm/block_backward.h"

#include <algorithm>
#include <cmath>

#include "runtime/ops.h"
#include "runtime/thread_pool.h"

namespace lowbit::aqlm {
namespace {

inline size_t Sz(int64_t a, int64_t b = 1) { return static_cast<size_t>(a * b); }

constexpr int64_t kTokenBlock = 16;  // tokens per task of the products over tokens
constexpr int64_t kRowBlock = 8;     // weight rows per task of the dW products

// Dot product with 8 independent lanes (fixed order: independent of threads and alignment).
template <class T>
T Dot(const T* a, const T* b, int64_t n) {
  T acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y (n, rows) = x (n, cols) w^T, w (rows, cols).
template <class T>
void MatMulXWt(const T* x, const T* w, int64_t n, int64_t rows, int64_t cols, T* y,
               ThreadPool& pool) {
  pool.ParallelFor((n + kTokenBlock - 1) / kTokenBlock, [&](int64_t blk, int) {
    const int64_t t0 = blk * kTokenBlock, t1 = std::min(n, t0 + kTokenBlock);
    for (int64_t r = 0; r < rows; ++r) {
      const T* wr = w + r * cols;
      for (int64_t t = t0; t < t1; ++t) y[t * rows + r] = Dot(x + t * cols, wr, cols);
    }
  });
}

// dx (n, cols) = dy (n, rows) w (rows, cols), or += when accumulate; rows summed in order.
template <class T>
void MatMulDyW(const T* dy, const T* w, int64_t n, int64_t rows, int64_t cols, T* dx,
               bool accumulate, ThreadPool& pool) {
  pool.ParallelFor((n + kTokenBlock - 1) / kTokenBlock, [&](int64_t blk, int) {
    const int64_t t0 = blk * kTokenBlock, t1 = std::min(n, t0 + kTokenBlock);
    for (int64_t t = t0; t < t1; ++t) {
      T* d = dx + t * cols;
      if (!accumulate) std::fill(d, d + cols, T(0));
      for (int64_t r = 0; r < rows; ++r) {
        const T g = dy[t * rows + r];
        if (g == T(0)) continue;
        const T* wr = w + r * cols;
        for (int64_t c = 0; c < cols; ++c) d[c] += g * wr[c];
      }
    }
  });
}

// dw (rows, cols) = dy^T x for dy (n, rows), x (n, cols): sums over tokens in double, in order.
template <class T>
void MatMulDyTX(const T* dy, const T* x, int64_t n, int64_t rows, int64_t cols, T* dw,
                ThreadPool& pool) {
  pool.ParallelFor((rows + kRowBlock - 1) / kRowBlock, [&](int64_t blk, int) {
    const int64_t r0 = blk * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
    thread_local std::vector<double> acc;
    acc.assign(Sz(r1 - r0, cols), 0.0);
    for (int64_t t = 0; t < n; ++t) {
      const T* xt = x + t * cols;
      for (int64_t r = r0; r < r1; ++r) {
        const double g = static_cast<double>(dy[t * rows + r]);
        if (g == 0.0) continue;
        double* a = &acc[Sz(r - r0, cols)];
        for (int64_t c = 0; c < cols; ++c) a[c] += g * static_cast<double>(xt[c]);
      }
    }
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < cols; ++c) dw[r * cols + c] = static_cast<T>(acc[Sz(r - r0, cols) + Sz(c)]);
    }
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

// Per token: inv_rms[t] = 1 / sqrt(mean(x_t^2) + eps), xn = x * inv_rms, out = xn * gain.
template <class T>
void RmsNormForward(const T* x, const T* gain, int64_t n, int64_t dim, float eps,
                    std::vector<double>& inv_rms, T* xn, T* out) {
  for (int64_t t = 0; t < n; ++t) {
    const T* xt = x + t * dim;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += static_cast<double>(xt[i]) * static_cast<double>(xt[i]);
    const double r = 1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + static_cast<double>(eps));
    inv_rms[Sz(t)] = r;
    const T rt = static_cast<T>(r);
    for (int64_t i = 0; i < dim; ++i) {
      xn[t * dim + i] = xt[i] * rt;
      out[t * dim + i] = xn[t * dim + i] * gain[i];
    }
  }
}

// Given d_out (gradient of out = xn * gain): d_gain (summed over tokens, double) and dx += the
// gradient through the normalization: dx_j = r (dxn_j - xn_j * sum_i(dxn_i xn_i) / dim).
template <class T>
void RmsNormBackward(const T* d_out, const T* xn, const T* gain, const std::vector<double>& inv_rms,
                     int64_t n, int64_t dim, T* dx, std::vector<T>* d_gain) {
  std::vector<double> dg(Sz(dim), 0.0);
  std::vector<T> dxn(Sz(dim));
  for (int64_t t = 0; t < n; ++t) {
    const T* dot_row = d_out + t * dim;
    const T* xn_t = xn + t * dim;
    double dot = 0.0;
    for (int64_t i = 0; i < dim; ++i) {
      dg[Sz(i)] += static_cast<double>(dot_row[i]) * static_cast<double>(xn_t[i]);
      dxn[Sz(i)] = dot_row[i] * gain[i];
      dot += static_cast<double>(dxn[Sz(i)]) * static_cast<double>(xn_t[i]);
    }
    const T r = static_cast<T>(inv_rms[Sz(t)]);
    const T m = static_cast<T>(dot / static_cast<double>(dim));
    for (int64_t i = 0; i < dim; ++i) dx[t * dim + i] += r * (dxn[Sz(i)] - xn_t[i] * m);
  }
  if (d_gain != nullptr) {
    d_gain->resize(Sz(dim));
    for (int64_t i = 0; i < dim; ++i) (*d_gain)[Sz(i)] = static_cast<T>(dg[Sz(i)]);
  }
}

// Causal softmax probabilities of query (t, head h) over keys 0..pos of its sequence, into p.
template <class T>
void Probabilities(const T* q, const T* keys, int64_t kv_stride, int64_t n_keys, int64_t hd, T scale,
                   T* p) {
  T max_value = T(0);
  for (int64_t j = 0; j < n_keys; ++j) {
    p[j] = Dot(q, keys + j * kv_stride, hd) * scale;
    max_value = j == 0 ? p[j] : std::max(max_value, p[j]);
  }
  double sum = 0.0;
  for (int64_t j = 0; j < n_keys; ++j) {
    p[j] = std::exp(p[j] - max_value);
    sum += static_cast<double>(p[j]);
  }
  const T inv = static_cast<T>(1.0 / sum);
  for (int64_t j = 0; j < n_keys; ++j) p[j] *= inv;
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
  const int64_t n = n_seq * seq_len, dim = c.dim, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd, hidden = c.hidden_dim;
  const int64_t rope_dim = c.rope_dim > 0 ? c.rope_dim : hd;
  const int64_t heads_per_kv = c.n_heads / c.n_kv_heads;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
  std::vector<float> cos_sin(Sz(seq_len, rope_dim));
  for (int64_t t = 0; t < seq_len; ++t) RopeCosSin(rope_freqs, t, &cos_sin[Sz(t, rope_dim)]);

  // ---- forward, keeping what the backward pass needs ----
  std::vector<T> x(Sz(n, dim));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(x_in[i]);
  std::vector<double> r1(Sz(n)), r2(Sz(n));
  std::vector<T> xn1(Sz(n, dim)), a(Sz(n, dim)), q(Sz(n, q_dim)), k(Sz(n, kv_dim)), v(Sz(n, kv_dim));
  RmsNormForward(x.data(), w.attn_norm, n, dim, c.rms_eps, r1, xn1.data(), a.data());
  MatMulXWt(a.data(), w.w[0], n, q_dim, dim, q.data(), pool);
  MatMulXWt(a.data(), w.w[1], n, kv_dim, dim, k.data(), pool);
  MatMulXWt(a.data(), w.w[2], n, kv_dim, dim, v.data(), pool);
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
  std::vector<T> att(Sz(n, q_dim));
  pool.ParallelFor(n * c.n_heads, [&](int64_t task, int) {
    const int64_t t = task / c.n_heads, h = task % c.n_heads;
    const int64_t first = (t / seq_len) * seq_len, pos = t % seq_len;
    const int64_t kvh = h / heads_per_kv;
    thread_local std::vector<T> p;
    p.resize(Sz(pos + 1));
    Probabilities(&q[Sz(t, q_dim) + Sz(h * hd)], &k[Sz(first, kv_dim) + Sz(kvh * hd)], kv_dim, pos + 1,
                  hd, scale, p.data());
    T* o = &att[Sz(t, q_dim) + Sz(h * hd)];
    std::fill(o, o + hd, T(0));
    for (int64_t j = 0; j <= pos; ++j) {
      const T* vj = &v[Sz(first + j, kv_dim) + Sz(kvh * hd)];
      for (int64_t d = 0; d < hd; ++d) o[d] += p[Sz(j)] * vj[d];
    }
  });
  std::vector<T> h1(Sz(n, dim));
  MatMulXWt(att.data(), w.w[3], n, dim, q_dim, h1.data(), pool);
  for (size_t i = 0; i < h1.size(); ++i) h1[i] += x[i];
  std::vector<T> xn2(Sz(n, dim)), b(Sz(n, dim)), gate(Sz(n, hidden)), up(Sz(n, hidden)), s(Sz(n, hidden));
  RmsNormForward(h1.data(), w.ffn_norm, n, dim, c.rms_eps, r2, xn2.data(), b.data());
  MatMulXWt(b.data(), w.w[4], n, hidden, dim, gate.data(), pool);
  MatMulXWt(b.data(), w.w[5], n, hidden, dim, up.data(), pool);
  for (size_t i = 0; i < s.size(); ++i) {
    const T g = gate[i];
    s[i] = g / (T(1) + std::exp(-g)) * up[i];
  }
  std::vector<T> y(Sz(n, dim));
  MatMulXWt(s.data(), w.w[6], n, dim, hidden, y.data(), pool);
  for (size_t i = 0; i < y.size(); ++i) y[i] += h1[i];
  double loss = 0.0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double e = static_cast<double>(y[i]) - static_cast<double>(target[i]);
    loss += e * e;
  }
  loss /= static_cast<double>(n * dim);
  if (out != nullptr) *out = y;
  if (grads == nullptr) return loss;

  // ---- backward ----
  BlockGradients<T>& g = *grads;
  for (int i = 0; i < kBlockMatrices; ++i) {
    int64_t rows = 0, cols = 0;
    BlockMatrixShape(c, i, &rows, &cols);
    g.w[i].resize(Sz(rows, cols));
  }
  std::vector<T> dy(Sz(n, dim));
  const double dl = 2.0 / static_cast<double>(n * dim);
  for (size_t i = 0; i < dy.size(); ++i) {
    dy[i] = static_cast<T>(dl * (static_cast<double>(y[i]) - static_cast<double>(target[i])));
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
  // Attention: one task per (sequence, kv head) owns dk/dv of that head and dq of its query heads.
  std::vector<T> dq(Sz(n, q_dim), T(0)), dk(Sz(n, kv_dim), T(0)), dv(Sz(n, kv_dim), T(0));
  pool.ParallelFor(n_seq * c.n_kv_heads, [&](int64_t task, int) {
    const int64_t seq = task / c.n_kv_heads, kvh = task % c.n_kv_heads;
    const int64_t first = seq * seq_len;
    thread_local std::vector<T> p, dp;
    p.resize(Sz(seq_len));
    dp.resize(Sz(seq_len));
    const T* keys = &k[Sz(first, kv_dim) + Sz(kvh * hd)];
    const T* values = &v[Sz(first, kv_dim) + Sz(kvh * hd)];
    T* dkeys = &dk[Sz(first, kv_dim) + Sz(kvh * hd)];
    T* dvalues = &dv[Sz(first, kv_dim) + Sz(kvh * hd)];
    for (int64_t h = kvh * heads_per_kv; h < (kvh + 1) * heads_per_kv; ++h) {
      for (int64_t pos = 0; pos < seq_len; ++pos) {
        const int64_t t = first + pos;
        const T* qt = &q[Sz(t, q_dim) + Sz(h * hd)];
        const T* dot = &datt[Sz(t, q_dim) + Sz(h * hd)];
        T* dqt = &dq[Sz(t, q_dim) + Sz(h * hd)];
        Probabilities(qt, keys, kv_dim, pos + 1, hd, scale, p.data());
        double sum_pdp = 0.0;
        for (int64_t j = 0; j <= pos; ++j) {
          dp[Sz(j)] = Dot(dot, values + j * kv_dim, hd);
          sum_pdp += static_cast<double>(p[Sz(j)]) * static_cast<double>(dp[Sz(j)]);
        }
        const T m = static_cast<T>(sum_pdp);
        for (int64_t j = 0; j <= pos; ++j) {
          const T pj = p[Sz(j)];
          const T dsj = pj * (dp[Sz(j)] - m) * scale;  // dL/dscore_j, times the score scale
          const T* kj = keys + j * kv_dim;
          T* dkj = dkeys + j * kv_dim;
          T* dvj = dvalues + j * kv_dim;
          for (int64_t d = 0; d < hd; ++d) {
            dqt[d] += dsj * kj[d];
            dkj[d] += dsj * qt[d];
            dvj[d] += pj * dot[d];
          }
        }
      }
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
  // dL/dx is not needed (x is the fixed input); only the gain gradient of the attention norm.
  std::vector<T>& dx_unused = xn2;
  std::fill(dx_unused.begin(), dx_unused.end(), T(0));
  RmsNormBackward(da.data(), xn1.data(), w.attn_norm, r1, n, dim, dx_unused.data(), &g.attn_norm);
  return loss;
}

template double BlockLoss<float>(const LlamaConfig&, const DenseBlock<float>&,
                                 const std::vector<double>&, int64_t, int64_t, const float*,
                                 const float*, ThreadPool&, BlockGradients<float>*,
                                 std::vector<float>*);
template double BlockLoss<double>(const LlamaConfig&, const DenseBlock<double>&,
                                  const std::vector<double>&, int64_t, int64_t, const float*,
                                  const float*, ThreadPool&, BlockGradients<double>*,
                                  std::vector<double>*);

}  // namespace lowbit::aqlm
