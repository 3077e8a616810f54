// Sampling: penalties, then (as Hugging Face orders its warpers) temperature, top-k, top-p,
// min-p, and a draw from the remaining distribution with a seeded generator.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/profile.h"
#include "kite/kite.h"

namespace kite {

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  KITE_PROFILE("sampling", "sample");
  const int n_vocab = int(logits.size());
  const bool penalize = p_.repeat_penalty != 1.0f || p_.frequency_penalty != 0 || p_.presence_penalty != 0;
  if (p_.temperature <= 0 && !(penalize && !history.empty())) {
    // Greedy without penalties: the first maximum of the logits as they are (building the
    // candidate list costs a few percent of a small model's decode step).
    int best = 0;
    for (int i = 1; i < n_vocab; i++)
      if (logits[i] > logits[best]) best = i;
    return best;
  }
  cand_.resize(n_vocab);
  for (int i = 0; i < n_vocab; i++) cand_[i] = {logits[i], i};

  // Penalties over the last penalty_last_n tokens.
  if (penalize && !history.empty()) {
    size_t from = 0;
    if (p_.penalty_last_n >= 0 && history.size() > size_t(p_.penalty_last_n))
      from = history.size() - p_.penalty_last_n;
    std::unordered_map<int32_t, int> count;
    for (size_t i = from; i < history.size(); i++) count[history[i]]++;
    for (auto [id, n] : count) {
      if (id < 0 || id >= n_vocab) continue;
      float& l = cand_[id].first;
      l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
      l -= n * p_.frequency_penalty + p_.presence_penalty;
    }
  }

  // Greedy: the first maximum (as argmax in transformers).
  if (p_.temperature <= 0) {
    int best = 0;
    for (int i = 1; i < n_vocab; i++)
      if (cand_[i].first > cand_[best].first) best = i;
    return cand_[best].second;
  }

  for (auto& c : cand_) c.first /= p_.temperature;
  auto desc = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = cand_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < keep) {
    keep = p_.top_k;
    std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), desc);
    cand_.resize(keep);
  } else {
    std::sort(cand_.begin(), cand_.end(), desc);
  }
  // Probabilities of the sorted candidates.
  const float mx = cand_[0].first;
  double sum = 0;
  for (auto& c : cand_) { c.first = std::exp(c.first - mx); sum += c.first; }
  for (auto& c : cand_) c.first = float(c.first / sum);
  if (p_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < cand_.size()) { cum += cand_[n].first; n++; if (cum >= p_.top_p) break; }
    cand_.resize(std::max<size_t>(1, n));
  }
  if (p_.min_p > 0) {
    const float thr = cand_[0].first * p_.min_p;
    size_t n = 1;
    while (n < cand_.size() && cand_[n].first >= thr) n++;
    cand_.resize(n);
  }
  double total = 0;
  for (auto& c : cand_) total += c.first;
  std::uniform_real_distribution<double> u(0.0, total);
  double r = u(rng_), acc = 0;
  for (auto& c : cand_) {
    acc += c.first;
    if (r < acc) return c.second;
  }
  return cand_.back().second;
}

}  // namespace kite
