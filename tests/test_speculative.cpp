// Speculative decoding, greedy side: outputs identical to the target alone (draft model and prompt
// lookup, on every golden prompt), KV-cache rollback, streaming/stop semantics, prompt lookup's
// proposals, the vocabulary check, and the CLI's flags and JSON.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap.h"
#include "kite/kite.h"
#include "runtime/lookup.h"
#include "runtime/spec_policy.h"
#include "runtime/speculative.h"
#include "test_util.h"

using namespace kite;
using kite::test::shared_path;
using json = nlohmann::json;

namespace {

const char* kTeacher = "models/zoo-teacher-34m";
const char* kDraft = "models/zoo-draft-7m";
const char* kGolden = "testdata/golden/golden-zoo-teacher-34m.json";

std::shared_ptr<const Model> load(const std::string& rel) { return Model::load(shared_path(rel)); }

GenerateOptions greedy_options(int n) {
  GenerateOptions g;
  g.n_predict = n;
  g.sampling.temperature = 0;
  return g;
}

struct Case {
  std::string prompt;
  std::vector<int32_t> prompt_ids, golden_ids;
};
std::vector<Case> golden_cases() {
  json j = json::parse(read_text_file(shared_path(kGolden)));
  std::vector<Case> cases;
  for (const auto& c : j["greedy"])
    cases.push_back({c["prompt"], c["prompt_ids"].get<std::vector<int32_t>>(), c["greedy_ids"].get<std::vector<int32_t>>()});
  return cases;
}

// Plain greedy ids, then speculative ones under each configuration: all must be identical.
void expect_same_greedy_ids(const std::shared_ptr<const Model>& target, const std::shared_ptr<const Model>& draft,
                            const std::vector<SpeculativeOptions>& configs) {
  SpecStats total;
  for (const Case& c : golden_cases()) {
    SCOPED_TRACE("prompt: " + c.prompt);
    const GenerateOptions g = greedy_options(int(c.golden_ids.size()));
    // One thread: the result does not depend on it, and it is the fastest on a busy machine.
    const SessionOptions so{.n_ctx = 256, .n_threads = 1};
    Session plain_session(target, so);
    const GenerateResult plain = generate(plain_session, c.prompt_ids, g);
    ASSERT_EQ(plain.ids.size(), c.golden_ids.size());
    // (plain == golden is test_golden's business, with its tie tolerance; report it here only)
    if (plain.ids != c.golden_ids) ADD_FAILURE() << "plain greedy ids differ from transformers' (see GoldenZoo)";
    for (size_t k = 0; k < configs.size(); k++) {
      SCOPED_TRACE("configuration " + std::to_string(k));
      SpeculativeOptions spec = configs[k];
      Session t(target, so);
      std::unique_ptr<Session> d;
      if (draft) {
        d = std::make_unique<Session>(draft, so);
        spec.draft = d.get();
      }
      SpecStats st;
      std::string streamed;
      const GenerateResult r = generate_speculative(t, c.prompt_ids, g, spec,
                                                    [&](int32_t, const std::string& piece) { streamed += piece; return true; }, &st);
      EXPECT_EQ(r.ids, plain.ids);
      EXPECT_EQ(r.text, plain.text);
      EXPECT_EQ(streamed, plain.text);
      EXPECT_EQ(r.stop_reason, plain.stop_reason);
      EXPECT_EQ(st.generated, int64_t(r.ids.size()));
      EXPECT_LE(st.accepted, st.drafted);
      total.drafted += st.drafted;
      total.accepted += st.accepted;
    }
  }
  // Speculation really happened, and was not all-or-nothing.
  EXPECT_GT(total.drafted, 0);
  EXPECT_GT(total.accepted, 0);
  EXPECT_LT(total.accepted, total.drafted);
}

SpeculativeOptions fixed_length(int k) {
  SpeculativeOptions s;
  s.draft_min = s.draft_max = k;
  return s;
}

}  // namespace

// ---- greedy equality (acceptance checks of the issue) ----

TEST(SpecGreedy, DraftModelMatchesTargetOnGoldenPrompts) {
  KITE_REQUIRE_SHARED(kTeacher);
  KITE_REQUIRE_SHARED(kDraft);
  KITE_REQUIRE_SHARED(kGolden);
  // Adaptive (the default), and a fixed length of 5 that rolls back long rejected tails.
  expect_same_greedy_ids(load(kTeacher), load(kDraft), {SpeculativeOptions{}, fixed_length(5)});
}

TEST(SpecGreedy, PromptLookupMatchesTargetOnGoldenPrompts) {
  KITE_REQUIRE_SHARED(kTeacher);
  KITE_REQUIRE_SHARED(kGolden);
  SpeculativeOptions adaptive;
  adaptive.lookup_ngram = 3;
  SpeculativeOptions fixed = fixed_length(4);
  fixed.lookup_ngram = 2;
  expect_same_greedy_ids(load(kTeacher), nullptr, {adaptive, fixed});
}

// Stop strings, the context limit and n_predict end a speculative run exactly where they end a
// plain one, even in the middle of a round of accepted tokens.
TEST(SpecGreedy, StopsLikeGenerate) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  auto m = load("models/stories260K.gguf");
  const std::vector<int32_t> prompt = m->tokenize("Once upon a time", true);
  Session probe(m, {.n_ctx = 128, .n_threads = 1});
  const std::string text = generate(probe, prompt, greedy_options(40)).text;
  ASSERT_GT(text.size(), 40u);

  struct Variant { std::string name; GenerateOptions g; int n_ctx; };
  std::vector<Variant> variants;
  variants.push_back({"n_predict", greedy_options(17), 128});
  variants.push_back({"stop string", greedy_options(60), 128});
  variants.back().g.stop = {text.substr(25, 6)};
  variants.push_back({"context", greedy_options(-1), 30});
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    Session a(m, {.n_ctx = v.n_ctx, .n_threads = 1});
    const GenerateResult want = generate(a, prompt, v.g);
    for (int mode = 0; mode < 2; mode++) {
      Session t(m, {.n_ctx = v.n_ctx, .n_threads = 1}), d(m, {.n_ctx = v.n_ctx, .n_threads = 1});
      SpeculativeOptions spec = fixed_length(6);
      if (mode == 0) spec.draft = &d;  // the model drafting for itself: every proposal accepted
      else spec.lookup_ngram = 2;
      std::string streamed;
      const GenerateResult r = generate_speculative(t, prompt, v.g, spec, [&](int32_t, const std::string& piece) {
        streamed += piece;
        return true;
      });
      EXPECT_EQ(r.ids, want.ids) << "mode " << mode;
      EXPECT_EQ(r.text, want.text) << "mode " << mode;
      EXPECT_EQ(streamed, want.text) << "mode " << mode;
      EXPECT_EQ(r.stop_reason, want.stop_reason) << "mode " << mode;
    }
  }
}

// ---- rollback ----

// After a batch is evaluated and its tail truncated away, evaluating other tokens gives the
// logits of a fresh session that never saw the tail.
TEST(SpecRollback, TruncatedSessionMatchesFreshEvaluation) {
  KITE_REQUIRE_SHARED(kTeacher);
  auto m = load(kTeacher);
  const std::vector<int32_t> prompt = m->tokenize("The old man looked at the sea and said", true);
  const std::vector<int32_t> drafted = {310, 2004, 17, 95, 1200, 44};  // a rejected tail
  const std::vector<int32_t> next = {411, 29, 3071};
  Session s(m, {.n_ctx = 64, .n_threads = 1});
  s.eval(prompt);
  s.eval(drafted, /*all_logits=*/true);
  s.truncate(int(prompt.size()) + 2);  // keep two accepted drafts
  std::vector<float> got;
  {
    auto l = s.eval(next, true);
    got.assign(l.begin(), l.end());
  }
  Session fresh(m, {.n_ctx = 64, .n_threads = 1});
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), drafted.begin(), drafted.begin() + 2);
  fresh.eval(seq);
  auto want = fresh.eval(next, true);
  ASSERT_EQ(got.size(), want.size());
  float max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < got.size(); i++) {
    max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
    max_abs = std::max(max_abs, std::fabs(want[i]));
  }
  // The same computation up to float rounding (the kept drafts' K/V came from a larger batch).
  EXPECT_LT(max_diff, 1e-3f) << "max |logit| " << max_abs;
  EXPECT_EQ(s.n_past(), int(seq.size() + next.size()));
}

// ---- prompt lookup ----

TEST(SpecLookup, ProposesWhatFollowedTheBestAgreeingLongestMatch) {
  //                          0  1  2  3  4  5  6  7  8  9 10 11
  const std::vector<int32_t> c = {5, 6, 7, 8, 1, 6, 7, 9, 2, 3, 6, 7};
  // "6 7" occurs at 1 and 5, neither preceded by the tail's "3": the latest (5) is followed by
  // 9 2 3 6 7.
  LookupMatch m = lookup_continuation(c, 2, 3);
  EXPECT_EQ(m.ngram, 2);
  EXPECT_EQ(m.tokens, (std::vector<int32_t>{9, 2, 3}));
  // A 3-gram "3 6 7" never occurred before: n = 3 falls back to the 2-gram.
  m = lookup_continuation(c, 3, 2);
  EXPECT_EQ(m.ngram, 2);
  EXPECT_EQ(m.tokens, (std::vector<int32_t>{9, 2}));
  // A longer match wins over a more recent shorter one.
  const std::vector<int32_t> d = {1, 2, 3, 4, 9, 3, 5, 1, 2, 3};
  m = lookup_continuation(d, 3, 2);
  EXPECT_EQ(m.ngram, 3);
  EXPECT_EQ(m.tokens, (std::vector<int32_t>{4, 9}));
  // The 1-gram "3" occurs at 2 and 5; the one at 2 is preceded by "1 2", as the tail is: it wins
  // over the later one.
  m = lookup_continuation(d, 1, 2);
  EXPECT_EQ(m.ngram, 1);
  EXPECT_EQ(m.tokens, (std::vector<int32_t>{4, 9}));
  // No recurrence, or nothing to propose.
  EXPECT_TRUE(lookup_continuation(std::vector<int32_t>{1, 2, 3}, 3, 4).tokens.empty());
  EXPECT_TRUE(lookup_continuation(std::vector<int32_t>{}, 3, 4).tokens.empty());
  EXPECT_TRUE(lookup_continuation(d, 3, 0).tokens.empty());
  // Periodic text: the continuation keeps repeating past the end of the context.
  m = lookup_continuation(std::vector<int32_t>{4, 7, 8, 7, 8}, 2, 5);
  EXPECT_EQ(m.tokens, (std::vector<int32_t>{7, 8, 7, 8, 7}));
}

// ---- vocabulary check ----

TEST(SpecVocabulary, MismatchIsAClearError) {
  KITE_REQUIRE_SHARED(kTeacher);
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  auto target = load(kTeacher);
  auto draft = load("models/stories260K.gguf");
  try {
    check_same_vocabulary(*target, *draft);
    FAIL() << "no error for a 512-token draft with an 8192-token target";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
  }
  // generate_speculative checks too, before touching either session.
  Session t(target, {.n_ctx = 32, .n_threads = 1}), d(draft, {.n_ctx = 32, .n_threads = 1});
  SpeculativeOptions spec;
  spec.draft = &d;
  EXPECT_THROW(generate_speculative(t, target->tokenize("Hello", true), greedy_options(4), spec), Error);
  EXPECT_EQ(t.n_past(), 0);
  // A model shares its own vocabulary; the zoo pair shares one.
  EXPECT_NO_THROW(check_same_vocabulary(*target, *target));
  if (kite::test::path_exists(shared_path(kDraft))) {
    EXPECT_NO_THROW(check_same_vocabulary(*target, *load(kDraft)));
  }
}

// ---- CLI ----

namespace {

using kite::test::CliRun;
CliRun run_cli(const std::string& args, bool with_stderr) { return kite::test::run_cli(args, with_stderr, 300); }
std::string q(const std::string& s) { return "'" + s + "'"; }

}  // namespace

TEST(SpecCli, JsonReportsSpecStatsAndComparison) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  const std::string model = q(shared_path("models/stories260K.gguf"));
  const std::string base = "generate -m " + model + " -p 'Once upon a time' -n 24 --temp 0 --json -t 1";
  CliRun plain = run_cli(base, false);
  ASSERT_EQ(plain.code, 0) << plain.out;
  json p = json::parse(plain.out);
  EXPECT_FALSE(p.contains("spec"));

  for (const std::string& mode : {std::string("--lookup 2"), "--draft " + model + " --draft-max 4"}) {
    SCOPED_TRACE(mode);
    CliRun r = run_cli(base + " " + mode + " --compare", false);
    ASSERT_EQ(r.code, 0) << r.out;
    json j = json::parse(r.out);
    EXPECT_EQ(j["ids"], p["ids"]);
    EXPECT_EQ(j["text"], p["text"]);
    for (const char* k : {"prompt_ids", "stop_reason", "seed"}) EXPECT_TRUE(j.contains(k)) << k;
    for (const char* k : {"prompt_tokens", "prompt_ms", "gen_tokens", "gen_ms"}) EXPECT_TRUE(j["timings"].contains(k)) << k;
    for (const char* k : {"drafted", "accepted", "acceptance", "tokens_per_pass"}) EXPECT_TRUE(j["spec"].contains(k)) << k;
    EXPECT_GE(j["spec"]["tokens_per_pass"].get<double>(), 1.0);
    for (const char* k : {"plain_tok_s", "spec_tok_s", "speedup"}) EXPECT_GT(j["compare"][k].get<double>(), 0) << k;
    EXPECT_EQ(j["compare"]["same_ids"], true);
  }
}

TEST(SpecCli, BadFlagsFailCleanly) {
  KITE_REQUIRE_SHARED(kTeacher);
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  const std::string base = "generate -m " + q(shared_path(kTeacher)) + " -p hi -n 4 -t 1";
  struct Bad { std::string args, needle; };
  for (const Bad& b : {Bad{"--draft " + q(shared_path("models/stories260K.gguf")), "vocabulary"},
                       Bad{"--compare", "--compare"},
                       Bad{"--lookup 2 --draft " + q(shared_path(kTeacher)), "exclusive"},
                       Bad{"--lookup 2 --draft-min 5 --draft-max 3", "draft-min"}}) {
    CliRun r = run_cli(base + " " + b.args, true);
    EXPECT_EQ(r.code, 1) << b.args << "\n" << r.out;
    EXPECT_NE(r.out.find("kite: error:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(b.needle), std::string::npos) << b.args << "\n" << r.out;
  }
}

// Quantized weights and long runs: verifying a batch of drafted tokens gives every token the
// bits a one-token decode step gives it (the attention kernel keeps one summation order for
// batches of up to 65 tokens), so the outputs stay identical well past 48 tokens.
TEST(SpecGreedy, Q8_0PairMatchesTargetOverLongRuns) {
  const char* target_file = "models/zoo-gguf/zoo-teacher-34m-Q8_0.gguf";
  const char* draft_file = "models/zoo-gguf/zoo-draft-7m-Q8_0.gguf";
  KITE_REQUIRE_SHARED(target_file);
  KITE_REQUIRE_SHARED(draft_file);
  KITE_REQUIRE_SHARED(kGolden);
  auto target = load(target_file), draft = load(draft_file);
  const SessionOptions so{.n_ctx = 320, .n_threads = 2};
  for (const Case& c : golden_cases()) {
    SCOPED_TRACE("prompt: " + c.prompt);
    GenerateOptions g = greedy_options(200);
    g.stop_at_eos = false;
    Session plain_session(target, so);
    const GenerateResult plain = generate(plain_session, c.prompt_ids, g);
    for (int k : {0, 8}) {
      SpeculativeOptions spec = k ? fixed_length(k) : SpeculativeOptions{};
      Session t(target, so), d(draft, so);
      spec.draft = &d;
      EXPECT_EQ(generate_speculative(t, c.prompt_ids, g, spec).ids, plain.ids) << "draft length " << (k ? k : -1);
    }
  }
}

// The gate, on synthetic timings (ms of CPU time): a draft measured slower per token than a
// plain step can pay with any acceptance stops being tried (no probes); a cheap one keeps going.
TEST(SpecPolicyGate, SlowDraftIsNotTriedAgain) {
  for (const double draft_ms : {3.0, 0.2}) {
    PolicyOptions o;
    o.draft_max = 4;
    o.draft_ratio = 0.2;  // what the sizes suggest; the measurements overrule it
    SpecPolicy p(o);
    int rounds = 0;
    for (int step = 0; step < 200; step++) {
      if (!p.begin_round()) {
        p.cost().record_target(1, 1.0);
        p.plain_step(1.0);
        continue;
      }
      rounds++;
      // One proposal, accepted: a draft evaluation and a target pass over 2 tokens.
      p.cost().record_draft(1, draft_ms);
      p.draft_evaluated();
      ASSERT_TRUE(p.include(p.bin_of_confidence(0.95f)) || draft_ms > 1);
      p.add(p.bin_of_confidence(0.95f));
      p.cost().record_target(2, 1.2);
      p.end_round(1, 1, 2, draft_ms + 1.2);
    }
    if (draft_ms > 1) {
      EXPECT_LE(rounds, 4) << "a draft 3x slower than the target must stop being tried";
    } else {
      EXPECT_GE(rounds, 150) << "a draft at 0.2 of the target that is always right must keep going";
    }
  }
}
