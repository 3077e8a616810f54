// The distribution a Sampler draws from, made explicit: speculative sampling needs the target's
// and the draft's *final* probabilities p and q (after penalties, temperature, top-k, top-p and
// min-p) to accept or reject drafted tokens exactly.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "kite/kite.h"

namespace kite {

// A sparse probability distribution over token ids: the tokens that can be drawn, most likely
// first, with probabilities summing to 1. Greedy parameters give a single token of probability 1.
class TokenDistribution {
 public:
  // All the probability on one token (a prompt-lookup proposal).
  static TokenDistribution point(int32_t id);

  const std::vector<std::pair<float, int32_t>>& entries() const { return probs_; }
  int32_t most_likely() const { return probs_.front().second; }
  float prob(int32_t id) const;  // 0 for a token outside the support
  // How sure the model is of its best token, to decide whether drafting further is worth it: the
  // best token's final probability, or for greedy parameters (where that is always 1) its
  // softmax probability at temperature 1.
  float confidence() const { return confidence_; }

 private:
  friend void compute_distribution(std::span<const float>, const SamplingParams&, std::span<const int32_t>,
                                   TokenDistribution&, bool);
  friend void greedy_result(std::span<const float>, TokenDistribution&, bool);
  std::vector<std::pair<float, int32_t>> probs_;  // (probability, id)
  float confidence_ = 1;
};

// Fills `out` with the distribution Sampler(params).sample(logits, history) draws from; the same
// steps in the same arithmetic as src/runtime/sampler.cpp, so the supports agree exactly.
// need_confidence = false skips computing confidence() for greedy parameters (it is then 1).
void compute_distribution(std::span<const float> logits, const SamplingParams& params,
                          std::span<const int32_t> history, TokenDistribution& out, bool need_confidence = true);

// Draws a token from d.
int32_t sample_from(const TokenDistribution& d, std::mt19937_64& rng);

// The speculative sampling step for one drafted token x proposed from q (Leviathan et al. 2023,
// Chen et al. 2023): accept x with probability min(1, p(x)/q(x)); otherwise draw the replacement
// from norm(max(0, p - q)). The result is distributed exactly as p. `scratch` is a work vector
// (any size; resized and left zeroed).
struct VerifyResult {
  bool accepted;
  int32_t token;  // x when accepted, else the replacement
};
VerifyResult verify_draft_token(int32_t x, const TokenDistribution& p, const TokenDistribution& q,
                                std::mt19937_64& rng, std::vector<float>& scratch);

}  // namespace kite
