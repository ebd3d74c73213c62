// Hand-written scanners for the byte-level BPE pre-tokenizer regexes (see tokenizer_pretokenize.h).
//
// Each Match* function returns the end of the regex match that starts at code point `i` of a
// stretch [0, n): the first alternative that matches wins, quantifiers are greedy and backtrack,
// and the end of the stretch counts as the end of the text (HF applies the regex to each stretch
// that earlier pre-tokenizers left, and llama.cpp does the same with its regex list). Every
// position is matched by some alternative, so the pieces cover the text exactly.
#include "io/tokenizer_pretokenize.h"

#include <algorithm>
#include <string>

#include "io/tokenizer_unicode.h"

namespace lowbit::tokenizer_internal {

const std::string_view kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const std::string_view kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace {

// Code points of a stretch with their byte offsets (offsets has n + 1 entries).
struct Codepoints {
  std::vector<uint32_t> cps;
  std::vector<size_t> offsets;
};

Codepoints Decode(std::string_view text) {
  Codepoints c;
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = Utf8CharLength(text, pos);
    c.cps.push_back(DecodeUtf8(text, pos, length));
    c.offsets.push_back(pos);
    pos += length;
  }
  c.offsets.push_back(text.size());
  return c;
}

// [^\s\p{L}\p{N}]
bool IsOther(uint32_t cp) { return !IsWhitespace(cp) && !IsLetter(cp) && !IsNumber(cp); }
bool IsNewline(uint32_t cp) { return cp == '\r' || cp == '\n'; }
uint32_t AsciiLower(uint32_t cp) { return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp; }

template <class Pred>
size_t RunEnd(const std::vector<uint32_t>& cps, size_t i, size_t n, Pred pred) {
  while (i < n && pred(cps[i])) ++i;
  return i;
}

// 's|'t|'re|'ve|'m|'ll|'d at i (optionally case-insensitive); returns the end or 0.
size_t MatchContraction(const std::vector<uint32_t>& cps, size_t i, size_t n, bool ignore_case) {
  if (cps[i] != '\'' || i + 1 >= n) return 0;
  const auto at = [&](size_t k) { return ignore_case ? AsciiLower(cps[k]) : cps[k]; };
  const uint32_t c1 = at(i + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
  if (i + 2 < n) {
    const uint32_t c2 = at(i + 2);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
      return i + 3;
    }
  }
  return 0;
}

// The three whitespace alternatives shared by both patterns, after the earlier ones failed at a
// whitespace code point i: \s+(?!\S) takes the whole run at the end of the stretch, else the run
// minus its last character (which then starts the next piece, e.g. " word"); a single whitespace
// before non-space falls through to \s+.
size_t MatchWhitespaceTail(const std::vector<uint32_t>& cps, size_t i, size_t n) {
  const size_t run_end = RunEnd(cps, i, n, IsWhitespace);
  if (run_end == n) return n;
  if (run_end - i >= 2) return run_end - 1;
  return run_end;
}

size_t MatchGpt2(const std::vector<uint32_t>& cps, size_t i, size_t n) {
  if (size_t end = MatchContraction(cps, i, n, /*ignore_case=*/false)) return end;
  const uint32_t c = cps[i];
  const bool space_then = (c == ' ' && i + 1 < n);
  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
  for (bool (*cls)(uint32_t) : {&IsLetter, &IsNumber, &IsOther}) {
    if (cls(c)) return RunEnd(cps, i, n, cls);
    if (space_then && cls(cps[i + 1])) return RunEnd(cps, i + 1, n, cls);
  }
  return MatchWhitespaceTail(cps, i, n);  // c is whitespace here
}

size_t MatchLlama3(const std::vector<uint32_t>& cps, size_t i, size_t n, size_t max_digits) {
  if (size_t end = MatchContraction(cps, i, n, /*ignore_case=*/true)) return end;
  const uint32_t c = cps[i];
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (IsLetter(c)) return RunEnd(cps, i, n, IsLetter);
  if (!IsNewline(c) && !IsNumber(c) && i + 1 < n && IsLetter(cps[i + 1])) {
    return RunEnd(cps, i + 1, n, IsLetter);
  }
  // \p{N}{1,3} (or \p{N})
  if (IsNumber(c)) {
    size_t end = i;
    while (end < n && end - i < max_digits && IsNumber(cps[end])) ++end;
    return end;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  size_t start = i;
  if (c == ' ' && i + 1 < n && IsOther(cps[i + 1])) start = i + 1;
  if (IsOther(cps[start])) {
    return RunEnd(cps, RunEnd(cps, start, n, IsOther), n, IsNewline);
  }
  // \s*[\r\n]+ : greedy \s* backs off to the last newline of the whitespace run.
  const size_t run_end = RunEnd(cps, i, n, IsWhitespace);
  for (size_t k = run_end; k > i; --k) {
    if (IsNewline(cps[k - 1])) return k;
  }
  return MatchWhitespaceTail(cps, i, n);
}

void ScanStretch(PreTokenizer pre, std::string_view text, size_t begin_byte, size_t end_byte,
                 std::vector<std::string_view>* pieces) {
  if (begin_byte == end_byte) return;
  const std::string_view stretch = text.substr(begin_byte, end_byte - begin_byte);
  const Codepoints c = Decode(stretch);
  const size_t n = c.cps.size();
  for (size_t i = 0; i < n;) {
    size_t end;
    switch (pre) {
      case PreTokenizer::kLlama3:
        end = MatchLlama3(c.cps, i, n, 3);
        break;
      case PreTokenizer::kQwen2:
        end = MatchLlama3(c.cps, i, n, 1);
        break;
      default:
        end = MatchGpt2(c.cps, i, n);
        break;
    }
    pieces->push_back(stretch.substr(c.offsets[i], c.offsets[end] - c.offsets[i]));
    i = end;
  }
}

}  // namespace

Result<PreTokenizer> PreTokenizerFromGgufName(std::string_view name) {
  static constexpr std::pair<std::string_view, PreTokenizer> kNames[] = {
      {"gpt-2", PreTokenizer::kGpt2},           {"smollm", PreTokenizer::kGpt2Digits},
      {"starcoder", PreTokenizer::kGpt2Digits}, {"refact", PreTokenizer::kGpt2Digits},
      {"llama-bpe", PreTokenizer::kLlama3},     {"llama3", PreTokenizer::kLlama3},
      {"qwen2", PreTokenizer::kQwen2},
  };
  for (const auto& [n, p] : kNames) {
    if (n == name) return p;
  }
  return Unimplemented("tokenizer.ggml.pre = '" + std::string(name) +
                       "' is not supported (supported: gpt-2, smollm, starcoder, refact, "
                       "llama-bpe, llama3, qwen2; see docs/tokenizers.md)");
}

std::string_view PreTokenizerName(PreTokenizer pre) {
  switch (pre) {
    case PreTokenizer::kGpt2:
      return "gpt-2";
    case PreTokenizer::kGpt2Digits:
      return "gpt-2+digits";
    case PreTokenizer::kLlama3:
      return "llama3";
    case PreTokenizer::kQwen2:
      return "qwen2";
  }
  return "?";
}

void PreTokenize(PreTokenizer pre, std::string_view text, std::vector<std::string_view>* pieces) {
  if (pre != PreTokenizer::kGpt2Digits) {
    ScanStretch(pre, text, 0, text.size(), pieces);
    return;
  }
  // Every \p{N} character is its own piece; the GPT-2 pattern runs on the stretches between.
  size_t stretch_begin = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = Utf8CharLength(text, pos);
    if (IsNumber(DecodeUtf8(text, pos, length))) {
      ScanStretch(pre, text, stretch_begin, pos, pieces);
      pieces->push_back(text.substr(pos, length));
      stretch_begin = pos + length;
    }
    pos += length;
  }
  ScanStretch(pre, text, stretch_begin, text.size(), pieces);
}

}  // namespace lowbit::tokenizer_internal
