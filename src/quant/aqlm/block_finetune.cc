// AQLM block fine-tuning (definition in block_finetune.h).
#include "quant/aqlm/block_finetune.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "quant/aqlm/adam.h"
#include "runtime/thread_pool.h"

namespace lowbit::aqlm {
namespace {

inline size_t Sz(int64_t a, int64_t b = 1) { return static_cast<size_t>(a * b); }

// f32 decode of t's codes with the given codebooks (M * K * G) and scales (rows).
void DecodeWith(const AqlmTensor& t, const float* codebooks, const float* scales, float* out,
                ThreadPool& pool) {
  const int g = t.params.g, m_count = t.params.m;
  const int64_t k = t.params.codebook_size(), n_groups = t.n_groups(), cols = t.cols;
  pool.ParallelFor(t.rows, [&](int64_t r, int) {
    float sum[32];
    for (int64_t j = 0; j < n_groups; ++j) {
      std::fill(sum, sum + g, 0.0f);
      for (int m = 0; m < m_count; ++m) {
        const float* cw = codebooks + (m * k + t.code(r, j, m)) * g;
        for (int i = 0; i < g; ++i) sum[i] += cw[i];
      }
      const int64_t n = std::min<int64_t>(g, cols - j * g);
      for (int64_t i = 0; i < n; ++i) out[r * cols + j * g + i] = sum[i] * scales[r];
    }
  });
}

void GradientsWith(const AqlmTensor& t, const float* codebooks, const float* scales,
                   const float* dw, std::vector<double>* d_codebooks, std::vector<double>* d_scales,
                   ThreadPool& pool) {
  const int g = t.params.g, m_count = t.params.m;
  const int64_t k = t.params.codebook_size(), n_groups = t.n_groups(), cols = t.cols;
  const int64_t cb_size = m_count * k * g;
  d_scales->assign(Sz(t.rows), 0.0);
  pool.ParallelFor(t.rows, [&](int64_t r, int) {
    double acc = 0.0;
    for (int64_t j = 0; j < n_groups; ++j) {
      const int64_t n = std::min<int64_t>(g, cols - j * g);
      for (int64_t i = 0; i < n; ++i) {
        double u = 0.0;
        for (int m = 0; m < m_count; ++m) u += codebooks[(m * k + t.code(r, j, m)) * g + i];
        acc += static_cast<double>(dw[r * cols + j * g + i]) * u;
      }
    }
    (*d_scales)[Sz(r)] = acc;
  });
  // Codeword gradients: rows cut into a fixed number of chunks (a function of the shape only),
  // one partial sum per chunk, then the chunks added in order: thread-count independent.
  const int64_t max_chunks = std::max<int64_t>(1, (int64_t{1} << 22) / cb_size);
  const int64_t n_chunks = std::clamp<int64_t>((t.rows + 15) / 16, 1, std::min<int64_t>(64, max_chunks));
  const int64_t rows_per_chunk = (t.rows + n_chunks - 1) / n_chunks;
  std::vector<double> partial(Sz(n_chunks, cb_size), 0.0);
  pool.ParallelFor(n_chunks, [&](int64_t chunk, int) {
    double* p = &partial[Sz(chunk, cb_size)];
    const int64_t r1 = std::min(t.rows, (chunk + 1) * rows_per_chunk);
    for (int64_t r = chunk * rows_per_chunk; r < r1; ++r) {
      const double s = scales[r];
      for (int64_t j = 0; j < n_groups; ++j) {
        const int64_t n = std::min<int64_t>(g, cols - j * g);
        const float* d = dw + r * cols + j * g;
        for (int m = 0; m < m_count; ++m) {
          double* dc = p + (m * k + t.code(r, j, m)) * g;
          for (int64_t i = 0; i < n; ++i) dc[i] += s * static_cast<double>(d[i]);
        }
      }
    }
  });
  d_codebooks->assign(Sz(cb_size), 0.0);
  for (int64_t chunk = 0; chunk < n_chunks; ++chunk) {
    const double* p = &partial[Sz(chunk, cb_size)];
    for (int64_t i = 0; i < cb_size; ++i) (*d_codebooks)[Sz(i)] += p[i];
  }
}

// Every trainable value of a block: 7 codebooks, 7 scale vectors, 2 norm gains (16 groups).
struct State {
  std::vector<float> group[2 * kBlockMatrices + 2];
  std::vector<float>& codebooks(int i) { return group[i]; }
  std::vector<float>& scales(int i) { return group[kBlockMatrices + i]; }
  std::vector<float>& attn_norm() { return group[2 * kBlockMatrices]; }
  std::vector<float>& ffn_norm() { return group[2 * kBlockMatrices + 1]; }
};
constexpr int kGroups = 2 * kBlockMatrices + 2;

}  // namespace

void DecodeDense(const AqlmTensor& t, float* out, ThreadPool& pool) {
  DecodeWith(t, t.codebooks.data(), t.scales.data(), out, pool);
}

void CodebookScaleGradients(const AqlmTensor& t, const float* dw, std::vector<double>* d_codebooks,
                            std::vector<double>* d_scales, ThreadPool& pool) {
  GradientsWith(t, t.codebooks.data(), t.scales.data(), dw, d_codebooks, d_scales, pool);
}

Result<FineTuneResult> FineTuneBlock(const LlamaConfig& c, const std::vector<double>& rope_freqs,
                                     int64_t n_seq, int64_t seq_len, const float* x,
                                     const float* target, const BlockParams& params,
                                     const FineTuneOptions& o, ThreadPool& pool) {
  if (n_seq < 2) {
    return InvalidArgument("aqlm fine-tuning: " + std::to_string(n_seq) +
                           " calibration sequence(s), needs >= 2 (training + validation)");
  }
  if (o.steps < 1) return InvalidArgument("aqlm fine-tuning: fine_tune_steps = " + std::to_string(o.steps) + ", expected >= 1");
  if (!(o.lr > 0.0) || !std::isfinite(o.lr)) {
    return InvalidArgument("aqlm fine-tuning: fine_tune_lr = " + std::to_string(o.lr) + ", expected > 0");
  }
  if (!(o.val_fraction > 0.0 && o.val_fraction < 1.0)) {
    return InvalidArgument("aqlm fine-tuning: fine_tune_val_fraction = " + std::to_string(o.val_fraction) +
                           ", expected in (0, 1)");
  }
  for (int i = 0; i < kBlockMatrices; ++i) {
    int64_t rows = 0, cols = 0;
    BlockMatrixShape(c, i, &rows, &cols);
    LOWBIT_CHECK(params.tensors[i] != nullptr && params.tensors[i]->rows == rows &&
                 params.tensors[i]->cols == cols);
  }
  FineTuneResult res;
  res.n_val = std::clamp<int64_t>(std::llround(o.val_fraction * static_cast<double>(n_seq)), 1, n_seq - 1);
  res.n_train = n_seq - res.n_val;
  const int64_t batch = o.batch_sequences <= 0 ? res.n_train : std::min(o.batch_sequences, res.n_train);
  const int64_t n_batches = (res.n_train + batch - 1) / batch;
  const size_t stride = Sz(seq_len, c.dim);

  State initial;
  for (int i = 0; i < kBlockMatrices; ++i) {
    initial.codebooks(i) = params.tensors[i]->codebooks;
    initial.scales(i) = params.tensors[i]->scales;
  }
  initial.attn_norm() = *params.attn_norm;
  initial.ffn_norm() = *params.ffn_norm;

  std::vector<float> dense[kBlockMatrices];
  for (int i = 0; i < kBlockMatrices; ++i) {
    dense[i].resize(Sz(params.tensors[i]->rows, params.tensors[i]->cols));
  }
  auto decode = [&](State& s) {
    DenseBlock<float> b;
    for (int i = 0; i < kBlockMatrices; ++i) {
      DecodeWith(*params.tensors[i], s.codebooks(i).data(), s.scales(i).data(), dense[i].data(), pool);
      b.w[i] = dense[i].data();
    }
    b.attn_norm = s.attn_norm().data();
    b.ffn_norm = s.ffn_norm().data();
    b.bq = params.bq;
    b.bk = params.bk;
    b.bv = params.bv;
    return b;
  };
  auto evaluate = [&](State& s, int64_t first, int64_t count) {
    const DenseBlock<float> b = decode(s);
    return BlockLoss<float>(c, b, rope_freqs, count, seq_len, x + Sz(first) * stride,
                            target + Sz(first) * stride, pool);
  };
  res.val_before = evaluate(initial, res.n_train, res.n_val);
  res.train_before = evaluate(initial, 0, res.n_train);

  State master = initial, best;
  double best_val = res.val_before;
  Adam adam[kGroups];
  for (int gi = 0; gi < kGroups; ++gi) {
    const double rms = Rms(initial.group[gi]);
    adam[gi].step_size = o.lr * (rms > 0.0 ? rms : 1.0);
  }
  BlockGradients<float> grads;
  std::vector<double> d_cb, d_sc, d_norm;
  for (int step = 1; step <= o.steps; ++step) {
    const int64_t first = ((step - 1) % n_batches) * batch;
    const int64_t count = std::min(batch, res.n_train - first);
    const DenseBlock<float> b = decode(master);
    BlockLoss<float>(c, b, rope_freqs, count, seq_len, x + Sz(first) * stride,
                     target + Sz(first) * stride, pool, &grads);
    for (int i = 0; i < kBlockMatrices; ++i) {
      GradientsWith(*params.tensors[i], master.codebooks(i).data(), master.scales(i).data(),
                    grads.w[i].data(), &d_cb, &d_sc, pool);
      adam[i].Step(master.codebooks(i), d_cb, step);
      adam[kBlockMatrices + i].Step(master.scales(i), d_sc, step);
    }
    if (o.tune_norms) {
      d_norm.assign(grads.attn_norm.begin(), grads.attn_norm.end());
      adam[2 * kBlockMatrices].Step(master.attn_norm(), d_norm, step);
      d_norm.assign(grads.ffn_norm.begin(), grads.ffn_norm.end());
      adam[2 * kBlockMatrices + 1].Step(master.ffn_norm(), d_norm, step);
    }

    if (step % n_batches == 0 || step == o.steps) {
      // Validate what would be stored: codebooks and scales in binary16, norms in f32.
      State stored = master;
      for (int i = 0; i < 2 * kBlockMatrices; ++i) {
        for (float& v : stored.group[i]) v = RoundToHalfSaturating(v);
      }
      const double val = evaluate(stored, res.n_train, res.n_val);
      if (val < best_val) {
        best_val = val;
        best = std::move(stored);
        res.best_step = step;
      }
    }
  }
  res.val_after = best_val;
  if (res.best_step == 0) {
    res.train_after = res.train_before;
    return res;
  }
  res.train_after = evaluate(best, 0, res.n_train);
  for (int i = 0; i < kBlockMatrices; ++i) {
    params.tensors[i]->codebooks = best.codebooks(i);
    params.tensors[i]->scales = best.scales(i);
  }
  *params.attn_norm = best.attn_norm();
  *params.ffn_norm = best.ffn_norm();
  return res;
}

}  // namespace lowbit::aqlm
