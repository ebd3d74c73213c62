// AQLM training of one matrix (see aqlm_matrix.h for the objective and the algorithm).
#include "quant/aqlm/aqlm_matrix.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/dense.h"
#include "runtime/thread_pool.h"

namespace lowbit::aqlm {
namespace {

void ParallelFor(ThreadPool* pool, int64_t n, const std::function<void(int64_t)>& fn) {
  if (pool == nullptr || pool->size() <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  pool->ParallelFor(n, [&](int64_t i, int) { fn(i); });
}

// Fixed partition of rows into chunks for reductions that must not depend on the thread count.
constexpr int64_t kReduceChunks = 16;

class Trainer {
 public:
  Trainer(const float* w, int64_t rows, int64_t cols, const double* h, const MatrixOptions& o)
      : o_(o), p_(o.params), rows_(rows), g_(o.params.g), m_(o.params.m),
        k_(o.params.codebook_size()), groups_(o.params.groups(cols)), cp_(groups_ * g_) {
    h_.assign(static_cast<size_t>(cp_ * cp_), 0.0);
    for (int64_t a = 0; a < cols; ++a) {
      for (int64_t b = 0; b < cols; ++b) {
        h_[static_cast<size_t>(a * cp_ + b)] = h ? h[a * cols + b] : (a == b ? 1.0 : 0.0);
      }
    }
    w_.assign(static_cast<size_t>(rows * cp_), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) w_[static_cast<size_t>(r * cp_ + c)] = w[r * cols + c];
    }
    hw_.resize(w_.size());
    MultiplyH(w_.data(), hw_.data());
    d_.resize(w_.size());
    hd_.resize(w_.size());
  }

  MatrixResult Run(AqlmTensor start, bool record_init) {
    t_ = std::move(start);
    t_.RoundToHalf();
    MatrixResult result;
    result.reference = RowDots(w_.data(), hw_.data());
    Recompute();
    double loss = Loss();
    if (record_init) result.history.push_back({"init", 0, loss});
    for (int it = 1; it <= o_.max_iterations; ++it) {
      const double before = loss;
      if (k_ <= kMaxSearchCodebook) {
        CodeStep();
        loss = Loss();
        result.history.push_back({"codes", it, loss});
      }
      if (o_.update_codebooks) {
        CodebookStep();
        loss = Loss();
        result.history.push_back({"codebooks", it, loss});
      }
      if (o_.update_scales) {
        ScaleStep();
        loss = Loss();
        result.history.push_back({"scales", it, loss});
      }
      if (!(before > 0.0) || (before - loss) / before < o_.tolerance) break;
    }
    result.tensor = std::move(t_);
    return result;
  }

 private:
  double* row(std::vector<double>& v, int64_t r) { return &v[static_cast<size_t>(r * cp_)]; }

  // y = x H for every row of x: (rows_, cp_), by the dense kernel (kernels/dense.h), whose
  // per-element summation order does not depend on the ISA level or the row split.
  void MultiplyH(const double* x, double* y) const {
    const int64_t block = kernels::RowsPerTask(rows_, o_.pool != nullptr ? o_.pool->size() : 1);
    const int64_t blocks = (rows_ + block - 1) / block;
    ParallelFor(o_.pool, blocks, [&](int64_t blk) {
      const int64_t r0 = blk * block, r1 = std::min(rows_, r0 + block);
      kernels::MultiplyRows<double>({x, h_.data(), y, cp_, cp_}, r0, r1);
    });
  }

  // sum_r a_r . b_r in row order.
  double RowDots(const double* a, const double* b) const {
    std::vector<double> per_row(static_cast<size_t>(rows_));
    ParallelFor(o_.pool, rows_, [&](int64_t r) {
      double s = 0.0;
      for (int64_t c = 0; c < cp_; ++c) s += a[r * cp_ + c] * b[r * cp_ + c];
      per_row[static_cast<size_t>(r)] = s;
    });
    return std::accumulate(per_row.begin(), per_row.end(), 0.0);
  }

  double Loss() const { return RowDots(d_.data(), hd_.data()); }

  // U_r: the unscaled reconstruction (sum of codewords) of row r, padded length cp_.
  void Unscaled(int64_t r, double* u) const {
    for (int64_t j = 0; j < groups_; ++j) {
      for (int i = 0; i < g_; ++i) u[j * g_ + i] = 0.0;
      for (int m = 0; m < m_; ++m) {
        const float* c = t_.codeword(m, t_.code(r, j, m));
        for (int i = 0; i < g_; ++i) u[j * g_ + i] += c[i];
      }
    }
  }

  // d = W - W^, hd = H d from the current tensor (one product).
  void Recompute() {
    std::vector<double> what(w_.size());
    ParallelFor(o_.pool, rows_, [&](int64_t r) {
      double* u = &what[static_cast<size_t>(r * cp_)];
      Unscaled(r, u);
      const double s = t_.scales[static_cast<size_t>(r)];
      for (int64_t c = 0; c < cp_; ++c) u[c] *= s;
    });
    MultiplyH(what.data(), hd_.data());
    for (size_t i = 0; i < w_.size(); ++i) {
      d_[i] = w_[i] - what[i];
      hd_[i] = hw_[i] - hd_[i];
    }
  }

  // ---- (a) codes ----
  void CodeStep() {
    // q[(j * M + m) * K + k] = C_m[k]^T H_jj C_m[k].
    q_.assign(static_cast<size_t>(groups_ * m_ * k_), 0.0);
    ParallelFor(o_.pool, groups_, [&](int64_t j) {
      for (int m = 0; m < m_; ++m) {
        for (int64_t k = 0; k < k_; ++k) {
          const float* c = t_.codeword(m, static_cast<uint32_t>(k));
          double s = 0.0;
          for (int a = 0; a < g_; ++a) {
            double ha = 0.0;
            for (int b = 0; b < g_; ++b) ha += Hjj(j, a, b) * c[b];
            s += c[a] * ha;
          }
          q_[static_cast<size_t>((j * m_ + m) * k_ + k)] = s;
        }
      }
    });
    ParallelFor(o_.pool, rows_, [&](int64_t r) { SearchRow(r); });
  }

  double Hjj(int64_t j, int a, int b) const {
    return h_[static_cast<size_t>((j * g_ + a) * cp_ + j * g_ + b)];
  }

  struct Hypothesis {
    std::vector<uint32_t> codes;  // (groups, M)
    std::vector<double> d, hd;    // (cp)
    double loss = 0.0;
  };

  // Loss change of every code k of slot (j, m) relative to the hypothesis' current code:
  // out[k] = s^2 q_k - 2 s C_m[k] . (hd_j + s H_jj C_m[k0]), minus the same for k0.
  void SlotScores(const Hypothesis& hyp, double s, int64_t j, int m, double* out) const {
    const uint32_t k0 = hyp.codes[static_cast<size_t>(j * m_ + m)];
    const float* c0 = t_.codeword(m, k0);
    double b[32];
    for (int a = 0; a < g_; ++a) {
      double v = 0.0;
      for (int bb = 0; bb < g_; ++bb) v += Hjj(j, a, bb) * c0[bb];
      b[a] = hyp.hd[static_cast<size_t>(j * g_ + a)] + s * v;
    }
    const double* q = &q_[static_cast<size_t>((j * m_ + m) * k_)];
    for (int64_t k = 0; k < k_; ++k) {
      const float* c = t_.codeword(m, static_cast<uint32_t>(k));
      double dot = 0.0;
      for (int a = 0; a < g_; ++a) dot += c[a] * b[a];
      out[k] = s * s * q[k] - 2.0 * s * dot;
    }
    const double base = out[k0];
    for (int64_t k = 0; k < k_; ++k) out[k] -= base;
  }

  // Moves slot (j, m) of hyp from its code to k: d and H d updated incrementally.
  void Apply(Hypothesis& hyp, double s, int64_t j, int m, uint32_t k) const {
    uint32_t& code = hyp.codes[static_cast<size_t>(j * m_ + m)];
    if (code == k) return;
    const float* c0 = t_.codeword(m, code);
    const float* c1 = t_.codeword(m, k);
    for (int a = 0; a < g_; ++a) {
      const double delta = s * (static_cast<double>(c1[a]) - c0[a]);
      if (delta == 0.0) continue;
      hyp.d[static_cast<size_t>(j * g_ + a)] -= delta;
      const double* hcol = &h_[static_cast<size_t>((j * g_ + a) * cp_)];  // H symmetric
      for (int64_t c = 0; c < cp_; ++c) hyp.hd[static_cast<size_t>(c)] -= delta * hcol[c];
    }
    code = k;
  }

  void SearchRow(int64_t r) {
    const double s = t_.scales[static_cast<size_t>(r)];
    if (s == 0.0) return;  // the row decodes to zero whatever its codes
    const int width = std::max(1, o_.beam_width);
    std::vector<Hypothesis> beam(1);
    Hypothesis& h0 = beam[0];
    h0.codes.assign(t_.codes.begin() + r * groups_ * m_, t_.codes.begin() + (r + 1) * groups_ * m_);
    h0.d.assign(d_.begin() + r * cp_, d_.begin() + (r + 1) * cp_);
    h0.hd.assign(hd_.begin() + r * cp_, hd_.begin() + (r + 1) * cp_);
    std::vector<double> scores(static_cast<size_t>(k_));
    struct Candidate {
      double loss;
      int parent;
      uint32_t code;
    };
    std::vector<Candidate> candidates;
    for (int64_t j = 0; j < groups_; ++j) {
      for (int m = 0; m < m_; ++m) {
        if (width == 1) {
          SlotScores(beam[0], s, j, m, scores.data());
          const int64_t best = std::min_element(scores.begin(), scores.end()) - scores.begin();
          if (scores[static_cast<size_t>(best)] < 0.0) {
            beam[0].loss += scores[static_cast<size_t>(best)];
            Apply(beam[0], s, j, m, static_cast<uint32_t>(best));
          }
          continue;
        }
        candidates.clear();
        for (int h = 0; h < static_cast<int>(beam.size()); ++h) {
          SlotScores(beam[static_cast<size_t>(h)], s, j, m, scores.data());
          for (int64_t k = 0; k < k_; ++k) {
            candidates.push_back({beam[static_cast<size_t>(h)].loss + scores[static_cast<size_t>(k)],
                                  h, static_cast<uint32_t>(k)});
          }
        }
        const size_t keep = std::min<size_t>(static_cast<size_t>(width), candidates.size());
        // Ties broken by (parent, code) so the search is deterministic.
        std::partial_sort(candidates.begin(), candidates.begin() + static_cast<int64_t>(keep),
                          candidates.end(), [](const Candidate& a, const Candidate& b) {
                            if (a.loss != b.loss) return a.loss < b.loss;
                            if (a.parent != b.parent) return a.parent < b.parent;
                            return a.code < b.code;
                          });
        std::vector<Hypothesis> next(keep);
        for (size_t i = 0; i < keep; ++i) {
          next[i] = beam[static_cast<size_t>(candidates[i].parent)];
          next[i].loss = candidates[i].loss;
          Apply(next[i], s, j, m, candidates[i].code);
        }
        beam = std::move(next);
      }
    }
    // Keep the row's old state unless the best hypothesis is really better (losses above are
    // relative, starting at 0 for the current codes).
    const Hypothesis& best = beam[0];
    if (!(best.loss < 0.0)) return;
    std::copy(best.codes.begin(), best.codes.end(), t_.codes.begin() + r * groups_ * m_);
    std::copy(best.d.begin(), best.d.end(), d_.begin() + r * cp_);
    std::copy(best.hd.begin(), best.hd.end(), hd_.begin() + r * cp_);
  }

  // ---- (b) codebooks: conjugate gradient on the normal equations ----

  // out (M, K, g) = sum over rows and groups of factor * s_r * v[r, group j] into the codeword each
  // slot (j, m) uses; fixed row chunks keep the summation order independent of the threads.
  void Scatter(const std::vector<double>& v, double factor, std::vector<double>& out) const {
    const size_t n = static_cast<size_t>(m_ * k_ * g_);
    const int64_t chunks = std::min<int64_t>(kReduceChunks, rows_);
    std::vector<std::vector<double>> partial(static_cast<size_t>(chunks));
    ParallelFor(o_.pool, chunks, [&](int64_t ch) {
      std::vector<double>& acc = partial[static_cast<size_t>(ch)];
      acc.assign(n, 0.0);
      for (int64_t r = ch * rows_ / chunks; r < (ch + 1) * rows_ / chunks; ++r) {
        const double s = factor * t_.scales[static_cast<size_t>(r)];
        if (s == 0.0) continue;
        for (int64_t j = 0; j < groups_; ++j) {
          for (int m = 0; m < m_; ++m) {
            double* dst = &acc[static_cast<size_t>((m * k_ + t_.code(r, j, m)) * g_)];
            for (int a = 0; a < g_; ++a) dst[a] += s * v[static_cast<size_t>(r * cp_ + j * g_ + a)];
          }
        }
      }
    });
    out.assign(n, 0.0);
    for (const auto& acc : partial) {
      for (size_t i = 0; i < n; ++i) out[i] += acc[i];
    }
  }

  // x[r] = s_r * U_r(p) for a codebook-shaped direction p.
  void Expand(const std::vector<double>& p, std::vector<double>& x) const {
    x.assign(w_.size(), 0.0);
    ParallelFor(o_.pool, rows_, [&](int64_t r) {
      const double s = t_.scales[static_cast<size_t>(r)];
      if (s == 0.0) return;
      for (int64_t j = 0; j < groups_; ++j) {
        for (int m = 0; m < m_; ++m) {
          const double* c = &p[static_cast<size_t>((m * k_ + t_.code(r, j, m)) * g_)];
          for (int a = 0; a < g_; ++a) x[static_cast<size_t>(r * cp_ + j * g_ + a)] += s * c[a];
        }
      }
    });
  }

  static double Dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0.0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  }

  void CodebookStep() {
    // f(C) = sum_r d_r H d_r^T; -grad/2 = sum s_r (H d_r) scattered = the CG residual.
    const double old_loss = Loss();
    std::vector<double> res, dir, ap, x, y;
    Scatter(hd_, 1.0, res);
    dir = res;
    double rr = Dot(res, res);
    std::vector<double> cb(t_.codebooks.begin(), t_.codebooks.end());
    for (int step = 0; step < o_.cg_steps && rr > 0.0; ++step) {
      Expand(dir, x);
      y.resize(x.size());
      MultiplyH(x.data(), y.data());
      Scatter(y, 1.0, ap);
      const double pap = Dot(dir, ap);
      if (!(pap > 0.0)) break;
      const double alpha = rr / pap;
      for (size_t i = 0; i < cb.size(); ++i) cb[i] += alpha * dir[i];
      for (size_t i = 0; i < d_.size(); ++i) {
        d_[i] -= alpha * x[i];
        hd_[i] -= alpha * y[i];
      }
      for (size_t i = 0; i < res.size(); ++i) res[i] -= alpha * ap[i];
      const double rr_new = Dot(res, res);
      const double beta = rr_new / rr;
      rr = rr_new;
      for (size_t i = 0; i < dir.size(); ++i) dir[i] = res[i] + beta * dir[i];
    }
    // Round to binary16; keep the old codebooks if rounding lost the improvement.
    const std::vector<float> old = t_.codebooks;
    for (size_t i = 0; i < cb.size(); ++i) {
      t_.codebooks[i] = RoundToHalfSaturating(static_cast<float>(cb[i]));
    }
    Recompute();
    if (Loss() > old_loss) {
      t_.codebooks = old;
      Recompute();
    }
  }

  // ---- (c) scales ----
  void ScaleStep() {
    ParallelFor(o_.pool, rows_, [&](int64_t r) {
      const double s = t_.scales[static_cast<size_t>(r)];
      if (s == 0.0) return;
      std::vector<double> u(static_cast<size_t>(cp_)), hu(static_cast<size_t>(cp_));
      Unscaled(r, u.data());
      double num = 0.0, den = 0.0;
      for (int64_t c = 0; c < cp_; ++c) {
        hu[static_cast<size_t>(c)] = (hw_[static_cast<size_t>(r * cp_ + c)] -
                                      hd_[static_cast<size_t>(r * cp_ + c)]) / s;
        num += w_[static_cast<size_t>(r * cp_ + c)] * hu[static_cast<size_t>(c)];
        den += u[static_cast<size_t>(c)] * hu[static_cast<size_t>(c)];
      }
      if (!(den > 0.0)) return;
      const float s_new = RoundToHalfSaturating(static_cast<float>(num / den));
      if (!(s_new > 0.0f)) return;
      // Loss of the row as a function of its scale: ww - 2 s num + s^2 den (exact quadratic).
      const double old_part = -2.0 * s * num + s * s * den;
      const double new_part = -2.0 * s_new * num + static_cast<double>(s_new) * s_new * den;
      if (!(new_part < old_part)) return;
      t_.scales[static_cast<size_t>(r)] = s_new;
      for (int64_t c = 0; c < cp_; ++c) {
        d_[static_cast<size_t>(r * cp_ + c)] = w_[static_cast<size_t>(r * cp_ + c)] - s_new * u[static_cast<size_t>(c)];
        hd_[static_cast<size_t>(r * cp_ + c)] =
            hw_[static_cast<size_t>(r * cp_ + c)] - s_new * hu[static_cast<size_t>(c)];
      }
    });
  }

  const MatrixOptions& o_;
  const AqlmParams p_;
  const int64_t rows_;

  const int g_, m_;
  const int64_t k_, groups_, cp_;
  std::vector<double> h_;       // (cp, cp) H zero-padded
  std::vector<double> w_, hw_;  // (rows, cp) W and W H
  std::vector<double> d_, hd_;  // (rows, cp) W - W^ and (W - W^) H
  std::vector<double> q_;       // (groups, M, K)
  AqlmTensor t_;
};

Status Check(const float* w, int64_t rows, int64_t cols, const MatrixOptions& o) {
  LOWBIT_RETURN_IF_ERROR(MakeAqlmFormat(o.params).status());
  if (rows <= 0 || cols <= 0) {
    return InvalidArgument("aqlm: matrix shape (" + std::to_string(rows) + ", " +
                           std::to_string(cols) + "), expected positive");
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) {
      return InvalidArgument("aqlm: weight (" + std::to_string(i / cols) + ", " +
                             std::to_string(i % cols) + ") is not finite");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<MatrixResult> QuantizeMatrix(const float* w, int64_t rows, int64_t cols, const double* h,
                                    const MatrixOptions& options) {
  LOWBIT_RETURN_IF_ERROR(Check(w, rows, cols, options));
  AqlmTensor init = EncodeAqlmIdentity(options.params, w, rows, cols);
  Trainer trainer(w, rows, cols, h, options);
  return trainer.Run(std::move(init), /*record_init=*/true);
}

Result<MatrixResult> RefineMatrix(const float* w, int64_t rows, int64_t cols, const double* h,
                                  AqlmTensor start, const MatrixOptions& options) {
  LOWBIT_RETURN_IF_ERROR(Check(w, rows, cols, options));
  if (!(start.params == options.params) || start.rows != rows || start.cols != cols) {
    return InvalidArgument("aqlm: refine: the start tensor does not match the options/shape");
  }
  Trainer trainer(w, rows, cols, h, options);
  return trainer.Run(std::move(start), /*record_init=*/true);
}

double Objective(const float* w, int64_t rows, int64_t cols, const double* h, const AqlmTensor& t) {
  std::vector<float> what(static_cast<size_t>(rows * cols));
  t.Decode(what.data());
  double total = 0.0;
  std::vector<double> d(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      d[static_cast<size_t>(c)] = static_cast<double>(w[r * cols + c]) - what[static_cast<size_t>(r * cols + c)];
    }
    for (int64_t a = 0; a < cols; ++a) {
      double ha = 0.0;
      if (h == nullptr) {
        ha = d[static_cast<size_t>(a)];
      } else {
        for (int64_t b = 0; b < cols; ++b) ha += h[a * cols + b] * d[static_cast<size_t>(b)];
      }
      total += d[static_cast<size_t>(a)] * ha;
    }
  }
  return total;
}

}  // namespace lowbit::aqlm
