// The bytes each token stands for, computed once per vocabulary (llama.cpp's token_to_piece):
//  - SPM: "▁" -> " ", "<0xXX>" byte tokens -> that byte, UNK -> "▅" (U+2585, as llama.cpp);
//  - BPE: GPT-2's byte<->character mapping undone; user-defined tokens are stored as raw text;
//  - control and unused tokens -> "".
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace kite {

namespace {
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xXX>" -> XX, else -1.
int parse_byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  const int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string unescape_spaces(const std::string& t) {
  std::string out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size(); i++) {
    if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
      out += ' ';
      i += 2;
    } else {
      out += t[i];
    }
  }
  return out;
}

std::string undo_byte_level(const std::string& t) {
  std::string out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size();) {
    size_t len = 1;
    const uint32_t cp = unicode::decode_utf8(t, i, len);
    const int b = cp < unicode::kInvalidBase ? unicode::codepoint_to_byte(cp) : -1;
    if (b >= 0)
      out += static_cast<char>(b);
    else
      out.append(t, i, len);  // not a byte character: keep the text as it is
    i += len;
  }
  return out;
}
}  // namespace

std::string Tokenizer::Impl::compute_piece(int32_t id) const {
  const std::string& t = v.tokens[id];
  switch (v.token_types[id]) {
    case TokenType::Control:
    case TokenType::Unused:
      return "";
    case TokenType::Unknown:
      return v.type == VocabType::SPM ? "\xE2\x96\x85" : "";
    case TokenType::Byte: {
      const int b = parse_byte_token(t);
      if (b >= 0) return std::string(1, static_cast<char>(b));
      return v.type == VocabType::SPM ? unescape_spaces(t) : undo_byte_level(t);
    }
    case TokenType::UserDefined:
      return v.type == VocabType::SPM ? unescape_spaces(t) : t;
    case TokenType::Normal:
    case TokenType::Undefined:
      break;
  }
  return v.type == VocabType::SPM ? unescape_spaces(t) : undo_byte_level(t);
}

}  // namespace kite
