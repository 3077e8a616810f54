// Block formats as one table of traits: a new type is one new row (plus its kernels).
// Layouts are bit-compatible with GGUF/ggml so files move both ways with llama.cpp.
//
// to_float is exact: it evaluates ggml's dequantization formula in the same float32 operation
// order, so it reproduces llama.cpp's dequantized values bit for bit (src/quant switches off
// FMA contraction for this; see quant_impl.h).
// from_float writes the same layout. For F16/BF16/Q8_0/Q4_0/Q8_K it is the plain round-to-nearest
// rule llama.cpp uses, byte for byte (`from_float_matches_ggml`). For Q4_1/Q5_0/Q5_1 and the
// K-quants it is Kite's own search (src/quant/k_quants_search.h): a weighted least-squares fit of
// every scale and offset (lower error than llama.cpp's Q4_K and Q6_K on the zoo teacher; see
// tests/test_quant_models.cpp); the bytes differ from llama.cpp's but decode the same way in
// any GGUF reader.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace kite {

struct QuantTraits {
  DType type;
  // Converts n elements (a multiple of the block size) of this type to float.
  void (*to_float)(const void* src, float* dst, int64_t n);
  // Quantizes n floats into this type; nullptr when Kite cannot write the type.
  // `importance` (n weights, may be null) asks for an importance-weighted fit where supported:
  // the quantizer then minimises sum_i importance[i] * (x[i] - q[i])^2 instead of the plain
  // squared error.
  void (*from_float)(const float* src, void* dst, int64_t n, const float* importance);
  // True when from_float ignores `importance` (types with a fixed rounding rule).
  bool ignores_importance;
  // True when from_float (without importance) gives the same bytes as llama.cpp's quantizer.
  bool from_float_matches_ggml;
};

// Traits of a type; nullptr when Kite has no conversion for it.
const QuantTraits* quant_traits(DType t);

// Convenience wrappers; throw kite::Error naming the type when unsupported.
void to_float(DType t, const void* src, float* dst, int64_t n);
void from_float(DType t, const float* src, void* dst, int64_t n, const float* importance = nullptr);

// Quantizes a matrix of n_rows rows of n_per_row floats (row-major) into rows of type t.
// `column_importance` (n_per_row weights, may be null) is the per-input-column importance of an
// imatrix (e.g. mean of x^2 of the activations that multiply each column); it applies to every
// row. Rows are quantized in parallel.
void quantize_rows(DType t, const float* src, void* dst, int64_t n_rows, int64_t n_per_row,
                   const float* column_importance = nullptr);

}  // namespace kite
