// SentencePiece-style BPE ("SPM"): spaces are "▁", an optional "▁" prefix starts the text, and
// the whole fragment (no pre-tokenization) is merged symbol by symbol.
//  - by score (tokenizer.model, GGUF "llama", llama2.c): the symbols are the UTF-8 characters;
//    any adjacent pair whose concatenation is a token may merge, the best score first. This is
//    llama.cpp's SPM tokenizer and llama2.c's encode(). Leftover characters that are not tokens
//    become their <0xXX> byte tokens.
//  - by rank (tokenizer.json): Hugging Face's BPE model; characters that are not tokens become
//    byte tokens first (byte_fallback) or UNK, then the merge rules apply by rank.
#include <algorithm>

#include "core/error.h"
#include "tokenizer/merge.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace kite {

namespace {
constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"

// SentencePiece's remove_extra_whitespaces: no leading or trailing spaces, and runs of spaces
// become one.
std::string collapse_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending_space = false;
  for (char c : s) {
    if (c == ' ') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}
}  // namespace

void Tokenizer::Impl::encode_spm(std::string_view raw, bool prefix, std::vector<int32_t>& out) const {
  std::string collapsed;
  if (v.remove_extra_whitespaces) {
    collapsed = collapse_spaces(raw);
    if (collapsed.empty()) return;
    raw = collapsed;
  }
  std::string text;
  text.reserve(raw.size() + raw.size() / 2 + 3);
  if (prefix && v.add_space_prefix) text += kSpace;
  for (char c : raw) {
    if (c == ' ')
      text += kSpace;
    else
      text += c;
  }
  if (!merge_by_rank) {
    encode_spm_by_score(text, out);
    return;
  }
  if (!v.spm_split_words) {
    encode_spm_by_rank(text, out);
    return;
  }
  // Metaspace split: each "▁" starts a word.
  size_t begin = 0;
  for (size_t pos = text.find(kSpace, 1); pos != std::string::npos; pos = text.find(kSpace, pos + 1)) {
    encode_spm_by_rank(std::string_view(text).substr(begin, pos - begin), out);
    begin = pos;
  }
  encode_spm_by_rank(std::string_view(text).substr(begin), out);
}

void Tokenizer::Impl::encode_spm_by_score(const std::string& text, std::vector<int32_t>& out) const {
  std::vector<tok::Symbol> syms;
  syms.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = std::min(unicode::utf8_seq_len(static_cast<uint8_t>(text[i])), text.size() - i);
    tok::Symbol s;
    s.begin = static_cast<uint32_t>(i);
    s.len = static_cast<uint32_t>(len);
    syms.push_back(s);
    i += len;
  }
  tok::link_symbols(syms);
  const std::string_view tv(text);
  tok::merge_symbols(syms, [&](const tok::Symbol& l, const tok::Symbol& r, double& priority, int32_t& id) {
    id = find(tv.substr(l.begin, l.len + r.len));
    if (id < 0) return false;
    priority = v.scores[id];
    return true;
  });
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) {
    const std::string_view s = tv.substr(syms[i].begin, syms[i].len);
    const int32_t id = syms[i].id >= 0 ? syms[i].id : find(s);
    if (id >= 0)
      out.push_back(id);
    else
      push_bytes(s, out);
  }
}

// Text no token covers: its <0xXX> byte tokens (or single-byte tokens); when some byte has
// neither, the whole symbol becomes one UNK, as SentencePiece does without byte fallback.
void Tokenizer::Impl::push_bytes(std::string_view bytes, std::vector<int32_t>& out) const {
  const size_t start = out.size();
  for (char c : bytes) {
    int32_t id = byte_token[static_cast<uint8_t>(c)];
    if (id < 0) id = find(std::string_view(&c, 1));
    if (id < 0) {
      out.resize(start);
      check(v.unk >= 0, where(), ": cannot encode '", bytes,
            "': no token, byte token or UNK token covers it");
      out.push_back(v.unk);
      return;
    }
    out.push_back(id);
  }
}

void Tokenizer::Impl::encode_spm_by_rank(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<tok::Symbol> syms;
  syms.reserve(word.size());
  for (size_t i = 0; i < word.size();) {
    const size_t len = std::min(unicode::utf8_seq_len(static_cast<uint8_t>(word[i])), word.size() - i);
    const int32_t id = find(word.substr(i, len));
    if (id >= 0) {
      syms.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), -1, -1, id});
    } else if (v.byte_fallback) {
      for (size_t k = 0; k < len; k++)
        syms.push_back({static_cast<uint32_t>(i + k), 1, -1, -1, byte_token[static_cast<uint8_t>(word[i + k])]});
    } else {
      check(v.unk >= 0, where(), ": cannot encode '", word.substr(i, len),
            "': it is not in the vocabulary and there is neither byte fallback nor an UNK token");
      if (!syms.empty() && syms.back().id == v.unk && syms.back().begin + syms.back().len == i)
        syms.back().len += static_cast<uint32_t>(len);  // consecutive unknowns fuse into one UNK
      else
        syms.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), -1, -1, v.unk});
    }
    i += len;
  }
  tok::link_symbols(syms);
  tok::merge_symbols(syms, [&](const tok::Symbol& l, const tok::Symbol& r, double& priority, int32_t& id) {
    auto it = merges.find(tok::pair_key(l.id, r.id));
    if (it == merges.end()) return false;
    priority = -static_cast<double>(it->second.rank);
    id = it->second.result;
    return true;
  });
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

}  // namespace kite
