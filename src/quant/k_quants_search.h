// Scale searches shared by the quantizers of Q4_1/Q5_0/Q5_1 and the K-quants.
//
// Every quantizer here minimises a weighted squared error
//     E = sum_i w_i * (x_i - decode(q)_i)^2
// where w_i = 1 without importance, or the caller's importance (imatrix) weights. Two shapes of
// grid are fitted:
//   affine     x ~ s * L + o,   L in [0, nmax]      (Q4_1, Q5_1, and each sub-block of Q2/4/5_K)
//   symmetric  x ~ s * L,       L in [qmin, qmax]   (Q5_0, and each sub-block of Q3_K/Q6_K)
// The method, per group of values:
//   1. Candidate grids. For a spread of scales around "the extreme value lands on the last
//      level" (a few tenths of a level either way, so an outlier may be clipped in exchange for
//      finer steps for the rest) assign every value to its nearest level.
//   2. For each candidate assignment L, solve the weighted least-squares problem for the scale
//      (and offset) in closed form, and score it by its exact weighted error.
//   3. Starting from the best, alternate "round to the nearest level" and "refit the scale" until
//      the error stops falling.
// K-quants then store the per-sub-block scales (and mins) themselves as 4-, 6- or 8-bit integers
// times an fp16 super-block factor d (and dmin). Per super-block of 256:
//   4. Fit every sub-block as above.
//   5. Choose d among candidates (the largest sub-block scale on each integer level from the top
//      of the range down to half of it, plus a least-squares refit of each) by the error they
//      cause in the scales, each weighted by its sub-block's sensitivity (sum w L^2 for a scale,
//      sum w for a min).
//   6. For that d, give each sub-block the integer scale (and min) among round(s/d) +-1 that
//      minimises its error, with levels re-rounded and errors computed in the decoder's own
//      float arithmetic.
//   7. With all integers fixed the decoded values are linear in (d, dmin): refit them by
//      weighted least squares over the super-block, round to fp16, redo step 6, and keep the
//      result while the total error falls.
// Compared with ggml's reference quantizers this searches more candidate grids, weights errors
// by importance only (ggml adds magnitude heuristics), and refits the super-block factors
// (step 7). On the zoo teacher its Q4_K and Q6_K (the K types of llama.cpp's Q4_K_M file) have
// a lower error than llama.cpp's on every tensor (test_quant_models.cpp).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace kite::quant {

struct AffineFit {
  float scale = 0;   // s >= 0
  float offset = 0;  // o (<= 0 when asked for a non-positive offset)
  double err = 0;    // weighted squared error of s * L + o
};

// Fits x[0..n) ~ scale * L + offset with L[i] in [0, nmax]. With offset_nonpositive the offset
// is kept <= 0 (K-quants store it as a non-negative "min" that is subtracted).
AffineFit fit_affine(const float* x, const float* w, int n, int nmax, bool offset_nonpositive,
                     uint8_t* L);

struct SymmetricFit {
  float scale = 0;   // any sign
  double err = 0;
};

// Fits x[0..n) ~ scale * L with L[i] in [qmin, qmax] (qmin < 0 < qmax).
SymmetricFit fit_symmetric(const float* x, const float* w, int n, int qmin, int qmax, int8_t* L);

// ---- K-quant super-blocks -------------------------------------------------------------------

// Shape of an affine K-quant: QK_K values in n_sub sub-blocks; each decodes as
//     y = (d * sc) * L - (dmin * mn)
// with L in [0, nmax] and integer sc, mn in [0, sc_max]. d, dmin are fp16.
struct AffineKSpec {
  int n_sub;
  int nmax;
  int sc_max;
};

struct AffineKBlock {
  uint16_t d = 0, dmin = 0;  // fp16 bits
  uint8_t sc[16] = {};
  uint8_t mn[16] = {};
  uint8_t L[QK_K] = {};
};

// Quantizes QK_K values (weights w) into `out`.
void quantize_affine_super_block(const float* x, const float* w, const AffineKSpec& spec,
                                 AffineKBlock& out);

// Shape of a symmetric K-quant: 16 sub-blocks of 16, decoding as y = (d * sc) * L with L in
// [qmin, qmax] and integer sc in [sc_min, sc_max]; d is fp16.
struct SymmetricKSpec {
  int qmin, qmax;
  int sc_min, sc_max;
};

struct SymmetricKBlock {
  uint16_t d = 0;
  int8_t sc[16] = {};
  int8_t L[QK_K] = {};
};

void quantize_symmetric_super_block(const float* x, const float* w, const SymmetricKSpec& spec,
                                    SymmetricKBlock& out);

}  // namespace kite::quant
