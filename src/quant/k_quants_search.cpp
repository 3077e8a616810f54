// Scale searches for one group of values (fit_affine, fit_symmetric); the method is described
// in k_quants_search.h. The super-block logic of the K-quants is in k_quants_super_block.cpp.
#include "quant/k_quants_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "quant/quant_impl.h"

namespace kite::quant {

namespace {

constexpr int kMaxGroup = 32;         // largest group fitted at once (Q4_1/Q5_x blocks, Q4/5_K sub-blocks)
constexpr float kDelta = 0.2f;       // spacing of the candidate grids, in levels (0.1 gains <0.1% error for 1.5x the time)
constexpr int kCandidateSteps = 5;   // candidate grids up to kCandidateSteps * kDelta levels away
constexpr int kRefineIterations = 6;  // round/refit alternations after the candidate search

// One group of values with its weights, copied to local arrays (so the search loops see no
// aliasing), and the weighted sums that do not depend on the level assignment. Affine fits work
// on values centred on their weighted mean `mu`: that keeps the error expansion in solve_affine
// free of cancellation when the values share a large common offset.
struct Group {
  int n;
  float mu = 0;
  float x[kMaxGroup], w[kMaxGroup];
  double sw = 0, sx = 0, sxx = 0;
  Group(const float* xs, const float* ws, int count, bool center) : n(count) {
    if (center) {
      double s0 = 0, s1 = 0;
      for (int i = 0; i < n; i++) {
        s0 += ws[i];
        s1 += double(ws[i]) * xs[i];
      }
      mu = s0 > 0 ? static_cast<float>(s1 / s0) : 0.0f;
    }
    for (int i = 0; i < n; i++) {
      x[i] = xs[i] - mu;
      w[i] = ws[i];
      sw += w[i];
      sx += double(w[i]) * x[i];
      sxx += double(w[i]) * x[i] * x[i];
    }
  }
};

// Sums of one level assignment: sum w L, sum w L^2, sum w L x. Float lanes keep the loop
// vectorised; the sums have at most 32 terms, so their rounding is far below the differences
// between candidate errors that matter.
struct LevelSums {
  double sl = 0, sll = 0, slx = 0;
  LevelSums(const Group& g, const int* L) {
    float a = 0, b = 0, c = 0;
#pragma omp simd reduction(+ : a, b, c)
    for (int i = 0; i < g.n; i++) {
      const float l = static_cast<float>(L[i]);
      const float wl = g.w[i] * l;
      a += wl;
      b += wl * l;
      c += wl * g.x[i];
    }
    sl = a;
    sll = b;
    slx = c;
  }
};

// Best (scale, offset <= omax) for an assignment with level sums `ls`, and its weighted error.
AffineFit solve_affine(const LevelSums& ls, const Group& g, double omax) {
  const double sl = ls.sl, sll = ls.sll, slx = ls.slx;
  double s = 0, o = 0;
  const double det = g.sw * sll - sl * sl;
  if (det > 1e-9 * g.sw * sll) {  // at least two distinct levels used
    s = (g.sw * slx - sl * g.sx) / det;
    o = (sll * g.sx - sl * slx) / det;
  } else {
    o = g.sx / g.sw;
  }
  if (o > omax) {  // the constrained optimum lies on the bound
    o = omax;
    s = sll > 0 ? (slx - o * sl) / sll : 0;
  }
  if (s < 0) {  // never better than a flat fit
    s = 0;
    o = std::min(g.sx / g.sw, omax);
  }
  AffineFit f;
  f.scale = static_cast<float>(s);
  f.offset = static_cast<float>(o);
  f.err = g.sxx + s * s * sll + o * o * g.sw + 2 * s * o * sl - 2 * s * slx - 2 * o * g.sx;
  return f;
}

// Best scale for a symmetric assignment with level sums `ls`, and its weighted error.
SymmetricFit solve_symmetric(const LevelSums& ls, const Group& g) {
  SymmetricFit f;
  if (ls.sll > 0) {
    f.scale = static_cast<float>(ls.slx / ls.sll);
    f.err = g.sxx - ls.slx * ls.slx / ls.sll;
  } else {
    f.err = g.sxx;
  }
  return f;
}

// Searches affine grids for one group; keeps the best assignment in `best_L`.
class AffineSearch {
 public:
  AffineSearch(const Group& g, int nmax, double omax) : g_(g), nmax_(nmax), omax_(omax) {
    best_.err = std::numeric_limits<double>::infinity();
  }
  // Levels round((x - base) * iscale), or, from_top, nmax - round((base - x) * iscale).
  bool try_grid(float base, float iscale, bool from_top) {
    int L[kMaxGroup];
    if (from_top) {
#pragma omp simd
      for (int i = 0; i < g_.n; i++) L[i] = nmax_ - clamp_round((base - g_.x[i]) * iscale, 0, nmax_);
    } else {
#pragma omp simd
      for (int i = 0; i < g_.n; i++) L[i] = clamp_round((g_.x[i] - base) * iscale, 0, nmax_);
    }
    const AffineFit f = solve_affine(LevelSums(g_, L), g_, omax_);
    if (!(f.err < best_.err)) return false;
    best_ = f;
    std::copy(L, L + g_.n, best_L_);
    return true;
  }
  const AffineFit& best() const { return best_; }
  const int* best_levels() const { return best_L_; }

 private:
  const Group& g_;
  int nmax_;
  double omax_;  // bound on the (centred) offset
  AffineFit best_;
  int best_L_[kMaxGroup] = {};
};

class SymmetricSearch {
 public:
  SymmetricSearch(const Group& g, int qmin, int qmax) : g_(g), qmin_(qmin), qmax_(qmax) {
    best_.err = std::numeric_limits<double>::infinity();
  }
  // Levels round(x * iscale).
  bool try_grid(float iscale) {
    int L[kMaxGroup];
#pragma omp simd
    for (int i = 0; i < g_.n; i++) L[i] = clamp_round(g_.x[i] * iscale, qmin_, qmax_);
    const SymmetricFit f = solve_symmetric(LevelSums(g_, L), g_);
    if (!(f.err < best_.err)) return false;
    best_ = f;
    std::copy(L, L + g_.n, best_L_);
    return true;
  }
  const SymmetricFit& best() const { return best_; }
  const int* best_levels() const { return best_L_; }

 private:
  const Group& g_;
  int qmin_, qmax_;
  SymmetricFit best_;
  int best_L_[kMaxGroup] = {};
};

}  // namespace

AffineFit fit_affine(const float* x, const float* w, int n, int nmax, bool offset_nonpositive,
                     uint8_t* L) {
  check(n >= 1 && n <= kMaxGroup, "fit_affine: group of ", n, " values");
  const Group g(x, w, n, /*center=*/true);
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int i = 0; i < n; i++) {
    lo = std::min(lo, g.x[i]);
    hi = std::max(hi, g.x[i]);
  }
  // In centred coordinates the offset o' = o - mu; o <= 0 becomes o' <= -mu.
  const double omax = offset_nonpositive ? -double(g.mu) : std::numeric_limits<double>::infinity();
  if (lo > omax) lo = static_cast<float>(omax);
  const float range = hi - lo;
  if (!(range > 0) || !std::isfinite(range)) {  // constant group (or garbage): a flat fit
    std::memset(L, 0, n);
    AffineFit f;
    const float o = std::isfinite(lo) ? lo : 0.0f;
    f.offset = o + g.mu;
    f.err = g.sxx - 2.0 * o * g.sx + double(o) * o * g.sw;
    return f;
  }
  AffineSearch search(g, nmax, omax);
  // Candidate grids: the range spans nmax + delta steps, delta in [-1, +1.5] levels in steps of
  // kDelta, anchored at either end (anchoring at the top rounds differently from the bottom).
  for (int k = -kCandidateSteps; k <= kCandidateSteps * 3 / 2; k++) {
    const float steps = nmax + kDelta * k;
    if (steps < 0.5f) continue;
    const float iscale = steps / range;
    search.try_grid(lo, iscale, false);
    search.try_grid(hi, iscale, true);
  }
  // Alternate nearest-level assignment and least-squares refit while the error falls.
  for (int it = 0; it < kRefineIterations && search.best().scale > 0; it++)
    if (!search.try_grid(search.best().offset, 1.0f / search.best().scale, false)) break;
  for (int i = 0; i < n; i++) L[i] = static_cast<uint8_t>(search.best_levels()[i]);
  AffineFit f = search.best();
  f.offset += g.mu;
  if (offset_nonpositive) f.offset = std::min(f.offset, 0.0f);
  return f;
}

SymmetricFit fit_symmetric(const float* x, const float* w, int n, int qmin, int qmax, int8_t* L) {
  check(n >= 1 && n <= kMaxGroup, "fit_symmetric: group of ", n, " values");
  const Group g(x, w, n, /*center=*/false);
  float amax = 0, xm = 0;
  for (int i = 0; i < n; i++) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      xm = x[i];
    }
  }
  if (!(amax > 1e-30f) || !std::isfinite(amax)) {  // all zero (or garbage): scale 0
    std::memset(L, 0, n);
    SymmetricFit f;
    f.err = g.sxx;
    return f;
  }
  SymmetricSearch search(g, qmin, qmax);
  // Candidate grids: the extreme value xm lands on level t, t within one level of qmax or of
  // qmin (the two ends differ when the range is asymmetric, e.g. [-4, 3]).
  for (int k = -kCandidateSteps; k <= kCandidateSteps; k++) {
    for (float t : {qmax + kDelta * k, qmin - kDelta * k}) {
      if (std::fabs(t) < 0.5f) continue;
      search.try_grid(t / xm);
    }
  }
  for (int it = 0; it < kRefineIterations && search.best().scale != 0; it++)
    if (!search.try_grid(1.0f / search.best().scale)) break;
  for (int i = 0; i < n; i++) L[i] = static_cast<int8_t>(search.best_levels()[i]);
  return search.best();
}

}  // namespace kite::quant
