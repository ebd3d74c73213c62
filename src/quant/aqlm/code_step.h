// The discrete step of PV-tuning (Malinovskii et al. 2024, arXiv:2405.14852, sections 3.2-3.4),
// linearized: with the codebooks and scales fixed, move some codes so that the decoded matrix
// W(c) goes down the global loss's gradient G = dL/dW.
//
// Linearized around the current codes c0, with a proximal term of step eta:
//   L(W(c)) ~ L(W(c0)) + <G, W(c) - W(c0)> + ||W(c) - W(c0)||^2 / (2 eta)
// whose minimum over c is the W(c) nearest (Euclidean) to the target W(c0) - eta G. A full step
// over all groups would overshoot where the linearization fails, so, as in the paper's subspace
// variant, only the fraction of groups with the largest gradient norm ||G_group|| may change.
// eta is relative: step * rms(W) / rms(G), so `step` is the RMS distance the target moves, as a
// share of the RMS weight.
//
// Per selected group (row r, group j): the target divided by s_r, then one pass of greedy
// coordinate descent over the codebooks in order (codebook m: the codeword nearest to what the
// other codebooks leave), starting from the current codes, so the distance to the target never
// grows. Padding columns of a last partial group do not count. Rows with s_r = 0 are skipped.
// Deterministic: the selection is the top groups by (norm, index), each group is independent.
#pragma once

#include <cstdint>

#include "formats/additive.h"

namespace lowbit {
class ThreadPool;
namespace aqlm {

struct CodeStepOptions {
  double step = 0.05;      // target distance, relative to rms(W)
  double fraction = 0.01;  // share of each matrix's groups that may change (0, 1]
  bool sign = false;       // true: the target moves by eta * rms(G) * sign(G) (per element)
};

struct CodeStepResult {
  int64_t groups_selected = 0;
  int64_t groups_changed = 0;
  double linear_change = 0.0;  // <G, W(c) - W(c0)>: < 0 when the step went downhill
};

// dw: dL/dW (rows, cols). Updates t->codes in place.
CodeStepResult CodeStep(AqlmTensor* t, const float* dw, const CodeStepOptions& o, ThreadPool& pool);

}  // namespace aqlm
}  // namespace lowbit
