// Cutting special tokens out of the input before tokenization, with llama.cpp's semantics:
//  - the candidates are control, user-defined and unknown tokens; with parse_special=false only
//    user-defined ones (as Hugging Face, which always splits added non-special tokens);
//  - tokens are taken longest text first (ties: lower id); each claims its leftmost
//    non-overlapping occurrences in the text not yet claimed;
//  - an lstrip/rstrip token also swallows the ASCII whitespace beside it.
// All occurrences are found in one pass with a byte trie; the priority rule is then applied to
// them, which gives llama.cpp's result without one text scan per special token.
#include <algorithm>

#include "tokenizer/tokenizer_impl.h"

namespace kite {

namespace tok {

int32_t SpecialTrie::child(int32_t node, uint8_t b) const {
  for (const auto& [byte, next] : nodes[node].next)
    if (byte == b) return next;
  return -1;
}

void SpecialTrie::insert(std::string_view text, int32_t id) {
  int32_t node = 0;
  for (char ch : text) {
    const auto b = static_cast<uint8_t>(ch);
    int32_t next = child(node, b);
    if (next < 0) {
      next = static_cast<int32_t>(nodes.size());
      nodes[node].next.emplace_back(b, next);
      nodes.emplace_back();
    }
    node = next;
  }
  if (nodes[node].token < 0) nodes[node].token = id;  // same text twice: the first in order wins
}

}  // namespace tok

namespace {
bool is_special_type(TokenType t) {
  return t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown;
}
bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
}  // namespace

void Tokenizer::Impl::build_specials() {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v.tokens.size(); i++)
    if (is_special_type(v.token_types[i]) && !v.tokens[i].empty()) ids.push_back(static_cast<int32_t>(i));
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int32_t a, int32_t b) { return v.tokens[a].size() > v.tokens[b].size(); });
  special_order.assign(v.tokens.size(), -1);
  for (size_t k = 0; k < ids.size(); k++) {
    special_order[ids[k]] = static_cast<int32_t>(k);
    specials.insert(v.tokens[ids[k]], ids[k]);
  }
}

std::vector<tok::Fragment> Tokenizer::Impl::partition(std::string_view text, bool parse_special) const {
  const size_t n = text.size();
  if (specials.nodes.size() == 1) return {tok::Fragment{-1, 0, n}};

  struct Occurrence {
    int32_t order;
    size_t pos;
    int32_t id;
  };
  std::vector<Occurrence> found;
  for (size_t p = 0; p < n; p++) {
    int32_t node = 0;
    for (size_t q = p; q < n; q++) {
      node = specials.child(node, static_cast<uint8_t>(text[q]));
      if (node < 0) break;
      const int32_t id = specials.nodes[node].token;
      if (id < 0) continue;
      if (!parse_special && v.token_types[id] != TokenType::UserDefined) continue;
      found.push_back({special_order[id], p, id});
    }
  }
  if (found.empty()) return {tok::Fragment{-1, 0, n}};
  std::sort(found.begin(), found.end(), [](const Occurrence& a, const Occurrence& b) {
    return a.order != b.order ? a.order < b.order : a.pos < b.pos;
  });

  enum : uint8_t { kFree = 0, kToken = 1, kDropped = 2 };
  std::vector<uint8_t> state(n, kFree);
  std::vector<std::pair<size_t, int32_t>> taken;  // (position, token)
  for (const Occurrence& o : found) {
    const size_t len = v.tokens[o.id].size();
    bool free = true;
    for (size_t k = o.pos; k < o.pos + len && free; k++) free = state[k] == kFree;
    if (!free) continue;
    std::fill(state.begin() + o.pos, state.begin() + o.pos + len, kToken);
    taken.emplace_back(o.pos, o.id);
    if (strip_flags[o.id] & 1)
      for (size_t k = o.pos; k > 0 && state[k - 1] == kFree && ascii_space(text[k - 1]); k--) state[k - 1] = kDropped;
    if (strip_flags[o.id] & 2)
      for (size_t k = o.pos + len; k < n && state[k] == kFree && ascii_space(text[k]); k++) state[k] = kDropped;
  }
  std::sort(taken.begin(), taken.end());

  std::vector<tok::Fragment> out;
  size_t next_taken = 0;
  size_t i = 0;
  while (i < n) {
    if (state[i] == kDropped) {
      i++;
    } else if (state[i] == kToken) {
      const int32_t id = taken[next_taken++].second;
      out.push_back({id, i, i + v.tokens[id].size()});
      i += v.tokens[id].size();
    } else {
      const size_t b = i;
      while (i < n && state[i] == kFree) i++;
      out.push_back({-1, b, i});
    }
  }
  return out;
}

}  // namespace kite
