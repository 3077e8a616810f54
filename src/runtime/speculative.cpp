// The speculative generation loop.
//
// State between rounds: `ctx` = prompt + generated tokens; the target has cached all of ctx but
// its last token (the "pending" one, which opens the next batch). A round:
//   1. proposals d1..dk: from the draft model (which first catches up on the ctx tokens it has
//      not cached, then evaluates each proposal to get the next), or from prompt lookup;
//   2. one target pass over [pending, d1..dk] with all logits: rows 0..k give p(. | ctx, d<=i);
//   3. verification in order: greedy keeps d_i while it equals the target's argmax; sampling uses
//      the rejection rule; the first rejection yields the target's own token, and if all k pass
//      the last row gives a bonus token. So a round yields accepted + 1 tokens;
//   4. rollback: both caches are truncated to ctx + accepted proposals (the rejected tail's K/V
//      is simply overwritten later); the new last token becomes pending.
// A round without proposals is a plain decoding step.
// The prompt is evaluated whole, in the same batches generate() uses, so the cache holds the same
// bits as plain decoding's; the first round then verifies its proposals against the prompt's last
// row (its batch has no pending token). Verification passes run under kernels::ExactBatchScope:
// each token gets the bits a one-token decode step would give it, so greedy outputs are exactly
// the plain ones.
//
// The draft's cache may start later than the target's: after a long pause in speculation (or
// when its context is full) the draft restarts on a recent window of ctx instead of catching up
// on everything it missed. Its proposals only need recent context; correctness never depends
// on them.
#include "runtime/speculative.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <ctime>
#include <random>

#include "core/error.h"
#include "core/profile.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "runtime/lookup.h"
#include "runtime/spec_distribution.h"
#include "runtime/spec_output.h"
#include "runtime/spec_policy.h"
#include "tokenizer/tokenizer.h"

namespace kite {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The cost model times passes in the calling thread's CPU time, not wall time: on a machine
// shared with other work, wall time includes whatever ran in between (or a throttled CPU quota),
// which says nothing about what a pass costs.
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

// What the cost model assumes before (or instead of) measuring: the draft costs its share of the
// weight bytes, and each extra token in a batch a fifth of a one-token pass.
constexpr double kBatchSlopeEstimate = 0.2;
// A draft more than kMaxCatchUp tokens behind restarts on the last kRestartWindow tokens (no
// more costly than catching up, and its proposals need only recent context).
constexpr int kMaxCatchUp = 32, kRestartWindow = 32;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// The proposals of one round, with what verification and the policy need about each.
struct Proposal {
  std::vector<int32_t> tokens;
  std::vector<TokenDistribution> q;  // draft model: the distribution each token was drawn from
  int draft_evals = 0;
};

class SpeculativeLoop {
 public:
  SpeculativeLoop(Session& target, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                  const SpeculativeOptions& spec, const TokenCallback& on_token, SpecStats& stats);
  GenerateResult run();

 private:
  int max_proposals(int remaining) const;
  Proposal propose_with_draft(int limit);
  Proposal propose_by_lookup(int limit);
  std::span<const float> eval_target(std::span<const int32_t> batch);
  std::span<const float> eval_draft(std::span<const int32_t> tokens);
  // Verifies the proposals against the target's rows; returns the round's tokens.
  std::vector<int32_t> verify(const Proposal& prop, std::span<const float> logits);

  Session& target_;
  Session* draft_;
  const GenerateOptions& opts_;
  const SpeculativeOptions& spec_;
  const TokenCallback& on_token_;
  SpecStats& stats_;
  const bool greedy_;
  const SamplingParams draft_params_;
  const bool draft_greedy_;
  const int n_vocab_;
  const int base_;  // tokens cached before the prompt (identical in both sessions)
  int draft_from_;  // the draft's cache position p holds ctx_[p + draft_from_]
  SpecPolicy policy_;
  std::mt19937_64 rng_;
  GenerateResult r_;
  std::vector<int32_t> ctx_;
  std::vector<float> scratch_;
  TokenDistribution dist_;
};

PolicyOptions policy_options(const Session& target, const SpeculativeOptions& spec, bool greedy) {
  PolicyOptions p;
  p.draft_max = spec.draft_max;
  p.draft_min = spec.draft_min;
  p.lookup = spec.draft == nullptr;
  if (spec.draft) {
    const double t = double(target.model().impl().weight_bytes()), d = double(spec.draft->model().impl().weight_bytes());
    p.draft_ratio = t > 0 ? d / t : 0.2;
  }
  p.batch_slope = kBatchSlopeEstimate;
  p.measure_timing = spec.timing == SpeculativeOptions::Timing::Measure ||
                     (spec.timing == SpeculativeOptions::Timing::Auto && greedy);
  return p;
}

SpeculativeLoop::SpeculativeLoop(Session& target, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                                 const SpeculativeOptions& spec, const TokenCallback& on_token, SpecStats& stats)
    : target_(target), draft_(spec.draft), opts_(opts), spec_(spec), on_token_(on_token), stats_(stats),
      greedy_(opts.sampling.temperature <= 0), draft_params_(spec.draft_sampling.value_or(opts.sampling)),
      draft_greedy_(draft_params_.temperature <= 0), n_vocab_(target.model().n_vocab()), base_(target.n_past()), draft_from_(-base_),
      policy_(policy_options(target, spec, opts.sampling.temperature <= 0)), rng_(opts.sampling.seed) {
  r_.prompt_ids = prompt;
}

std::span<const float> SpeculativeLoop::eval_target(std::span<const int32_t> batch) {
  const double t0 = thread_cpu_ms();
  // Each verified token must get the bits a one-token decode step gives it.
  kernels::ExactBatchScope exact;
  std::span<const float> logits = target_.eval(batch, /*all_logits=*/batch.size() > 1);
  policy_.cost().record_target(int(batch.size()), thread_cpu_ms() - t0);
  stats_.target_passes++;
  return logits;
}

std::span<const float> SpeculativeLoop::eval_draft(std::span<const int32_t> tokens) {
  const double t0 = thread_cpu_ms();
  std::span<const float> logits = draft_->eval(tokens);
  policy_.cost().record_draft(int(tokens.size()), thread_cpu_ms() - t0);
  stats_.draft_evals++;
  return logits;
}

// Proposals that fit: in the target's context after the pending token, in the draft's, and in
// what is left to generate (a round yields up to k + 1 tokens).
int SpeculativeLoop::max_proposals(int remaining) const {
  int k = std::min(spec_.draft_max, target_.n_ctx() - target_.n_past() - 1);
  k = std::min(k, remaining - 1);
  // The draft (restarting if it must) evaluates its window of ctx and all proposals but the last.
  if (draft_) k = std::min(k, draft_->n_ctx() - kRestartWindow + 1);
  return std::max(0, k);
}

Proposal SpeculativeLoop::propose_with_draft(int limit) {
  Proposal prop;
  std::vector<int32_t> history = ctx_;  // for the draft's penalties: ctx + proposals so far
  // Catch up on the ctx tokens the draft has not cached (at least the pending one), or restart.
  int known = draft_->n_past() + draft_from_;
  const int behind = int(ctx_.size()) - known;
  if (behind > kMaxCatchUp || draft_->n_past() + behind + limit - 1 > draft_->n_ctx()) {
    draft_->truncate(0);
    draft_from_ = known = std::max(0, int(ctx_.size()) - kRestartWindow);
  }
  const std::span<const int32_t> catch_up(ctx_.data() + known, ctx_.size() - size_t(known));
  std::span<const float> logits = eval_draft(catch_up);
  prop.draft_evals = 1;
  policy_.draft_evaluated(int(catch_up.size()));
  for (;;) {
    {
      KITE_PROFILE("sampling", "draft");
      compute_distribution(logits, draft_params_, history, dist_);
    }
    const int bin = policy_.bin_of_confidence(dist_.confidence());
    if (!policy_.include(bin)) break;
    const int32_t x = draft_greedy_ ? dist_.most_likely() : sample_from(dist_, rng_);
    policy_.add(bin);
    prop.tokens.push_back(x);
    prop.q.push_back(dist_);
    history.push_back(x);
    if (int(prop.tokens.size()) >= limit || !policy_.keep_drafting()) break;
    logits = eval_draft(std::span<const int32_t>(&x, 1));
    prop.draft_evals++;
    policy_.draft_evaluated();
  }
  return prop;
}

Proposal SpeculativeLoop::propose_by_lookup(int limit) {
  Proposal prop;
  KITE_PROFILE("speculative", "lookup");
  const LookupMatch m = lookup_continuation(ctx_, spec_.lookup_ngram, limit);
  const int bin = policy_.bin_of_ngram(m.ngram);
  for (int32_t t : m.tokens) {
    if (!policy_.include(bin)) break;
    policy_.add(bin);
    prop.tokens.push_back(t);
  }
  return prop;
}

std::vector<int32_t> SpeculativeLoop::verify(const Proposal& prop, std::span<const float> logits) {
  std::vector<int32_t> out;
  std::vector<int32_t> history = ctx_;
  const size_t k = prop.tokens.size();
  for (size_t i = 0; i <= k; i++) {
    std::span<const float> row = logits.subspan(i * size_t(n_vocab_), size_t(n_vocab_));
    KITE_PROFILE("sampling", "verify");
    compute_distribution(row, opts_.sampling, history, dist_, /*need_confidence=*/false);
    if (i == k) {  // every proposal accepted (or none made): the target's own next token
      out.push_back(greedy_ ? dist_.most_likely() : sample_from(dist_, rng_));
      break;
    }
    const int32_t x = prop.tokens[i];
    VerifyResult v;
    if (greedy_) {
      v = {dist_.most_likely() == x, dist_.most_likely()};
    } else if (prop.q.empty()) {  // prompt lookup: the proposal is certain, q = 1 on x
      v = verify_draft_token(x, dist_, TokenDistribution::point(x), rng_, scratch_);
    } else {
      v = verify_draft_token(x, dist_, prop.q[i], rng_, scratch_);
    }
    out.push_back(v.token);
    if (!v.accepted) break;
    history.push_back(x);
  }
  return out;
}

GenerateResult SpeculativeLoop::run() {
  const std::vector<int32_t>& prompt = r_.prompt_ids;
  check(!prompt.empty(), "generate: the prompt is empty (and the model adds no BOS)");
  if (int(prompt.size()) > target_.n_ctx() - target_.n_past())
    fail("prompt of ", prompt.size(), " tokens does not fit in the context (", target_.n_ctx(), " tokens, ",
         target_.n_past(), " used); use -c to enlarge it");
  if (draft_) {
    check(draft_ != &target_, "the draft session must not be the target session");
    check(draft_->n_past() == target_.n_past(), "the draft session holds ", draft_->n_past(),
          " tokens and the target session ", target_.n_past(), ": they must hold the same ones");
    check(int(prompt.size()) <= draft_->n_ctx() - draft_->n_past(), "prompt of ", prompt.size(),
          " tokens does not fit in the draft's context (", draft_->n_ctx(), " tokens)");
  }
  const Tokenizer& tok = target_.model().tokenizer();

  // The whole prompt in one pass, exactly as generate() evaluates it (the same batches, hence the
  // same bits in the cache); the first token comes from its last row and opens the first round.
  auto t0 = Clock::now();
  const std::span<const float> prompt_logits = target_.eval(prompt);
  const std::span<const int32_t> head(prompt.data(), prompt.size() - 1);
  if (draft_ && !head.empty()) draft_->eval(head);
  r_.prompt_ms = ms_since(t0);

  t0 = Clock::now();
  ctx_ = prompt;
  OutputStream out(tok, opts_, on_token_, r_);
  r_.stop_reason = "length";
  bool done = false;
  // Takes one produced token; false when generation must end.
  auto take = [&](int32_t id) {
    stats_.generated++;
    ctx_.push_back(id);
    if (!out.push(id)) return false;
    if (base_ + int(ctx_.size()) - 1 >= target_.n_ctx()) {
      r_.stop_reason = "context";
      return false;
    }
    return !(opts_.n_predict >= 0 && int(r_.ids.size()) >= opts_.n_predict);
  };
  // First round: the prompt is all cached and its last row predicts the first token, so the
  // round's batch is the proposals alone. Later rounds open with the pending token.
  std::vector<float> first_rows(prompt_logits.begin(), prompt_logits.end());
  bool first_round = true;
  while (!done) {
    const int remaining = opts_.n_predict < 0 ? INT_MAX : opts_.n_predict - int(r_.ids.size());
    if (remaining <= 0) break;
    const int limit = max_proposals(remaining);
    const double round_start = thread_cpu_ms();
    Proposal prop;
    const bool speculate = limit > 0 && policy_.begin_round();
    if (speculate) prop = draft_ ? propose_with_draft(limit) : propose_by_lookup(limit);

    const int cached = target_.n_past();  // == base_ + ctx_.size() - 1 (first round: ctx_.size())
    std::vector<int32_t> produced;
    if (first_round) {
      if (!prop.tokens.empty()) {
        const std::span<const float> rows = eval_target(prop.tokens);
        first_rows.insert(first_rows.end(), rows.begin(), rows.end());
      }
      produced = verify(prop, first_rows);
    } else {
      std::vector<int32_t> batch = {ctx_.back()};
      batch.insert(batch.end(), prop.tokens.begin(), prop.tokens.end());
      produced = verify(prop, eval_target(batch));
    }
    const int accepted = int(produced.size()) - 1;

    stats_.drafted += int64_t(prop.tokens.size());
    stats_.accepted += accepted;
    if (!prop.tokens.empty()) stats_.rounds++;
    const double round_ms = thread_cpu_ms() - round_start;
    if (speculate) policy_.end_round(accepted, prop.draft_evals, int(produced.size()), round_ms);
    else policy_.plain_step(round_ms);

    // Roll back the rejected tail: keep the pending token and the accepted proposals.
    target_.truncate(cached + (first_round ? 0 : 1) + accepted);
    first_round = false;
    if (draft_) {
      const int keep = int(ctx_.size()) + accepted - draft_from_;  // ctx and the accepted proposals
      if (draft_->n_past() > keep) draft_->truncate(keep);
    }

    for (int32_t id : produced)
      if (!take(id)) {
        done = true;
        break;
      }
  }
  out.finish();
  r_.gen_ms = ms_since(t0);
  return r_;
}

}  // namespace

void check_same_vocabulary(const Model& target, const Model& draft) {
  const Tokenizer& a = target.tokenizer();
  const Tokenizer& b = draft.tokenizer();
  if (a.n_vocab() != b.n_vocab())
    fail("the draft model's vocabulary (", b.n_vocab(), " tokens) differs from the target's (", a.n_vocab(),
         " tokens): a draft must share the target's tokenizer");
  if (target.n_vocab() != draft.n_vocab())
    fail("the draft model has ", draft.n_vocab(), " logits per token and the target ", target.n_vocab(),
         ": a draft must predict over the target's vocabulary");
  const auto& ta = a.vocab().tokens;
  const auto& tb = b.vocab().tokens;
  for (size_t i = 0; i < ta.size() && i < tb.size(); i++)
    if (ta[i] != tb[i])
      fail("the draft model's vocabulary differs from the target's: token ", i, " is ", quoted(tb[i]),
           " for the draft and ", quoted(ta[i]), " for the target");
  if (a.bos() != b.bos() || a.eos() != b.eos())
    fail("the draft model's special tokens differ from the target's: BOS ", b.bos(), "/", a.bos(), ", EOS ",
         b.eos(), "/", a.eos(), " (draft/target)");
}

GenerateResult generate_speculative(Session& target, const std::vector<int32_t>& prompt_ids,
                                    const GenerateOptions& opts, const SpeculativeOptions& spec,
                                    const TokenCallback& on_token, SpecStats* stats) {
  check((spec.draft != nullptr) != (spec.lookup_ngram > 0),
        "speculative decoding needs either a draft model or prompt lookup (not both)");
  if (spec.draft) check_same_vocabulary(target.model(), spec.draft->model());
  SpecStats local;
  SpecStats& s = stats ? *stats : local;
  s = {};
  SpeculativeLoop loop(target, prompt_ids, opts, spec, on_token, s);
  return loop.run();
}

}  // namespace kite
