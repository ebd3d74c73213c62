// llama2.c tokenizer files (tokenizer.bin, tok512.bin, ...), as written by llama2.c's tokenizer.py
// export and read by run.c's build_tokenizer:
//   int32 max_token_length
//   then per token: f32 score, int32 length, `length` bytes of UTF-8 (no terminator)
// all little-endian. The vocabulary size is not stored (run.c takes it from the model header).
// The export spells whitespace as plain ' ' (it replaces sentencepiece's U+2581) and the specials
// as
// "<unk>", "\n<s>\n", "\n</s>\n" at ids 0, 1, 2, which run.c hard-codes as BOS = 1, EOS = 2.
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "io/tokenizer_internal.h"
#include "lowbit/tokenizer.h"

namespace lowbit {
namespace {

// Longest piece we accept; real files have 7 (tok512) to 27 (the 32k llama2 vocabulary).
constexpr int32_t kMaxTokenLength = 1 << 16;

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  size_t offset() const { return offset_; }
  size_t left() const { return bytes_.size() - offset_; }
  template <class T>
  bool Read(T* value) {
    if (left() < sizeof(T)) return false;
    std::memcpy(value, bytes_.data() + offset_, sizeof(T));  // x86-64 and the files: little-endian
    offset_ += sizeof(T);
    return true;
  }
  bool ReadBytes(size_t n, std::string* out) {
    if (left() < n) return false;
    out->assign(bytes_.data() + offset_, n);
    offset_ += n;
    return true;
  }

 private:
  std::string_view bytes_;
  size_t offset_ = 0;
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> TokenizerFromLlama2cFile(const std::string& path,
                                                            int32_t vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open llama2.c tokenizer file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return IoError(path + ": read failed");
  return TokenizerFromLlama2cBytes(bytes, path, vocab_size);
}

Result<std::unique_ptr<Tokenizer>> TokenizerFromLlama2cBytes(std::string_view bytes,
                                                             const std::string& path,
                                                             int32_t vocab_size) {
  Reader reader(bytes);
  int32_t max_token_length = 0;
  if (!reader.Read(&max_token_length)) {
    return DataLoss(path + ": truncated: no max_token_length header (file has " +
                    std::to_string(bytes.size()) + " bytes)");
  }
  if (max_token_length <= 0 || max_token_length > kMaxTokenLength) {
    return DataLoss(path + ": max_token_length = " + std::to_string(max_token_length) +
                    " is not in [1, " + std::to_string(kMaxTokenLength) + "]");
  }

  tokenizer_internal::SpmVocabData data;
  data.source = path;
  while (reader.left() > 0 &&
         (vocab_size < 0 || static_cast<int32_t>(data.pieces.size()) < vocab_size)) {
    const size_t id = data.pieces.size();
    const std::string where = path + ": token " + std::to_string(id) + " at byte offset " +
                              std::to_string(reader.offset());
    float score;
    int32_t length;
    if (!reader.Read(&score) || !reader.Read(&length)) {
      return DataLoss(where + ": truncated record header (score, length)");
    }
    if (length < 0 || length > max_token_length) {
      return DataLoss(where + ": length = " + std::to_string(length) + " is not in [0, " +
                      "max_token_length = " + std::to_string(max_token_length) + "]");
    }
    std::string piece;
    if (!reader.ReadBytes(static_cast<size_t>(length), &piece)) {
      return DataLoss(where + ": truncated: " + std::to_string(length) +
                      " bytes of text expected, " + std::to_string(reader.left()) + " left");
    }
    data.pieces.push_back(std::move(piece));
    data.scores.push_back(score);
  }
  if (vocab_size >= 0 && static_cast<int32_t>(data.pieces.size()) != vocab_size) {
    return DataLoss(path + ": holds " + std::to_string(data.pieces.size()) +
                    " tokens, the model's vocab_size is " + std::to_string(vocab_size));
  }
  if (reader.left() > 0) {
    return DataLoss(path + ": " + std::to_string(reader.left()) +
                    " unexpected bytes after the last of " + std::to_string(data.pieces.size()) +
                    " tokens");
  }
  if (data.pieces.size() < 3) {
    return DataLoss(path + ": holds " + std::to_string(data.pieces.size()) +
                    " tokens; llama2.c vocabularies start with <unk>, BOS, EOS");
  }

  // Types are not stored: the llama2.c conventions give them.
  data.types.assign(data.pieces.size(), TokenType::kUndefined);  // <0xNN> pieces are byte tokens
  data.types[0] = TokenType::kUnknown;
  data.types[1] = TokenType::kControl;
  data.types[2] = TokenType::kControl;
  for (size_t i = 3; i < data.pieces.size(); ++i) {
    const std::string& p = data.pieces[i];
    const bool byte_token = p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>';
    data.types[i] = byte_token ? TokenType::kByte : TokenType::kNormal;
  }
  data.unk = 0;
  data.bos = 1;
  data.eos = 2;
  data.add_bos = true;
  data.add_space_prefix = true;
  return tokenizer_internal::MakeSpmTokenizer(std::move(data));
}

}  // namespace lowbit
