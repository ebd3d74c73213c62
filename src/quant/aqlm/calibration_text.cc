// Calibration sequences cut from a tokenized text (the `--calib FILE` side of step 1).
#include <algorithm>
#include <string>

#include "lowbit/aqlm.h"

namespace lowbit {

Result<std::vector<std::vector<int32_t>>> CutCalibrationText(std::span<const int32_t> ids, int32_t bos,
                                                             int64_t n_sequences, int64_t seq_len,
                                                             int64_t skip_tokens) {
  if (n_sequences <= 0 || seq_len < 2 || skip_tokens < 0) {
    return InvalidArgument("calibration text: sequences = " + std::to_string(n_sequences) +
                           ", length = " + std::to_string(seq_len) + ", skip = " + std::to_string(skip_tokens) +
                           ", expected >= 1, >= 2 and >= 0");
  }
  const int64_t total = static_cast<int64_t>(ids.size());
  const int64_t body = seq_len - 1;  // each sequence: BOS + body
  const int64_t count = skip_tokens > total ? 0 : std::min(n_sequences, (total - skip_tokens) / body);
  if (count == 0) {
    return InvalidArgument("calibration text: " + std::to_string(total) + " tokens, " +
                           std::to_string(skip_tokens) + " skipped, fewer than the " + std::to_string(body) +
                           " that one sequence of length " + std::to_string(seq_len) + " needs after BOS");
  }
  // Consecutive, non-overlapping windows: no calibration token is used twice.
  std::vector<std::vector<int32_t>> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t s = 0; s < count; ++s) {
    const auto first = ids.begin() + skip_tokens + s * body;
    std::vector<int32_t> seq = {bos};
    seq.insert(seq.end(), first, first + body);
    out.push_back(std::move(seq));
  }
  return out;
}

}  // namespace lowbit
