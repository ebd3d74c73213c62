// `lowbit run` and `lowbit eval` as a user drives them, on stories260K: streamed greedy text, JSON
// keys, reference logits through a file, and exit code 2 for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "test_support.h"

namespace {

using lowbit::testing::SharedDataPath;

using lowbit::testing::CliRun;
using lowbit::testing::RunCli;

constexpr const char* kGreedyText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.";

class CliRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    LOWBIT_REQUIRE_FILE(bin_);
    LOWBIT_REQUIRE_FILE(gguf_);
    LOWBIT_REQUIRE_FILE(text_);
    LOWBIT_REQUIRE_FILE(SharedDataPath("stories260K/tok512.bin"));
  }
  std::string bin_ = SharedDataPath("stories260K/stories260K.bin");
  std::string gguf_ = SharedDataPath("stories260K/stories260K.gguf");
  std::string text_ = SharedDataPath("text/tinystories_valid_head.txt");
  std::string logits_ = (std::filesystem::temp_directory_path() /
                         ("lowbit_cli_" + std::to_string(::getpid()) + ".lbl"))
                            .string();
  void TearDown() override { std::filesystem::remove(logits_); }
};

TEST_F(CliRuntime, RunStreamsTheGreedyStory) {
  // tok512.bin next to the llama2.c model is found without --tokenizer (tok<vocab>.bin).
  for (const std::string& model : {bin_, gguf_}) {
    const CliRun r = RunCli("run --model " + model + " --temp 0 -n 80");
    ASSERT_EQ(r.exit_code, 0) << model;
    EXPECT_EQ(r.out.substr(0, std::string(kGreedyText).size()), kGreedyText) << model;
  }
  // Sampling with a fixed seed is reproducible.
  const CliRun a = RunCli("run -m " + bin_ + " --temp 1 --seed 5 -n 30 -t 1");
  const CliRun b = RunCli("run -m " + bin_ + " --temp 1 --seed 5 -n 30 -t 2");
  ASSERT_EQ(a.exit_code, 0);
  EXPECT_EQ(a.out, b.out);
  EXPECT_GT(a.out.size(), 20u);
}

TEST_F(CliRuntime, EvalJsonAndReferenceLogitsFile) {
  const std::string base = "eval -m " + bin_ + " --text " + text_ + " --ctx 128 --chunks 3 --json";
  CliRun r = RunCli(base + " --quiet --save-logits " + logits_);
  ASSERT_EQ(r.exit_code, 0);
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_tokens"].get<int64_t>(), 3 * 63);
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
  EXPECT_GT(j["ppl_stderr"].get<double>(), 0.0);
  EXPECT_FALSE(j.contains("kld_mean"));
  ASSERT_TRUE(std::filesystem::exists(logits_));

  // The same model against its saved fp16 log-probs: only fp16 rounding separates them.
  r = RunCli("eval -m " + gguf_ + " --text " + text_ + " --json -q --reference-logits " + logits_);
  ASSERT_EQ(r.exit_code, 0);
  const nlohmann::json k = nlohmann::json::parse(r.out);
  for (const char* key : {"n_tokens", "ppl", "ppl_stderr", "kld_mean", "kld_stderr", "kld_median",
                          "kld_p99", "top1_agreement", "ppl_ratio"}) {
    EXPECT_TRUE(k.contains(key)) << key;
  }
  EXPECT_EQ(k["n_tokens"], j["n_tokens"]);  // ctx and chunks came from the file
  EXPECT_LT(k["kld_mean"].get<double>(), 1e-4);
  EXPECT_GE(k["kld_mean"].get<double>(), 0.0);
  EXPECT_EQ(k["top1_agreement"].get<double>(), 1.0);
  EXPECT_NEAR(k["ppl_ratio"].get<double>(), 1.0, 1e-6);

  // A live reference: the model against itself diverges by exactly 0.
  r = RunCli(base + " -q --reference " + gguf_);
  ASSERT_EQ(r.exit_code, 0);
  const nlohmann::json live = nlohmann::json::parse(r.out);
  EXPECT_EQ(live["kld_mean"].get<double>(), 0.0);
  EXPECT_EQ(live["ppl_ratio"].get<double>(), 1.0);
}

// --weights quantizes in memory: q8_0 stays close to f32, q4_0 diverges more, and both differ.
TEST_F(CliRuntime, WeightsOptionQuantizesInMemory) {
  const std::string base = "eval -m " + bin_ + " --text " + text_ +
                           " --ctx 128 --chunks 3 --json -q --reference " + bin_ + " --weights ";
  CliRun q8 = RunCli(base + "q8_0");
  ASSERT_EQ(q8.exit_code, 0);
  CliRun q4 = RunCli(base + "q4_0");
  ASSERT_EQ(q4.exit_code, 0);
  const nlohmann::json a = nlohmann::json::parse(q8.out), b = nlohmann::json::parse(q4.out);
  EXPECT_GT(a["kld_mean"].get<double>(), 0.0);
  EXPECT_LT(a["kld_mean"].get<double>(), 0.01);
  EXPECT_GT(b["kld_mean"].get<double>(), 5 * a["kld_mean"].get<double>());
  EXPECT_LT(b["top1_agreement"].get<double>(), a["top1_agreement"].get<double>());
  EXPECT_EQ(RunCli(base + "no_such_format").exit_code, 2);
  EXPECT_EQ(RunCli(base + "q4_k").exit_code, 2);  // decode-only: not a quantization target
}

TEST_F(CliRuntime, BadInputExitsWith2) {
  EXPECT_EQ(RunCli("run --model /nonexistent.gguf").exit_code, 2);
  EXPECT_EQ(RunCli("eval --model " + bin_ + " --text /nonexistent.txt").exit_code, 2);
  EXPECT_EQ(RunCli("eval --model " + bin_ + " --text " + text_ + " --ctx 1").exit_code, 2);
  EXPECT_EQ(RunCli("eval --model " + bin_ + " --text " + text_ + " --reference " + bin_ +
                   " --reference-logits " + logits_)
                .exit_code,
            2);
  EXPECT_EQ(RunCli("eval --model " + bin_ + " --text " + text_ + " --reference-logits " + text_)
                .exit_code,
            2);
  EXPECT_EQ(RunCli("run --model " + bin_ + " -n 600").exit_code, 2);  // beyond seq_len 512
  EXPECT_EQ(RunCli("run --model " + bin_ + " --tokenizer " + text_).exit_code, 2);
}

// Malformed model files reach the user as a message and exit code 2, never a crash: the GGUF cut
// inside its header, inside its tensor data, and with a bad magic.
TEST_F(CliRuntime, MalformedGgufExitsWith2) {
  const std::vector<uint8_t> bytes = lowbit::testing::ReadFileBytes(gguf_);
  ASSERT_GT(bytes.size(), 100000u);
  const std::string path = logits_ + ".gguf";
  auto write = [&](std::vector<uint8_t> b) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
  };
  for (size_t cut : {size_t{7}, size_t{2000}, bytes.size() - 1000}) {
    write(std::vector<uint8_t>(bytes.begin(), bytes.begin() + cut));
    EXPECT_EQ(RunCli("run --model " + path + " -n 4").exit_code, 2) << "cut at " << cut;
  }
  std::vector<uint8_t> bad_magic = bytes;
  bad_magic[0] = 'X';
  write(bad_magic);
  EXPECT_EQ(RunCli("eval --model " + path + " --text " + text_).exit_code, 2);
  std::filesystem::remove(path);
}

}  // namespace
