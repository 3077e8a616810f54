#include "tokenizer/vocab_gguf.h"

namespace kite {

void write_vocab_gguf(const VocabData& v, GGUFWriter& w) {
  w.set_string("tokenizer.ggml.model", v.type == VocabType::SPM ? "llama" : "gpt2");
  if (!v.pre.empty()) w.set_string("tokenizer.ggml.pre", v.pre);
  w.set_array_str("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) w.set_array_f32("tokenizer.ggml.scores", v.scores);
  if (!v.token_types.empty()) {
    std::vector<int32_t> types(v.token_types.size());
    for (size_t i = 0; i < types.size(); i++) types[i] = static_cast<int32_t>(v.token_types[i]);
    w.set_array_i32("tokenizer.ggml.token_type", types);
  }
  if (!v.merges.empty()) w.set_array_str("tokenizer.ggml.merges", v.merges);
  if (v.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(v.bos));
  if (v.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(v.eos));
  if (v.unk >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(v.unk));
  if (v.pad >= 0) w.set_u32("tokenizer.ggml.padding_token_id", uint32_t(v.pad));
  if (v.eot >= 0) w.set_u32("tokenizer.ggml.eot_token_id", uint32_t(v.eot));
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (v.type == VocabType::SPM) w.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

}  // namespace kite
