// The compute kernels the model calls. Each op has a scalar reference in kernels/ref (the test
// oracle); kernels/cpu holds SIMD versions chosen at run time by CPU features. The entry points
// here dispatch to the best available implementation.
//
// Layout conventions: activations are row-major [n_tok][n], float32. A weight W has
// ne = {n_in, n_out} (n_out rows of n_in elements) in any type of the quant table.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace kite::kernels {

// y[t][o] = sum_i W[o][i] * x[t][i]   for t < n_tok, o < n_out.   x: [n_tok][n_in], y: [n_tok][n_out]
// Threads: splits output rows over the OpenMP team.
void matmul(const Tensor& W, const float* x, float* y, int n_tok);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]       (n elements; out may alias x)
void rmsnorm(float* out, const float* x, const float* w, int n, float eps);

// In-place softmax over n values.
void softmax(float* x, int n);

namespace ref {
void matmul(const Tensor& W, const float* x, float* y, int n_tok);
void rmsnorm(float* out, const float* x, const float* w, int n, float eps);
void softmax(float* x, int n);
}  // namespace ref

}  // namespace kite::kernels
