// Speculative decoding: a cheap proposer guesses several tokens, the target checks them all in one
// batched pass and keeps the longest acceptable prefix plus one token of its own.
//
//   Session target(target_model, so), draft(draft_model, so);
//   SpeculativeOptions spec;  spec.draft = &draft;       // or spec.lookup_ngram = 3
//   SpecStats stats;
//   GenerateResult r = generate_speculative(target, prompt_ids, g, spec, on_token, &stats);
//
// Outputs follow the target alone: greedy ids are those of generate() (up to float rounding
// between batched and one-token passes at near-ties), and sampled ones follow the target's
// sampling distribution exactly (Leviathan et al. 2023, Chen et al. 2023), though a given seed
// gives another sample than generate() does. Streaming and stopping are generate()'s.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kite/kite.h"

namespace kite {

struct SpeculativeOptions {
  Session* draft = nullptr;  // draft model mode: its session (same tokens cached as the target's)
  int lookup_ngram = 0;      // > 0: prompt lookup mode, matching n-grams of up to this length
  int draft_max = 8;         // most tokens proposed per round
  int draft_min = 0;         // fewest tokens per speculative round; == draft_max: fixed length,
                             // no adaptation (for experiments and tests)
  // The draft's own sampling parameters (default: the target's). Any choice keeps the output
  // exact; it only changes how often proposals are accepted.
  std::optional<SamplingParams> draft_sampling;
  // Adapt to measured pass times (the draft length then depends on timing). Default: only for
  // greedy decoding, whose output does not depend on it; when sampling, fixed cost estimates keep
  // a seed's output reproducible.
  enum class Timing { Auto, Measure, Estimate } timing = Timing::Auto;
};

struct SpecStats {
  int64_t drafted = 0;        // tokens proposed to the target
  int64_t accepted = 0;       // of those, accepted
  int64_t target_passes = 0;  // target forward passes while generating (the prompt's excluded)
  int64_t draft_evals = 0;    // draft forward passes while generating
  int64_t rounds = 0;         // target passes that verified at least one proposal
  int64_t generated = 0;      // tokens produced (as GenerateResult::ids, plus a final EOS)
  double acceptance() const { return drafted > 0 ? double(accepted) / drafted : 0; }
  double tokens_per_pass() const { return target_passes > 0 ? double(generated) / target_passes : 0; }
};

// Checks that a draft model can propose tokens to the target: the same tokenizer vocabulary
// (size, every token's text, BOS/EOS) and logits over the same ids. Throws kite::Error naming
// the first difference.
void check_same_vocabulary(const Model& target, const Model& draft);

GenerateResult generate_speculative(Session& target, const std::vector<int32_t>& prompt_ids,
                                    const GenerateOptions& opts, const SpeculativeOptions& spec,
                                    const TokenCallback& on_token = nullptr, SpecStats* stats = nullptr);

}  // namespace kite
