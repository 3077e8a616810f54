// Hugging Face config.json -> ModelConfig, for Llama-family (llama, mistral; SmolLM and
// TinyLlama are llama) and Qwen2 checkpoints. Errors name the file, the field and the value.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace kite {

// Reads and validates `config_json_path`. Defaults follow transformers: num_key_value_heads =
// num_attention_heads, head_dim = hidden_size / heads, rope_theta 10000, rms_norm_eps 1e-6,
// tie_word_embeddings false. rope_style is always NeoX (HF's rotate_half). Qwen2 always has
// q/k/v biases (transformers hard-codes them), so attn_bias is true for it.
// rope_scaling: null, {"type"|"rope_type": "linear"|"default"|"llama3", ...}; others are errors.
// transformers 5's "rope_parameters" object is read the same way (including its rope_theta).
ModelConfig read_hf_config(const std::string& config_json_path);

// Same, from JSON text; `source` names it in error messages.
ModelConfig parse_hf_config(const std::string& json_text, const std::string& source);

// End-of-sequence ids of an HF model folder: "eos_token_id" (an id or a list of ids) from
// generation_config.json, else from config.json. Empty when neither file gives one.
std::vector<int> read_hf_eos_ids(const std::string& model_dir);

}  // namespace kite
