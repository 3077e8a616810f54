#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace kite::unicode {

uint32_t decode_utf8(std::string_view s, size_t i, size_t& len) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  len = 1;
  if (b0 < 0x80) return b0;
  const size_t n = utf8_seq_len(b0);
  if (n == 1 || i + n > s.size()) return kInvalidBase + b0;
  uint32_t cp = n == 2 ? (b0 & 0x1Fu) : n == 3 ? (b0 & 0x0Fu) : (b0 & 0x07u);
  for (size_t k = 1; k < n; k++) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) return kInvalidBase + b0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  static constexpr uint32_t kMinForLen[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLen[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalidBase + b0;
  len = n;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

static bool in_ranges(const CodepointRange* r, size_t n, uint32_t cp) {
  // First range whose last >= cp; cp is inside when that range starts at or before it.
  const CodepointRange* end = r + n;
  const CodepointRange* it =
      std::lower_bound(r, end, cp, [](const CodepointRange& a, uint32_t v) { return a.last < v; });
  return it != end && it->first <= cp;
}

bool is_letter(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(kLetterRanges, kLetterRangesCount, cp);
}

bool is_number(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(kNumberRanges, kNumberRangesCount, cp);
}

bool is_whitespace(uint32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20:
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

namespace {
struct ByteMap {
  std::array<std::string, 256> to_utf8;
  std::array<int16_t, 324> from_cp;  // every mapped character is below U+0144
  ByteMap() {
    from_cp.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; b++) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + next++;
      append_utf8(to_utf8[b], cp);
      from_cp[cp] = static_cast<int16_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
}  // namespace

const std::string& byte_to_utf8(uint8_t b) { return byte_map().to_utf8[b]; }

int codepoint_to_byte(uint32_t cp) {
  const auto& m = byte_map();
  return cp < m.from_cp.size() ? m.from_cp[cp] : -1;
}

size_t complete_utf8_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 1;
    const uint32_t cp = decode_utf8(s, i, len);
    if (cp >= kInvalidBase) {
      // Invalid here: it is only worth waiting for when it is a lead byte cut off by the end
      // of the buffer with every byte so far a continuation byte.
      const size_t need = utf8_seq_len(static_cast<uint8_t>(s[i]));
      if (need > 1 && i + need > s.size()) {
        bool cont = true;
        for (size_t k = i + 1; k < s.size(); k++) cont = cont && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80;
        if (cont) return i;
      }
    }
    i += len;
  }
  return s.size();
}

}  // namespace kite::unicode
