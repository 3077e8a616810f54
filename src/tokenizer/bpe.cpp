// Byte-level BPE (GPT-2 style): the family's pre-tokenizer cuts the text into words; each word's
// bytes are spelled with GPT-2's byte->character mapping, and merge rules apply by rank inside
// the word. One symbol per input byte, so the merged symbols are byte ranges of the raw text.
#include <string>

#include "tokenizer/merge.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace kite {

void Tokenizer::Impl::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<tok::ByteRange> words;
  tok::pre_tokenize(pre, text, words);
  std::vector<tok::Symbol> syms;
  for (const auto& [wb, we] : words) {
    const std::string_view word = text.substr(wb, we - wb);
    if (v.ignore_merges) {
      std::string spelled;
      for (char c : word) spelled += unicode::byte_to_utf8(static_cast<uint8_t>(c));
      if (const int32_t id = find(spelled); id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    syms.clear();
    for (size_t i = 0; i < word.size(); i++)
      syms.push_back({static_cast<uint32_t>(i), 1, -1, -1, byte_char_token[static_cast<uint8_t>(word[i])]});
    tok::link_symbols(syms);
    tok::merge_symbols(syms, [&](const tok::Symbol& l, const tok::Symbol& r, double& priority, int32_t& id) {
      if (l.id < 0 || r.id < 0) return false;
      auto it = merges.find(tok::pair_key(l.id, r.id));
      if (it == merges.end()) return false;
      priority = -static_cast<double>(it->second.rank);
      id = it->second.result;
      return true;
    });
    for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) {
      if (syms[i].id >= 0) {
        out.push_back(syms[i].id);
      } else if (v.unk >= 0) {
        out.push_back(v.unk);  // a byte whose character is missing from the vocabulary
      }
    }
  }
}

}  // namespace kite
