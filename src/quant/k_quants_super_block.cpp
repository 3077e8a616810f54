// K-quant super-blocks: the fp16 factors, the integer sub-block scales and mins, and the levels
// (steps 4-7 of the method in k_quants_search.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "quant/k_quants_search.h"
#include "quant/quant_impl.h"

namespace kite::quant {

namespace {

// Smallest positive fp16 (2^-24). Super-block factors are kept at least this large: for tiny
// weights, max_scale / 63 would round to an fp16 zero and wipe the block, while the smallest
// subnormal with larger integer scales still represents it.
constexpr float kMinHalf = 5.9604645e-8f;

// Integer candidates around round(v), plus a previous choice; clamped to [lo, hi], deduplicated.
int integer_candidates(float v, int lo, int hi, int prev, int* out) {
  const int r = clamp_round(v, lo, hi);
  int n = 0;
  for (int c : {r, r - 1, r + 1, prev}) {
    if (c < lo || c > hi) continue;
    if (std::find(out, out + n, c) == out + n) out[n++] = c;
  }
  return n;
}

// Chooses the fp16 factor d that stores the n sub-block values v[j] (scales or mins) as integers
// q_j in [qmin, qmax], minimising sum_j W[j] * (v[j] - d * q_j)^2, where W[j] is how much the
// sub-block's error grows per unit of error in v[j] (sum w L^2 for a scale, sum w for a min).
// Candidates put the largest |v| on each level from the top of the range down to half of it (in
// quarter steps, or 32 steps for wide ranges; from both ends when qmin < 0), each followed by
// one least-squares refit of d for the integers it gives. Each candidate costs n terms: cheap
// next to the level assignment that follows.
float choose_super_scale(const float* v, const double* W, int n, int qmin, int qmax) {
  float vm = 0;
  for (int j = 0; j < n; j++)
    if (std::fabs(v[j]) > std::fabs(vm)) vm = v[j];
  if (vm == 0) return 0;
  auto cost = [&](float d) {
    double e = 0;
    const float inv = 1.0f / d;
    for (int j = 0; j < n; j++) {
      const double diff = v[j] - double(d) * clamp_round(v[j] * inv, qmin, qmax);
      e += W[j] * diff * diff;
    }
    return e;
  };
  float best_d = 0;
  double best = std::numeric_limits<double>::infinity();
  auto consider = [&](float d) {
    d = fp16_round(std::copysign(std::max(std::fabs(d), kMinHalf), d));
    const double e = cost(d);
    if (e < best) {
      best = e;
      best_d = d;
    }
  };
  for (int end : {qmax, qmin}) {
    if (end == 0) continue;
    const float top = static_cast<float>(std::abs(end));
    const float step = std::max(0.25f, top / 64);  // at most ~32 candidates per end
    for (float k = top; k >= 0.5f * top; k -= step) {
      const float d0 = vm / (end > 0 ? k : -k);
      consider(d0);
      // Least-squares d for the integers d0 gives.
      double num = 0, den = 0;
      const float inv = 1.0f / d0;
      for (int j = 0; j < n; j++) {
        const int q = clamp_round(v[j] * inv, qmin, qmax);
        num += W[j] * v[j] * q;
        den += W[j] * double(q) * q;
      }
      if (den > 0 && num != 0) consider(static_cast<float>(num / den));
    }
  }
  return best_d;
}

// ---- affine K-quant super-blocks (Q2_K, Q4_K, Q5_K) -------------------------------------------

// Weighted error of a sub-block decoded as ds * L - dm (the decoder's float arithmetic) with
// every L the nearest level in [0, nmax].
float affine_sub_block_error(const float* x, const float* w, int n, float ds, float dm, int nmax) {
  const float inv = ds > 0 ? 1.0f / ds : 0.0f;
  float e = 0;
#pragma omp simd reduction(+ : e)
  for (int i = 0; i < n; i++) {
    const float l = static_cast<float>(clamp_round((x[i] + dm) * inv, 0, nmax));
    const float diff = (ds * l - dm) - x[i];
    e += w[i] * diff * diff;
  }
  return e;
}

// For fp16-exact super-scales d and dmin, picks each sub-block's integer scale and min (near the
// ideal s[j] / d and m[j] / dmin, or near `prev`) and its levels, minimising the weighted error
// computed with the decoder's own float arithmetic. Returns the total error.
double assign_affine_integers(const float* x, const float* w, const AffineKSpec& spec,
                              const float* s, const float* m, float d, float dmin,
                              const AffineKBlock* prev, AffineKBlock& out) {
  const int len = QK_K / spec.n_sub;
  double total = 0;
  for (int j = 0; j < spec.n_sub; j++) {
    const float* xs = x + j * len;
    const float* ws = w + j * len;
    // With a zero factor the only integer worth trying is 0.
    int scs[4] = {0}, mns[4] = {0};
    const int nsc = d > 0 ? integer_candidates(s[j] / d, 0, spec.sc_max, prev ? prev->sc[j] : -1, scs) : 1;
    const int nmn = dmin > 0 ? integer_candidates(m[j] / dmin, 0, spec.sc_max, prev ? prev->mn[j] : -1, mns) : 1;
    float best = std::numeric_limits<float>::infinity();
    out.sc[j] = static_cast<uint8_t>(scs[0]);  // (kept if every error is NaN: garbage input)
    out.mn[j] = static_cast<uint8_t>(mns[0]);
    for (int a = 0; a < nsc; a++) {
      for (int b = 0; b < nmn; b++) {
        const float e = affine_sub_block_error(xs, ws, len, d * static_cast<float>(scs[a]),
                                               dmin * static_cast<float>(mns[b]), spec.nmax);
        if (e < best) {
          best = e;
          out.sc[j] = static_cast<uint8_t>(scs[a]);
          out.mn[j] = static_cast<uint8_t>(mns[b]);
        }
      }
    }
    const float ds = d * static_cast<float>(out.sc[j]), dm = dmin * static_cast<float>(out.mn[j]);
    const float inv = ds > 0 ? 1.0f / ds : 0.0f;
    for (int i = 0; i < len; i++)
      out.L[j * len + i] = static_cast<uint8_t>(clamp_round((xs[i] + dm) * inv, 0, spec.nmax));
    total += best;
  }
  out.d = f32_to_f16(d);
  out.dmin = f32_to_f16(dmin);
  return total;
}

}  // namespace

void quantize_affine_super_block(const float* x, const float* w, const AffineKSpec& spec,
                                 AffineKBlock& out) {
  const int len = QK_K / spec.n_sub;
  float s[16], m[16];
  double ws[16], wm[16];  // sensitivity of each sub-block's error to its scale and to its min
  for (int j = 0; j < spec.n_sub; j++) {
    const AffineFit f = fit_affine(x + j * len, w + j * len, len, spec.nmax, true, out.L + j * len);
    s[j] = f.scale;
    m[j] = -f.offset;
    ws[j] = wm[j] = 0;
    for (int i = j * len; i < (j + 1) * len; i++) {
      ws[j] += double(w[i]) * out.L[i] * out.L[i];
      wm[j] += w[i];
    }
  }
  float d = choose_super_scale(s, ws, spec.n_sub, 0, spec.sc_max);
  float dmin = choose_super_scale(m, wm, spec.n_sub, 0, spec.sc_max);
  double err = assign_affine_integers(x, w, spec, s, m, d, dmin, nullptr, out);

  // The integers fixed, the decoded values are linear in (d, dmin): refit both by weighted least
  // squares over the whole super-block, reassign, and keep the result while the error falls.
  for (int it = 0; it < 3; it++) {
    double saa = 0, sab = 0, sbb = 0, sax = 0, sbx = 0;
    for (int j = 0; j < spec.n_sub; j++) {
      for (int i = j * len; i < (j + 1) * len; i++) {
        const double a = double(out.sc[j]) * out.L[i];
        const double b = -double(out.mn[j]);
        saa += w[i] * a * a;
        sab += w[i] * a * b;
        sbb += w[i] * b * b;
        sax += w[i] * a * x[i];
        sbx += w[i] * b * x[i];
      }
    }
    double nd = d, ndmin = dmin;
    const double det = saa * sbb - sab * sab;
    if (sbb > 0 && det > 1e-9 * saa * sbb) {
      nd = (sbb * sax - sab * sbx) / det;
      ndmin = (saa * sbx - sab * sax) / det;
    } else if (saa > 0) {
      nd = (sax - dmin * sab) / saa;  // mins all zero: refit the scale alone
    }
    if (!(nd > 0) || !(ndmin >= 0)) break;
    const float td = fp16_round(static_cast<float>(nd));
    const float tdmin = fp16_round(static_cast<float>(ndmin));
    if (td == d && tdmin == dmin) break;
    AffineKBlock trial;
    const double e = assign_affine_integers(x, w, spec, s, m, td, tdmin, &out, trial);
    if (!(e < err)) break;
    err = e;
    d = td;
    dmin = tdmin;
    out = trial;
  }
}

// ---- symmetric K-quant super-blocks (Q3_K, Q6_K) ---------------------------------------------

namespace {

constexpr int kSymSub = 16;  // Q3_K and Q6_K: 16 sub-blocks of 16

// Weighted error of a sub-block decoded as ds * L with every L the nearest level in [qmin, qmax].
float symmetric_sub_block_error(const float* x, const float* w, int n, float ds, int qmin, int qmax) {
  const float inv = ds != 0 ? 1.0f / ds : 0.0f;
  float e = 0;
#pragma omp simd reduction(+ : e)
  for (int i = 0; i < n; i++) {
    const float l = static_cast<float>(clamp_round(x[i] * inv, qmin, qmax));
    const float diff = ds * l - x[i];
    e += w[i] * diff * diff;
  }
  return e;
}

double assign_symmetric_integers(const float* x, const float* w, const SymmetricKSpec& spec,
                                 const float* s, float d, const SymmetricKBlock* prev,
                                 SymmetricKBlock& out) {
  constexpr int len = QK_K / kSymSub;
  double total = 0;
  for (int j = 0; j < kSymSub; j++) {
    const float* xs = x + j * len;
    const float* ws = w + j * len;
    int scs[4] = {0};
    const int nsc = d != 0 ? integer_candidates(s[j] / d, spec.sc_min, spec.sc_max,
                                                prev ? prev->sc[j] : spec.sc_min - 1, scs)
                           : 1;
    float best = std::numeric_limits<float>::infinity();
    out.sc[j] = static_cast<int8_t>(scs[0]);  // (kept if every error is NaN: garbage input)
    for (int a = 0; a < nsc; a++) {
      const float e = symmetric_sub_block_error(xs, ws, len, d * static_cast<float>(scs[a]),
                                                spec.qmin, spec.qmax);
      if (e < best) {
        best = e;
        out.sc[j] = static_cast<int8_t>(scs[a]);
      }
    }
    const float ds = d * static_cast<float>(out.sc[j]);
    const float inv = ds != 0 ? 1.0f / ds : 0.0f;
    for (int i = 0; i < len; i++)
      out.L[j * len + i] = static_cast<int8_t>(clamp_round(xs[i] * inv, spec.qmin, spec.qmax));
    total += best;
  }
  out.d = f32_to_f16(d);
  return total;
}

}  // namespace

void quantize_symmetric_super_block(const float* x, const float* w, const SymmetricKSpec& spec,
                                    SymmetricKBlock& out) {
  constexpr int len = QK_K / kSymSub;
  float s[kSymSub];
  double ws[kSymSub];  // sensitivity of each sub-block's error to its scale
  for (int j = 0; j < kSymSub; j++) {
    s[j] = fit_symmetric(x + j * len, w + j * len, len, spec.qmin, spec.qmax, out.L + j * len).scale;
    ws[j] = 0;
    for (int i = j * len; i < (j + 1) * len; i++) ws[j] += double(w[i]) * out.L[i] * out.L[i];
  }
  float d = choose_super_scale(s, ws, kSymSub, spec.sc_min, spec.sc_max);
  if (d == 0) {
    out = SymmetricKBlock{};
    return;
  }
  double err = assign_symmetric_integers(x, w, spec, s, d, nullptr, out);
  // Refit d by weighted least squares with the integers fixed; keep while the error falls.
  for (int it = 0; it < 3; it++) {
    double saa = 0, sax = 0;
    for (int j = 0; j < kSymSub; j++) {
      for (int i = j * len; i < (j + 1) * len; i++) {
        const double a = double(out.sc[j]) * out.L[i];
        saa += w[i] * a * a;
        sax += w[i] * a * x[i];
      }
    }
    if (!(saa > 0)) break;
    const float td = fp16_round(static_cast<float>(sax / saa));
    if (td == d || td == 0) break;
    SymmetricKBlock trial;
    const double e = assign_symmetric_integers(x, w, spec, s, td, &out, trial);
    if (!(e < err)) break;
    err = e;
    d = td;
    out = trial;
  }
}

}  // namespace kite::quant
