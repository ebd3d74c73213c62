// Construction of the two tokenizer kinds from vocabulary data that the file readers
// (tokenizer_gguf.cc, tokenizer_llama2c.cc, tokenizer_hf_json.cc) have parsed. The constructors
// validate the data (sizes, id ranges, merges) and name `source` (file and field) in their errors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/tokenizer_pretokenize.h"
#include "lowbit/status.h"
#include "lowbit/tokenizer.h"

namespace lowbit::tokenizer_internal {

struct SpmVocabData {
  std::string source;               // e.g. "model.gguf" or "tok512.bin", for messages
  std::vector<std::string> pieces;  // (n_vocab) UTF-8, whitespace as U+2581 or as plain ' '
  std::vector<float> scores;        // (n_vocab) higher merges first
  std::vector<TokenType> types;     // (n_vocab)
  int32_t bos = -1, eos = -1, unk = -1;
  bool add_bos = true;
  bool add_space_prefix = true;
};
Result<std::unique_ptr<Tokenizer>> MakeSpmTokenizer(SpmVocabData data);

struct BpeVocabData {
  std::string source;
  std::vector<std::string> pieces;  // (n_vocab) byte-level alphabet ("Ġ" for space)
  std::vector<TokenType> types;     // (n_vocab); kControl / kUserDefined are matched verbatim
  std::vector<std::pair<std::string, std::string>> merges;  // (n_merges) rank = index
  std::string merges_field;                                 // name of the merges field for messages
  PreTokenizer pre = PreTokenizer::kGpt2;
  std::string pre_name;        // as the file spells it
  bool ignore_merges = false;  // a pre-token that is itself a token is emitted whole (Llama 3)
  // Added tokens whose neighbouring whitespace is absorbed into the match (HF lstrip / rstrip).
  std::vector<int32_t> lstrip_ids, rstrip_ids;
  int32_t bos = -1, eos = -1, unk = -1;
  bool add_bos = false;
};
Result<std::unique_ptr<Tokenizer>> MakeBpeTokenizer(BpeVocabData data);

// Checks a special-token id read from `field`: -1 stays -1 (absent), anything outside
// [0, n_vocab) is an error naming the field.
Status CheckSpecialId(const std::string& source, const std::string& field, int64_t id,
                      size_t n_vocab, int32_t* out);

}  // namespace lowbit::tokenizer_internal
