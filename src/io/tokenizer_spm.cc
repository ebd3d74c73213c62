// SentencePiece-style BPE (llama, llama2.c): see docs/tokenizers.md.
//
// Encode(text):
//   1. Dummy prefix: prepend " " when add_space_prefix (llama2.c's run.c pushes the " " piece
//   first,
//      which is the same thing); if the vocabulary spells whitespace as U+2581 "▁" (sentencepiece,
//      GGUF) every ' ' becomes "▁", else (llama2.c's exported tok*.bin, plain spaces) text stays as
//      is.
//   2. One symbol per UTF-8 character (user-defined pieces, longest first, are single atomic
//   symbols).
//   3. Merge the adjacent pair whose concatenation is a normal/user-defined piece with the highest
//      score, the leftmost on ties, until none merges (tokenizer_merge.h).
//   4. A symbol that is no piece (a character outside the vocabulary) becomes its bytes' <0xNN>
//      tokens (byte fallback), or <unk> without byte tokens.
// This is run.c's encoder, and sentencepiece's BPE encoder with remove_extra_whitespaces=false:
// sentencepiece's default normalizer also strips leading/trailing spaces and collapses runs of
// spaces, which llama2.c and llama.cpp do not do (docs/tokenizers.md).
#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "io/tokenizer_internal.h"
#include "io/tokenizer_merge.h"
#include "io/tokenizer_unicode.h"

namespace lowbit::tokenizer_internal {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK "▁"

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// "<0xNN>" -> NN, or -1.
int ParseByteToken(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (char ch : piece.substr(3, 2)) {
    int digit;
    if (ch >= '0' && ch <= '9') {
      digit = ch - '0';
    } else if (ch >= 'A' && ch <= 'F') {
      digit = ch - 'A' + 10;
    } else if (ch >= 'a' && ch <= 'f') {
      digit = ch - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(SpmVocabData data)
      : source_(std::move(data.source)),
        scores_(std::move(data.scores)),
        unk_(data.unk),
        add_space_prefix_(data.add_space_prefix) {
    pieces_ = std::move(data.pieces);
    types_ = std::move(data.types);
    bos_ = data.bos;
    eos_ = data.eos;
    add_bos_default_ = data.add_bos;
    byte_ids_.fill(-1);
    for (int32_t id = 0; id < vocab_size(); ++id) {
      const std::string& p = pieces_[id];
      if (p.find(kSpmSpace) != std::string::npos) escape_spaces_ = true;
      const TokenType type = types_[id];
      if (type == TokenType::kByte || type == TokenType::kUndefined) {
        const int byte = ParseByteToken(p);
        if (byte >= 0 && byte_ids_[byte] < 0) byte_ids_[byte] = id;
        if (type == TokenType::kByte) continue;
      }
      if (type == TokenType::kNormal || type == TokenType::kUserDefined ||
          type == TokenType::kUndefined) {
        piece_to_id_.emplace(p, id);  // the first id wins for a duplicated piece
      }
      if (type == TokenType::kUserDefined && !p.empty()) {
        user_defined_.insert(p);
        max_user_defined_bytes_ = std::max(max_user_defined_bytes_, p.size());
        user_defined_first_byte_[static_cast<uint8_t>(p[0])] = true;
      }
    }
  }

  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> ids;
    if (add_bos && bos_ >= 0) ids.push_back(bos_);
    if (text.empty()) return ids;

    std::string work;
    work.reserve(text.size() * 2 + 3);
    if (add_space_prefix_) work.push_back(' ');
    work.append(text);
    if (escape_spaces_) work = EscapeSpaces(work);

    std::vector<MergeSymbol> symbols;
    symbols.reserve(work.size());
    for (size_t pos = 0; pos < work.size();) {
      MergeSymbol s;
      s.begin = static_cast<uint32_t>(pos);
      const size_t user_length = MatchUserDefined(work, pos);
      if (user_length > 0) {
        s.atomic = true;
        s.end = static_cast<uint32_t>(pos + user_length);
      } else {
        s.end = static_cast<uint32_t>(pos + Utf8CharLength(work, pos));
      }
      s.id = Lookup(std::string_view(work).substr(s.begin, s.end - s.begin));
      s.prev = static_cast<int32_t>(symbols.size()) - 1;
      s.next = static_cast<int32_t>(symbols.size()) + 1;
      symbols.push_back(s);
      pos = s.end;
    }
    symbols.back().next = -1;

    const std::string_view w(work);
    RunMerges(symbols,
              [&](const MergeSymbol& l, const MergeSymbol& r) -> std::optional<MergeCandidate> {
                const int32_t id = Lookup(w.substr(l.begin, r.end - l.begin));
                if (id < 0) return std::nullopt;
                return MergeCandidate{-static_cast<double>(scores_[id]), id};
              });

    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
      const MergeSymbol& s = symbols[i];
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      for (uint32_t k = s.begin; k < s.end; ++k) {
        const int32_t byte_id = byte_ids_[static_cast<uint8_t>(work[k])];
        if (byte_id >= 0) {
          ids.push_back(byte_id);
        } else if (unk_ >= 0) {
          // No byte fallback for this byte: one <unk> for the whole character.
          ids.push_back(unk_);
          break;
        }
      }
    }
    return ids;
  }

  std::string DecodeToken(int32_t prev, int32_t id) const override {
    if (id < 0 || id >= vocab_size()) return "";
    switch (types_[id]) {
      case TokenType::kControl:
        return "";
      case TokenType::kUnknown:
        return " \xE2\x81\x87 ";  // " ⁇ ", what sentencepiece decodes <unk> to
      case TokenType::kByte: {
        const int byte = ParseByteToken(pieces_[id]);
        if (byte >= 0) return std::string(1, static_cast<char>(byte));
        break;
      }
      default:
        break;
    }
    std::string text = escape_spaces_ ? UnescapeSpaces(pieces_[id]) : pieces_[id];
    if (add_space_prefix_ && (prev < 0 || prev == bos_) && !text.empty() && text[0] == ' ') {
      text.erase(0, 1);  // the dummy prefix Encode added
    }
    return text;
  }

  std::string_view kind() const override { return "spm"; }

  std::string Describe() const override {
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  "spm (sentencepiece-style BPE) from %s: %d tokens, bos=%d eos=%d unk=%d, "
                  "space prefix %s, whitespace %s",
                  source_.c_str(), vocab_size(), bos_, eos_, unk_, add_space_prefix_ ? "on" : "off",
                  escape_spaces_ ? "as U+2581" : "as ' '");
    return buf;
  }

 private:
  int32_t Lookup(std::string_view piece) const {
    const auto it = piece_to_id_.find(piece);
    return it == piece_to_id_.end() ? -1 : it->second;
  }

  // Longest user-defined piece starting at work[pos], 0 if none.
  size_t MatchUserDefined(const std::string& work, size_t pos) const {
    if (user_defined_.empty() || !user_defined_first_byte_[static_cast<uint8_t>(work[pos])])
      return 0;
    const std::string_view w(work);
    for (size_t length = std::min(max_user_defined_bytes_, work.size() - pos); length > 0;
         --length) {
      if (user_defined_.find(w.substr(pos, length)) != user_defined_.end()) return length;
    }
    return 0;
  }

  static std::string EscapeSpaces(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 16);
    for (char ch : s) {
      if (ch == ' ') {
        out.append(kSpmSpace);
      } else {
        out.push_back(ch);
      }
    }
    return out;
  }

  static std::string UnescapeSpaces(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t pos = 0; pos < s.size();) {
      if (s.substr(pos, kSpmSpace.size()) == kSpmSpace) {
        out.push_back(' ');
        pos += kSpmSpace.size();
      } else {
        out.push_back(s[pos++]);
      }
    }
    return out;
  }

  std::string source_;
  std::vector<float> scores_;  // (vocab_size)
  int32_t unk_;
  bool add_space_prefix_;
  bool escape_spaces_ = false;         // the vocabulary spells ' ' as U+2581
  std::array<int32_t, 256> byte_ids_;  // <0xNN> token of each byte, -1 if absent
  // Pieces that encoding may produce (normal and user-defined), by text.
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> piece_to_id_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> user_defined_;
  size_t max_user_defined_bytes_ = 0;
  std::array<bool, 256> user_defined_first_byte_{};
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> MakeSpmTokenizer(SpmVocabData data) {
  const size_t n = data.pieces.size();
  if (n == 0) return DataLoss(data.source + ": the tokenizer vocabulary is empty");
  if (n > static_cast<size_t>(INT32_MAX)) return DataLoss(data.source + ": vocabulary too large");
  if (data.scores.size() != n) {
    return DataLoss(data.source + ": " + std::to_string(data.scores.size()) + " scores for " +
                    std::to_string(n) + " tokens");
  }
  if (data.types.size() != n) {
    return DataLoss(data.source + ": " + std::to_string(data.types.size()) + " token types for " +
                    std::to_string(n) + " tokens");
  }
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(data.scores[i])) {
      return DataLoss(data.source + ": score of token " + std::to_string(i) + " is not finite");
    }
  }
  for (int32_t id : {data.bos, data.eos, data.unk}) {
    LOWBIT_CHECK(id >= -1 && id < static_cast<int64_t>(n));  // callers use CheckSpecialId
  }
  return std::unique_ptr<Tokenizer>(new SpmTokenizer(std::move(data)));
}

}  // namespace lowbit::tokenizer_internal
