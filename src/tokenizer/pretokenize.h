// Pre-tokenizers of the byte-level BPE families: the text is cut into words before BPE runs
// inside each word. Each family's regex (as published in its tokenizer.json) is implemented by
// hand here, alternative by alternative, because std::regex knows neither \p{L} nor \p{N}.
#pragma once
#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

namespace kite::tok {

enum class PreTokenizer {
  GPT2,         // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Llama3,       // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Qwen2,        // as Llama3 with \p{N} (single digits)
  DeepSeekLLM,  // [\r\n] > \s?[cased letters]+ > \s?[ASCII/CJK punctuation]+ > \s+$ > [CJK/Hangul]+ > \p{N}+
  SmolLM,       // every digit alone, then GPT2 (also StarCoder, Refact)
};

// Maps a GGUF tokenizer.ggml.pre name to its pre-tokenizer; unknown names and "default" give
// GPT2, which is also what GPT-NeoX-style vocabs use.
PreTokenizer pre_tokenizer_from_name(std::string_view name);

using ByteRange = std::pair<size_t, size_t>;  // [begin, end) in bytes

// Appends the words of text, in order, as byte ranges; together they cover the whole text.
void pre_tokenize(PreTokenizer kind, std::string_view text, std::vector<ByteRange>& words);

}  // namespace kite::tok
