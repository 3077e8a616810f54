// Prompt lookup: draft tokens without a draft model by copying from the context. When the text
// being generated repeats earlier text (edits, summaries quoting their source, RAG answers, code),
// the tokens that followed the last n-gram's previous occurrence are a good guess of what comes
// next.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace kite {

struct LookupMatch {
  std::vector<int32_t> tokens;  // the proposed continuation (empty: no n-gram recurs)
  int ngram = 0;                // the length of the matched n-gram
};

// Finds an earlier occurrence of the context's last n tokens, trying n = max_ngram down to 1 (of
// several occurrences, the one preceded by the longest agreement with the context, then the most
// recent), and proposes up to max_tokens of the tokens that followed it. A continuation that
// reaches the end of the context goes on copying itself, as text repeating with that period would.
LookupMatch lookup_continuation(std::span<const int32_t> context, int max_ngram, int max_tokens);

}  // namespace kite
