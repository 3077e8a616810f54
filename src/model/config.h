// Hyper-parameters of a decoder-only transformer, independent of the file it came from.
#pragma once
#include <string>

namespace kite {

// How RoPE pairs the dimensions of a head.
//  Interleaved: pairs (2i, 2i+1) — llama2.c, and GGUF llama files (llama.cpp's converter permutes
//               HF's Q/K rows into this layout).
//  NeoX:        pairs (i, i + d/2) — Hugging Face's rotate_half, and GGUF qwen2 files.
enum class RopeStyle { Interleaved, NeoX };

enum class RopeScaling { None, Linear, Llama3 };

struct ModelConfig {
  std::string arch = "llama";  // "llama" (Llama 2/3, Mistral, TinyLlama, SmolLM) or "qwen2"
  std::string name;
  int n_vocab = 0;
  int n_embd = 0;      // hidden size
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;    // usually n_embd / n_head
  int n_ff = 0;        // FFN hidden size
  int n_ctx_train = 0; // context the model was trained with
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int rope_dim = 0;    // dimensions rotated per head (usually head_dim)
  RopeStyle rope_style = RopeStyle::NeoX;
  RopeScaling rope_scaling = RopeScaling::None;
  float rope_factor = 1.0f;          // linear / llama3 factor
  float rope_low_freq_factor = 1.0f; // llama3
  float rope_high_freq_factor = 4.0f;// llama3
  int rope_orig_ctx = 8192;          // llama3 original_max_position_embeddings
  bool attn_bias = false;            // Qwen2: biases on q/k/v projections
  bool tied_embeddings = false;      // output projection reuses token_embd
};

}  // namespace kite
