// Building blocks shared by the architecture files: embedding lookup, RoPE, causal attention
// over the KV cache, the gated FFN. Activations are float32 [n_tok][dim], row-major.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

namespace kite {

// Sees the input of every weight matmul of the forward pass (W, x [n_tok][W.ne[0]]): how the
// quantizer collects activation statistics (imatrix). Process-wide and not thread-safe: set it
// while no forward pass runs; nullptr removes it.
using MatmulObserver = void (*)(void* ctx, const Tensor& w, const float* x, int n_tok);
void set_matmul_observer(MatmulObserver fn, void* ctx);

// Work buffers of one forward call, sized for n_tok tokens; reused across calls.
struct Scratch {
  std::vector<float> x;      // [n_tok][n_embd]   residual stream
  std::vector<float> xn;     // [n_tok][n_embd]   normalised input of a sub-block
  std::vector<float> q;      // [n_tok][n_head*head_dim]
  std::vector<float> k;      // [n_tok][n_head_kv*head_dim]
  std::vector<float> v;      // [n_tok][n_head_kv*head_dim]
  std::vector<float> att;    // [n_tok][n_head*head_dim]   attention output before wo
  std::vector<float> proj;   // [n_tok][n_embd]   output of wo / w_down
  std::vector<float> gate;   // [n_tok][n_ff]
  std::vector<float> up;     // [n_tok][n_ff]
  void reserve(const ModelConfig& c, int n_tok);
};

// x[t] = row tokens[t] of the embedding table, as float.
void embed_tokens(const Tensor& tok_embd, const int32_t* tokens, int n_tok, float* x);

// Rotates q [n_tok][n_heads*head_dim] in place for positions pos0..pos0+n_tok-1.
void apply_rope(const ModelConfig& c, const std::vector<float>& freq_factors, float* x, int n_tok,
                int n_heads, int pos0);

// out[t] = softmax(q[t]·K[0..pos0+t] / sqrt(d)) · V, per head, with grouped-query heads sharing
// one KV head. K/V of the n_tok new tokens must already be in the cache. impl: the flash kernel
// (default in attention_block) or the naive reference (KITE_ATTN=naive); see kernels/attention.h.
void attention(const ModelConfig& c, const KVCache& cache, int layer, const float* q, int n_tok,
               int pos0, float* out, kernels::AttnImpl impl);

// Self-attention sub-block: x += wo · attention(rope(wq·norm(x)), ...); writes K/V to the cache.
void attention_block(const ModelConfig& c, const ModelWeights& w, const LayerWeights& l, KVCache& cache,
                     int layer, int n_tok, int pos0, Scratch& s);

// SwiGLU FFN sub-block: x += w_down · (silu(w_gate·norm(x)) * (w_up·norm(x))).
void ffn_block(const ModelConfig& c, const LayerWeights& l, int n_tok, Scratch& s);

// Final norm + output projection. all_logits: logits for every token [n_tok][n_vocab], else only
// for the last one [n_vocab].
void output_logits(const ModelConfig& c, const ModelWeights& w, int n_tok, bool all_logits, Scratch& s,
                   std::vector<float>& logits);

}  // namespace kite
