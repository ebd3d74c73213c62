// Shared pieces of the libFuzzer targets in fuzz/ (one target per parser; see scripts/fuzz.sh and
// docs/hardening.md). Every target feeds the fuzz input to the same public entry point that reads
// files, and checks the parser's promises:
//   - malformed input gives a non-OK Status with a message (never a crash, an out-of-bounds read,
//     a hang or an allocation the input cannot justify: ASan, UBSan and libFuzzer's -rss_limit_mb /
//     -malloc_limit_mb catch those);
//   - accepted input satisfies the invariants the rest of lowbit relies on (checked with
//     FUZZ_CHECK, which aborts so libFuzzer saves the input).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/model.h"
#include "lowbit/status.h"
#include "lowbit/tokenizer.h"

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

namespace lowbit::fuzz {

// A rejected input must say why.
inline void CheckError(const Status& status) {
  FUZZ_CHECK(!status.ok());
  FUZZ_CHECK(!status.message().empty());
}

// Texts every tokenizer target encodes: ASCII, spaces, digits, multi-byte UTF-8, invalid UTF-8,
// control bytes, and markup that looks like special tokens.
inline const std::vector<std::string_view>& SampleTexts() {
  static constexpr char kBytes[] = "\xFF\xFE\x80 \xC3 \xE2\x96 \x00\x01\t\r\n";
  static const std::vector<std::string_view> kTexts = {
      "",
      "Hello world",
      "  Once upon a time, there was 1 little cat 12345.\n\n",
      "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80",
      std::string_view(kBytes, sizeof(kBytes) - 1),
      "<s></s><|endoftext|><unk><0x41>",
  };
  return kTexts;
}

// Encodes SampleTexts() plus `extra` and checks that every id is in the vocabulary, then decodes.
inline void ExerciseTokenizer(const Tokenizer& tok, std::string_view extra) {
  FUZZ_CHECK(tok.vocab_size() > 0);
  FUZZ_CHECK(tok.bos() >= -1 && tok.bos() < tok.vocab_size());
  FUZZ_CHECK(tok.eos() >= -1 && tok.eos() < tok.vocab_size());
  std::vector<std::string_view> texts = SampleTexts();
  texts.push_back(extra);
  for (std::string_view text : texts) {
    for (bool add_bos : {false, true}) {
      const std::vector<int32_t> ids = tok.Encode(text, add_bos);
      for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
      (void)tok.Decode(ids);
    }
  }
  (void)tok.DecodeToken(-1, -5);
  (void)tok.DecodeToken(0, tok.vocab_size());
  (void)tok.Describe();
}

// Loads that succeed: run one token through a small session when the model is small, so weights a
// file can smuggle in (NaN, Inf, huge values) go through the forward pass too.
inline void ExerciseModel(const LlamaModel& model) {
  const LlamaConfig& c = model.config;
  FUZZ_CHECK(c.Validate().ok());
  if (model.WeightCount() > (int64_t{1} << 18) || c.n_layers > 64) return;
  SessionOptions options;
  options.max_tokens = 2;
  options.n_threads = 1;
  LlamaSession session(model, options);
  std::vector<float> logits;
  const int32_t tokens[2] = {0, static_cast<int32_t>(c.vocab_size - 1)};
  const Status st = session.Forward(std::span<const int32_t>(tokens, 2), 1, &logits);
  FUZZ_CHECK(st.ok());
  FUZZ_CHECK(static_cast<int64_t>(logits.size()) == c.vocab_size);
}

}  // namespace lowbit::fuzz
