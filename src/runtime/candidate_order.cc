#include "runtime/candidate_order.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>

namespace lowbit {
namespace {

// Ascending key = decreasing logit: +0 and -0 share a key; NaN gets the largest key (last).
uint32_t DescendingKey(float f) {
  if (std::isnan(f)) return UINT32_MAX;
  if (f == 0.0f) f = 0.0f;
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t ascending = (u & 0x80000000u) != 0 ? ~u : u | 0x80000000u;
  return ~ascending;
}

// Below this k, a partial sort of comparisons is cheaper than three counting passes.
constexpr int64_t kRadixFromK = 512;

}  // namespace

void OrderCandidates(std::span<const float> logits, int64_t k,
                     std::vector<std::pair<float, int32_t>>* out) {
  const int64_t n = static_cast<int64_t>(logits.size());
  out->resize(static_cast<size_t>(n));
  if (k < kRadixFromK) {
    for (int64_t i = 0; i < n; ++i) (*out)[i] = {logits[i], static_cast<int32_t>(i)};
    auto before = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
      const uint32_t ka = DescendingKey(a.first), kb = DescendingKey(b.first);
      return ka != kb ? ka < kb : a.second < b.second;
    };
    std::partial_sort(out->begin(), out->begin() + k, out->end(), before);
    out->resize(static_cast<size_t>(k));
    return;
  }
  // LSD radix sort, 3 passes of 11 bits; each pass is stable and ids start ascending, so ties
  // keep the lower id first.
  std::vector<std::pair<uint32_t, int32_t>> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) a[i] = {DescendingKey(logits[i]), static_cast<int32_t>(i)};
  for (int shift = 0; shift < 33; shift += 11) {
    std::array<int64_t, 2049> start{};
    for (const auto& e : a) ++start[((e.first >> shift) & 2047) + 1];
    for (int d = 0; d < 2048; ++d) start[d + 1] += start[d];
    for (const auto& e : a) b[static_cast<size_t>(start[(e.first >> shift) & 2047]++)] = e;
    a.swap(b);
  }
  for (int64_t i = 0; i < k; ++i) (*out)[i] = {logits[a[i].second], a[i].second};
  out->resize(static_cast<size_t>(k));
}

}  // namespace lowbit
