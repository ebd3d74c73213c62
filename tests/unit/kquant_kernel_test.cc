// The interleaved kernels of GGUF q4_k / q6_k (kernels/kquant_*, Q8 activations) and nf4
// (kernels/nf4_*, f32 activations): hand-computed super-blocks, the code layout element by
// element (one-hot activations), every level against the format's own decoder (DequantizeRows)
// times the activations in double with the documented bound (docs/kernels.md, "Tolerance"), and
// bit identity across levels, row splits and token batches. Shapes: rows that are not a multiple
// of the 16-row interleave, cols with partial super-blocks / blocks, n = 1..16 tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/minifloat_codec.h"
#include "formats/nf4.h"
#include "kernels/kernel.h"
#include "kernels/kernel_families.h"
#include "lowbit/format_registry.h"
#include "test_support.h"

namespace lowbit {
namespace {

using kernels::ActivationsQ8;
using kernels::Isa;
using kernels::KernelEntry;
using kernels::MatmulArgs;

FormatPtr Fmt(const std::string& spec) {
  Result<FormatPtr> f = ParseFormat(spec);
  EXPECT_TRUE(f.ok()) << spec;
  return *f;
}

std::vector<Isa> Levels() {
  std::vector<Isa> out;
  for (int l = 0; l <= static_cast<int>(kernels::MaxSupportedIsa()); ++l)
    out.push_back(static_cast<Isa>(l));
  return out;
}

// The interleaved entry of `f` at `isa` (the lookups of kernel_families.h).
KernelEntry EntryAt(const Format& f, Isa isa) {
  std::optional<KernelEntry> e =
      f.family() == "nf4" ? kernels::LookupNf4Kernel(f, isa) : kernels::LookupKquantKernel(f, isa);
  EXPECT_TRUE(e.has_value()) << f.spec();
  return *e;
}

// Runs entry e on packed weights; rows split at `cuts` (as threads would).
std::vector<float> RunEntry(const KernelEntry& e, const Format& f,
                            const std::vector<uint8_t>& packed, int64_t rows, int64_t cols,
                            const std::vector<float>& x, int64_t n,
                            const std::vector<int64_t>& cuts = {}) {
  const std::vector<uint8_t> w = e.repack(f, packed.data(), rows, cols);
  ActivationsQ8 xq;
  if (e.wants_q8) kernels::QuantizeActivationsQ8(x.data(), n, cols, &xq);
  MatmulArgs a;
  a.w = w.data();
  a.rows = rows;
  a.cols = cols;
  a.format = &f;
  a.x = x.data();
  a.x_q8 = e.wants_q8 ? &xq : nullptr;
  a.n_tokens = n;
  std::vector<float> y(static_cast<size_t>(n * rows), -7.0f);
  a.y = y.data();
  a.ldy = rows;
  int64_t r0 = 0;
  for (int64_t cut : cuts) {
    if (cut > r0 && cut < rows) e.run(a, r0, cut), r0 = cut;
  }
  e.run(a, r0, rows);
  return y;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  }
  return true;
}

void PutHalf(uint8_t* p, float v) {
  const uint16_t h = FloatToHalf(v);
  p[0] = static_cast<uint8_t>(h);
  p[1] = static_cast<uint8_t>(h >> 8);
}

// ---------------------------------------------------------------------------------------------
// Hand-computed super-blocks. Activations x = 127 everywhere: every Q8 block has max 127, so
// d_x = 127 / 127 = 1 and q = 127 exactly; all intermediate values are integers < 2^24, so the
// kernels' result is exact.

// q4_k (gguf_kquants.cc: d @0, dmin @2, scales[12] @4, qs[128] @16): d = 1, dmin = 0.5, sub-block
// j has scale j + 1 and min j (6-bit packing of UnpackQ4KScaleMin: j < 4 in the low 6 bits of
// s[j] / s[j + 4]; j >= 4 low nibbles in s[j + 4], high 2 bits in bits 6-7 of s[j - 4] / s[j]),
// element k of every sub-block has code k % 16.
// w = (j + 1) c - 0.5 j; per sub-block sum_c = 2 (0 + ... + 15) = 240, so sum w = 240 (j + 1) -
// 16 j = 240 + 224 j; over j = 0..7: 8 * 240 + 224 * 28 = 8192; y = 127 * 8192 = 1040384.
std::vector<uint8_t> HandQ4K() {
  std::vector<uint8_t> b(144, 0);
  PutHalf(&b[0], 1.0f);
  PutHalf(&b[2], 0.5f);
  uint8_t* s = &b[4];
  for (int j = 0; j < 8; ++j) {
    const int sc = j + 1, m = j;
    if (j < 4) {
      s[j] = static_cast<uint8_t>(s[j] | sc);
      s[j + 4] = static_cast<uint8_t>(s[j + 4] | m);
    } else {
      s[j + 4] = static_cast<uint8_t>((sc & 15) | ((m & 15) << 4));
      s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((sc >> 4) << 6));
      s[j] = static_cast<uint8_t>(s[j] | ((m >> 4) << 6));
    }
  }
  // Element 32 j + k: nibble j % 2 of qs[32 (j / 2) + k].
  for (int j = 0; j < 8; ++j)
    for (int k = 0; k < 32; ++k)
      b[16 + 32 * (j / 2) + k] |= static_cast<uint8_t>((k % 16) << (4 * (j % 2)));
  return b;
}

// q6_k (ql[128] @0, qh[64] @128, scales[16] @192, d @208): d = 1, sub-block b (16 elements) has
// scale b - 8, element i has code 32 + (i % 8) (q = i % 8). Per sub-block sum q = 2 * 28 = 56,
// sum over b of (b - 8) = -8, so y = 127 * (-8 * 56) = -56896.
std::vector<uint8_t> HandQ6K() {
  std::vector<uint8_t> b(210, 0);
  for (int i = 0; i < 256; ++i) {
    const int code = 32 + i % 8, h = i / 128, r = i % 128;
    b[64 * h + r % 64] |= static_cast<uint8_t>((code & 15) << (4 * (r / 64)));
    b[128 + 32 * h + r % 32] |= static_cast<uint8_t>((code >> 4) << (2 * (r / 32)));
  }
  for (int s = 0; s < 16; ++s) b[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(s - 8));
  PutHalf(&b[208], 1.0f);
  return b;
}

TEST(KquantKernel, HandComputedSuperBlocksEveryLevel) {
  struct Case {
    const char* spec;
    std::vector<uint8_t> block;
    double expect_sum_w;  // sum of the 256 decoded weights
    float expect_y;
  };
  const Case cases[] = {{"gguf:type=q4_k", HandQ4K(), 8192.0, 1040384.0f},
                        {"gguf:type=q6_k", HandQ6K(), -448.0, -56896.0f}};
  for (const Case& c : cases) {
    FormatPtr f = Fmt(c.spec);
    // 3 rows (the same block), cols 256.
    std::vector<uint8_t> packed;
    for (int r = 0; r < 3; ++r) packed.insert(packed.end(), c.block.begin(), c.block.end());
    std::vector<float> w(3 * 256);
    f->Dequantize(packed.data(), 3, 256, w.data());
    double sum = 0.0;
    for (int k = 0; k < 256; ++k) sum += w[k];
    ASSERT_EQ(sum, c.expect_sum_w) << c.spec << ": the hand-built block is not what the test says";
    const std::vector<float> x(256, 127.0f);
    for (Isa isa : Levels()) {
      const KernelEntry e = EntryAt(*f, isa);
      EXPECT_TRUE(e.wants_q8);
      const std::vector<float> y = RunEntry(e, *f, packed, 3, 256, x, 1);
      for (int r = 0; r < 3; ++r) EXPECT_EQ(y[r], c.expect_y) << e.name << " row " << r;
    }
  }
}

// nf4: one-hot activations read back single weights. With x = e_k, every chain but one adds exact
// zeros, s = kNf4Values[c_k] and y = fma(s, A, 0) = kNf4Values[c_k] * A rounded once: exactly the
// reference decoder's value. This checks every element position of the layout against the
// format's own decoder (Dequantize), for both scale widths and several block sizes.
TEST(Nf4Kernel, OneHotActivationsReadBackEveryWeightExactly) {
  std::mt19937_64 rng(7);
  for (const char* spec :
       {"nf4:block=64,scale=f32", "nf4:block=32,scale=f16", "nf4:block=128,scale=f32"}) {
    FormatPtr f = Fmt(spec);
    const int64_t rows = 17, cols = 160;  // 160: a partial last block for blocks 64 and 128
    const std::vector<float> src = testing::RandomFloats(rng, rows * cols, 0);
    std::vector<uint8_t> packed(static_cast<size_t>(f->PackedBytes(rows, cols)));
    ASSERT_TRUE(f->Quantize(src.data(), rows, cols, packed.data()).ok());
    std::vector<float> w(static_cast<size_t>(rows * cols));
    f->Dequantize(packed.data(), rows, cols, w.data());
    for (Isa isa : Levels()) {
      const KernelEntry e = EntryAt(*f, isa);
      EXPECT_FALSE(e.wants_q8);
      for (int64_t k = 0; k < cols; ++k) {
        std::vector<float> x(static_cast<size_t>(cols), 0.0f);
        x[static_cast<size_t>(k)] = 1.0f;
        const std::vector<float> y = RunEntry(e, *f, packed, rows, cols, x, 1);
        for (int64_t r = 0; r < rows; ++r) {
          ASSERT_EQ(y[static_cast<size_t>(r)], w[static_cast<size_t>(r * cols + k)])
              << e.name << " " << spec << " row " << r << " col " << k;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Random matrices against the reference, and bit identity.

// Packed weights: nf4 quantized from random floats; k-quants (decode-only) random bytes with the
// fp16 d / dmin fields replaced by finite values of varied magnitude.
std::vector<uint8_t> MakePacked(const Format& f, int64_t rows, int64_t cols, std::mt19937_64& rng,
                                int kind) {
  std::vector<uint8_t> packed(static_cast<size_t>(f.PackedBytes(rows, cols)));
  if (f.family() == "nf4") {
    const std::vector<float> src =
        testing::RandomFloats(rng, static_cast<size_t>(rows * cols), kind);
    EXPECT_TRUE(f.Quantize(src.data(), rows, cols, packed.data()).ok());
    return packed;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : packed) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> ex(kind == 2 ? -20 : -8, kind == 2 ? -12 : 2);
  const bool q4 = f.spec() == "gguf:type=q4_k";
  const int64_t block_bytes = q4 ? 144 : 210;
  for (size_t at = 0; at < packed.size(); at += static_cast<size_t>(block_bytes)) {
    if (q4) {
      PutHalf(&packed[at], std::ldexp(mant(rng), ex(rng)));
      PutHalf(&packed[at + 2], std::ldexp(mant(rng), ex(rng)));
    } else {
      PutHalf(&packed[at + 208], std::ldexp(mant(rng), ex(rng)));
    }
  }
  return packed;
}

void CheckAgainstReference(const Format& f, const KernelEntry& e,
                           const std::vector<uint8_t>& packed, int64_t rows, int64_t cols,
                           const std::vector<float>& x, int64_t n, const std::vector<float>& y) {
  std::vector<float> w(static_cast<size_t>(rows * cols));
  f.Dequantize(packed.data(), rows, cols, w.data());
  std::vector<double> a(x.begin(), x.end());
  if (e.wants_q8) {  // the Q8 rounding of the activations is part of the kernel's definition
    ActivationsQ8 xq;
    kernels::QuantizeActivationsQ8(x.data(), n, cols, &xq);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < cols; ++c) {
        const kernels::Q8Block32& b =
            xq.blocks[static_cast<size_t>(t * xq.blocks_per_row + c / 32)];
        a[static_cast<size_t>(t * cols + c)] = double(b.d) * b.q[c % 32];
      }
  }
  // docs/kernels.md, "Tolerance": D = cols + 4 units + 16; offset-splitting kernels use the
  // envelope |w| + 126 W (W = the row's max |w|).
  const double units = double((cols + 31) / 32);
  const double depth = double(cols) + 4.0 * units + 16.0;
  const double u = std::ldexp(1.0, -24);
  const double gamma = depth * u / (1.0 - depth * u);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = &w[static_cast<size_t>(r * cols)];
      double row_max = 0.0;
      for (int64_t c = 0; c < cols; ++c) row_max = std::max(row_max, std::fabs(double(wr[c])));
      double ref = 0.0, mag = 0.0;
      for (int64_t c = 0; c < cols; ++c) {
        const double ak = a[static_cast<size_t>(t * cols + c)];
        ref += double(wr[c]) * ak;
        mag +=
            (std::fabs(double(wr[c])) + (e.splits_offset ? 126.0 * row_max : 0.0)) * std::fabs(ak);
      }
      const double bound = gamma * mag + depth * double(cols) * std::ldexp(1.0, -149);
      const double got = y[static_cast<size_t>(t * rows + r)];
      ASSERT_LE(std::fabs(got - ref), bound)
          << e.name << " " << f.spec() << " " << rows << "x" << cols << " token " << t << "/" << n
          << " row " << r << ": got " << got << " ref " << ref;
    }
  }
}

TEST(KquantNf4Kernel, EveryLevelMatchesReferenceAndIsBitIdenticalAcrossLevelsSplitsBatches) {
  struct Shape {
    int64_t rows, cols;
  };
  std::mt19937_64 rng(2025);
  int64_t checked = 0;
  for (const char* spec :
       {"gguf:type=q4_k", "gguf:type=q6_k", "nf4:block=64,scale=f32", "nf4:block=64,scale=f16",
        "nf4:block=32,scale=f32", "nf4:block=256,scale=f16"}) {
    FormatPtr f = Fmt(spec);
    const bool kq = f->family() == "gguf";
    // k-quant rows hold whole super-blocks; cols = 300 / 100 leave a partial one (and a partial
    // Q8 block: the activations' zero padding must cancel the codes past cols).
    const std::vector<Shape> shapes =
        kq ? std::vector<Shape>{{1, 256}, {17, 512}, {33, 768}, {9, 300}, {40, 100}}
           : std::vector<Shape>{{1, 64}, {17, 256}, {33, 640}, {9, 300}, {40, 96}};
    for (size_t si = 0; si < shapes.size(); ++si) {
      const int64_t rows = shapes[si].rows, cols = shapes[si].cols;
      const std::vector<uint8_t> packed = MakePacked(*f, rows, cols, rng, static_cast<int>(si));
      for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 16}) {
        const std::vector<float> x =
            testing::RandomFloats(rng, static_cast<size_t>(n * cols), static_cast<int>(n + si));
        std::vector<float> first;
        for (Isa isa : Levels()) {
          const KernelEntry e = EntryAt(*f, isa);
          EXPECT_EQ(e.row_granule, 16);
          EXPECT_EQ(e.splits_offset, std::string(spec) == "gguf:type=q4_k");
          const std::vector<float> y = RunEntry(e, *f, packed, rows, cols, x, n);
          CheckAgainstReference(*f, e, packed, rows, cols, x, n, y);
          if (first.empty()) {
            first = y;
          } else {
            ASSERT_TRUE(SameBits(first, y)) << e.name << " differs from the scalar level, " << spec;
          }
          // Uneven row pieces (not multiples of the 16-row interleave).
          ASSERT_TRUE(SameBits(
              y, RunEntry(e, *f, packed, rows, cols, x, n, {1, 5, rows / 2, rows / 2 + 3, 16, 19})))
              << e.name << ": the row split changed the result";
          if (n > 1) {  // each token alone = the same token inside the batch
            for (int64_t t = 0; t < n; ++t) {
              const std::vector<float> xt(x.begin() + t * cols, x.begin() + (t + 1) * cols);
              const std::vector<float> y1 = RunEntry(e, *f, packed, rows, cols, xt, 1);
              ASSERT_TRUE(SameBits(
                  y1, std::vector<float>(y.begin() + t * rows, y.begin() + (t + 1) * rows)))
                  << e.name << " token " << t << " of " << n;
            }
          }
          checked += n * rows;
        }
      }
    }
  }
  std::printf("kquant/nf4 kernels: %lld outputs checked\n", static_cast<long long>(checked));
}

// FindKernel routes the three formats to these kernels on their default paths (Q8 for the
// k-quants, f32 for nf4) and keeps the fused f32 kernels of q4_k / q6_k on the f32 path.
TEST(KquantNf4Kernel, FindKernelRoutesToTheInterleavedKernels) {
  for (Isa isa : Levels()) {
    const std::string level = kernels::IsaName(isa);
    for (const char* type : {"q4_k", "q6_k"}) {
      FormatPtr f = Fmt(std::string("gguf:type=") + type);
      std::optional<KernelEntry> e = kernels::FindKernel(*f, isa, kernels::ActPath::kDefault);
      ASSERT_TRUE(e.has_value());
      EXPECT_EQ(std::string(e->name), std::string(type) + "." + level + ".q8");
      EXPECT_NE(e->repack, nullptr);
      std::optional<KernelEntry> f32 = kernels::FindKernel(*f, isa, kernels::ActPath::kF32);
      ASSERT_TRUE(f32.has_value());
      EXPECT_FALSE(f32->wants_q8);
      EXPECT_EQ(f32->repack, nullptr);
    }
    // nf4: the f32 kernel on the f32 path, and by default where no Q8 kernel exists (the
    // two-table Q8 kernel needs AVX-512 VBMI: kernel_test.cc, Nf4InterleavedTableHandComputed).
    FormatPtr nf4 = Fmt("nf4:block=64,scale=f32");
    std::optional<KernelEntry> e = kernels::FindKernel(*nf4, isa, kernels::ActPath::kF32);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(std::string(e->name), "nf4." + level + ".f32");
    EXPECT_NE(e->repack, nullptr);
    const bool q8 = isa == Isa::kAvx512 && kernels::CpuHasAvx512Vbmi();
    e = kernels::FindKernel(*nf4, isa, kernels::ActPath::kDefault);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(std::string(e->name), q8 ? "il16.4l2vu2.f32.s1.avx512.q8" : "nf4." + level + ".f32");
  }
  // Blocks that are not a multiple of 32 have no kernel (the runtime's tiled fallback).
  EXPECT_FALSE(kernels::LookupNf4Kernel(*Fmt("nf4:block=48,scale=f32"), Isa::kScalar).has_value());
}

}  // namespace
}  // namespace lowbit
