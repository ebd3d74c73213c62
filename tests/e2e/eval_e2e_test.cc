// Evaluation on real weights (stories260K): the llama-perplexity chunking protocol, KL divergence
// of quantized copies against the f32 model (live and through saved reference-logit files).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lowbit/eval.h"
#include "lowbit/format_registry.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"
#include "test_support.h"

namespace lowbit {
namespace {

using testing::SharedDataPath;

std::string BinPath() { return SharedDataPath("stories260K/stories260K.bin"); }
std::string TokPath() { return SharedDataPath("stories260K/tok512.bin"); }
std::string TextPath() { return SharedDataPath("text/tinystories_valid_head.txt"); }

std::vector<int32_t> TextTokens(size_t n_chars) {
  std::ifstream in(TextPath(), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto tok = TokenizerFromLlama2cFile(TokPath(), 512);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  return (*tok)->Encode(text.substr(0, n_chars), true);
}

// `m` with its matrices quantized to `spec` (QuantizeModelWeights: real packed bytes, decoded tile
// by tile at run time).
LlamaModel Quantized(const LlamaModel& m, const std::string& spec) {
  Result<FormatPtr> format = ParseFormat(spec);
  EXPECT_TRUE(format.ok()) << format.status().ToString();
  Result<LlamaModel> q = QuantizeModelWeights(m, *format);
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  return std::move(q).value();
}

LlamaModel LoadBin() {
  Result<LlamaModel> m = LoadLlama2c(BinPath());
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

Result<EvalResult> RunEval(const LlamaModel& model, std::span<const int32_t> tokens,
                           const EvalOptions& options, const LlamaModel* reference = nullptr,
                           const LogitsFileReader* file = nullptr) {
  SessionOptions so;
  so.max_tokens = options.ctx;
  LlamaSession session(model, so);
  std::unique_ptr<LlamaSession> ref;
  if (reference != nullptr) ref = std::make_unique<LlamaSession>(*reference, so);
  return Evaluate(session, tokens, options, ref.get(), file);
}

class Eval260k : public ::testing::Test {
 protected:
  void SetUp() override {
    LOWBIT_REQUIRE_FILE(BinPath());
    LOWBIT_REQUIRE_FILE(TokPath());
    LOWBIT_REQUIRE_FILE(TextPath());
  }
  std::string TempPath(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("lowbit_eval_" + std::to_string(::getpid()) + "_" + name))
        .string();
  }
};

// The protocol, recomputed by hand from single prefills: 41 tokens, ctx 8 -> 5 chunks (the last
// token is dropped), chunk c feeds tokens [8c, 8c + 7) with the first replaced by BOS, and scores
// positions 4, 5, 6 predicting tokens 8c + 5, 8c + 6, 8c + 7.
TEST_F(Eval260k, ChunkingFollowsLlamaPerplexity) {
  const LlamaModel model = LoadBin();
  std::vector<int32_t> tokens = TextTokens(400);
  ASSERT_GE(tokens.size(), 41u);
  tokens.resize(41);
  std::vector<double> nll_half, nll_all;
  for (int c = 0; c < 5; ++c) {
    std::vector<int32_t> input(tokens.begin() + 8 * c, tokens.begin() + 8 * c + 7);
    input[0] = 1;
    SessionOptions so;
    so.max_tokens = 8;
    LlamaSession session(model, so);
    std::vector<float> logits;
    ASSERT_TRUE(session.Forward(input, 0, &logits).ok());
    for (int pos = 0; pos < 7; ++pos) {
      const double nll = TokenNll(&logits[pos * 512], 512, tokens[8 * c + pos + 1]);
      nll_all.push_back(nll);
      if (pos >= 4) nll_half.push_back(nll);
    }
  }
  EvalOptions options;
  options.ctx = 8;
  options.bos = 1;
  Result<EvalResult> half = RunEval(model, tokens, options);
  ASSERT_TRUE(half.ok()) << half.status().ToString();
  EXPECT_EQ(half->n_chunks, 5);
  EXPECT_EQ(half->perplexity.count, 15);
  const PerplexityStats want_half = SummarizeNll(nll_half);
  EXPECT_DOUBLE_EQ(half->perplexity.mean_nll, want_half.mean_nll);
  EXPECT_DOUBLE_EQ(half->perplexity.ppl_stderr, want_half.ppl_stderr);

  options.all_tokens = true;
  Result<EvalResult> all = RunEval(model, tokens, options);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->perplexity.count, 35);
  EXPECT_DOUBLE_EQ(all->perplexity.mean_nll, SummarizeNll(nll_all).mean_nll);

  options.all_tokens = false;
  options.max_chunks = 2;
  Result<EvalResult> two = RunEval(model, tokens, options);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->perplexity.count, 6);
  EXPECT_DOUBLE_EQ(two->perplexity.mean_nll, SummarizeNll(std::span(nll_half).first(6)).mean_nll);

  options.ctx = 42;  // more than the text holds
  EXPECT_EQ(RunEval(model, tokens, options).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(Eval260k, ModelAgainstItselfHasZeroDivergence) {
  const LlamaModel model = LoadBin();
  const std::vector<int32_t> tokens = TextTokens(4000);
  EvalOptions options;
  options.ctx = 128;
  options.max_chunks = 4;
  options.bos = 1;
  Result<EvalResult> r = RunEval(model, tokens, options, &model);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->has_reference);
  EXPECT_EQ(r->kld.count, 4 * 63);
  EXPECT_EQ(r->kld.mean, 0.0);
  EXPECT_EQ(r->kld.p99, 0.0);
  EXPECT_EQ(r->kld.top1_agreement, 1.0);
  EXPECT_EQ(r->kld.ppl_ratio, 1.0);
  EXPECT_EQ(r->reference_perplexity.ppl, r->perplexity.ppl);
}

// Quantized copies against the f32 model. Expectations follow from the formats, not from a run:
// Q8_0 (8-bit grid, error <= 1/254 of a block's max) must stay much closer to the reference than
// Q4_0 (error <= 1/16 of a block's max): smaller KL, more top-1 agreement, a PPL ratio closer to 1;
// and both must actually differ from f32 (KL > 0).
TEST_F(Eval260k, QuantizedModelsDivergeInTheOrderOfTheirPrecision) {
  const LlamaModel f32 = LoadBin();
  const LlamaModel q8 = Quantized(f32, "q8_0");
  const LlamaModel q4 = Quantized(f32, "q4_0");
  const std::vector<int32_t> tokens = TextTokens(20000);
  EvalOptions options;
  options.ctx = 256;
  options.max_chunks = 8;
  options.bos = 1;
  Result<EvalResult> r8 = RunEval(q8, tokens, options, &f32);
  Result<EvalResult> r4 = RunEval(q4, tokens, options, &f32);
  ASSERT_TRUE(r8.ok() && r4.ok());
  EXPECT_GT(r8->kld.mean, 0.0);
  EXPECT_LT(r8->kld.mean, 0.01);
  EXPECT_GT(r4->kld.mean, 4.0 * r8->kld.mean);
  EXPECT_LT(r4->kld.mean, 1.0);
  EXPECT_GE(r8->kld.top1_agreement, r4->kld.top1_agreement);
  EXPECT_GT(r8->kld.top1_agreement, 0.95);
  EXPECT_LT(std::abs(std::log(r8->kld.ppl_ratio)), std::abs(std::log(r4->kld.ppl_ratio)));
  EXPECT_LE(r8->kld.median, r8->kld.p99);
  EXPECT_LE(r8->kld.p99, r8->kld.max);
  std::printf(
      "stories260K ctx 256 x 8 chunks: f32 PPL %.4f | q8_0 PPL %.4f KLD %.6f top1 %.4f | "
      "q4_0 PPL %.4f KLD %.6f top1 %.4f\n",
      r8->reference_perplexity.ppl, r8->perplexity.ppl, r8->kld.mean, r8->kld.top1_agreement,
      r4->perplexity.ppl, r4->kld.mean, r4->kld.top1_agreement);
}

// Saving the f32 model's log-probs and scoring Q against the file reproduces the live numbers:
// exactly for the reference PPL and top-1 (stored exactly), within fp16 rounding for the full KL,
// and from below for the top-k bound.
TEST_F(Eval260k, ReferenceLogitFilesReproduceTheLiveReference) {
  const LlamaModel f32 = LoadBin();
  const LlamaModel q4 = Quantized(f32, "q4_0");
  const std::vector<int32_t> tokens = TextTokens(12000);
  EvalOptions options;
  options.ctx = 128;
  options.max_chunks = 6;
  options.bos = 1;
  Result<EvalResult> live = RunEval(q4, tokens, options, &f32);
  ASSERT_TRUE(live.ok()) << live.status().ToString();

  for (int64_t top_k : {int64_t{0}, int64_t{16}}) {
    const std::string path = TempPath("ref_k" + std::to_string(top_k) + ".lbl");
    EvalOptions save = options;
    save.save_logits_path = path;
    save.save_top_k = top_k;
    Result<EvalResult> saved = RunEval(f32, tokens, save);
    ASSERT_TRUE(saved.ok()) << saved.status().ToString();
    Result<std::unique_ptr<LogitsFileReader>> file = LogitsFileReader::Open(path);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_EQ((*file)->header().top_k, top_k);
    EXPECT_EQ(std::filesystem::file_size(path),
              56 + 4 * 6 * 128 + 6 * 63 * (top_k == 0 ? 8 + 2 * 512 : 8 + 8 * top_k));
    Result<EvalResult> r = RunEval(q4, tokens, options, nullptr, file->get());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_NEAR(r->reference_perplexity.ppl, live->reference_perplexity.ppl,
                1e-6 * live->reference_perplexity.ppl);
    EXPECT_EQ(r->kld.top1_agreement, live->kld.top1_agreement);
    EXPECT_EQ(r->perplexity.ppl, live->perplexity.ppl);
    if (top_k == 0) {
      // fp16 keeps 11 significant bits of each log-prob: |error| <= |lp| * 2^-11, and the
      // resulting KL error is first order in it (weighted by log(p/q), itself small here).
      EXPECT_NEAR(r->kld.mean, live->kld.mean, 0.01 * live->kld.mean + 1e-4);
    } else {
      EXPECT_LE(r->kld.mean, live->kld.mean * (1 + 1e-9));
      EXPECT_GT(r->kld.mean, 0.5 * live->kld.mean);
    }
    std::filesystem::remove(path);
  }

  // A reference file made from other text is refused.
  const std::string path = TempPath("ref_other.lbl");
  EvalOptions save = options;
  save.save_logits_path = path;
  ASSERT_TRUE(RunEval(f32, tokens, save).ok());
  Result<std::unique_ptr<LogitsFileReader>> file = LogitsFileReader::Open(path);
  ASSERT_TRUE(file.ok());
  std::vector<int32_t> other(tokens.begin() + 1, tokens.end());
  EXPECT_EQ(RunEval(q4, other, options, nullptr, file->get()).status().code(),
            StatusCode::kInvalidArgument);
  EvalOptions other_ctx = options;
  other_ctx.ctx = 64;
  EXPECT_EQ(RunEval(q4, tokens, other_ctx, nullptr, file->get()).status().code(),
            StatusCode::kInvalidArgument);
  // Truncation is detected on open.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1);
  EXPECT_EQ(LogitsFileReader::Open(path).status().code(), StatusCode::kDataLoss);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lowbit
