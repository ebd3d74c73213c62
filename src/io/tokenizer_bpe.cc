// GPT-2 byte-level BPE (GGUF "gpt2", HF tokenizer.json BPE): see docs/tokenizers.md.
//
// Encode(text):
//   1. Added tokens (GGUF token_type control / user-defined, HF added_tokens) are found first,
//      leftmost-longest, and emitted as their ids; BPE never sees them.
//   2. Each stretch between them is split by the pre-tokenizer (tokenizer_pretokenize.h).
//   3. Each piece's bytes become GPT-2's printable stand-ins, one symbol per byte; with
//      ignore_merges a piece that is itself a token is emitted whole (HF `ignore_merges`, Llama 3).
//   4. Adjacent symbols merge by the rank of their pair in the merges list (lowest first, leftmost
//      on ties) until no listed pair is adjacent (tokenizer_merge.h).
// Decoding maps the stand-ins back to bytes (GPT-2 encoder.py's byte_decoder).
#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <string>
#include <unordered_map>

#include "io/tokenizer_internal.h"
#include "io/tokenizer_merge.h"
#include "io/tokenizer_unicode.h"

namespace lowbit::tokenizer_internal {
namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

struct MergeRule {
  int32_t rank;
  int32_t result;  // id of left + right
};

struct AddedToken {
  std::string text;
  int32_t id;
  bool lstrip, rstrip;
};

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpeVocabData data, TokenMap token_to_id,
               std::unordered_map<uint64_t, MergeRule> merges, std::vector<AddedToken> added)
      : source_(std::move(data.source)),
        pre_(data.pre),
        pre_name_(std::move(data.pre_name)),
        ignore_merges_(data.ignore_merges),
        unk_(data.unk),
        token_to_id_(std::move(token_to_id)),
        merges_(std::move(merges)),
        added_(std::move(added)) {
    pieces_ = std::move(data.pieces);
    types_ = std::move(data.types);
    bos_ = data.bos;
    eos_ = data.eos;
    add_bos_default_ = data.add_bos;
    const ByteLevelAlphabet& alphabet = GetByteLevelAlphabet();
    for (int b = 0; b < 256; ++b) {
      const auto it = token_to_id_.find(alphabet.byte_to_utf8[b]);
      byte_ids_[b] = it == token_to_id_.end() ? -1 : it->second;
    }
    // Longest first, so the first hit at a position is the leftmost-longest match.
    std::stable_sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
      return a.text.size() > b.text.size();
    });
    for (const AddedToken& t : added_) added_first_byte_[static_cast<uint8_t>(t.text[0])] = true;
  }

  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> ids;
    if (add_bos && bos_ >= 0) ids.push_back(bos_);
    std::vector<std::string_view> pieces;
    size_t stretch_begin = 0;
    for (size_t pos = 0; pos < text.size();) {
      const AddedToken* hit = MatchAdded(text, pos);
      if (hit == nullptr) {
        ++pos;
        continue;
      }
      size_t stretch_end = pos;
      if (hit->lstrip) {
        while (stretch_end > stretch_begin && IsAsciiSpace(text[stretch_end - 1])) --stretch_end;
      }
      EncodeOrdinary(text.substr(stretch_begin, stretch_end - stretch_begin), &pieces, &ids);
      ids.push_back(hit->id);
      pos += hit->text.size();
      if (hit->rstrip) {
        while (pos < text.size() && IsAsciiSpace(text[pos])) ++pos;
      }
      stretch_begin = pos;
    }
    EncodeOrdinary(text.substr(stretch_begin), &pieces, &ids);
    return ids;
  }

  std::string DecodeToken(int32_t /*prev*/, int32_t id) const override {
    if (id < 0 || id >= vocab_size()) return "";
    switch (types_[id]) {
      case TokenType::kControl:
      case TokenType::kUserDefined:
        // Added tokens are stored as plain text, not in the byte alphabet. Control tokens give
        // their text too (HF decode with skip_special_tokens=false): Encode matches them in the
        // input, so this keeps Decode(Encode(x)) == x.
        return pieces_[id];
      default:
        return ByteLevelDecode(pieces_[id]);
    }
  }

  std::string_view kind() const override { return "bpe"; }

  std::string Describe() const override {
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  "bpe (GPT-2 byte-level) from %s: %d tokens, %zu merges, pre=%s (%s), %zu added "
                  "tokens, bos=%d eos=%d",
                  source_.c_str(), vocab_size(), merges_.size(), pre_name_.c_str(),
                  std::string(PreTokenizerName(pre_)).c_str(), added_.size(), bos_, eos_);
    return buf;
  }

 private:
  static bool IsAsciiSpace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }

  const AddedToken* MatchAdded(std::string_view text, size_t pos) const {
    if (!added_first_byte_[static_cast<uint8_t>(text[pos])]) return nullptr;
    for (const AddedToken& t : added_) {
      if (text.compare(pos, t.text.size(), t.text) == 0) return &t;
    }
    return nullptr;
  }

  void EncodeOrdinary(std::string_view text, std::vector<std::string_view>* pieces,
                      std::vector<int32_t>* ids) const {
    if (text.empty()) return;
    pieces->clear();
    PreTokenize(pre_, text, pieces);
    std::string mapped;
    std::vector<MergeSymbol> symbols;
    const ByteLevelAlphabet& alphabet = GetByteLevelAlphabet();
    for (std::string_view piece : *pieces) {
      mapped.clear();
      symbols.clear();
      for (char ch : piece) {
        const uint8_t b = static_cast<uint8_t>(ch);
        MergeSymbol s;
        s.begin = static_cast<uint32_t>(mapped.size());
        mapped.append(alphabet.byte_to_utf8[b]);
        s.end = static_cast<uint32_t>(mapped.size());
        s.id = byte_ids_[b];
        s.prev = static_cast<int32_t>(symbols.size()) - 1;
        s.next = static_cast<int32_t>(symbols.size()) + 1;
        symbols.push_back(s);
      }
      symbols.back().next = -1;
      if (ignore_merges_ && symbols.size() > 1) {
        const auto it = token_to_id_.find(mapped);
        if (it != token_to_id_.end()) {
          ids->push_back(it->second);
          continue;
        }
      }
      RunMerges(symbols,
                [&](const MergeSymbol& l, const MergeSymbol& r) -> std::optional<MergeCandidate> {
                  if (l.id < 0 || r.id < 0) return std::nullopt;
                  const auto it = merges_.find(PairKey(l.id, r.id));
                  if (it == merges_.end()) return std::nullopt;
                  return MergeCandidate{static_cast<double>(it->second.rank), it->second.result};
                });
      for (int32_t i = 0; i >= 0; i = symbols[i].next) {
        if (symbols[i].id >= 0) {
          ids->push_back(symbols[i].id);
        } else if (unk_ >= 0) {
          ids->push_back(unk_);  // a byte whose stand-in is not in the vocabulary
        }
      }
    }
  }

  std::string source_;
  PreTokenizer pre_;
  std::string pre_name_;
  bool ignore_merges_;
  int32_t unk_;
  TokenMap token_to_id_;                            // every piece -> its first id
  std::unordered_map<uint64_t, MergeRule> merges_;  // (left id, right id) -> rank, result
  std::vector<AddedToken> added_;                   // longest first
  std::array<bool, 256> added_first_byte_{};
  std::array<int32_t, 256> byte_ids_;  // id of each byte's stand-in, -1 if absent
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> MakeBpeTokenizer(BpeVocabData data) {
  const size_t n = data.pieces.size();
  if (n == 0) return DataLoss(data.source + ": the tokenizer vocabulary is empty");
  if (n > static_cast<size_t>(INT32_MAX)) return DataLoss(data.source + ": vocabulary too large");
  if (data.types.size() != n) {
    return DataLoss(data.source + ": " + std::to_string(data.types.size()) + " token types for " +
                    std::to_string(n) + " tokens");
  }
  TokenMap token_to_id;
  token_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) token_to_id.emplace(data.pieces[i], static_cast<int32_t>(i));

  std::unordered_map<uint64_t, MergeRule> merges;
  merges.reserve(data.merges.size());
  for (size_t rank = 0; rank < data.merges.size(); ++rank) {
    // Plain references, not a structured binding: clang before 16 cannot capture those.
    const std::string& left = data.merges[rank].first;
    const std::string& right = data.merges[rank].second;
    const auto where = [&] {
      return data.source + ": " + data.merges_field + "[" + std::to_string(rank) + "] = '" + left +
             " " + right + "'";
    };
    const auto l = token_to_id.find(left);
    const auto r = token_to_id.find(right);
    const auto m = token_to_id.find(left + right);
    if (left.empty() || right.empty()) return DataLoss(where() + ": expected two non-empty parts");
    if (l == token_to_id.end() || r == token_to_id.end() || m == token_to_id.end()) {
      return DataLoss(where() + ": '" +
                      (l == token_to_id.end()   ? left
                       : r == token_to_id.end() ? right
                                                : left + right) +
                      "' is not in the vocabulary");
    }
    merges.emplace(
        PairKey(l->second, r->second),
        MergeRule{static_cast<int32_t>(rank), m->second});  // a repeat keeps its first rank
  }

  std::vector<AddedToken> added;
  for (size_t i = 0; i < n; ++i) {
    const TokenType t = data.types[i];
    if ((t == TokenType::kControl || t == TokenType::kUserDefined) && !data.pieces[i].empty()) {
      const int32_t id = static_cast<int32_t>(i);
      const auto has = [id](const std::vector<int32_t>& v) {
        return std::find(v.begin(), v.end(), id) != v.end();
      };
      added.push_back({data.pieces[i], id, has(data.lstrip_ids), has(data.rstrip_ids)});
    }
  }
  for (int32_t id : {data.bos, data.eos, data.unk}) {
    LOWBIT_CHECK(id >= -1 && id < static_cast<int64_t>(n));  // callers use CheckSpecialId
  }
  return std::unique_ptr<Tokenizer>(new BpeTokenizer(std::move(data), std::move(token_to_id),
                                                     std::move(merges), std::move(added)));
}

}  // namespace lowbit::tokenizer_internal
