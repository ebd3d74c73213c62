// Scoring arithmetic: log-softmax, NLL, KL divergence, and the summaries llama.cpp reports.
#include <algorithm>
#include <cmath>
#include <limits>

#include "lowbit/eval.h"

namespace lowbit {

double LogSoftmax(const float* logits, int64_t n, float* out) {
  float max_logit = logits[0];
  for (int64_t i = 1; i < n; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  const double lse = static_cast<double>(max_logit) + std::log(sum);
  if (out != nullptr) {
    for (int64_t i = 0; i < n; ++i)
      out[i] = static_cast<float>(static_cast<double>(logits[i]) - lse);
  }
  return lse;
}

double TokenNll(const float* logits, int64_t n, int32_t target) {
  LOWBIT_CHECK(target >= 0 && target < n);
  return LogSoftmax(logits, n, nullptr) - static_cast<double>(logits[target]);
}

double KlDivergence(const float* ref_logprobs, const float* q_logprobs, int64_t n) {
  double kl = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double lp = ref_logprobs[i];
    const double p = std::exp(lp);
    if (p > 0.0) kl += p * (lp - static_cast<double>(q_logprobs[i]));  // 0 * log 0 = 0
  }
  return kl;
}

double KlDivergenceTopK(std::span<const int32_t> ids, std::span<const float> ref_logprobs,
                        const float* q_logprobs) {
  LOWBIT_CHECK(ids.size() == ref_logprobs.size());
  double kl = 0.0, p_top = 0.0, q_top = 0.0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const double lp = ref_logprobs[i];
    const double lq = q_logprobs[ids[i]];
    const double p = std::exp(lp);
    p_top += p;
    q_top += std::exp(lq);
    if (p > 0.0) kl += p * (lp - lq);
  }
  // The stored log-probs are f32, so 1 - p_top carries rounding noise of ~k * 2^-24: a rest mass
  // below kRestNoise is no mass at all (e.g. when the top-k lists every id).
  constexpr double kRestNoise = 1e-6;
  const double p_rest = 1.0 - p_top;
  // Q's rest mass can round to 0 while P's is not: clamp so the term stays finite (and large).
  const double q_rest = std::max(1.0 - q_top, std::numeric_limits<double>::min());
  if (p_rest > kRestNoise) kl += p_rest * (std::log(p_rest) - std::log(q_rest));
  return kl;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double h = std::clamp(p, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= values.size()) return values.back();
  return values[lo] + (h - static_cast<double>(lo)) * (values[lo + 1] - values[lo]);
}

namespace {
// Mean and sqrt(population variance / (n - 1)) in double: llama.cpp's estimate of the error of a
// mean.
void MeanAndStderr(std::span<const double> v, double* mean, double* stderr_mean) {
  const double n = static_cast<double>(v.size());
  double sum = 0.0, sum_sq = 0.0;
  for (double x : v) {
    sum += x;
    sum_sq += x * x;
  }
  *mean = v.empty() ? 0.0 : sum / n;
  const double var = v.empty() ? 0.0 : sum_sq / n - (*mean) * (*mean);
  *stderr_mean = (v.size() >= 2 && var > 0.0) ? std::sqrt(var / (n - 1.0)) : 0.0;
}
}  // namespace

PerplexityStats SummarizeNll(std::span<const double> nll) {
  PerplexityStats s;
  s.count = static_cast<int64_t>(nll.size());
  double nll_stderr = 0.0;
  MeanAndStderr(nll, &s.mean_nll, &nll_stderr);
  s.ppl = std::exp(s.mean_nll);
  s.ppl_stderr = s.ppl * nll_stderr;  // delta method: d exp(m) = exp(m) dm
  return s;
}

KldStats SummarizeKld(std::span<const double> kld, std::span<const uint8_t> same_top1,
                      std::span<const double> nll_q, std::span<const double> nll_ref) {
  LOWBIT_CHECK(kld.size() == same_top1.size() && kld.size() == nll_q.size() &&
               kld.size() == nll_ref.size());
  KldStats s;
  s.count = static_cast<int64_t>(kld.size());
  if (kld.empty()) return s;
  MeanAndStderr(kld, &s.mean, &s.stderr_mean);
  std::vector<double> sorted(kld.begin(), kld.end());
  s.median = Percentile(sorted, 0.5);
  s.p99 = Percentile(sorted, 0.99);
  s.max = *std::max_element(kld.begin(), kld.end());
  int64_t agree = 0;
  double diff = 0.0;
  for (size_t i = 0; i < kld.size(); ++i) {
    agree += same_top1[i] != 0;
    diff += nll_q[i] - nll_ref[i];
  }
  s.top1_agreement = static_cast<double>(agree) / static_cast<double>(s.count);
  s.ppl_ratio = std::exp(diff / static_cast<double>(s.count));
  return s;
}

}  // namespace lowbit
