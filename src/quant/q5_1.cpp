// Q5_1: blocks of 32, x = d * q + m with fp16 d and m, q in [0, 31]. Bits 0-3 of element j are
// the low nibble of qs[j] (element j + 16: the high nibble); bit 4 of element j is bit j of qh
// read as a little-endian uint32.
//
// Quantization: as Q4_1 (fit_affine with a free offset, levels re-rounded against fp16 values).
#include <cstring>

#include "quant/k_quants_search.h"
#include "quant/quant_impl.h"

namespace kite::quant {

void q5_1_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ5_1* b = static_cast<const BlockQ5_1*>(src);
  const int64_t nb = block_count(DType::Q5_1, n, QK5_1);
  for (int64_t i = 0; i < nb; i++) {
    const float d = f16_to_f32(b[i].d);
    const float m = f16_to_f32(b[i].m);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    float* y = dst + i * QK5_1;
    for (int j = 0; j < QK5_1 / 2; j++) {
      const int q0 = (b[i].qs[j] & 0x0f) | (((qh >> j) & 1) << 4);
      const int q1 = (b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = q0 * d + m;
      y[j + QK5_1 / 2] = q1 * d + m;
    }
  }
}

void q5_1_from_float(const float* src, void* dst, int64_t n, const float* importance) {
  BlockQ5_1* b = static_cast<BlockQ5_1*>(dst);
  const int64_t nb = block_count(DType::Q5_1, n, QK5_1);
  float w[QK5_1];
  uint8_t L[QK5_1];
  for (int64_t i = 0; i < nb; i++) {
    const float* x = src + i * QK5_1;
    block_weights(importance ? importance + i * QK5_1 : nullptr, QK5_1, w);
    const AffineFit f = fit_affine(x, w, QK5_1, 31, false, L);
    b[i].d = f32_to_f16(f.scale);
    b[i].m = f32_to_f16(f.offset);
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    const float id = d > 0 ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1; j++) {
      L[j] = static_cast<uint8_t>(clamp_round((x[j] - m) * id, 0, 31));
      qh |= uint32_t(L[j] >> 4) << j;
    }
    for (int j = 0; j < QK5_1 / 2; j++)
      b[i].qs[j] = static_cast<uint8_t>((L[j] & 0x0f) | ((L[j + QK5_1 / 2] & 0x0f) << 4));
    std::memcpy(b[i].qh, &qh, 4);
  }
}

}  // namespace kite::quant
