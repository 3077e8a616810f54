// llama2.c checkpoints (Karpathy's run.c format), float32 only:
//  - legacy "v0": 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len);
//    a negative vocab_size means a separate classifier follows the weights;
//  - "v1": u32 magic 0x616b3432 ("ak42"), int32 version 1, the same 7 int32, u8 shared-classifier
//    flag, zero padding to 256 bytes.
// Tensors are views into the mapped file, named and shaped as GGUF does (ne[0] innermost, an
// [out][in] matrix has ne {in, out}).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "core/mmap.h"
#include "core/tensor.h"
#include "model/config.h"

namespace kite {

struct Llama2cCheckpoint {
  ModelConfig config;  // arch llama, Interleaved RoPE, eps 1e-5, theta 1e4, n_ctx_train = seq_len
  int version = 0;     // 0 (legacy) or 1
  // token_embd, output_norm, output (only when not shared: else config.tied_embeddings),
  // blk.{i}.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate (w1),
  // ffn_down (w2), ffn_up (w3)}.weight
  std::map<std::string, Tensor> tensors;
  std::shared_ptr<MappedFile> file;
};

// Maps and validates `path`: the file size must be exactly what the header implies.
Llama2cCheckpoint load_llama2c(const std::string& path);

}  // namespace kite
