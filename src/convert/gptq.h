// GPTQ (Frantar et al. 2022): error-compensating rounding for the K-quants Q4_K, Q5_K and Q6_K.
//
// Rounding the weights of a row one by one, GPTQ pushes each rounding error onto the weights
// not yet rounded, in the direction that the calibration activations say cancels it best: with
// H = sum x x^T over the calibration tokens, quantizing column j with error e changes the later
// columns by -e * U[j][k] / U[j][j], where U is the upper Cholesky factor of H^-1. The output
// error ||(W - Q) X|| drops well below per-weight rounding (importance-weighted or not).
// K-quant super-blocks fix their scales first: when GPTQ reaches a super-block's first column it
// runs Kite's scale search (weighted by diag H) on the block as updated so far, then rounds the
// block's columns one at a time on that grid.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace kite {

bool gptq_supports(DType type);

// W: [n_rows][n_in] floats (overwritten: used as work space). H: [n_in][n_in], sum of x x^T over
// the calibration tokens. Writes n_rows rows of `type` to dst.
void gptq_quantize(DType type, float* W, int64_t n_rows, int64_t n_in, const double* H, void* dst);

}  // namespace kite
