// Unicode helpers for the tokenizers: UTF-8 stepping, the \p{L} / \p{N} / \s classes the
// pre-tokenizer regexes use, and GPT-2's byte <-> printable-character alphabet.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::tokenizer_internal {

// Byte length of the UTF-8 character starting at text[pos]: 1..4 for a well-formed sequence, and 1
// for a stray continuation byte, a bad lead byte, an overlong/surrogate/out-of-range form, or a
// sequence cut short by the end of the text (so every byte string splits into "characters").
size_t Utf8CharLength(std::string_view text, size_t pos);

// Code point of the character at text[pos] (length from Utf8CharLength); a malformed single byte
// decodes to kInvalidCodepoint, which belongs to no class below ("other" for the regexes).
constexpr uint32_t kInvalidCodepoint = 0xFFFFFFFFu;
uint32_t DecodeUtf8(std::string_view text, size_t pos, size_t length);

// Appends the UTF-8 encoding of `cp` (cp <= 0x10FFFF).
void AppendUtf8(uint32_t cp, std::string* out);

bool IsLetter(uint32_t cp);      // \p{L}: general categories Lu, Ll, Lt, Lm, Lo
bool IsNumber(uint32_t cp);      // \p{N}: Nd, Nl, No
bool IsWhitespace(uint32_t cp);  // \s: the Unicode White_Space property

// GPT-2's bytes_to_unicode (openai/gpt-2 src/encoder.py): the printable bytes '!'..'~', 0xA1..0xAC
// and 0xAE..0xFF stand for themselves; the other 68 bytes, in increasing order, become U+0100,
// U+0101, ... so that every byte has a visible, non-space stand-in ("Ġ" = U+0120 is the space).
struct ByteLevelAlphabet {
  std::array<std::string, 256> byte_to_utf8;   // UTF-8 of each byte's stand-in
  std::array<int32_t, 324> codepoint_to_byte;  // inverse over U+0000..U+0143; -1 elsewhere
};
const ByteLevelAlphabet& GetByteLevelAlphabet();

// Maps a byte-level string back to bytes; characters outside the alphabet are copied as UTF-8.
std::string ByteLevelDecode(std::string_view text);

}  // namespace lowbit::tokenizer_internal
