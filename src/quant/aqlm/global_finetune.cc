// The whole-model KL loss and its gradient (global_finetune.h).
#include "quant/aqlm/global_finetune.h"

#include <algorithm>
#include <cmath>

#include "kernels/dense.h"
#include "quant/aqlm/rms_norm.h"
#include "runtime/thread_pool.h"

namespace lowbit::aqlm {
namespace {

inline size_t Sz(int64_t a, int64_t b = 1) { return static_cast<size_t>(a * b); }

constexpr int64_t kChunkTokens = 64;    // tokens per classifier chunk (logits: 64 x vocab)
constexpr int64_t kVocabSlice = 1026;   // classifier rows per task (a multiple of the 6-row dense tile)
constexpr int64_t kDepthSlice = 2048;   // vocabulary rows per partial sum of dL/dh

// logits_t (vocab, m) = head (vocab, dim) h^T, h (m, dim): classifier rows in parallel, so each
// row of the (large) classifier is read once per chunk.
template <class T>
void LogitsTransposed(const T* head, int64_t vocab, int64_t dim, const T* h, int64_t m, T* logits_t,
                      ThreadPool& pool) {
  std::vector<T> ht(Sz(dim, m));
  for (int64_t t = 0; t < m; ++t) {
    for (int64_t i = 0; i < dim; ++i) ht[Sz(i, m) + Sz(t)] = h[t * dim + i];
  }
  const kernels::DenseArgs<T> args{head, ht.data(), logits_t, dim, m};
  pool.ParallelFor((vocab + kVocabSlice - 1) / kVocabSlice, [&](int64_t s, int) {
    kernels::MultiplyRows<T>(args, s * kVocabSlice, std::min(vocab, (s + 1) * kVocabSlice));
  });
}

// Per token (column) j of a (vocab, m) logit matrix: max_j and sum_j = sum_v exp(l[v][j] - max_j);
// e (vocab, m) receives exp(l - max). Slices of rows in parallel, combined in slice order.
template <class T>
void SoftmaxColumns(const T* l, int64_t vocab, int64_t m, T* e, std::vector<T>& max_value,
                    std::vector<double>& sum, ThreadPool& pool) {
  const int64_t n_slices = (vocab + kVocabSlice - 1) / kVocabSlice;
  std::vector<T> part_max(Sz(n_slices, m));
  pool.ParallelFor(n_slices, [&](int64_t s, int) {
    T* pm = &part_max[Sz(s, m)];
    const int64_t v1 = std::min(vocab, (s + 1) * kVocabSlice);
    for (int64_t j = 0; j < m; ++j) pm[j] = l[s * kVocabSlice * m + j];
    for (int64_t v = s * kVocabSlice; v < v1; ++v) {
      for (int64_t j = 0; j < m; ++j) pm[j] = std::max(pm[j], l[v * m + j]);
    }
  });
  max_value.assign(part_max.begin(), part_max.begin() + m);
  for (int64_t s = 1; s < n_slices; ++s) {
    for (int64_t j = 0; j < m; ++j) max_value[Sz(j)] = std::max(max_value[Sz(j)], part_max[Sz(s, m) + Sz(j)]);
  }
  std::vector<double> part_sum(Sz(n_slices, m), 0.0);
  pool.ParallelFor(n_slices, [&](int64_t s, int) {
    double* ps = &part_sum[Sz(s, m)];
    const int64_t v1 = std::min(vocab, (s + 1) * kVocabSlice);
    for (int64_t v = s * kVocabSlice; v < v1; ++v) {
      for (int64_t j = 0; j < m; ++j) {
        const T ev = std::exp(l[v * m + j] - max_value[Sz(j)]);
        e[v * m + j] = ev;
        ps[j] += static_cast<double>(ev);
      }
    }
  });
  sum.assign(Sz(m), 0.0);
  for (int64_t s = 0; s < n_slices; ++s) {
    for (int64_t j = 0; j < m; ++j) sum[Sz(j)] += part_sum[Sz(s, m) + Sz(j)];
  }
}

// The classifier and the KL for the n tokens of h (n, dim): returns the sum over tokens of
// KL(teacher || student); dh non-null: receives dL/dh for L = that sum * loss_scale.
template <class T>
double HeadKl(const DenseModel<T>& student, const TeacherOutputs<T>& teacher, int64_t vocab, int64_t dim,
              const T* h, int64_t n, double loss_scale, T* dh, ThreadPool& pool) {
  std::vector<T> ls(Sz(vocab, kChunkTokens)), lt(ls.size()), es(ls.size()), et(ls.size());
  std::vector<T> max_s, max_t, dls_t;
  std::vector<double> sum_s, sum_t;
  const int64_t n_slices = (vocab + kVocabSlice - 1) / kVocabSlice;
  const int64_t n_depth = (vocab + kDepthSlice - 1) / kDepthSlice;
  std::vector<T> partial;
  double total = 0.0;
  for (int64_t t0 = 0; t0 < n; t0 += kChunkTokens) {
    const int64_t m = std::min(kChunkTokens, n - t0);
    LogitsTransposed(student.head, vocab, dim, h + t0 * dim, m, ls.data(), pool);
    LogitsTransposed(teacher.head, vocab, dim, teacher.hidden + t0 * dim, m, lt.data(), pool);
    SoftmaxColumns(ls.data(), vocab, m, es.data(), max_s, sum_s, pool);
    SoftmaxColumns(lt.data(), vocab, m, et.data(), max_t, sum_t, pool);
    // Per token: KL = sum_v p_t (log p_t - log p_s), log p = l - max - log(sum). es becomes
    // dL/dl_s = (p_s - p_t) * loss_scale.
    std::vector<double> offset(Sz(m));
    for (int64_t j = 0; j < m; ++j) {
      offset[Sz(j)] = (static_cast<double>(max_s[Sz(j)]) + std::log(sum_s[Sz(j)])) -
                      (static_cast<double>(max_t[Sz(j)]) + std::log(sum_t[Sz(j)]));
    }
    std::vector<double> part_kl(Sz(n_slices, m), 0.0);
    pool.ParallelFor(n_slices, [&](int64_t s, int) {
      double* pk = &part_kl[Sz(s, m)];
      const int64_t v1 = std::min(vocab, (s + 1) * kVocabSlice);
      for (int64_t v = s * kVocabSlice; v < v1; ++v) {
        for (int64_t j = 0; j < m; ++j) {
          const size_t i = Sz(v, m) + Sz(j);
          const double pt = static_cast<double>(et[i]) / sum_t[Sz(j)];
          const double ps = static_cast<double>(es[i]) / sum_s[Sz(j)];
          if (pt > 0.0) {
            pk[j] += pt * (static_cast<double>(lt[i]) - static_cast<double>(ls[i]) + offset[Sz(j)]);
          }
          es[i] = static_cast<T>((ps - pt) * loss_scale);
        }
      }
    });
    for (int64_t s = 0; s < n_slices; ++s) {
      for (int64_t j = 0; j < m; ++j) total += part_kl[Sz(s, m) + Sz(j)];
    }
    if (dh == nullptr) continue;
    // dh (m, dim) = dl_s^T (m, vocab) head (vocab, dim): partial sums over slices of the
    // vocabulary (each slice's classifier rows stay in cache), added in slice order.
    dls_t.resize(Sz(m, vocab));
    for (int64_t v = 0; v < vocab; ++v) {
      for (int64_t j = 0; j < m; ++j) dls_t[Sz(j, vocab) + Sz(v)] = es[Sz(v, m) + Sz(j)];
    }
    partial.assign(Sz(n_depth, m * dim), T(0));
    pool.ParallelFor(n_depth, [&](int64_t s, int) {
      const int64_t v0 = s * kDepthSlice, v1 = std::min(vocab, v0 + kDepthSlice);
      kernels::DenseArgs<T> args{dls_t.data() + v0, student.head + v0 * dim, &partial[Sz(s, m * dim)],
                                 v1 - v0, dim};
      args.lda = vocab;
      kernels::MultiplyRows<T>(args, 0, m);
    });
    T* out = dh + t0 * dim;
    std::copy(partial.begin(), partial.begin() + m * dim, out);
    for (int64_t s = 1; s < n_depth; ++s) {
      const T* p = &partial[Sz(s, m * dim)];
      for (int64_t i = 0; i < m * dim; ++i) out[i] += p[i];
    }
  }
  return total;
}

}  // namespace

template <class T>
double ModelKl(const LlamaConfig& c, const DenseModel<T>& student, const TeacherOutputs<T>& teacher,
               const std::vector<double>& rope_freqs, int64_t n_seq, int64_t seq_len, const T* x0,
               ThreadPool& pool, ModelGradients<T>* grads, ModelKlScratch<T>* scratch) {
  const int64_t n = n_seq * seq_len, dim = c.dim, n_layers = c.n_layers;
  // Forward. With gradients, every block keeps its activations for the backward pass (about 79 MB
  // per block for 2,048 SmolLM2 tokens); without, only the stream is carried.
  std::vector<BlockActivations<T>> own_acts;
  std::vector<BlockActivations<T>>& acts = scratch != nullptr ? scratch->acts : own_acts;
  if (grads != nullptr) acts.resize(Sz(n_layers));
  std::vector<T> stream(x0, x0 + n * dim);
  BlockActivations<T> own_forward;
  for (int64_t l = 0; l < n_layers; ++l) {
    if (grads != nullptr) {
      BlockForwardKeep<T>(c, student.blocks[Sz(l)], rope_freqs, n_seq, seq_len,
                          l == 0 ? stream.data() : acts[Sz(l - 1)].y.data(), pool, &acts[Sz(l)]);
    } else {
      BlockApply<T>(c, student.blocks[Sz(l)], rope_freqs, n_seq, seq_len, stream.data(), pool,
                    scratch != nullptr ? &scratch->forward_only : &own_forward);
    }
  }
  const T* last = grads != nullptr ? acts[Sz(n_layers - 1)].y.data() : stream.data();
  std::vector<double> inv_rms(Sz(n));
  std::vector<T> xn(Sz(n, dim)), h(Sz(n, dim));
  RmsNormForward(last, student.output_norm, n, dim, c.rms_eps, inv_rms, xn.data(), h.data());
  const double loss_scale = 1.0 / static_cast<double>(n);
  std::vector<T> dh(grads != nullptr ? Sz(n, dim) : 0);
  const double kl = HeadKl(student, teacher, c.vocab_size, dim, h.data(), n, loss_scale,
                           grads != nullptr ? dh.data() : nullptr, pool) *
                    loss_scale;
  if (grads == nullptr) return kl;

  // Backward: the final norm, then the blocks in reverse from their kept activations.
  std::vector<T> dx(Sz(n, dim), T(0)), dx_next;
  RmsNormBackward(dh.data(), xn.data(), student.output_norm, inv_rms, n, dim, dx.data(), &grads->output_norm);
  grads->blocks.resize(Sz(n_layers));
  for (int64_t l = n_layers - 1; l >= 0; --l) {
    BlockBackwardFrom<T>(c, student.blocks[Sz(l)], acts[Sz(l)], dx, pool, &grads->blocks[Sz(l)],
                         l > 0 ? &dx_next : nullptr);
    if (scratch == nullptr) acts[Sz(l)] = BlockActivations<T>();
    if (l > 0) dx.swap(dx_next);
  }
  return kl;
}

template double ModelKl<float>(const LlamaConfig&, const DenseModel<float>&, const TeacherOutputs<float>&,
                               const std::vector<double>&, int64_t, int64_t, const float*, ThreadPool&,
                               ModelGradients<float>*, ModelKlScratch<float>*);
template double ModelKl<double>(const LlamaConfig&, const DenseModel<double>&, const TeacherOutputs<double>&,
                                const std::vector<double>&, int64_t, int64_t, const double*, ThreadPool&,
                                ModelGradients<double>*, ModelKlScratch<double>*);

}  // namespace lowbit::aqlm
