// Element and block types. Ids equal GGML's type ids so GGUF files map straight onto them.
// Quantized types store blocks of `block_size` elements in `type_size` bytes; a row of n
// elements takes n / block_size * type_size bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace kite {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct DTypeTraits {
  DType type;
  const char* name;
  int block_size;    // elements per block (1 for plain types)
  int type_size;     // bytes per block
  bool supported;    // Kite can compute with it
};

// Traits for a type id read from a file; nullptr when the id is unknown.
const DTypeTraits* dtype_traits(uint32_t id);
const DTypeTraits& dtype_traits(DType t);
const char* dtype_name(DType t);
// Bytes of a row of n elements (n must be a multiple of the block size).
size_t row_bytes(DType t, int64_t n);

// ---- scalar conversions ----------------------------------------------------
inline float fp32_from_bits(uint32_t w) { float f; std::memcpy(&f, &w, 4); return f; }
inline uint32_t fp32_to_bits(float f) { uint32_t w; std::memcpy(&w, &f, 4); return w; }

inline float bf16_to_f32(uint16_t h) { return fp32_from_bits(uint32_t(h) << 16); }
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = fp32_to_bits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 64);  // quiet NaN
  return uint16_t((u + (0x7fff + ((u >> 16) & 1))) >> 16);               // round to nearest even
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// ---- GGUF-compatible block layouts -----------------------------------------
constexpr int QK8_0 = 32;
struct BlockQ8_0 {
  uint16_t d;            // scale, fp16
  int8_t qs[QK8_0];      // x = d * q
};
static_assert(sizeof(BlockQ8_0) == 34);

constexpr int QK4_0 = 32;
struct BlockQ4_0 {
  uint16_t d;              // scale, fp16
  uint8_t qs[QK4_0 / 2];   // element j in low nibble of qs[j], element j+16 in high nibble; x = d * (q - 8)
};
static_assert(sizeof(BlockQ4_0) == 18);

}  // namespace kite
