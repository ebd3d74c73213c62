#include "quant/aqlm/block_forward.h"

#include <cmath>
#include <cstring>

#include "quant/aqlm/block_backward.h"
#include "runtime/linear.h"
#include "runtime/ops.h"
#include "runtime/thread_pool.h"

namespace lowbit::aqlm {
namespace {

// y (n, w.rows) = x (n, w.cols) w^T with w decoded to f32 once and the blocked dense kernel
// (kernels/dense.h): calibration runs tens of thousands of tokens through every matrix, where the
// runtime's prefill path (dequantized tiles times a 4 x 2 dot-product block) is 2-3x slower. Each
// output is one fma chain over the columns in order, whatever the thread count.
void DenseLinear(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool& pool) {
  const std::vector<float> wf = ReadMatrix(w);
  std::vector<float> wt(wf.size());  // (cols, rows)
  TransposeMatrix(wf.data(), w.rows, w.cols, wt.data(), pool);
  MatMulTokens(x, wt.data(), n, w.cols, w.rows, y, pool);
}

}  // namespace

void BlockForward(const LlamaConfig& c, const LayerWeights& w, const std::vector<double>& rope_freqs,
                  int64_t n_seq, int64_t seq_len, float* x, ThreadPool& pool,
                  const BlockInputFn& observe, BlockForwardBuffers* buffers) {
  const int64_t n = n_seq * seq_len, dim = c.dim, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd, hidden = c.hidden_dim;
  const int64_t rope_dim = c.rope_dim > 0 ? c.rope_dim : hd;
  const int64_t heads_per_kv = c.n_heads / c.n_kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  auto sz = [](int64_t a, int64_t b) { return static_cast<size_t>(a * b); };
  // Every element of these is written below before it is read.
  BlockForwardBuffers own;
  BlockForwardBuffers& b = buffers != nullptr ? *buffers : own;
  std::vector<float>&xb = b.xb, &q = b.q, &k = b.k, &v = b.v, &att = b.att, &gate = b.gate, &up = b.up;
  xb.resize(sz(n, dim));
  q.resize(sz(n, q_dim));
  k.resize(sz(n, kv_dim));
  v.resize(sz(n, kv_dim));
  att.resize(sz(n, q_dim));
  gate.resize(sz(n, hidden));
  up.resize(sz(n, hidden));
  std::vector<float> cos_sin(sz(seq_len, rope_dim));
  for (int64_t t = 0; t < seq_len; ++t) RopeCosSin(rope_freqs, t, &cos_sin[sz(t, rope_dim)]);

  for (int64_t t = 0; t < n; ++t) RmsNorm(&x[sz(t, dim)], w.attn_norm.data(), dim, c.rms_eps, &xb[sz(t, dim)]);
  if (observe) observe(BlockInput::kAttnIn, xb.data(), n, dim);
  DenseLinear(w.wq, xb.data(), n, q.data(), pool);
  DenseLinear(w.wk, xb.data(), n, k.data(), pool);
  DenseLinear(w.wv, xb.data(), n, v.data(), pool);
  for (int64_t t = 0; t < n; ++t) {
    float* qt = &q[sz(t, q_dim)];
    float* kt = &k[sz(t, kv_dim)];
    if (c.qkv_bias) {
      float* vt = &v[sz(t, kv_dim)];
      for (int64_t i = 0; i < q_dim; ++i) qt[i] += w.bq[size_t(i)];
      for (int64_t i = 0; i < kv_dim; ++i) kt[i] += w.bk[size_t(i)];
      for (int64_t i = 0; i < kv_dim; ++i) vt[i] += w.bv[size_t(i)];
    }
    const float* cs = &cos_sin[sz(t % seq_len, rope_dim)];
    ApplyRope(qt, c.n_heads, hd, rope_dim, c.rope_layout, cs);
    ApplyRope(kt, c.n_kv_heads, hd, rope_dim, c.rope_layout, cs);
  }
  pool.ParallelFor(n * c.n_heads, [&](int64_t task, int) {
    const int64_t t = task / c.n_heads, h = task % c.n_heads;
    const int64_t seq = t / seq_len, pos = t % seq_len;
    const int64_t kvh = h / heads_per_kv;
    thread_local std::vector<float> scores;
    if (scores.size() < size_t(pos + 1)) scores.resize(size_t(pos + 1));
    const int64_t first = seq * seq_len;
    AttendOneHead(&q[sz(t, q_dim) + size_t(h * hd)], &k[sz(first, kv_dim) + size_t(kvh * hd)],
                  &v[sz(first, kv_dim) + size_t(kvh * hd)], kv_dim, pos + 1, hd, scale, nullptr,
                  scores.data(), &att[sz(t, q_dim) + size_t(h * hd)]);
  });
  if (observe) observe(BlockInput::kAttnOut, att.data(), n, q_dim);
  DenseLinear(w.wo, att.data(), n, xb.data(), pool);
  for (size_t i = 0; i < sz(n, dim); ++i) x[i] += xb[i];

  for (int64_t t = 0; t < n; ++t) RmsNorm(&x[sz(t, dim)], w.ffn_norm.data(), dim, c.rms_eps, &xb[sz(t, dim)]);
  if (observe) observe(BlockInput::kFfnIn, xb.data(), n, dim);
  DenseLinear(w.w_gate, xb.data(), n, gate.data(), pool);
  DenseLinear(w.w_up, xb.data(), n, up.data(), pool);
  SwiGlu(gate.data(), up.data(), n * hidden, gate.data());
  if (observe) observe(BlockInput::kFfnOut, gate.data(), n, hidden);
  DenseLinear(w.w_down, gate.data(), n, xb.data(), pool);
  for (size_t i = 0; i < sz(n, dim); ++i) x[i] += xb[i];
}

}  // namespace lowbit::aqlm
