// Q4_1: blocks of 32, x = d * q + m with fp16 d and m, q in [0, 15]. Element j is the low nibble
// of qs[j], element j + 16 the high nibble.
//
// Quantization: weighted least-squares fit of (d, m) over candidate level assignments
// (fit_affine, see k_quants_search.h); the offset may take either sign. The levels are then
// re-rounded against the fp16 values the decoder will read.
#include "quant/k_quants_search.h"
#include "quant/quant_impl.h"

namespace kite::quant {

void q4_1_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ4_1* b = static_cast<const BlockQ4_1*>(src);
  const int64_t nb = block_count(DType::Q4_1, n, QK4_1);
  for (int64_t i = 0; i < nb; i++) {
    const float d = f16_to_f32(b[i].d);
    const float m = f16_to_f32(b[i].m);
    float* y = dst + i * QK4_1;
    for (int j = 0; j < QK4_1 / 2; j++) {
      y[j] = (b[i].qs[j] & 0x0f) * d + m;
      y[j + QK4_1 / 2] = (b[i].qs[j] >> 4) * d + m;
    }
  }
}

void q4_1_from_float(const float* src, void* dst, int64_t n, const float* importance) {
  BlockQ4_1* b = static_cast<BlockQ4_1*>(dst);
  const int64_t nb = block_count(DType::Q4_1, n, QK4_1);
  float w[QK4_1];
  uint8_t L[QK4_1];
  for (int64_t i = 0; i < nb; i++) {
    const float* x = src + i * QK4_1;
    block_weights(importance ? importance + i * QK4_1 : nullptr, QK4_1, w);
    const AffineFit f = fit_affine(x, w, QK4_1, 15, false, L);
    b[i].d = f32_to_f16(f.scale);
    b[i].m = f32_to_f16(f.offset);
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    const float id = d > 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK4_1; j++) L[j] = static_cast<uint8_t>(clamp_round((x[j] - m) * id, 0, 15));
    for (int j = 0; j < QK4_1 / 2; j++) b[i].qs[j] = static_cast<uint8_t>(L[j] | (L[j + QK4_1 / 2] << 4));
  }
}

}  // namespace kite::quant
