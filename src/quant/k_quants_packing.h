// Bit packing shared by the K-quant decoders and encoders.
#pragma once
#include <cstdint>

namespace kite::quant {

// Q4_K / Q5_K keep 8 six-bit scales and 8 six-bit mins in 12 bytes:
//   bytes 0-3:  scale j   (j < 4) in bits 0-5; bits 6-7 hold bits 4-5 of scale j+4
//   bytes 4-7:  min j     (j < 4) in bits 0-5; bits 6-7 hold bits 4-5 of min j+4
//   bytes 8-11: bits 0-3 of scale j+4 (low nibble) and of min j+4 (high nibble)
inline void unpack_scale_min_6bit(const uint8_t* p, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = p[j] & 63;
    mn = p[j + 4] & 63;
  } else {
    sc = (p[j + 4] & 0x0f) | ((p[j - 4] >> 6) << 4);
    mn = (p[j + 4] >> 4) | ((p[j] >> 6) << 4);
  }
}

inline void pack_scale_min_6bit(const uint8_t* sc, const uint8_t* mn, uint8_t* p) {
  for (int j = 0; j < 4; j++) {
    p[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    p[j + 4] = static_cast<uint8_t>((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    p[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4));
  }
}

// Q3_K keeps 16 six-bit scales (stored value = scale + 32) in 12 bytes:
//   bytes 0-7:  bits 0-3 of scale j (j < 8) in the low nibble of byte j, of scale j+8 in its high nibble
//   bytes 8-11: bits 4-5 of scale j in bits 2*(j/4) .. 2*(j/4)+1 of byte 8 + j%4
inline int unpack_scale_q3_k(const uint8_t* p, int j) {
  const int low = j < 8 ? (p[j] & 0x0f) : (p[j - 8] >> 4);
  const int high = (p[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

inline void pack_scales_q3_k(const int8_t* sc, uint8_t* p) {
  for (int k = 0; k < 12; k++) p[k] = 0;
  for (int j = 0; j < 16; j++) {
    const int v = sc[j] + 32;  // 0..63
    if (j < 8)
      p[j] |= static_cast<uint8_t>(v & 0x0f);
    else
      p[j - 8] |= static_cast<uint8_t>((v & 0x0f) << 4);
    p[8 + j % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (j / 4)));
  }
}

}  // namespace kite::quant
