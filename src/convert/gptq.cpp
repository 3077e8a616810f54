#include "convert/gptq.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "quant/k_quants_packing.h"
#include "quant/quant.h"

namespace kite {

namespace {

// The grid of one super-block row: element e decodes as a[e] * L - b[e], L in [lmin, lmax].
struct Grid {
  float a[QK_K], b[QK_K];
  int lmin, lmax;
};

float f16(uint16_t h) { return f16_to_f32(h); }

void grid_of(DType t, const uint8_t* blk, Grid& g) {
  if (t == DType::Q4_K || t == DType::Q5_K) {
    const uint16_t* dd = reinterpret_cast<const uint16_t*>(blk);
    const uint8_t* scales = blk + 4;
    const float d = f16(dd[0]), dmin = f16(dd[1]);
    for (int j = 0; j < 8; j++) {
      int sc, mn;
      quant::unpack_scale_min_6bit(scales, j, sc, mn);
      for (int l = 0; l < 32; l++) {
        g.a[32 * j + l] = d * sc;
        g.b[32 * j + l] = dmin * mn;
      }
    }
    g.lmin = 0;
    g.lmax = t == DType::Q4_K ? 15 : 31;
  } else {  // Q6_K
    const BlockQ6_K& b = *reinterpret_cast<const BlockQ6_K*>(blk);
    const float d = f16(b.d);
    for (int e = 0; e < QK_K; e++) {
      g.a[e] = d * b.scales[e / 16];
      g.b[e] = 0;
    }
    g.lmin = -32;
    g.lmax = 31;
  }
}

// Stores level L of element e (the inverse of the decoders in src/quant/q{4,5,6}_k.cpp).
void set_level(DType t, uint8_t* blk, int e, int L) {
  const int c = e / 64, hi = (e / 32) % 2, l = e % 32;
  if (t == DType::Q4_K) {
    uint8_t& q = reinterpret_cast<BlockQ4_K*>(blk)->qs[32 * c + l];
    q = hi ? uint8_t((q & 0x0f) | (L << 4)) : uint8_t((q & 0xf0) | L);
  } else if (t == DType::Q5_K) {
    BlockQ5_K& b = *reinterpret_cast<BlockQ5_K*>(blk);
    uint8_t& q = b.qs[32 * c + l];
    q = hi ? uint8_t((q & 0x0f) | ((L & 15) << 4)) : uint8_t((q & 0xf0) | (L & 15));
    const int bit = 2 * c + hi;
    b.qh[l] = uint8_t((b.qh[l] & ~(1 << bit)) | (((L >> 4) & 1) << bit));
  } else {  // Q6_K: e = 128 h + 32 g + l
    BlockQ6_K& b = *reinterpret_cast<BlockQ6_K*>(blk);
    const int h = e / 128, g = (e % 128) / 32;
    const int u = L + 32;
    uint8_t& q = b.ql[64 * h + 32 * (g % 2) + l];
    q = g / 2 ? uint8_t((q & 0x0f) | ((u & 15) << 4)) : uint8_t((q & 0xf0) | (u & 15));
    uint8_t& qh = b.qh[32 * h + l];
    qh = uint8_t((qh & ~(3 << (2 * g))) | (((u >> 4) & 3) << (2 * g)));
  }
}

// Damping added to H's diagonal, as a fraction of its mean. GPTQ's paper uses 1%. On the zoo
// teacher (Q4_K_M, perplexity on valid.txt; README) the best damping depends on how much
// calibration text there is: with 33k tokens 10% did best (+0.73%, 3%: +0.75%; with so little
// text nothing beats no calibration, gptq.h), with 131k tokens (the default 256 chunks of 512)
// 3% (+0.405%; 1%: +0.40%, 10%: +0.46%).
constexpr double kGptqDamp = 0.03;

// sum_{k<n} a[k] b[k] with four partial sums (the compiler keeps a strict order otherwise).
double dot(const double* a, const double* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += a[k] * b[k];
    s1 += a[k + 1] * b[k + 1];
    s2 += a[k + 2] * b[k + 2];
    s3 += a[k + 3] * b[k + 3];
  }
  for (; k < n; k++) s0 += a[k] * b[k];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace

// With P the reversal permutation and P H P = L L^T (Cholesky), U = P L^-1 P: then
// U^T U = P L^-T L^-1 P = (P L L^T P)^-1 = H^-1, and reversing both the rows and the columns of the
// lower triangular L^-1 makes it upper triangular. Both steps run along rows (contiguous inner
// loops), about n^3/3 multiply-adds in all; the columns of L^-1 are independent (threads).
std::vector<float> gptq_inverse_cholesky_upper(const double* H, int64_t n, double damp_frac) {
  double mean_diag = 0;
  for (int64_t i = 0; i < n; i++) mean_diag += H[i * n + i];
  mean_diag /= double(n);
  const double damp = damp_frac * (mean_diag > 0 ? mean_diag : 1.0);
  // L: [n][n] lower Cholesky factor of P H P + damp I, row by row.
  std::vector<double> L(size_t(n) * n, 0.0);
  for (int64_t i = 0; i < n; i++) {
    double* li = &L[i * n];
    for (int64_t j = 0; j <= i; j++) {
      double a = H[(n - 1 - i) * n + (n - 1 - j)] + (i == j ? damp : 0.0);
      a -= dot(li, &L[j * n], j);
      if (i == j) {
        check(a > 0, "GPTQ: the calibration Hessian is not positive definite (column ", n - 1 - i, ")");
        li[i] = std::sqrt(a);
      } else {
        li[j] = a / L[j * n + j];
      }
    }
  }
  // Xt: [n][n], row j = column j of X = L^-1, by forward substitution (L X = I).
  std::vector<double> Xt(size_t(n) * n, 0.0);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t j = 0; j < n; j++) {
    double* x = &Xt[j * n];
    x[j] = 1.0 / L[j * n + j];
    for (int64_t i = j + 1; i < n; i++) x[i] = -dot(&L[i * n + j], x + j, i - j) / L[i * n + i];
  }
  // U[a][b] = X[n-1-a][n-1-b] = Xt[n-1-b][n-1-a]
  std::vector<float> U(size_t(n) * n, 0.0f);
  for (int64_t a = 0; a < n; a++)
    for (int64_t b = a; b < n; b++) U[a * n + b] = float(Xt[(n - 1 - b) * n + (n - 1 - a)]);
  return U;
}


bool gptq_supports(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }

void gptq_quantize(DType type, float* W, int64_t n_rows, int64_t n_in, const double* H, void* dst) {
  check(gptq_supports(type), "GPTQ: type ", dtype_name(type), " is not supported");
  check(n_in % QK_K == 0, "GPTQ: rows of ", n_in, " are not a multiple of ", QK_K);
  std::vector<double> h(H, H + size_t(n_in) * n_in);
  // Columns no calibration token used: nothing to protect; their weights round on their own.
  for (int64_t i = 0; i < n_in; i++)
    if (!(h[i * n_in + i] > 0)) h[i * n_in + i] = 1;
  std::vector<float> imp(n_in);
  for (int64_t i = 0; i < n_in; i++) imp[i] = float(h[i * n_in + i]);
  const std::vector<float> U = gptq_inverse_cholesky_upper(h.data(), n_in, kGptqDamp);
  const size_t rb = row_bytes(type, n_in), bb = rb / (n_in / QK_K);
  uint8_t* out = static_cast<uint8_t*>(dst);

#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t r = 0; r < n_rows; r++) {
    float* w = W + r * n_in;
    Grid g;
    for (int64_t b = 0; b < n_in / QK_K; b++) {
      uint8_t* blk = out + r * rb + b * bb;
      // The block's grid, searched on the weights as updated so far.
      from_float(type, w + b * QK_K, blk, QK_K, imp.data() + b * QK_K);
      grid_of(type, blk, g);
      for (int e = 0; e < QK_K; e++) {
        const int64_t j = b * QK_K + e;
        const float a = g.a[e], off = g.b[e];
        int L = a != 0 ? int(std::nearbyint((w[j] + off) / a)) : 0;
        L = std::clamp(L, g.lmin, g.lmax);
        set_level(type, blk, e, L);
        const float q = a * float(L) - off;
        const float err = (w[j] - q) / U[j * n_in + j];
        const float* uj = &U[j * n_in];
        for (int64_t k = j + 1; k < n_in; k++) w[k] -= err * uj[k];
      }
    }
  }
}

}  // namespace kite
