#include "quant/aqlm/code_step.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "runtime/thread_pool.h"

namespace lowbit::aqlm {
namespace {

inline size_t Sz(int64_t a, int64_t b = 1) { return static_cast<size_t>(a * b); }

// sum[0..g) = the group's codeword sum in codebook order, in float (as AqlmTensor::Decode).
void CodewordSum(const AqlmTensor& t, const uint32_t* codes, float* sum) {
  const int g = t.params.g;
  std::fill(sum, sum + g, 0.0f);
  for (int m = 0; m < t.params.m; ++m) {
    const float* cw = t.codeword(m, codes[m]);
    for (int d = 0; d < g; ++d) sum[d] += cw[d];
  }
}

}  // namespace

CodeStepResult CodeStep(AqlmTensor* t, const float* dw, const CodeStepOptions& o, ThreadPool& pool) {
  const int64_t rows = t->rows, cols = t->cols, n_groups = t->n_groups();
  const int g = t->params.g, n_books = t->params.m;
  const int64_t book_size = t->params.codebook_size();
  auto width = [&](int64_t j) { return static_cast<int>(std::min<int64_t>(g, cols - j * g)); };
  auto codes_of = [&](int64_t r, int64_t j) { return &t->codes[Sz(r * n_groups + j, n_books)]; };

  // Sums of squares of W and G per row.
  std::vector<double> w_ss(Sz(rows)), g_ss(Sz(rows));
  pool.ParallelFor(rows, [&](int64_t r, int) {
    std::vector<float> sum(Sz(g));
    const double s = t->scales[Sz(r)];
    double ws = 0.0, gs = 0.0;
    for (int64_t j = 0; j < n_groups; ++j) {
      CodewordSum(*t, codes_of(r, j), sum.data());
      for (int d = 0; d < width(j); ++d) {
        const double w = static_cast<double>(static_cast<float>(s) * sum[Sz(d)]);
        const double gd = dw[Sz(r, cols) + Sz(j * g + d)];
        ws += w * w;
        gs += gd * gd;
      }
    }
    w_ss[Sz(r)] = ws;
    g_ss[Sz(r)] = gs;
  });
  const double n = static_cast<double>(rows * cols);
  const double w_rms = std::sqrt(std::accumulate(w_ss.begin(), w_ss.end(), 0.0) / n);
  const double g_rms = std::sqrt(std::accumulate(g_ss.begin(), g_ss.end(), 0.0) / n);
  CodeStepResult res;
  if (!(w_rms > 0.0) || !(g_rms > 0.0) || !std::isfinite(g_rms)) return res;
  const double eta = o.step * w_rms / g_rms;

  // Every group's candidate: one greedy pass from its codes towards the target, and its gain
  // (squared distance to the target before minus after, in weight units).
  const int64_t total = rows * n_groups;
  std::vector<uint32_t> candidate(t->codes);
  std::vector<double> gain(Sz(total), 0.0);
  pool.ParallelFor(rows, [&](int64_t r, int) {
    const float s = t->scales[Sz(r)];
    if (s == 0.0f) return;
    std::vector<float> sum(Sz(g));
    std::vector<double> target(Sz(g)), rest(Sz(g));
    for (int64_t j = 0; j < n_groups; ++j) {
      uint32_t* codes = &candidate[Sz(r * n_groups + j, n_books)];
      const float* grad = dw + Sz(r, cols) + Sz(j * g);
      const int wd = width(j);
      CodewordSum(*t, codes, sum.data());
      // The target in codeword units: sum - eta * u(G) / s_r.
      double before = 0.0;
      for (int d = 0; d < wd; ++d) {
        const double u = o.sign ? (grad[d] > 0.0f ? g_rms : grad[d] < 0.0f ? -g_rms : 0.0) : grad[d];
        target[Sz(d)] = sum[Sz(d)] - eta * u / static_cast<double>(s);
        before += (target[Sz(d)] - sum[Sz(d)]) * (target[Sz(d)] - sum[Sz(d)]);
      }
      double best_e = before;
      for (int m = 0; m < n_books; ++m) {
        for (int d = 0; d < wd; ++d) {
          double others = 0.0;
          for (int m2 = 0; m2 < n_books; ++m2) {
            if (m2 != m) others += t->codeword(m2, codes[m2])[d];
          }
          rest[Sz(d)] = target[Sz(d)] - others;
        }
        for (int64_t k = 0; k < book_size; ++k) {
          const float* cw = t->codeword(m, static_cast<uint32_t>(k));
          double e = 0.0;
          for (int d = 0; d < wd; ++d) e += (rest[Sz(d)] - cw[d]) * (rest[Sz(d)] - cw[d]);
          if (e < best_e) {
            best_e = e;
            codes[m] = static_cast<uint32_t>(k);
          }
        }
      }
      gain[Sz(r * n_groups + j)] = (before - best_e) * static_cast<double>(s) * static_cast<double>(s);
    }
  });

  // The groups that change: the largest gains (ties by index), at most fraction of them.
  const int64_t limit = std::clamp<int64_t>(std::llround(o.fraction * static_cast<double>(total)), 0, total);
  std::vector<int64_t> order;
  for (int64_t i = 0; i < total; ++i) {
    if (gain[Sz(i)] > 0.0) order.push_back(i);
  }
  const int64_t count = std::min<int64_t>(limit, static_cast<int64_t>(order.size()));
  std::nth_element(order.begin(), order.begin() + count, order.end(), [&](int64_t a, int64_t b) {
    return gain[Sz(a)] != gain[Sz(b)] ? gain[Sz(a)] > gain[Sz(b)] : a < b;
  });
  res.groups_selected = count;
  std::vector<float> before(Sz(g)), after(Sz(g));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t idx = order[Sz(i)], r = idx / n_groups, j = idx % n_groups;
    uint32_t* codes = &t->codes[Sz(idx, n_books)];
    const uint32_t* next = &candidate[Sz(idx, n_books)];
    if (std::equal(codes, codes + n_books, next)) continue;
    CodewordSum(*t, codes, before.data());
    std::copy(next, next + n_books, codes);
    CodewordSum(*t, codes, after.data());
    const float s = t->scales[Sz(r)];
    const float* grad = dw + Sz(r, cols) + Sz(j * g);
    ++res.groups_changed;
    for (int d = 0; d < width(j); ++d) {
      res.linear_change += static_cast<double>(grad[d]) *
                           (static_cast<double>(s * after[Sz(d)]) - static_cast<double>(s * before[Sz(d)]));
    }
  }
  return res;
}
}  // namespace lowbit::aqlm
