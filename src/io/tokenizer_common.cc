// Pieces shared by every tokenizer: Tokenizer::Decode and special-id validation.
#include <string>

#include "io/tokenizer_internal.h"
#include "lowbit/tokenizer.h"

namespace lowbit {

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string text;
  int32_t prev = -1;
  for (int32_t id : ids) {
    text += DecodeToken(prev, id);
    prev = id;
  }
  return text;
}

namespace tokenizer_internal {

Status CheckSpecialId(const std::string& source, const std::string& field, int64_t id,
                      size_t n_vocab, int32_t* out) {
  if (id == -1) {
    *out = -1;
    return Status::Ok();
  }
  if (id < 0 || id >= static_cast<int64_t>(n_vocab)) {
    return DataLoss(source + ": " + field + " = " + std::to_string(id) +
                    " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
  }
  *out = static_cast<int32_t>(id);
  return Status::Ok();
}

}  // namespace tokenizer_internal
}  // namespace lowbit
