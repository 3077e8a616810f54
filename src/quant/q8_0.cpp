// Q8_0: blocks of 32, x = d * q with an fp16 scale and int8 quants.
//
// Quantization is llama.cpp's rule, reproduced byte for byte so that a model quantized by Kite
// and by llama.cpp (converter or llama-quantize) is the same file: d = max|x| / 127 in float32,
// q = round-half-away-from-zero(x * (1/d)), d stored as fp16 (round to nearest even). The
// quants use the fp32 d, not its fp16 rounding, exactly as ggml does. Importance is ignored:
// with 255 levels an importance-weighted search has almost nothing to gain, and byte identity
// with llama.cpp is worth more.
#include <cmath>

#include "quant/quant_impl.h"

namespace kite::quant {

void q8_0_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
  const int64_t nb = block_count(DType::Q8_0, n, QK8_0);
  for (int64_t i = 0; i < nb; i++) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = b[i].qs[j] * d;
  }
}

void q8_0_from_float(const float* src, void* dst, int64_t n, const float*) {
  BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
  const int64_t nb = block_count(DType::Q8_0, n, QK8_0);
  for (int64_t i = 0; i < nb; i++) {
    const float* x = src + i * QK8_0;
    float amax = 0;
    for (int j = 0; j < QK8_0; j++) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    // |x * id| <= 127 up to rounding, so roundf cannot leave the int8 range.
    for (int j = 0; j < QK8_0; j++) b[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

}  // namespace kite::quant
