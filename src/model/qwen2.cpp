// Qwen2: the Llama graph with biases on the q/k/v projections (bound by the loader, applied in
// attention_block), NeoX-style RoPE, usually tied embeddings in the small sizes.
#include "model/architecture.h"

namespace kite {

void forward_qwen2(const LoadedModel& m, KVCache& cache, const int32_t* tokens, int n_tok, int pos0,
                   bool all_logits, Scratch& s, std::vector<float>& logits) {
  forward_llama(m, cache, tokens, n_tok, pos0, all_logits, s, logits);
}

}  // namespace kite
