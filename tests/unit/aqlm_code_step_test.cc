// The discrete code step of AQLM global fine-tuning (src/quant/aqlm/code_step.h) on tensors with
// random codebooks: a gradient that points at known codes leads to exactly those codes, the
// change is downhill, at most the requested share of groups changes (the ones that gain most), a
// zero gradient changes nothing, and the thread count does not matter.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "formats/additive.h"
#include "quant/aqlm/code_step.h"
#include "runtime/thread_pool.h"

namespace lowbit::aqlm {
namespace {

AqlmTensor RandomTensor(int64_t rows, int64_t cols, uint32_t seed) {
  AqlmTensor t;
  t.params = AqlmParams{.m = 2, .b = 4, .g = 8};
  t.rows = rows;
  t.cols = cols;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  t.codebooks.resize(static_cast<size_t>(t.params.m * t.params.codebook_size() * t.params.g));
  for (float& v : t.codebooks) v = normal(rng);
  t.scales.resize(static_cast<size_t>(rows));
  for (float& s : t.scales) s = 0.5f + std::abs(normal(rng));
  std::uniform_int_distribution<uint32_t> code(0, static_cast<uint32_t>(t.params.codebook_size() - 1));
  t.codes.resize(static_cast<size_t>(rows * t.n_groups() * t.params.m));
  for (uint32_t& c : t.codes) c = code(rng);
  return t;
}

std::vector<float> Decoded(const AqlmTensor& t) {
  std::vector<float> w(static_cast<size_t>(t.rows * t.cols));
  t.Decode(w.data());
  return w;
}

double Rms(const std::vector<float>& v) {
  double ss = 0.0;
  for (float x : v) ss += static_cast<double>(x) * x;
  return std::sqrt(ss / static_cast<double>(v.size()));
}

// A tensor whose codebook-0 codes differ from `start` in every other group (cols 61: a last
// partial group), and the gradient W(start) - W(goal), so that with eta = 1 the target is W(goal).
struct Case {
  AqlmTensor start, goal;
  std::vector<float> grad;
  double step = 0.0;  // makes eta = step * rms(W) / rms(G) equal 1
};

Case MakeCase() {
  Case c;
  c.start = RandomTensor(12, 61, 5);
  c.goal = c.start;
  const int64_t groups = c.start.rows * c.start.n_groups();
  for (int64_t i = 0; i < groups; i += 2) {
    uint32_t& code = c.goal.codes[static_cast<size_t>(i * 2)];
    code = (code + 1 + static_cast<uint32_t>(i % 7)) % 16;
  }
  const std::vector<float> w0 = Decoded(c.start), w1 = Decoded(c.goal);
  c.grad.resize(w0.size());
  for (size_t i = 0; i < w0.size(); ++i) c.grad[i] = w0[i] - w1[i];
  c.step = Rms(c.grad) / Rms(w0);
  return c;
}

TEST(AqlmCodeStep, AGradientTowardsKnownCodesReachesThem) {
  Case c = MakeCase();
  ThreadPool pool(2);
  AqlmTensor t = c.start;
  const CodeStepResult r = CodeStep(&t, c.grad.data(), CodeStepOptions{.step = c.step, .fraction = 1.0}, pool);
  const int64_t groups = t.rows * t.n_groups();
  EXPECT_EQ(r.groups_changed, (groups + 1) / 2);
  EXPECT_EQ(t.codes, c.goal.codes);
  EXPECT_LT(r.linear_change, 0.0);
  // The linear change is <G, W(goal) - W(start)> = -||G||^2.
  double want = 0.0;
  for (float gv : c.grad) want -= static_cast<double>(gv) * gv;
  EXPECT_NEAR(r.linear_change, want, 1e-4 * std::abs(want));
}

TEST(AqlmCodeStep, AtMostTheFractionChangesTheLargestGainsFirst) {
  Case c = MakeCase();
  ThreadPool pool(2);
  AqlmTensor all = c.start, some = c.start;
  CodeStep(&all, c.grad.data(), CodeStepOptions{.step = c.step, .fraction = 1.0}, pool);
  const int64_t groups = c.start.rows * c.start.n_groups();
  const CodeStepResult r =
      CodeStep(&some, c.grad.data(), CodeStepOptions{.step = c.step, .fraction = 0.25}, pool);
  EXPECT_EQ(r.groups_changed, std::llround(0.25 * static_cast<double>(groups)));
  // Each changed group took the same codes as the unlimited step, and those groups gain at least
  // as much (squared distance moved, weight units) as every group left out.
  const std::vector<float> w0 = Decoded(c.start), w_all = Decoded(all);
  const int64_t n_groups = c.start.n_groups(), cols = c.start.cols;
  double least_taken = 1e300, most_left = 0.0;
  for (int64_t i = 0; i < groups; ++i) {
    const int64_t row = i / n_groups, j = i % n_groups;
    double gain = 0.0;
    for (int64_t d = j * 8; d < std::min<int64_t>(cols, j * 8 + 8); ++d) {
      const double diff = w_all[static_cast<size_t>(row * cols + d)] - w0[static_cast<size_t>(row * cols + d)];
      gain += diff * diff;
    }
    const bool taken = some.codes[static_cast<size_t>(2 * i)] != c.start.codes[static_cast<size_t>(2 * i)];
    if (taken) {
      EXPECT_EQ(some.codes[static_cast<size_t>(2 * i)], all.codes[static_cast<size_t>(2 * i)]);
      least_taken = std::min(least_taken, gain);
    } else if (all.codes[static_cast<size_t>(2 * i)] != c.start.codes[static_cast<size_t>(2 * i)]) {
      most_left = std::max(most_left, gain);
    }
  }
  EXPECT_GE(least_taken, most_left);
  EXPECT_LT(r.linear_change, 0.0);
}

TEST(AqlmCodeStep, SmallStepsAndZeroGradientsChangeLittleOrNothing) {
  Case c = MakeCase();
  ThreadPool pool(1);
  AqlmTensor t = c.start;
  std::vector<float> zero(c.grad.size(), 0.0f);
  CodeStepResult r = CodeStep(&t, zero.data(), CodeStepOptions{.step = 1.0, .fraction = 1.0}, pool);
  EXPECT_EQ(r.groups_changed, 0);
  EXPECT_EQ(t.codes, c.start.codes);
  // A target far closer to the current codes than to any other combination: nothing moves.
  r = CodeStep(&t, c.grad.data(), CodeStepOptions{.step = c.step * 1e-4, .fraction = 1.0}, pool);
  EXPECT_EQ(r.groups_changed, 0);
  EXPECT_EQ(t.codes, c.start.codes);
}

TEST(AqlmCodeStep, SignStepAndThreadCounts) {
  Case c = MakeCase();
  ThreadPool one(1), two(2);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> grad(c.grad.size());
  for (float& v : grad) v = normal(rng);
  for (bool sign : {false, true}) {
    AqlmTensor a = c.start, b = c.start;
    const CodeStepOptions o{.step = 0.3, .fraction = 0.5, .sign = sign};
    const CodeStepResult ra = CodeStep(&a, grad.data(), o, one);
    const CodeStepResult rb = CodeStep(&b, grad.data(), o, two);
    EXPECT_GT(ra.groups_changed, 0) << sign;
    EXPECT_EQ(ra.groups_changed, rb.groups_changed);
    EXPECT_EQ(ra.linear_change, rb.linear_change);
    EXPECT_EQ(a.codes, b.codes);
    // Nearer the target means downhill along G itself only for the plain step.
    if (!sign) EXPECT_LT(ra.linear_change, 0.0);
  }
}

}  // namespace
}  // namespace lowbit::aqlm
