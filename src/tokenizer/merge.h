// The merge loop shared by every BPE variant: symbols are adjacent byte ranges of one string;
// the adjacent pair with the best priority (highest; leftmost on ties) is merged, its new
// neighbours are queued, and so on until no pair qualifies. A priority queue with lazy
// invalidation makes this O(n log n) instead of rescanning all pairs after each merge.
//   - SentencePiece/llama.cpp: a pair qualifies when its concatenation is a token; priority is
//     that token's score.
//   - Hugging Face BPE (and byte-level BPE): a pair qualifies when (left id, right id) is a merge
//     rule; priority is minus the rule's rank.
#pragma once
#include <cstdint>
#include <queue>
#include <vector>

namespace kite::tok {

struct Symbol {
  uint32_t begin = 0, len = 0;  // byte range in the working string; len 0 once merged away
  int32_t prev = -1, next = -1;  // neighbours in the symbol list
  int32_t id = -1;               // token id when known (-1: look it up, or none)
};

// Links syms[i] to its neighbours, in order.
inline void link_symbols(std::vector<Symbol>& syms) {
  const int32_t n = static_cast<int32_t>(syms.size());
  for (int32_t i = 0; i < n; i++) {
    syms[i].prev = i - 1;
    syms[i].next = i + 1 < n ? i + 1 : -1;
  }
}

// pair(left, right, priority, merged_id) -> bool: whether the two may merge, and how well.
template <class PairFn>
void merge_symbols(std::vector<Symbol>& syms, PairFn&& pair) {
  struct Candidate {
    double priority;
    int32_t left, right;
    uint32_t len;  // left.len + right.len when queued: a mismatch later means it is stale
    int32_t id;
  };
  auto worse = [](const Candidate& a, const Candidate& b) {
    return a.priority < b.priority || (a.priority == b.priority && a.left > b.left);
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> queue(worse);
  auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    double priority = 0;
    int32_t id = -1;
    if (pair(syms[l], syms[r], priority, id)) queue.push({priority, l, r, syms[l].len + syms[r].len, id});
  };
  for (size_t i = 1; i < syms.size(); i++) consider(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = syms[c.left];
    Symbol& r = syms[c.right];
    // Stale: one side was merged away or grew since this pair was queued.
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.len || l.next != c.right) continue;
    l.len += r.len;
    l.id = c.id;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    r.len = 0;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
}

}  // namespace kite::tok
