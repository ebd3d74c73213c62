// Next-token sampling: greedy, or temperature + top-k + top-p with a seeded std::mt19937_64.
#include <algorithm>
#include <cmath>

#include "lowbit/model.h"
#include "runtime/candidate_order.h"

namespace lowbit {

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) {}

int32_t Sampler::Sample(std::span<const float> logits) {
  const int64_t n = static_cast<int64_t>(logits.size());
  LOWBIT_CHECK(n > 0);
  if (options_.temperature <= 0.0f) {
    int64_t best = 0;  // the first maximum: lowest id on ties
    for (int64_t i = 1; i < n; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return static_cast<int32_t>(best);
  }
  // Candidates by decreasing logit (ties: lower id first, so the order is fully determined).
  const int64_t k = options_.top_k > 0 ? std::min(options_.top_k, n) : n;
  OrderCandidates(logits, k, &candidates_);
  // Softmax over the k kept, in double, at the given temperature.
  std::vector<double> probs(static_cast<size_t>(k));
  const double max_logit = candidates_[0].first;
  double sum = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    probs[i] = std::exp((candidates_[i].first - max_logit) / options_.temperature);
    sum += probs[i];
  }
  // Top-p: the smallest prefix whose mass reaches top_p (at least one token).
  int64_t kept = k;
  if (options_.top_p < 1.0f) {
    double mass = 0.0;
    for (int64_t i = 0; i < k; ++i) {
      mass += probs[i] / sum;
      if (mass >= options_.top_p) {
        kept = i + 1;
        break;
      }
    }
  }
  double kept_sum = 0.0;
  for (int64_t i = 0; i < kept; ++i) kept_sum += probs[i];
  // u in [0, 1) from the top 53 bits: the same on every standard library.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * kept_sum;
  double acc = 0.0;
  for (int64_t i = 0; i < kept; ++i) {
    acc += probs[i];
    if (u < acc) return candidates_[i].second;
  }
  return candidates_[kept - 1].second;
}

}  // namespace lowbit
