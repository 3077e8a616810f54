// A loaded model: configuration, tokenizer and weights. Weights are views into memory-mapped
// files (shared read-only by every session); only the small vectors (norms, biases) are
// converted to float32 copies at load time, and matrices the CPU kernels read faster in another
// layout get a packed copy (Tensor::packed, see pack_matmul_weights in loader.cpp).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "core/tensor.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

namespace kite {

struct LayerWeights {
  const float* attn_norm = nullptr;   // [n_embd]
  const Tensor* wq = nullptr;         // {n_embd, n_head*head_dim}
  const Tensor* wk = nullptr;         // {n_embd, n_head_kv*head_dim}
  const Tensor* wv = nullptr;         // {n_embd, n_head_kv*head_dim}
  const Tensor* wo = nullptr;         // {n_head*head_dim, n_embd}
  const float* bq = nullptr;          // [n_head*head_dim]    (Qwen2 only)
  const float* bk = nullptr;          // [n_head_kv*head_dim] (Qwen2 only)
  const float* bv = nullptr;          // [n_head_kv*head_dim] (Qwen2 only)
  const float* ffn_norm = nullptr;    // [n_embd]
  const Tensor* w_gate = nullptr;     // {n_embd, n_ff}
  const Tensor* w_up = nullptr;       // {n_embd, n_ff}
  const Tensor* w_down = nullptr;     // {n_ff, n_embd}
};

struct ModelWeights {
  const Tensor* tok_embd = nullptr;   // {n_embd, n_vocab}
  const float* output_norm = nullptr; // [n_embd]
  const Tensor* output = nullptr;     // {n_embd, n_vocab}; == tok_embd when tied
  std::vector<LayerWeights> layers;
  std::vector<float> rope_freq_factors;  // [rope_dim/2] divisors of each RoPE frequency; empty = none
};

struct LoadOptions {
  std::string tokenizer_path;  // llama2.c: tokenizer.bin (default: tokenizer.bin beside the model)
};

struct LoadedModel {
  std::string path;
  std::string format;  // "gguf", "hf", "llama2c"
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  std::map<std::string, Tensor> tensors;  // by GGUF-style name
  ModelWeights weights;
  // Keep-alive for the storage behind `tensors`, and float copies of small vectors.
  std::vector<std::shared_ptr<void>> storage;
  std::vector<std::unique_ptr<std::vector<float>>> f32_copies;
  // Mapped files that hold tensor data (GGUF), for dropping the pages of packed matrices.
  std::vector<std::shared_ptr<const MappedFile>> mapped_files;

  size_t weight_bytes() const;
};

// Loads a GGUF file, a Hugging Face folder (config.json + safetensors) or a llama2.c .bin.
std::unique_ptr<LoadedModel> load_model(const std::string& path, const LoadOptions& opts = {});

// Loads only the tokenizer of a model path: GGUF (vocab-only files too), HF folder, llama2.c
// .bin (with tokenizer_path or a tokenizer.bin beside it), or a tokenizer file itself
// (tokenizer.model, tokenizer.json, tokenizer.bin).
Tokenizer load_tokenizer(const std::string& path, const std::string& tokenizer_path = "");

// Builds config.{rope_freq_factors} for Llama-3 style scaling (HF rope_scaling "llama3").
std::vector<float> llama3_rope_freq_factors(const ModelConfig& c);

}  // namespace kite
