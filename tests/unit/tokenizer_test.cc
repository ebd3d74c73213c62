// Tokenizers: the stories260K reference ids (shared/data/stories260K/README.md), hand-derived merge
// orders on tiny vocabularies, the pre-tokenizer scanners on hand-split strings, byte fallback,
// Decode(Encode(x)) == x round trips, and malformed tokenizer files (each error must name the file
// and the field). Exhaustive comparisons against sentencepiece / HF tokenizers are in
// tests/golden/tokenizer_golden_test.cc.
#include "lowbit/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "io/tokenizer_pretokenize.h"
#include "lowbit/gguf.h"
#include "test_support.h"

namespace lowbit {
namespace {

using testing::ReadFileBytes;
using testing::SharedDataPath;
using Ids = std::vector<int32_t>;

std::string Tok512Path() { return SharedDataPath("stories260K/tok512.bin"); }
std::string StoriesGgufPath() { return SharedDataPath("stories260K/stories260K.gguf"); }
std::string SmolLM2Path() {
  return std::string(LOWBIT_SOURCE_DIR) + "/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

bool Contains(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/lowbit_tokenizer_test_" + std::to_string(::getpid()) + "_" + name;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string ReadText(const std::string& path) {
  const std::vector<uint8_t> bytes = ReadFileBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

// The id of a vocabulary entry spelled as the file stores it; -1 if absent.
int32_t IdOf(const Tokenizer& tok, const std::string& piece) {
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (tok.piece(id) == piece) return id;
  }
  return -1;
}

std::unique_ptr<Tokenizer> Must(Result<std::unique_ptr<Tokenizer>> r) {
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : nullptr;
}

std::unique_ptr<Tokenizer> LoadTok512() {
  return Must(TokenizerFromLlama2cFile(Tok512Path(), 512));
}

std::unique_ptr<Tokenizer> LoadStoriesGguf() {
  auto file = GgufFile::Open(StoriesGgufPath());
  EXPECT_TRUE(file.ok()) << file.status().message();
  if (!file.ok()) return nullptr;
  return Must(TokenizerFromGguf(*file));
}

// Texts for round trips and agreement checks: real text, tricky unicode/whitespace/digits, and
// byte strings that are not UTF-8 (stray continuation bytes, truncated sequences, NUL, overlongs).
std::vector<std::string> TestTexts() {
  std::vector<std::string> texts = {
      "",
      " ",
      "   leading and trailing   ",
      "a\nb",
      "tabs\tand\nnewlines\r\n\r\nmixed  runs   of    spaces",
      "I'm sure they'll say it's fine, don't you think? We've seen it. I'LL GO.",
      "Numbers 12345 and 3.14159 and 1,000,000",
      "Café naïve résumé Ångström Zürich",
      "你好，世界！日本語のテキスト 한국어",
      "Emoji: 😀👍🏽🇺🇸 and ❤️ 👨‍👩‍👧",
      "nbsp\u00a0here, ideographic\u3000space",
      "<s></s><unk><0x41> <|im_start|>user\n<|im_end|>",
      std::string("nul\0byte", 8),
      "\xff\xfe stray \x80\xbf continuation, cut \xe2\x82 and \xf0\x9f\x98 overlong \xc0\xaf "
      "surrogate \xed\xa0\x80 end",
  };
  const std::string stories = ReadText(SharedDataPath("text/tinystories_valid_head.txt"));
  if (!stories.empty()) texts.push_back(stories.substr(0, 4000));
  const std::string wiki = ReadText(SharedDataPath("text/wiki.test.raw"));
  if (!wiki.empty()) texts.push_back(wiki.substr(0, 20000));
  return texts;
}

// ---------------------------------------------------------------------------------------------
// stories260K's tok512: the README's reference ids, .bin and GGUF agreement, byte fallback.

TEST(Tok512, ReadmeReferenceIdsFromBinAndGguf) {
  LOWBIT_REQUIRE_FILE(Tok512Path());
  LOWBIT_REQUIRE_FILE(StoriesGgufPath());
  const std::string text =
      ReadText(SharedDataPath("text/tinystories_valid_head.txt")).substr(0, 4000);
  ASSERT_EQ(text.size(), 4000u);
  // shared/data/stories260K/README.md: BOS, then " S" "p" "ot" "." " S" "p" "ot" " saw" " the" " s"
  // "h"
  // ("Spot. Spot saw the shiny ..."), computed there by an independent run.c-style encoder.
  const Ids kReference = {1, 301, 427, 309, 426, 301, 427, 309, 394, 265, 262, 415};
  for (auto& tok : {LoadTok512(), LoadStoriesGguf()}) {
    ASSERT_NE(tok, nullptr);
    const Ids ids = tok->Encode(text, /*add_bos=*/true);
    ASSERT_GE(ids.size(), kReference.size());
    EXPECT_EQ(Ids(ids.begin(), ids.begin() + kReference.size()), kReference);
    EXPECT_EQ(tok->bos(), 1);
    EXPECT_EQ(tok->eos(), 2);
    EXPECT_EQ(tok->vocab_size(), 512);
    EXPECT_TRUE(tok->add_bos_default());
    EXPECT_EQ(tok->kind(), "spm");
  }
}

TEST(Tok512, BinAndGgufGiveIdenticalIds) {
  LOWBIT_REQUIRE_FILE(Tok512Path());
  LOWBIT_REQUIRE_FILE(StoriesGgufPath());
  auto bin = LoadTok512();
  auto gguf = LoadStoriesGguf();
  ASSERT_NE(bin, nullptr);
  ASSERT_NE(gguf, nullptr);
  // Same vocabulary, spelled with ' ' in the .bin and U+2581 in the GGUF.
  EXPECT_EQ(bin->piece(261), " a");
  EXPECT_EQ(gguf->piece(261),
            "\xE2\x96\x81"
            "a");
  size_t n_ids = 0;
  for (const std::string& text : TestTexts()) {
    const Ids a = bin->Encode(text, true);
    EXPECT_EQ(a, gguf->Encode(text, true)) << text.substr(0, 60);
    n_ids += a.size();
  }
  EXPECT_GT(n_ids, 5000u);
}

TEST(Tok512, ByteFallbackAndDummyPrefix) {
  LOWBIT_REQUIRE_FILE(Tok512Path());
  auto tok = LoadTok512();
  ASSERT_NE(tok, nullptr);
  // tok512 layout (README): <0xNN> is id 3 + NN.
  const auto byte_id = [](int b) { return 3 + b; };
  ASSERT_EQ(tok->piece(byte_id(0x0A)), "<0x0A>");
  const int32_t space = IdOf(*tok, " "), space_a = IdOf(*tok, " a"), b = IdOf(*tok, "b");
  ASSERT_GE(space, 0);
  ASSERT_GE(space_a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(IdOf(*tok, "\n"), -1);
  ASSERT_EQ(IdOf(*tok, "ü"), -1);
  ASSERT_EQ(IdOf(*tok, " ü"), -1);

  // " a\nb": " "+"a" merge into " a"; "\n" is no piece -> <0x0A>; "b" stays (no "\nb" piece).
  EXPECT_EQ(tok->Encode("a\nb", false), (Ids{space_a, byte_id(0x0A), b}));
  // "ü" = C3 BC is no piece: the dummy-prefix " " stays alone, then one token per byte.
  EXPECT_EQ(tok->Encode("ü", false), (Ids{space, byte_id(0xC3), byte_id(0xBC)}));
  // U+1F600 = F0 9F 98 80.
  EXPECT_EQ(tok->Encode("😀", true),
            (Ids{1, space, byte_id(0xF0), byte_id(0x9F), byte_id(0x98), byte_id(0x80)}));
  // A byte that is not UTF-8 at all.
  EXPECT_EQ(tok->Encode("\xff", false), (Ids{space, byte_id(0xFF)}));
  EXPECT_EQ(tok->Encode("", false), Ids{});
  EXPECT_EQ(tok->Encode("", true), Ids{1});

  // Streaming decode: bytes come out one at a time, the dummy prefix disappears after BOS or at the
  // start, not in the middle; control tokens print nothing.
  EXPECT_EQ(tok->DecodeToken(space, byte_id(0xC3)), "\xC3");
  EXPECT_EQ(tok->DecodeToken(-1, space_a), "a");
  EXPECT_EQ(tok->DecodeToken(1, space_a), "a");
  EXPECT_EQ(tok->DecodeToken(b, space_a), " a");
  EXPECT_EQ(tok->DecodeToken(-1, 1), "");
  EXPECT_EQ(tok->DecodeToken(b, 2), "");
  EXPECT_EQ(tok->DecodeToken(b, 0), " \xE2\x81\x87 ");  // <unk> as sentencepiece prints it
  EXPECT_EQ(tok->DecodeToken(b, 512), "");
  EXPECT_EQ(tok->DecodeToken(b, -5), "");
  EXPECT_EQ(tok->Decode(tok->Encode("ü", true)), "ü");
}

TEST(Tok512, RoundTrips) {
  LOWBIT_REQUIRE_FILE(Tok512Path());
  LOWBIT_REQUIRE_FILE(StoriesGgufPath());
  for (auto& tok : {LoadTok512(), LoadStoriesGguf()}) {
    ASSERT_NE(tok, nullptr);
    for (const std::string& text : TestTexts()) {
      EXPECT_EQ(tok->Decode(tok->Encode(text, true)), text);
      EXPECT_EQ(tok->Decode(tok->Encode(text, false)), text);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SentencePiece merge order on a hand-made llama2.c vocabulary (no byte tokens).

std::string Llama2cRecord(float score, const std::string& piece) {
  std::string r(8, '\0');
  const int32_t length = static_cast<int32_t>(piece.size());
  std::memcpy(r.data(), &score, 4);
  std::memcpy(r.data() + 4, &length, 4);
  return r + piece;
}

std::string Llama2cFile(int32_t max_token_length,
                        const std::vector<std::pair<std::string, float>>& v) {
  std::string bytes(4, '\0');
  std::memcpy(bytes.data(), &max_token_length, 4);
  for (const auto& [piece, score] : v) bytes += Llama2cRecord(score, piece);
  return bytes;
}

std::unique_ptr<Tokenizer> TinySpm(float score_ab, float score_ba) {
  const std::string path = TempPath("tiny_spm.bin");
  // ids: 0 <unk>, 1 BOS, 2 EOS, 3 " ", 4 "a", 5 "b", 6 "ab", 7 "ba"
  WriteFile(path, Llama2cFile(6, {{"<unk>", 0},
                                  {"\n<s>\n", 0},
                                  {"\n</s>\n", 0},
                                  {" ", -10},
                                  {"a", -11},
                                  {"b", -12},
                                  {"ab", score_ab},
                                  {"ba", score_ba}}));
  auto tok = Must(TokenizerFromLlama2cFile(path));
  std::filesystem::remove(path);
  return tok;
}

TEST(SpmMerges, HighestScoreFirstLeftmostOnTies) {
  {
    auto tok = TinySpm(-1, -1);
    ASSERT_NE(tok, nullptr);
    // " aba": pairs (" ","a") no piece, ("a","b") "ab" -1, ("b","a") "ba" -1: a tie, the leftmost
    // merges: " " "ab" "a"; then " ab" and "aba" are no pieces.
    EXPECT_EQ(tok->Encode("aba", false), (Ids{3, 6, 4}));
    // " abab": "ab" at 1 (leftmost of ab/ba/ab), then " " "ab" "a" "b" -> "ab" again.
    EXPECT_EQ(tok->Encode("abab", false), (Ids{3, 6, 6}));
    // No byte tokens in this vocabulary: an unknown character is <unk>.
    EXPECT_EQ(tok->Encode("ca", false), (Ids{3, 0, 4}));
    EXPECT_EQ(tok->Encode("ca", true), (Ids{1, 3, 0, 4}));
  }
  {
    auto tok = TinySpm(-1, 0);
    ASSERT_NE(tok, nullptr);
    // "ba" scores higher than "ab" although it is to the right: " " "a" "ba".
    EXPECT_EQ(tok->Encode("aba", false), (Ids{3, 4, 7}));
  }
}

// ---------------------------------------------------------------------------------------------
// Byte-level BPE on hand-made GGUF vocabularies.

struct GptVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  std::string pre = "gpt-2";
};

Result<std::unique_ptr<Tokenizer>> GptFromGguf(const GptVocab& v, int64_t unk = -1) {
  GgufWriter w;
  w.SetString("tokenizer.ggml.model", "gpt2");
  w.SetString("tokenizer.ggml.pre", v.pre);
  w.SetStringArray("tokenizer.ggml.tokens", v.tokens);
  w.SetInt32Array("tokenizer.ggml.token_type", v.types);
  w.SetStringArray("tokenizer.ggml.merges", v.merges);
  if (unk >= 0) w.SetUint32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(unk));
  auto bytes = w.Serialize();
  if (!bytes.ok()) return bytes.status();
  auto file = GgufFile::FromBytes(std::move(bytes).value(), "synthetic.gguf");
  if (!file.ok()) return file.status();
  return TokenizerFromGguf(*file);
}

GptVocab TinyGpt(std::vector<std::string> merges) {
  GptVocab v;
  // ids: 0 <|end|> (control), 1 a, 2 b, 3 c, 4 Ġ (space), 5 ab, 6 bc, 7 abc, 8 aa, 9 <unk>
  v.tokens = {"<|end|>", "a", "b", "c", "\xC4\xA0", "ab", "bc", "abc", "aa", "<unk>"};
  v.types = {3, 1, 1, 1, 1, 1, 1, 1, 1, 2};
  v.merges = std::move(merges);
  return v;
}

TEST(BpeMerges, LowestRankFirstLeftmostOnTies) {
  auto tok = Must(GptFromGguf(TinyGpt({"b c", "a b", "a bc", "a a"}), 9));
  ASSERT_NE(tok, nullptr);
  // "abc": (a,b) rank 1, (b,c) rank 0 -> a bc; then (a,bc) rank 2 -> abc.
  EXPECT_EQ(tok->Encode("abc", false), (Ids{7}));
  // "aaa": (a,a) twice at rank 3: the leftmost merges -> aa a.
  EXPECT_EQ(tok->Encode("aaa", false), (Ids{8, 1}));
  // GPT-2 split "ab ab" -> "ab" " ab"; " ab" = Ġ a b -> (a,b) merges, Ġ has no merge.
  EXPECT_EQ(tok->Encode("ab ab", false), (Ids{5, 4, 5}));
  // The control token is matched before BPE; 'z' has no stand-in in the vocabulary -> <unk>.
  EXPECT_EQ(tok->Encode("<|end|>abcz", false), (Ids{0, 7, 9}));
  EXPECT_EQ(tok->Encode("x<|end|>", false), (Ids{9, 0}));
  EXPECT_EQ(tok->DecodeToken(-1, 4), " ");
  EXPECT_EQ(tok->DecodeToken(-1, 0), "<|end|>");
  EXPECT_EQ(tok->Decode(tok->Encode("ab abc<|end|>", false)), "ab abc<|end|>");
  EXPECT_EQ(tok->bos(), -1);
  EXPECT_EQ(tok->eos(), -1);
  EXPECT_EQ(tok->Encode("a", /*add_bos=*/true), Ids{1});  // no BOS in this vocabulary
}

TEST(BpeMerges, OtherRankOrderGivesOtherSplit) {
  // With "a b" first: ab c -> (ab,c) is not listed, so "abc" stays two tokens.
  auto tok = Must(GptFromGguf(TinyGpt({"a b", "b c"})));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("abc", false), (Ids{5, 3}));
}

TEST(BpeMerges, EveryByteRoundTrips) {
  // All 256 byte stand-ins and no merges: any byte string encodes to one token per byte.
  GptVocab v;
  for (int b = 0; b < 256; ++b) {
    // GPT-2's bytes_to_unicode, written out independently of lowbit's table.
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    int cp = b;
    if (!printable) {
      int k = 0;
      for (int c = 0; c < b; ++c) {
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) ++k;
      }
      cp = 256 + k;
    }
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    v.tokens.push_back(s);
    v.types.push_back(1);
  }
  // Spot checks of the table: space is "Ġ" (U+0120), newline "Ċ" (U+010A), 0xAD is U+0143.
  EXPECT_EQ(v.tokens[' '], "\xC4\xA0");
  EXPECT_EQ(v.tokens['\n'], "\xC4\x8A");
  EXPECT_EQ(v.tokens[0xAD], "\xC5\x83");
  auto tok = Must(GptFromGguf(v));
  ASSERT_NE(tok, nullptr);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text(rng() % 64, '\0');
    for (char& c : text) c = static_cast<char>(rng() & 0xFF);
    const Ids ids = tok->Encode(text, false);
    ASSERT_EQ(ids.size(), text.size());
    for (size_t i = 0; i < text.size(); ++i) EXPECT_EQ(ids[i], static_cast<uint8_t>(text[i]));
    EXPECT_EQ(tok->Decode(ids), text);
  }
  for (const std::string& text : TestTexts())
    EXPECT_EQ(tok->Decode(tok->Encode(text, false)), text);
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer scanners on hand-split text.

std::vector<std::string> Split(tokenizer_internal::PreTokenizer pre, std::string_view text) {
  std::vector<std::string_view> pieces;
  tokenizer_internal::PreTokenize(pre, text, &pieces);
  return std::vector<std::string>(pieces.begin(), pieces.end());
}

TEST(PreTokenize, HandSplitExamples) {
  using tokenizer_internal::PreTokenizer;
  const std::string text = "Hello  world's 1234 \n\n  x";
  using V = std::vector<std::string>;
  // GPT-2: "Hello" (\p{L}+); the run "  " before 'w' gives up its last space (\s+(?!\S)), which
  // starts " world"; "'s"; " 1234" ( ?\p{N}+); the run " \n\n  " before 'x' keeps all but the last
  // space, then " x".
  EXPECT_EQ(Split(PreTokenizer::kGpt2, text),
            (V{"Hello", " ", " world", "'s", " 1234", " \n\n ", " x"}));
  // SmolLM: digits alone first; the " " before '1' ends its stretch, so \s+(?!\S) takes it whole.
  EXPECT_EQ(Split(PreTokenizer::kGpt2Digits, text),
            (V{"Hello", " ", " world", "'s", " ", "1", "2", "3", "4", " \n\n ", " x"}));
  // Llama 3: " 1234" is no letter run and \p{N}{1,3} has no space: " " (\s+), "123", "4";
  // \s*[\r\n]+ stops at the last newline: " \n\n", then "  x" -> " " + " x".
  EXPECT_EQ(Split(PreTokenizer::kLlama3, text),
            (V{"Hello", " ", " world", "'s", " ", "123", "4", " \n\n", " ", " x"}));
  // Qwen2: the same with single digits.
  EXPECT_EQ(Split(PreTokenizer::kQwen2, text),
            (V{"Hello", " ", " world", "'s", " ", "1", "2", "3", "4", " \n\n", " ", " x"}));

  // Contractions are case-sensitive in GPT-2 ("'" alone is punctuation), not in Llama 3.
  EXPECT_EQ(Split(PreTokenizer::kGpt2, "I'LL"), (V{"I", "'", "LL"}));
  EXPECT_EQ(Split(PreTokenizer::kLlama3, "I'LL"), (V{"I", "'LL"}));
  // Llama 3 glues one leading non-letter onto a word and newlines onto punctuation.
  EXPECT_EQ(Split(PreTokenizer::kLlama3, "\"Hi\".\n\nok"), (V{"\"Hi", "\".\n\n", "ok"}));
  // GPT-2: the run "\n\n" before 'o' gives up its last newline, which \s+ then takes alone.
  EXPECT_EQ(Split(PreTokenizer::kGpt2, "\"Hi\".\n\nok"), (V{"\"", "Hi", "\".", "\n", "\n", "ok"}));
  // Letters and numbers beyond ASCII: "é" is \p{L}, "٣" (U+0663) is \p{N}, "😀" neither.
  EXPECT_EQ(Split(PreTokenizer::kGpt2, "café ٣٤ 😀x"), (V{"café", " ٣٤", " 😀", "x"}));
  EXPECT_EQ(Split(PreTokenizer::kGpt2, ""), V{});
}

TEST(PreTokenize, PiecesCoverArbitraryBytes) {
  using tokenizer_internal::PreTokenizer;
  std::mt19937 rng(11);
  for (auto pre : {PreTokenizer::kGpt2, PreTokenizer::kGpt2Digits, PreTokenizer::kLlama3,
                   PreTokenizer::kQwen2}) {
    for (int trial = 0; trial < 300; ++trial) {
      std::string text(rng() % 40, '\0');
      // Mostly ASCII letters, digits, spaces, newlines, quotes, plus random high bytes.
      const char kAlphabet[] = "ab Z9\n\r\t'.,\x80\xC3\xA9\xE2\x96\x81\xF0";
      for (char& c : text) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
      std::string joined;
      for (const std::string& p : Split(pre, text)) {
        EXPECT_FALSE(p.empty());
        joined += p;
      }
      EXPECT_EQ(joined, text);
    }
  }
}

TEST(PreTokenize, GgufNames) {
  using tokenizer_internal::PreTokenizer;
  using tokenizer_internal::PreTokenizerFromGgufName;
  EXPECT_EQ(PreTokenizerFromGgufName("smollm").value(), PreTokenizer::kGpt2Digits);
  EXPECT_EQ(PreTokenizerFromGgufName("gpt-2").value(), PreTokenizer::kGpt2);
  EXPECT_EQ(PreTokenizerFromGgufName("llama-bpe").value(), PreTokenizer::kLlama3);
  EXPECT_EQ(PreTokenizerFromGgufName("qwen2").value(), PreTokenizer::kQwen2);
  auto bad = PreTokenizerFromGgufName("deepseek-llm");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(bad.status().message(), "tokenizer.ggml.pre = 'deepseek-llm'"));
}

// ---------------------------------------------------------------------------------------------
// SmolLM2 (when scripts/fetch_models.sh has fetched it): round trips on the real vocabulary.

TEST(SmolLM2, RoundTripsAndChatMarkers) {
  if (!std::filesystem::exists(SmolLM2Path())) GTEST_SKIP() << "run scripts/fetch_models.sh";
  auto file = GgufFile::Open(SmolLM2Path());
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto tok = Must(TokenizerFromGguf(*file));
  ASSERT_NE(tok, nullptr);
  for (const std::string& text : TestTexts()) {
    if (text.find('\xff') != std::string::npos) continue;  // see below
    EXPECT_EQ(tok->Decode(tok->Encode(text, false)), text);
  }
  // The vocabulary has no stand-in for 21 bytes (0xC0, 0xC1, 0xF5..0xFF, which never occur in
  // UTF-8, and a few others such as 0x04, 0xF1): they become the unknown token, <|endoftext|> = 0.
  EXPECT_EQ(tok->Encode("\xff\xc0", false), (Ids{0, 0}));
  // Chat markers are single control tokens: <|im_start|> = 1, <|im_end|> = 2 in this vocabulary.
  const Ids ids = tok->Encode("<|im_start|>user\nhi<|im_end|>", false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(tok->piece(1), "<|im_start|>");
}

// ---------------------------------------------------------------------------------------------
// Malformed llama2.c files.

Status Llama2cError(const std::string& bytes, int32_t vocab_size = -1,
                    std::string* path_out = nullptr) {
  const std::string path = TempPath("bad.bin");
  WriteFile(path, bytes);
  auto r = TokenizerFromLlama2cFile(path, vocab_size);
  std::filesystem::remove(path);
  if (path_out) *path_out = path;
  EXPECT_FALSE(r.ok()) << "accepted a malformed file";
  return r.ok() ? Status::Ok() : r.status();
}

TEST(Llama2cMalformed, TruncationsNameTheTokenAndOffset) {
  LOWBIT_REQUIRE_FILE(Tok512Path());
  const std::vector<uint8_t> raw = ReadFileBytes(Tok512Path());
  const std::string good(raw.begin(), raw.end());
  std::string path;
  Status s = Llama2cError(good.substr(0, 2), -1, &path);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(s.message(), path)) << s.message();
  EXPECT_TRUE(Contains(s.message(), "max_token_length")) << s.message();
  // Record 0 is score, length 5, "<unk>": cut inside its header, then inside its text.
  s = Llama2cError(good.substr(0, 4 + 6));
  EXPECT_TRUE(Contains(s.message(), "token 0 at byte offset 4: truncated record header"))
      << s.message();
  s = Llama2cError(good.substr(0, 4 + 8 + 2));
  EXPECT_TRUE(Contains(s.message(), "token 0 at byte offset 4: truncated: 5 bytes")) << s.message();
  // Every cut that is not at a record boundary fails; with the vocabulary size every cut fails.
  for (size_t cut = 1; cut < good.size(); cut += 97) {
    auto r = [&] {
      const std::string p = TempPath("cut.bin");
      WriteFile(p, good.substr(0, cut));
      auto result = TokenizerFromLlama2cFile(p, 512);
      std::filesystem::remove(p);
      return result;
    }();
    EXPECT_FALSE(r.ok()) << "cut at " << cut;
  }
}

TEST(Llama2cMalformed, RandomCorruptionsDoNotCrash) {
  LOWBIT_REQUIRE_FILE(Tok512Path());
  const std::vector<uint8_t> raw = ReadFileBytes(Tok512Path());
  std::mt19937 rng(3);
  const std::string path = TempPath("corrupt.bin");
  int rejected = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes(raw.begin(), raw.end());
    for (int k = 0; k < 4; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng() & 0xFF);
    WriteFile(path, bytes);
    auto r = TokenizerFromLlama2cFile(path, 512);
    if (!r.ok()) {
      ++rejected;
      EXPECT_TRUE(Contains(r.status().message(), path)) << r.status().message();
      continue;
    }
    // Whatever loads must encode and decode without touching memory it does not own (ASan).
    const Ids ids = (*r)->Encode("Once upon a time, \xff there was 123.", true);
    for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < 512);
    (void)(*r)->Decode(ids);
  }
  std::filesystem::remove(path);
  EXPECT_GT(rejected, 0);  // some corruptions hit a length field
}

TEST(Llama2cMalformed, BadLengthsAndHeader) {
  const auto header = [](int32_t v) {
    std::string s(4, '\0');
    std::memcpy(s.data(), &v, 4);
    return s;
  };
  std::string s4(8, '\0');
  const float zero = 0.0f;
  const int32_t negative = -5;
  std::memcpy(s4.data(), &zero, 4);
  std::memcpy(s4.data() + 4, &negative, 4);
  Status s = Llama2cError(header(7) + s4 + "abc");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(s.message(), "token 0 at byte offset 4: length = -5")) << s.message();

  s = Llama2cError(header(std::numeric_limits<int32_t>::max()) + Llama2cRecord(0, "a"));
  EXPECT_TRUE(Contains(s.message(), "max_token_length = 2147483647 is not in [1, 65536]"))
      << s.message();
  s = Llama2cError(header(0) + Llama2cRecord(0, "a"));
  EXPECT_TRUE(Contains(s.message(), "max_token_length = 0")) << s.message();
  s = Llama2cError(header(-3));
  EXPECT_TRUE(Contains(s.message(), "max_token_length = -3")) << s.message();
  // A piece longer than the declared maximum (run.c sizes its buffers from it).
  s = Llama2cError(Llama2cFile(2, {{"<unk>", 0}}));
  EXPECT_TRUE(Contains(s.message(), "token 0 at byte offset 4: length = 5")) << s.message();
  s = Llama2cError(Llama2cFile(8, {{"<unk>", 0}, {"<s>", std::nanf("")}, {"</s>", 0}}));
  EXPECT_TRUE(Contains(s.message(), "score of token 1 is not finite")) << s.message();
  s = Llama2cError(Llama2cFile(8, {{"<unk>", 0}, {"<s>", 0}}));
  EXPECT_TRUE(Contains(s.message(), "holds 2 tokens")) << s.message();
}

TEST(Llama2cMalformed, VocabSizeMismatch) {
  LOWBIT_REQUIRE_FILE(Tok512Path());
  auto small = TokenizerFromLlama2cFile(Tok512Path(), 500);
  ASSERT_FALSE(small.ok());
  EXPECT_TRUE(Contains(small.status().message(), "unexpected bytes after the last of 500 tokens"))
      << small.status().message();
  auto large = TokenizerFromLlama2cFile(Tok512Path(), 600);
  ASSERT_FALSE(large.ok());
  EXPECT_TRUE(Contains(large.status().message(), "holds 512 tokens, the model's vocab_size is 600"))
      << large.status().message();
  auto missing = TokenizerFromLlama2cFile(TempPath("does_not_exist.bin"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------------------------
// Malformed GGUF tokenizer metadata.

struct SpmGgufFields {
  std::string model = "llama";
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>",
                                     "\xE2\x96\x81"
                                     "a"};
  std::vector<float> scores = {0, 0, 0, -1};
  std::vector<int32_t> types = {2, 3, 3, 1};
  int64_t bos = -1;  // -1: key absent
};

Result<std::unique_ptr<Tokenizer>> SpmFromGguf(const SpmGgufFields& f) {
  GgufWriter w;
  w.SetString("tokenizer.ggml.model", f.model);
  w.SetStringArray("tokenizer.ggml.tokens", f.tokens);
  w.SetFloat32Array("tokenizer.ggml.scores", f.scores);
  w.SetInt32Array("tokenizer.ggml.token_type", f.types);
  if (f.bos >= 0) w.SetUint32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(f.bos));
  auto bytes = w.Serialize();
  if (!bytes.ok()) return bytes.status();
  auto file = GgufFile::FromBytes(std::move(bytes).value(), "synthetic.gguf");
  if (!file.ok()) return file.status();
  return TokenizerFromGguf(*file);
}

void ExpectError(const Result<std::unique_ptr<Tokenizer>>& r, StatusCode code,
                 const std::string& fragment) {
  ASSERT_FALSE(r.ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_TRUE(Contains(r.status().message(), "synthetic.gguf")) << r.status().message();
  EXPECT_TRUE(Contains(r.status().message(), fragment)) << r.status().message();
}

TEST(GgufTokenizerMalformed, SpmFields) {
  auto ok = SpmFromGguf({});
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ((*ok)->Encode("a", true), (Ids{1, 3}));

  SpmGgufFields f;
  f.scores = {0, 0, 0};
  ExpectError(SpmFromGguf(f), StatusCode::kDataLoss,
              "tokenizer.ggml.scores has 3 entries but tokenizer.ggml.tokens has 4");
  f = {};
  f.types = {2, 3, 3, 1, 1};
  ExpectError(SpmFromGguf(f), StatusCode::kDataLoss,
              "tokenizer.ggml.token_type has 5 entries but tokenizer.ggml.tokens has 4");
  f = {};
  f.types = {2, 9, 3, 1};
  ExpectError(SpmFromGguf(f), StatusCode::kDataLoss, "tokenizer.ggml.token_type[1] = 9");
  f = {};
  f.scores = {0, 0, std::numeric_limits<float>::infinity(), 0};
  ExpectError(SpmFromGguf(f), StatusCode::kDataLoss, "score of token 2 is not finite");
  f = {};
  f.bos = 7;
  ExpectError(SpmFromGguf(f), StatusCode::kDataLoss,
              "tokenizer.ggml.bos_token_id = 7 is outside the vocabulary [0, 4)");
  f = {};
  f.model = "bert";
  ExpectError(SpmFromGguf(f), StatusCode::kUnimplemented, "tokenizer.ggml.model = 'bert'");
  f = {};
  f.tokens = {};
  f.scores = {};
  f.types = {};
  ExpectError(SpmFromGguf(f), StatusCode::kDataLoss, "tokenizer.ggml.tokens is empty");
}

TEST(GgufTokenizerMalformed, MissingKeysNameTheKey) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  auto file = GgufFile::FromBytes(std::move(w.Serialize()).value(), "synthetic.gguf");
  ASSERT_TRUE(file.ok());
  auto r = TokenizerFromGguf(*file);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "tokenizer.ggml.model")) << r.status().message();
}

TEST(GgufTokenizerMalformed, Gpt2Fields) {
  GptVocab v = TinyGpt({"a b"});
  v.pre = "default";
  ExpectError(GptFromGguf(v), StatusCode::kUnimplemented, "tokenizer.ggml.pre = 'default'");
  v = TinyGpt({"a b", "ab"});
  ExpectError(GptFromGguf(v), StatusCode::kDataLoss,
              "tokenizer.ggml.merges[1] = 'ab' is not 'left right'");
  v = TinyGpt({"a q"});
  ExpectError(GptFromGguf(v), StatusCode::kDataLoss,
              "tokenizer.ggml.merges[0] = 'a q': 'q' is not in the vocabulary");
  v = TinyGpt({"c a"});
  ExpectError(GptFromGguf(v), StatusCode::kDataLoss, "'ca' is not in the vocabulary");
  v = TinyGpt({});
  v.types.pop_back();
  ExpectError(GptFromGguf(v), StatusCode::kDataLoss, "tokenizer.ggml.token_type has 9 entries");
}

// ---------------------------------------------------------------------------------------------
// HF tokenizer.json.

std::string WriteJsonPair(const std::string& name, const std::string& tokenizer_json,
                          const std::string& config_json = "") {
  const std::string dir = TempPath(name);
  std::filesystem::create_directories(dir);
  WriteFile(dir + "/tokenizer.json", tokenizer_json);
  if (!config_json.empty()) WriteFile(dir + "/tokenizer_config.json", config_json);
  return dir + "/tokenizer.json";
}

std::string TinyHfJson(const std::string& model_type = "BPE",
                       const std::string& normalizer = "null",
                       const std::string& pre = R"({"type": "ByteLevel", "add_prefix_space": false,
                                                     "trim_offsets": true, "use_regex": true})",
                       const std::string& vocab = R"({"a": 0, "b": 1, "ab": 2, "Ġ": 3})") {
  return R"({"version": "1.0", "added_tokens": [{"id": 4, "content": "<s>", "special": true,
             "lstrip": false, "rstrip": false, "single_word": false, "normalized": false}],
             "normalizer": )" +
         normalizer + R"(, "pre_tokenizer": )" + pre + R"(,
             "decoder": {"type": "ByteLevel"},
             "model": {"type": ")" +
         model_type + R"(", "dropout": null, "unk_token": null,
                       "vocab": )" +
         vocab + R"(, "merges": ["a b"]}})";
}

TEST(HfJson, TinyTokenizerWithConfig) {
  const std::string path = WriteJsonPair(
      "hf_ok", TinyHfJson(),
      R"({"bos_token": "<s>", "eos_token": {"content": "<s>"}, "add_bos_token": true})");
  auto tok = Must(TokenizerFromHfJson(path));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->bos(), 4);
  EXPECT_EQ(tok->eos(), 4);
  EXPECT_TRUE(tok->add_bos_default());
  // "ab ab" -> "ab" " ab"; " ab" = Ġ a b -> Ġ ab.
  EXPECT_EQ(tok->Encode("ab ab", true), (Ids{4, 2, 3, 2}));
  EXPECT_EQ(tok->Encode("<s>ab", false), (Ids{4, 2}));
  EXPECT_EQ(tok->Decode(tok->Encode("ab ab<s>", true)), "<s>ab ab<s>");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(HfJson, UnsupportedAndMalformed) {
  struct Case {
    std::string json;
    StatusCode code;
    std::string fragment;
  };
  const Case kCases[] = {
      {"{not json", StatusCode::kDataLoss, "not valid JSON"},
      {R"({"model": 3})", StatusCode::kDataLoss, "no 'model' object"},
      {TinyHfJson("WordPiece"), StatusCode::kUnimplemented, "model.type = 'WordPiece'"},
      {TinyHfJson("BPE", R"({"type": "NFC"})"), StatusCode::kUnimplemented, "normalizer 'NFC'"},
      {TinyHfJson("BPE", "null", R"({"type": "Whitespace"})"), StatusCode::kUnimplemented,
       "pre_tokenizer"},
      {TinyHfJson("BPE", "null",
                  R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})"),
       StatusCode::kUnimplemented, "add_prefix_space = true"},
      {TinyHfJson("BPE", "null",
                  R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern":
                      {"Regex": "\\s+"}, "behavior": "Isolated", "invert": false},
                      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})"),
       StatusCode::kUnimplemented, "is not a supported pattern"},
      {TinyHfJson("BPE", "null",
                  R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})",
                  R"({"a": 0, "ab": 2, "Ġ": 3})"),
       StatusCode::kDataLoss, "token id 1 is missing"},
      {TinyHfJson("BPE", "null",
                  R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})",
                  R"({"a": 0, "b": "one", "ab": 2, "Ġ": 3})"),
       StatusCode::kDataLoss, "model.vocab['b'] is not a valid id"},
  };
  for (const Case& c : kCases) {
    const std::string path = WriteJsonPair("hf_bad", c.json);
    auto r = TokenizerFromHfJson(path);
    ASSERT_FALSE(r.ok()) << c.fragment;
    EXPECT_EQ(r.status().code(), c.code) << r.status().message();
    EXPECT_TRUE(Contains(r.status().message(), path)) << r.status().message();
    EXPECT_TRUE(Contains(r.status().message(), c.fragment)) << r.status().message();
    std::filesystem::remove_all(std::filesystem::path(path).parent_path());
  }
}

}  // namespace
}  // namespace lowbit
