// llama2.c tokenizer.bin: int32 max_token_length, then until the end of the file one record per
// token: float32 score, int32 byte length, bytes. The exporter wrote spaces instead of "▁" and
// "\n<s>\n" / "\n</s>\n" for BOS/EOS; they are mapped back so the vocabulary reads like its
// tokenizer.model. Token types are not stored: <unk>, <s>, </s> and <0xXX> are recognised by text.
#include <cstring>

#include "core/error.h"
#include "core/mmap.h"
#include "tokenizer/tokenizer_impl.h"

namespace kite {

namespace {
bool is_byte_token(const std::string& t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && hex(t[3]) && hex(t[4]) && t[5] == '>';
}
}  // namespace

namespace tok {

VocabData load_llama2c(const std::string& path) {
  auto file = MappedFile::open(path);
  const uint8_t* p = file->data();
  const size_t size = file->size();
  VocabData v;
  v.type = VocabType::SPM;
  v.source = path;
  check(size >= 4, path, ": ", size, " bytes is too short for a llama2.c tokenizer (no max_token_length)");
  int32_t max_len = 0;
  std::memcpy(&max_len, p, 4);
  check(max_len > 0 && max_len <= (1 << 20), path, ": max_token_length = ", max_len, " is not plausible");
  size_t off = 4;
  while (off < size) {
    const size_t id = v.tokens.size();
    check(size - off >= 8, path, ": token ", id, " at offset ", off, ": truncated record (", size - off,
          " bytes left, need 8 for score and length)");
    float score = 0;
    int32_t len = 0;
    std::memcpy(&score, p + off, 4);
    std::memcpy(&len, p + off + 4, 4);
    off += 8;
    check(len >= 0 && static_cast<size_t>(len) <= size - off, path, ": token ", id, " at offset ", off - 4,
          ": length ", len, " runs past the end of the file (", size - off, " bytes left)");
    check(len <= max_len, path, ": token ", id, ": length ", len, " exceeds max_token_length ", max_len);
    std::string t(reinterpret_cast<const char*>(p + off), static_cast<size_t>(len));
    off += static_cast<size_t>(len);
    TokenType type = TokenType::Normal;
    if (t == "\n<s>\n" || t == "<s>") {
      t = "<s>";
      type = TokenType::Control;
      if (v.bos < 0) v.bos = static_cast<int32_t>(id);
    } else if (t == "\n</s>\n" || t == "</s>") {
      t = "</s>";
      type = TokenType::Control;
      if (v.eos < 0) v.eos = static_cast<int32_t>(id);
    } else if (t == "<unk>") {
      type = TokenType::Unknown;
      if (v.unk < 0) v.unk = static_cast<int32_t>(id);
    } else if (is_byte_token(t)) {
      type = TokenType::Byte;
      v.byte_fallback = true;  // then all 256 must be present (checked by Tokenizer)
    } else {
      std::string s;
      for (char c : t) s += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
      t = std::move(s);
    }
    v.tokens.push_back(std::move(t));
    v.scores.push_back(score);
    v.token_types.push_back(type);
  }
  check(!v.tokens.empty(), path, ": no tokens after the header");
  v.add_bos = v.bos >= 0;
  v.add_space_prefix = true;  // run.c prepends a space to non-empty text
  return v;
}

}  // namespace tok

Tokenizer Tokenizer::from_llama2c(const std::string& path) { return Tokenizer(tok::load_llama2c(path)); }

}  // namespace kite
