// The kernel table against the reference, in the spirit of ggml's test-backend-ops: for EVERY
// preset of the format registry, every ISA level up to MaxSupportedIsa() and every activation
// path (default, f32, q8) for which FindKernel returns an entry (so every family's kernels are
// checked the day they register), the fused product y = x . W^T is compared with
//   ref = sum_k w_k * a_k  in double,
// w = Format::DequantizeRows (the reference decoder), a = x for f32 entries and, for entries that
// want Q8 activations, a = d * q of QuantizeActivationsQ8's blocks (so the activation rounding,
// which is part of the Q8 kernels' definition, is in the reference exactly and the bound below is
// only about the kernel's own arithmetic).
//
// Tolerance (docs/kernels.md, "Tolerance"): every kernel computes each output as a sum of products
// where each term passes through at most D floating-point roundings (products, scale products,
// the chain of accumulations of one lane, the final reduction tree). The classical bound for such
// a sum is |y - ref| <= gamma_D * sum_k |w_k a_k| with gamma_D = D u / (1 - D u), u = 2^-24; plus
// D * 2^-149 per term for products that underflow into f32 subnormals. One D serves every kernel,
// whatever its summation order: D = cols + 4 * units + 16 (units = ceil(cols / 32)) covers a
// sequential chain over all elements plus up to 4 roundings per unit (scale products, the Q8
// min term, lookup-table entries) and a reduction tree; the SIMD kernels of kernels/gguf_* and
// integer_* need far less (2 * units + 16). It stays far below the error of a wrong decode (a
// whole |w_k a_k|).
// Besides the bound, two properties are checked bit for bit: splitting the rows between calls
// (threads) never changes an output, and a batch of n tokens gives each token the bits of n = 1.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "formats/additive.h"
#include "kernels/kernel.h"
#include "lowbit/format_registry.h"
#include "test_support.h"

namespace lowbit {
namespace {

using kernels::ActivationsQ8;
using kernels::ActPath;
using kernels::Isa;
using kernels::KernelEntry;
using kernels::MatmulArgs;

struct Shape {
  int64_t rows, cols;
  std::vector<int64_t> token_counts;
};

// Packed weights of one test matrix: quantized from floats when the format can, else random bytes
// (decode-only formats such as the GGUF k-quants), with the rows that decode to non-finite or
// huge values excluded from the comparison.
struct TestMatrix {
  std::vector<uint8_t> packed;
  std::vector<float> decoded;     // (rows, cols)
  std::vector<bool> row_checked;  // rows whose decoded values are finite and moderate
};

TestMatrix MakeMatrix(const Format& f, int64_t rows, int64_t cols, int data_kind,
                      std::mt19937_64& rng) {
  TestMatrix m;
  m.packed.resize(static_cast<size_t>(f.PackedBytes(rows, cols)));
  if (f.can_quantize()) {
    std::vector<float> w = testing::RandomFloats(rng, static_cast<size_t>(rows * cols), data_kind);
    if (data_kind == 4) {  // adversarial rows: zeros, huge, tiny (subnormal scales), one outlier
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          float& v = w[static_cast<size_t>(r * cols + c)];
          switch (r % 4) {
            case 0:
              v = 0.0f;
              break;
            case 1:
              v *= 3e4f;
              break;
            case 2:
              v *= 1e-39f;
              break;
            default:
              v = (c % 37 == 5) ? 1e3f : v * 1e-3f;
              break;
          }
        }
      }
    }
    EXPECT_TRUE(f.Quantize(w.data(), rows, cols, m.packed.data()).ok()) << f.spec();
  } else {
    for (uint8_t& b : m.packed) b = static_cast<uint8_t>(rng());
  }
  m.decoded.resize(static_cast<size_t>(rows * cols));
  f.Dequantize(m.packed.data(), rows, cols, m.decoded.data());
  m.row_checked.assign(static_cast<size_t>(rows), true);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float v = m.decoded[static_cast<size_t>(r * cols + c)];
      if (!std::isfinite(v) || std::fabs(v) > 1e15f) m.row_checked[static_cast<size_t>(r)] = false;
    }
  }
  return m;
}

std::vector<float> MakeActivations(int64_t n_tokens, int64_t cols, std::mt19937_64& rng) {
  std::vector<float> x = testing::RandomFloats(rng, static_cast<size_t>(n_tokens * cols), 0);
  // Token 1 (when present): a zero block, a block with one large value, a block of tiny values.
  if (n_tokens > 1) {
    for (int64_t c = 0; c < cols; ++c) {
      float& v = x[static_cast<size_t>(cols + c)];
      if (c < 32) v = 0.0f;
      if (c == 40) v = 5e3f;
      if (c >= 64 && c < 96) v *= 1e-20f;
    }
  }
  return x;
}

// Bit-identical floats, except that any two NaNs count as equal: random-byte weights (decode-only
// formats) can hold NaN/Inf scales, and which NaN payload an operation propagates may depend on
// the operand order the compiler picked, which is not part of the contract.
bool SameBits(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  }
  return true;
}

// Runs the entry over rows [0, rows) in the given pieces (as threads would).
void RunEntry(const KernelEntry& e, MatmulArgs args, const std::vector<int64_t>& cuts) {
  int64_t r0 = 0;
  for (int64_t cut : cuts) {
    const int64_t r1 = std::min(args.rows, cut);
    if (r1 > r0) e.run(args, r0, r1);
    r0 = std::max(r0, r1);
  }
  if (r0 < args.rows) e.run(args, r0, args.rows);
}

// Offset-splitting Q8 kernels (KernelEntry::splits_offset) round s * (c - z) * a and m * a apart,
// so their error scales with |s (c - z)| + |m|. Those are bounded by W = max |w| of the row: the
// encoders give every group an element with code 0 (decoding to exactly m, so |m| <= W), and for
// random bytes (decode-only formats) two different codes in a unit give |s| <= 2 W, so
// |m| <= W + 31 * 2 W (codes <= 31 in the 4- and 5-bit offset formats) and |s (c - z)| <= 62 W.
// A group whose elements all decode to 0 can still have huge s and m (saturated fp16 fields), which
// is why the row's W and not the group's is used. Envelope per element: |w| + 126 W.
constexpr double kOffsetEnvelope = 126.0;

struct Worst {
  double excess = -1.0;  // |err| / bound
  std::string where;
};

// AQLM's int16-LUT kernels (docs/kernels.md, "AQLM kernels") round each token's lookup table to
// int16 with the scale S_t = max|L| / 32767: on top of the float bound, at most slots * S_t / 2 *
// |s_r| per output, plus three final roundings (4 ulp of |y| here). S_t is bounded from the exact
// table entries x_group . codeword, times (1 + 1e-5) for the float table's own rounding.
std::vector<double> Lut16Extra(const Format& f, const uint8_t* packed, int64_t rows, int64_t cols,
                               const std::vector<float>& x, int64_t n) {
  const auto& af = dynamic_cast<const AqlmFormat&>(f);
  const AqlmTensor t = af.Unpack(packed, rows, cols);
  const int64_t groups = t.n_groups(), g = t.params.g, K = int64_t{1} << t.params.b;
  const double slots = static_cast<double>(groups * t.params.m);
  std::vector<double> extra(static_cast<size_t>(n * rows));
  for (int64_t tk = 0; tk < n; ++tk) {
    double max_lut = 0.0;
    for (int64_t j = 0; j < groups; ++j) {
      for (int m = 0; m < t.params.m; ++m) {
        for (int64_t k = 0; k < K; ++k) {
          const float* c = t.codeword(m, static_cast<uint32_t>(k));
          double e = 0.0;
          for (int64_t i = 0; i < g && j * g + i < cols; ++i) {
            e += double(x[static_cast<size_t>(tk * cols + j * g + i)]) * c[i];
          }
          max_lut = std::max(max_lut, std::fabs(e));
        }
      }
    }
    const double s_t = max_lut * (1 + 1e-5) / 32767.0;
    for (int64_t r = 0; r < rows; ++r) {
      extra[static_cast<size_t>(tk * rows + r)] =
          std::fabs(double(t.scales[static_cast<size_t>(r)])) * slots * s_t / 2;
    }
  }
  return extra;
}

void CheckEntry(const Format& f, const KernelEntry& e, const Shape& shape, int data_kind,
                std::mt19937_64& rng, int64_t* compared) {
  const int64_t rows = shape.rows, cols = shape.cols;
  const TestMatrix m = MakeMatrix(f, rows, cols, data_kind, rng);
  std::vector<uint8_t> repacked;
  const uint8_t* w = m.packed.data();
  if (e.repack != nullptr) {
    repacked = e.repack(f, m.packed.data(), rows, cols);
    w = repacked.data();
  }
  const int64_t units = (cols + 31) / 32;
  const double depth = double(cols + 4 * units + 16);
  const double u = std::ldexp(1.0, -24);
  const double gamma = depth * u / (1.0 - depth * u);
  for (int64_t n : shape.token_counts) {
    const std::vector<float> x = MakeActivations(n, cols, rng);
    ActivationsQ8 xq;
    std::vector<double> a(x.begin(), x.end());
    if (e.wants_q8) {
      kernels::QuantizeActivationsQ8(x.data(), n, cols, &xq);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t c = 0; c < cols; ++c) {
          const kernels::Q8Block32& b =
              xq.blocks[static_cast<size_t>(t * xq.blocks_per_row + c / 32)];
          a[static_cast<size_t>(t * cols + c)] = double(b.d) * b.q[c % 32];
        }
      }
    }
    MatmulArgs args;
    args.w = w;
    args.rows = rows;
    args.cols = cols;
    args.format = &f;
    args.x = x.data();
    args.x_q8 = e.wants_q8 ? &xq : nullptr;
    args.n_tokens = n;
    std::vector<float> y(static_cast<size_t>(n * rows), -7.0f), y_split(y.size(), -7.0f);
    args.y = y.data();
    args.ldy = rows;
    RunEntry(e, args, {});
    args.y = y_split.data();
    RunEntry(e, args, {1, rows / 2, rows / 2 + 3});  // uneven pieces, as threads take them
    ASSERT_TRUE(SameBits(y.data(), y_split.data(), y.size()))
        << e.name << " " << f.spec() << ": the row split changed the result";
    // Each token alone gives the same bits as inside the batch.
    if (n > 1) {
      for (int64_t t = 0; t < n; ++t) {
        ActivationsQ8 xq1;
        if (e.wants_q8)
          kernels::QuantizeActivationsQ8(&x[static_cast<size_t>(t * cols)], 1, cols, &xq1);
        MatmulArgs one = args;
        one.x = &x[static_cast<size_t>(t * cols)];
        one.x_q8 = e.wants_q8 ? &xq1 : nullptr;
        one.n_tokens = 1;
        std::vector<float> y1(static_cast<size_t>(rows));
        one.y = y1.data();
        RunEntry(e, one, {});
        ASSERT_TRUE(SameBits(y1.data(), &y[static_cast<size_t>(t * rows)], rows))
            << e.name << " " << f.spec() << ": token " << t << " of " << n
            << " differs from the same token alone";
      }
    }
    const bool lut16 = std::string(e.name).rfind("aqlm.lut16", 0) == 0;
    const std::vector<double> lut_extra =
        lut16 ? Lut16Extra(f, m.packed.data(), rows, cols, x, n) : std::vector<double>();
    Worst worst;
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        if (!m.row_checked[static_cast<size_t>(r)]) continue;
        double ref = 0.0, mag = 0.0;
        const float* wr = &m.decoded[static_cast<size_t>(r * cols)];
        double row_max = 0.0;
        for (int64_t c = 0; c < cols; ++c) row_max = std::max(row_max, std::fabs(double(wr[c])));
        for (int64_t c = 0; c < cols; ++c) {
          const double ak = a[static_cast<size_t>(t * cols + c)];
          const double p = double(wr[c]) * ak;
          ref += p;
          double envelope = std::fabs(wr[c]);
          if (e.splits_offset) envelope += kOffsetEnvelope * row_max;
          mag += envelope * std::fabs(ak);
        }
        // Weights within rho of the format's (KernelEntry::weight_rel_error): rho * mag more,
        // and the float bound on terms up to (1 + rho) times larger.
        const double rho = e.weight_rel_error;
        double bound = (gamma * (1.0 + rho) + rho) * mag + depth * double(cols) * std::ldexp(1.0, -149);
        if (lut16) {
          bound +=
              lut_extra[static_cast<size_t>(t * rows + r)] + 4 * std::ldexp(std::fabs(ref), -24);
        }
        const double got = y[static_cast<size_t>(t * rows + r)];
        const double err = std::fabs(got - ref);
        ++*compared;
        const double excess = std::isnan(got) ? 1e300 : err / bound;
        if (excess > worst.excess) {
          worst.excess = excess;
          worst.where = "token " + std::to_string(t) + " row " + std::to_string(r) + ": got " +
                        std::to_string(got) + " ref " + std::to_string(ref) + " |err| " +
                        std::to_string(err) + " bound " + std::to_string(bound);
        }
      }
    }
    EXPECT_LE(worst.excess, 1.0) << e.name << " on " << f.spec() << " (" << rows << "x" << cols
                                 << ", " << n << " tokens, data kind " << data_kind
                                 << "): worst element " << worst.where;
  }
}

TEST(KernelConsistency, EveryPresetEveryLevelEveryPathAgainstTheReference) {
  const std::vector<Shape> shapes = {
      {1, 32, {1, 2, 3}}, {7, 96, {1, 2, 3, 4, 5, 8, 16}}, {33, 256, {1, 4, 5}}, {5, 100, {1, 3}},
      {4, 300, {1, 2}},   {19, 4096 + 40, {1, 5}},
      // >= 4 whole groups of 16 rows: the batch-1 path that runs kIlStreams groups side by side
      // (kernels/interleaved.h), with a remainder and row splits that cut groups.
      {150, 160, {1, 3}},
  };
  std::mt19937_64 rng(2024);
  std::set<std::string> tested;
  int64_t compared = 0;
  for (const PresetInfo& preset : FormatRegistry::Get().presets()) {
    Result<FormatPtr> f = ParseFormat(preset.spec);
    ASSERT_TRUE(f.ok()) << preset.spec;
    for (int level = 0; level <= static_cast<int>(kernels::MaxSupportedIsa()); ++level) {
      std::set<std::string> names;  // FindKernel may return the same entry for several paths
      for (ActPath path : {ActPath::kDefault, ActPath::kF32, ActPath::kQ8}) {
        std::optional<KernelEntry> e = kernels::FindKernel(**f, static_cast<Isa>(level), path);
        if (!e || !names.insert(e->name).second) continue;
        ASSERT_LE(static_cast<int>(e->isa), level) << e->name;
        ASSERT_NE(e->run, nullptr) << e->name;
        tested.insert(preset.name + " " + e->name);
        for (size_t s = 0; s < shapes.size(); ++s) {
          const int data_kind = static_cast<int>(s) % 5;  // normal, heavy, tiny, mixed, adversarial
          CheckEntry(**f, *e, shapes[s], data_kind, rng, &compared);
          if (s == 1) CheckEntry(**f, *e, shapes[s], 4, rng, &compared);
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }
  std::string list;
  for (const std::string& t : tested) list += "  " + t + "\n";
  std::printf("kernel consistency: %zu (preset, kernel) pairs, %lld outputs compared\n%s",
              tested.size(), static_cast<long long>(compared), list.c_str());
  // The kern-core families must be present at every level (the table is not silently empty).
  for (const char* must :
       {"q4_0 q4_0.scalar.f32", "q8_0 il16.8.f16.s1.avx2.q8", "q4_k q4_k.scalar.q8"}) {
    EXPECT_TRUE(tested.count(must)) << must;
  }
  if (kernels::CpuHasAvx512Vbmi()) {  // the one kernel with a rounded table (weight_rel_error)
    EXPECT_TRUE(tested.count("nf4 il16.4l2vu2.f32.s1.avx512.q8"));
  }
}

}  // namespace
}  // namespace lowbit
