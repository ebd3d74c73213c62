// AQLM (family "aqlm"): the exact layout and bits per weight, and the training algorithm of one
// matrix (src/quant/aqlm/aqlm_matrix.h) on real stories260K weights and tiny exhaustive cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "formats/additive.h"
#include "formats/minifloat_codec.h"
#include "lowbit/format_registry.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"
#include "quant/aqlm/aqlm_matrix.h"
#include "runtime/linear.h"
#include "test_support.h"

namespace lowbit {
namespace {

std::shared_ptr<const AqlmFormat> Aqlm(const std::string& spec) {
  auto f = ParseFormat(spec);
  EXPECT_TRUE(f.ok()) << spec;
  return std::dynamic_pointer_cast<const AqlmFormat>(*f);
}

TEST(AqlmFormat, PresetsAndSpecs) {
  EXPECT_EQ(Aqlm("aqlm_2x8g8")->spec(), "aqlm:m=2,b=8,g=8");
  EXPECT_EQ(Aqlm("aqlm_1x16g8")->spec(), "aqlm:m=1,b=16,g=8");
  EXPECT_EQ(Aqlm("aqlm_1x8g8")->spec(), "aqlm:m=1,b=8,g=8");
  EXPECT_EQ(Aqlm("aqlm_4x8g8")->spec(), "aqlm:m=4,b=8,g=8");
  EXPECT_EQ(Aqlm("aqlm")->spec(), "aqlm:m=2,b=8,g=8");  // family defaults
  auto bad = ParseFormat("aqlm:m=9");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("m=9"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(ParseFormat("aqlm:b=17").ok());
  EXPECT_FALSE(ParseFormat("aqlm:g=0").ok());
}

// Bits per weight counted by hand from the layout: header 2*M*2^B*g bytes, each row 2 bytes of scale
// plus ceil(groups*M*B/8) bytes of codes.
TEST(AqlmFormat, BitsPerWeightExact) {
  // 2x8 g8, 4096 x 4096: 512 groups -> 1024 code bytes + 2 per row; codebooks 2*256*8*2 = 8192 B.
  EXPECT_DOUBLE_EQ(Aqlm("aqlm_2x8g8")->BitsPerWeight(4096, 4096),
                   8.0 * (8192.0 + 4096.0 * 1026.0) / (4096.0 * 4096.0));
  // 1x16 g8, 4096 x 11008: 1376 groups -> 2752 code bytes + 2; codebook 65536*8*2 = 1048576 B.
  EXPECT_DOUBLE_EQ(Aqlm("aqlm_1x16g8")->BitsPerWeight(4096, 11008),
                   8.0 * (1048576.0 + 4096.0 * 2754.0) / (4096.0 * 11008.0));
  // 1x8 g8 with a tail: 172 cols -> 22 groups (176 padded) -> 22 code bytes + 2; codebook 4096 B.
  EXPECT_DOUBLE_EQ(Aqlm("aqlm_1x8g8")->BitsPerWeight(64, 172),
                   8.0 * (4096.0 + 64.0 * 24.0) / (64.0 * 172.0));
  // 3 bits per code: 3 groups * 2 codebooks * 3 bits = 18 bits -> 3 bytes.
  auto f = Aqlm("aqlm:m=2,b=3,g=4");
  EXPECT_EQ(f->RowBytes(12), 2 + 3);
  EXPECT_EQ(f->HeaderBytes(5, 12), 2 * 2 * 8 * 4);
}

TEST(AqlmFormat, CodeStreamBitLayout) {
  // b = 3, codes 5, 3, 7 -> bits 101 | 011 | 111 from bit 0: byte0 = 0b11'011'101 = 0xDD, byte1 = 1.
  uint8_t s[2] = {0, 0};
  WriteAqlmCode(s, 0, 3, 5);
  WriteAqlmCode(s, 1, 3, 3);
  WriteAqlmCode(s, 2, 3, 7);
  EXPECT_EQ(s[0], 0xDD);
  EXPECT_EQ(s[1], 0x01);
  // Every width round-trips, and writes never disturb neighbours.
  std::mt19937_64 rng(7);
  for (int b = 1; b <= 16; ++b) {
    std::vector<uint32_t> codes(37);
    std::vector<uint8_t> stream((37 * b + 7) / 8, 0xFF);
    for (auto& c : codes) c = static_cast<uint32_t>(rng()) & ((1u << b) - 1u);
    for (size_t i = 0; i < codes.size(); ++i) WriteAqlmCode(stream.data(), i, b, codes[i]);
    for (size_t i = 0; i < codes.size(); ++i) ASSERT_EQ(ReadAqlmCode(stream.data(), i, b), codes[i]) << b;
  }
  // b = 16 is a little-endian uint16 per code.
  uint8_t w[4] = {};
  WriteAqlmCode(w, 1, 16, 0xABCD);
  EXPECT_EQ(w[2], 0xCD);
  EXPECT_EQ(w[3], 0xAB);
}

// A hand-built tensor: m=2, b=1, g=2, one row of 3 columns (2 groups, the last padded).
TEST(AqlmFormat, DecodesHandBuiltTensor) {
  auto f = Aqlm("aqlm:m=2,b=1,g=2");
  std::vector<uint8_t> packed(static_cast<size_t>(f->PackedBytes(1, 3)));
  ASSERT_EQ(packed.size(), 2u * 2 * 2 * 2 + 2 + 1);
  // C_0 = {[1, 2], [0.5, -1]}, C_1 = {[0.25, 0], [-2, 4]} as binary16.
  const uint16_t cb[8] = {0x3C00, 0x4000, 0x3800, 0xBC00, 0x3400, 0x0000, 0xC000, 0x4400};
  for (int i = 0; i < 8; ++i) {
    packed[2 * i] = static_cast<uint8_t>(cb[i]);
    packed[2 * i + 1] = static_cast<uint8_t>(cb[i] >> 8);
  }
  packed[16] = 0x00;  // s = 2.0 (0x4000)
  packed[17] = 0x40;
  // codes (j0,m0)=1, (j0,m1)=0, (j1,m0)=0, (j1,m1)=1 -> bits 1,0,0,1 = 0b1001.
  packed[18] = 0x09;
  std::vector<float> out(3);
  f->Dequantize(packed.data(), 1, 3, out.data());
  // group 0: 2 * ([0.5, -1] + [0.25, 0]) = [1.5, -2]; group 1: 2 * ([1, 2] + [-2, 4]) = [-2, 12],
  // of which only the first column exists.
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], -2.0f);
  AqlmTensor t = f->Unpack(packed.data(), 1, 3);
  EXPECT_EQ(t.code(0, 0, 0), 1u);
  EXPECT_EQ(t.code(0, 1, 1), 1u);
  std::vector<uint8_t> again(packed.size());
  f->Pack(t, again.data());
  EXPECT_EQ(again, packed);
}

TEST(AqlmFormat, ExactWhenGroupsFitTheCodebook) {
  // 4 x 16 with g=8: 8 groups <= 256 codewords, so every group is its own codeword and the only
  // error is binary16 rounding of codewords (relative 2^-11) times the scale.
  auto f = Aqlm("aqlm_1x8g8");
  std::mt19937_64 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> x(64);
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> packed(static_cast<size_t>(f->PackedBytes(4, 16)));
  ASSERT_TRUE(f->Quantize(x.data(), 4, 16, packed.data()).ok());
  std::vector<float> y(64);
  f->Dequantize(packed.data(), 4, 16, y.data());
  for (int r = 0; r < 4; ++r) {
    const size_t at = static_cast<size_t>(f->HeaderBytes(4, 16) + r * f->RowBytes(16));
    const float s = HalfToFloat(static_cast<uint16_t>(packed[at] | (packed[at + 1] << 8)));
    for (int c = 0; c < 16; ++c) {
      const float v = x[r * 16 + c];
      // |v/s - fp16(v/s)| <= 2^-11 |v/s| (+ subnormal spacing 2^-25), times s, plus one float rounding.
      EXPECT_LE(std::fabs(v - y[r * 16 + c]), std::fabs(v) * (1.0f / 2048 + 1e-6f) + s * 3e-8f)
          << r << "," << c;
    }
  }
}

// ---- k-means and the H-weighted algorithm ----

double Sse(const float* pts, int64_t n, int dim, const float* cent, int64_t k) {
  std::vector<uint32_t> a(static_cast<size_t>(n));
  AssignNearest(pts, n, dim, cent, k, a.data());
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int d = 0; d < dim; ++d) {
      const double e = pts[i * dim + d] - cent[a[static_cast<size_t>(i)] * dim + d];
      s += e * e;
    }
  }
  return s;
}

struct RealLayer {
  std::vector<float> w;  // (rows, cols)
  std::vector<double> h;  // (cols, cols)
  int64_t rows = 0, cols = 0;
};

// Layer 0's w_up of stories260K (172 x 64) and H = X X^T of its inputs over TinyStories text.
RealLayer LoadStoriesLayer() {
  RealLayer out;
  const std::string path = testing::SharedDataPath("stories260K/stories260K.gguf");
  auto loaded = LoadModelWithTokenizer(path);
  if (!loaded.ok()) return out;
  const LlamaModel& model = loaded->model;
  const WeightView& w = model.layers[0].w_up;
  out.rows = w.rows;
  out.cols = w.cols;
  out.w.resize(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r) ReadRow(w, r, &out.w[static_cast<size_t>(r * w.cols)]);
  std::ifstream in(testing::SharedDataPath("text/tinystories_valid_head.txt"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str().substr(0, 4000);
  std::vector<int32_t> tokens = loaded->tokenizer->Encode(text, true);
  tokens.resize(std::min<size_t>(tokens.size(), 256));
  out.h.assign(static_cast<size_t>(w.cols * w.cols), 0.0);
  SessionOptions so;
  so.n_threads = 1;
  so.linear_input_observer = [&](int64_t layer, const WeightView& v, const float* x, int64_t n) {
    if (layer != 0 || v.data != w.data) return;
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t a = 0; a < out.cols; ++a) {
        for (int64_t b = 0; b < out.cols; ++b) {
          out.h[static_cast<size_t>(a * out.cols + b)] +=
              static_cast<double>(x[t * out.cols + a]) * x[t * out.cols + b];
        }
      }
    }
  };
  LlamaSession session(model, so);
  std::vector<float> logits;
  EXPECT_TRUE(session.Forward(tokens, static_cast<int64_t>(tokens.size()), &logits).ok());
  return out;
}

TEST(AqlmKMeans, LloydStepsNeverIncreaseTheError) {
  const std::string path = testing::SharedDataPath("stories260K/stories260K.gguf");
  LOWBIT_REQUIRE_FILE(path);
  RealLayer layer = LoadStoriesLayer();
  ASSERT_GT(layer.rows, 0);
  const int64_t n = layer.rows * layer.cols / 8;
  double prev = INFINITY;
  for (int it = 0; it <= 8; ++it) {
    std::vector<float> cent(16 * 8);
    KMeans(layer.w.data(), n, 8, 16, KMeansOptions{it, 0}, cent.data());
    const double sse = Sse(layer.w.data(), n, 8, cent.data(), 16);
    EXPECT_LE(sse, prev) << "iteration " << it;
    if (it == 8) {
      EXPECT_LT(sse, 0.8 * Sse(layer.w.data(), n, 8, std::vector<float>(128, 0.0f).data(), 16));
    }
    prev = sse;
  }
}

TEST(AqlmMatrix, TrainingReducesTheObjectiveMonotonically) {
  const std::string path = testing::SharedDataPath("stories260K/stories260K.gguf");
  LOWBIT_REQUIRE_FILE(path);
  RealLayer layer = LoadStoriesLayer();
  ASSERT_GT(layer.rows, 0);
  aqlm::MatrixOptions o;
  o.params = {2, 6, 8};  // 2x6 g8: 64 codewords, so there is something to learn on 1376 groups
  o.max_iterations = 4;
  o.tolerance = 0.0;
  auto r = aqlm::QuantizeMatrix(layer.w.data(), layer.rows, layer.cols, layer.h.data(), o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& hist = r->history;
  ASSERT_GE(hist.size(), 4u);
  EXPECT_STREQ(hist[0].phase, "init");
  for (size_t i = 1; i < hist.size(); ++i) {
    // Each phase only accepts changes that lower the loss; the slack is the difference between
    // the incrementally updated (W - W^) H and its recomputation (double rounding, ~1e-15 rel).
    EXPECT_LE(hist[i].loss, hist[i - 1].loss * (1 + 1e-9))
        << hist[i].phase << " iteration " << hist[i].iteration;
  }
  // H-weighted training must beat the calibration-free init by a clear margin.
  EXPECT_LT(hist.back().loss, 0.9 * hist.front().loss);
  // The reported loss is the objective of the returned (binary16) tensor.
  const double direct = aqlm::Objective(layer.w.data(), layer.rows, layer.cols, layer.h.data(), r->tensor);
  EXPECT_NEAR(direct, hist.back().loss, 1e-5 * hist.back().loss);
}

// tr((W-W^) H (W-W^)^T) with H = X X^T equals ||(W - W^) X||_F^2 summed directly.
TEST(AqlmMatrix, ObjectiveComputedTwoWaysAgrees) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> nd;
  const int64_t rows = 6, cols = 12, n = 20;
  std::vector<double> x(static_cast<size_t>(cols * n));
  for (auto& v : x) v = nd(rng);
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t a = 0; a < cols; ++a)
    for (int64_t b = 0; b < cols; ++b)
      for (int64_t t = 0; t < n; ++t) h[a * cols + b] += x[a * n + t] * x[b * n + t];
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = static_cast<float>(nd(rng));
  AqlmTensor t = EncodeAqlmIdentity({2, 2, 4}, w.data(), rows, cols);
  std::vector<float> what(w.size());
  t.Decode(what.data());
  double direct = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < n; ++k) {
      double y = 0.0;
      for (int64_t c = 0; c < cols; ++c) y += (static_cast<double>(w[r * cols + c]) - what[r * cols + c]) * x[c * n + k];
      direct += y * y;
    }
  }
  const double via_h = aqlm::Objective(w.data(), rows, cols, h.data(), t);
  EXPECT_GT(direct, 0.0);
  EXPECT_NEAR(via_h, direct, 1e-10 * direct);
  // And the trainer's own bookkeeping (no iterations: the init loss) agrees too.
  aqlm::MatrixOptions o;
  o.params = {2, 2, 4};
  o.max_iterations = 0;
  auto r = aqlm::RefineMatrix(w.data(), rows, cols, h.data(), t, o);
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(r->history[0].loss, direct, 1e-6 * direct);
}

// Beam search over the 4 slots of one row (M=2, B=3, g=2, 2 groups) with width 8^3 keeps every
// assignment of the first three slots, so it must find the exhaustive optimum over all 8^4.
TEST(AqlmMatrix, BeamSearchFindsTheExhaustiveOptimum) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd;
  const int64_t rows = 1, cols = 4;
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<double> x(static_cast<size_t>(cols * 6));
    for (auto& v : x) v = nd(rng);
    std::vector<double> h(16, 0.0);
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b)
        for (int t = 0; t < 6; ++t) h[a * 4 + b] += x[a * 6 + t] * x[b * 6 + t];
    std::vector<float> w(4);
    for (auto& v : w) v = nd(rng);
    AqlmTensor start;
    start.params = {2, 3, 2};
    start.rows = rows;
    start.cols = cols;
    start.codebooks.resize(2 * 8 * 2);
    for (auto& v : start.codebooks) v = RoundToHalfSaturating(0.7f * nd(rng));
    start.scales = {1.0f};
    start.codes = {0, 0, 0, 0};
    double best = INFINITY;
    for (uint32_t code = 0; code < 4096; ++code) {
      AqlmTensor t = start;
      t.codes = {code & 7, (code >> 3) & 7, (code >> 6) & 7, (code >> 9) & 7};
      best = std::min(best, aqlm::Objective(w.data(), rows, cols, h.data(), t));
    }
    aqlm::MatrixOptions o;
    o.params = start.params;
    o.max_iterations = 1;
    o.update_codebooks = false;
    o.update_scales = false;
    o.beam_width = 512;
    auto wide = aqlm::RefineMatrix(w.data(), rows, cols, h.data(), start, o);
    ASSERT_TRUE(wide.ok());
    EXPECT_NEAR(aqlm::Objective(w.data(), rows, cols, h.data(), wide->tensor), best, 1e-9 + 1e-9 * best)
        << "trial " << trial;
    o.beam_width = 1;  // greedy: never below the optimum, never above the start
    auto greedy = aqlm::RefineMatrix(w.data(), rows, cols, h.data(), start, o);
    ASSERT_TRUE(greedy.ok());
    const double g = aqlm::Objective(w.data(), rows, cols, h.data(), greedy->tensor);
    EXPECT_GE(g, best - 1e-9);
    EXPECT_LE(g, aqlm::Objective(w.data(), rows, cols, h.data(), start) + 1e-9);
  }
}

}  // namespace
}  // namespace lowbit
