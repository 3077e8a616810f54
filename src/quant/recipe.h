// Quantization recipes: which block type each tensor of a model gets.
//
// A recipe is named like llama.cpp's file types. Plain types (Q8_0, Q4_0, Q5_K...) give every
// matrix that type, except output.weight (the most sensitive matrix), which gets Q6_K below 8 bits
// as in llama.cpp. The mixed K-quant recipes spend more bits where the error costs most:
//   Q4_K_M: Q4_K; Q5_K for ffn_down, output and token_embd. Measured on the zoo teacher
//           (perplexity on valid.txt with one class of matrices at Q4_K, all else F32): ffn_down
//           +0.53%, output +0.44%, token_embd +0.15%, every other class under +0.09% (attn_v
//           +0.01%). llama.cpp's Q4_K_M gives attn_v and ffn_down Q6_K on the layers of its
//           use_more_bits() and output Q6_K (5.03 bits per weight, +1.07%); Kite's earlier mix of
//           that kind, 4.99 bpw, +0.55%; this one 4.99 bpw, +0.35% (README, quantization).
//           (Q3_K for the insensitive attn_q measured lower still, +0.21% at 4.95 bpw, but Q3_K's
//           scalar kernel halves decode speed.)
//   Q5_K_M: Q5_K, with attn_v and ffn_down Q6_K on the layers llama.cpp's use_more_bits() picks
//           (first and last eighth, every third between).
//   Q4_K_S / Q5_K_S: all Q4_K / Q5_K.   Q3_K_M: Q3_K, attn_v Q5_K, ffn_down Q4_K.
// Vectors (norms, biases, rope factors) stay F32. --keep NAME=TYPE overrides any of these.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace kite {

struct QuantRecipe {
  std::string name;     // e.g. "Q4_K_M"
  DType base;           // the type most matrices get
  uint32_t file_type;   // GGUF general.file_type (llama.cpp's llama_ftype)
};

// The recipe of a name (case-insensitive); throws kite::Error listing the known ones.
QuantRecipe quant_recipe(const std::string& name);
std::vector<std::string> quant_recipe_names();

// Per-tensor overrides from --keep NAME=TYPE (NAME may use * wildcards).
struct TypeOverride {
  std::string pattern;
  DType type;
};
TypeOverride parse_type_override(const std::string& spec);  // "output.weight=Q8_0"

struct TensorChoice {
  DType type;
  std::string note;  // non-empty when the recipe's type could not be used (and why)
};

// The type for one tensor. n_dims/ne: its shape; n_layer: the model's block count.
TensorChoice choose_tensor_type(const QuantRecipe& r, const std::vector<TypeOverride>& keep,
                                const std::string& name, int n_dims, int64_t n_per_row, int n_layer);

}  // namespace kite
