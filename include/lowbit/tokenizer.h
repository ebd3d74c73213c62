// Tokenizers: text <-> token ids for the models lowbit runs, read from the model's own files.
//
// Two algorithms, both "merge the best adjacent pair until no pair merges" with ties going to the
// leftmost pair (docs/tokenizers.md has the details and the references they are tested against):
//   - SentencePiece-style BPE (GGUF tokenizer.ggml.model == "llama", llama2.c tokenizer .bin):
//     dummy-prefix space, one symbol per UTF-8 character, merges ranked by the merged piece's
//     score, leftover characters fall back to <0xNN> byte tokens. Matches llama2.c's run.c encoder
//     and sentencepiece with remove_extra_whitespaces=false.
//   - GPT-2 byte-level BPE (GGUF tokenizer.ggml.model == "gpt2", HF tokenizer.json with model.type
//     "BPE"): added/special tokens are matched first, the rest is split by the model's
//     pre-tokenizer (GPT-2, SmolLM/StarCoder, Llama 3 or Qwen2 splitting), bytes are mapped to
//     GPT-2's printable alphabet and merged by merge rank. Matches HF `tokenizers`.
//
// Thread safety: a Tokenizer is immutable after construction; Encode/DecodeToken may run
// concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

class GgufFile;  // lowbit/gguf.h

// Per-token kinds, with the numeric values GGUF's tokenizer.ggml.token_type array uses.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // BOS/EOS/chat markers: decode to "", never produced by merges
  kUserDefined = 4,  // matched verbatim in the input before merging; decodes to its text
  kUnused = 5,
  kByte = 6,  // "<0xNN>": one raw byte (SentencePiece byte fallback)
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text` (any bytes; invalid UTF-8 is carried through byte tokens), preceded by
  // bos() when add_bos is true and the vocabulary has a BOS token.
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_bos) const = 0;

  // The text token `id` adds when it follows token `prev` (prev < 0: first token of the text), for
  // streaming output. Byte tokens give their single (possibly partial UTF-8) byte. Control tokens
  // give "" in SentencePiece vocabularies (as sentencepiece decodes them) and their text in
  // byte-level BPE ones (where Encode matches them in the input). SentencePiece drops the
  // dummy-prefix space of the first token (prev < 0 or prev == bos()). Ids outside
  // [0, vocab_size()) give "".
  virtual std::string DecodeToken(int32_t prev, int32_t id) const = 0;

  // Concatenated DecodeToken over `ids`, so Decode(Encode(x, b)) == x for every input x.
  std::string Decode(std::span<const int32_t> ids) const;

  int32_t bos() const { return bos_; }  // -1 when the vocabulary has none
  int32_t eos() const { return eos_; }  // -1 when the vocabulary has none
  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  // Whether the model expects BOS in front of a prompt (GGUF tokenizer.ggml.add_bos_token).
  bool add_bos_default() const { return add_bos_default_; }

  // The vocabulary entry as stored in the file (SentencePiece "▁" or GPT-2 "Ġ" spellings included).
  const std::string& piece(int32_t id) const { return pieces_[id]; }
  TokenType token_type(int32_t id) const { return types_[id]; }
  // "spm" or "bpe", and a one-line summary for logs ("bpe (gpt2, pre=smollm), 49152 tokens, ...").
  virtual std::string_view kind() const = 0;
  virtual std::string Describe() const = 0;

 protected:
  std::vector<std::string> pieces_;  // (vocab_size)
  std::vector<TokenType> types_;     // (vocab_size)
  int32_t bos_ = -1;
  int32_t eos_ = -1;
  bool add_bos_default_ = false;
};

// From GGUF metadata: tokenizer.ggml.model "llama" (SentencePiece BPE) or "gpt2" (byte-level BPE),
// tokens, scores / merges, token_type, bos/eos/unknown ids, add_bos_token, add_space_prefix, pre.
// Unsupported models or pre-tokenizers and inconsistent arrays give a Status naming the key.
Result<std::unique_ptr<Tokenizer>> TokenizerFromGguf(const GgufFile& gguf);

// From a llama2.c tokenizer file: int32 max_token_length, then per token f32 score, int32 length,
// bytes. The file does not store the vocabulary size: pass the model's to check it (-1: read to
// EOF). Ids 0/1/2 are <unk>/BOS/EOS (llama2.c's convention); BOS is added by default.
Result<std::unique_ptr<Tokenizer>> TokenizerFromLlama2cFile(const std::string& path,
                                                            int32_t vocab_size = -1);
// Same, over the file's bytes in memory (tests, fuzzing); `name` stands for the file in messages.
Result<std::unique_ptr<Tokenizer>> TokenizerFromLlama2cBytes(std::string_view bytes,
                                                             const std::string& name,
                                                             int32_t vocab_size = -1);

// From a Hugging Face tokenizer.json with model.type "BPE" and a byte-level pre-tokenizer (see
// docs/tokenizers.md for the accepted pipelines). BOS/EOS come from a tokenizer_config.json next to
// it when present (bos_token, eos_token, add_bos_token), else they are -1.
Result<std::unique_ptr<Tokenizer>> TokenizerFromHfJson(const std::string& path);
// Same, over texts in memory (tests, fuzzing): tokenizer.json and tokenizer_config.json (empty:
// none); `name` stands for the tokenizer.json file in messages.
Result<std::unique_ptr<Tokenizer>> TokenizerFromHfJsonText(std::string_view tokenizer_json,
                                                           std::string_view tokenizer_config_json,
                                                           const std::string& name);

}  // namespace lowbit
