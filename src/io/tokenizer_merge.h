// The merge loop shared by both BPE tokenizers: repeatedly merge the adjacent pair of symbols with
// the best priority (lowest value), the leftmost pair on ties, until no adjacent pair can merge.
//
// A priority queue holds every adjacent pair that can merge; a merge makes the pairs it touched
// stale (detected when popped: a symbol died or changed length) and pushes the two new pairs. That
// selects exactly the pair a full rescan would (llama2.c's run.c rescans; sentencepiece and HF
// tokenizers use a queue), in O(n log n) instead of O(n^2).
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace lowbit::tokenizer_internal {

struct MergeSymbol {
  uint32_t begin = 0;  // byte span [begin, end) of the working text
  uint32_t end = 0;
  int32_t id = -1;    // vocabulary id, -1 when the span is no token
  int32_t prev = -1;  // neighbours in the live list, -1 at the ends
  int32_t next = -1;
  bool atomic = false;  // never merges (a user-defined token matched verbatim)
};

struct MergeCandidate {
  double priority;  // lower merges first
  int32_t id;       // the merged symbol's vocabulary id
};

// `pair_fn(left, right)` returns the candidate for merging two adjacent symbols, or nullopt.
// On return the live symbols are those reachable from index 0 through `next` (index 0 never dies:
// a merge keeps the left symbol).
template <class PairFn>
void RunMerges(std::vector<MergeSymbol>& symbols, PairFn pair_fn) {
  struct Entry {
    double priority;
    uint32_t left_begin;  // tie-break: leftmost pair first
    int32_t left;
    int32_t right;
    uint32_t length;  // byte length of the merged span when pushed, to detect stale entries
    int32_t id;
    bool operator<(const Entry& o) const {  // std::priority_queue pops the "largest"
      if (priority != o.priority) return priority > o.priority;
      return left_begin > o.left_begin;
    }
  };
  std::priority_queue<Entry> queue;
  const auto try_push = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const MergeSymbol& l = symbols[left];
    const MergeSymbol& r = symbols[right];
    if (l.atomic || r.atomic) return;
    const std::optional<MergeCandidate> c = pair_fn(l, r);
    if (c) queue.push({c->priority, l.begin, left, right, r.end - l.begin, c->id});
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    try_push(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));
  }
  while (!queue.empty()) {
    const Entry e = queue.top();
    queue.pop();
    MergeSymbol& l = symbols[e.left];
    MergeSymbol& r = symbols[e.right];
    // Stale: a neighbour merged since this entry was pushed (a merged-away symbol gets begin ==
    // end, so its span no longer adds up either).
    if (l.next != e.right || r.begin == r.end || r.end - l.begin != e.length) continue;
    l.end = r.end;
    l.id = e.id;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = e.left;
    r.begin = r.end;
    r.prev = r.next = -1;
    try_push(l.prev, e.left);
    try_push(e.left, l.next);
  }
}

}  // namespace lowbit::tokenizer_internal
