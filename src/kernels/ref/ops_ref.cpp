// Scalar reference kernels: the simplest correct code, used as the oracle for SIMD kernels.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

namespace kite::kernels::ref {

void matmul(const Tensor& W, const float* x, float* y, int n_tok) {
  const int64_t n_in = W.ne[0], n_out = W.ne[1];
  const QuantTraits* q = quant_traits(W.type);
  check(q != nullptr, "matmul: weight '", W.name, "' has unsupported type ", dtype_name(W.type));
#pragma omp parallel
  {
    std::vector<float> row(n_in);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < n_out; o++) {
      q->to_float(W.row(o), row.data(), n_in);
      for (int t = 0; t < n_tok; t++) {
        const float* xt = x + static_cast<int64_t>(t) * n_in;
        float s = 0;
        for (int64_t i = 0; i < n_in; i++) s += row[i] * xt[i];
        y[static_cast<int64_t>(t) * n_out + o] = s;
      }
    }
  }
}

void rmsnorm(float* out, const float* x, const float* w, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; i++) ss += double(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(float(ss / n) + eps);
  for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

void softmax(float* x, int n) {
  float mx = x[0];
  for (int i = 1; i < n; i++) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int i = 0; i < n; i++) { x[i] = std::exp(x[i] - mx); sum += x[i]; }
  const float inv = float(1.0 / sum);
  for (int i = 0; i < n; i++) x[i] *= inv;
}

void silu_mul(float* out, const float* gate, const float* up, int n) {
  for (int i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

float dot_f32(const float* a, const float* b, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += double(a[i]) * b[i];
  return float(s);
}

void axpy(float* y, float a, const float* x, int n) {
  for (int i = 0; i < n; i++) y[i] += a * x[i];
}

void add(float* out, const float* a, const float* b, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

}  // namespace kite::kernels::ref
