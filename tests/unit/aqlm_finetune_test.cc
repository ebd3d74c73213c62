// AQLM block fine-tuning (src/quant/aqlm/block_backward.h, block_finetune.h, the fine_tune path of
// QuantizeModelAqlm) on the real stories260K model (dim 64, hidden 172, 8 query / 4 kv heads,
// 5 blocks): the block's forward matches the runtime's, its gradients match central finite
// differences, the codebook/scale chain rule matches finite differences, fine-tuning keeps the best
// validation point and lowers the loss, and the whole model gets no worse KLD, deterministically
// and resumably.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "formats/additive.h"
#include "lowbit/aqlm.h"
#include "lowbit/eval.h"
#include "lowbit/format_registry.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"
#include "quant/aqlm/block_backward.h"
#include "quant/aqlm/block_finetune.h"
#include "quant/aqlm/block_forward.h"
#include "runtime/linear.h"
#include "runtime/ops.h"
#include "runtime/thread_pool.h"
#include "model_test_util.h"
#include "test_support.h"

namespace lowbit {
namespace {

using aqlm::kBlockMatrices;

// Block-0 inputs: token embeddings of the sequences, (n_seq * seq_len, dim).
std::vector<float> Embeddings(const LlamaModel& m, const std::vector<std::vector<int32_t>>& seqs) {
  const int64_t dim = m.config.dim;
  std::vector<float> x;
  for (const auto& s : seqs) {
    for (int32_t t : s) {
      x.resize(x.size() + static_cast<size_t>(dim));
      ReadRow(m.token_embedding, t, &x[x.size() - static_cast<size_t>(dim)]);
    }
  }
  return x;
}

// The seven matrices of a layer, quantized calibration-free into aqlm_2x8g8, unpacked.
std::vector<AqlmTensor> QuantizeLayerFree(const LayerWeights& l) {
  auto f = ParseFormat("aqlm_2x8g8");
  EXPECT_TRUE(f.ok());
  const auto* af = dynamic_cast<const AqlmFormat*>(f->get());
  std::vector<AqlmTensor> out;
  for (int i = 0; i < kBlockMatrices; ++i) {
    const WeightView& w = *aqlm::BlockMatrix(l, i);
    const std::vector<float> x = ReadMatrix(w);
    std::vector<uint8_t> packed(static_cast<size_t>(af->PackedBytes(w.rows, w.cols)));
    EXPECT_TRUE(af->Quantize(x.data(), w.rows, w.cols, packed.data()).ok());
    out.push_back(af->Unpack(packed.data(), w.rows, w.cols));
  }
  return out;
}

struct Fixture {
  LoadedModel loaded;
  std::string text;
};

bool LoadStories(Fixture* f) {
  auto loaded = LoadModelWithTokenizer(testing::SharedDataPath("stories260K/stories260K.gguf"));
  if (!loaded.ok()) return false;
  f->loaded = std::move(*loaded);
  f->text = testing::ReadStoriesText();
  return true;
}

#define REQUIRE_STORIES(f)                                                                   \
  LOWBIT_REQUIRE_FILE(testing::SharedDataPath("stories260K/stories260K.gguf"));              \
  LOWBIT_REQUIRE_FILE(testing::SharedDataPath("text/tinystories_valid_head.txt"));           \
  Fixture f;                                                                                 \
  ASSERT_TRUE(LoadStories(&f))

// The dense forward of block_backward equals BlockForward (the calibration forward) on real
// weights, for both rope layouts and with qkv biases; float and double agree. Tolerance: the two
// paths sum the same products in different orders in f32; relative to the output's largest value
// that differs by a few hundred ulps at most (|y| ~ 1, dot lengths <= 172): 2e-5.
TEST(AqlmBlockBackward, ForwardMatchesTheRuntimeBlock) {
  REQUIRE_STORIES(f);
  const LlamaModel& m = f.loaded.model;
  ThreadPool pool(2);
  // 24 tokens: one block of the causal attention products; 100: three (48, 48, 4).
  for (const int64_t seq_len : {24, 100}) {
  const auto seqs = testing::TokenSequences(*f.loaded.tokenizer, f.text, 0, 3, seq_len);
  ASSERT_EQ(seqs.size(), 3u);
  const std::vector<float> x = Embeddings(m, seqs);
  for (int variant = 0; variant < 3; ++variant) {
    LlamaConfig c = m.config;
    LayerWeights lw = m.layers[1];
    std::mt19937_64 rng(7);
    std::normal_distribution<float> nd(0.0f, 0.3f);
    if (variant >= 1) c.rope_layout = RopeLayout::kNeox;
    if (variant == 2) {
      c.qkv_bias = true;
      for (auto* b : {&lw.bq, &lw.bk, &lw.bv}) {
        b->resize(static_cast<size_t>(b == &lw.bq ? c.n_heads * c.head_dim : c.n_kv_heads * c.head_dim));
        for (float& v : *b) v = nd(rng);
      }
    }
    const std::vector<double> freqs = RopeFrequencies(c, m.rope_freq_factors);
    std::vector<float> y_ref = x;
    aqlm::BlockForward(c, lw, freqs, 3, seq_len, y_ref.data(), pool);
    std::vector<float> dense[kBlockMatrices];
    std::vector<double> dense_d[kBlockMatrices];
    aqlm::DenseBlock<float> bf;
    aqlm::DenseBlock<double> bd;
    for (int i = 0; i < kBlockMatrices; ++i) {
      dense[i] = ReadMatrix(*aqlm::BlockMatrix(lw, i));
      dense_d[i].assign(dense[i].begin(), dense[i].end());
      bf.w[i] = dense[i].data();
      bd.w[i] = dense_d[i].data();
    }
    const std::vector<double> an(lw.attn_norm.begin(), lw.attn_norm.end()), fn(lw.ffn_norm.begin(), lw.ffn_norm.end());
    bf.attn_norm = lw.attn_norm.data();
    bf.ffn_norm = lw.ffn_norm.data();
    bd.attn_norm = an.data();
    bd.ffn_norm = fn.data();
    bf.bq = bd.bq = lw.bq.data();
    bf.bk = bd.bk = lw.bk.data();
    bf.bv = bd.bv = lw.bv.data();
    std::vector<float> yf;
    std::vector<double> yd;
    const double loss_f = aqlm::BlockLoss<float>(c, bf, freqs, 3, seq_len, x.data(), y_ref.data(), pool, nullptr, &yf);
    aqlm::BlockLoss<double>(c, bd, freqs, 3, seq_len, x.data(), y_ref.data(), pool, nullptr, &yd);
    double max_abs = 0.0, max_diff_f = 0.0, max_diff_d = 0.0;
    for (size_t i = 0; i < y_ref.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(y_ref[i])));
      max_diff_f = std::max(max_diff_f, std::fabs(static_cast<double>(yf[i]) - y_ref[i]));
      max_diff_d = std::max(max_diff_d, std::fabs(yd[i] - y_ref[i]));
    }
    EXPECT_LE(max_diff_f, 2e-5 * max_abs) << "variant " << variant << " seq_len " << seq_len;
    EXPECT_LE(max_diff_d, 2e-5 * max_abs) << "variant " << variant << " seq_len " << seq_len;
    EXPECT_LT(loss_f, 1e-9 * max_abs * max_abs) << "variant " << variant << " seq_len " << seq_len;
    // The outputs differ from the input (the block did something), so the check is not vacuous.
    double moved = 0.0;
    for (size_t i = 0; i < x.size(); ++i) moved = std::max(moved, std::fabs(static_cast<double>(y_ref[i]) - x[i]));
    EXPECT_GT(moved, 0.01 * max_abs);
  }
  }
}

// Double-precision gradients against central finite differences. Loss: MSE between the block with
// the calibration-free 2x8g8 weights and the unquantized block's output, on 2 sequences of 12
// tokens from layer 0 (GQA, adjacent-pair rope). With step h = 1e-6 * max(1, |p|) in double, the
// truncation error is O(h^2 * L''') ~ 1e-12 relative and the rounding error ~ 1e-16 * L / h
// ~ 1e-10 * L; the tolerance 1e-6 * |g| + 1e-8 * max|g over the tensor| is far above both and far
// below any real bug (a missing term changes a gradient by O(1) relative).
TEST(AqlmBlockBackward, GradientsMatchFiniteDifferences) {
  REQUIRE_STORIES(f);
  const LlamaModel& m = f.loaded.model;
  const LlamaConfig& c = m.config;
  for (RopeLayout layout : {RopeLayout::kAdjacentPairs, RopeLayout::kNeox}) {
    LlamaConfig cl = c;
    cl.rope_layout = layout;
    const auto seqs = testing::TokenSequences(*f.loaded.tokenizer, f.text, 1000, 2, 12);
    ASSERT_EQ(seqs.size(), 2u);
    const std::vector<float> x = Embeddings(m, seqs);
    ThreadPool pool(2);
    const std::vector<double> freqs = RopeFrequencies(cl, m.rope_freq_factors);
    std::vector<float> target = x;
    aqlm::BlockForward(cl, m.layers[0], freqs, 2, 12, target.data(), pool);
    const std::vector<AqlmTensor> tq = QuantizeLayerFree(m.layers[0]);
    std::vector<double> w[kBlockMatrices];
    aqlm::DenseBlock<double> b;
    for (int i = 0; i < kBlockMatrices; ++i) {
      std::vector<float> d(static_cast<size_t>(tq[i].rows * tq[i].cols));
      tq[i].Decode(d.data());
      w[i].assign(d.begin(), d.end());
      b.w[i] = w[i].data();
    }
    std::vector<double> an(m.layers[0].attn_norm.begin(), m.layers[0].attn_norm.end());
    std::vector<double> fn(m.layers[0].ffn_norm.begin(), m.layers[0].ffn_norm.end());
    b.attn_norm = an.data();
    b.ffn_norm = fn.data();
    aqlm::BlockGradients<double> g;
    const double loss = aqlm::BlockLoss<double>(cl, b, freqs, 2, 12, x.data(), target.data(), pool, &g);
    ASSERT_GT(loss, 0.0);
    auto check = [&](std::vector<double>& p, const std::vector<double>& grad, const std::string& what) {
      double gmax = 0.0;
      for (double v : grad) gmax = std::max(gmax, std::fabs(v));
      ASSERT_GT(gmax, 0.0) << what;
      std::mt19937_64 rng(what.size() * 131 + static_cast<size_t>(layout));
      // 6 random entries plus the entry with the largest gradient.
      std::vector<size_t> idx;
      for (int k = 0; k < 6; ++k) idx.push_back(static_cast<size_t>(rng() % p.size()));
      idx.push_back(static_cast<size_t>(std::max_element(grad.begin(), grad.end(), [](double a, double b2) {
                                           return std::fabs(a) < std::fabs(b2);
                                         }) - grad.begin()));
      for (size_t e : idx) {
        const double keep = p[e];
        const double h = 1e-6 * std::max(1.0, std::fabs(keep));
        p[e] = keep + h;
        const double lp = aqlm::BlockLoss<double>(cl, b, freqs, 2, 12, x.data(), target.data(), pool);
        p[e] = keep - h;
        const double lm = aqlm::BlockLoss<double>(cl, b, freqs, 2, 12, x.data(), target.data(), pool);
        p[e] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        EXPECT_NEAR(grad[e], fd, 1e-6 * std::fabs(fd) + 1e-8 * gmax) << what << " entry " << e;
      }
    };
    const char* names[kBlockMatrices] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};
    for (int i = 0; i < kBlockMatrices; ++i) check(w[i], g.w[i], names[i]);
    check(an, g.attn_norm, "attn_norm");
    check(fn, g.ffn_norm, "ffn_norm");

    // The f32 gradients (used by fine-tuning) agree with the double ones to f32 accuracy: sums
    // of <= ~200 products in f32 per element (2^-24 each, growing ~ with the count) -> 1e-4 of the
    // tensor's largest gradient leaves a margin of about 10x.
    std::vector<float> wf[kBlockMatrices];
    aqlm::DenseBlock<float> bf;
    for (int i = 0; i < kBlockMatrices; ++i) {
      wf[i].assign(w[i].begin(), w[i].end());
      bf.w[i] = wf[i].data();
    }
    bf.attn_norm = m.layers[0].attn_norm.data();
    bf.ffn_norm = m.layers[0].ffn_norm.data();
    aqlm::BlockGradients<float> gf;
    aqlm::BlockLoss<float>(cl, bf, freqs, 2, 12, x.data(), target.data(), pool, &gf);
    auto close = [](const std::vector<float>& a, const std::vector<double>& r, const char* what) {
      double gmax = 0.0, diff = 0.0;
      for (size_t i = 0; i < r.size(); ++i) {
        gmax = std::max(gmax, std::fabs(r[i]));
        diff = std::max(diff, std::fabs(a[i] - r[i]));
      }
      EXPECT_LE(diff, 1e-4 * gmax) << what;
    };
    for (int i = 0; i < kBlockMatrices; ++i) close(gf.w[i], g.w[i], names[i]);
    close(gf.attn_norm, g.attn_norm, "attn_norm");
    close(gf.ffn_norm, g.ffn_norm, "ffn_norm");
  }
}

// The chain rule from dL/dW to the codebooks and scales against finite differences of the block
// loss as a function of (codebooks, scales), with an independent double-precision decode written
// here: W[r, jG+i] = s_r * sum_m C_m[k_m(r,j)][i]. Includes w_down (cols 172, not a multiple of 8:
// the padded tail must not contribute). The analytic gradient goes through f32 dL/dW (relative
// rounding 6e-8), so the tolerance is 1e-5 relative plus 1e-8 of the largest gradient.
TEST(AqlmBlockFineTune, ChainRuleMatchesFiniteDifferences) {
  REQUIRE_STORIES(f);
  const LlamaModel& m = f.loaded.model;
  const LlamaConfig& c = m.config;
  const auto seqs = testing::TokenSequences(*f.loaded.tokenizer, f.text, 3000, 2, 12);
  ASSERT_EQ(seqs.size(), 2u);
  const std::vector<float> x = Embeddings(m, seqs);
  ThreadPool pool(2);
  const std::vector<double> freqs = RopeFrequencies(c, m.rope_freq_factors);
  std::vector<float> target = x;
  aqlm::BlockForward(c, m.layers[0], freqs, 2, 12, target.data(), pool);
  std::vector<AqlmTensor> tq = QuantizeLayerFree(m.layers[0]);
  std::vector<double> cb[kBlockMatrices], sc[kBlockMatrices], w[kBlockMatrices];
  for (int i = 0; i < kBlockMatrices; ++i) {
    cb[i].assign(tq[i].codebooks.begin(), tq[i].codebooks.end());
    sc[i].assign(tq[i].scales.begin(), tq[i].scales.end());
  }
  auto decode = [&](int i) {
    const AqlmTensor& t = tq[i];
    w[i].assign(static_cast<size_t>(t.rows * t.cols), 0.0);
    for (int64_t r = 0; r < t.rows; ++r) {
      for (int64_t col = 0; col < t.cols; ++col) {
        const int64_t j = col / t.params.g, e = col % t.params.g;
        double u = 0.0;
        for (int mm = 0; mm < t.params.m; ++mm) {
          u += cb[i][static_cast<size_t>((mm * t.params.codebook_size() + t.code(r, j, mm)) * t.params.g + e)];
        }
        w[i][static_cast<size_t>(r * t.cols + col)] = sc[i][static_cast<size_t>(r)] * u;
      }
    }
  };
  aqlm::DenseBlock<double> b;
  for (int i = 0; i < kBlockMatrices; ++i) {
    decode(i);
    b.w[i] = w[i].data();
  }
  const std::vector<double> an(m.layers[0].attn_norm.begin(), m.layers[0].attn_norm.end());
  const std::vector<double> fn(m.layers[0].ffn_norm.begin(), m.layers[0].ffn_norm.end());
  b.attn_norm = an.data();
  b.ffn_norm = fn.data();
  aqlm::BlockGradients<double> g;
  aqlm::BlockLoss<double>(c, b, freqs, 2, 12, x.data(), target.data(), pool, &g);
  for (int i = 0; i < kBlockMatrices; ++i) {
    // DecodeDense is the f32 decode of the format, bit for bit.
    std::vector<float> d1(w[i].size()), d2(w[i].size());
    tq[i].Decode(d1.data());
    aqlm::DecodeDense(tq[i], d2.data(), pool);
    ASSERT_EQ(std::memcmp(d1.data(), d2.data(), d1.size() * sizeof(float)), 0) << i;

    const std::vector<float> dwf(g.w[i].begin(), g.w[i].end());
    std::vector<double> dcb, dsc;
    aqlm::CodebookScaleGradients(tq[i], dwf.data(), &dcb, &dsc, pool);
    ASSERT_EQ(dcb.size(), cb[i].size());
    ASSERT_EQ(dsc.size(), sc[i].size());
    double cmax = 0.0, smax = 0.0;
    for (double v : dcb) cmax = std::max(cmax, std::fabs(v));
    for (double v : dsc) smax = std::max(smax, std::fabs(v));
    ASSERT_GT(cmax, 0.0);
    ASSERT_GT(smax, 0.0);
    std::mt19937_64 rng(100 + i);
    // Step 1e-6 of the parameter's typical size (codewords ~1, scales ~ their RMS): a step scaled to
    // a near-zero entry (a residual codebook's) would be lost in the loss's rounding.
    double scale_rms = 0.0;
    for (double v : sc[i]) scale_rms += v * v;
    scale_rms = std::sqrt(scale_rms / static_cast<double>(sc[i].size()));
    auto fd = [&](std::vector<double>& p, size_t e, double typical) {
      const double keep = p[e];
      const double h = 1e-6 * std::max(typical, std::fabs(keep));
      p[e] = keep + h;
      decode(i);
      const double lp = aqlm::BlockLoss<double>(c, b, freqs, 2, 12, x.data(), target.data(), pool);
      p[e] = keep - h;
      decode(i);
      const double lm = aqlm::BlockLoss<double>(c, b, freqs, 2, 12, x.data(), target.data(), pool);
      p[e] = keep;
      decode(i);
      return (lp - lm) / (2.0 * h);
    };
    for (int k = 0; k < 4; ++k) {
      // A codeword entry that some group uses (unused ones have gradient 0 trivially), the last
      // entry of a group (touches w_down's padded tail) and a random row scale.
      const int64_t r = static_cast<int64_t>(rng() % static_cast<uint64_t>(tq[i].rows));
      const int64_t j = k == 0 ? tq[i].n_groups() - 1 : static_cast<int64_t>(rng() % static_cast<uint64_t>(tq[i].n_groups()));
      const int mm = static_cast<int>(rng() % static_cast<uint64_t>(tq[i].params.m));
      const int64_t e = k == 0 ? tq[i].params.g - 1 : static_cast<int64_t>(rng() % static_cast<uint64_t>(tq[i].params.g));
      const size_t ci = static_cast<size_t>((mm * tq[i].params.codebook_size() + tq[i].code(r, j, mm)) * tq[i].params.g + e);
      const double fc = fd(cb[i], ci, 1.0);
      EXPECT_NEAR(dcb[ci], fc, 1e-5 * std::fabs(fc) + 1e-8 * cmax) << "matrix " << i << " codebook entry " << ci;
      const double fs = fd(sc[i], static_cast<size_t>(r), scale_rms);
      EXPECT_NEAR(dsc[static_cast<size_t>(r)], fs, 1e-5 * std::fabs(fs) + 1e-8 * smax) << "matrix " << i << " scale " << r;
    }
  }
}

struct BlockSetup {
  std::vector<float> x, target;
  std::vector<AqlmTensor> tensors;
  std::vector<float> attn_norm, ffn_norm;
};

// Layer 1 of stories260K fed by the real (unquantized) layer-0 output on 8 sequences of 48
// tokens; target = the unquantized layer 1; tensors = calibration-free 2x8g8.
BlockSetup MakeBlockSetup(const Fixture& f, ThreadPool& pool) {
  const LlamaModel& m = f.loaded.model;
  BlockSetup s;
  const auto seqs = testing::TokenSequences(*f.loaded.tokenizer, f.text, 5000, 8, 48);
  EXPECT_EQ(seqs.size(), 8u);
  s.x = Embeddings(m, seqs);
  const std::vector<double> freqs = RopeFrequencies(m.config, m.rope_freq_factors);
  aqlm::BlockForward(m.config, m.layers[0], freqs, 8, 48, s.x.data(), pool);
  s.target = s.x;
  aqlm::BlockForward(m.config, m.layers[1], freqs, 8, 48, s.target.data(), pool);
  s.tensors = QuantizeLayerFree(m.layers[1]);
  s.attn_norm = m.layers[1].attn_norm;
  s.ffn_norm = m.layers[1].ffn_norm;
  return s;
}

aqlm::BlockParams Params(BlockSetup& s) {
  aqlm::BlockParams p;
  for (int i = 0; i < kBlockMatrices; ++i) p.tensors[i] = &s.tensors[static_cast<size_t>(i)];
  p.attn_norm = &s.attn_norm;
  p.ffn_norm = &s.ffn_norm;
  return p;
}

// Fine-tuning lowers the block's loss on the training split and on the validation split, the
// reported validation loss is what the packed (binary16) block really gives in the runtime, and
// the returned fields are binary16-exact.
TEST(AqlmBlockFineTune, ReducesTheBlockLoss) {
  REQUIRE_STORIES(f);
  const LlamaModel& m = f.loaded.model;
  ThreadPool pool(2);
  BlockSetup s = MakeBlockSetup(f, pool);
  const std::vector<double> freqs = RopeFrequencies(m.config, m.rope_freq_factors);
  aqlm::FineTuneOptions o;
  o.steps = 40;
  auto r = aqlm::FineTuneBlock(m.config, freqs, 8, 48, s.x.data(), s.target.data(), Params(s), o, pool);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::printf("layer 1, 2x8g8 calibration-free start, 40 steps: val %.6g -> %.6g, train %.6g -> %.6g, "
              "kept step %d\n", r->val_before, r->val_after, r->train_before, r->train_after, r->best_step);
  EXPECT_EQ(r->n_val, 1);
  EXPECT_EQ(r->n_train, 7);
  EXPECT_GT(r->best_step, 0);
  EXPECT_LT(r->val_after, r->val_before);
  EXPECT_LT(r->train_after, r->train_before);
  for (const AqlmTensor& t : s.tensors) {
    AqlmTensor rounded = t;
    rounded.RoundToHalf();
    EXPECT_EQ(rounded.codebooks, t.codebooks);
    EXPECT_EQ(rounded.scales, t.scales);
  }
  // Without norm tuning the gains stay bit for bit and the loss still drops.
  {
    BlockSetup s2 = MakeBlockSetup(f, pool);
    const std::vector<float> an = s2.attn_norm, fn = s2.ffn_norm;
    aqlm::FineTuneOptions o2 = o;
    o2.steps = 10;
    o2.tune_norms = false;
    auto r2 = aqlm::FineTuneBlock(m.config, freqs, 8, 48, s2.x.data(), s2.target.data(), Params(s2), o2, pool);
    ASSERT_TRUE(r2.ok()) << r2.status().message();
    EXPECT_EQ(s2.attn_norm, an);
    EXPECT_EQ(s2.ffn_norm, fn);
    EXPECT_LT(r2->train_after, r2->train_before);
    EXPECT_LE(r2->val_after, r2->val_before);
  }
  // Re-measure the validation MSE with the packed tensors through the runtime's block forward.
  auto fmt = ParseFormat("aqlm_2x8g8");
  ASSERT_TRUE(fmt.ok());
  const auto* af = dynamic_cast<const AqlmFormat*>(fmt->get());
  LayerWeights lw = m.layers[1];
  lw.attn_norm = s.attn_norm;
  lw.ffn_norm = s.ffn_norm;
  std::vector<std::vector<uint8_t>> bufs(kBlockMatrices);
  WeightView* views[kBlockMatrices] = {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down};
  for (int i = 0; i < kBlockMatrices; ++i) {
    bufs[i].resize(static_cast<size_t>(af->PackedBytes(views[i]->rows, views[i]->cols)));
    af->Pack(s.tensors[static_cast<size_t>(i)], bufs[i].data());
    views[i]->format = *fmt;
    views[i]->data = bufs[i].data();
    views[i]->kernel_plan.reset();
    // The exact (f32 activation) path, so only summation order differs from the fine-tuner's.
    PrepareWeightForIsa(*views[i], kernels::ActiveIsa(), kernels::ActPath::kF32);
  }
  const size_t stride = static_cast<size_t>(48 * m.config.dim);
  std::vector<float> yv(s.x.begin() + 7 * stride, s.x.end());
  aqlm::BlockForward(m.config, lw, freqs, 1, 48, yv.data(), pool);
  double mse = 0.0;
  for (size_t i = 0; i < yv.size(); ++i) {
    const double e = static_cast<double>(yv[i]) - s.target[7 * stride + i];
    mse += e * e;
  }
  mse /= static_cast<double>(yv.size());
  // Same quantity, different summation orders (and the runtime's default kernels): 1% agreement.
  EXPECT_NEAR(mse, r->val_after, 0.01 * r->val_after);
}

// Keep-best: with a learning rate so large that every step wrecks the block, no point beats the
// untrained one and the block comes back bit for bit unchanged.
TEST(AqlmBlockFineTune, KeepsTheUntrainedBlockWhenNothingImproves) {
  REQUIRE_STORIES(f);
  const LlamaModel& m = f.loaded.model;
  ThreadPool pool(2);
  BlockSetup s = MakeBlockSetup(f, pool);
  const BlockSetup before = s;
  const std::vector<double> freqs = RopeFrequencies(m.config, m.rope_freq_factors);
  aqlm::FineTuneOptions o;
  o.steps = 3;
  o.lr = 20.0;
  auto r = aqlm::FineTuneBlock(m.config, freqs, 8, 48, s.x.data(), s.target.data(), Params(s), o, pool);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->best_step, 0);
  EXPECT_EQ(r->val_after, r->val_before);
  for (int i = 0; i < kBlockMatrices; ++i) {
    EXPECT_EQ(s.tensors[i].codebooks, before.tensors[i].codebooks);
    EXPECT_EQ(s.tensors[i].scales, before.tensors[i].scales);
  }
  EXPECT_EQ(s.attn_norm, before.attn_norm);
  EXPECT_EQ(s.ffn_norm, before.ffn_norm);
  // Bad options are named.
  o.lr = 1e-3;
  o.steps = 0;
  auto bad = aqlm::FineTuneBlock(m.config, freqs, 8, 48, s.x.data(), s.target.data(), Params(s), o, pool);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("fine_tune_steps"), std::string::npos);
  o.steps = 2;
  auto one = aqlm::FineTuneBlock(m.config, freqs, 1, 48, s.x.data(), s.target.data(), Params(s), o, pool);
  ASSERT_FALSE(one.ok());
}

std::vector<const WeightView*> Linears(const LlamaModel& m) {
  std::vector<const WeightView*> v;
  for (const auto& l : m.layers)
    for (int i = 0; i < kBlockMatrices; ++i) v.push_back(aqlm::BlockMatrix(l, i));
  return v;
}

void ExpectSameModel(const LlamaModel& a, const LlamaModel& b) {
  const auto la = Linears(a), lb = Linears(b);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    ASSERT_EQ(la[i]->n_bytes(), lb[i]->n_bytes());
    EXPECT_EQ(std::memcmp(la[i]->data, lb[i]->data, static_cast<size_t>(la[i]->n_bytes())), 0) << la[i]->name;
  }
  for (size_t l = 0; l < a.layers.size(); ++l) {
    EXPECT_EQ(a.layers[l].attn_norm, b.layers[l].attn_norm) << l;
    EXPECT_EQ(a.layers[l].ffn_norm, b.layers[l].ffn_norm) << l;
  }
}

double MeanKld(const LlamaModel& ref, const LlamaModel& q, const std::vector<int32_t>& tokens) {
  return testing::MeanKldVs(ref, q, tokens, /*ctx=*/128);
}

// End to end: the same AQLM run with and without fine-tuning; fine-tuning must not make the
// held-out KLD against the f32 model worse, and it changes the norms (it did something).
TEST(AqlmModelFineTune, HeldOutKldNoWorseThanWithoutFineTuning) {
  REQUIRE_STORIES(f);
  const LlamaModel& m = f.loaded.model;
  AqlmOptions o;
  o.scheme = "aqlm_2x8g8";
  o.calibration = testing::TokenSequences(*f.loaded.tokenizer, f.text, 0, 8, 128);
  ASSERT_EQ(o.calibration.size(), 8u);
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  auto plain = QuantizeModelAqlm(m, o);
  const double plain_s = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  o.fine_tune = true;
  o.fine_tune_steps = 32;
  int reports = 0, kept = 0;
  t0 = Clock::now();
  auto tuned = QuantizeModelAqlm(m, o, [&](const AqlmProgress& p) {
    if (!p.fine_tune) return;
    ++reports;
    kept += p.fine_tune_best_step > 0;
    EXPECT_LE(p.fine_tune_val_after, p.fine_tune_val_before) << p.tensor;
    std::printf("%s: val MSE %.6g -> %.6g, train %.6g -> %.6g, kept step %d\n", p.tensor.c_str(),
                p.fine_tune_val_before, p.fine_tune_val_after, p.fine_tune_train_before,
                p.fine_tune_train_after, p.fine_tune_best_step);
  });
  const double tuned_s = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_TRUE(tuned.ok()) << tuned.status().message();
  EXPECT_EQ(reports, m.config.n_layers);
  EXPECT_GT(kept, 0);
  std::vector<int32_t> eval = f.loaded.tokenizer->Encode(f.text.substr(200000, 60000), true);
  eval.resize(std::min<size_t>(eval.size(), 128 * 8));
  const double kld_plain = MeanKld(m, *plain, eval);
  const double kld_tuned = MeanKld(m, *tuned, eval);
  std::printf("stories260K 2x8g8 held-out mean KLD: without fine-tuning %.5f (%.1f s), with %d steps %.5f (%.1f s)\n",
              kld_plain, plain_s, o.fine_tune_steps, kld_tuned, tuned_s);
  EXPECT_LE(kld_tuned, kld_plain);
  bool norms_changed = false;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    norms_changed |= tuned->layers[l].attn_norm != m.layers[l].attn_norm;
    norms_changed |= tuned->layers[l].ffn_norm != m.layers[l].ffn_norm;
  }
  EXPECT_TRUE(norms_changed);
}

AqlmOptions SmallFineTuneOptions(const Fixture& f) {
  AqlmOptions o;
  o.scheme = "aqlm_2x8g8";
  o.calibration = testing::TokenSequences(*f.loaded.tokenizer, f.text, 0, 4, 48);
  o.max_iterations = 2;
  o.fine_tune = true;
  o.fine_tune_steps = 6;
  o.fine_tune_batch = 2;  // 3 training sequences: batches of 2 and 1
  return o;
}

TEST(AqlmModelFineTune, OneAndTwoThreadsGiveTheSameBytes) {
  REQUIRE_STORIES(f);
  AqlmOptions o = SmallFineTuneOptions(f);
  ASSERT_EQ(o.calibration.size(), 4u);
  o.n_threads = 1;
  auto a = QuantizeModelAqlm(f.loaded.model, o);
  ASSERT_TRUE(a.ok()) << a.status().message();
  o.n_threads = 2;
  auto b = QuantizeModelAqlm(f.loaded.model, o);
  ASSERT_TRUE(b.ok()) << b.status().message();
  ExpectSameModel(*a, *b);
}

TEST(AqlmModelFineTune, CheckpointResumeGivesTheSameBytesAndNorms) {
  REQUIRE_STORIES(f);
  AqlmOptions o = SmallFineTuneOptions(f);
  auto full = QuantizeModelAqlm(f.loaded.model, o);
  ASSERT_TRUE(full.ok()) << full.status().message();

  const std::string dir = ::testing::TempDir() + "/aqlm_finetune_ckpt_test";
  std::filesystem::remove_all(dir);
  // A checkpoint of a run without fine-tuning must not be picked up by a fine-tuning run.
  AqlmOptions plain = o;
  plain.fine_tune = false;
  plain.checkpoint_dir = dir;
  plain.stop_after_layer = 0;
  ASSERT_FALSE(QuantizeModelAqlm(f.loaded.model, plain).ok());
  ASSERT_TRUE(std::filesystem::exists(dir + "/aqlm_layer_0.bin"));

  o.checkpoint_dir = dir;
  o.stop_after_layer = 1;
  int from_ckpt = 0;
  auto stopped = QuantizeModelAqlm(f.loaded.model, o, [&](const AqlmProgress& p) { from_ckpt += p.from_checkpoint; });
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(from_ckpt, 0);
  o.stop_after_layer = -1;
  int resumed_blocks = 0, fine_tuned = 0;
  auto resumed = QuantizeModelAqlm(f.loaded.model, o, [&](const AqlmProgress& p) {
    resumed_blocks += p.from_checkpoint;
    fine_tuned += p.fine_tune;
  });
  ASSERT_TRUE(resumed.ok()) << resumed.status().message();
  EXPECT_EQ(resumed_blocks, 2);
  EXPECT_EQ(fine_tuned, f.loaded.model.config.n_layers - 2);
  ExpectSameModel(*full, *resumed);
  // Logits agree too (norms included).
  SessionOptions so;
  so.n_threads = 1;
  so.max_tokens = 32;
  LlamaSession sa(*full, so), sb(*resumed, so);
  std::vector<float> la, lb;
  const std::vector<int32_t> toks(o.calibration[0].begin(), o.calibration[0].begin() + 16);
  ASSERT_TRUE(sa.Forward(toks, 0, &la).ok());
  ASSERT_TRUE(sb.Forward(toks, 0, &lb).ok());
  EXPECT_EQ(la, lb);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lowbit
