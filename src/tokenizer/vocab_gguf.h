// Writes a vocabulary as GGUF tokenizer metadata (tokenizer.ggml.*), the inverse of
// Tokenizer::from_gguf, so files Kite writes (convert, quantize, gen-model) carry their tokenizer.
#pragma once
#include "formats/gguf_writer.h"
#include "tokenizer/tokenizer.h"

namespace kite {

void write_vocab_gguf(const VocabData& v, GGUFWriter& w);

}  // namespace kite
