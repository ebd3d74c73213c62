// lowbit's tokenizers against independent implementations, id for id
// (scripts/golden/gen_tokenizer.py writes the references into $LOWBIT_GOLDEN_DIR/tokenizer/):
//   - sentencepiece on tok512.model vs lowbit's SentencePiece-style BPE from tok512.bin and from
//     stories260K.gguf (must run under CI);
//   - HF tokenizers' pre-tokenizers (Oniguruma regexes) vs lowbit's hand-written scanners;
//   - HF tokenizers' BPE built from the SmolLM2 GGUF vocabulary vs lowbit from the same GGUF and
//   from
//     the tokenizer.json that HF saved (runs once scripts/fetch_models.sh has fetched the GGUF).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/tokenizer_pretokenize.h"
#include "lowbit/gguf.h"
#include "lowbit/tokenizer.h"
#include "test_support.h"

namespace lowbit {
namespace {

using nlohmann::json;
using testing::SharedDataPath;

std::string GoldenPath(const std::string& name) {
  return std::string(LOWBIT_GOLDEN_DIR) + "/tokenizer/" + name;
}

json LoadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string SmolLM2Path() {
  return std::string(LOWBIT_SOURCE_DIR) + "/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::string Show(const std::vector<int32_t>& ids, size_t at) {
  std::string s;
  for (size_t i = at > 3 ? at - 3 : 0; i < ids.size() && i < at + 4; ++i) {
    if (i == at) s += '[';
    s += std::to_string(ids[i]);
    s += i == at ? "] " : " ";
  }
  return s;
}

// Exact comparison that reports the first differing position instead of two huge vectors.
void ExpectSameIds(const std::string& what, const std::vector<int32_t>& got,
                   const std::vector<int32_t>& want) {
  if (got == want) return;
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  ADD_FAILURE() << what << ": " << got.size() << " ids vs " << want.size()
                << " expected; first difference at " << i << ": got ... " << Show(got, i)
                << "expected ... " << Show(want, i);
}

TEST(TokenizerGolden, Tok512MatchesSentencepiece) {
  const std::string golden = GoldenPath("spm_tok512.json");
  LOWBIT_REQUIRE_FILE(golden);
  const json g = LoadJson(golden);

  auto bin = TokenizerFromLlama2cFile(SharedDataPath("stories260K/tok512.bin"), 512);
  ASSERT_TRUE(bin.ok()) << bin.status().ToString();
  auto gguf = GgufFile::Open(SharedDataPath("stories260K/stories260K.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
  auto from_gguf = TokenizerFromGguf(*gguf);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status().ToString();

  size_t n_cases = 0, n_ids = 0, n_default = 0;
  for (const json& c : g["cases"]) {
    const std::string name = c["name"];
    const std::string text = c["text"];
    const auto want = c["ids_raw"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got_bin = (*bin)->Encode(text, /*add_bos=*/false);
    ExpectSameIds(name + " (tok512.bin)", got_bin, want);
    ExpectSameIds(name + " (stories260K.gguf)", (*from_gguf)->Encode(text, false), want);
    // Where sentencepiece's default whitespace normalization changes nothing, the model as
    // shipped must agree too.
    if (c["default_applies"].get<bool>()) {
      ExpectSameIds(name + " (default normalizer)", got_bin,
                    c["ids_default"].get<std::vector<int32_t>>());
      ++n_default;
    }
    ++n_cases;
    n_ids += want.size();
  }
  EXPECT_GT(n_cases, 100u);
  EXPECT_GE(n_default, 15u);  // texts without leading, trailing or repeated spaces
  std::printf("compared %zu texts, %zu ids (x2 files), %zu texts against the default normalizer\n",
              n_cases, n_ids, n_default);
}

TEST(TokenizerGolden, PreTokenizersMatchHfTokenizers) {
  using tokenizer_internal::PreTokenizer;
  const std::string golden = GoldenPath("pretokenize.json");
  LOWBIT_REQUIRE_FILE(golden);
  const json g = LoadJson(golden);
  // The patterns lowbit recognises in tokenizer.json are the ones the references ran.
  EXPECT_EQ(g["llama3_regex"].get<std::string>(), tokenizer_internal::kLlama3Pattern);
  EXPECT_EQ(g["qwen2_regex"].get<std::string>(), tokenizer_internal::kQwen2Pattern);

  const std::pair<const char*, PreTokenizer> kScanners[] = {
      {"gpt2", PreTokenizer::kGpt2},
      {"gpt2_digits", PreTokenizer::kGpt2Digits},
      {"llama3", PreTokenizer::kLlama3},
      {"qwen2", PreTokenizer::kQwen2},
  };
  size_t n_pieces = 0, n_cases = 0;
  for (const json& c : g["cases"]) {
    const std::string text = c["text"];
    for (const auto& [key, pre] : kScanners) {
      std::vector<std::string_view> got;
      tokenizer_internal::PreTokenize(pre, text, &got);
      const auto want = c[key].get<std::vector<std::string>>();
      EXPECT_EQ(std::vector<std::string>(got.begin(), got.end()), want)
          << c["name"].get<std::string>() << " / " << key;
      n_pieces += want.size();
    }
    ++n_cases;
  }
  EXPECT_GT(n_cases, 100u);
  std::printf("compared %zu texts x 4 pre-tokenizers, %zu pieces\n", n_cases, n_pieces);
}

void CheckSmolLM2(const Tokenizer& tok, const json& g, const std::string& label) {
  size_t n_ids = 0;
  for (const json& c : g["cases"]) {
    const std::string name = c["name"];
    const std::string text = c["text"];
    const auto want = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok.Encode(text, /*add_bos=*/false);
    ExpectSameIds(name + " (" + label + ")", got, want);
    EXPECT_EQ(tok.Decode(got), text) << name << " (" << label << ")";
    n_ids += want.size();
  }
  std::printf("%s: compared %zu texts, %zu ids\n", label.c_str(), g["cases"].size(), n_ids);
}

TEST(TokenizerGolden, SmolLM2GgufMatchesHfTokenizers) {
  if (!std::filesystem::exists(SmolLM2Path())) {
    GTEST_SKIP() << SmolLM2Path() << " not found: run scripts/fetch_models.sh";
  }
  const std::string golden = GoldenPath("smollm2.json");
  // The generator writes it whenever the GGUF exists (so under CI its absence is a failure).
  LOWBIT_REQUIRE_FILE(golden);
  auto gguf = GgufFile::Open(SmolLM2Path());
  ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
  auto tok = TokenizerFromGguf(*gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->kind(), "bpe");
  EXPECT_EQ((*tok)->vocab_size(), 49152);
  EXPECT_EQ((*tok)->bos(), 1);  // <|im_start|>
  EXPECT_EQ((*tok)->eos(), 2);  // <|im_end|>
  EXPECT_FALSE((*tok)->add_bos_default());
  CheckSmolLM2(**tok, LoadJson(golden), "SmolLM2 GGUF");
}

TEST(TokenizerGolden, SmolLM2HfJsonMatchesHfTokenizers) {
  if (!std::filesystem::exists(SmolLM2Path())) {
    GTEST_SKIP() << SmolLM2Path() << " not found: run scripts/fetch_models.sh";
  }
  const std::string golden = GoldenPath("smollm2.json");
  const std::string tokenizer_json = GoldenPath("smollm2_tokenizer.json");
  LOWBIT_REQUIRE_FILE(golden);
  LOWBIT_REQUIRE_FILE(tokenizer_json);
  auto tok = TokenizerFromHfJson(tokenizer_json);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->vocab_size(), 49152);
  CheckSmolLM2(**tok, LoadJson(golden), "SmolLM2 tokenizer.json");
}

}  // namespace
}  // namespace lowbit
