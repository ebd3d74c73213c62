// Every input a fuzzer (fuzz/) found to crash, hang or over-allocate lowbit is stored under
// tests/data/fuzz_regressions/<fuzzer>/<name> and replayed here through the same entry point as
// the fuzzer, in the ASan + UBSan unit job: it must now give a clean error Status. One test per
// stored input (FuzzRegressions/Replay.RejectsCleanly/<fuzzer>__<name>); docs/hardening.md lists
// them with the bug each one found.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"
#include "lowbit/hf_config.h"
#include "lowbit/model.h"
#include "lowbit/rules.h"
#include "lowbit/safetensors.h"
#include "lowbit/tokenizer.h"
#include "test_support.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

const std::string kDir = std::string(LOWBIT_SOURCE_DIR) + "/tests/data/fuzz_regressions";

struct Input {
  std::string fuzzer;  // the folder: the fuzz target that found it
  std::string path;
};

std::vector<Input> StoredInputs() {
  std::vector<Input> inputs;
  std::error_code ec;
  for (const fs::directory_entry& dir : fs::directory_iterator(kDir, ec)) {
    if (!dir.is_directory()) continue;
    for (const fs::directory_entry& file : fs::directory_iterator(dir.path(), ec)) {
      if (file.is_regular_file()) {
        inputs.push_back({dir.path().filename().string(), file.path().string()});
      }
    }
  }
  std::sort(inputs.begin(), inputs.end(),
            [](const Input& a, const Input& b) { return a.path < b.path; });
  return inputs;
}

// What each fuzzer does with its input, stage by stage; the first failing stage's Status (OK when
// every stage accepts the input, which a stored crasher must not).
Status ReplayInput(const std::string& fuzzer, const std::vector<uint8_t>& bytes, bool* known) {
  *known = true;
  const std::string text(bytes.begin(), bytes.end());
  if (fuzzer == "fuzz_gguf" || fuzzer == "fuzz_gguf_tokenizer") {
    Result<GgufFile> file = GgufFile::FromBytes(bytes, fuzzer + ".gguf");
    if (!file.ok()) return file.status();
    auto shared = std::make_shared<const GgufFile>(std::move(file).value());
    if (fuzzer == "fuzz_gguf") return LoadFromGguf(shared).status();
    return TokenizerFromGguf(*shared).status();
  }
  if (fuzzer == "fuzz_safetensors") {
    return SafetensorsFile::FromBytes(bytes, "fuzz.safetensors").status();
  }
  if (fuzzer == "fuzz_hf_config") return ParseHfConfig(text, "config.json").status();
  if (fuzzer == "fuzz_tokenizer_json") {
    return TokenizerFromHfJsonText(text, "", "tokenizer.json").status();
  }
  if (fuzzer == "fuzz_llama2c") return LoadLlama2cFromBytes(bytes, "fuzz.bin").status();
  if (fuzzer == "fuzz_llama2c_tokenizer") return TokenizerFromLlama2cBytes(text, "tok.bin").status();
  if (fuzzer == "fuzz_format_spec") return ParseFormat(text).status();
  if (fuzzer == "fuzz_rules") return ParseRules(text, "rules.txt").status();
  *known = false;
  return Status::Ok();
}

class Replay : public ::testing::TestWithParam<Input> {};

TEST_P(Replay, RejectsCleanly) {
  const Input& input = GetParam();
  const std::vector<uint8_t> bytes = testing::ReadFileBytes(input.path);
  ASSERT_FALSE(bytes.empty()) << input.path;
  bool known = false;
  const Status st = ReplayInput(input.fuzzer, bytes, &known);
  ASSERT_TRUE(known) << "no fuzzer named " << input.fuzzer << " (folder of " << input.path << ")";
  EXPECT_FALSE(st.ok()) << input.path << " is accepted";
  EXPECT_FALSE(st.message().empty());
}

// Inputs that load fine but broke the forward pass the fuzzers run on small models
// (tests/data/fuzz_forward/<fuzzer>/): the same two-token forward must now finish cleanly.
TEST(FuzzForwardRegressions, SmallModelsRunTheFuzzersForwardPass) {
  const std::string dir = std::string(LOWBIT_SOURCE_DIR) + "/tests/data/fuzz_forward/fuzz_gguf";
  int count = 0;
  for (const fs::directory_entry& file : fs::directory_iterator(dir)) {
    Result<GgufFile> parsed = GgufFile::FromBytes(testing::ReadFileBytes(file.path().string()),
                                                  file.path().filename().string());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    Result<LlamaModel> model =
        LoadFromGguf(std::make_shared<const GgufFile>(std::move(parsed).value()));
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    SessionOptions options;
    options.max_tokens = 2;
    options.n_threads = 1;
    LlamaSession session(*model, options);
    std::vector<float> logits;
    const int32_t tokens[2] = {0, static_cast<int32_t>(model->config.vocab_size - 1)};
    ASSERT_TRUE(session.Forward(std::span<const int32_t>(tokens, 2), 1, &logits).ok());
    EXPECT_EQ(static_cast<int64_t>(logits.size()), model->config.vocab_size);
    ++count;
  }
  EXPECT_GE(count, 1);
}

std::string TestName(const ::testing::TestParamInfo<Input>& info) {
  std::string name = info.param.fuzzer + "__" + fs::path(info.param.path).filename().string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(FuzzRegressions, Replay, ::testing::ValuesIn(StoredInputs()), TestName);

TEST(FuzzRegressions, InputsAreStored) {
  // The folder ships with the repository; an empty list would silently test nothing.
  EXPECT_FALSE(StoredInputs().empty()) << kDir;
}

}  // namespace
}  // namespace lowbit
