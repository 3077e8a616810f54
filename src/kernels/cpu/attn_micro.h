// Inner loops of the flash attention kernel (kernels/attention.cpp), one table per ISA level.
// The driver owns tiling, masking and the online-softmax bookkeeping; these functions do the
// arithmetic on small blocks that live in L1/L2:
//   Q  [R][hd]       a tile of query rows, already multiplied by the softmax scale
//   Kt [hd][Bc]      a key block transposed (Bc = kAttnKeyBlock), for tiles of many rows
//   K  rows          a key block as float rows, row j at K + j * k_stride (for tiles of few rows)
//   S  [R][Bc]       scores of the tile against the block, then probabilities P
//   V  rows          a value block as float rows, row j at V + j * v_stride
//   acc [R][hd]      unnormalised output rows
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace kite::kernels::cpu {

struct AttnMicro {
  // S[r][j] = sum_d Q[r][d] * Kt[d][j]   for r < R, j < Bc.
  void (*scores_t)(const float* Q, int R, int hd, const float* Kt, float* S);
  // S[r][j] = Q[r] · K[j]                  for r < R, j < nb.
  void (*scores_d)(const float* Q, int R, int hd, const float* K, size_t k_stride, int nb, float* S);
  // max of x[0..n)
  float (*row_max)(const float* x, int n);
  // x[j] = exp(x[j] - m) for j < n; returns their sum.
  float (*exp_sum)(float* x, int n, float m);
  // acc[r][:] = corr[r] * acc[r][:] + sum_{j<nb} P[r][j] * V[j][:]   for r < R.
  void (*pv)(const float* P, int R, int nb, const float* V, size_t v_stride, int hd, const float* corr,
             float* acc);
  // dst[j][0..hd) = float(row j of type t at src + j * src_stride bytes), j < nb.
  void (*convert)(DType t, const uint8_t* src, size_t src_stride, int nb, int hd, float* dst);
  // Optional (null: convert, then scores_d / pv): the same two products reading K or V rows of
  // type t in place (row j at K + j * k_stride bytes), with the same bits, prefetching the rows of
  // the next block (K_next / V_next, same stride; null: none) as they go. For tiles of few rows
  // (decode), where converting a block costs as much as using it.
  void (*scores_kv)(DType t, const float* Q, int R, int hd, const uint8_t* K, size_t k_stride, int nb, float* S,
                    const uint8_t* K_next);
  void (*pv_kv)(DType t, const float* P, int R, int nb, const uint8_t* V, size_t v_stride, int hd, const float* corr,
                float* acc, const uint8_t* V_next);
};

// The micro-kernels for the active kernel level and this head size (scalar ones when the SIMD
// versions need a multiple of the vector width that hd is not).
const AttnMicro& attn_micro(int hd);

namespace ref {
extern const AttnMicro kAttnMicro;
}
#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
extern const AttnMicro kAttnMicro;  // hd % 8 == 0
}
namespace avx512 {
extern const AttnMicro kAttnMicro;  // hd % 16 == 0
}
#endif

}  // namespace kite::kernels::cpu
