// Prompt lookup by a backward scan: contexts are at most a few thousand tokens and one scan costs
// microseconds against milliseconds for a forward pass, so no n-gram index is kept.
#include "runtime/lookup.h"

#include <algorithm>

namespace kite {

LookupMatch lookup_continuation(std::span<const int32_t> context, int max_ngram, int max_tokens) {
  const int len = int(context.size());
  if (max_tokens <= 0) return {};
  for (int n = std::min(max_ngram, len - 1); n >= 1; n--) {
    const int32_t* tail = context.data() + len - n;
    // Occurrences starting at s < len - n (strictly earlier than the tail), latest first.
    for (int s = len - n - 1; s >= 0; s--) {
      if (!std::equal(tail, tail + n, context.data() + s)) continue;
      // Copy what followed; past the end of the context the copy continues from its own start
      // (text that repeats with period len - from keeps repeating).
      const int from = s + n;
      LookupMatch m;
      m.ngram = n;
      m.tokens.reserve(max_tokens);
      for (int j = 0; j < max_tokens; j++) {
        const int at = from + j;
        m.tokens.push_back(at < len ? context[at] : m.tokens[at - len]);
      }
      return m;
    }
  }
  return {};
}

}  // namespace kite
