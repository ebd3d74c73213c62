// The kernel table's plumbing (src/kernels/dispatch.cc) and the runtime's use of it
// (src/runtime/linear.cc): LOWBIT_ISA parsing, the CPU probe, Q8 activation quantization on
// hand-computed blocks, kernel lookup, and the determinism promises of Linear with fused kernels
// (bit-identical for any thread count, and per token for any batch size) at every level.
// The numerical accuracy of every kernel is tests/consistency/kernel_consistency_test.cc.
#include "kernels/kernel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/interleaved.h"
#include "lowbit/format_registry.h"
#include "runtime/linear.h"
#include "runtime/thread_pool.h"

namespace lowbit {
namespace {

using kernels::Isa;

TEST(KernelDispatch, ParsesAndResolvesIsaNames) {
  EXPECT_EQ(kernels::ParseIsa("scalar"), Isa::kScalar);
  EXPECT_EQ(kernels::ParseIsa("avx2"), Isa::kAvx2);
  EXPECT_EQ(kernels::ParseIsa("avx512"), Isa::kAvx512);
  EXPECT_EQ(kernels::ParseIsa("AVX2"), std::nullopt);  // exact spelling, as documented
  EXPECT_EQ(kernels::ParseIsa("sse"), std::nullopt);
  EXPECT_EQ(kernels::ParseIsa(nullptr), std::nullopt);
  // The variable only lowers the level; unknown values leave the CPU's level.
  EXPECT_EQ(kernels::ResolveIsa(Isa::kAvx512, "avx2"), Isa::kAvx2);
  EXPECT_EQ(kernels::ResolveIsa(Isa::kAvx512, "scalar"), Isa::kScalar);
  EXPECT_EQ(kernels::ResolveIsa(Isa::kAvx2, "avx512"), Isa::kAvx2);
  EXPECT_EQ(kernels::ResolveIsa(Isa::kAvx2, "bogus"), Isa::kAvx2);
  EXPECT_EQ(kernels::ResolveIsa(Isa::kAvx2, nullptr), Isa::kAvx2);
  EXPECT_LE(kernels::ActiveIsa(), kernels::MaxSupportedIsa());
  EXPECT_STREQ(kernels::IsaName(Isa::kAvx512), "avx512");
}

TEST(KernelDispatch, QuantizeActivationsQ8HandComputed) {
  // Block 0: max |x| = 127 -> d = 1, inv = 1, q = round(x): 63.5 -> 64 and -63.5 -> -64 (ties
  // away from zero), 0.49 -> 0, -0.5 -> -1, 126.5 -> 127. Block 1 (columns 32..39, a tail of 8):
  // max 4 -> d = 4 / 127, inv = 127 / 4 = 31.75 (exact), and every product below is exact.
  std::vector<float> x(72, 0.0f);
  x[0] = 127.0f;
  x[1] = 63.5f;
  x[2] = -63.5f;
  x[3] = 0.49f;
  x[4] = -0.5f;
  x[5] = 126.5f;
  x[31] = -127.0f;
  x[32] = 4.0f;       // block 1: max 4 -> d = 4 / 127, inv = 31.75: 4 -> 127
  x[33] = -2.0f;      // -2 * 31.75 = -63.5 -> -64
  x[34] = 0.25f;      // 7.9375 -> 8
  x[35] = 1.0f / 64;  // 0.49609375 -> 0
  kernels::ActivationsQ8 q;
  kernels::QuantizeActivationsQ8(x.data(), 1, 40, &q);  // 40 columns: block 1 is a tail of 8
  ASSERT_EQ(q.blocks_per_row, 2);
  ASSERT_EQ(q.blocks.size(), 2u);
  EXPECT_EQ(q.blocks[0].d, 1.0f);
  const int expect0[] = {127, 64, -64, 0, -1, 127};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(q.blocks[0].q[i], expect0[i]) << i;
  EXPECT_EQ(q.blocks[0].q[31], -127);
  EXPECT_EQ(q.blocks[0].sum, 127 + 64 - 64 + 0 - 1 + 127 - 127);
  EXPECT_EQ(q.blocks[1].d, 4.0f / 127.0f);
  EXPECT_EQ(q.blocks[1].q[0], 127);
  EXPECT_EQ(q.blocks[1].q[1], -64);
  EXPECT_EQ(q.blocks[1].q[2], 8);
  EXPECT_EQ(q.blocks[1].q[3], 0);
  for (int i = 8; i < 32; ++i) EXPECT_EQ(q.blocks[1].q[i], 0) << "tail padding " << i;
  EXPECT_EQ(q.blocks[1].sum, 127 - 64 + 8);
  // Two tokens of 32 zeros: d = 0, every q = 0.
  std::vector<float> zeros(64, 0.0f);
  kernels::QuantizeActivationsQ8(zeros.data(), 2, 32, &q);
  ASSERT_EQ(q.blocks.size(), 2u);
  for (const auto& b : q.blocks) {
    EXPECT_EQ(b.d, 0.0f);
    EXPECT_EQ(b.sum, 0);
    for (int8_t v : b.q) EXPECT_EQ(v, 0);
  }
}

// Regression (fuzz_gguf, a model whose activations reached ~1e-38): a block whose max is below
// 127 / FLT_MAX made 127 / max = +Inf and the float -> int conversion undefined (UBSan). The values
// must still be quantized: the max maps to +-127, and Inf / NaN blocks to q = 0.
TEST(KernelDispatch, QuantizeActivationsQ8TinyAndNonFiniteBlocks) {
  std::vector<float> x(96, 0.0f);
  x[0] = 1e-38f;  // normal, but 127 / 1e-38 overflows f32
  x[1] = -1e-38f;
  x[2] = 1e-45f;  // subnormal
  x[32] = std::numeric_limits<float>::infinity();
  x[33] = 1.0f;
  x[64] = std::numeric_limits<float>::quiet_NaN();
  x[65] = 2.0f;
  kernels::ActivationsQ8 q;
  kernels::QuantizeActivationsQ8(x.data(), 1, 96, &q);
  ASSERT_EQ(q.blocks.size(), 3u);
  EXPECT_EQ(q.blocks[0].q[0], 127);
  EXPECT_EQ(q.blocks[0].q[1], -127);
  EXPECT_EQ(q.blocks[0].q[2], 127);  // clamped: the block's scale cannot resolve it
  EXPECT_EQ(q.blocks[0].q[3], 0);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q.blocks[1].q[i], 0) << i;  // Inf block: q = 0, d = Inf
  EXPECT_TRUE(std::isinf(q.blocks[1].d));
  EXPECT_EQ(q.blocks[2].q[0], 0);  // NaN element -> 0; the rest scale by the finite max
  EXPECT_EQ(q.blocks[2].q[1], 127);
}

// The AVX2 and AVX-512 quantizers write the scalar one's blocks bit for bit, over random rows of
// every tail length and adversarial blocks (zeros, ties at .5 after scaling, subnormals, tiny
// maxima whose 127 / max overflows, Inf, NaN, huge values). Skips on CPUs without AVX-512 (the
// At() call would run a lower level for both).
TEST(KernelDispatch, QuantizeActivationsQ8LevelsAgreeBitForBit) {
  if (kernels::MaxSupportedIsa() < Isa::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937_64 rng(21);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> pick(0, 9);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const int64_t cols : {1, 15, 16, 17, 31, 32, 33, 47, 64, 100, 576, 1537}) {
    for (int trial = 0; trial < 20; ++trial) {
      const int64_t n_tokens = 3;
      std::vector<float> x(n_tokens * cols);
      for (float& v : x) {
        switch (pick(rng)) {
          case 0:
            v = 0.0f;
            break;
          case 1:
            v = std::ldexp(normal(rng), -140);
            break;  // subnormal
          case 2:
            v = std::ldexp(normal(rng), 120);
            break;  // huge
          case 3:
            v = 127.0f * (std::floor(normal(rng) * 4.0f) + 0.5f) / 508.0f;
            break;  // ties
          default:
            v = normal(rng);
        }
      }
      if (trial % 5 == 1) x[trial % x.size()] = nan;
      if (trial % 5 == 2) x[(3 * trial) % x.size()] = -inf;
      if (trial % 5 == 3) {
        for (int64_t i = 0; i < std::min<int64_t>(cols, 32); ++i) x[i] = 1e-38f * normal(rng);
      }
      if (trial % 5 == 4) {
        // max 127 makes inv exactly 1: every k + 0.5 is an exact tie (away from zero).
        x[0] = 127.0f;
        for (int64_t i = 1; i < std::min<int64_t>(cols, 32); ++i) {
          x[i] = (i % 2 ? 1.0f : -1.0f) * (static_cast<float>((i * 37) % 127) + 0.5f);
        }
      }
      kernels::ActivationsQ8 scalar;
      kernels::QuantizeActivationsQ8At(Isa::kScalar, x.data(), n_tokens, cols, &scalar);
      for (const Isa level : {Isa::kAvx2, Isa::kAvx512}) {
        kernels::ActivationsQ8 fast;
        kernels::QuantizeActivationsQ8At(level, x.data(), n_tokens, cols, &fast);
        ASSERT_EQ(scalar.blocks_per_row, fast.blocks_per_row);
        ASSERT_EQ(scalar.blocks.size(), fast.blocks.size());
        for (size_t b = 0; b < scalar.blocks.size(); ++b) {
          const kernels::Q8Block32& s = scalar.blocks[b];
          const kernels::Q8Block32& f = fast.blocks[b];
          const std::string where = std::string(kernels::IsaName(level)) + " cols " +
                                    std::to_string(cols) + " block " + std::to_string(b);
          ASSERT_EQ(std::memcmp(&s.d, &f.d, sizeof s.d), 0) << where;
          ASSERT_EQ(s.sum, f.sum) << where;
          ASSERT_EQ(std::memcmp(s.q, f.q, sizeof s.q), 0) << where;
        }
      }
    }
  }
}

TEST(KernelDispatch, FindsTheCoreKernelsAtEveryLevel) {
  for (const char* spec :
       {"q4_0", "q8_0", "q4_1", "q5_0", "q4_k", "q6_k", "int4_g128", "int8", "nf4"}) {
    Result<FormatPtr> f = ParseFormat(spec);
    ASSERT_TRUE(f.ok()) << spec;
    for (int level = 0; level <= static_cast<int>(kernels::MaxSupportedIsa()); ++level) {
      const auto e = kernels::FindKernel(**f, static_cast<Isa>(level));
      ASSERT_TRUE(e.has_value()) << spec << " " << level;
      EXPECT_EQ(static_cast<int>(e->isa), level) << e->name;
      EXPECT_NE(e->run, nullptr);
    }
  }
  // Explicit paths: nf4 has no integer-dot variant, q4_0 has both.
  const FormatPtr q4 = *ParseFormat("q4_0");
  EXPECT_TRUE(kernels::FindKernel(*q4, Isa::kScalar, kernels::ActPath::kQ8)->wants_q8);
  EXPECT_FALSE(kernels::FindKernel(*q4, Isa::kScalar, kernels::ActPath::kF32)->wants_q8);
  EXPECT_FALSE(
      kernels::FindKernel(**ParseFormat("nf4"), Isa::kScalar, kernels::ActPath::kQ8)->wants_q8);
  // int3 has no kernel: the runtime falls back to tiled dequantization.
  EXPECT_FALSE(kernels::FindKernel(**ParseFormat("int3_g128_asym"), Isa::kScalar).has_value());
}

// Linear with fused kernels, at every level: 1, 2 and 3 threads give identical bits; a batch of
// 7 tokens gives each token the bits of a single-token call; a prepared view (load-time plan)
// gives the bits of an unprepared one.
TEST(KernelDispatch, LinearIsBitIdenticalForAnyThreadCountAndBatch) {
  const int64_t T = 7, rows = 45, cols = 4096 + 40;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> x(T * cols), w(rows * cols);
  for (float& v : x) v = normal(rng);
  for (float& v : w) v = normal(rng);
  ThreadPool one(1), two(2), three(3);
  for (const char* spec : {"q4_0", "q8_0", "q4_1"}) {
    const FormatPtr f = *ParseFormat(spec);
    std::vector<uint8_t> packed(f->PackedBytes(rows, cols));
    ASSERT_TRUE(f->Quantize(w.data(), rows, cols, packed.data()).ok());
    for (int level = 0; level <= static_cast<int>(kernels::MaxSupportedIsa()); ++level) {
      const Isa isa = static_cast<Isa>(level);
      WeightView view{"w", f, packed.data(), rows, cols};
      std::vector<float> y1(T * rows), y2(T * rows), y3(T * rows), yp(T * rows), row(rows);
      Linear(view, x.data(), T, y1.data(), one, isa);
      Linear(view, x.data(), T, y2.data(), two, isa);
      Linear(view, x.data(), T, y3.data(), three, isa);
      EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)), 0) << spec << level;
      EXPECT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * sizeof(float)), 0) << spec << level;
      for (int64_t t = 0; t < T; ++t) {
        Linear(view, &x[t * cols], 1, row.data(), two, isa);
        EXPECT_EQ(std::memcmp(row.data(), &y1[t * rows], rows * sizeof(float)), 0)
            << spec << " level " << level << " token " << t;
      }
      PrepareWeightForIsa(view, isa);
      EXPECT_NE(view.kernel_plan, nullptr);
      Linear(view, x.data(), T, yp.data(), two, isa);
      EXPECT_EQ(std::memcmp(y1.data(), yp.data(), y1.size() * sizeof(float)), 0) << spec << level;
    }
  }
}

// The FP6 and E4M3 formats take the table-lookup interleaved Q8 kernels (kernels/interleaved.h,
// lut6 / lut8) at AVX-512 where the CPU has VBMI; FP6 also at AVX2 (vpshufb pieces); E4M3 and E5M2
// elsewhere keep the f32 shared-exponent kernels.
TEST(KernelDispatch, TableInterleavedKernelsWhereVbmiExists) {
  if (kernels::MaxSupportedIsa() < Isa::kAvx2) GTEST_SKIP() << "no AVX2 level on this CPU";
  const bool vbmi = kernels::CpuHasAvx512Vbmi();
  const std::pair<const char*, const char*> fp6[] = {{"mxfp6_e2m3", "il16.6t."},
                                                     {"mxfp6_e3m2", "il16.6t2."},
                                                     {"fp6_e3m2_split", "il16.6t2."},
                                                     {"fp6_e2m3_split", "il16.6t."},
                                                     {"bm6", "il16.6t2."}};
  for (const auto& [spec, prefix] : fp6) {
    const FormatPtr f = *ParseFormat(spec);
    const auto avx2 = kernels::FindKernel(*f, Isa::kAvx2, kernels::ActPath::kDefault);
    ASSERT_TRUE(avx2.has_value()) << spec;
    EXPECT_EQ(std::string(avx2->name).rfind(prefix, 0), 0u) << spec << ": " << avx2->name;
    EXPECT_EQ(avx2->isa, Isa::kAvx2);
    EXPECT_TRUE(avx2->wants_q8) << spec;
    if (kernels::MaxSupportedIsa() == Isa::kAvx512) {
      const auto e = kernels::FindKernel(*f, Isa::kAvx512, kernels::ActPath::kDefault);
      ASSERT_TRUE(e.has_value()) << spec;
      EXPECT_EQ(std::string(e->name).rfind(prefix, 0), 0u) << spec << ": " << e->name;
      EXPECT_EQ(e->isa, vbmi ? Isa::kAvx512 : Isa::kAvx2) << spec;
    }
  }
  for (const char* spec : {"mxfp8_e4m3", "bm8", "mxfp8_e5m2"}) {
    const FormatPtr f = *ParseFormat(spec);
    const auto e = kernels::FindKernel(*f, kernels::MaxSupportedIsa(), kernels::ActPath::kDefault);
    ASSERT_TRUE(e.has_value()) << spec;
    // E5M2 magnitudes span 2^-16 .. 57344: no int32-safe integer grid, so always the f32 kernel.
    const bool lut8 = vbmi && std::string(spec) != "mxfp8_e5m2";
    EXPECT_EQ(std::string(e->name).rfind(lut8 ? "il16.8m3." : "se.", 0), 0u)
        << spec << ": " << e->name;
  }
}

// nf4's Q8 layout (kernels/interleaved.h, lut2): its table x 2^14 rounded, in two byte tables with
// zero 2^14, and the largest relative rounding over the codes. Expected values by hand from the
// table: -0.09105003625154495 * 2^14 = -1491.7637939453125 -> -1492, relative error 0.2362 / 1491.76.
TEST(KernelDispatch, Nf4InterleavedTableHandComputed) {
  const std::optional<kernels::IlDesc> d = kernels::InterleavedDescFor(**ParseFormat("nf4"));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->bits, 4);
  EXPECT_EQ(d->lut2, 1);
  EXPECT_EQ(d->zero, 16384);
  EXPECT_EQ(d->unit_blocks, 2);  // blocks of 64
  EXPECT_EQ(d->scale, kernels::IlScale::kF32);
  EXPECT_EQ(d->scale_unit, 1.0f / 16384.0f);
  EXPECT_EQ(d->Value(0), -16384);  // -1.0
  EXPECT_EQ(d->Value(6), -1492);
  EXPECT_EQ(d->Value(7), 0);
  EXPECT_EQ(d->Value(8), 1304);   // 0.07958 * 2^14 = 1303.86
  EXPECT_EQ(d->Value(14), 11845);  // 0.72296 * 2^14 = 11844.92
  EXPECT_EQ(d->Value(15), 16384);  // +1.0: u = 2^15, lo 0, hi 128
  EXPECT_EQ(d->lut16[15], 0);
  EXPECT_EQ(d->lut16_hi[15], 128);
  EXPECT_NEAR(d->table_rel_error, (1492.0 - 1491.7637939453125) / 1491.7637939453125, 1e-12);
  EXPECT_EQ(kernels::InterleavedDescFor(**ParseFormat("nf4_f16"))->scale, kernels::IlScale::kF16);
  // Blocks of 256 keep the f32 kernel (no unit of 8 blocks).
  EXPECT_FALSE(kernels::InterleavedDescFor(**ParseFormat("nf4:block=256")).has_value());
  if (kernels::CpuHasAvx512Vbmi()) {
    const auto e = kernels::FindKernel(**ParseFormat("nf4"), Isa::kAvx512,
                                       kernels::ActPath::kDefault);
    ASSERT_TRUE(e.has_value());
    EXPECT_STREQ(e->name, "il16.4l2vu2.f32.s1.avx512.q8");
    EXPECT_TRUE(e->wants_q8);
    EXPECT_EQ(e->weight_rel_error, d->table_rel_error);
    // LOWBIT_ACT=f32 keeps the exact-table f32 kernel.
    EXPECT_STREQ(
        kernels::FindKernel(**ParseFormat("nf4"), Isa::kAvx512, kernels::ActPath::kF32)->name,
        "nf4.avx512.f32");
  }
  // Without VBMI (AVX2 level) nf4 stays on the f32 kernel.
  if (kernels::MaxSupportedIsa() >= Isa::kAvx2) {
    EXPECT_STREQ(
        kernels::FindKernel(**ParseFormat("nf4"), Isa::kAvx2, kernels::ActPath::kDefault)->name,
        "nf4.avx2.f32");
  }
}

// Runs two row-range functions of the interleaved layout on the same repacked matrix of every
// preset `pick` accepts (random rows with a tail block, 1, 2 and 5 tokens) and requires the same
// bits from both; returns how many presets it compared.
int CompareInterleavedLevels(
    const std::function<
        std::pair<kernels::RowRangeFn, kernels::RowRangeFn>(const kernels::IlDesc&)>& pick) {
  std::mt19937_64 rng(17);
  std::normal_distribution<float> normal;
  int checked = 0;
  for (const PresetInfo& preset : FormatRegistry::Get().presets()) {
    const FormatPtr f = *ParseFormat(preset.name);
    const std::optional<kernels::IlDesc> d = kernels::InterleavedDescFor(*f);
    if (!d) continue;
    const auto [fa, fb] = pick(*d);
    if (fa == nullptr && fb == nullptr) continue;
    EXPECT_NE(fa, nullptr) << preset.name;
    EXPECT_NE(fb, nullptr) << preset.name;
    if (fa == nullptr || fb == nullptr) continue;
    const int64_t block = std::max<int64_t>(f->block_size(), 32);
    const int64_t rows = 37, cols = block <= 32 ? 224 : 2 * block;
    std::vector<float> w(rows * cols);
    for (float& v : w) v = normal(rng) * 3.0f;
    std::vector<uint8_t> packed(static_cast<size_t>(f->PackedBytes(rows, cols)));
    EXPECT_TRUE(f->Quantize(w.data(), rows, cols, packed.data()).ok()) << preset.name;
    const std::vector<uint8_t> il = kernels::InterleavedRepack(*f, packed.data(), rows, cols);
    for (const int64_t n : {1, 2, 5}) {
      std::vector<float> x(n * cols);
      for (float& v : x) v = normal(rng);
      kernels::ActivationsQ8 xq;
      kernels::QuantizeActivationsQ8(x.data(), n, cols, &xq);
      std::vector<float> ya(n * rows), yb(n * rows);
      kernels::MatmulArgs a;
      a.w = il.data();
      a.rows = rows;
      a.cols = cols;
      a.format = f.get();
      a.x = x.data();
      a.x_q8 = &xq;
      a.n_tokens = n;
      a.ldy = rows;
      a.y = ya.data();
      fa(a, 0, rows);
      a.y = yb.data();
      fb(a, 0, rows);
      EXPECT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
          << preset.name << " n = " << n;
    }
    ++checked;
  }
  return checked;
}

// 4-bit table codes (mxfp4 and every preset with a 16-entry table) decode by vpermb where VBMI
// exists and by mask + vpshufb on other AVX-512 CPUs: only the decode differs, so both kernels
// must give the same bits.
TEST(KernelDispatch, Fp4TableByVpermbMatchesVpshufbBitForBit) {
  if (!kernels::CpuHasAvx512Vbmi()) GTEST_SKIP() << "no AVX-512 VBMI: only the vpshufb kernel";
  const int checked = CompareInterleavedLevels([](const kernels::IlDesc& d) {
    if (d.bits != 4 || d.lut == 0 || d.lut2 != 0)  // nf4's two tables: a VBMI kernel only
      return std::make_pair(kernels::RowRangeFn{}, kernels::RowRangeFn{});
    return std::make_pair(kernels::InterleavedAvx512Fn(d), kernels::InterleavedVbmiFn(d));
  });
  EXPECT_GE(checked, 1) << "no preset has 4-bit table codes";
}

// 8-bit integer codes: AVX2 multiplies |w| by sign(q, w) (pmaddubsw), AVX-512 multiplies the
// offset code by q (vpdpbusd) and subtracts zero * sum q: the integer sums are equal, so the
// outputs must be the same bits (q8_0, int8 groups / rows, bfp8; mxint8 keeps its se kernel at
// AVX2).
TEST(KernelDispatch, EightBitAvx2MatchesAvx512BitForBit) {
  if (kernels::MaxSupportedIsa() < Isa::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  const int checked = CompareInterleavedLevels([](const kernels::IlDesc& d) {
    if (d.bits != 8 || d.lut8 != 0 || d.has_min != 0) {
      return std::make_pair(kernels::RowRangeFn{}, kernels::RowRangeFn{});
    }
    const kernels::RowRangeFn avx2 = kernels::InterleavedAvx2Fn(d);
    if (avx2 == nullptr) return std::make_pair(kernels::RowRangeFn{}, kernels::RowRangeFn{});
    return std::make_pair(avx2, kernels::InterleavedAvx512Fn(d));
  });
  EXPECT_GE(checked, 4) << "q8_0, int8_g32, int8 (rows), bfp8 and bfp8_b32 at least";
}

// An OCP E4M3 NaN code (S.1111.111) makes its row's output NaN in the lut8 kernel, as in the
// reference (the repack gives its block the E8M0 NaN scale); the other rows keep their bits.
TEST(KernelDispatch, Fp8NanCodeMakesOnlyItsRowNaN) {
  if (!kernels::CpuHasAvx512Vbmi()) GTEST_SKIP() << "no AVX-512 VBMI: the lut8 kernel is not used";
  const FormatPtr f = *ParseFormat("mxfp8_e4m3");
  const int64_t rows = 20, cols = 96;
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> w(rows * cols), x(cols);
  for (float& v : w) v = normal(rng);
  for (float& v : x) v = normal(rng);
  std::vector<uint8_t> packed(f->PackedBytes(rows, cols));
  ASSERT_TRUE(f->Quantize(w.data(), rows, cols, packed.data()).ok());
  const auto e = kernels::FindKernel(*f, Isa::kAvx512, kernels::ActPath::kDefault);
  ASSERT_TRUE(e.has_value() && e->repack != nullptr) << (e ? e->name : "none");
  kernels::ActivationsQ8 xq;
  kernels::QuantizeActivationsQ8(x.data(), 1, cols, &xq);
  auto run = [&](const std::vector<uint8_t>& p) {
    const std::vector<uint8_t> repacked = e->repack(*f, p.data(), rows, cols);
    std::vector<float> y(rows, -7.0f);
    kernels::MatmulArgs args;
    args.w = repacked.data();
    args.rows = rows;
    args.cols = cols;
    args.format = f.get();
    args.x = x.data();
    args.x_q8 = &xq;
    args.n_tokens = 1;
    args.y = y.data();
    args.ldy = rows;
    e->run(args, 0, rows);
    return y;
  };
  const std::vector<float> clean = run(packed);
  // Row 5, element 40 (block 1): find its byte through the reference decoder.
  const int64_t row_bytes = f->RowBytes(cols), r = 5;
  std::vector<uint8_t> bad = packed;
  bool found = false;
  for (int64_t b = 0; b < row_bytes && !found; ++b) {
    std::vector<uint8_t> trial = packed;
    trial[f->HeaderBytes(rows, cols) + r * row_bytes + b] = 0x7F;
    std::vector<float> dq(rows * cols);
    f->Dequantize(trial.data(), rows, cols, dq.data());
    if (std::isnan(dq[r * cols + 40])) {
      bad = trial;
      found = true;
    }
  }
  ASSERT_TRUE(found) << "no byte decodes element 40 of row 5";
  const std::vector<float> y = run(bad);
  for (int64_t i = 0; i < rows; ++i) {
    if (i == r) {
      EXPECT_TRUE(std::isnan(y[i])) << y[i];
    } else {
      EXPECT_EQ(std::memcmp(&y[i], &clean[i], sizeof(float)), 0) << "row " << i;
    }
  }
  EXPECT_FALSE(std::isnan(clean[r]));
}

}  // namespace
}  // namespace lowbit
