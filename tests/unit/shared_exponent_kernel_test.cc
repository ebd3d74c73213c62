// Shared-exponent kernels (src/kernels/shared_exponent_*) against the reference: every
// (format, ISA level) entry is run on random shapes (rows 1..37, cols 1 .. 4100 including sizes
// that are not multiples of the block or of 32), 1..16 tokens, quantized data, adversarial blocks
// (zero blocks, extreme and NaN scales, subnormal and NaN/Inf element codes) and random bytes,
// and compared with Format::DequantizeRows + a dot product in double.
//
// Tolerance (docs/kernels_shared_exponent.md): the decoded weights are exact (w = raw * scale is
// the reference's own f32 product), and every product x*w enters an fma exactly, so the only
// roundings are the accumulation: each output is a sum whose every term passes through at most
// m = ceil(cols / 32) fma roundings in its lane plus 5 tree additions. The standard bound for a
// recursive / pairwise sum then gives
//     |y - sum_k x_k w_k| <= gamma_{m+5} * sum_k |x_k w_k| + (m + 5) * 2^-149
// with gamma_n = n u / (1 - n u), u = 2^-24; the second term covers additions whose result is
// subnormal (absolute error <= 2^-150 each). NaN in the reference (a NaN weight, 0 * Inf, or Infs
// of both signs) must give NaN; an infinite reference must give the same Inf. Outputs whose
// finite terms sum to more than FLT_MAX / 2 (where f32 partial sums may overflow though the double
// sum does not) are only checked for bit-identity across levels.
//
// Besides the bound, the kernels promise (and these tests assert) bit-identical results across
// ISA levels, thread splits of the row range and batch sizes (token t of an n-token call equals a
// 1-token call on that token); NaN outputs count as equal whatever their sign and payload.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kernels/kernel_families.h"
#include "kernels/shared_exponent_kernels.h"
#include "lowbit/format_registry.h"
#include "test_support.h"

namespace lowbit::kernels {
namespace {

// Formats beyond the presets so that every kernel kind (kSeKinds) is exercised.
const char* const kExtraSpecs[] = {
    "mx:elem=fp4_e2m1,block=16,scale=floor,round=away",
    "mx:elem=fp6_e2m3,block=16,scale=ceil,round=even",
    "mx:elem=fp8_e4m3,block=16,scale=floor,round=away",
    "mx:elem=fp8_e5m2,block=16,scale=floor,round=away",
    "mx:elem=int8,block=16,scale=floor,round=away",
    "bfp:w=3,block=32,exp=ceil",
    "bfp:w=5,block=32,exp=floor1",
    "bfp:w=7,block=16,exp=ceil",
    "bfp:w=7,block=32,exp=floor1",
    "bm:e=3,m=2,block=32",
    "bm:e=4,m=3,block=32",
    "bm:e=1,m=2,block=16",
    "bm:e=2,m=2,block=32",
    "bl:k=7,block=32",
    "bl:k=2,block=16",
    "bl:k=4,block=32",
};

struct Case {
  std::string name;
  FormatPtr format;
};

std::vector<Case> KernelFormats() {
  std::vector<Case> out;
  const FormatRegistry& registry = FormatRegistry::Get();
  for (const PresetInfo& preset : registry.presets()) {
    Result<FormatPtr> f = registry.Parse(preset.spec);
    if (!f.ok()) continue;
    if (LookupSharedExponentKernel(**f, Isa::kScalar)) out.push_back({preset.name, *f});
  }
  for (const char* spec : kExtraSpecs) {
    Result<FormatPtr> f = registry.Parse(spec);
    EXPECT_TRUE(f.ok()) << spec;
    if (f.ok()) out.push_back({spec, *f});
  }
  return out;
}

std::vector<Isa> Levels() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (isa <= MaxSupportedIsa()) out.push_back(isa);
  }
  return out;
}

// y: (n_tokens, rows) from one call over [r0, r1).
void RunRows(const KernelEntry& entry, const Format& format, const std::vector<uint8_t>& packed,
             int64_t rows, int64_t cols, const std::vector<float>& x, int64_t n_tokens,
             int64_t r0, int64_t r1, std::vector<float>* y) {
  MatmulArgs args;
  args.w = packed.data();
  args.rows = rows;
  args.cols = cols;
  args.format = &format;
  args.x = x.data();
  args.n_tokens = n_tokens;
  args.y = y->data();
  args.ldy = rows;
  entry.run(args, r0, r1);
}

double Gamma(int64_t n) {
  const double u = std::ldexp(1.0, -24);
  return n * u / (1.0 - n * u);
}

// Checks y against DequantizeRows + double dot; adds the number of outputs checked by value.
void CheckAgainstReference(const Format& format, const std::vector<uint8_t>& packed, int64_t rows,
                           int64_t cols, const std::vector<float>& x, int64_t n_tokens,
                           const std::vector<float>& y, const std::string& what,
                           int64_t* checked) {
  std::vector<float> w(static_cast<size_t>(rows * cols));
  format.Dequantize(packed.data(), rows, cols, w.data());
  const int64_t m = (cols + 31) / 32;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0.0, finite_abs = 0.0;
      for (int64_t k = 0; k < cols; ++k) {
        const double p = static_cast<double>(x[t * cols + k]) * w[r * cols + k];
        sum += p;
        if (std::isfinite(p)) finite_abs += std::fabs(p);
      }
      const float got = y[t * rows + r];
      if (finite_abs > FLT_MAX / 2) continue;
      ++*checked;
      if (std::isnan(sum)) {
        ASSERT_TRUE(std::isnan(got)) << what << " row " << r << " token " << t << ": got " << got
                                     << ", reference NaN";
      } else if (std::isinf(sum)) {
        ASSERT_EQ(static_cast<double>(got), sum) << what << " row " << r << " token " << t;
      } else {
        const double bound = Gamma(m + 5) * finite_abs + (m + 5) * std::ldexp(1.0, -149);
        ASSERT_LE(std::fabs(static_cast<double>(got) - sum), bound)
            << what << " row " << r << " token " << t << ": got " << got << " reference " << sum
            << " sum|xw| " << finite_abs;
      }
    }
  }
}

// Same bits, except that any NaN equals any NaN (sign and payload of a NaN carry no meaning and
// depend on which NaN operand an instruction propagates).
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  }
  return true;
}

enum class Data { kQuantized, kAdversarial, kRandomBytes };

// Packed weights: quantized random floats, then (kAdversarial) blocks rewritten to extreme
// shared fields / zero blocks / tiny codes / NaN codes, or (kRandomBytes) all bytes random.
std::vector<uint8_t> MakeWeights(const Format& format, int64_t rows, int64_t cols, Data data,
                                 std::mt19937_64& rng) {
  std::vector<uint8_t> packed(static_cast<size_t>(format.PackedBytes(rows, cols)));
  if (data == Data::kRandomBytes) {
    for (uint8_t& b : packed) b = static_cast<uint8_t>(rng());
    return packed;
  }
  const std::vector<float> w =
      testing::RandomFloats(rng, static_cast<size_t>(rows * cols),
                            static_cast<int>(rng() % testing::kNumRandomKinds));
  EXPECT_TRUE(format.Quantize(w.data(), rows, cols, packed.data()).ok());
  if (data == Data::kQuantized) return packed;
  const int64_t row_bytes = format.RowBytes(cols);
  const int64_t bb = format.block_bytes();
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = packed.data() + r * row_bytes;
    if (bb <= 0) {  // fp6split: row scale fp16 NaN / Inf / max / subnormal / zero, some codes
      const uint16_t scales[] = {0x7E00, 0x7C00, 0xFC00, 0x7BFF, 0x0001, 0x0000, 0x3C00};
      const uint16_t s = scales[rng() % 7];
      if (rng() % 2) {
        row[0] = static_cast<uint8_t>(s & 0xFF);
        row[1] = static_cast<uint8_t>(s >> 8);
      }
      continue;
    }
    for (int64_t b = 0; b < row_bytes / bb; ++b) {
      uint8_t* blk = row + b * bb;
      switch (rng() % 8) {
        case 0: blk[0] = 0xFF; break;  // mx: NaN scale; int8 exponent -1
        case 1: blk[0] = 0x7F; break;  // int8 exponent max; E8M0 2^0
        case 2: blk[0] = 0x80; break;  // int8 exponent min
        case 3: blk[0] = 0x00; break;  // E8M0 2^-127 (subnormal scale)
        case 4: std::memset(blk, 0, static_cast<size_t>(bb)); break;  // zero block
        case 5:  // smallest codes (subnormal elements), both signs
          for (int64_t i = 1; i < bb; ++i) blk[i] = static_cast<uint8_t>(rng() % 2 ? 0x01 : 0x11);
          break;
        case 6:  // all-ones codes (NaN for E4M3 / E5M2, max magnitude otherwise)
          for (int64_t i = 1; i < bb; ++i) blk[i] = static_cast<uint8_t>(rng() % 2 ? 0xFF : 0x7F);
          break;
        default: break;
      }
    }
  }
  return packed;
}

struct Shape {
  int64_t rows, cols, n_tokens;
};

// Rows 1..37, cols around block and chunk boundaries and large odd sizes, 1..16 tokens.
const Shape kShapes[] = {
    {1, 1, 1},   {3, 31, 2},   {37, 33, 1},  {5, 16, 3},    {4, 32, 4},  {2, 48, 5},
    {9, 64, 16}, {6, 172, 7},  {11, 95, 1},  {2, 4100, 3},  {1, 4100, 16}, {13, 200, 8},
    {8, 17, 9},  {7, 1000, 2}, {37, 129, 1}, {3, 4096, 1},
};

TEST(SharedExponentKernelTest, EveryKindHasAFormatUnderTest) {
  std::set<int> seen;
  for (const Case& c : KernelFormats()) {
    const std::optional<SeTables> t = BuildSharedExponentTables(*c.format);
    ASSERT_TRUE(t.has_value()) << c.name;
    seen.insert(SeKindIndex(t->kind));
  }
  for (int i = 0; i < kNumSeKinds; ++i) {
    EXPECT_TRUE(seen.count(i)) << "no format exercises kernel kind " << kSeKinds[i].name;
  }
}

TEST(SharedExponentKernelTest, MatchesByParametersNotNames) {
  const FormatRegistry& registry = FormatRegistry::Get();
  // Handled: the presets' families with other encoder-only parameters.
  for (const char* spec : {"bfp:w=6,block=16,exp=floor1", "mx:elem=fp4_e2m1,block=32,scale=ceil,"
                                                          "round=even"}) {
    Result<FormatPtr> f = registry.Parse(spec);
    ASSERT_TRUE(f.ok()) << spec;
    EXPECT_TRUE(LookupSharedExponentKernel(**f, Isa::kAvx512).has_value()) << spec;
  }
  // Not handled (left to the tiled fallback): other block sizes, other families.
  for (const char* spec : {"mx:elem=fp4_e2m1,block=64,scale=floor,round=away",
                           "bfp:w=6,block=8,exp=ceil", "gguf:type=q4_0", "gguf:type=mxfp4",
                           "bm:e=2,m=5,block=16", "bl:k=6,block=16", "float:type=f32",
                           "exmy:e=4,m=3,bias=7,special=onenan,overflow=ieee,scale=none"}) {
    Result<FormatPtr> f = registry.Parse(spec);
    ASSERT_TRUE(f.ok()) << spec;
    EXPECT_FALSE(LookupSharedExponentKernel(**f, Isa::kAvx512).has_value()) << spec;
  }
}

TEST(SharedExponentKernelTest, LookupGivesEachLevelItsOwnEntry) {
  for (const Case& c : KernelFormats()) {
    for (Isa isa : Levels()) {
      const std::optional<KernelEntry> e = LookupSharedExponentKernel(*c.format, isa);
      ASSERT_TRUE(e.has_value()) << c.name;
      EXPECT_EQ(e->isa, isa) << c.name;
      EXPECT_NE(e->run, nullptr);
      EXPECT_FALSE(e->wants_q8);
      EXPECT_EQ(std::string(e->name).substr(std::string(e->name).rfind('.') + 1), IsaName(isa));
    }
  }
}

// The main sweep: reference bound + NaN/Inf semantics for every level, bit-identity across
// levels, thread splits and batch sizes.
TEST(SharedExponentKernelTest, MatchesReferenceOnEveryLevel) {
  std::mt19937_64 rng(20240611);
  int64_t n_checked = 0, n_calls = 0;
  for (const Case& c : KernelFormats()) {
    const Format& format = *c.format;
    for (const Shape& shape : kShapes) {
      for (Data data : {Data::kQuantized, Data::kAdversarial, Data::kRandomBytes}) {
        const int64_t rows = shape.rows, cols = shape.cols, nt = shape.n_tokens;
        const std::vector<uint8_t> packed = MakeWeights(format, rows, cols, data, rng);
        std::vector<float> x(static_cast<size_t>(nt * cols));
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (float& v : x) v = normal(rng);
        const std::string what = c.name + " " + std::to_string(rows) + "x" +
                                 std::to_string(cols) + " n=" + std::to_string(nt) +
                                 " data=" + std::to_string(static_cast<int>(data));
        std::vector<float> first;
        for (Isa isa : Levels()) {
          const KernelEntry entry = *LookupSharedExponentKernel(format, isa);
          const std::string at = what + " " + IsaName(isa);
          std::vector<float> y(static_cast<size_t>(nt * rows), -12345.0f);
          RunRows(entry, format, packed, rows, cols, x, nt, 0, rows, &y);
          ++n_calls;
          CheckAgainstReference(format, packed, rows, cols, x, nt, y, at, &n_checked);
          if (HasFatalFailure()) return;
          if (first.empty()) {
            first = y;
          } else {
            ASSERT_TRUE(SameBits(first, y)) << at << ": differs from the scalar level";
          }
          // Thread-count invariance: the same rows computed by 3 calls over other boundaries.
          std::vector<float> split(y.size(), -1.0f);
          const int64_t a = static_cast<int64_t>(rng() % static_cast<uint64_t>(rows + 1));
          const int64_t b = a + static_cast<int64_t>(rng() % static_cast<uint64_t>(rows - a + 1));
          RunRows(entry, format, packed, rows, cols, x, nt, 0, a, &split);
          RunRows(entry, format, packed, rows, cols, x, nt, a, b, &split);
          RunRows(entry, format, packed, rows, cols, x, nt, b, rows, &split);
          ASSERT_TRUE(SameBits(y, split)) << at << ": row split " << a << "/" << b;
          // Batch invariance: each token alone gives the same bits.
          for (int64_t t = 0; t < nt; ++t) {
            const std::vector<float> xt(x.begin() + t * cols, x.begin() + (t + 1) * cols);
            std::vector<float> yt(static_cast<size_t>(rows));
            RunRows(entry, format, packed, rows, cols, xt, 1, 0, rows, &yt);
            const std::vector<float> expect(y.begin() + t * rows, y.begin() + (t + 1) * rows);
            ASSERT_TRUE(SameBits(expect, yt)) << at << ": token " << t << " alone differs";
          }
        }
      }
    }
  }
  // Sanity of the sweep itself: most outputs are value-checked (not skipped as huge).
  EXPECT_GT(n_calls, 1000);
  EXPECT_GT(n_checked, 20000);
  std::printf("shared-exponent kernels: %lld calls, %lld outputs checked against the reference\n",
              static_cast<long long>(n_calls), static_cast<long long>(n_checked));
}

// Hand-made: an MX block with the NaN scale (0xFF) poisons its row's output on every level,
// also when the NaN block is the partial last block; a zero x does not hide it (0 * NaN = NaN).
TEST(SharedExponentKernelTest, NanScaleGivesNan) {
  Result<FormatPtr> f = FormatRegistry::Get().Parse(
      "mx:elem=fp4_e2m1,block=32,scale=floor,round=away");
  ASSERT_TRUE(f.ok());
  const int64_t rows = 3, cols = 40;  // 2 blocks per row, the second holds 8 real elements
  std::vector<float> w(rows * cols, 1.0f);
  std::vector<uint8_t> packed(static_cast<size_t>((*f)->PackedBytes(rows, cols)));
  ASSERT_TRUE((*f)->Quantize(w.data(), rows, cols, packed.data()).ok());
  const int64_t rb = (*f)->RowBytes(cols);
  packed[0 * rb + 0] = 0xFF;   // row 0, block 0
  packed[1 * rb + 17] = 0xFF;  // row 1, block 1 (partial)
  const std::vector<float> x(cols, 0.0f);
  for (Isa isa : Levels()) {
    const KernelEntry e = *LookupSharedExponentKernel(**f, isa);
    std::vector<float> y(rows);
    RunRows(e, **f, packed, rows, cols, x, 1, 0, rows, &y);
    EXPECT_TRUE(std::isnan(y[0])) << IsaName(isa);
    EXPECT_TRUE(std::isnan(y[1])) << IsaName(isa);
    EXPECT_EQ(y[2], 0.0f) << IsaName(isa);
  }
}

// Hand-computed: bfp6 block of 16 with exponent E = 3 (step 2^(3-5) = 1/4), codes M = 0..15
// positive, x = 1: y = (0 + 1 + ... + 15) / 4 = 30, exact in f32 on every level.
TEST(SharedExponentKernelTest, HandComputedBfp6) {
  Result<FormatPtr> f = FormatRegistry::Get().Parse("bfp:w=6,block=16,exp=ceil");
  ASSERT_TRUE(f.ok());
  std::vector<uint8_t> packed(13, 0);
  packed[0] = 3;
  // 6-bit little-endian stream of codes 0..15 (sign bit clear).
  uint64_t acc = 0;
  int n = 0;
  size_t out = 1;
  for (uint32_t m = 0; m < 16; ++m) {
    acc |= static_cast<uint64_t>(m) << n;
    n += 6;
    while (n >= 8) {
      packed[out++] = static_cast<uint8_t>(acc & 0xFF);
      acc >>= 8;
      n -= 8;
    }
  }
  const std::vector<float> x(16, 1.0f);
  for (Isa isa : Levels()) {
    const KernelEntry e = *LookupSharedExponentKernel(**f, isa);
    std::vector<float> y(1);
    RunRows(e, **f, packed, 1, 16, x, 1, 0, 1, &y);
    EXPECT_EQ(y[0], 30.0f) << IsaName(isa);
  }
}

}  // namespace
}  // namespace lowbit::kernels

namespace lowbit::kernels {
namespace {

// Packs one row of E4M3 blocks of 32 (mx): scale byte, then the codes.
std::vector<uint8_t> MxE4m3Row(const std::vector<uint8_t>& scales, const std::vector<uint8_t>& codes) {
  std::vector<uint8_t> row;
  for (size_t b = 0; b < scales.size(); ++b) {
    row.push_back(scales[b]);
    for (size_t i = 0; i < 32; ++i) row.push_back(codes[b * 32 + i]);
  }
  return row;
}

// The fast E4M3 path multiplies by scale * 2^8 (SeTables::scale_fold): exact up to E8M0 byte 246
// (2^119 * 2^8 = 2^127), not representable above (fold_ok = 0), NaN kept for 0xFF. bm8's int8
// exponents fold to 2^S, a float for every S.
TEST(SharedExponentKernelTest, FoldedScaleTables) {
  const FormatRegistry& registry = FormatRegistry::Get();
  const std::optional<SeTables> mx = BuildSharedExponentTables(**registry.Parse(
      registry.FindPreset("mxfp8_e4m3")->spec));
  ASSERT_TRUE(mx.has_value());
  EXPECT_EQ(mx->fold_exp, 8);
  EXPECT_EQ(mx->scale_fold[127], 256.0f);              // 2^0 * 2^8
  EXPECT_EQ(mx->scale_fold[0], std::ldexp(1.0f, -119));  // 2^-127 (subnormal) * 2^8
  EXPECT_EQ(mx->scale_fold[246], std::ldexp(1.0f, 127));
  EXPECT_EQ(mx->fold_ok[246], 1);
  for (int b = 247; b <= 254; ++b) EXPECT_EQ(mx->fold_ok[b], 0) << b;
  EXPECT_EQ(mx->fold_ok[255], 1);
  EXPECT_TRUE(std::isnan(mx->scale_fold[255]));
  EXPECT_FALSE(mx->all_fold_ok);
  const std::optional<SeTables> bm = BuildSharedExponentTables(**registry.Parse("bm:e=4,m=3,block=16"));
  ASSERT_TRUE(bm.has_value());
  EXPECT_TRUE(bm->all_fold_ok);
  EXPECT_EQ(bm->scale_fold[0x80], std::ldexp(1.0f, -128));  // S = -128: 2^(S - 8) * 2^8
  // Formats without a fold: the fold table is the scale table.
  const std::optional<SeTables> e5 = BuildSharedExponentTables(**registry.Parse(
      registry.FindPreset("mxfp8_e5m2")->spec));
  ASSERT_TRUE(e5.has_value());
  EXPECT_EQ(e5->fold_exp, 0);
  EXPECT_EQ(std::memcmp(e5->scale_fold, e5->scale, sizeof(e5->scale)), 0);
}

// Hand-computed: a block whose folded scale overflows (E8M0 254 = 2^127; 2^135 is no float) must
// take the two-step path: 16 codes 0x38 (1.0) and 16 zero codes times 2^127, x = 2^-127, give
// y = 16 exactly. The fold would make every weight Inf and the zero codes 0 * Inf = NaN.
TEST(SharedExponentKernelTest, OverflowingFoldTakesTwoStepPath) {
  Result<FormatPtr> f = FormatRegistry::Get().Parse(FormatRegistry::Get().FindPreset("mxfp8_e4m3")->spec);
  ASSERT_TRUE(f.ok());
  const int64_t rows = 5, cols = 96;  // 3 chunks: 2 decoded in place, the last from the tail copy
  std::vector<uint8_t> packed;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<uint8_t> codes(96, 0);
    for (int i = 0; i < 96; i += 2) codes[i] = 0x38;
    // Row r: block r % 3 has the huge scale 247 + r (2^(120 + r)), the others 2^0.
    std::vector<uint8_t> scales = {127, 127, 127};
    scales[r % 3] = static_cast<uint8_t>(247 + r);
    const std::vector<uint8_t> row = MxE4m3Row(scales, codes);
    packed.insert(packed.end(), row.begin(), row.end());
  }
  ASSERT_EQ(static_cast<int64_t>(packed.size()), (*f)->PackedBytes(rows, cols));
  for (Isa isa : Levels()) {
    const KernelEntry e = *LookupSharedExponentKernel(**f, isa);
    for (int64_t r = 0; r < rows; ++r) {
      // x = 2^-(120 + r) on the huge block, 1 elsewhere: every block contributes 16.
      std::vector<float> x(cols, 1.0f);
      for (int i = 0; i < 32; ++i) x[(r % 3) * 32 + i] = std::ldexp(1.0f, -(120 + static_cast<int>(r)));
      std::vector<float> y(rows);
      RunRows(e, **f, packed, rows, cols, x, 1, 0, rows, &y);
      EXPECT_EQ(y[r], 48.0f) << IsaName(isa) << " row " << r;
    }
  }
}

// Hand-computed: an OCP E4M3 NaN code (S.1111.111) anywhere in a chunk makes the output NaN, in
// a chunk decoded in place (row 1, chunk 0, code 0x7F) or from the tail copy (row 3, chunk 2,
// code 0xFF), while the other rows of the same 4-row tile keep their exact values: row r holds
// 96 codes of value r + 1 (E4M3 0x38 = 1, 0x40 = 2, 0x44 = 3, 0x48 = 4, 0x4A = 5), scale 2^0,
// x = 1, so y = 96 (r + 1).
TEST(SharedExponentKernelTest, NanCodeTakesExactPathForItsChunk) {
  Result<FormatPtr> f = FormatRegistry::Get().Parse(FormatRegistry::Get().FindPreset("mxfp8_e4m3")->spec);
  ASSERT_TRUE(f.ok());
  const int64_t rows = 5, cols = 96;
  const uint8_t value_code[] = {0x38, 0x40, 0x44, 0x48, 0x4A};
  std::vector<uint8_t> packed;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<uint8_t> codes(96, value_code[r]);
    if (r == 1) codes[5] = 0x7F;
    if (r == 3) codes[95] = 0xFF;
    const std::vector<uint8_t> row = MxE4m3Row({127, 127, 127}, codes);
    packed.insert(packed.end(), row.begin(), row.end());
  }
  const std::vector<float> x(cols, 1.0f);
  for (Isa isa : Levels()) {
    const KernelEntry e = *LookupSharedExponentKernel(**f, isa);
    std::vector<float> y(rows);
    RunRows(e, **f, packed, rows, cols, x, 1, 0, rows, &y);
    for (int64_t r = 0; r < rows; ++r) {
      if (r == 1 || r == 3) {
        EXPECT_TRUE(std::isnan(y[r])) << IsaName(isa) << " row " << r;
      } else {
        EXPECT_EQ(y[r], 96.0f * static_cast<float>(r + 1)) << IsaName(isa) << " row " << r;
      }
    }
  }
}

// The 6-bit tables take the fp16 word-lookup path where every raw value is an fp16
// (SeTables::raw_half_exact) and the f32 table path otherwise; the sweep above covers both
// (mxfp6, fp6split, bm6 vs. bl6, whose 2^-30 is below fp16's range).
TEST(SharedExponentKernelTest, HalfTableExactness) {
  const FormatRegistry& registry = FormatRegistry::Get();
  for (const char* name : {"mxfp6_e3m2", "mxfp6_e2m3", "fp6_e3m2_split", "fp6_e2m3_split", "bm6"}) {
    const std::optional<SeTables> t =
        BuildSharedExponentTables(**registry.Parse(registry.FindPreset(name)->spec));
    ASSERT_TRUE(t.has_value()) << name;
    EXPECT_TRUE(t->raw_half_exact) << name;
  }
  const std::optional<SeTables> bl6 =
      BuildSharedExponentTables(**registry.Parse(registry.FindPreset("bl6")->spec));
  ASSERT_TRUE(bl6.has_value());
  EXPECT_FALSE(bl6->raw_half_exact);
  // E2M3 0b0_00_001 = 1/8 (subnormal) is fp16 0x3000; E3M2 0b1_111_11 = -28 is fp16 0xCF00.
  EXPECT_EQ(BuildSharedExponentTables(**registry.Parse(registry.FindPreset("mxfp6_e2m3")->spec))
                ->raw_half[1],
            0x3000);
  EXPECT_EQ(BuildSharedExponentTables(**registry.Parse(registry.FindPreset("mxfp6_e3m2")->spec))
                ->raw_half[0x3F],
            0xCF00);
}

}  // namespace
}  // namespace lowbit::kernels
