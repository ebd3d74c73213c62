// AQLM training of one weight matrix against its calibration Hessian (Egiazarian et al. 2024,
// arXiv:2401.06118, section 3.1 - 3.2).
//
// Objective: for W (rows, cols) and H = X X^T (cols, cols) over the layer's calibration inputs X,
//   L(W^) = ||W X - W^ X||_F^2 = tr((W - W^) H (W - W^)^T) = sum_r d_r H d_r^T,  d_r = w_r - w^_r,
// with w^_r = s_r * U_r, U_r the row of summed codewords (format "aqlm", formats/additive.h).
//
// Algorithm:
//   init   calibration-free residual k-means (EncodeAqlmIdentity): codebooks, codes, s_r = row RMS;
//   repeat until the relative loss improvement of one round is below `tolerance` (or
//   max_iterations rounds):
//     (a) codes: per row, a beam search over the (group j, codebook m) slots in order. For a slot
//         whose code changes from k0 to k, w^ changes by delta = s_r (C_m[k] - C_m[k0]) on group j
//         and the loss by  -2 delta . (H d_r)_j + delta^T H_jj delta,  evaluated for all k at once as
//           s^2 q_k - 2 s C_m[k] . ((H d_r)_j + s H_jj C_m[k0])  -  (the same for k0),
//         with q_k = C_m[k]^T H_jj C_m[k] precomputed per (j, m); after a change H d_r is updated
//         incrementally (H[:, group j] delta). The beam keeps the `beam_width` best full-row
//         hypotheses (width 1 = greedy coordinate descent; never increases the loss).
//         Codebooks with more than kMaxSearchCodebook entries (b > 12) skip this step: their codes
//         come from the initialization (documented limitation; exhaustive search is too slow).
//     (b) codebooks: the least-squares problem in all M*K*g codeword values (codes, scales fixed),
//         solved by `cg_steps` conjugate-gradient steps on its normal equations (each step one
//         (rows, cols) x H product), then rounded to binary16;
//     (c) scales: closed form per row, s_r = (w_r H U_r^T) / (U_r H U_r^T), rounded to binary16.
// Rows are processed in parallel; every reduction runs in a fixed order, so the result does not
// depend on the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "formats/additive.h"
#include "lowbit/status.h"

namespace lowbit {

class ThreadPool;

namespace aqlm {

constexpr int64_t kMaxSearchCodebook = 4096;

struct MatrixOptions {
  AqlmParams params;
  int beam_width = 1;        // hypotheses kept by the code search
  int max_iterations = 8;    // rounds of (codes, codebooks, scales)
  double tolerance = 1e-3;   // stop when (L_prev - L) / L_prev < tolerance after a round
  int cg_steps = 12;         // conjugate-gradient steps per codebook update
  bool update_codebooks = true;
  bool update_scales = true;
  ThreadPool* pool = nullptr;  // optional; null runs on the calling thread
};

struct LossPoint {
  const char* phase;  // "init", "codes", "codebooks", "scales"
  int iteration;      // 0 for init
  double loss;
};

struct MatrixResult {
  AqlmTensor tensor;               // binary16-exact fields
  std::vector<LossPoint> history;  // loss after every phase, in order
  double reference = 0.0;          // tr(W H W^T): the loss of an all-zero W^
  double loss() const { return history.empty() ? 0.0 : history.back().loss; }
};

// w: (rows, cols) f32 row-major. h: (cols, cols) symmetric positive semi-definite, row-major
// (nullptr: identity). Errors: params/shape mismatch, non-finite weights.
Result<MatrixResult> QuantizeMatrix(const float* w, int64_t rows, int64_t cols, const double* h,
                                    const MatrixOptions& options);

// Continues training from an existing tensor (same loop as QuantizeMatrix without the init).
Result<MatrixResult> RefineMatrix(const float* w, int64_t rows, int64_t cols, const double* h,
                                  AqlmTensor start, const MatrixOptions& options);

// tr((W - W^) H (W - W^)^T) computed directly from the decoded tensor, in double (h null: identity).
double Objective(const float* w, int64_t rows, int64_t cols, const double* h, const AqlmTensor& t);

}  // namespace aqlm
}  // namespace lowbit
