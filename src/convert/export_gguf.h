// Writes a loaded model (GGUF, Hugging Face folder or llama2.c file) as a GGUF file with the
// tensor types a recipe chooses: `kite convert` (F32/F16/BF16) and `kite quantize`.
//
// The file follows llama.cpp's conventions so that llama.cpp loads it: GGUF tensor names,
// architecture metadata, the tokenizer as tokenizer.ggml.*, general.file_type, and for "llama"
// models the Q/K projection rows permuted into interleaved-pair RoPE order (Hugging Face keeps
// rotate_half order; llama.cpp's converter permutes the same way, and Kite's GGUF loader expects it).
// Metadata of a GGUF input is carried over unchanged (tokenizer, chat template, ...).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kite/kite.h"
#include "quant/recipe.h"

namespace kite {

struct Imatrix;

struct ExportOptions {
  QuantRecipe recipe;
  std::vector<TypeOverride> keep;    // --keep NAME=TYPE
  const Imatrix* imatrix = nullptr;  // importance of each matrix's input columns (may be null)
  bool gptq = true;                  // with an imatrix holding Hessians: GPTQ for Q4_K/Q5_K/Q6_K
  // Called before each tensor is written: (index, count, name, type).
  std::function<void(int, int, const std::string&, DType)> progress;
};

struct ExportSummary {
  int64_t n_params = 0;              // elements of all tensors written
  uint64_t file_bytes = 0;
  uint64_t source_bytes = 0;         // bytes of the source tensors
  std::map<std::string, int64_t> params_by_type;  // type name -> elements
  std::vector<std::string> notes;    // fallbacks taken ("name: why")
  double bits_per_weight() const { return n_params > 0 ? 8.0 * file_bytes / n_params : 0; }
};

ExportSummary export_gguf(const Model& model, const std::string& out_path, const ExportOptions& opts);

}  // namespace kite
