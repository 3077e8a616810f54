// Scalar flash-attention micro-kernels: the reference level, and the fallback for head sizes the
// SIMD versions do not take (e.g. stories260K's head_dim of 8 under AVX-512).
#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/cpu/attn_micro.h"
#include "quant/quant.h"

namespace kite::kernels::cpu::ref {
namespace {

constexpr int Bc = kAttnKeyBlock;

void scores_t(const float* Q, int R, int hd, const float* Kt, float* S) {
  for (int r = 0; r < R; r++) {
    float* s = S + size_t(r) * Bc;
    std::fill(s, s + Bc, 0.0f);
    for (int d = 0; d < hd; d++) {
      const float qd = Q[size_t(r) * hd + d];
      const float* kt = Kt + size_t(d) * Bc;
      for (int j = 0; j < Bc; j++) s[j] += qd * kt[j];
    }
  }
}

void scores_d(const float* Q, int R, int hd, const float* K, size_t k_stride, int nb, float* S) {
  for (int r = 0; r < R; r++)
    for (int j = 0; j < nb; j++) {
      const float* q = Q + size_t(r) * hd;
      const float* k = K + j * k_stride;
      float a = 0;
      for (int d = 0; d < hd; d++) a += q[d] * k[d];
      S[size_t(r) * Bc + j] = a;
    }
}

float row_max(const float* x, int n) {
  float m = -INFINITY;
  for (int i = 0; i < n; i++) m = std::max(m, x[i]);
  return m;
}

float exp_sum(float* x, int n, float m) {
  float s = 0;
  for (int i = 0; i < n; i++) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  return s;
}

void pv(const float* P, int R, int nb, const float* V, size_t v_stride, int hd, const float* corr, float* acc) {
  for (int r = 0; r < R; r++) {
    float* a = acc + size_t(r) * hd;
    for (int d = 0; d < hd; d++) a[d] *= corr[r];
    for (int j = 0; j < nb; j++) {
      const float p = P[size_t(r) * Bc + j];
      const float* v = V + j * v_stride;
      for (int d = 0; d < hd; d++) a[d] += p * v[d];
    }
  }
}

void convert(DType t, const uint8_t* src, size_t src_stride, int nb, int hd, float* dst) {
  for (int j = 0; j < nb; j++) to_float(t, src + j * src_stride, dst + size_t(j) * hd, hd);
}

}  // namespace

const AttnMicro kAttnMicro = {scores_t, scores_d, row_max, exp_sum, pv, convert, nullptr, nullptr};

}  // namespace kite::kernels::cpu::ref
