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
#include <vector>

#include "core/dtype.h"

namespace kite {

bool gptq_supports(DType type);

// Calibration tokens GPTQ needs per input column of the widest matrix it quantizes. With fewer
// it lowers the error on the calibration text but raises perplexity. Zoo teacher (widest: ffn_down,
// 1536 columns), Q4_K_M, perplexity on valid.txt, calibrating on the first 2 MB of train.txt:
// 32k tokens +0.73%, 49k +0.56%, 65k +0.48%, 131k +0.40%; without calibration +0.55%; GPTQ on the
// 512-column matrices only, 32k: +0.81% (the mix of that time). Other slices of 131k tokens gave
// +0.72% and +0.84% (README): on this model the slice matters as much as the amount, which is why
// `kite quantize` checks the calibrated file against the plain one (cmd_quantize.cpp).
constexpr int64_t kGptqMinTokensPerColumn = 40;

// W: [n_rows][n_in] floats (overwritten: used as work space). H: [n_in][n_in], sum of x x^T over
// the calibration tokens. Writes n_rows rows of `type` to dst.
void gptq_quantize(DType type, float* W, int64_t n_rows, int64_t n_in, const double* H, void* dst);

// The upper Cholesky factor U of (H + damp_frac * mean(diag H) * I)^-1, so that H^-1 = U^T U
// ([n][n] row-major, zeros below the diagonal). Throws kite::Error if H is not positive definite.
std::vector<float> gptq_inverse_cholesky_upper(const double* H, int64_t n, double damp_frac);

}  // namespace kite
