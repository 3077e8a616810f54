// Weighted scale searches; the method is described in k_quants_search.h.
#include "quant/k_quants_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "quant/quant_impl.h"

namespace kite::quant {

namespace {

constexpr int kMaxGroup = 32;         // largest group fitted at once (Q4_1/Q5_x blocks, Q4/5_K sub-blocks)
constexpr int kCandidateSteps = 10;   // candidate grids at +-0.1 .. +-1.0 levels around the extremes
constexpr int kRefineIterations = 6;  // round/refit alternations after the candidate search

// Weighted sums over one group that do not depend on the assignment.
struct GroupSums {
  double sw = 0, sx = 0, sxx = 0;
  GroupSums(const float* x, const float* w, int n) {
    for (int i = 0; i < n; i++) {
      sw += w[i];
      sx += double(w[i]) * x[i];
      sxx += double(w[i]) * x[i] * x[i];
    }
  }
};

// Best (scale, offset) for a fixed assignment L, and its weighted error.
AffineFit solve_affine(const float* x, const float* w, int n, const uint8_t* L, const GroupSums& g,
                       bool offset_nonpositive) {
  double sl = 0, sll = 0, slx = 0;
  for (int i = 0; i < n; i++) {
    const double wl = double(w[i]) * L[i];
    sl += wl;
    sll += wl * L[i];
    slx += wl * x[i];
  }
  double s = 0, o = 0;
  const double det = g.sw * sll - sl * sl;
  if (det > 1e-12 * g.sw * sll) {  // at least two distinct levels used
    s = (g.sw * slx - sl * g.sx) / det;
    o = (sll * g.sx - sl * slx) / det;
  } else {
    o = g.sx / g.sw;
  }
  if (offset_nonpositive && o > 0) {  // constrained optimum lies on o = 0
    o = 0;
    s = sll > 0 ? slx / sll : 0;
  }
  if (s < 0) {  // never better than a flat fit
    s = 0;
    o = g.sx / g.sw;
    if (offset_nonpositive && o > 0) o = 0;
  }
  AffineFit f;
  f.scale = static_cast<float>(s);
  f.offset = static_cast<float>(o);
  f.err = g.sxx + s * s * sll + o * o * g.sw + 2 * s * o * sl - 2 * s * slx - 2 * o * g.sx;
  return f;
}

// Best scale for a fixed symmetric assignment L, and its weighted error.
SymmetricFit solve_symmetric(const float* x, const float* w, int n, const int8_t* L,
                             const GroupSums& g) {
  double sll = 0, slx = 0;
  for (int i = 0; i < n; i++) {
    const double wl = double(w[i]) * L[i];
    sll += wl * L[i];
    slx += wl * x[i];
  }
  SymmetricFit f;
  if (sll > 0) {
    f.scale = static_cast<float>(slx / sll);
    f.err = g.sxx - slx * slx / sll;
  } else {
    f.err = g.sxx;
  }
  return f;
}

}  // namespace

AffineFit fit_affine(const float* x, const float* w, int n, int nmax, bool offset_nonpositive,
                     uint8_t* L) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; i++) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (offset_nonpositive && lo > 0) lo = 0;
  const GroupSums g(x, w, n);
  const float range = hi - lo;
  if (!(range > 0) || !std::isfinite(range)) {  // constant group (or garbage): a flat fit
    std::memset(L, 0, n);
    AffineFit f;
    f.offset = std::isfinite(lo) ? lo : 0.0f;
    f.err = g.sxx - 2.0 * f.offset * g.sx + double(f.offset) * f.offset * g.sw;
    return f;
  }

  AffineFit best;
  best.err = std::numeric_limits<double>::infinity();
  uint8_t cand[kMaxGroup];
  auto consider = [&]() {
    const AffineFit f = solve_affine(x, w, n, cand, g, offset_nonpositive);
    if (f.err < best.err) {
      best = f;
      std::memcpy(L, cand, n);
    }
  };
  // Candidate grids: the range spans nmax + delta steps, delta in [-1, +1.5] levels, anchored
  // at either end (anchoring at the top end rounds differently from the bottom).
  for (int k = -kCandidateSteps; k <= kCandidateSteps * 3 / 2; k++) {
    const float steps = nmax + 0.1f * k;
    if (steps < 0.5f) continue;
    const float iscale = steps / range;
    for (int i = 0; i < n; i++) cand[i] = static_cast<uint8_t>(clamp_round((x[i] - lo) * iscale, 0, nmax));
    consider();
    for (int i = 0; i < n; i++)
      cand[i] = static_cast<uint8_t>(nmax - clamp_round((hi - x[i]) * iscale, 0, nmax));
    consider();
  }
  // Alternate nearest-level assignment and least-squares refit.
  for (int it = 0; it < kRefineIterations && best.scale > 0; it++) {
    const float inv = 1.0f / best.scale;
    bool changed = false;
    for (int i = 0; i < n; i++) {
      cand[i] = static_cast<uint8_t>(clamp_round((x[i] - best.offset) * inv, 0, nmax));
      changed |= cand[i] != L[i];
    }
    if (!changed) break;
    const double before = best.err;
    consider();
    if (!(best.err < before)) break;
  }
  return best;
}

SymmetricFit fit_symmetric(const float* x, const float* w, int n, int qmin, int qmax, int8_t* L) {
  float amax = 0, xm = 0;
  for (int i = 0; i < n; i++) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      xm = x[i];
    }
  }
  const GroupSums g(x, w, n);
  if (!(amax > 1e-30f) || !std::isfinite(amax)) {  // all zero (or garbage): scale 0
    std::memset(L, 0, n);
    SymmetricFit f;
    f.err = g.sxx;
    return f;
  }

  SymmetricFit best;
  best.err = std::numeric_limits<double>::infinity();
  int8_t cand[kMaxGroup];
  auto consider = [&]() {
    const SymmetricFit f = solve_symmetric(x, w, n, cand, g);
    if (f.err < best.err) {
      best = f;
      std::memcpy(L, cand, n);
    }
  };
  // Candidate grids: the extreme value xm lands on level t, t within one level of qmax or of
  // qmin (the two ends differ when the range is asymmetric, e.g. [-4, 3]).
  for (int k = -kCandidateSteps; k <= kCandidateSteps; k++) {
    for (float t : {qmax + 0.1f * k, qmin - 0.1f * k}) {
      if (std::fabs(t) < 0.5f) continue;
      const float iscale = t / xm;
      for (int i = 0; i < n; i++) cand[i] = static_cast<int8_t>(clamp_round(x[i] * iscale, qmin, qmax));
      consider();
    }
  }
  for (int it = 0; it < kRefineIterations && best.scale != 0; it++) {
    const float inv = 1.0f / best.scale;
    bool changed = false;
    for (int i = 0; i < n; i++) {
      cand[i] = static_cast<int8_t>(clamp_round(x[i] * inv, qmin, qmax));
      changed |= cand[i] != L[i];
    }
    if (!changed) break;
    const double before = best.err;
    consider();
    if (!(best.err < before)) break;
  }
  return best;
}

// ---- affine K-quant super-blocks ------------------------------------------------------------

namespace {

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

// For fp16-exact super-scales d and dmin, picks each sub-block's integer scale and min (near the
// ideal s[j] / d and m[j] / dmin, or near `prev`) and its levels, minimising the weighted error
// computed with the decoder's own float arithmetic. Returns the total error.
double assign_affine_integers(const float* x, const float* w, const AffineKSpec& spec,
                              const float* s, const float* m, float d, float dmin,
                              const AffineKBlock* prev, AffineKBlock& out) {
  const int len = QK_K / spec.n_sub;
  double total = 0;
  uint8_t Lc[kMaxGroup];
  for (int j = 0; j < spec.n_sub; j++) {
    const float* xs = x + j * len;
    const float* ws = w + j * len;
    int scs[4], mns[4];
    const int nsc = d > 0 ? integer_candidates(s[j] / d, 0, spec.sc_max, prev ? prev->sc[j] : -1, scs)
                          : (scs[0] = 0, 1);
    const int nmn = dmin > 0 ? integer_candidates(m[j] / dmin, 0, spec.sc_max, prev ? prev->mn[j] : -1, mns)
                             : (mns[0] = 0, 1);
    double best = std::numeric_limits<double>::infinity();
    for (int a = 0; a < nsc; a++) {
      const float ds = d * static_cast<float>(scs[a]);
      const float inv = ds > 0 ? 1.0f / ds : 0.0f;
      for (int b = 0; b < nmn; b++) {
        const float dm = dmin * static_cast<float>(mns[b]);
        double e = 0;
        for (int i = 0; i < len; i++) {
          const int l = clamp_round((xs[i] + dm) * inv, 0, spec.nmax);
          Lc[i] = static_cast<uint8_t>(l);
          const float y = ds * static_cast<float>(l) - dm;  // as the decoder computes it
          const double diff = double(y) - xs[i];
          e += ws[i] * diff * diff;
        }
        if (e < best) {
          best = e;
          out.sc[j] = static_cast<uint8_t>(scs[a]);
          out.mn[j] = static_cast<uint8_t>(mns[b]);
          std::memcpy(out.L + j * len, Lc, len);
        }
      }
    }
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
  float smax = 0, mmax = 0;
  for (int j = 0; j < spec.n_sub; j++) {
    const AffineFit f = fit_affine(x + j * len, w + j * len, len, spec.nmax, true, out.L + j * len);
    s[j] = f.scale;
    m[j] = -f.offset;
    smax = std::max(smax, s[j]);
    mmax = std::max(mmax, m[j]);
  }
  // Start with the largest sub-block scale (and min) on the top integer level.
  float d = fp16_round(smax / spec.sc_max);
  float dmin = fp16_round(mmax / spec.sc_max);
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

// ---- symmetric K-quant super-blocks ---------------------------------------------------------

namespace {

constexpr int kSymSub = 16;  // Q3_K and Q6_K: 16 sub-blocks of 16

double assign_symmetric_integers(const float* x, const float* w, const SymmetricKSpec& spec,
                                 const float* s, float d, const SymmetricKBlock* prev,
                                 SymmetricKBlock& out) {
  constexpr int len = QK_K / kSymSub;
  double total = 0;
  int8_t Lc[len];
  for (int j = 0; j < kSymSub; j++) {
    const float* xs = x + j * len;
    const float* ws = w + j * len;
    int scs[4];
    const int nsc = d != 0 ? integer_candidates(s[j] / d, spec.sc_min, spec.sc_max,
                                                prev ? prev->sc[j] : spec.sc_min - 1, scs)
                           : (scs[0] = 0, 1);
    double best = std::numeric_limits<double>::infinity();
    for (int a = 0; a < nsc; a++) {
      const float ds = d * static_cast<float>(scs[a]);
      const float inv = ds != 0 ? 1.0f / ds : 0.0f;
      double e = 0;
      for (int i = 0; i < len; i++) {
        const int l = clamp_round(xs[i] * inv, spec.qmin, spec.qmax);
        Lc[i] = static_cast<int8_t>(l);
        const float y = ds * static_cast<float>(l);
        const double diff = double(y) - xs[i];
        e += ws[i] * diff * diff;
      }
      if (e < best) {
        best = e;
        out.sc[j] = static_cast<int8_t>(scs[a]);
        std::memcpy(out.L + j * len, Lc, len);
      }
    }
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
  float smax = 0;
  for (int j = 0; j < kSymSub; j++) {
    s[j] = fit_symmetric(x + j * len, w + j * len, len, spec.qmin, spec.qmax, out.L + j * len).scale;
    if (std::fabs(s[j]) > std::fabs(smax)) smax = s[j];
  }
  if (smax == 0) {
    out = SymmetricKBlock{};
    return;
  }
  // The largest sub-block scale goes on one end of the integer range: try both ends (they differ
  // by one level, e.g. -32 / +31), keep the better.
  double err = std::numeric_limits<double>::infinity();
  float d = 0;
  for (int end : {spec.sc_min, spec.sc_max}) {
    const float td = fp16_round(smax / static_cast<float>(end));
    SymmetricKBlock trial;
    const double e = assign_symmetric_integers(x, w, spec, s, td, nullptr, trial);
    if (e < err) {
      err = e;
      d = td;
      out = trial;
    }
  }
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
