// A tensor is a typed, shaped view of bytes owned by someone else (usually a mapped file).
// Dimension order follows GGUF: ne[0] is the innermost, contiguous dimension. A weight matrix
// that maps n_in -> n_out has ne = {n_in, n_out}: n_out rows of n_in elements.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace kite {

struct Tensor {
  std::string name;
  DType type = DType::F32;
  int n_dims = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};
  const void* data = nullptr;
  size_t nbytes = 0;
  // Optional: the same weights in the matmul kernels' own layout (kernels::packed_bytes / pack_into), owned
  // by whoever owns `data`; nullptr when none. Everything but matmul reads `data`.
  const void* packed = nullptr;

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  size_t row_size() const { return row_bytes(type, ne[0]); }
  const uint8_t* row(int64_t i) const { return static_cast<const uint8_t*>(data) + i * row_size(); }
  std::string shape_str() const;
};

}  // namespace kite
