// Speculative sampling is exact: its outputs follow the target's sampling distribution. Checked
// with chi-square goodness-of-fit tests (fixed seeds, so the outcome is reproducible):
//  - compute_distribution against Sampler's own draws;
//  - the accept/reject step alone, on hand-made p and q;
//  - whole generations (stories260K target, the same model as draft at another temperature, and
//    prompt lookup) against the exact marginal distribution of each of the first 3 tokens,
//    enumerated from the target. The draft's own distribution must fail the same test (power).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>

#include "kite/kite.h"
#include "runtime/spec_distribution.h"
#include "runtime/speculative.h"
#include "test_util.h"

using namespace kite;
using kite::test::shared_path;

namespace {

// Chi-square goodness of fit of observed counts to expected probabilities; cells expected below
// 5 counts are pooled. Returns the p-value (Wilson-Hilferty approximation), or -1 when a sample
// fell where the expected probability is zero.
double chi_square_p(const std::map<int32_t, int>& observed, const std::map<int32_t, double>& expected, int n) {
  double stat = 0, pooled_exp = 0, pooled_obs = 0;
  int cells = 0;
  for (const auto& [id, p] : expected) {
    const double e = p * n;
    auto it = observed.find(id);
    const double o = it == observed.end() ? 0 : it->second;
    if (e < 5) { pooled_exp += e; pooled_obs += o; continue; }
    stat += (o - e) * (o - e) / e;
    cells++;
  }
  for (const auto& [id, o] : observed)
    if (!expected.count(id) || expected.at(id) <= 0) return -1;
  if (pooled_exp > 0) { stat += (pooled_obs - pooled_exp) * (pooled_obs - pooled_exp) / pooled_exp; cells++; }
  const double df = std::max(1, cells - 1);
  const double z = (std::cbrt(stat / df) - (1 - 2 / (9 * df))) / std::sqrt(2 / (9 * df));
  return 0.5 * std::erfc(z / std::sqrt(2.0));
}

constexpr double kAlpha = 1e-4;  // significance: a correct implementation fails 1 in 10^4 checks

std::map<int32_t, double> as_map(const TokenDistribution& d) {
  std::map<int32_t, double> m;
  for (const auto& [p, id] : d.entries()) m[id] += p;
  return m;
}

}  // namespace

// ---- the distribution and the accept/reject step ----

TEST(SpecDistribution, MatchesSamplerDraws) {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0, 3);
  std::vector<float> logits(64);
  for (float& l : logits) l = normal(gen);
  const std::vector<int32_t> history = {3, 5, 5, 9, 12, 3, 40, 41};

  std::vector<SamplingParams> cases(4);
  cases[0].temperature = 0.7f, cases[0].top_k = 10, cases[0].top_p = 0.9f, cases[0].min_p = 0.05f;
  cases[1].temperature = 1.3f, cases[1].top_k = 0, cases[1].top_p = 1, cases[1].min_p = 0;
  cases[2].temperature = 1.0f, cases[2].repeat_penalty = 1.3f, cases[2].frequency_penalty = 0.2f;
  cases[2].presence_penalty = 0.3f, cases[2].penalty_last_n = 6;
  cases[3].temperature = 2.0f, cases[3].top_k = 0, cases[3].top_p = 0.5f, cases[3].min_p = 0.2f;
  for (size_t c = 0; c < cases.size(); c++) {
    SCOPED_TRACE("case " + std::to_string(c));
    TokenDistribution d;
    compute_distribution(logits, cases[c], history, d);
    double sum = 0;
    for (const auto& [p, id] : d.entries()) sum += p;
    EXPECT_NEAR(sum, 1.0, 1e-5);
    Sampler s(cases[c]);
    const int n = 20000;
    std::map<int32_t, int> counts;
    for (int i = 0; i < n; i++) counts[s.sample(logits, history)]++;
    EXPECT_GT(chi_square_p(counts, as_map(d), n), kAlpha);
  }
  // Greedy: one token, Sampler's choice (penalties included).
  SamplingParams g;
  g.temperature = 0;
  g.repeat_penalty = 1.5f;
  TokenDistribution d;
  compute_distribution(logits, g, history, d);
  ASSERT_EQ(d.entries().size(), 1u);
  EXPECT_EQ(d.most_likely(), Sampler(g).sample(logits, history));
  EXPECT_GT(d.confidence(), 0);
  EXPECT_LE(d.confidence(), 1);

  // Greedy without penalties (the fast path over the logits as they are): the first maximum,
  // its softmax probability as confidence (float, within 1e-5), or 1 when not asked for.
  g.repeat_penalty = 1;
  std::vector<float> tied = logits;
  const int32_t best = int32_t(std::max_element(tied.begin(), tied.end()) - tied.begin());
  tied.push_back(tied[size_t(best)]);  // a later tie must not win
  compute_distribution(tied, g, history, d);
  EXPECT_EQ(d.most_likely(), best);
  EXPECT_EQ(Sampler(g).sample(tied, history), best);
  double sum = 0;
  for (float l : tied) sum += std::exp(double(l) - double(tied[size_t(best)]));
  EXPECT_NEAR(d.confidence(), 1 / sum, 1e-5);
  compute_distribution(tied, g, history, d, /*need_confidence=*/false);
  EXPECT_EQ(d.most_likely(), best);
  EXPECT_EQ(d.confidence(), 1.0f);
}

namespace {
TokenDistribution from_logits(const std::vector<float>& logits, float temperature) {
  SamplingParams p;
  p.temperature = temperature, p.top_k = 0, p.top_p = 1, p.min_p = 0;
  TokenDistribution d;
  compute_distribution(logits, p, {}, d);
  return d;
}
}  // namespace

TEST(SpecDistribution, VerifyFollowsTarget) {
  // p and q overlap partly: q has mass where p has none (token 5), p where q has none (token 0).
  std::vector<float> lp = {1.0f, 2.0f, 0.5f, 1.5f, -1.0f, -1e9f};
  std::vector<float> lq = {-1e9f, 0.5f, 2.0f, 1.5f, 0.0f, 1.0f};
  struct Case { std::string name; TokenDistribution p, q; };
  std::vector<Case> cases = {
      {"overlapping", from_logits(lp, 1.0f), from_logits(lq, 1.0f)},
      {"prompt lookup (q certain)", from_logits(lp, 1.0f), TokenDistribution::point(3)},
      {"greedy target", TokenDistribution::point(1), from_logits(lq, 1.0f)},
      {"identical", from_logits(lp, 0.8f), from_logits(lp, 0.8f)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::mt19937_64 rng(11);
    std::vector<float> scratch;
    const int n = 100000;
    std::map<int32_t, int> counts;
    int accepted = 0;
    for (int i = 0; i < n; i++) {
      const int32_t x = sample_from(c.q, rng);
      const VerifyResult v = verify_draft_token(x, c.p, c.q, rng, scratch);
      if (v.accepted) { accepted++; EXPECT_EQ(v.token, x); }
      counts[v.token]++;
    }
    EXPECT_GT(chi_square_p(counts, as_map(c.p), n), kAlpha);
    // Acceptance rate: sum over tokens of min(p, q).
    double overlap = 0;
    for (const auto& [p, id] : c.p.entries()) overlap += std::min<double>(p, c.q.prob(id));
    EXPECT_NEAR(double(accepted) / n, overlap, 0.01);
    for (float s : scratch) ASSERT_EQ(s, 0.0f) << "scratch left dirty";
  }
}

// ---- whole generations ----

namespace {

constexpr int kDepth = 3;  // tokens generated per run; the marginal of each is checked

// Generation starts from sessions that already hold `cached` (evaluated once, not per run), with
// `prompt` given to generate: its penalty history is `prompt` and what follows.
struct Start {
  std::vector<int32_t> cached, prompt;
};

// Exact marginal distributions of the first kDepth sampled tokens, by enumerating every prefix
// the target can sample.
std::vector<std::map<int32_t, double>> exact_marginals(const std::shared_ptr<const Model>& m, const Start& start,
                                                       const SamplingParams& p, int depth_limit = kDepth) {
  std::vector<std::map<int32_t, double>> out(depth_limit);
  Session s(m, {.n_ctx = 64, .n_threads = 1});
  if (!start.cached.empty()) s.eval(start.cached);
  const int base = s.n_past();
  std::vector<int32_t> history = start.prompt;
  std::function<void(double, std::span<const float>)> walk = [&](double prefix_prob, std::span<const float> logits) {
    const int depth = int(history.size() - start.prompt.size());
    TokenDistribution d;
    compute_distribution(logits, p, history, d);
    for (const auto& [pr, id] : d.entries()) {
      out[depth][id] += prefix_prob * pr;
      if (depth + 1 == depth_limit) continue;
      history.push_back(id);
      s.truncate(base + int(history.size()) - 1);
      std::vector<float> next;
      {
        auto l = s.eval(std::span<const int32_t>(&id, 1));
        next.assign(l.begin(), l.end());
      }
      walk(prefix_prob * pr, next);
      history.pop_back();
    }
  };
  std::vector<float> first;
  {
    auto l = s.eval(start.prompt);
    first.assign(l.begin(), l.end());
  }
  walk(1.0, first);
  return out;
}

struct Samples {
  std::vector<std::map<int32_t, int>> counts = std::vector<std::map<int32_t, int>>(kDepth);
  SpecStats stats;
};

// n generations of kDepth tokens with seeds 0..n-1: plain generate() when spec is null, else
// speculative (with a draft session of the same model unless spec asks for prompt lookup).
Samples sample_runs(const std::shared_ptr<const Model>& m, const Start& start, const SamplingParams& p,
                    const SpeculativeOptions* spec_in, int n) {
  Samples out;
  Session t(m, {.n_ctx = 64, .n_threads = 1}), d(m, {.n_ctx = 64, .n_threads = 1});
  if (!start.cached.empty()) {
    t.eval(start.cached);
    d.eval(start.cached);
  }
  const int base = t.n_past();
  GenerateOptions g;
  g.n_predict = kDepth;
  g.sampling = p;
  g.stop_at_eos = false;
  for (int seed = 0; seed < n; seed++) {
    g.sampling.seed = uint64_t(seed);
    t.truncate(base);
    d.truncate(base);
    GenerateResult r;
    if (spec_in) {
      SpeculativeOptions spec = *spec_in;
      if (spec.lookup_ngram == 0) spec.draft = &d;
      SpecStats st;
      r = generate_speculative(t, start.prompt, g, spec, nullptr, &st);
      out.stats.drafted += st.drafted;
      out.stats.accepted += st.accepted;
    } else {
      r = generate(t, start.prompt, g);
    }
    EXPECT_EQ(r.ids.size(), size_t(kDepth));
    for (int i = 0; i < kDepth && i < int(r.ids.size()); i++) out.counts[i][r.ids[i]]++;
  }
  return out;
}

SamplingParams target_params() {
  SamplingParams p;
  p.temperature = 1.0f, p.top_k = 20, p.top_p = 0.95f, p.min_p = 0.02f;
  p.repeat_penalty = 1.3f;  // history matters: proposals accepted so far count as history
  return p;
}

void expect_follows_target(const Samples& s, const std::vector<std::map<int32_t, double>>& want, int n) {
  for (int i = 0; i < kDepth; i++) EXPECT_GT(chi_square_p(s.counts[i], want[i], n), kAlpha) << "token " << i;
}

}  // namespace

TEST(SpecSampling, DraftModelFollowsTargetDistribution) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  auto m = Model::load(shared_path("models/stories260K.gguf"));
  std::vector<int32_t> ids = m->tokenize("Once upon a time, there was a", true);
  const Start start{std::vector<int32_t>(ids.begin(), ids.end() - 1), {ids.back()}};
  const SamplingParams p = target_params();
  const auto want = exact_marginals(m, start, p);
  const int n = 2000;

  // Control: plain sampling passes the test.
  expect_follows_target(sample_runs(m, start, p, nullptr, n), want, n);

  // The draft: the same model, hotter and untruncated, without the penalty: q differs from p a
  // lot, with mass outside p's support.
  SamplingParams q = p;
  q.temperature = 1.8f, q.top_k = 0, q.top_p = 1, q.min_p = 0, q.repeat_penalty = 1;
  for (int fixed : {2, 0}) {
    SCOPED_TRACE(fixed ? "fixed draft length" : "adaptive draft length");
    SpeculativeOptions spec;
    spec.draft_sampling = q;
    if (fixed) spec.draft_min = spec.draft_max = fixed;
    const Samples s = sample_runs(m, start, p, &spec, n);
    expect_follows_target(s, want, n);
    EXPECT_GT(s.stats.accepted, 0);
    EXPECT_LT(s.stats.accepted, s.stats.drafted);  // rejections (and residual draws) happened
    // Power: the draft's own first-token distribution fails the same test on these samples.
    if (fixed) {
      EXPECT_LT(chi_square_p(s.counts[0], exact_marginals(m, start, q, /*depth_limit=*/1)[0], n), 1e-6);
    }
  }
}

TEST(SpecSampling, PromptLookupFollowsTargetDistribution) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  auto m = Model::load(shared_path("models/stories260K.gguf"));
  // Repetition in the prompt, so lookup has something to propose (the whole prompt is given to
  // generate: lookup searches it).
  const Start start{{}, m->tokenize("Tom saw a big dog. The dog was happy. Tom saw a big dog. The dog", true)};
  SamplingParams p = target_params();
  p.repeat_penalty = 1.1f;
  const auto want = exact_marginals(m, start, p);
  const int n = 2000;
  for (int fixed : {3, 0}) {
    SCOPED_TRACE(fixed ? "fixed draft length" : "adaptive draft length");
    SpeculativeOptions spec;
    spec.lookup_ngram = 3;
    if (fixed) spec.draft_min = spec.draft_max = fixed;
    const Samples s = sample_runs(m, start, p, &spec, n);
    expect_follows_target(s, want, n);
    EXPECT_GT(s.stats.accepted, 0);
    EXPECT_LT(s.stats.accepted, s.stats.drafted);
  }
}
