// Q5_0: blocks of 32, x = d * (q - 16) with an fp16 d, q in [0, 31]. Bits 0-3 of element j are
// the low nibble of qs[j] (element j + 16: the high nibble); bit 4 of element j is bit j of qh
// read as a little-endian uint32.
//
// Quantization: weighted least-squares fit of d over candidate level assignments
// (fit_symmetric, see k_quants_search.h), levels re-rounded against the fp16 d.
#include <cstring>

#include "quant/k_quants_search.h"
#include "quant/quant_impl.h"

namespace kite::quant {

void q5_0_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ5_0* b = static_cast<const BlockQ5_0*>(src);
  const int64_t nb = block_count(DType::Q5_0, n, QK5_0);
  for (int64_t i = 0; i < nb; i++) {
    const float d = f16_to_f32(b[i].d);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    float* y = dst + i * QK5_0;
    for (int j = 0; j < QK5_0 / 2; j++) {
      const int q0 = ((b[i].qs[j] & 0x0f) | (((qh >> j) & 1) << 4)) - 16;
      const int q1 = ((b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      y[j] = q0 * d;
      y[j + QK5_0 / 2] = q1 * d;
    }
  }
}

void q5_0_from_float(const float* src, void* dst, int64_t n, const float* importance) {
  BlockQ5_0* b = static_cast<BlockQ5_0*>(dst);
  const int64_t nb = block_count(DType::Q5_0, n, QK5_0);
  float w[QK5_0];
  int8_t L[QK5_0];
  for (int64_t i = 0; i < nb; i++) {
    const float* x = src + i * QK5_0;
    block_weights(importance ? importance + i * QK5_0 : nullptr, QK5_0, w);
    const SymmetricFit f = fit_symmetric(x, w, QK5_0, -16, 15, L);
    b[i].d = f32_to_f16(f.scale);
    const float d = f16_to_f32(b[i].d);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    uint8_t q[QK5_0];
    for (int j = 0; j < QK5_0; j++) {
      q[j] = static_cast<uint8_t>(clamp_round(x[j] * id, -16, 15) + 16);
      qh |= uint32_t(q[j] >> 4) << j;
    }
    for (int j = 0; j < QK5_0 / 2; j++)
      b[i].qs[j] = static_cast<uint8_t>((q[j] & 0x0f) | ((q[j + QK5_0 / 2] & 0x0f) << 4));
    std::memcpy(b[i].qh, &qh, 4);
  }
}

}  // namespace kite::quant
