// Block formats as one table of traits: a new type is one new row (plus its kernels).
// Layouts are bit-compatible with GGUF/ggml so files move both ways with llama.cpp.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace kite {

struct QuantTraits {
  DType type;
  // Converts n elements (a multiple of the block size) of this type to float.
  void (*to_float)(const void* src, float* dst, int64_t n);
  // Quantizes n floats into this type; nullptr when Kite cannot write the type.
  // `importance` (n weights, may be null) asks for an importance-weighted fit where supported.
  void (*from_float)(const float* src, void* dst, int64_t n, const float* importance);
};

// Traits of a type; nullptr when Kite has no conversion for it.
const QuantTraits* quant_traits(DType t);

// Convenience wrappers; throw kite::Error naming the type when unsupported.
void to_float(DType t, const void* src, float* dst, int64_t n);
void from_float(DType t, const float* src, void* dst, int64_t n, const float* importance = nullptr);

}  // namespace kite
