// Tokenizers from GGUF metadata (llama.cpp's convert_hf_to_gguf.py layout):
//   tokenizer.ggml.model        "llama" (SentencePiece BPE) | "gpt2" (byte-level BPE)
//   tokenizer.ggml.tokens       string[n_vocab]
//   tokenizer.ggml.scores       float32[n_vocab]   (llama; absent: all 0)
//   tokenizer.ggml.token_type   int32[n_vocab]     (TokenType values; absent: all normal)
//   tokenizer.ggml.merges       string[n_merges]   (gpt2: "left right", rank = index)
//   tokenizer.ggml.pre          string             (gpt2: the pre-tokenizer, see
//   tokenizer_pretokenize) tokenizer.ggml.{bos,eos,unknown}_token_id      uint32 (0xFFFFFFFF: none)
//   tokenizer.ggml.add_bos_token, tokenizer.ggml.add_space_prefix   bool
// Defaults for absent keys follow llama.cpp: llama has BOS 1, EOS 2, <unk> 0, adds BOS and the
// space prefix; gpt2 has no BOS/EOS/<unk> and adds nothing.
#include <string>

#include "io/tokenizer_internal.h"
#include "lowbit/gguf.h"
#include "lowbit/tokenizer.h"

namespace lowbit {
namespace {

using tokenizer_internal::CheckSpecialId;

constexpr std::string_view kTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kScores = "tokenizer.ggml.scores";
constexpr std::string_view kTokenType = "tokenizer.ggml.token_type";
constexpr std::string_view kMerges = "tokenizer.ggml.merges";

std::string LengthMismatch(const GgufFile& gguf, std::string_view field, size_t n, size_t n_vocab) {
  return gguf.path() + ": " + std::string(field) + " has " + std::to_string(n) + " entries but " +
         std::string(kTokens) + " has " + std::to_string(n_vocab);
}

Result<std::vector<TokenType>> ReadTokenTypes(const GgufFile& gguf, size_t n_vocab,
                                              TokenType absent) {
  if (gguf.Find(kTokenType) == nullptr) return std::vector<TokenType>(n_vocab, absent);
  LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> raw, gguf.GetIntArray(kTokenType));
  if (raw.size() != n_vocab) return DataLoss(LengthMismatch(gguf, kTokenType, raw.size(), n_vocab));
  std::vector<TokenType> types(n_vocab);
  for (size_t i = 0; i < n_vocab; ++i) {
    if (raw[i] < 0 || raw[i] > static_cast<int64_t>(TokenType::kByte)) {
      return DataLoss(gguf.path() + ": " + std::string(kTokenType) + "[" + std::to_string(i) +
                      "] = " + std::to_string(raw[i]) + " is not a token type (0..6)");
    }
    types[i] = static_cast<TokenType>(raw[i]);
  }
  return types;
}

// A special-token id key: `fallback` when absent, -1 for GGUF's "none" (0xFFFFFFFF).
Status ReadSpecialId(const GgufFile& gguf, const std::string& key, int64_t fallback, size_t n_vocab,
                     int32_t* out) {
  LOWBIT_ASSIGN_OR_RETURN(int64_t id, gguf.GetIntOr(key, fallback));
  if (id == 0xFFFFFFFFll) id = -1;
  return CheckSpecialId(gguf.path(), key, id, n_vocab, out);
}

Result<bool> ReadBool(const GgufFile& gguf, std::string_view key, bool fallback) {
  if (gguf.Find(key) == nullptr) return fallback;
  return gguf.GetBool(key);
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> TokenizerFromGguf(const GgufFile& gguf) {
  LOWBIT_ASSIGN_OR_RETURN(std::string model, gguf.GetString("tokenizer.ggml.model"));
  LOWBIT_ASSIGN_OR_RETURN(std::span<const std::string> tokens, gguf.GetStringArray(kTokens));
  const size_t n = tokens.size();
  if (n == 0) return DataLoss(gguf.path() + ": " + std::string(kTokens) + " is empty");

  if (model == "llama") {
    tokenizer_internal::SpmVocabData data;
    data.source = gguf.path();
    data.pieces.assign(tokens.begin(), tokens.end());
    if (gguf.Find(kScores) != nullptr) {
      LOWBIT_ASSIGN_OR_RETURN(data.scores, gguf.GetFloatArray(kScores));
      if (data.scores.size() != n)
        return DataLoss(LengthMismatch(gguf, kScores, data.scores.size(), n));
    } else {
      data.scores.assign(n, 0.0f);
    }
    LOWBIT_ASSIGN_OR_RETURN(data.types, ReadTokenTypes(gguf, n, TokenType::kUndefined));
    LOWBIT_RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.bos_token_id", 1, n, &data.bos));
    LOWBIT_RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.eos_token_id", 2, n, &data.eos));
    LOWBIT_RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.unknown_token_id", 0, n, &data.unk));
    LOWBIT_ASSIGN_OR_RETURN(data.add_bos, ReadBool(gguf, "tokenizer.ggml.add_bos_token", true));
    LOWBIT_ASSIGN_OR_RETURN(data.add_space_prefix,
                            ReadBool(gguf, "tokenizer.ggml.add_space_prefix", true));
    return tokenizer_internal::MakeSpmTokenizer(std::move(data));
  }

  if (model == "gpt2") {
    tokenizer_internal::BpeVocabData data;
    data.source = gguf.path();
    data.pieces.assign(tokens.begin(), tokens.end());
    LOWBIT_ASSIGN_OR_RETURN(data.types, ReadTokenTypes(gguf, n, TokenType::kNormal));
    LOWBIT_ASSIGN_OR_RETURN(std::span<const std::string> merges, gguf.GetStringArray(kMerges));
    data.merges_field = std::string(kMerges);
    data.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      // The left part may itself start with a space in non-byte-level vocabularies: split at the
      // first space after the first character.
      const size_t space = merges[i].size() > 1 ? merges[i].find(' ', 1) : std::string::npos;
      if (space == std::string::npos) {
        return DataLoss(gguf.path() + ": " + std::string(kMerges) + "[" + std::to_string(i) +
                        "] = '" + merges[i] + "' is not 'left right'");
      }
      data.merges.emplace_back(merges[i].substr(0, space), merges[i].substr(space + 1));
    }
    LOWBIT_ASSIGN_OR_RETURN(data.pre_name, gguf.GetStringOr("tokenizer.ggml.pre", "default"));
    auto pre = tokenizer_internal::PreTokenizerFromGgufName(data.pre_name);
    if (!pre.ok()) return Status(pre.status().code(), gguf.path() + ": " + pre.status().message());
    data.pre = pre.value();
    // llama.cpp skips merges for pieces that are whole tokens with the Llama 3 pre-tokenizer,
    // as HF's tokenizer.json for Llama 3 does with model.ignore_merges.
    data.ignore_merges = data.pre == tokenizer_internal::PreTokenizer::kLlama3;
    LOWBIT_RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.bos_token_id", -1, n, &data.bos));
    LOWBIT_RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.eos_token_id", -1, n, &data.eos));
    LOWBIT_RETURN_IF_ERROR(
        ReadSpecialId(gguf, "tokenizer.ggml.unknown_token_id", -1, n, &data.unk));
    LOWBIT_ASSIGN_OR_RETURN(data.add_bos, ReadBool(gguf, "tokenizer.ggml.add_bos_token", false));
    return tokenizer_internal::MakeBpeTokenizer(std::move(data));
  }

  return Unimplemented(gguf.path() + ": tokenizer.ggml.model = '" + model +
                       "' is not supported (supported: llama, gpt2)");
}

}  // namespace lowbit
