// Adam (Kingma and Ba 2015) on one parameter group, as AQLM's fine-tuning passes use it
// (block_finetune.h, global_finetune.h): a per-group step size, and an epsilon relative to the
// first gradient's RMS, so the update does not depend on the loss's overall scale.
#pragma once

#include <cmath>
#include <vector>

namespace lowbit::aqlm {

struct Adam {
  std::vector<double> m, v;
  double step_size = 0.0;
  double eps = -1.0;

  // t: the step number, from 1.
  void Step(std::vector<float>& value, const std::vector<double>& grad, int t) {
    constexpr double kBeta1 = 0.9, kBeta2 = 0.999;
    if (m.empty()) {
      m.assign(value.size(), 0.0);
      v.assign(value.size(), 0.0);
    }
    if (eps < 0.0) {
      double ss = 0.0;
      for (double gv : grad) ss += gv * gv;
      const double rms = grad.empty() ? 0.0 : std::sqrt(ss / static_cast<double>(grad.size()));
      eps = rms > 0.0 ? 1e-8 * rms : 1e-30;
    }
    const double c1 = 1.0 - std::pow(kBeta1, t), c2 = 1.0 - std::pow(kBeta2, t);
    for (size_t i = 0; i < value.size(); ++i) {
      m[i] = kBeta1 * m[i] + (1.0 - kBeta1) * grad[i];
      v[i] = kBeta2 * v[i] + (1.0 - kBeta2) * grad[i] * grad[i];
      const double update = step_size * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
      value[i] = static_cast<float>(static_cast<double>(value[i]) - update);
    }
  }
};

// Root mean square of a group's values: the unit of its relative step size.
inline double Rms(const std::vector<float>& v) {
  double ss = 0.0;
  for (float x : v) ss += static_cast<double>(x) * x;
  return v.empty() ? 0.0 : std::sqrt(ss / static_cast<double>(v.size()));
}

}  // namespace lowbit::aqlm
