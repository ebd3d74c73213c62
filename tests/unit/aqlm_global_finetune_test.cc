// AQLM global fine-tuning (src/quant/aqlm/global_finetune.h, FineTuneAqlmGlobal in
// include/lowbit/aqlm.h) on the real stories260K model (dim 64, vocab 512, 5 blocks): the block
// backward's dL/dx and the whole-model KL gradient match central finite differences in double,
// fine-tuning lowers the held-out KL and the KLD on unseen text, the result does not depend on
// the thread count, and bad inputs fail with named errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "formats/additive.h"
#include "lowbit/aqlm.h"
#include "lowbit/format_registry.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"
#include "model_test_util.h"
#include "quant/aqlm/block_backward.h"
#include "quant/aqlm/block_forward.h"
#include "quant/aqlm/global_finetune.h"
#include "runtime/linear.h"
#include "runtime/ops.h"
#include "runtime/thread_pool.h"
#include "test_support.h"

namespace lowbit {
namespace {

using aqlm::kBlockMatrices;

std::vector<double> Embeddings(const LlamaModel& m, const std::vector<std::vector<int32_t>>& seqs) {
  const int64_t dim = m.config.dim;
  std::vector<double> x;
  std::vector<float> row(static_cast<size_t>(dim));
  for (const auto& s : seqs) {
    for (int32_t t : s) {
      ReadRow(m.token_embedding, t, row.data());
      x.insert(x.end(), row.begin(), row.end());
    }
  }
  return x;
}

struct Fixture {
  LoadedModel loaded;
  std::string text;
};

#define REQUIRE_STORIES(f)                                                                      \
  LOWBIT_REQUIRE_FILE(testing::SharedDataPath("stories260K/stories260K.gguf"));                 \
  LOWBIT_REQUIRE_FILE(testing::SharedDataPath("text/tinystories_valid_head.txt"));              \
  Fixture f;                                                                                    \
  {                                                                                             \
    auto loaded = LoadModelWithTokenizer(testing::SharedDataPath("stories260K/stories260K.gguf")); \
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();                                      \
    f.loaded = std::move(*loaded);                                                              \
    f.text = testing::ReadStoriesText();                                                                        \
  }

// Central finite differences of f at p[e] against grad[e], for 6 random entries and the entry with
// the largest gradient. The loss is computed in double through the whole model, so the truncation
// error of the difference (h = 1e-6 relative) dominates: 1e-6 relative plus 1e-8 of the largest.
template <class F>
void CheckFiniteDifferences(std::vector<double>& p, const std::vector<double>& grad, F loss,
                            const std::string& what) {
  ASSERT_EQ(p.size(), grad.size()) << what;
  double gmax = 0.0;
  for (double v : grad) gmax = std::max(gmax, std::fabs(v));
  ASSERT_GT(gmax, 0.0) << what;
  std::mt19937_64 rng(what.size() * 7919 + p.size());
  std::vector<size_t> idx;
  for (int k = 0; k < 6; ++k) idx.push_back(static_cast<size_t>(rng() % p.size()));
  idx.push_back(static_cast<size_t>(
      std::max_element(grad.begin(), grad.end(), [](double a, double b) { return std::fabs(a) < std::fabs(b); }) -
      grad.begin()));
  for (size_t e : idx) {
    const double keep = p[e];
    const double h = 1e-6 * std::max(1.0, std::fabs(keep));
    p[e] = keep + h;
    const double lp = loss();
    p[e] = keep - h;
    const double lm = loss();
    p[e] = keep;
    const double fd = (lp - lm) / (2.0 * h);
    EXPECT_NEAR(grad[e], fd, 1e-6 * std::fabs(fd) + 1e-8 * gmax) << what << " entry " << e;
  }
}

// dL/dx of BlockBackward for L = sum(r * y(x)) with a fixed random r, on sequences of 12 tokens
// (one block of the causal attention products) and 100 (three blocks: 48, 48, 4), so the products
// that skip the masked part are checked where they skip something.
TEST(AqlmBlockBackward, InputGradientMatchesFiniteDifferences) {
  REQUIRE_STORIES(f);
  const LlamaModel& m = f.loaded.model;
  const LlamaConfig& c = m.config;
  ThreadPool pool(2);
  const std::vector<double> freqs = RopeFrequencies(c, m.rope_freq_factors);
  LayerWeights lw = m.layers[2];
  std::vector<double> w[kBlockMatrices];
  aqlm::DenseBlock<double> b;
  for (int i = 0; i < kBlockMatrices; ++i) {
    const std::vector<float> d = ReadMatrix(*aqlm::BlockMatrix(lw, i));
    w[i].assign(d.begin(), d.end());
    b.w[i] = w[i].data();
  }
  std::vector<double> an(lw.attn_norm.begin(), lw.attn_norm.end()), fn(lw.ffn_norm.begin(), lw.ffn_norm.end());
  b.attn_norm = an.data();
  b.ffn_norm = fn.data();
  for (const int64_t seq_len : {12, 100}) {
    SCOPED_TRACE("seq_len " + std::to_string(seq_len));
    const auto seqs = testing::TokenSequences(*f.loaded.tokenizer, f.text, 5000, 2, seq_len);
    ASSERT_EQ(seqs.size(), 2u);
    std::vector<double> x = Embeddings(m, seqs);
    std::mt19937_64 rng(11);
    std::normal_distribution<double> nd(0.0, 1.0);
    std::vector<double> r(x.size());
    for (double& v : r) v = nd(rng);
    aqlm::BlockGradients<double> g;
    std::vector<double> dx, y;
    aqlm::BlockBackward<double>(c, b, freqs, 2, seq_len, x.data(), r.data(), pool, &g, &dx, &y);
    auto loss = [&] {
      std::vector<double> out = x;
      aqlm::BlockActivations<double> st;
      aqlm::BlockApply<double>(c, b, freqs, 2, seq_len, out.data(), pool, &st);
      double s = 0.0;
      for (size_t i = 0; i < out.size(); ++i) s += r[i] * out[i];
      return s;
    };
    CheckFiniteDifferences(x, dx, loss, "x");
    CheckFiniteDifferences(w[0], g.w[0], loss, "wq");
    CheckFiniteDifferences(w[1], g.w[1], loss, "wk");
    CheckFiniteDifferences(w[2], g.w[2], loss, "wv");
    CheckFiniteDifferences(w[6], g.w[6], loss, "w_down");
    CheckFiniteDifferences(an, g.attn_norm, loss, "attn_norm");
  }
}

// The whole-model KL and its gradient in double: a student with every matrix of the model
// quantized calibration-free into aqlm_2x8g8 (decoded), against the f32 teacher's final hidden
// states.
TEST(AqlmGlobalFineTune, ModelKlGradientMatchesFiniteDifferences) {
  REQUIRE_STORIES(f);
  const LlamaModel& m = f.loaded.model;
  const LlamaConfig& c = m.config;
  const int64_t n_seq = 2, seq_len = 10, n = n_seq * seq_len;
  const auto seqs = testing::TokenSequences(*f.loaded.tokenizer, f.text, 9000, n_seq, seq_len);
  ASSERT_EQ(seqs.size(), 2u);
  ThreadPool pool(2);
  const std::vector<double> freqs = RopeFrequencies(c, m.rope_freq_factors);
  const std::vector<double> x0 = Embeddings(m, seqs);
  // Teacher: the f32 model's classifier input.
  std::vector<float> xt(x0.begin(), x0.end());
  for (const LayerWeights& l : m.layers) aqlm::BlockForward(c, l, freqs, n_seq, seq_len, xt.data(), pool);
  std::vector<double> teacher_hidden(xt.size());
  std::vector<float> normed(static_cast<size_t>(c.dim));
  for (int64_t t = 0; t < n; ++t) {
    RmsNorm(&xt[static_cast<size_t>(t * c.dim)], m.output_norm.data(), c.dim, c.rms_eps, normed.data());
    std::copy(normed.begin(), normed.end(), teacher_hidden.begin() + t * c.dim);
  }
  const std::vector<float> head_f = ReadMatrix(m.output);
  const std::vector<double> head(head_f.begin(), head_f.end());
  // Student.
  auto fmt = ParseFormat("aqlm_2x8g8");
  ASSERT_TRUE(fmt.ok());
  std::vector<std::vector<double>> w;
  std::vector<std::vector<double>> norms;
  aqlm::DenseModel<double> s;
  s.blocks.resize(m.layers.size());
  w.reserve(m.layers.size() * kBlockMatrices);
  norms.reserve(2 * m.layers.size() + 1);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    LayerWeights lw = m.layers[l];
    for (int i = 0; i < kBlockMatrices; ++i) {
      const WeightView& v = *aqlm::BlockMatrix(lw, i);
      const std::vector<float> d = ReadMatrix(v);
      std::vector<uint8_t> packed(static_cast<size_t>((*fmt)->PackedBytes(v.rows, v.cols)));
      ASSERT_TRUE((*fmt)->Quantize(d.data(), v.rows, v.cols, packed.data()).ok());
      std::vector<float> q(d.size());
      (*fmt)->Dequantize(packed.data(), v.rows, v.cols, q.data());
      w.emplace_back(q.begin(), q.end());
      s.blocks[l].w[i] = w.back().data();
    }
    norms.emplace_back(lw.attn_norm.begin(), lw.attn_norm.end());
    s.blocks[l].attn_norm = norms.back().data();
    norms.emplace_back(lw.ffn_norm.begin(), lw.ffn_norm.end());
    s.blocks[l].ffn_norm = norms.back().data();
  }
  norms.emplace_back(m.output_norm.begin(), m.output_norm.end());
  s.output_norm = norms.back().data();
  s.head = head.data();
  const aqlm::TeacherOutputs<double> teacher{teacher_hidden.data(), head.data()};
  aqlm::ModelGradients<double> g;
  const double kl = aqlm::ModelKl<double>(c, s, teacher, freqs, n_seq, seq_len, x0.data(), pool, &g);
  EXPECT_GT(kl, 0.0);
  EXPECT_EQ(kl, aqlm::ModelKl<double>(c, s, teacher, freqs, n_seq, seq_len, x0.data(), pool));
  // Kept buffers (the training loop's scratch), used twice: the same loss and gradients.
  aqlm::ModelKlScratch<double> scratch;
  for (int call = 0; call < 2; ++call) {
    aqlm::ModelGradients<double> gs;
    EXPECT_EQ(kl, aqlm::ModelKl<double>(c, s, teacher, freqs, n_seq, seq_len, x0.data(), pool, &gs, &scratch));
    ASSERT_EQ(gs.blocks.size(), g.blocks.size());
    for (size_t l = 0; l < g.blocks.size(); ++l) {
      for (int i = 0; i < kBlockMatrices; ++i) EXPECT_EQ(gs.blocks[l].w[i], g.blocks[l].w[i]) << l << " " << i;
      EXPECT_EQ(gs.blocks[l].attn_norm, g.blocks[l].attn_norm);
      EXPECT_EQ(gs.blocks[l].ffn_norm, g.blocks[l].ffn_norm);
    }
    EXPECT_EQ(gs.output_norm, g.output_norm);
  }
  auto loss = [&] { return aqlm::ModelKl<double>(c, s, teacher, freqs, n_seq, seq_len, x0.data(), pool); };
  const int64_t last = c.n_layers - 1;
  CheckFiniteDifferences(w[0], g.blocks[0].w[0], loss, "blk.0.wq");
  CheckFiniteDifferences(w[static_cast<size_t>(kBlockMatrices + 2)], g.blocks[1].w[2], loss, "blk.1.wv");
  CheckFiniteDifferences(w[static_cast<size_t>(last * kBlockMatrices + 6)], g.blocks[static_cast<size_t>(last)].w[6],
                         loss, "blk.last.w_down");
  CheckFiniteDifferences(norms[0], g.blocks[0].attn_norm, loss, "blk.0.attn_norm");
  CheckFiniteDifferences(norms[static_cast<size_t>(2 * last + 1)], g.blocks[static_cast<size_t>(last)].ffn_norm, loss,
                         "blk.last.ffn_norm");
  CheckFiniteDifferences(norms.back(), g.output_norm, loss, "output_norm");

  // The teacher against itself: KL 0 (up to rounding) when the student is the teacher.
  aqlm::DenseModel<double> same = s;
  std::vector<std::vector<double>> tw;
  tw.reserve(m.layers.size() * kBlockMatrices);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    LayerWeights lw = m.layers[l];
    for (int i = 0; i < kBlockMatrices; ++i) {
      const std::vector<float> d = ReadMatrix(*aqlm::BlockMatrix(lw, i));
      tw.emplace_back(d.begin(), d.end());
      same.blocks[l].w[i] = tw.back().data();
    }
  }
  std::vector<std::vector<double>> tn;
  tn.reserve(2 * m.layers.size() + 1);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    tn.emplace_back(m.layers[l].attn_norm.begin(), m.layers[l].attn_norm.end());
    same.blocks[l].attn_norm = tn.back().data();
    tn.emplace_back(m.layers[l].ffn_norm.begin(), m.layers[l].ffn_norm.end());
    same.blocks[l].ffn_norm = tn.back().data();
  }
  tn.emplace_back(m.output_norm.begin(), m.output_norm.end());
  same.output_norm = tn.back().data();
  const double self_kl = aqlm::ModelKl<double>(c, same, teacher, freqs, n_seq, seq_len, x0.data(), pool);
  EXPECT_LT(std::fabs(self_kl), 1e-6 * kl) << "teacher vs itself";
}

LlamaModel QuantizeStudent(const Fixture& f, int n_seq) {
  AqlmOptions o;
  o.scheme = "aqlm_2x8g8";
  o.calibration = testing::TokenSequences(*f.loaded.tokenizer, f.text, 0, n_seq, 128);
  o.max_iterations = 2;
  auto q = QuantizeModelAqlm(f.loaded.model, o);
  EXPECT_TRUE(q.ok()) << q.status().message();
  return std::move(*q);
}

TEST(AqlmGlobalFineTune, LowersHeldOutKlAndKldOnUnseenText) {
  REQUIRE_STORIES(f);
  const LlamaModel& teacher = f.loaded.model;
  LlamaModel student = QuantizeStudent(f, 8);
  const LlamaModel before = student;
  const auto seqs = testing::TokenSequences(*f.loaded.tokenizer, f.text, 0, 16, 128);
  ASSERT_EQ(seqs.size(), 16u);
  AqlmGlobalFineTuneOptions o;
  o.epochs = 4;
  o.batch_sequences = 4;
  o.lr = 1e-3;
  int steps = 0, validations = 0, teacher_reports = 0;
  auto r = FineTuneAqlmGlobal(teacher, &student, seqs, o, [&](const AqlmGlobalFineTuneProgress& p) {
    using S = AqlmGlobalFineTuneProgress::Stage;
    if (p.stage == S::kTeacher) ++teacher_reports;
    if (p.stage == S::kStep) {
      ++steps;
      EXPECT_EQ(p.step, steps);
      EXPECT_GT(p.kl, 0.0);
    }
    if (p.stage == S::kValidation) {
      EXPECT_EQ(p.epoch, validations);
      ++validations;
      std::printf("epoch %d held-out KL %.5f%s\n", p.epoch, p.kl, p.best ? " (best)" : "");
    }
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->n_val, 2);
  EXPECT_EQ(r->n_train, 14);
  EXPECT_EQ(steps, 4 * 4);  // 14 training sequences in batches of 4: 4 steps per epoch
  EXPECT_EQ(r->steps, steps);
  EXPECT_EQ(validations, 5);
  EXPECT_EQ(teacher_reports, teacher.config.n_layers);  // one report per layer
  EXPECT_GT(r->best_epoch, 0);
  EXPECT_LT(r->val_after, r->val_before);
  // Text far past the calibration part, through the runtime (packed tensors).
  std::vector<int32_t> eval = f.loaded.tokenizer->Encode(f.text.substr(200000, 60000), true);
  eval.resize(std::min<size_t>(eval.size(), 128 * 8));
  const double kld_before = testing::MeanKldVs(teacher, before, eval, 128);
  const double kld_after = testing::MeanKldVs(teacher, student, eval, 128);
  std::printf("stories260K 2x8g8 held-out KL %.5f -> %.5f; KLD on unseen text %.5f -> %.5f\n", r->val_before,
              r->val_after, kld_before, kld_after);
  EXPECT_LT(kld_after, kld_before);
  // Codes are frozen: only codebooks, scales and gains changed.
  for (size_t l = 0; l < student.layers.size(); ++l) {
    for (int i = 0; i < kBlockMatrices; ++i) {
      const WeightView& a = *aqlm::BlockMatrix(before.layers[l], i);
      const WeightView& b = *aqlm::BlockMatrix(student.layers[l], i);
      const auto* af = dynamic_cast<const AqlmFormat*>(a.format.get());
      ASSERT_NE(af, nullptr);
      EXPECT_EQ(af->Unpack(a.data, a.rows, a.cols).codes, af->Unpack(b.data, b.rows, b.cols).codes) << b.name;
    }
  }
}

// The same model from 1 and 2 threads, without and with code steps (PV-tuning's discrete step
// after every epoch). With code steps the written codes are those of the kept epoch: changed, in
// at most the groups the steps changed; without, the codes are the student's.
TEST(AqlmGlobalFineTune, OneAndTwoThreadsGiveTheSameModelWithAndWithoutCodeSteps) {
  REQUIRE_STORIES(f);
  const LlamaModel student = QuantizeStudent(f, 4);
  const auto seqs = testing::TokenSequences(*f.loaded.tokenizer, f.text, 0, 8, 64);
  for (const double code_fraction : {0.0, 0.02}) {
    SCOPED_TRACE(code_fraction);
    AqlmGlobalFineTuneOptions o;
    o.epochs = 2;
    o.batch_sequences = 4;  // 7 training sequences (batches of 4 and 3), 1 held out
    o.lr = 1e-3;
    o.code_fraction = code_fraction;
    o.code_step = 0.02;
    LlamaModel a = student, b = student;
    o.n_threads = 1;
    auto ra = FineTuneAqlmGlobal(f.loaded.model, &a, seqs, o);
    o.n_threads = 2;
    auto rb = FineTuneAqlmGlobal(f.loaded.model, &b, seqs, o);
    ASSERT_TRUE(ra.ok() && rb.ok());
    EXPECT_EQ(ra->val_before, rb->val_before);
    EXPECT_EQ(ra->val_after, rb->val_after);
    EXPECT_EQ(ra->codes_changed, rb->codes_changed);
    ASSERT_GT(ra->best_epoch, 0);
    int64_t differing = 0;
    for (size_t l = 0; l < a.layers.size(); ++l) {
      for (int i = 0; i < kBlockMatrices; ++i) {
        const WeightView& wa = *aqlm::BlockMatrix(a.layers[l], i);
        const WeightView& wb = *aqlm::BlockMatrix(b.layers[l], i);
        const WeightView& w0 = *aqlm::BlockMatrix(student.layers[l], i);
        ASSERT_EQ(wa.n_bytes(), wb.n_bytes());
        EXPECT_EQ(0, std::memcmp(wa.data, wb.data, static_cast<size_t>(wa.n_bytes()))) << wa.name;
        const auto* af = dynamic_cast<const AqlmFormat*>(wa.format.get());
        const AqlmTensor ta = af->Unpack(wa.data, wa.rows, wa.cols), t0 = af->Unpack(w0.data, w0.rows, w0.cols);
        for (size_t k = 0; k < ta.codes.size(); ++k) differing += ta.codes[k] != t0.codes[k];
      }
      EXPECT_EQ(a.layers[l].attn_norm, b.layers[l].attn_norm);
      EXPECT_EQ(a.layers[l].ffn_norm, b.layers[l].ffn_norm);
    }
    EXPECT_EQ(a.output_norm, b.output_norm);
    if (code_fraction > 0.0) {
      EXPECT_GT(ra->codes_changed, 0);
      EXPECT_GT(differing, 0);
      EXPECT_LE(differing, 2 * ra->codes_changed);  // 2 codes per group
    } else {
      EXPECT_EQ(ra->codes_changed, 0);
      EXPECT_EQ(differing, 0);
    }
  }
}

TEST(AqlmGlobalFineTune, BadInputsAreNamedErrors) {
  REQUIRE_STORIES(f);
  const auto seqs = testing::TokenSequences(*f.loaded.tokenizer, f.text, 0, 3, 16);
  LlamaModel not_aqlm = f.loaded.model;
  auto r = FineTuneAqlmGlobal(f.loaded.model, &not_aqlm, seqs, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("blk.0.attn_q.weight"), std::string::npos) << r.status().message();
  LlamaModel student = QuantizeStudent(f, 2);
  r = FineTuneAqlmGlobal(f.loaded.model, &student, {seqs[0]}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("needs >= 2"), std::string::npos) << r.status().message();
  AqlmGlobalFineTuneOptions bad;
  bad.epochs = 0;
  r = FineTuneAqlmGlobal(f.loaded.model, &student, seqs, bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("epochs = 0"), std::string::npos) << r.status().message();
  AqlmGlobalFineTuneOptions bad_code;
  bad_code.code_fraction = 1.5;
  r = FineTuneAqlmGlobal(f.loaded.model, &student, seqs, bad_code);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("code_fraction = 1.5"), std::string::npos) << r.status().message();
  std::vector<std::vector<int32_t>> out_of_range = seqs;
  out_of_range[1][3] = f.loaded.model.config.vocab_size;
  r = FineTuneAqlmGlobal(f.loaded.model, &student, out_of_range, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("outside the vocabulary"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace lowbit
