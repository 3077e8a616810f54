// Perplexity = exp(mean negative log-likelihood of each scored next token).
#include <cmath>

#include "core/error.h"
#include "kite/kite.h"
#include "tokenizer/tokenizer.h"

namespace kite {

namespace {
// -log softmax(logits)[target], in double.
double nll(const float* logits, int n_vocab, int32_t target) {
  float mx = logits[0];
  for (int i = 1; i < n_vocab; i++) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int i = 0; i < n_vocab; i++) sum += std::exp(double(logits[i]) - mx);
  return std::log(sum) - (double(logits[target]) - mx);
}
}  // namespace

PerplexityResult perplexity(Session& session, const std::vector<int32_t>& tokens, int n_ctx, int max_chunks,
                            PerplexityMethod method, const std::function<void(int, int, double)>& progress) {
  check(n_ctx >= 2, "perplexity: context ", n_ctx, " is too small");
  check(n_ctx <= session.n_ctx(), "perplexity: context ", n_ctx, " exceeds the session's ", session.n_ctx());
  int n_chunks = int(tokens.size() / n_ctx);
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  check(n_chunks > 0, "perplexity: the text has ", tokens.size(), " tokens, fewer than one chunk of ", n_ctx);
  const int n_vocab = session.model().n_vocab();
  const int32_t bos = session.model().tokenizer().bos();
  PerplexityResult r;
  std::vector<int32_t> chunk(n_ctx);
  for (int c = 0; c < n_chunks; c++) {
    std::copy_n(tokens.begin() + size_t(c) * n_ctx, n_ctx, chunk.begin());
    int first = 0;
    if (method == PerplexityMethod::Llama) {
      if (bos >= 0) chunk[0] = bos;
      first = n_ctx / 2;
    }
    session.truncate(0);
    std::span<const float> logits = session.eval(chunk, /*all_logits=*/true);
    // logits[j] predicts chunk[j+1] (the original token: only position 0 was replaced).
    for (int j = first; j < n_ctx - 1; j++) {
      r.nll_sum += nll(logits.data() + size_t(j) * n_vocab, n_vocab, tokens[size_t(c) * n_ctx + j + 1]);
      r.tokens_scored++;
    }
    r.chunks = c + 1;
    r.ppl = std::exp(r.nll_sum / r.tokens_scored);
    if (progress) progress(c + 1, n_chunks, r.ppl);
  }
  session.truncate(0);
  return r;
}

}  // namespace kite
