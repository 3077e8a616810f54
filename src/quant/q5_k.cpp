// Q5_K: super-blocks of 256 = 8 sub-blocks of 32, 5.5 bits per weight.
//   y = (d * sc[j]) * q - (dmin * mn[j]),  q in [0, 31],  j = e / 32
// Element e = 64 c + 32 hi + l: bits 0-3 are the low (hi = 0) or high (hi = 1) nibble of
// qs[32 c + l]; bit 4 is bit 2c + hi of qh[l]. sc/mn are 6-bit, packed as in k_quants_packing.h.
//
// Quantization: quantize_affine_super_block with 6-bit scales and mins (k_quants_search.h).
#include "quant/k_quants_packing.h"
#include "quant/k_quants_search.h"
#include "quant/quant_impl.h"

namespace kite::quant {

void q5_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ5_K* b = static_cast<const BlockQ5_K*>(src);
  const int64_t nb = block_count(DType::Q5_K, n, QK_K);
  for (int64_t i = 0; i < nb; i++) {
    const float d = f16_to_f32(b[i].d);
    const float dmin = f16_to_f32(b[i].dmin);
    float* y = dst + i * QK_K;
    for (int j = 0; j < QK_K / 32; j++) {
      int sc, mn;
      unpack_scale_min_6bit(b[i].scales, j, sc, mn);
      const float d1 = d * sc;
      const float m1 = dmin * mn;
      const uint8_t* ql = b[i].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; l++) {
        const int q = ((ql[l] >> shift) & 0x0f) + (((b[i].qh[l] >> j) & 1) ? 16 : 0);
        y[32 * j + l] = d1 * q - m1;
      }
    }
  }
}

void q5_k_from_float(const float* src, void* dst, int64_t n, const float* importance) {
  BlockQ5_K* b = static_cast<BlockQ5_K*>(dst);
  const int64_t nb = block_count(DType::Q5_K, n, QK_K);
  static constexpr AffineKSpec kSpec{8, 31, 63};
  float w[QK_K];
  AffineKBlock blk;
  for (int64_t i = 0; i < nb; i++) {
    block_weights(importance ? importance + i * QK_K : nullptr, QK_K, w);
    quantize_affine_super_block(src + i * QK_K, w, kSpec, blk);
    b[i].d = blk.d;
    b[i].dmin = blk.dmin;
    pack_scale_min_6bit(blk.sc, blk.mn, b[i].scales);
    for (int l = 0; l < 32; l++) b[i].qh[l] = 0;
    for (int c = 0; c < 4; c++) {
      for (int l = 0; l < 32; l++) {
        const int lo = blk.L[64 * c + l], hi = blk.L[64 * c + 32 + l];
        b[i].qs[32 * c + l] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
        b[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
    }
  }
}

}  // namespace kite::quant
