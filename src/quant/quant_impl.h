// Internal to src/quant: the per-type conversion functions that quant.cpp puts in its table, and
// the small numeric helpers they share. Nothing outside src/quant should include this.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/dtype.h"

// Decoders must round a*b and then a*b - c separately, as ggml's reference C code does (it is
// built without FMA): a fused multiply-add would change the last bit of some values. GCC
// contracts a*b - c into an FMA whenever the target has one (even in ISO C++ mode), so contraction
// is switched off for every file of src/quant, whatever -march the project is built with.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace kite::quant {

// ---- per-type entry points (signatures of QuantTraits::to_float / from_float) ----------------
#define KITE_QUANT_DECLARE(name)                                        \
  void name##_to_float(const void* src, float* dst, int64_t n);         \
  void name##_from_float(const float* src, void* dst, int64_t n, const float* importance);

KITE_QUANT_DECLARE(f32)
KITE_QUANT_DECLARE(f16)
KITE_QUANT_DECLARE(bf16)
KITE_QUANT_DECLARE(q8_0)
KITE_QUANT_DECLARE(q4_0)
KITE_QUANT_DECLARE(q4_1)
KITE_QUANT_DECLARE(q5_0)
KITE_QUANT_DECLARE(q5_1)
KITE_QUANT_DECLARE(q2_k)
KITE_QUANT_DECLARE(q3_k)
KITE_QUANT_DECLARE(q4_k)
KITE_QUANT_DECLARE(q5_k)
KITE_QUANT_DECLARE(q6_k)
KITE_QUANT_DECLARE(q8_k)
#undef KITE_QUANT_DECLARE

// ---- helpers ----------------------------------------------------------------------------------

// Nearest integer to v, clamped to [lo, hi]; ties round up; NaN gives lo. The clamp happens in
// float before the conversion, so huge or non-finite inputs never overflow an int, and the
// shifted value is non-negative so truncation rounds correctly (no floor() call: this sits in
// the inner loop of every scale search).
inline int clamp_round(float v, int lo, int hi) {
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  v = v > flo ? v : flo;
  v = v < fhi ? v : fhi;
  return static_cast<int>(v - flo + 0.5f) + lo;
}

// The value an fp32 scale takes once stored as fp16 and read back: quantizers must reason about
// the scale the decoder will see, not the one they computed.
inline float fp16_round(float v) { return f16_to_f32(f32_to_f16(v)); }

// Per-element error weights for one block of n values. Without importance every element counts
// the same (plain squared error). With importance, w[i] = importance[i] plus a tiny floor
// (1e-6 of the block mean) so that a block whose importance is all zero still gets a sensible,
// non-degenerate least-squares fit; a block of all-zero importance falls back to uniform weights.
inline void block_weights(const float* importance, int n, float* w) {
  if (!importance) {
    std::fill(w, w + n, 1.0f);
    return;
  }
  double sum = 0;
  for (int i = 0; i < n; i++) {
    w[i] = importance[i] > 0 ? importance[i] : 0.0f;  // negative or NaN importance counts as none
    sum += w[i];
  }
  if (!(sum > 0) || !std::isfinite(sum)) {
    std::fill(w, w + n, 1.0f);
    return;
  }
  const float floor = static_cast<float>(sum / n * 1e-6);
  for (int i = 0; i < n; i++) w[i] += floor;
}

// Number of whole blocks in n elements; throws kite::Error naming the type when n is not a
// multiple of the block size.
int64_t block_count(DType t, int64_t n, int block_size);

}  // namespace kite::quant
