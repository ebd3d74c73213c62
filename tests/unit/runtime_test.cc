// Runtime building blocks on hand-computed cases: RMSNorm, RoPE (both layouts, scaling), softmax,
// SwiGLU, one attention head, the fixed-order dot product and Linear, the thread pool, the sampler,
// config validation and loader errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"
#include "lowbit/model.h"
#include "runtime/candidate_order.h"
#include "runtime/linear.h"
#include "runtime/ops.h"
#include "runtime/thread_pool.h"

namespace lowbit {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("lowbit_runtime_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

TEST(RmsNorm, HandComputed) {
  // mean(x^2) = (1 + 4 + 9 + 16) / 4 = 7.5, so x is scaled by 1/sqrt(7.5) = 0.36514837.
  const float x[4] = {1, 2, 3, 4};
  const float w[4] = {1, 1, 1, 1};
  float out[4];
  RmsNorm(x, w, 4, 0.0f, out);
  const double want[4] = {0.36514837167, 0.73029674334, 1.09544511501, 1.46059348668};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[i], want[i], 1e-6);
  // Gains multiply elementwise; eps enters under the root: 1/sqrt(7.5 + 0.5) = 1/sqrt(8).
  const float g[4] = {2, -1, 0.5f, 0};
  RmsNorm(x, g, 4, 0.5f, out);
  const double s = 1.0 / std::sqrt(8.0);
  EXPECT_NEAR(out[0], 2 * s, 1e-6);
  EXPECT_NEAR(out[1], -2 * s, 1e-6);
  EXPECT_NEAR(out[2], 1.5 * s, 1e-6);
  EXPECT_EQ(out[3], 0.0f);
}

TEST(Rope, FrequenciesAndScaling) {
  LlamaConfig c;
  c.head_dim = 8;
  c.rope_dim = 8;
  c.rope_theta = 10000.0;
  // theta^(-2i/8) for i = 0..3: 1, 0.1, 0.01, 0.001.
  std::vector<double> f = RopeFrequencies(c, {});
  ASSERT_EQ(f.size(), 4u);
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_NEAR(f[1], 0.1, 1e-15);
  EXPECT_NEAR(f[2], 0.01, 1e-16);
  EXPECT_NEAR(f[3], 0.001, 1e-17);
  // GGUF rope_freqs divisors.
  f = RopeFrequencies(c, {1.0f, 2.0f, 4.0f, 8.0f});
  EXPECT_NEAR(f[1], 0.05, 1e-15);
  EXPECT_NEAR(f[3], 0.000125, 1e-17);
  // Linear scaling divides every frequency.
  c.rope_scaling.type = RopeScalingType::kLinear;
  c.rope_scaling.factor = 4.0;
  f = RopeFrequencies(c, {});
  EXPECT_DOUBLE_EQ(f[0], 0.25);
  EXPECT_NEAR(f[2], 0.0025, 1e-16);
  // Llama 3 rule with factor 8, low/high freq factors 1/4, original context 1024: wavelengths
  // 2 pi / f = 6.28, 62.8 (< 1024/4: kept), 628.3 (between 256 and 1024: smoothed with
  // s = (1024/628.3185 - 1)/3 = 0.2099155, f = (1 - s) f / 8 + s f = 0.00308676), 6283 (> 1024:
  // f/8).
  c.rope_scaling = {RopeScalingType::kLlama3, 8.0, 1.0, 4.0, 1024};
  f = RopeFrequencies(c, {});
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_NEAR(f[1], 0.1, 1e-15);
  EXPECT_NEAR(f[2], 0.003086760967011274, 1e-15);
  EXPECT_NEAR(f[3], 0.000125, 1e-17);
}

TEST(Rope, BothLayoutsRotateTheRightPairs) {
  // head_dim 4, theta 10000: pair frequencies 1 and 10000^(-1/2) = 0.01. At position 1 the first
  // pair turns by 1 rad (cos 0.5403023, sin 0.8414710), the second by 0.01 rad
  // (cos 0.99995, sin 0.0099998).
  LlamaConfig c;
  c.head_dim = 4;
  c.rope_dim = 4;
  const std::vector<double> f = RopeFrequencies(c, {});
  float cs[4];
  RopeCosSin(f, 1, cs);
  EXPECT_NEAR(cs[0], 0.5403023059, 1e-7);
  EXPECT_NEAR(cs[1], 0.8414709848, 1e-7);
  EXPECT_NEAR(cs[2], 0.9999500004, 1e-7);
  EXPECT_NEAR(cs[3], 0.0099998333, 1e-7);
  // Adjacent pairs: (v0, v1) = (1, 0) -> (cos 1, sin 1); (v2, v3) = (0, 1) -> (-sin .01, cos .01).
  float v[4] = {1, 0, 0, 1};
  ApplyRope(v, 1, 4, 4, RopeLayout::kAdjacentPairs, cs);
  EXPECT_NEAR(v[0], 0.5403023059, 1e-7);
  EXPECT_NEAR(v[1], 0.8414709848, 1e-7);
  EXPECT_NEAR(v[2], -0.0099998333, 1e-7);
  EXPECT_NEAR(v[3], 0.9999500004, 1e-7);
  // NeoX: pairs (v0, v2) = (1, 0) and (v1, v3) = (0, 1).
  float u[4] = {1, 0, 0, 1};
  ApplyRope(u, 1, 4, 4, RopeLayout::kNeox, cs);
  EXPECT_NEAR(u[0], 0.5403023059, 1e-7);
  EXPECT_NEAR(u[2], 0.8414709848, 1e-7);
  EXPECT_NEAR(u[1], -0.0099998333, 1e-7);
  EXPECT_NEAR(u[3], 0.9999500004, 1e-7);
  // Two heads are rotated independently; position 0 is the identity; partial rotary
  // (rope_dim 2 of head_dim 4) leaves dims 2, 3 alone.
  float two[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float cs0[4];
  RopeCosSin(f, 0, cs0);
  ApplyRope(two, 2, 4, 4, RopeLayout::kAdjacentPairs, cs0);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(two[i], float(i + 1));
  float partial[8] = {1, 0, 7, 9, 0, 1, 7, 9};
  ApplyRope(partial, 2, 4, 2, RopeLayout::kNeox, cs);  // pairs (0, 1) of each head
  EXPECT_NEAR(partial[0], 0.5403023059, 1e-7);
  EXPECT_NEAR(partial[1], 0.8414709848, 1e-7);
  EXPECT_NEAR(partial[4], -0.8414709848, 1e-7);
  EXPECT_NEAR(partial[5], 0.5403023059, 1e-7);
  EXPECT_EQ(partial[2], 7.0f);
  EXPECT_EQ(partial[7], 9.0f);
}

TEST(Softmax, HandComputedAndShiftInvariant) {
  // e^1, e^2, e^3 over their sum 30.19287: 0.0900306, 0.2447285, 0.6652410.
  float x[3] = {1, 2, 3};
  Softmax(x, 3);
  EXPECT_NEAR(x[0], 0.09003057317, 1e-7);
  EXPECT_NEAR(x[1], 0.24472847105, 1e-7);
  EXPECT_NEAR(x[2], 0.66524095577, 1e-7);
  float big[3] = {1001, 1002, 1003};  // would overflow exp() without the max shift
  Softmax(big, 3);
  EXPECT_NEAR(big[2], 0.66524095577, 1e-7);
  float one[1] = {-5};
  Softmax(one, 1);
  EXPECT_EQ(one[0], 1.0f);
}

TEST(SwiGlu, HandComputed) {
  // silu(g) = g / (1 + e^-g): silu(1) = 0.7310586, silu(-1) = -0.2689414, silu(0) = 0.
  const float gate[3] = {1, -1, 0};
  const float up[3] = {2, 1, 5};
  float out[3];
  SwiGlu(gate, up, 3, out);
  EXPECT_NEAR(out[0], 1.46211715726, 1e-6);
  EXPECT_NEAR(out[1], -0.26894142137, 1e-6);
  EXPECT_EQ(out[2], 0.0f);
}

TEST(Attention, OneHeadHandComputed) {
  // q = (1, 0); keys (1, 0), (0, 1) -> scores 1, 0; p = (e/(e+1), 1/(e+1)) = (0.7310586,
  // 0.2689414); values (1, 2), (3, 4) -> out = (0.7310586 + 3 * 0.2689414, 2 * 0.7310586 + 4 *
  // 0.2689414)
  //                               = (1.5378828, 2.5378828).
  // Keys/values sit 3 floats apart (stride), as rows of a cache with other heads in between.
  const float q[2] = {1, 0};
  const float keys[6] = {1, 0, 99, 0, 1, 99};
  const float values[6] = {1, 2, 99, 3, 4, 99};
  float scores[2], out[2];
  AttendOneHead(q, keys, values, 3, 2, 2, 1.0f, nullptr, scores, out);
  EXPECT_NEAR(out[0], 1.53788284274, 1e-6);
  EXPECT_NEAR(out[1], 2.53788284274, 1e-6);
  // Causality is the number of keys: with only the first key, the output is its value.
  AttendOneHead(q, keys, values, 3, 1, 2, 1.0f, nullptr, scores, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 2.0f);
  // The scale divides the scores: scale 0 gives uniform weights -> the mean of the values.
  AttendOneHead(q, keys, values, 3, 2, 2, 0.0f, nullptr, scores, out);
  EXPECT_EQ(out[0], 2.0f);
  EXPECT_EQ(out[1], 3.0f);
}

TEST(Dot, FollowsTheDocumentedOrder) {
  // Lanes: k mod 8. lane0 = 2^24, lane1 = 1, lane4 = -2^24; the tree adds lane0 + lane4 = 0 first,
  // then lane1 + lane5 = 1: result exactly 1. Left-to-right summation would give
  // (2^24 + 1) -> 2^24 (ties to even), then - 2^24 = 0.
  std::vector<float> x = {16777216.0f, 1, 0, 0, -16777216.0f, 0, 0, 0, 1};
  std::vector<float> ones(x.size(), 1.0f);
  EXPECT_EQ(Dot(x.data(), ones.data(), 8), 1.0f);
  // The tail element k = 8 joins lane 0 (2^24 + 1 -> 2^24) before the tree: still exactly 1,
  // where adding the tail after the tree would give 2.
  EXPECT_EQ(Dot(x.data(), ones.data(), 9), 1.0f);
  // Short vectors (no full lane group) and n = 0.
  const float a[3] = {1.5f, -2, 4}, b[3] = {2, 3, 0.25f};
  EXPECT_EQ(Dot(a, b, 3), 3.0f - 6.0f + 1.0f);
  EXPECT_EQ(Dot(a, b, 0), 0.0f);
}

// Attention's row helpers give exactly the bits of the plain loops they replace: one Dot per key,
// and the values summed in increasing key order with an f32 multiply then an f32 add (no FMA).
// Shapes cover the register-block remainders (keys not a multiple of 4, head sizes with a
// 64-wide pass, 8-wide passes and a scalar tail) and rows strided inside a wider cache.
TEST(Attention, RowHelpersMatchThePlainLoopsBitForBit) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  for (const int64_t head_dim : {1, 7, 8, 64, 72, 77, 136}) {
    for (const int64_t n_keys : {1, 3, 4, 5, 33}) {
      const int64_t stride = head_dim + 13;
      std::vector<float> q(head_dim), rows(n_keys * stride), p(n_keys);
      for (float& v : q) v = normal(rng);
      for (float& v : rows) v = normal(rng) * 8.0f;
      for (float& v : p) v = std::abs(normal(rng));
      std::vector<float> scores(n_keys);
      DotRows(q.data(), rows.data(), stride, n_keys, head_dim, scores.data());
      for (int64_t j = 0; j < n_keys; ++j) {
        ASSERT_EQ(scores[j], Dot(q.data(), &rows[j * stride], head_dim)) << head_dim << " " << j;
      }
      std::vector<float> got(head_dim, -1.0f);
      AddScaledRows(p.data(), rows.data(), stride, n_keys, head_dim, got.data());
      for (int64_t d = 0; d < head_dim; ++d) {
        volatile float want = 0.0f;  // volatile: one rounding per multiply and per add
        for (int64_t j = 0; j < n_keys; ++j) {
          volatile float product = p[j] * rows[j * stride + d];
          want = want + product;
        }
        ASSERT_EQ(got[d], want) << head_dim << " " << n_keys << " " << d;
      }
    }
  }
}

// y = x . W^T for a shape that exercises every register-block remainder (7 tokens, 37 rows across
// two tiles, 45 columns = 5 lane groups + 5 tail elements).
TEST(Linear, MatchesDotForEveryEntryAndAnyThreadCount) {
  const int64_t T = 7, rows = 37, cols = 45;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> x(T * cols), w(rows * cols);
  for (float& v : x) v = normal(rng);
  for (float& v : w) v = normal(rng);
  WeightView view;
  view.data = reinterpret_cast<const uint8_t*>(w.data());
  view.rows = rows;
  view.cols = cols;
  std::vector<float> y1(T * rows), y3(T * rows);
  ThreadPool one(1), three(3);
  Linear(view, x.data(), T, y1.data(), one);
  Linear(view, x.data(), T, y3.data(), three);
  EXPECT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * sizeof(float)), 0);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      const float got = y1[t * rows + r];
      ASSERT_EQ(got, Dot(&x[t * cols], &w[r * cols], cols)) << t << "," << r;
      // And close to the exact product: |error| <= n u sum |x w| (u = 2^-24) for any order.
      double exact = 0.0, magnitude = 0.0;
      for (int64_t k = 0; k < cols; ++k) {
        exact += double(x[t * cols + k]) * w[r * cols + k];
        magnitude += std::abs(double(x[t * cols + k]) * w[r * cols + k]);
      }
      EXPECT_LE(std::abs(got - exact), cols * 0x1p-24 * magnitude);
    }
  }
  // One token at a time gives the same bits as the batch.
  std::vector<float> row(rows);
  for (int64_t t = 0; t < T; ++t) {
    Linear(view, &x[t * cols], 1, row.data(), three);
    EXPECT_EQ(std::memcmp(row.data(), &y1[t * rows], rows * sizeof(float)), 0) << t;
  }
}

// Formats without a fused kernel (f16 here) are decoded tile by tile: the product equals the f32
// product of the fully dequantized matrix, bit for bit. Formats with a fused kernel (q8_0, q4_1:
// kernels/gguf_*) read the packed bytes directly with their own accumulation order: the product is
// within the kernels' documented bound of the dequantized one (docs/kernels.md; the exhaustive
// check is tests/consistency/kernel_consistency_test.cc), and independent of the thread count.
// ReadRow returns the decoded row either way.
TEST(Linear, QuantizedWeightsMatchTheirDequantizedProduct) {
  const int64_t T = 5, rows = 70, cols = 100;  // 3 tiles, last partial; 100 = 3 blocks + tail
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> x(T * cols), w(rows * cols);
  for (float& v : x) v = normal(rng);
  for (float& v : w) v = normal(rng);
  for (const char* spec : {"q8_0", "q4_1", "f16"}) {
    Result<FormatPtr> f = ParseFormat(spec);
    ASSERT_TRUE(f.ok()) << spec;
    std::vector<uint8_t> packed((*f)->PackedBytes(rows, cols));
    ASSERT_TRUE((*f)->Quantize(w.data(), rows, cols, packed.data()).ok());
    std::vector<float> deq(rows * cols);
    (*f)->Dequantize(packed.data(), rows, cols, deq.data());
    WeightView q{"q", *f, packed.data(), rows, cols};
    WeightView d{"d", nullptr, reinterpret_cast<const uint8_t*>(deq.data()), rows, cols};
    std::vector<float> yq(T * rows), yd(T * rows), yq1(T * rows);
    ThreadPool pool(2), one(1);
    Linear(q, x.data(), T, yq.data(), pool);
    Linear(q, x.data(), T, yq1.data(), one);
    Linear(d, x.data(), T, yd.data(), pool);
    EXPECT_EQ(std::memcmp(yq.data(), yq1.data(), yq.size() * sizeof(float)), 0) << spec;
    const bool fused = kernels::FindKernel(**f, kernels::ActiveIsa()).has_value();
    EXPECT_EQ(fused, std::string(spec) != "f16") << spec;
    if (!fused) {
      EXPECT_EQ(std::memcmp(yq.data(), yd.data(), yq.size() * sizeof(float)), 0) << spec;
    } else {
      const bool q8 = kernels::FindKernel(**f, kernels::ActiveIsa())->wants_q8;
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          double magnitude = 0.0, max_w = 0.0;
          for (int64_t k = 0; k < cols; ++k) {
            magnitude += std::abs(double(x[t * cols + k]) * deq[r * cols + k]);
            max_w = std::max(max_w, std::abs(double(deq[r * cols + k])));
          }
          // Both products are within their accumulation bounds of the exact one (tiled: ~cols / 8
          // roundings deep, fused: at most cols + 24, docs/kernels.md); Q8 activations add at
          // most half a step (max |x| / 254) per element.
          double bound = (2 * cols + 32) * 0x1p-24 * magnitude;
          if (q8) {
            double max_x = 0.0;
            for (int64_t k = 0; k < cols; ++k)
              max_x = std::max(max_x, std::abs(double(x[t * cols + k])));
            bound += cols * max_w * max_x / 254.0;
          }
          EXPECT_LE(std::abs(double(yq[t * rows + r]) - yd[t * rows + r]), bound) << spec << t << r;
        }
      }
    }
    std::vector<float> r(cols);
    ReadRow(q, 69, r.data());
    EXPECT_EQ(std::memcmp(r.data(), &deq[69 * cols], cols * sizeof(float)), 0) << spec;
    EXPECT_EQ(q.n_bytes(), (*f)->PackedBytes(rows, cols));
    EXPECT_EQ(q.format_name(), spec);
  }
}

TEST(ThreadPool, RunsEveryTaskOnceWithValidThreadIds) {
  for (int n_threads : {1, 2, 4}) {
    ThreadPool pool(n_threads);
    EXPECT_EQ(pool.size(), n_threads);
    for (int64_t n_tasks : {0, 1, 3, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
      std::atomic<bool> bad_thread{false};
      pool.ParallelFor(n_tasks, [&](int64_t task, int thread) {
        hits[static_cast<size_t>(task)]++;
        if (thread < 0 || thread >= n_threads) bad_thread = true;
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
      EXPECT_FALSE(bad_thread);
    }
  }
}

TEST(Sampler, GreedyTopKTopPAndSeeds) {
  const std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f};
  Sampler greedy(SamplerOptions{.temperature = 0.0f});
  EXPECT_EQ(greedy.Sample(logits), 1);  // first of the tied maxima
  // top_k = 1 or a tiny top_p leave only the most likely token (ties: lowest id).
  Sampler k1(SamplerOptions{.temperature = 1.0f, .top_k = 1, .top_p = 1.0f, .seed = 3});
  Sampler p0(SamplerOptions{.temperature = 1.0f, .top_k = 0, .top_p = 1e-6f, .seed = 3});
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(k1.Sample(logits), 1);
    EXPECT_EQ(p0.Sample(logits), 1);
  }
  // Logits (0, ln 3) at temperature 1: probabilities 1/4, 3/4. 40000 draws: the count of id 1
  // is within 5 standard deviations (sqrt(40000 * 3/16) = 86.6) of 30000.
  const std::vector<float> two = {0.0f, std::log(3.0f)};
  Sampler s(SamplerOptions{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 42});
  int ones = 0;
  for (int i = 0; i < 40000; ++i) ones += s.Sample(two);
  EXPECT_NEAR(ones, 30000, 5 * 86.6);
  // Temperature 0.5 squares the odds: 1 : 9 -> p(1) = 0.9 (sd sqrt(40000 * 0.09) = 60).
  Sampler cold(SamplerOptions{.temperature = 0.5f, .top_k = 0, .top_p = 1.0f, .seed = 42});
  ones = 0;
  for (int i = 0; i < 40000; ++i) ones += cold.Sample(two);
  EXPECT_NEAR(ones, 36000, 5 * 60.0);
  // top_p = 0.7 < 3/4: only id 1 survives.
  Sampler nucleus(SamplerOptions{.temperature = 1.0f, .top_k = 0, .top_p = 0.7f, .seed = 1});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(nucleus.Sample(two), 1);
  // Same seed, same sequence.
  Sampler a(SamplerOptions{.temperature = 1.0f, .seed = 9});
  Sampler b(SamplerOptions{.temperature = 1.0f, .seed = 9});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Sample(logits), b.Sample(logits));
}

// The radix order (large k) and the comparison order (small k) against a plain stable sort by
// (logit descending, id ascending), over a vocabulary-sized row with many ties, both zeros,
// infinities and subnormals.
TEST(Sampler, CandidateOrderMatchesAComparisonSort) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pick(0, 99);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  const int64_t n = 49152;
  std::vector<float> logits(n);
  for (float& v : logits) {
    const int r = pick(rng);
    v = r < 5    ? 0.0f
        : r < 10 ? -0.0f
        : r < 12 ? std::numeric_limits<float>::infinity()
        : r < 14 ? -std::numeric_limits<float>::infinity()
        : r < 16 ? std::numeric_limits<float>::denorm_min() * static_cast<float>(r - 14)
        : r < 30 ? std::round(normal(rng))  // integer logits: many ties
                 : normal(rng);
  }
  std::vector<std::pair<float, int32_t>> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = {logits[i], static_cast<int32_t>(i)};
  std::stable_sort(want.begin(), want.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (int64_t k : {int64_t{1}, int64_t{40}, int64_t{511}, int64_t{512}, int64_t{5000}, n}) {
    std::vector<std::pair<float, int32_t>> got;
    OrderCandidates(logits, k, &got);
    ASSERT_EQ(static_cast<int64_t>(got.size()), k);
    for (int64_t i = 0; i < k; ++i) {
      ASSERT_EQ(got[i].second, want[i].second) << "k = " << k << ", position " << i;
      ASSERT_EQ(std::memcmp(&got[i].first, &logits[got[i].second], sizeof(float)), 0);
    }
  }
  // NaN logits come after every number, in id order, in both paths.
  std::vector<float> with_nan(600, -1.0f);
  with_nan[3] = std::nanf("");
  with_nan[5] = 2.0f;
  with_nan[7] = std::nanf("");
  for (int64_t k : {int64_t{4}, int64_t{600}}) {
    std::vector<std::pair<float, int32_t>> got;
    OrderCandidates(with_nan, k, &got);
    EXPECT_EQ(got[0].second, 5) << k;
    EXPECT_EQ(got[1].second, 0) << k;
    if (k == 600) {
      EXPECT_EQ(got[598].second, 3);
      EXPECT_EQ(got[599].second, 7);
    }
  }
}

TEST(LlamaConfig, ValidateNamesTheField) {
  LlamaConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 512;
  EXPECT_TRUE(c.Validate().ok());
  LlamaConfig bad = c;
  bad.n_kv_heads = 3;
  EXPECT_NE(bad.Validate().message().find("n_kv_heads"), std::string::npos);
  bad = c;
  bad.rope_dim = 9;
  EXPECT_NE(bad.Validate().message().find("rope_dim"), std::string::npos);
  bad = c;
  bad.vocab_size = 0;
  EXPECT_NE(bad.Validate().message().find("vocab_size"), std::string::npos);
}

TEST(Loaders, RejectMissingAndMalformedFiles) {
  EXPECT_EQ(LoadModel("/nonexistent/model.bin").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(LoadLlama2c("/nonexistent/model.bin").status().code(), StatusCode::kNotFound);
  // A llama2.c header promising more floats than the file holds.
  const std::string path = TempPath("short.bin");
  {
    std::ofstream out(path, std::ios::binary);
    const int32_t header[7] = {64, 172, 5, 8, 4, 512, 512};
    out.write(reinterpret_cast<const char*>(header), sizeof(header));
    std::vector<float> some(1000, 0.0f);
    out.write(reinterpret_cast<const char*>(some.data()), some.size() * 4);
  }
  Result<LlamaModel> r = LoadLlama2c(path);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("implies"), std::string::npos) << r.status().message();
  {
    std::ofstream out(path, std::ios::binary);
    const int32_t header[7] = {64, 172, 5, 0, 4, 512, 512};  // n_heads = 0
    out.write(reinterpret_cast<const char*>(header), sizeof(header));
  }
  r = LoadLlama2c(path);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("n_heads"), std::string::npos) << r.status().message();
  std::filesystem::remove(path);

  // GGUF: an architecture lowbit does not run, and a llama file missing a tensor.
  const std::string gguf_path = TempPath("arch.gguf");
  GgufWriter falcon;
  falcon.SetString("general.architecture", "falcon");
  ASSERT_TRUE(falcon.WriteAtomic(gguf_path).ok());
  EXPECT_EQ(LoadFromGguf(gguf_path).status().code(), StatusCode::kUnimplemented);
  GgufWriter llama;
  llama.SetString("general.architecture", "llama");
  llama.SetUint32("llama.embedding_length", 8);
  llama.SetUint32("llama.feed_forward_length", 16);
  llama.SetUint32("llama.block_count", 1);
  llama.SetUint32("llama.attention.head_count", 2);
  const std::vector<float> embd(4 * 8, 0.5f);
  Result<FormatPtr> f32 = ParseFormat("f32");
  ASSERT_TRUE(f32.ok());
  ASSERT_TRUE(llama
                  .AddTensor("token_embd.weight", {8, 4}, *f32,
                             {reinterpret_cast<const uint8_t*>(embd.data()), embd.size() * 4})
                  .ok());
  ASSERT_TRUE(llama.WriteAtomic(gguf_path).ok());
  r = LoadFromGguf(gguf_path);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("blk.0.attn_norm.weight"), std::string::npos)
      << r.status().message();
  std::filesystem::remove(gguf_path);
}

}  // namespace
}  // namespace lowbit
