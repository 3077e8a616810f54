// Q4_0: blocks of 32, x = d * (q - 8), q in [0, 15]. Element j is the low nibble of qs[j],
// element j + 16 the high nibble.
//
// Quantization is llama.cpp's reference rule (byte-identical): the value of largest magnitude
// maps to level -8 (d = max / -8), the others round to nearest and clip at 15.
#include <algorithm>
#include <cmath>

#include "quant/quant_impl.h"

namespace kite::quant {

void q4_0_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
  const int64_t nb = block_count(DType::Q4_0, n, QK4_0);
  for (int64_t i = 0; i < nb; i++) {
    const float d = f16_to_f32(b[i].d);
    float* y = dst + i * QK4_0;
    for (int j = 0; j < QK4_0 / 2; j++) {
      y[j] = ((b[i].qs[j] & 0x0f) - 8) * d;
      y[j + QK4_0 / 2] = ((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void q4_0_from_float(const float* src, void* dst, int64_t n, const float*) {
  BlockQ4_0* b = static_cast<BlockQ4_0*>(dst);
  const int64_t nb = block_count(DType::Q4_0, n, QK4_0);
  for (int64_t i = 0; i < nb; i++) {
    const float* x = src + i * QK4_0;
    float amax = 0, max = 0;
    for (int j = 0; j < QK4_0; j++)
      if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      // x * id lies in [-8, 8]; +8.5 and truncation is round-half-up onto [0, 16], clipped to 15.
      const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(x[j + QK4_0 / 2] * id + 8.5f));
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

}  // namespace kite::quant
