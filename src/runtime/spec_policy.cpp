// The adaptive draft length: expected gain against cost, token by token (see spec_policy.h).
#include "runtime/spec_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace kite {

namespace {
constexpr int kConfidenceBins = 10;
constexpr int kNgramBins = 8;
constexpr double kDecay = 0.95;      // acceptance counts: memory of ~20 proposals per bin
constexpr double kPriorWeight = 2;   // the prior counts as this many proposals
constexpr double kSpecDecay = 0.9;   // speculative rates: memory of ~10 rounds
constexpr double kPlainDecay = 0.95; // plain rates: ~20 steps
constexpr int kProbeRounds = 4;      // rounds after a pause before the gate judges them
constexpr int kFirstPause = 4, kMaxPause = 64;
// Speculation pauses when clearly slower than plain steps, by this fraction: a gate that reacts to
// the noise of rates measured on a busy machine pauses good speculation, and each pause and
// probe costs a little (the draft catching up).
constexpr double kMargin = 0.05;
// Rounds are not even tried when the measured draft is so slow that proposals accepted this often
// (more than most pairs manage) would still lose to plain steps.
constexpr double kOptimisticAcceptance = 0.9;
}  // namespace

// ---- RecentTimes ----

void RecentTimes::add(double ms) { v_[n_++ % kKeep] = ms; }

double RecentTimes::median() const {
  const int n = std::min(n_, kKeep);
  if (n == 0) return 0;
  std::array<double, kKeep> s = v_;
  std::nth_element(s.begin(), s.begin() + n / 2, s.begin() + n);
  return s[n / 2];
}

// ---- BatchTimes ----

BatchTimes::BatchTimes(int max_batch, double slope) : by_size_(size_t(std::max(1, max_batch)) + 1), slope_(slope) {}

void BatchTimes::record(int n_tok, double ms) {
  if (n_tok >= 1 && n_tok < int(by_size_.size())) by_size_[n_tok].add(ms);
}

double BatchTimes::unit(double fallback) const {
  if (by_size_[1].ready()) return by_size_[1].median();
  for (int b = 2; b < int(by_size_.size()); b++)
    if (by_size_[b].ready()) return by_size_[b].median() / (1 + slope_ * (b - 1));
  return fallback;
}

double BatchTimes::at(int n_tok, double fallback_unit) const {
  n_tok = std::clamp(n_tok, 1, int(by_size_.size()) - 1);
  // Measured sizes as they are, others interpolated between the nearest measured ones, or
  // extrapolated from the nearest with the assumed slope; then made non-decreasing (a larger
  // batch never costs less: a dip is noise).
  const double step = slope_ * unit(fallback_unit);
  double est = 0, prev = 0;
  for (int b = 1; b <= n_tok; b++) {
    if (by_size_[b].ready()) {
      est = by_size_[b].median();
    } else {
      int lo = b - 1, hi = b + 1;
      while (lo >= 1 && !by_size_[lo].ready()) lo--;
      while (hi < int(by_size_.size()) && !by_size_[hi].ready()) hi++;
      const bool has_lo = lo >= 1, has_hi = hi < int(by_size_.size());
      if (has_lo && has_hi) {
        const double a = by_size_[lo].median(), c = by_size_[hi].median();
        est = a + (c - a) * (b - lo) / double(hi - lo);
      } else if (has_lo) {
        est = by_size_[lo].median() + step * (b - lo);
      } else if (has_hi) {
        est = std::max(0.0, by_size_[hi].median() - step * (hi - b));
      } else {
        est = unit(fallback_unit) + step * (b - 1);
      }
    }
    prev = std::max(prev, est);
  }
  return prev;
}

// ---- CostModel ----

CostModel::CostModel(int max_batch, double draft_ratio, double batch_slope, bool measure)
    : target_(max_batch, batch_slope), draft_ratio_(draft_ratio), slope_(batch_slope), measure_(measure) {}

void CostModel::record_target(int n_tok, double ms) {
  if (measure_) target_.record(n_tok, ms);
}

// The draft's evaluations come in many sizes (catching up on 1 to kMaxCatchUp tokens, then one
// at a time), so each is brought to a one-token time by the assumed slope: a first estimate
// after a few evaluations of any size.
void CostModel::record_draft(int n_tok, double ms) {
  if (measure_ && n_tok >= 1) draft_unit_.add(ms / (1 + slope_ * (n_tok - 1)));
}

double CostModel::target(int n_tok) const { return target_.at(n_tok, 1); }

double CostModel::slot(int n_tok) const { return std::max(0.0, target(n_tok + 1) - target(n_tok)); }

double CostModel::draft(int n_tok) const {
  const double unit = draft_unit_.ready() ? draft_unit_.median() : target_.unit(1) * draft_ratio_;
  return unit * (1 + slope_ * (std::max(1, n_tok) - 1));
}

// ---- AcceptanceModel ----

void AcceptanceModel::record(int bin, bool accepted) {
  bin = std::clamp(bin, 0, n_bins() - 1);
  acc_[bin] = acc_[bin] * kDecay + (accepted ? 1 : 0);
  n_[bin] = n_[bin] * kDecay + 1;
  mean_ = mean_ * 0.9 + (accepted ? 0.1 : 0);
}

double AcceptanceModel::predict(int bin) const {
  bin = std::clamp(bin, 0, n_bins() - 1);
  return (acc_[bin] + kPriorWeight * prior_[bin]) / (n_[bin] + kPriorWeight);
}

// ---- SpecPolicy ----

namespace {
std::vector<double> acceptance_prior(bool lookup) {
  std::vector<double> p;
  if (lookup) {
    // Longer matched n-grams predict better: 0.45 for one token up to 0.9.
    for (int n = 1; n <= kNgramBins; n++) p.push_back(std::min(0.9, 0.3 + 0.15 * n));
  } else {
    // A draft's probability for its own token is a fair first guess of the target agreeing.
    for (int b = 0; b < kConfidenceBins; b++) p.push_back((b + 0.5) / kConfidenceBins);
  }
  return p;
}
}  // namespace

SpecPolicy::SpecPolicy(const PolicyOptions& o)
    : o_(o), cost_(o.draft_max + 1, o.lookup ? 0.0 : o.draft_ratio, o.batch_slope, o.measure_timing),
      accept_(acceptance_prior(o.lookup)), pause_(o.measure_timing ? kFirstPause : 0) {
  // pause_: when timing is measured, generation starts with a few plain steps, which measure
  // what speculation must beat.
  check(o.draft_max >= 1, "draft-max must be at least 1 (got ", o.draft_max, ")");
  check(o.draft_min >= 0 && o.draft_min <= o.draft_max, "draft-min must be between 0 and draft-max (got ",
        o.draft_min, ", draft-max ", o.draft_max, ")");
}

int SpecPolicy::bin_of_confidence(float c) const {
  return std::clamp(int(c * kConfidenceBins), 0, kConfidenceBins - 1);
}

int SpecPolicy::bin_of_ngram(int n) const { return std::clamp(n - 1, 0, kNgramBins - 1); }

bool SpecPolicy::begin_round() {
  bins_.clear();
  all_accepted_ = 1;
  expected_ = 1;  // the target's own token
  spent_ = cost_.target(1);
  if (fixed()) return true;
  if (pause_ > 0) {
    if (--pause_ == 0) {  // the next rounds probe: judged on their own
      spec_ = {};
      rounds_ = 0;
    }
    return false;
  }
  if (!can_pay()) {  // a draft this slow loses at any acceptance: no probing either
    pause_len_ = pause_ = kMaxPause;
    return false;
  }
  return true;
}

bool SpecPolicy::can_pay() const {
  if (o_.lookup || !cost_.draft_measured()) return true;
  const double plain = cost_.target(1), draft = cost_.draft();
  double expected = 1, all = 1;
  for (int k = 1; k <= o_.draft_max; k++) {
    all *= kOptimisticAcceptance;
    expected += all;
    if (expected * plain > k * draft + cost_.target(k + 1)) return true;  // beats plain steps' rate
  }
  return false;
}

void SpecPolicy::draft_evaluated(int n_tok) { spent_ += cost_.draft(n_tok); }

// A marginal step (another proposal, or another draft evaluation) is worth it when it brings
// expected tokens at least at the rate the round achieves so far: gain / cost > expected / spent.
// (Comparing with plain decoding's rate instead would let a round add steps that lower its own
// rate.)
bool SpecPolicy::worth(double gain, double cost) const {
  if (gain <= 0) return false;
  return gain * spent_ > cost * expected_;
}

bool SpecPolicy::include(int bin) const {
  const int n = int(bins_.size());
  if (n >= o_.draft_max) return false;
  if (fixed() || n < o_.draft_min) return true;
  return worth(all_accepted_ * accept_.predict(bin), cost_.slot(n + 1));
}

void SpecPolicy::add(int bin) {
  spent_ += cost_.slot(int(bins_.size()) + 1);
  bins_.push_back(bin);
  all_accepted_ *= accept_.predict(bin);
  expected_ += all_accepted_;
}

bool SpecPolicy::keep_drafting() const {
  const int n = int(bins_.size());
  if (n >= o_.draft_max) return false;
  if (fixed() || n < o_.draft_min) return true;
  return worth(all_accepted_ * accept_.mean(), cost_.draft() + cost_.slot(n + 1));
}

void SpecPolicy::plain_step(double ms) {
  plain_.add(1, ms >= 0 && cost_.measuring() ? ms : cost_.target(1), kPlainDecay);
}

void SpecPolicy::pause() {
  pause_len_ = pause_len_ == 0 ? kFirstPause : std::min(2 * pause_len_, kMaxPause);
  pause_ = pause_len_;
}

void SpecPolicy::end_round(int accepted, int draft_evals, int produced, double ms) {
  const int n = int(bins_.size());
  for (int i = 0; i < n && i <= accepted; i++) accept_.record(bins_[i], i < accepted);
  if (fixed()) return;
  // A round that cost nothing extra (lookup found no match) was a plain step.
  if (n == 0 && draft_evals == 0) {
    plain_step(ms);
    return;
  }
  // (The first evaluation may have caught up on several tokens: estimated as one.)
  const double spent = ms >= 0 && cost_.measuring() ? ms : draft_evals * cost_.draft() + cost_.target(n + 1);
  spec_.add(produced, spent, kSpecDecay);
  // Judge once a few rounds have accumulated: single rounds swing with each acceptance.
  if (++rounds_ < kProbeRounds) return;
  // What plain steps would do now: their measured rate, or that of the one-token target passes
  // timed since (rounds that proposed nothing), whichever is faster. Plain steps are only
  // measured during pauses, and on a machine whose speed drifts a rate from a slow moment would
  // let rounds that cost a draft evaluation for nothing run on.
  double plain = plain_.per_ms();
  const double one = cost_.measured_unit();
  if (one > 0) plain = std::max(plain, 1 / one);
  if (plain > 0 && spec_.per_ms() < plain * (1 - kMargin)) {
    pause();
  } else if (rounds_ == kProbeRounds) {
    pause_len_ = 0;  // a probe that pays: the next pause starts short again
  }
}

}  // namespace kite
