// The order in which the sampler considers tokens: decreasing logit, lower id first on ties
// (-0 and +0 tie; NaN logits come last). Sorting the whole vocabulary by comparisons took most
// of a sampled token's time for 49,152-token vocabularies, so large k uses a radix sort on
// order-preserving integer keys, which gives the same order.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace lowbit {

// *out = the first k (1 <= k <= logits.size()) of all (logit, id) pairs in that order.
void OrderCandidates(std::span<const float> logits, int64_t k,
                     std::vector<std::pair<float, int32_t>>* out);

}  // namespace lowbit
