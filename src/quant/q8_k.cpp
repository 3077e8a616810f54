// Q8_K: the activation format K-quant dot products pair with (never stored in files).
// Blocks of 256, x = d * q with an fp32 d, int8 q, and bsums[k] = sum of q[16k .. 16k+15].
//
// Quantization follows llama.cpp exactly so that dot products match its results: the value of
// largest magnitude maps to -127 (iscale = -127 / max), quants round half to even and clip at
// 127, d = 1 / iscale. Importance is ignored (activations have none).
#include <cmath>
#include <cstring>

#include "quant/quant_impl.h"

namespace kite::quant {

void q8_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(src);
  const int64_t nb = block_count(DType::Q8_K, n, QK_K);
  for (int64_t i = 0; i < nb; i++)
    for (int j = 0; j < QK_K; j++) dst[i * QK_K + j] = b[i].d * b[i].qs[j];
}

void q8_k_from_float(const float* src, void* dst, int64_t n, const float*) {
  BlockQ8_K* b = static_cast<BlockQ8_K*>(dst);
  const int64_t nb = block_count(DType::Q8_K, n, QK_K);
  for (int64_t i = 0; i < nb; i++) {
    const float* x = src + i * QK_K;
    float amax = 0, max = 0;
    for (int j = 0; j < QK_K; j++) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax == 0) {
      std::memset(&b[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; j++) {
      // nearbyint rounds half to even in the default rounding mode, as ggml's nearest_int.
      const float v = std::nearbyint(iscale * x[j]);
      b[i].qs[j] = static_cast<int8_t>(v > 127.0f ? 127 : v);
    }
    for (int k = 0; k < QK_K / 16; k++) {
      int sum = 0;
      for (int j = 0; j < 16; j++) sum += b[i].qs[16 * k + j];
      b[i].bsums[k] = static_cast<int16_t>(sum);
    }
    b[i].d = 1.0f / iscale;
  }
}

}  // namespace kite::quant
