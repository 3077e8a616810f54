// One forward function per architecture family, looked up by the config's arch name.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/blocks.h"

namespace kite {

// Runs n_tok tokens at positions pos0.. through the model, appending their K/V to the cache.
// logits: [n_tok][n_vocab] when all_logits, else [n_vocab] for the last token.
using ForwardFn = void (*)(const LoadedModel& m, KVCache& cache, const int32_t* tokens, int n_tok, int pos0,
                           bool all_logits, Scratch& s, std::vector<float>& logits);

ForwardFn forward_for_arch(const std::string& arch);

void forward_llama(const LoadedModel& m, KVCache& cache, const int32_t* tokens, int n_tok, int pos0,
                   bool all_logits, Scratch& s, std::vector<float>& logits);
void forward_qwen2(const LoadedModel& m, KVCache& cache, const int32_t* tokens, int n_tok, int pos0,
                   bool all_logits, Scratch& s, std::vector<float>& logits);

}  // namespace kite
