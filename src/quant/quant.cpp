#include "quant/quant.h"

#include "core/error.h"
#include "quant/quant_impl.h"

namespace kite {

namespace {

using namespace quant;

// One row per type Kite can convert. Columns: type, to_float, from_float, ignores_importance,
// from_float_matches_ggml.
const QuantTraits kQuantTable[] = {
    {DType::F32, f32_to_float, f32_from_float, true, true},
    {DType::F16, f16_to_float, f16_from_float, true, true},
    {DType::BF16, bf16_to_float, bf16_from_float, true, true},
    {DType::Q8_0, q8_0_to_float, q8_0_from_float, true, true},
    {DType::Q4_0, q4_0_to_float, q4_0_from_float, true, true},
    {DType::Q4_1, q4_1_to_float, q4_1_from_float, false, false},
    {DType::Q5_0, q5_0_to_float, q5_0_from_float, false, false},
    {DType::Q5_1, q5_1_to_float, q5_1_from_float, false, false},
    {DType::Q2_K, q2_k_to_float, q2_k_from_float, false, false},
    {DType::Q3_K, q3_k_to_float, q3_k_from_float, false, false},
    {DType::Q4_K, q4_k_to_float, q4_k_from_float, false, false},
    {DType::Q5_K, q5_k_to_float, q5_k_from_float, false, false},
    {DType::Q6_K, q6_k_to_float, q6_k_from_float, false, false},
    {DType::Q8_K, q8_k_to_float, q8_k_from_float, true, true},
};

}  // namespace

namespace quant {

int64_t block_count(DType t, int64_t n, int block_size) {
  if (n < 0 || n % block_size != 0)
    fail("tensor type ", dtype_name(t), ": ", n, " elements is not a multiple of the block size ",
         block_size);
  return n / block_size;
}

}  // namespace quant

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

void quantize_rows(DType t, const float* src, void* dst, int64_t n_rows, int64_t n_per_row,
                   const float* column_importance) {
  const QuantTraits* q = quant_traits(t);
  if (!q || !q->from_float) fail("cannot quantize to tensor type ", dtype_name(t));
  const DTypeTraits& tr = dtype_traits(t);
  quant::block_count(t, n_per_row, tr.block_size);  // validates the row length
  const size_t out_row = row_bytes(t, n_per_row);
  uint8_t* out = static_cast<uint8_t*>(dst);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < n_rows; r++)
    q->from_float(src + r * n_per_row, out + r * out_row, n_per_row, column_importance);
}

}  // namespace kite
