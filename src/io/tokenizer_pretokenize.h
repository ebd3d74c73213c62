// Pre-tokenizers of the byte-level BPE tokenizers: split text into the pieces that BPE merges
// inside (merges never cross a piece boundary). Each is a hand-written scanner equivalent to the
// model's regex under leftmost, first-alternative-wins matching (Oniguruma / PCRE semantics,
// lookahead included), so no regex engine is needed. Classes: \p{L}, \p{N}, \s as in
// tokenizer_unicode.h.
#pragma once

#include <string_view>
#include <vector>

#include "lowbit/status.h"

namespace lowbit::tokenizer_internal {

enum class PreTokenizer {
  // GPT-2 (HF ByteLevel with use_regex):
  //   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // SmolLM / StarCoder: every \p{N} character alone (HF Digits(individual_digits=true)), then the
  // GPT-2 pattern on each stretch between them.
  kGpt2Digits,
  // Llama 3 (tiktoken cl100k-style):
  //   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
  //   |\s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,
  // Qwen2: the Llama 3 pattern with \p{N} (single digits) in place of \p{N}{1,3}.
  kQwen2,
};

// Maps GGUF tokenizer.ggml.pre values to a scanner; the accepted names are listed in
// docs/tokenizers.md. Anything else is kUnimplemented naming the value.
Result<PreTokenizer> PreTokenizerFromGgufName(std::string_view name);
std::string_view PreTokenizerName(PreTokenizer pre);

// The two regexes of HF tokenizer.json Split pre-tokenizers that map onto kLlama3 / kQwen2.
extern const std::string_view kLlama3Pattern;
extern const std::string_view kQwen2Pattern;

// Appends the pieces of `text` (views into it, in order, covering it exactly) to *pieces.
void PreTokenize(PreTokenizer pre, std::string_view text, std::vector<std::string_view>* pieces);

}  // namespace lowbit::tokenizer_internal
