// Hand-written equivalents of the pre-tokenizer regexes. Each "matcher" answers: how many
// codepoints does the family's regex match when the match starts exactly at position i (0 when
// it cannot)? Scanning left to right and taking that match where it exists gives the regex's
// find-all; the text between matches is kept as words of its own (Hugging Face's "Isolated"
// split, and llama.cpp's behaviour). A family made of several regexes applies them one after
// the other, each inside the words the previous one produced; a lookahead never sees past the
// end of its word.
#include "tokenizer/pretokenize.h"

#include <algorithm>
#include <cstdint>

#include "tokenizer/unicode.h"

namespace kite::tok {
namespace {

enum : uint8_t { kL = 1, kN = 2, kWS = 4 };

struct Text {
  std::vector<uint32_t> cp;
  std::vector<uint8_t> cls;   // kL / kN / kWS bits
  std::vector<size_t> off;    // byte offset of each codepoint, plus the total size at the end
};

Text decode(std::string_view s) {
  Text t;
  t.cp.reserve(s.size());
  t.cls.reserve(s.size());
  t.off.reserve(s.size() + 1);
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 1;
    const uint32_t c = unicode::decode_utf8(s, i, len);
    t.cp.push_back(c);
    t.cls.push_back(static_cast<uint8_t>((unicode::is_letter(c) ? kL : 0) | (unicode::is_number(c) ? kN : 0) |
                                         (unicode::is_whitespace(c) ? kWS : 0)));
    t.off.push_back(i);
    i += len;
  }
  t.off.push_back(s.size());
  return t;
}

using Piece = std::pair<size_t, size_t>;  // codepoint indices [begin, end)

bool is_l(const Text& t, size_t i) { return t.cls[i] & kL; }
bool is_n(const Text& t, size_t i) { return t.cls[i] & kN; }
bool is_ws(const Text& t, size_t i) { return t.cls[i] & kWS; }
bool is_other(const Text& t, size_t i) { return t.cls[i] == 0; }  // [^\s\p{L}\p{N}]
bool is_crlf(const Text& t, size_t i) { return t.cp[i] == '\r' || t.cp[i] == '\n'; }

// End of the run of codepoints satisfying pred, starting at i, not past e.
template <class Pred>
size_t run_end(const Text& t, size_t i, size_t e, Pred pred) {
  while (i < e && pred(t, i)) i++;
  return i;
}

// 's|'t|'re|'ve|'m|'ll|'d at i (t.cp[i] is the apostrophe), optionally case-insensitive.
size_t contraction(const Text& t, size_t i, size_t e, bool fold_case) {
  auto at = [&](size_t k) -> uint32_t {
    if (k >= e) return 0;
    const uint32_t c = t.cp[k];
    return fold_case && c >= 'A' && c <= 'Z' ? c + 32 : c;
  };
  const uint32_t c1 = at(i + 1), c2 = at(i + 2);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// \s+(?!\S)|\s+ at i (a whitespace): the run, less its last character when a non-space follows
// inside the word (that character then starts the next word, e.g. " ?\p{L}+").
size_t trailing_space_run(const Text& t, size_t i, size_t e) {
  const size_t j = run_end(t, i, e, is_ws);
  if (j == e || j - i == 1) return j - i;
  return j - i - 1;
}

size_t match_gpt2(const Text& t, size_t i, size_t e) {
  if (t.cp[i] == '\'') {
    if (size_t n = contraction(t, i, e, false)) return n;
  }
  // ' ?X+' for X in letters, numbers, others: an optional literal space, then a run.
  const bool space_then = t.cp[i] == ' ' && i + 1 < e;
  for (auto pred : {is_l, is_n, is_other}) {
    if (pred(t, i)) return run_end(t, i, e, pred) - i;
    if (space_then && pred(t, i + 1)) return run_end(t, i + 1, e, pred) - i;
  }
  return trailing_space_run(t, i, e);
}

template <size_t MaxDigits>
size_t match_llama3(const Text& t, size_t i, size_t e) {
  if (t.cp[i] == '\'') {
    if (size_t n = contraction(t, i, e, true)) return n;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (is_l(t, i)) return run_end(t, i, e, is_l) - i;
  if (!is_crlf(t, i) && !is_n(t, i) && i + 1 < e && is_l(t, i + 1)) return run_end(t, i + 1, e, is_l) - i;
  // \p{N}{1,MaxDigits}
  if (is_n(t, i)) return std::min(run_end(t, i, e, is_n) - i, MaxDigits);
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  size_t j = i;
  if (t.cp[i] == ' ' && i + 1 < e && is_other(t, i + 1)) j = i + 1;
  if (is_other(t, j)) {
    j = run_end(t, j, e, is_other);
    return run_end(t, j, e, is_crlf) - i;
  }
  // \s*[\r\n]+ : whitespace up to and including the last line break of the run.
  const size_t ws_end = run_end(t, i, e, is_ws);
  for (size_t k = ws_end; k > i; k--) {
    if (is_crlf(t, k - 1)) return k - i;
  }
  return trailing_space_run(t, i, e);
}

// DeepSeek LLM's letter class: the cased letters of the scripts it lists (its tokenizer.json
// spells these ranges out instead of using \p{L}).
bool deepseek_letter(uint32_t c) {
  static constexpr unicode::CodepointRange kRanges[] = {
      {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
      {0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377},
      {0x37B, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C},
      {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
      {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
      {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
      {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
      {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
      {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC},
      {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
      {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
      {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
      {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
      {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787},
      {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
      {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
      {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
  };
  for (const auto& r : kRanges) {
    if (c < r.first) return false;
    if (c <= r.last) return true;
  }
  return false;
}

// DeepSeek LLM's punctuation class: [!-/:-~！-／：-～‘-‟　-。]
bool deepseek_punct(uint32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x7E) || (c >= 0xFF01 && c <= 0xFF0F) ||
         (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) || (c >= 0x3000 && c <= 0x3002);
}

// [一-龥ࠀ-一가-퟿]
bool deepseek_cjk(uint32_t c) { return (c >= 0x0800 && c <= 0x9FA5) || (c >= 0xAC00 && c <= 0xD7FF); }

// \s?[X]+ for a codepoint class X.
template <bool (*X)(uint32_t)>
size_t match_space_then_class(const Text& t, size_t i, size_t e) {
  auto in = [](const Text& tt, size_t k) { return X(tt.cp[k]); };
  if (is_ws(t, i) && i + 1 < e && X(t.cp[i + 1])) return run_end(t, i + 1, e, in) - i;
  if (X(t.cp[i])) return run_end(t, i, e, in) - i;
  return 0;
}

template <bool (*X)(uint32_t)>
size_t match_class_run(const Text& t, size_t i, size_t e) {
  auto in = [](const Text& tt, size_t k) { return X(tt.cp[k]); };
  return run_end(t, i, e, in) - i;
}

size_t match_crlf(const Text& t, size_t i, size_t) { return is_crlf(t, i) ? 1 : 0; }
size_t match_numbers(const Text& t, size_t i, size_t e) { return run_end(t, i, e, is_n) - i; }
size_t match_one_number(const Text& t, size_t i, size_t) { return is_n(t, i) ? 1 : 0; }

template <class Matcher>
void split(const Text& t, std::vector<Piece>& pieces, Matcher match) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (const auto& [b, e] : pieces) {
    size_t gap = b, i = b;
    while (i < e) {
      const size_t n = match(t, i, e);
      if (n == 0) {
        i++;
        continue;
      }
      if (gap < i) out.emplace_back(gap, i);
      out.emplace_back(i, i + n);
      i += n;
      gap = i;
    }
    if (gap < e) out.emplace_back(gap, e);
  }
  pieces.swap(out);
}

// \s+$ : the whitespace that ends each word becomes a word of its own.
void split_trailing_space(const Text& t, std::vector<Piece>& pieces) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (const auto& [b, e] : pieces) {
    size_t s = e;
    while (s > b && is_ws(t, s - 1)) s--;
    if (b < s) out.emplace_back(b, s);
    if (s < e) out.emplace_back(s, e);
  }
  pieces.swap(out);
}

}  // namespace

PreTokenizer pre_tokenizer_from_name(std::string_view name) {
  for (std::string_view n : {"llama3", "llama-bpe", "llama-v3", "falcon3", "pixtral", "dbrx", "smaug-bpe"})
    if (name == n) return PreTokenizer::Llama3;
  for (std::string_view n : {"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"})
    if (name == n) return PreTokenizer::Qwen2;
  if (name == "deepseek-llm") return PreTokenizer::DeepSeekLLM;
  for (std::string_view n : {"smollm", "starcoder", "refact"})
    if (name == n) return PreTokenizer::SmolLM;
  return PreTokenizer::GPT2;
}

void pre_tokenize(PreTokenizer kind, std::string_view text, std::vector<ByteRange>& words) {
  if (text.empty()) return;
  const Text t = decode(text);
  std::vector<Piece> pieces{{0, t.cp.size()}};
  switch (kind) {
    case PreTokenizer::GPT2:
      split(t, pieces, match_gpt2);
      break;
    case PreTokenizer::Llama3:
      split(t, pieces, match_llama3<3>);
      break;
    case PreTokenizer::Qwen2:
      split(t, pieces, match_llama3<1>);
      break;
    case PreTokenizer::SmolLM:
      split(t, pieces, match_one_number);
      split(t, pieces, match_gpt2);
      break;
    case PreTokenizer::DeepSeekLLM:
      split(t, pieces, match_crlf);
      split(t, pieces, match_space_then_class<deepseek_letter>);
      split(t, pieces, match_space_then_class<deepseek_punct>);
      split_trailing_space(t, pieces);
      split(t, pieces, match_class_run<deepseek_cjk>);
      split(t, pieces, match_numbers);
      break;
  }
  for (const auto& [b, e] : pieces) words.emplace_back(t.off[b], t.off[e]);
}

}  // namespace kite::tok
