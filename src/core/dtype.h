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

// ---- more GGUF block layouts (bit-compatible with ggml) ---------------------
// Q4_1 / Q5_1: affine, x = d * q + m. Q5_0: x = d * (q - 16). Element j of a block sits in the
// low nibble of qs[j] and element j+16 in the high nibble; for the 5-bit types bit 4 of element j
// is bit j of qh read as a little-endian uint32.
constexpr int QK4_1 = 32;
struct BlockQ4_1 {
  uint16_t d;              // scale, fp16
  uint16_t m;              // offset, fp16
  uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

constexpr int QK5_0 = 32;
struct BlockQ5_0 {
  uint16_t d;              // scale, fp16
  uint8_t qh[4];           // bit 4 of each element
  uint8_t qs[QK5_0 / 2];   // low 4 bits
};
static_assert(sizeof(BlockQ5_0) == 22);

constexpr int QK5_1 = 32;
struct BlockQ5_1 {
  uint16_t d;              // scale, fp16
  uint16_t m;              // offset, fp16
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// K-quants: super-blocks of 256 elements split into sub-blocks that carry small integer scales,
// themselves scaled by fp16 super-block factors. Bit placement is documented with each decoder
// in src/quant/.
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

struct BlockQ2_K {
  uint8_t scales[QK_K / 16];  // per 16-element sub-block: low nibble scale, high nibble min
  uint8_t qs[QK_K / 4];       // 2-bit quants
  uint16_t d;                 // fp16 factor for the scales
  uint16_t dmin;              // fp16 factor for the mins
};
static_assert(sizeof(BlockQ2_K) == 84);

struct BlockQ3_K {
  uint8_t hmask[QK_K / 8];    // bit 2 of each quant
  uint8_t qs[QK_K / 4];       // bits 0-1 of each quant
  uint8_t scales[12];         // 16 signed 6-bit scales (stored + 32)
  uint16_t d;                 // fp16 factor for the scales
};
static_assert(sizeof(BlockQ3_K) == 110);

struct BlockQ4_K {
  uint16_t d;                    // fp16 factor for the scales
  uint16_t dmin;                 // fp16 factor for the mins
  uint8_t scales[K_SCALE_SIZE];  // 8 six-bit scales and 8 six-bit mins
  uint8_t qs[QK_K / 2];          // 4-bit quants
};
static_assert(sizeof(BlockQ4_K) == 144);

struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];          // bit 4 of each quant
  uint8_t qs[QK_K / 2];          // bits 0-3 of each quant
};
static_assert(sizeof(BlockQ5_K) == 176);

struct BlockQ6_K {
  uint8_t ql[QK_K / 2];          // bits 0-3 of each quant
  uint8_t qh[QK_K / 4];          // bits 4-5 of each quant
  int8_t scales[QK_K / 16];      // per 16-element sub-block, 8-bit signed
  uint16_t d;                    // fp16 factor for the scales
};
static_assert(sizeof(BlockQ6_K) == 210);

// Activation format for K-quant dot products (not stored in files).
struct BlockQ8_K {
  float d;                       // scale, fp32
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];      // sum of each group of 16 quants
};
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace kite
