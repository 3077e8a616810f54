// Q3_K: super-blocks of 256 = 16 sub-blocks of 16, 3.4375 bits per weight.
//   y = (d * sc[j]) * q,  q in [-4, 3],  sc[j] a signed 6-bit scale,  j = e / 16
// Quant of element e = 128 h + 32 g + l (h < 2, g < 4, l < 32): bits 0-1 are bits 2g..2g+1 of
// qs[32 h + l]; bit 2 is bit 4h + g of hmask[l]; q = (bits 0-1) - (bit 2 ? 0 : 4).
// Scale packing: k_quants_packing.h.
//
// Quantization: quantize_symmetric_super_block with 6-bit signed scales (k_quants_search.h).
#include "quant/k_quants_packing.h"
#include "quant/k_quants_search.h"
#include "quant/quant_impl.h"

namespace kite::quant {

void q3_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ3_K* b = static_cast<const BlockQ3_K*>(src);
  const int64_t nb = block_count(DType::Q3_K, n, QK_K);
  for (int64_t i = 0; i < nb; i++) {
    const float d = f16_to_f32(b[i].d);
    float* y = dst + i * QK_K;
    for (int j = 0; j < QK_K / 16; j++) {
      const float dl = d * unpack_scale_q3_k(b[i].scales, j);
      for (int k = 0; k < 16; k++) {
        const int e = 16 * j + k;
        const int h = e / 128, g = (e % 128) / 32, l = e % 32;
        const int low = (b[i].qs[32 * h + l] >> (2 * g)) & 3;
        const int q = low - (((b[i].hmask[l] >> (4 * h + g)) & 1) ? 0 : 4);
        y[e] = dl * q;
      }
    }
  }
}

void q3_k_from_float(const float* src, void* dst, int64_t n, const float* importance) {
  BlockQ3_K* b = static_cast<BlockQ3_K*>(dst);
  const int64_t nb = block_count(DType::Q3_K, n, QK_K);
  static constexpr SymmetricKSpec kSpec{-4, 3, -32, 31};
  float w[QK_K];
  SymmetricKBlock blk;
  for (int64_t i = 0; i < nb; i++) {
    block_weights(importance ? importance + i * QK_K : nullptr, QK_K, w);
    quantize_symmetric_super_block(src + i * QK_K, w, kSpec, blk);
    b[i].d = blk.d;
    pack_scales_q3_k(blk.sc, b[i].scales);
    for (int k = 0; k < QK_K / 8; k++) b[i].hmask[k] = 0;
    for (int k = 0; k < QK_K / 4; k++) b[i].qs[k] = 0;
    for (int e = 0; e < QK_K; e++) {
      const int h = e / 128, g = (e % 128) / 32, l = e % 32;
      const int u = blk.L[e] + 4;  // 0..7
      b[i].qs[32 * h + l] |= static_cast<uint8_t>((u & 3) << (2 * g));
      b[i].hmask[l] |= static_cast<uint8_t>((u >> 2) << (4 * h + g));
    }
  }
}

}  // namespace kite::quant
