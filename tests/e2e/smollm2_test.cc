// SmolLM2-135M-Instruct Q4_1 (GGUF, fetched by scripts/fetch_models.sh into .cache/models): the
// runtime's logits against an independent reference. Skipped outside CI when the model has not
// been fetched (a 94 MiB download, not part of shared/data); scripts/test.sh fetches it.
//
// Reference: a float64 numpy forward pass written separately from lowbit (adjacent-pair RoPE,
// GQA, SwiGLU, tied classifier), with every tensor dequantized by the `gguf` Python package
// (gguf 0.19.0, gguf.quants.dequantize), on the 44 token ids below (" = Robert Boulter = \n Robert
// Boulter is an English film , television and theatre actor . He had a guest @-@ starring role on
// the television series The Bill in 2000 ." as lowbit's GPT-2 tokenizer encodes it, no BOS since
// the file sets add_bos_token false). Mean NLL of the 43 predictions: 4.19284210830854 nats;
// lowbit's f32 logits differed from it by at most 4.1e-5 (logits up to 33.7) when this was written.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "lowbit/eval.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"
#include "runtime/linear.h"
#include "test_support.h"

namespace lowbit {
namespace {

std::string SmolLm2Path() {
  return std::string(LOWBIT_SOURCE_DIR) + "/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

TEST(SmolLm2, TeacherForcedNllMatchesAnIndependentFloat64Reference) {
  // scripts/test.sh fetches it, so under CI a missing model is a failure.
  LOWBIT_REQUIRE_FILE(SmolLm2Path());
  Result<LoadedModel> loaded = LoadModelWithTokenizer(SmolLm2Path());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  // The exact (f32-activation) kernels: the default Q8 activations add their own rounding
  // (docs/kernels.md, "Choosing the activation path"), which the 1e-4 check below would see.
  PrepareModelForIsa(loaded->model, kernels::ActiveIsa(), kernels::ActPath::kF32);
  const LlamaConfig& c = loaded->model.config;
  EXPECT_EQ(c.dim, 576);
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tied_embeddings);
  const std::vector<int32_t> ids = {
      446,  6356, 389,  9226, 352,   446,   3814, 94,  6356, 389, 9226,  352,  314, 354, 2321,
      4771, 3297, 8552, 284,  16984, 17523, 1673, 909, 761,  253, 16204, 3394, 29,  48,  45608,
      1791, 335,  260,  8552, 3086,  378,   8593, 281, 216,  34,  32,    32,   32,  1673};
  SessionOptions options;
  options.max_tokens = static_cast<int64_t>(ids.size());
  LlamaSession session(loaded->model, options);
  std::vector<float> logits;
  ASSERT_TRUE(session.Forward(ids, 0, &logits).ok());
  double nll = 0.0;
  for (size_t i = 0; i + 1 < ids.size(); ++i)
    nll += TokenNll(&logits[i * 49152], 49152, ids[i + 1]);
  nll /= static_cast<double>(ids.size() - 1);
  // f32 accumulation against float64 on the same decoded weights: agreement to ~1e-6 is expected;
  // any layout or RoPE mistake moves the NLL by far more than 1e-4.
  EXPECT_NEAR(nll, 4.19284210830854, 1e-4);
}

}  // namespace
}  // namespace lowbit
