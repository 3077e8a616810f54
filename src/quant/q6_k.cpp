// Q6_K: super-blocks of 256 = 16 sub-blocks of 16, 6.5625 bits per weight.
//   y = (d * scales[j]) * q,  q in [-32, 31],  scales[j] int8,  j = e / 16
// Element e = 128 h + 32 g + l (h < 2, g < 4, l < 32): bits 0-3 are the low (g < 2) or high
// (g >= 2) nibble of ql[64 h + 32 (g % 2) + l]; bits 4-5 are bits 2g..2g+1 of qh[32 h + l];
// q = bits - 32.
//
// Quantization: quantize_symmetric_super_block with 8-bit signed scales (k_quants_search.h).
#include "quant/k_quants_search.h"
#include "quant/quant_impl.h"

namespace kite::quant {

void q6_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(src);
  const int64_t nb = block_count(DType::Q6_K, n, QK_K);
  for (int64_t i = 0; i < nb; i++) {
    const float d = f16_to_f32(b[i].d);
    float* y = dst + i * QK_K;
    for (int e = 0; e < QK_K; e++) {
      const int h = e / 128, g = (e % 128) / 32, l = e % 32;
      const int low = (b[i].ql[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 0x0f;
      const int high = (b[i].qh[32 * h + l] >> (2 * g)) & 3;
      const int q = (low | (high << 4)) - 32;
      y[e] = d * b[i].scales[e / 16] * q;  // (d * scale) * q, as ggml evaluates it
    }
  }
}

void q6_k_from_float(const float* src, void* dst, int64_t n, const float* importance) {
  BlockQ6_K* b = static_cast<BlockQ6_K*>(dst);
  const int64_t nb = block_count(DType::Q6_K, n, QK_K);
  static constexpr SymmetricKSpec kSpec{-32, 31, -128, 127};
  float w[QK_K];
  SymmetricKBlock blk;
  for (int64_t i = 0; i < nb; i++) {
    block_weights(importance ? importance + i * QK_K : nullptr, QK_K, w);
    quantize_symmetric_super_block(src + i * QK_K, w, kSpec, blk);
    b[i].d = blk.d;
    for (int j = 0; j < 16; j++) b[i].scales[j] = blk.sc[j];
    for (int k = 0; k < QK_K / 2; k++) b[i].ql[k] = 0;
    for (int k = 0; k < QK_K / 4; k++) b[i].qh[k] = 0;
    for (int e = 0; e < QK_K; e++) {
      const int h = e / 128, g = (e % 128) / 32, l = e % 32;
      const int u = blk.L[e] + 32;  // 0..63
      b[i].ql[64 * h + 32 * (g % 2) + l] |= static_cast<uint8_t>((u & 0x0f) << (4 * (g / 2)));
      b[i].qh[32 * h + l] |= static_cast<uint8_t>((u >> 4) << (2 * g));
    }
  }
}

}  // namespace kite::quant
