// The Llama family: Llama 1/2/3, TinyLlama, Mistral, SmolLM.
//   x = embed(tokens)
//   per layer: x += Attn(RMSNorm(x))  (GQA, RoPE; Llama 3 frequency scaling via freq factors)
//              x += SwiGLU(RMSNorm(x))
//   logits = output · RMSNorm(x)   (output may be tied to the embedding)
#include "core/error.h"
#include "model/architecture.h"

namespace kite {

void forward_llama(const LoadedModel& m, KVCache& cache, const int32_t* tokens, int n_tok, int pos0,
                   bool all_logits, Scratch& s, std::vector<float>& logits) {
  const ModelConfig& c = m.config;
  s.reserve(c, n_tok);
  embed_tokens(*m.weights.tok_embd, tokens, n_tok, s.x.data());
  for (int layer = 0; layer < c.n_layer; layer++) {
    const LayerWeights& l = m.weights.layers[layer];
    attention_block(c, m.weights, l, cache, layer, n_tok, pos0, s);
    ffn_block(c, l, n_tok, s);
  }
  output_logits(c, m.weights, n_tok, all_logits, s, logits);
}

ForwardFn forward_for_arch(const std::string& arch) {
  if (arch == "llama") return forward_llama;
  if (arch == "qwen2") return forward_qwen2;
  fail("architecture '", arch, "' is not supported");
}

}  // namespace kite
