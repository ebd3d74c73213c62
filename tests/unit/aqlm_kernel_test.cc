// AQLM lookup-table kernels (src/kernels/additive_*): every instruction-set level against the exact
// (double) value of the format's definition, bit-identical across levels, row splits and batch sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/additive.h"
#include "kernels/kernel_families.h"
#include "lowbit/format_registry.h"

namespace lowbit {
namespace {

struct Case {
  std::string spec;
  int64_t rows, cols;
};

// y[t][r] and the error bound of the documented float32 order: the sum of slots*... terms, each a
// g-term float32 dot, then one multiplication: at most n = g + slots + 1 roundings along any path,
// so |y - exact| <= gamma_n * |s| * sum |x_i * C_i|, gamma_n = n u / (1 - n u), u = 2^-24
// (Higham, Accuracy and Stability of Numerical Algorithms, section 3.1).
void Reference(const AqlmTensor& t, const float* x, int64_t n_tokens, std::vector<double>* y,
               std::vector<double>* bound) {
  const int64_t rows = t.rows, cols = t.cols, groups = t.n_groups(), g = t.params.g;
  const double u = std::ldexp(1.0, -24);
  const double n = static_cast<double>(g + groups * t.params.m + 1);
  const double gamma = n * u / (1 - n * u);
  y->assign(static_cast<size_t>(n_tokens * rows), 0.0);
  bound->assign(y->size(), 0.0);
  for (int64_t tk = 0; tk < n_tokens; ++tk) {
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0.0, abs = 0.0;
      for (int64_t j = 0; j < groups; ++j) {
        for (int m = 0; m < t.params.m; ++m) {
          const float* c = t.codeword(m, t.code(r, j, m));
          for (int64_t i = 0; i < g && j * g + i < cols; ++i) {
            const double p = static_cast<double>(x[tk * cols + j * g + i]) * c[i];
            sum += p;
            abs += std::fabs(p);
          }
        }
      }
      const double s = t.scales[static_cast<size_t>(r)];
      (*y)[static_cast<size_t>(tk * rows + r)] = s * sum;
      (*bound)[static_cast<size_t>(tk * rows + r)] = gamma * std::fabs(s) * abs;
    }
  }
}

TEST(AqlmKernel, MatchesTheDefinitionOnEveryLevel) {
  const std::vector<Case> cases = {
      {"aqlm_2x8g8", 40, 64},   {"aqlm_1x8g8", 17, 172},  {"aqlm_4x8g8", 33, 96},
      {"aqlm_1x16g8", 20, 64},  {"aqlm:m=2,b=3,g=4", 18, 30}, {"aqlm:m=3,b=8,g=5", 16, 23},
      {"aqlm:m=1,b=12,g=4", 5, 36},
  };
  std::mt19937_64 rng(42);
  std::normal_distribution<float> nd;
  for (const Case& c : cases) {
    auto f = ParseFormat(c.spec);
    ASSERT_TRUE(f.ok()) << c.spec;
    const auto& af = dynamic_cast<const AqlmFormat&>(**f);
    std::vector<float> w(static_cast<size_t>(c.rows * c.cols));
    for (auto& v : w) v = nd(rng);
    std::vector<uint8_t> packed(static_cast<size_t>(af.PackedBytes(c.rows, c.cols)));
    ASSERT_TRUE(af.Quantize(w.data(), c.rows, c.cols, packed.data()).ok());
    const AqlmTensor t = af.Unpack(packed.data(), c.rows, c.cols);
    for (int64_t n_tokens : {1, 3, 16, 19}) {
      std::vector<float> x(static_cast<size_t>(n_tokens * c.cols));
      for (auto& v : x) v = nd(rng);
      std::vector<double> ref, bound;
      Reference(t, x.data(), n_tokens, &ref, &bound);
      std::vector<float> first;
      for (int level = 0; level <= static_cast<int>(kernels::MaxSupportedIsa()); ++level) {
        auto entry = kernels::LookupAdditiveKernel(af, static_cast<kernels::Isa>(level));
        ASSERT_TRUE(entry.has_value());
        ASSERT_EQ(static_cast<int>(entry->isa), level) << entry->name;
        const std::vector<uint8_t> repacked = entry->repack(af, packed.data(), c.rows, c.cols);
        kernels::MatmulArgs args;
        args.w = repacked.data();
        args.rows = c.rows;
        args.cols = c.cols;
        args.format = &af;
        args.x = x.data();
        args.n_tokens = n_tokens;
        args.ldy = c.rows;
        std::vector<float> y(static_cast<size_t>(n_tokens * c.rows), NAN), split(y.size(), NAN);
        args.y = y.data();
        entry->run(args, 0, c.rows);
        args.y = split.data();  // row ranges in multiples of the granule
        for (int64_t r0 = 0; r0 < c.rows; r0 += entry->row_granule) {
          entry->run(args, r0, std::min(c.rows, r0 + entry->row_granule));
        }
        for (size_t i = 0; i < y.size(); ++i) {
          ASSERT_LE(std::fabs(y[i] - ref[i]), bound[i])
              << c.spec << " " << entry->name << " n=" << n_tokens << " i=" << i << " y=" << y[i]
              << " exact=" << ref[i];
          ASSERT_EQ(y[i], split[i]) << c.spec << " " << entry->name << " i=" << i;
        }
        if (level == 0) {
          first = y;
        } else {
          for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_EQ(y[i], first[i]) << c.spec << " " << entry->name << " differs from scalar at " << i << " n=" << n_tokens << " ref=" << ref[i];
          }
        }
      }
    }
  }
}

// Single-token results do not depend on the batch the token is in.
TEST(AqlmKernel, BatchSizeDoesNotChangeBits) {
  auto f = ParseFormat("aqlm_2x8g8");
  ASSERT_TRUE(f.ok());
  const int64_t rows = 48, cols = 128;
  std::mt19937_64 rng(9);
  std::normal_distribution<float> nd;
  std::vector<float> w(rows * cols), x(5 * cols);
  for (auto& v : w) v = nd(rng);
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> packed((*f)->PackedBytes(rows, cols));
  ASSERT_TRUE((*f)->Quantize(w.data(), rows, cols, packed.data()).ok());
  auto entry = kernels::LookupAdditiveKernel(**f, kernels::MaxSupportedIsa());
  ASSERT_TRUE(entry.has_value());
  const auto repacked = entry->repack(**f, packed.data(), rows, cols);
  kernels::MatmulArgs args;
  args.w = repacked.data();
  args.rows = rows;
  args.cols = cols;
  args.format = f->get();
  args.ldy = rows;
  std::vector<float> all(5 * rows), one(rows);
  args.x = x.data();
  args.n_tokens = 5;
  args.y = all.data();
  entry->run(args, 0, rows);
  for (int t = 0; t < 5; ++t) {
    args.x = x.data() + t * cols;
    args.n_tokens = 1;
    args.y = one.data();
    entry->run(args, 0, rows);
    for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(one[r], all[t * rows + r]) << t << "," << r;
  }
}

}  // namespace
}  // namespace lowbit
