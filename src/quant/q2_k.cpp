// Q2_K: super-blocks of 256 = 16 sub-blocks of 16, 2.625 bits per weight.
//   y = (d * (scales[j] & 15)) * q - (dmin * (scales[j] >> 4)),  q in [0, 3],  j = e / 16
// Quant of element e = 128 h + 32 g + l (h < 2, g < 4, l < 32): bits 2g..2g+1 of qs[32 h + l].
//
// Quantization: quantize_affine_super_block with 4-bit scales and mins (k_quants_search.h).
#include "quant/k_quants_search.h"
#include "quant/quant_impl.h"

namespace kite::quant {

void q2_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ2_K* b = static_cast<const BlockQ2_K*>(src);
  const int64_t nb = block_count(DType::Q2_K, n, QK_K);
  for (int64_t i = 0; i < nb; i++) {
    const float d = f16_to_f32(b[i].d);
    const float dmin = f16_to_f32(b[i].dmin);
    float* y = dst + i * QK_K;
    for (int j = 0; j < QK_K / 16; j++) {
      const float dl = d * (b[i].scales[j] & 0x0f);
      const float ml = dmin * (b[i].scales[j] >> 4);
      for (int k = 0; k < 16; k++) {
        const int e = 16 * j + k;
        const int q = (b[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        y[e] = dl * q - ml;
      }
    }
  }
}

void q2_k_from_float(const float* src, void* dst, int64_t n, const float* importance) {
  BlockQ2_K* b = static_cast<BlockQ2_K*>(dst);
  const int64_t nb = block_count(DType::Q2_K, n, QK_K);
  static constexpr AffineKSpec kSpec{16, 3, 15};
  float w[QK_K];
  AffineKBlock blk;
  for (int64_t i = 0; i < nb; i++) {
    block_weights(importance ? importance + i * QK_K : nullptr, QK_K, w);
    quantize_affine_super_block(src + i * QK_K, w, kSpec, blk);
    b[i].d = blk.d;
    b[i].dmin = blk.dmin;
    for (int j = 0; j < 16; j++) b[i].scales[j] = static_cast<uint8_t>(blk.sc[j] | (blk.mn[j] << 4));
    for (int k = 0; k < QK_K / 4; k++) b[i].qs[k] = 0;
    for (int e = 0; e < QK_K; e++)
      b[i].qs[32 * (e / 128) + e % 32] |= static_cast<uint8_t>(blk.L[e] << (2 * ((e % 128) / 32)));
  }
}

}  // namespace kite::quant
