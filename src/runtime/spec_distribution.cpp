// Final sampling distributions and the speculative accept/reject step.
//
// compute_distribution mirrors Sampler::sample (src/runtime/sampler.cpp) step by step and in the
// same float/double arithmetic: penalties, then temperature, top-k (ties broken by lower id),
// softmax over the kept candidates, top-p, min-p. Sampler draws r ~ U(0, total) over the kept
// candidates' probabilities, so each is drawn with probability prob / total: that normalized
// vector is what we return. Keep the two files in step.
#include "runtime/spec_distribution.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "kernels/kernels.h"

namespace kite {

TokenDistribution TokenDistribution::point(int32_t id) {
  TokenDistribution d;
  d.probs_ = {{1.0f, id}};
  d.confidence_ = 1;
  return d;
}

float TokenDistribution::prob(int32_t id) const {
  for (const auto& [p, i] : probs_)
    if (i == id) return p;
  return 0;
}

// Greedy: the first maximum, with probability 1. Its confidence is its softmax probability at
// temperature 1, 1 / sum(exp(l - max)), in float with the SIMD softmax (the policy only bins it
// in tenths); callers that do not use it (verification) skip it, for it is most of the cost.
void greedy_result(std::span<const float> logits, TokenDistribution& out, bool need_confidence) {
  const int n = int(logits.size());
  int best = 0;
  for (int i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = i;
  out.confidence_ = 1;
  if (need_confidence) {
    thread_local std::vector<float> work;
    work.assign(logits.begin(), logits.end());
    kernels::softmax(work.data(), n);
    out.confidence_ = work[size_t(best)];
  }
  out.probs_.assign(1, {1.0f, best});
}

void compute_distribution(std::span<const float> logits, const SamplingParams& p,
                          std::span<const int32_t> history, TokenDistribution& out, bool need_confidence) {
  const int n_vocab = int(logits.size());
  check(n_vocab > 0, "compute_distribution: empty logits");
  auto& cand = out.probs_;
  const bool penalize = p.repeat_penalty != 1.0f || p.frequency_penalty != 0 || p.presence_penalty != 0;
  if (p.temperature <= 0 && !(penalize && !history.empty())) {
    // Greedy without penalties: the logits as they are. (Copying them into candidates costs a
    // few percent of a small model's decode step.)
    greedy_result(logits, out, need_confidence);
    return;
  }
  cand.resize(n_vocab);
  for (int i = 0; i < n_vocab; i++) cand[i] = {logits[i], i};

  // Penalties over the last penalty_last_n tokens (as Sampler).
  if (penalize && !history.empty()) {
    size_t from = 0;
    if (p.penalty_last_n >= 0 && history.size() > size_t(p.penalty_last_n)) from = history.size() - p.penalty_last_n;
    std::unordered_map<int32_t, int> count;
    for (size_t i = from; i < history.size(); i++) count[history[i]]++;
    for (auto [id, n] : count) {
      if (id < 0 || id >= n_vocab) continue;
      float& l = cand[id].first;
      l = l > 0 ? l / p.repeat_penalty : l * p.repeat_penalty;
      l -= n * p.frequency_penalty + p.presence_penalty;
    }
  }

  if (p.temperature <= 0) {
    std::vector<float> penalized(static_cast<size_t>(n_vocab));
    for (int i = 0; i < n_vocab; i++) penalized[i] = cand[i].first;
    greedy_result(penalized, out, need_confidence);
    return;
  }

  for (auto& c : cand) c.first /= p.temperature;
  auto desc = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = cand.size();
  if (p.top_k > 0 && size_t(p.top_k) < keep) {
    keep = p.top_k;
    std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(), desc);
    cand.resize(keep);
  } else {
    std::sort(cand.begin(), cand.end(), desc);
  }
  const float mx = cand[0].first;
  double sum = 0;
  for (auto& c : cand) { c.first = std::exp(c.first - mx); sum += c.first; }
  for (auto& c : cand) c.first = float(c.first / sum);
  if (p.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < cand.size()) { cum += cand[n].first; n++; if (cum >= p.top_p) break; }
    cand.resize(std::max<size_t>(1, n));
  }
  if (p.min_p > 0) {
    const float thr = cand[0].first * p.min_p;
    size_t n = 1;
    while (n < cand.size() && cand[n].first >= thr) n++;
    cand.resize(n);
  }
  double total = 0;
  for (const auto& c : cand) total += c.first;
  for (auto& c : cand) c.first = float(c.first / total);
  out.confidence_ = cand[0].first;
}

int32_t sample_from(const TokenDistribution& d, std::mt19937_64& rng) {
  const auto& e = d.entries();
  check(!e.empty(), "sample_from: empty distribution");
  if (e.size() == 1) return e[0].second;
  double total = 0;
  for (const auto& [p, id] : e) total += p;
  std::uniform_real_distribution<double> u(0.0, total);
  const double r = u(rng);
  double acc = 0;
  for (const auto& [p, id] : e) {
    acc += p;
    if (r < acc) return id;
  }
  return e.back().second;
}

VerifyResult verify_draft_token(int32_t x, const TokenDistribution& p, const TokenDistribution& q,
                                std::mt19937_64& rng, std::vector<float>& scratch) {
  const double px = p.prob(x), qx = q.prob(x);
  check(qx > 0, "verify_draft_token: the drafted token ", x, " has no probability under its own distribution");
  // Accept with probability min(1, p(x)/q(x)).
  if (px >= qx) return {true, x};
  if (px > 0) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (u(rng) * qx < px) return {true, x};
  }
  // Rejected: draw from the residual max(0, p - q), normalized. q is spread into a dense scratch
  // vector so each of p's tokens finds its q(t) in O(1); the touched entries are cleared after.
  int32_t max_id = 0;
  for (const auto& [pr, id] : p.entries()) max_id = std::max(max_id, id);
  for (const auto& [pr, id] : q.entries()) max_id = std::max(max_id, id);
  if (scratch.size() <= size_t(max_id)) scratch.resize(size_t(max_id) + 1, 0.0f);
  for (const auto& [pr, id] : q.entries()) scratch[id] = pr;
  double total = 0;
  for (const auto& [pr, id] : p.entries()) total += std::max(0.0, double(pr) - scratch[id]);
  int32_t token = -1;
  if (total > 0) {
    std::uniform_real_distribution<double> u(0.0, total);
    const double r = u(rng);
    double acc = 0;
    for (const auto& [pr, id] : p.entries()) {
      const double w = std::max(0.0, double(pr) - scratch[id]);
      if (w <= 0) continue;
      acc += w;
      token = id;
      if (r < acc) break;
    }
  }
  for (const auto& [pr, id] : q.entries()) scratch[id] = 0;
  // total == 0 would mean p <= q everywhere yet p(x) < q(x): only float rounding of two
  // near-identical distributions gets here; p itself is then the right distribution to draw from.
  if (token < 0) token = sample_from(p, rng);
  return {false, token};
}

}  // namespace kite
