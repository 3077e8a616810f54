// How many tokens to draft. Speculation pays only when the tokens it gains are worth more than
// what it costs (draft evaluations, and the extra tokens in the target's batched pass), so the
// policy weighs both, token by token:
//  - a cost model: the target's pass time by batch size and the draft's time per token, measured
//    during generation (robust medians) or, where outputs must not depend on timing, fixed
//    estimates;
//  - an acceptance model: how often a proposed token is accepted, learned per "bin" of the
//    proposer's confidence (draft model: its probability of its own token; prompt lookup: the
//    length of the matched n-gram);
//  - a gate: when recent rounds did not pay (measured: tokens produced against the time of a
//    plain step), plain steps, with a few rounds to probe again after exponentially growing
//    pauses (so poor acceptance costs little).
#pragma once
#include <array>
#include <utility>
#include <vector>

namespace kite {

// Recent pass times: the median of the last few, so that a descheduled pass on a busy machine
// does not move the estimate.
class RecentTimes {
 public:
  void add(double ms);
  bool ready() const { return n_ >= 3; }
  double median() const;

 private:
  static constexpr int kKeep = 9;
  std::array<double, kKeep> v_{};
  int n_ = 0;
};

// Pass times by batch size: measured medians, and for sizes not measured yet an estimate from
// the nearest measured ones (or from a fallback one-token time) with an assumed slope.
class BatchTimes {
 public:
  BatchTimes(int max_batch, double slope);
  void record(int n_tok, double ms);  // sizes above max_batch are not kept
  // A one-token pass: measured, or inferred from another size, or the fallback.
  double unit(double fallback) const;
  // A pass over n_tok tokens (clamped to max_batch); never less than a smaller batch's.
  double at(int n_tok, double fallback_unit) const;

 private:
  std::vector<RecentTimes> by_size_;  // [n_tok]
  double slope_;
};

class CostModel {
 public:
  // max_batch: the largest target batch (draft_max + 1). draft_ratio: the draft's time per token
  // relative to a target pass of one token; batch_slope: a batch's extra time per extra token,
  // relative to one token. Both are the estimates used until measurements exist (and for good
  // when measure is false); the draft's slope stays assumed.
  CostModel(int max_batch, double draft_ratio, double batch_slope, bool measure);
  void record_target(int n_tok, double ms);
  void record_draft(int n_tok, double ms);
  bool measuring() const { return measure_; }
  bool draft_measured() const { return draft_unit_.ready(); }
  // A one-token target pass as measured (or inferred from a measured batch size); 0 if none yet.
  double measured_unit() const { return measure_ ? target_.unit(0) : 0; }

  double target(int n_tok) const;     // estimated time of a target pass over n_tok tokens
  double draft(int n_tok = 1) const;  // estimated time of a draft evaluation of n_tok tokens
  // Extra time for growing a target batch from n_tok to n_tok + 1 tokens (never negative).
  double slot(int n_tok) const;

 private:
  BatchTimes target_;
  RecentTimes draft_unit_;  // draft evaluations, each brought to one token by the slope
  double draft_ratio_, slope_;
  bool measure_;
};

// P(a proposed token is accepted | all before it were), per bin, from decayed counts with a prior.
class AcceptanceModel {
 public:
  explicit AcceptanceModel(std::vector<double> prior) : prior_(std::move(prior)), acc_(prior_.size()), n_(prior_.size()) {}
  int n_bins() const { return int(prior_.size()); }
  void record(int bin, bool accepted);
  double predict(int bin) const;
  double mean() const { return mean_; }  // recent acceptance over all bins

 private:
  std::vector<double> prior_, acc_, n_;
  double mean_ = 0.5;
};

struct PolicyOptions {
  int draft_max = 8;
  int draft_min = 0;          // a speculative round drafts at least this many tokens
  bool lookup = false;        // proposals from prompt lookup (free) rather than a draft model
  double draft_ratio = 0.2;   // see CostModel
  double batch_slope = 0.2;
  bool measure_timing = true;
};

class SpecPolicy {
 public:
  explicit SpecPolicy(const PolicyOptions& o);

  // Fixed length (draft_min == draft_max): no adaptation, no early stop, no gate.
  bool fixed() const { return o_.draft_min >= o_.draft_max; }
  // Starts a round; false when this step should be a plain one (without consulting the proposer).
  bool begin_round();
  // Should the next proposal, in acceptance bin `bin`, join this round's batch?
  bool include(int bin) const;
  void add(int bin);       // it did
  void draft_evaluated(int n_tok = 1);  // a draft evaluation (of n_tok tokens) was spent on this round
  // Is one more draft evaluation worth it? (Draft model only.)
  bool keep_drafting() const;
  // The round's outcome: how many proposals were accepted, how many draft evaluations it cost,
  // how many tokens it produced and how long it took (ms; < 0: not measured, use the model).
  void end_round(int accepted, int draft_evals, int produced, double ms);
  // A plain step (begin_round said no) and how long it took (< 0: not measured).
  void plain_step(double ms);

  // Acceptance bins: of a draft model's confidence, or of the matched n-gram length (lookup).
  int bin_of_confidence(float confidence) const;
  int bin_of_ngram(int n) const;

  CostModel& cost() { return cost_; }
  const AcceptanceModel& acceptance() const { return accept_; }

 private:
  // Tokens per ms over recent steps, as decayed sums (a ratio of sums, steadier than a mean of
  // per-round ratios).
  struct Rate {
    double tokens = 0, ms = 0;
    void add(double t, double m, double decay) { tokens = tokens * decay + t; ms = ms * decay + m; }
    double per_ms() const { return ms > 0 ? tokens / ms : 0; }
  };

  bool worth(double gain, double cost) const;
  bool can_pay() const;  // could a round beat plain steps with optimistic acceptance?
  void pause();

  PolicyOptions o_;
  CostModel cost_;
  AcceptanceModel accept_;
  // The round being built.
  std::vector<int> bins_;          // its proposals' acceptance bins
  double all_accepted_ = 1;        // P(all of them are accepted)
  double expected_ = 1;            // expected tokens from the round as it stands
  double spent_ = 0;               // its estimated cost
  // The gate: speculative rounds against plain steps, by their measured (or, when timing is not
  // measured, estimated) rates.
  Rate spec_, plain_;
  int rounds_ = 0;                 // speculative rounds since the gate last opened
  int pause_, pause_len_ = 0;      // plain steps left in the pause, and its length
};

}  // namespace kite
