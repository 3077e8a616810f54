// UTF-8 and Unicode helpers for the tokenizers: decoding with explicit handling of invalid
// bytes, the character classes the pre-tokenizer "regexes" use (\p{L}, \p{N}, \s), and GPT-2's
// byte <-> printable-character mapping used by byte-level BPE vocabularies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kite::unicode {

struct CodepointRange {
  uint32_t first, last;  // inclusive
};

// Generated tables (unicode_tables.cpp, from scripts/gen_unicode_tables.py), sorted by first.
extern const CodepointRange kLetterRanges[];
extern const size_t kLetterRangesCount;
extern const CodepointRange kNumberRanges[];
extern const size_t kNumberRangesCount;

// A byte that does not start a valid UTF-8 sequence decodes to kInvalidBase + byte: a value
// outside Unicode, so it is "other" for every class below and is never confused with U+FFFD.
constexpr uint32_t kInvalidBase = 0x110000;

// Decodes the sequence starting at s[i]; sets len (>= 1). Overlong forms, surrogates, values
// above U+10FFFF and truncated sequences give kInvalidBase + s[i] with len 1.
uint32_t decode_utf8(std::string_view s, size_t i, size_t& len);

// Length of the sequence a lead byte announces (1 for ASCII and for stray continuation bytes).
// This is the (lenient) character split SentencePiece-style tokenizers use.
inline size_t utf8_seq_len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

void append_utf8(std::string& out, uint32_t cp);

bool is_letter(uint32_t cp);      // \p{L}
bool is_number(uint32_t cp);      // \p{N}
bool is_whitespace(uint32_t cp);  // \s (the Unicode White_Space property)

// GPT-2's reversible byte -> character mapping: printable Latin-1 bytes map to themselves, the
// 68 others to U+0100.. in byte order. byte_to_utf8(b) is the UTF-8 of the character for b.
const std::string& byte_to_utf8(uint8_t b);
// The byte a mapped character stands for, or -1 when cp is not one of the 256 characters.
int codepoint_to_byte(uint32_t cp);

// Length of the longest prefix of s made of complete sequences, stopping before a trailing
// sequence that is valid so far but incomplete. Used by the streaming decoder.
size_t complete_utf8_prefix(std::string_view s);

}  // namespace kite::unicode
