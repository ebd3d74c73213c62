// End-to-end runtime tests on karpathy's stories260K (real trained weights,
// shared/data/stories260K): greedy text, the teacher-forced NLL from the data README (an
// independent f64 Python forward pass), the GGUF and llama2.c files agreeing, and the runtime's
// determinism guarantees.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lowbit/eval.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"
#include "test_support.h"

namespace lowbit {
namespace {

using testing::SharedDataPath;

std::string BinPath() { return SharedDataPath("stories260K/stories260K.bin"); }
std::string GgufPath() { return SharedDataPath("stories260K/stories260K.gguf"); }
std::string TokPath() { return SharedDataPath("stories260K/tok512.bin"); }
std::string TinyStoriesPath() { return SharedDataPath("text/tinystories_valid_head.txt"); }

// From shared/data/stories260K/README.md (matches llama2.c doc/stories260K.md).
constexpr const char* kGreedyText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.";

LlamaModel MustLoad(Result<LlamaModel> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

// Logits (n, vocab) of one prefill of `tokens` from an empty cache.
std::vector<float> Prefill(const LlamaModel& model, const std::vector<int32_t>& tokens,
                           int n_threads) {
  SessionOptions options;
  options.max_tokens = static_cast<int64_t>(tokens.size());
  options.n_threads = n_threads;
  LlamaSession session(model, options);
  std::vector<float> logits;
  Status st = session.Forward(tokens, 0, &logits);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return logits;
}

// Greedy continuation from `prompt`: n new tokens, one decode step each.
std::vector<int32_t> Greedy(const LlamaModel& model, std::vector<int32_t> prompt, int n) {
  SessionOptions options;
  options.max_tokens = static_cast<int64_t>(prompt.size()) + n;
  LlamaSession session(model, options);
  Sampler sampler(SamplerOptions{.temperature = 0.0f});
  std::vector<float> logits;
  EXPECT_TRUE(session.Forward(prompt, static_cast<int64_t>(prompt.size()) - 1, &logits).ok());
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const int32_t next = sampler.Sample(logits);
    out.push_back(next);
    const int32_t one[1] = {next};
    EXPECT_TRUE(session.Forward(one, 0, &logits).ok());
  }
  return out;
}

// A fixed token sequence from real text (the tok512 encoding of the TinyStories excerpt).
std::vector<int32_t> StoryTokens(size_t n) {
  std::ifstream in(TinyStoriesPath(), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto tok = TokenizerFromLlama2cFile(TokPath(), 512);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  std::vector<int32_t> ids = (*tok)->Encode(text.substr(0, 8 * n), true);
  EXPECT_GE(ids.size(), n);
  ids.resize(n);
  return ids;
}

class Stories260k : public ::testing::Test {
 protected:
  void SetUp() override {
    LOWBIT_REQUIRE_FILE(BinPath());
    LOWBIT_REQUIRE_FILE(GgufPath());
    LOWBIT_REQUIRE_FILE(TokPath());
    LOWBIT_REQUIRE_FILE(TinyStoriesPath());
  }
};

TEST_F(Stories260k, ConfigFromBothFilesMatchesTheReadme) {
  for (const std::string& path : {BinPath(), GgufPath()}) {
    const LlamaModel m = MustLoad(LoadModel(path));
    const LlamaConfig& c = m.config;
    EXPECT_EQ(c.dim, 64) << path;
    EXPECT_EQ(c.hidden_dim, 172) << path;
    EXPECT_EQ(c.n_layers, 5) << path;
    EXPECT_EQ(c.n_heads, 8) << path;
    EXPECT_EQ(c.n_kv_heads, 4) << path;
    EXPECT_EQ(c.head_dim, 8) << path;
    EXPECT_EQ(c.vocab_size, 512) << path;
    EXPECT_EQ(c.rope_layout, RopeLayout::kAdjacentPairs) << path;
    EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f) << path;
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0) << path;
    if (path == BinPath()) {
      // Positive vocab_size in the llama2.c header: the classifier is the embedding.
      EXPECT_TRUE(c.tied_embeddings);
      EXPECT_EQ(m.output.data, m.token_embedding.data);
      EXPECT_EQ(m.FormatSummary(), "f32 x36");  // every matrix f32, used in place
    } else {
      // The GGUF converter wrote the tied classifier out as its own `output` tensor, a byte copy.
      EXPECT_FALSE(c.tied_embeddings);
      ASSERT_EQ(m.output.n_bytes(), m.token_embedding.n_bytes());
      EXPECT_EQ(std::memcmp(m.output.data, m.token_embedding.data, m.output.n_bytes()), 0);
      EXPECT_EQ(m.FormatSummary(), "f32 x37");
    }
  }
}

TEST_F(Stories260k, GreedyFromBosReproducesTheReadmeText) {
  for (const std::string& path : {BinPath(), GgufPath()}) {
    Result<LoadedModel> loaded = LoadModelWithTokenizer(path, path == BinPath() ? TokPath() : "");
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    const Tokenizer& tok = *loaded->tokenizer;
    // Token for token: the greedy ids are exactly the tokenizer's encoding of the README text.
    const std::vector<int32_t> expected = tok.Encode(kGreedyText, /*add_bos=*/true);
    ASSERT_GT(expected.size(), 30u);
    const std::vector<int32_t> got =
        Greedy(loaded->model, {tok.bos()}, static_cast<int>(expected.size()) - 1);
    EXPECT_EQ(got, std::vector<int32_t>(expected.begin() + 1, expected.end())) << path;
    std::string text;
    int32_t prev = tok.bos();
    for (int32_t id : got) {
      text += tok.DecodeToken(prev, id);
      prev = id;
    }
    EXPECT_EQ(text, kGreedyText) << path;
  }
}

TEST_F(Stories260k, GgufAndLlama2cGiveIdenticalLogits) {
  const LlamaModel bin = MustLoad(LoadLlama2c(BinPath()));
  const LlamaModel gguf = MustLoad(LoadFromGguf(GgufPath()));
  const std::vector<int32_t> tokens = StoryTokens(96);
  const std::vector<float> a = Prefill(bin, tokens, 2);
  const std::vector<float> b = Prefill(gguf, tokens, 2);
  ASSERT_EQ(a.size(), tokens.size() * 512);
  ASSERT_EQ(a.size(), b.size());
  // Same weights byte for byte, same code: bit-identical, not merely close.
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

// README: encode the first 4000 characters run.c-style (BOS, dummy prefix, merges), score the
// first 256 predictions in one 256-token context: mean NLL 1.39884 nats (f64 reference),
// PPL 4.0505.
TEST_F(Stories260k, TeacherForcedNllMatchesTheIndependentReference) {
  std::ifstream in(TinyStoriesPath(), std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto tok = TokenizerFromLlama2cFile(TokPath(), 512);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const std::vector<int32_t> ids = (*tok)->Encode(text.substr(0, 4000), true);
  const std::vector<int32_t> first_ids = {1, 301, 427, 309, 426, 301, 427, 309, 394, 265, 262, 415};
  ASSERT_GE(ids.size(), 257u);
  ASSERT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 12), first_ids);

  for (const std::string& path : {BinPath(), GgufPath()}) {
    const LlamaModel model = MustLoad(LoadModel(path));
    SessionOptions so;
    so.max_tokens = 257;
    LlamaSession session(model, so);
    // One chunk of 257 tokens, every position scored: positions 0..255 predict tokens 1..256.
    EvalOptions options;
    options.ctx = 257;
    options.max_chunks = 1;
    options.all_tokens = true;
    options.bos = 1;
    Result<EvalResult> r = Evaluate(session, std::span(ids).first(257), options);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->perplexity.count, 256);
    EXPECT_NEAR(r->perplexity.mean_nll, 1.39884, 0.0005) << path;
    EXPECT_NEAR(r->perplexity.ppl, 4.0505, 0.002) << path;
  }
}

TEST_F(Stories260k, LogitsAreBitIdenticalForAnyThreadCount) {
  const LlamaModel model = MustLoad(LoadLlama2c(BinPath()));
  const std::vector<int32_t> tokens = StoryTokens(200);
  const std::vector<float> one = Prefill(model, tokens, 1);
  for (int threads : {2, 3, 5}) {
    const std::vector<float> many = Prefill(model, tokens, threads);
    ASSERT_EQ(one.size(), many.size());
    EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)), 0)
        << threads << " threads";
  }
}

// The matmul and attention reductions run in one fixed order whatever the batch size, so a
// prefill of T tokens reproduces T decode steps exactly (docs/runtime.md); any drift is a bug.
TEST_F(Stories260k, PrefillEqualsTokenByTokenDecode) {
  const LlamaModel model = MustLoad(LoadFromGguf(GgufPath()));
  const std::vector<int32_t> tokens = StoryTokens(128);
  const std::vector<float> prefill = Prefill(model, tokens, 2);
  SessionOptions options;
  options.max_tokens = 128;
  LlamaSession session(model, options);
  std::vector<float> step;
  double max_diff = 0.0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    ASSERT_TRUE(session.Forward(std::span(tokens).subspan(t, 1), 0, &step).ok());
    for (int64_t v = 0; v < 512; ++v) {
      max_diff = std::max(max_diff, std::abs(double(step[v]) - prefill[t * 512 + v]));
    }
  }
  EXPECT_EQ(max_diff, 0.0);
  // Mixed batch sizes (a prompt, then chunks of 1, 7 and 32) give the same last logits too.
  session.Reset();
  std::vector<float> logits;
  size_t at = 0;
  for (size_t n : {size_t{88}, size_t{1}, size_t{7}, size_t{32}}) {
    ASSERT_TRUE(session.Forward(std::span(tokens).subspan(at, n), int64_t(n) - 1, &logits).ok());
    at += n;
    EXPECT_EQ(std::memcmp(logits.data(), &prefill[(at - 1) * 512], 512 * sizeof(float)), 0)
        << "after " << at << " tokens";
  }
}

TEST_F(Stories260k, ForwardRejectsBadTokensAndContextOverflow) {
  const LlamaModel model = MustLoad(LoadLlama2c(BinPath()));
  SessionOptions options;
  options.max_tokens = 4;
  LlamaSession session(model, options);
  std::vector<float> logits;
  const std::vector<int32_t> bad = {1, 512};
  EXPECT_EQ(session.Forward(bad, 0, &logits).code(), StatusCode::kInvalidArgument);
  const std::vector<int32_t> negative = {-1};
  EXPECT_EQ(session.Forward(negative, 0, &logits).code(), StatusCode::kInvalidArgument);
  const std::vector<int32_t> five = {1, 2, 3, 4, 5};
  EXPECT_EQ(session.Forward(five, 0, &logits).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(session.pos(), 0);  // a rejected call leaves the cache untouched
  const std::vector<int32_t> four = {1, 2, 3, 4};
  EXPECT_TRUE(session.Forward(four, 4, &logits).ok());
  EXPECT_TRUE(logits.empty());
  EXPECT_EQ(session.Forward(std::span(four).first(1), 0, &logits).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lowbit
