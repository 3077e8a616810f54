#include "quant/quant.h"

#include <cmath>
#include <cstring>
#include <algorithm>

#include "core/error.h"

namespace kite {

namespace {

void f32_to_float(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, n * sizeof(float)); }
void f32_from_float(const float* src, void* dst, int64_t n, const float*) { std::memcpy(dst, src, n * sizeof(float)); }

void f16_to_float(const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
}
void f16_from_float(const float* src, void* dst, int64_t n, const float*) {
  uint16_t* d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; i++) d[i] = f32_to_f16(src[i]);
}

void bf16_to_float(const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
}
void bf16_from_float(const float* src, void* dst, int64_t n, const float*) {
  uint16_t* d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
}

void q8_0_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = d * b[i].qs[j];
  }
}
void q8_0_from_float(const float* src, void* dst, int64_t n, const float*) {
  BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const float* x = src + i * QK8_0;
    float amax = 0;
    for (int j = 0; j < QK8_0; j++) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    for (int j = 0; j < QK8_0; j++) b[i].qs[j] = static_cast<int8_t>(std::lround(x[j] * id));
  }
}

void q4_0_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / QK4_0; i++) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      dst[i * QK4_0 + j] = d * ((b[i].qs[j] & 0x0f) - 8);
      dst[i * QK4_0 + j + QK4_0 / 2] = d * ((b[i].qs[j] >> 4) - 8);
    }
  }
}
void q4_0_from_float(const float* src, void* dst, int64_t n, const float*) {
  // Round-to-nearest with the scale chosen so the largest-magnitude value maps to -8 (as ggml).
  BlockQ4_0* b = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / QK4_0; i++) {
    const float* x = src + i * QK4_0;
    float amax = 0, max = 0;
    for (int j = 0; j < QK4_0; j++)
      if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
    const float d = max / -8.0f;
    const float id = d ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      int q1 = std::min(15, static_cast<int>(x[j + QK4_0 / 2] * id + 8.5f));
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

const QuantTraits kQuantTable[] = {
    {DType::F32, f32_to_float, f32_from_float},
    {DType::F16, f16_to_float, f16_from_float},
    {DType::BF16, bf16_to_float, bf16_from_float},
    {DType::Q8_0, q8_0_to_float, q8_0_from_float},
    {DType::Q4_0, q4_0_to_float, q4_0_from_float},
};

}  // namespace

const QuantTraits* quant_traits(DType t) {
  for (const auto& q : kQuantTable)
    if (q.type == t) return &q;
  return nullptr;
}

void to_float(DType t, const void* src, float* dst, int64_t n) {
  const QuantTraits* q = quant_traits(t);
  if (!q || !q->to_float) fail("tensor type ", dtype_name(t), " cannot be converted to float");
  q->to_float(src, dst, n);
}

void from_float(DType t, const float* src, void* dst, int64_t n, const float* importance) {
  const QuantTraits* q = quant_traits(t);
  if (!q || !q->from_float) fail("cannot quantize to tensor type ", dtype_name(t));
  q->from_float(src, dst, n, importance);
}

}  // namespace kite
