// AQLM lookup-table kernels (src/kernels/additive_*): every instruction-set level against the exact
// (double) value of the format's definition, bit-identical across levels, row splits and batch sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
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

// N(0, 1) weights quantized calibration-free into f.
std::vector<uint8_t> RandomPacked(const AqlmFormat& f, int64_t rows, int64_t cols, std::mt19937_64& rng) {
  std::normal_distribution<float> nd;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = nd(rng);
  std::vector<uint8_t> packed(static_cast<size_t>(f.PackedBytes(rows, cols)));
  EXPECT_TRUE(f.Quantize(w.data(), rows, cols, packed.data()).ok());
  return packed;
}

// The entry's output for all rows in one call (whole) and in row pieces of the granule, as threads
// take them (split).
struct EntryOutputs {
  std::vector<float> whole, split;
};
EntryOutputs RunWholeAndSplit(const kernels::KernelEntry& entry, const Format& f,
                              const std::vector<uint8_t>& packed, int64_t rows, int64_t cols,
                              const std::vector<float>& x, int64_t n_tokens) {
  const std::vector<uint8_t> repacked = entry.repack(f, packed.data(), rows, cols);
  kernels::MatmulArgs args;
  args.w = repacked.data();
  args.rows = rows;
  args.cols = cols;
  args.format = &f;
  args.x = x.data();
  args.n_tokens = n_tokens;
  args.ldy = rows;
  EntryOutputs out;
  out.whole.assign(static_cast<size_t>(n_tokens * rows), NAN);
  out.split.assign(out.whole.size(), NAN);
  args.y = out.whole.data();
  entry.run(args, 0, rows);
  args.y = out.split.data();
  for (int64_t r0 = 0; r0 < rows; r0 += entry.row_granule) {
    entry.run(args, r0, std::min(rows, r0 + entry.row_granule));
  }
  return out;
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
    const std::vector<uint8_t> packed = RandomPacked(af, c.rows, c.cols, rng);
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
        const EntryOutputs o = RunWholeAndSplit(*entry, af, packed, c.rows, c.cols, x, n_tokens);
        const std::vector<float>& y = o.whole;
        const std::vector<float>& split = o.split;
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

// The int16-LUT path (additive_kernels.h): AVX-512 bit-identical to its scalar reference, whole and
// split at the row granule, and within the documented bound of the exact value: the float LUT's
// error (the bound above) plus slots * S_t / 2 from rounding the table, times |s_r|, plus three
// final roundings; S_t <= max |exact LUT entry| * (1 + 1e-5) / 32767 (the float LUT is within
// gamma_g of it).
TEST(AqlmKernel, Lut16MatchesItsReferenceAndTheDefinition) {
  const std::vector<Case> cases = {
      {"aqlm_2x8g8", 40, 64}, {"aqlm_1x8g8", 70, 172}, {"aqlm_4x8g8", 33, 96},
      {"aqlm:m=2,b=3,g=4", 18, 30}, {"aqlm:m=3,b=8,g=5", 65, 23},
  };
  std::mt19937_64 rng(43);
  std::normal_distribution<float> nd;
  for (const Case& c : cases) {
    auto f = ParseFormat(c.spec);
    ASSERT_TRUE(f.ok()) << c.spec;
    const auto& af = dynamic_cast<const AqlmFormat&>(**f);
    const std::vector<uint8_t> packed = RandomPacked(af, c.rows, c.cols, rng);
    const AqlmTensor t = af.Unpack(packed.data(), c.rows, c.cols);
    const int64_t slots = t.n_groups() * t.params.m, K = int64_t{1} << t.params.b;
    auto scalar = kernels::LookupAdditiveKernelFor(af, kernels::Isa::kScalar, kernels::ActPath::kQ8);
    ASSERT_TRUE(scalar.has_value());
    ASSERT_STREQ(scalar->name, "aqlm.lut16.scalar");
    std::vector<std::optional<kernels::KernelEntry>> entries = {scalar};
    if (kernels::MaxSupportedIsa() == kernels::Isa::kAvx512) {
      entries.push_back(kernels::LookupAdditiveKernelFor(af, kernels::Isa::kAvx512,
                                                         kernels::ActPath::kDefault));
      ASSERT_STREQ(entries.back()->name, "aqlm.lut16.avx512");
    }
    for (int64_t n_tokens : {1, 3, 16, 19}) {
      std::vector<float> x(static_cast<size_t>(n_tokens * c.cols));
      for (auto& v : x) v = nd(rng);
      std::vector<double> ref, bound;
      Reference(t, x.data(), n_tokens, &ref, &bound);
      std::vector<double> max_lut(static_cast<size_t>(n_tokens), 0.0);
      for (int64_t tk = 0; tk < n_tokens; ++tk) {
        for (int64_t j = 0; j < t.n_groups(); ++j) {
          for (int m = 0; m < t.params.m; ++m) {
            for (int64_t k = 0; k < K; ++k) {
              const float* cw = t.codeword(m, static_cast<uint32_t>(k));
              double e = 0.0;
              for (int64_t i = 0; i < t.params.g && j * t.params.g + i < c.cols; ++i) {
                e += static_cast<double>(x[static_cast<size_t>(tk * c.cols + j * t.params.g + i)]) * cw[i];
              }
              max_lut[static_cast<size_t>(tk)] = std::max(max_lut[static_cast<size_t>(tk)], std::fabs(e));
            }
          }
        }
      }
      std::vector<float> first;
      for (const auto& entry : entries) {
        const EntryOutputs o = RunWholeAndSplit(*entry, af, packed, c.rows, c.cols, x, n_tokens);
        const std::vector<float>& y = o.whole;
        const std::vector<float>& split = o.split;
        for (size_t i = 0; i < y.size(); ++i) {
          const int64_t tk = static_cast<int64_t>(i) / c.rows, r = static_cast<int64_t>(i) % c.rows;
          const double s_t = max_lut[static_cast<size_t>(tk)] * (1 + 1e-5) / 32767.0;
          const double lim = bound[i] +
                             std::fabs(t.scales[static_cast<size_t>(r)]) * (0.5 * slots * s_t) +
                             4 * std::ldexp(std::fabs(ref[i]), -24) + 1e-30;
          ASSERT_LE(std::fabs(y[i] - ref[i]), lim)
              << c.spec << " " << entry->name << " n=" << n_tokens << " i=" << i;
          ASSERT_EQ(y[i], split[i]) << c.spec << " " << entry->name << " i=" << i;
        }
        if (first.empty()) {
          first = y;
        } else {
          for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_EQ(y[i], first[i]) << c.spec << " " << entry->name << " differs from scalar at " << i;
          }
        }
      }
    }
  }
}

// Zero activations give zeros; a NaN or Inf activation makes every output of its token NaN (the
// table scale is NaN) and leaves the other tokens alone.
TEST(AqlmKernel, Lut16ZeroAndNonFiniteActivations) {
  auto f = ParseFormat("aqlm_2x8g8");
  ASSERT_TRUE(f.ok());
  const int64_t rows = 64, cols = 64;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> w(rows * cols);
  for (auto& v : w) v = nd(rng);
  std::vector<uint8_t> packed((*f)->PackedBytes(rows, cols));
  ASSERT_TRUE((*f)->Quantize(w.data(), rows, cols, packed.data()).ok());
  for (kernels::Isa isa : {kernels::Isa::kScalar, kernels::MaxSupportedIsa()}) {
    auto entry = kernels::LookupAdditiveKernelFor(**f, isa, kernels::ActPath::kQ8);
    ASSERT_TRUE(entry.has_value());
    const auto repacked = entry->repack(**f, packed.data(), rows, cols);
    std::vector<float> x(3 * cols, 0.0f), y(3 * rows, -1.0f);
    for (int64_t i = 0; i < cols; ++i) x[static_cast<size_t>(2 * cols + i)] = nd(rng);
    x[cols + 5] = NAN;
    x[2 * cols + 7] = INFINITY;  // token 2: Inf
    kernels::MatmulArgs args;
    args.w = repacked.data();
    args.rows = rows;
    args.cols = cols;
    args.format = f->get();
    args.x = x.data();
    args.n_tokens = 3;
    args.y = y.data();
    args.ldy = rows;
    entry->run(args, 0, rows);
    for (int64_t r = 0; r < rows; ++r) {
      EXPECT_EQ(y[static_cast<size_t>(r)], 0.0f) << entry->name << " r=" << r;
      EXPECT_TRUE(std::isnan(y[static_cast<size_t>(rows + r)])) << entry->name << " r=" << r;
      EXPECT_TRUE(std::isnan(y[static_cast<size_t>(2 * rows + r)])) << entry->name << " r=" << r;
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
