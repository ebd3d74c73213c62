// Evaluation arithmetic on hand-computed cases: log-softmax, NLL, KL divergence (full and top-k),
// percentiles, llama.cpp's perplexity and KLD summaries, and the reference-logits file.
#include "lowbit/eval.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <vector>

namespace lowbit {
namespace {

TEST(LogSoftmax, HandComputed) {
  // logits (0, ln 3): softmax (1/4, 3/4), log-softmax (-ln 4, ln 3/4) = (-1.3862944, -0.2876821).
  const float logits[2] = {0.0f, std::log(3.0f)};
  float out[2];
  const double lse = LogSoftmax(logits, 2, out);
  EXPECT_NEAR(lse, std::log(4.0), 1e-7);
  EXPECT_NEAR(out[0], -1.3862943611, 1e-6);
  EXPECT_NEAR(out[1], -0.2876820725, 1e-6);
  EXPECT_NEAR(TokenNll(logits, 2, 0), 1.3862943611, 1e-6);
  EXPECT_NEAR(TokenNll(logits, 2, 1), 0.2876820725, 1e-6);
  // Shift invariance far beyond exp's range.
  const float shifted[2] = {1000.0f, 1000.0f + std::log(3.0f)};
  EXPECT_NEAR(TokenNll(shifted, 2, 1), 0.2876820725, 1e-4);
}

TEST(KlDivergence, HandComputed) {
  // P = (1/2, 1/2), Q = (1/4, 3/4): KL = 1/2 ln 2 + 1/2 ln (2/3) = 1/2 ln (4/3) = 0.1438410.
  const float p[2] = {std::log(0.5f), std::log(0.5f)};
  const float q[2] = {std::log(0.25f), std::log(0.75f)};
  EXPECT_NEAR(KlDivergence(p, q, 2), 0.1438410362, 1e-7);
  EXPECT_EQ(KlDivergence(p, p, 2), 0.0);
  // Zero-probability reference entries contribute nothing (0 log 0 = 0), even against -inf.
  const float p0[2] = {-INFINITY, 0.0f};
  const float q0[2] = {-INFINITY, 0.0f};
  EXPECT_EQ(KlDivergence(p0, q0, 2), 0.0);
}

TEST(KlDivergence, TopKIsTheBucketedLowerBound) {
  // P = (.5, .3, .2), Q = (.4, .4, .2). Full KL = .5 ln 1.25 + .3 ln .75 = 0.0252672.
  // Top-1 (id 0): .5 ln(.5/.4) + rest .5 ln(.5/.6) = .5 ln(1.25 * 5/6) = 0.0204110 <= full.
  const float lp[3] = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  const float lq[3] = {std::log(0.4f), std::log(0.4f), std::log(0.2f)};
  EXPECT_NEAR(KlDivergence(lp, lq, 3), 0.0252671539, 1e-7);
  const int32_t ids1[1] = {0};
  const float top1[1] = {lp[0]};
  EXPECT_NEAR(KlDivergenceTopK(ids1, top1, lq), 0.0204109973, 1e-7);
  // With every id listed, the rest bucket is empty and the full KL comes back.
  const int32_t ids3[3] = {0, 1, 2};
  EXPECT_NEAR(KlDivergenceTopK(ids3, lp, lq), 0.0252671539, 1e-7);
}

TEST(Percentile, LinearInterpolation) {
  // sorted (1, 2, 3, 4): h = p * 3.
  const std::vector<double> v = {4, 1, 3, 2};
  EXPECT_EQ(Percentile(v, 0.0), 1.0);
  EXPECT_EQ(Percentile(v, 0.5), 2.5);             // h = 1.5
  EXPECT_NEAR(Percentile(v, 0.99), 3.97, 1e-12);  // h = 2.97
  EXPECT_EQ(Percentile(v, 1.0), 4.0);
  EXPECT_EQ(Percentile({7.0}, 0.99), 7.0);
}

TEST(SummarizeNll, MatchesLlamaCppFormula) {
  // nll (1, 2, 3): mean 2, PPL e^2 = 7.3890561; E[x^2] - E[x]^2 = 14/3 - 4 = 2/3;
  // stderr = e^2 * sqrt((2/3) / 2) = 7.3890561 * 0.5773503 = 4.2660735.
  const std::vector<double> nll = {1, 2, 3};
  const PerplexityStats s = SummarizeNll(nll);
  EXPECT_EQ(s.count, 3);
  EXPECT_DOUBLE_EQ(s.mean_nll, 2.0);
  EXPECT_NEAR(s.ppl, 7.3890560989, 1e-9);
  EXPECT_NEAR(s.ppl_stderr, 4.2660735278, 1e-9);
  const std::vector<double> single = {0.5};
  EXPECT_EQ(SummarizeNll(single).ppl_stderr, 0.0);
}

TEST(SummarizeKld, HandComputed) {
  // kld (.1, .2, .3, .4): mean .25; population variance .0125 -> stderr sqrt(.0125 / 3) = .0645497;
  // median .25; p99 at h = 2.97: .3 + .97 * .1 = .397. top-1 3 of 4. PPL ratio exp(mean(2 - 1)) =
  // e.
  const std::vector<double> kld = {0.1, 0.2, 0.3, 0.4};
  const std::vector<uint8_t> same = {1, 1, 0, 1};
  const std::vector<double> nq = {2, 2, 2, 2}, nr = {1, 1, 1, 1};
  const KldStats s = SummarizeKld(kld, same, nq, nr);
  EXPECT_EQ(s.count, 4);
  EXPECT_NEAR(s.mean, 0.25, 1e-15);
  EXPECT_NEAR(s.stderr_mean, 0.0645497224, 1e-9);
  EXPECT_NEAR(s.median, 0.25, 1e-15);
  EXPECT_NEAR(s.p99, 0.397, 1e-12);
  EXPECT_EQ(s.max, 0.4);
  EXPECT_EQ(s.top1_agreement, 0.75);
  EXPECT_NEAR(s.ppl_ratio, std::exp(1.0), 1e-12);
}

class LogitsFile : public ::testing::Test {
 protected:
  std::string path_ = (std::filesystem::temp_directory_path() /
                       ("lowbit_logits_" + std::to_string(::getpid()) + ".lbl"))
                          .string();
  void TearDown() override { std::filesystem::remove(path_); }
};

TEST_F(LogitsFile, RoundTripFullAndTopK) {
  // vocab 4, ctx 4, 2 chunks, first scored 2 -> 1 record per chunk.
  LogitsFileHeader h;
  h.n_vocab = 4;
  h.ctx = 4;
  h.n_chunks = 2;
  h.first_scored = 2;
  h.bos_replaced = true;
  h.bos = 1;
  const std::vector<int32_t> tokens = {1, 2, 3, 0, 1, 3, 3, 2};
  // Record 0: probabilities (.1, .2, .3, .4); record 1: (.7, .1, .1, .1).
  const float r0[4] = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  const float r1[4] = {std::log(0.7f), std::log(0.1f), std::log(0.1f), std::log(0.1f)};
  for (int64_t top_k : {int64_t{0}, int64_t{2}}) {
    h.top_k = top_k;
    auto writer = LogitsFileWriter::Create(path_, h, tokens);
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    ASSERT_TRUE((*writer)->Append(r0, 0).ok());
    // Committing early fails: one record is missing, and nothing appears at the path.
    EXPECT_FALSE((*writer)->Commit().ok());
    ASSERT_TRUE((*writer)->Append(r1, 2).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
    auto reader = LogitsFileReader::Open(path_);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    EXPECT_EQ((*reader)->header().n_chunks, 2);
    EXPECT_EQ((*reader)->header().bos, 1);
    EXPECT_TRUE((*reader)->header().bos_replaced);
    EXPECT_EQ(std::vector<int32_t>((*reader)->tokens().begin(), (*reader)->tokens().end()), tokens);
    LogitsFileReader::Record rec;
    (*reader)->Read(0, 0, &rec);
    EXPECT_EQ(rec.target_logprob, r0[0]);  // stored exactly
    EXPECT_EQ(rec.argmax, 3);
    (*reader)->Read(1, 0, &rec);
    EXPECT_EQ(rec.target_logprob, r1[2]);
    EXPECT_EQ(rec.argmax, 0);
    if (top_k == 0) {
      ASSERT_EQ(rec.logprobs.size(), 4u);
      // fp16: 11 significant bits, relative error <= 2^-11, then renormalised.
      for (int i = 0; i < 4; ++i) EXPECT_NEAR(rec.logprobs[i], r1[i], 3e-3) << i;
    } else {
      // The two most likely: id 0 (.7), then id 1 (.1, the lowest id of the three ties).
      ASSERT_EQ(rec.ids.size(), 2u);
      EXPECT_EQ(rec.ids[0], 0);
      EXPECT_EQ(rec.ids[1], 1);
      EXPECT_EQ(rec.logprobs[0], r1[0]);
      EXPECT_EQ(rec.logprobs[1], r1[1]);
    }
    EXPECT_EQ(std::filesystem::file_size(path_),
              56 + 4 * 8 + 2 * (top_k == 0 ? 8 + 2 * 4 : 8 + 8 * 2));
  }
}

TEST_F(LogitsFile, RejectsForeignAndTruncatedFiles) {
  EXPECT_EQ(LogitsFileReader::Open(path_).status().code(), StatusCode::kNotFound);
  {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    std::fputs("GGUF and more bytes than a header holds.................................", f);
    std::fclose(f);
  }
  EXPECT_EQ(LogitsFileReader::Open(path_).status().code(), StatusCode::kDataLoss);
  LogitsFileHeader h;
  h.n_vocab = 4;
  h.ctx = 4;
  h.n_chunks = 1;
  h.first_scored = 0;
  const std::vector<int32_t> tokens = {0, 1, 2, 3};
  auto writer = LogitsFileWriter::Create(path_, h, tokens);
  ASSERT_TRUE(writer.ok());
  const float lp[4] = {-1.3862944f, -1.3862944f, -1.3862944f, -1.3862944f};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*writer)->Append(lp, i).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  ASSERT_TRUE(LogitsFileReader::Open(path_).ok());
  std::filesystem::resize_file(path_, std::filesystem::file_size(path_) - 2);
  auto r = LogitsFileReader::Open(path_);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("implies"), std::string::npos);
  // Bad headers are refused before anything is written.
  h.first_scored = 3;  // > ctx - 2
  EXPECT_EQ(LogitsFileWriter::Create(path_ + ".x", h, tokens).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lowbit
