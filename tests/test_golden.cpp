// End-to-end correctness against references nobody here wrote:
//  - zoo models vs Hugging Face transformers (prompt ids, first-step top-10 logits, 48 greedy ids);
//  - stories260K (.bin, .gguf, HF folder) vs llama2.c run.c (greedy generations, logits);
//  - perplexity vs transformers (stream method) and llama.cpp (llama method).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kite/kite.h"
#include "core/mmap.h"
#include "test_util.h"

using namespace kite;
using kite::test::shared_path;
using json = nlohmann::json;

namespace {

json load_json(const std::string& rel) { return json::parse(read_text_file(shared_path(rel))); }

std::shared_ptr<const Model> load(const std::string& rel, const std::string& tok_rel = "") {
  ModelLoadOptions o;
  if (!tok_rel.empty()) o.tokenizer_path = shared_path(tok_rel);
  return Model::load(shared_path(rel), o);
}

int argmax(std::span<const float> v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); }

// Greedy generation, step by step, returning the ids and the logits gap between the two best
// candidates at each step (to tell a real mismatch from a tie).
struct Greedy {
  std::vector<int32_t> ids;
  std::vector<float> top2_gap;
  std::vector<float> first_logits;
};
Greedy greedy(const std::shared_ptr<const Model>& m, const std::vector<int32_t>& prompt, int n, int stop_id = -1) {
  Session s(m, {.n_ctx = int(prompt.size()) + n + 1, .n_threads = 2});
  Greedy g;
  std::span<const float> logits = s.eval(prompt);
  g.first_logits.assign(logits.begin(), logits.end());
  for (int i = 0; i < n; i++) {
    std::vector<float> sorted(logits.begin(), logits.end());
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
    int32_t id = argmax(logits);
    if (id == stop_id) break;
    g.ids.push_back(id);
    g.top2_gap.push_back(sorted[0] - sorted[1]);
    logits = s.eval(std::span<const int32_t>(&id, 1));
  }
  return g;
}

void check_zoo_golden(const std::string& model_rel, const std::string& golden_rel) {
  KITE_REQUIRE_SHARED(model_rel);
  KITE_REQUIRE_SHARED(golden_rel);
  auto m = load(model_rel);
  json golden = load_json(golden_rel);
  for (const auto& c : golden["greedy"]) {
    const std::string prompt = c["prompt"];
    SCOPED_TRACE("prompt: " + prompt);
    std::vector<int32_t> ids = m->tokenize(prompt, true);
    ASSERT_EQ(ids, c["prompt_ids"].get<std::vector<int32_t>>());
    auto want = c["greedy_ids"].get<std::vector<int32_t>>();
    Greedy g = greedy(m, ids, int(want.size()));
    // First-step top-10 logits within 1e-3 of transformers.
    auto top_ids = c["top10_ids"].get<std::vector<int>>();
    auto top_logits = c["top10_logits"].get<std::vector<float>>();
    for (size_t k = 0; k < top_ids.size(); k++)
      EXPECT_NEAR(g.first_logits[top_ids[k]], top_logits[k], 1e-3) << "top-10 rank " << k << " id " << top_ids[k];
    // All greedy ids equal; a difference is accepted only where the two best logits tie.
    for (size_t i = 0; i < want.size(); i++) {
      ASSERT_LT(i, g.ids.size());
      if (g.ids[i] == want[i]) continue;
      // The reference gives logits only for the first step; there, the reference's own top-2
      // decide. Later, the gap between our top-2 (which track the reference within 1e-3) does.
      const float gap = i == 0 ? top_logits[0] - top_logits[1] : g.top2_gap[i];
      EXPECT_LT(gap, 1e-4) << "greedy id " << i << ": got " << g.ids[i] << ", want " << want[i]
                           << " and the top-2 logits are " << gap << " apart (not a tie)";
      break;  // after a tie the continuations legitimately diverge
    }
  }
}

}  // namespace

TEST(GoldenZoo, TeacherMatchesTransformers) {
  check_zoo_golden("models/zoo-teacher-34m", "testdata/golden/golden-zoo-teacher-34m.json");
}

TEST(GoldenZoo, DraftMatchesTransformers) {
  check_zoo_golden("models/zoo-draft-7m", "testdata/golden/golden-zoo-draft-7m.json");
}

namespace {

void check_stories_greedy(const std::string& model_rel, const std::string& tok_rel = "") {
  KITE_REQUIRE_SHARED(model_rel);
  KITE_REQUIRE_SHARED("testdata/stories260K/stories260K_generate.json");
  auto m = load(model_rel, tok_rel);
  json golden = load_json("testdata/stories260K/stories260K_generate.json");
  int n_cases = 0;
  for (const auto& c : golden["cases"]) {
    if (c["temperature"].get<double>() != 0.0) continue;
    n_cases++;
    const std::string prompt = c["prompt"];
    SCOPED_TRACE("prompt: '" + prompt + "'");
    auto want = c["tokens"].get<std::vector<int32_t>>();
    auto prompt_ids = c["prompt_tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(m->tokenize(prompt, true), prompt_ids);
    // run.c: `steps` positions in all; generation stops when BOS (1) is sampled.
    const int n_gen = c["steps"].get<int>() - int(prompt_ids.size()) + 1;
    Greedy g = greedy(m, prompt_ids, n_gen, /*stop_id=*/1);
    std::vector<int32_t> got = prompt_ids;
    got.insert(got.end(), g.ids.begin(), g.ids.end());
    EXPECT_EQ(got, want);
    std::vector<int32_t> gen(want.begin() + 1, want.end());
    EXPECT_EQ(m->detokenize(gen), c["text"].get<std::string>());
  }
  EXPECT_EQ(n_cases, 2);
}

void check_stories_logits(const std::string& model_rel, const std::string& tok_rel = "") {
  KITE_REQUIRE_SHARED(model_rel);
  KITE_REQUIRE_SHARED("testdata/stories260K/stories260K_logits_8x512.f32");
  auto m = load(model_rel, tok_rel);
  std::string raw = read_text_file(shared_path("testdata/stories260K/stories260K_logits_8x512.f32"));
  ASSERT_EQ(raw.size(), 8u * 512 * 4);
  std::vector<float> want(8 * 512);
  std::memcpy(want.data(), raw.data(), raw.size());
  const std::vector<int32_t> seq = {1, 403, 407, 261, 378, 432, 383, 286};
  Session s(m, {.n_ctx = 64, .n_threads = 2});
  std::span<const float> got = s.eval(seq, /*all_logits=*/true);
  ASSERT_EQ(got.size(), want.size());
  float max_diff = 0;
  for (size_t i = 0; i < want.size(); i++) max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
  EXPECT_LT(max_diff, 1e-4) << "max |logit difference| over 8x512 logits";
  // The same logits one token at a time through the KV cache.
  s.truncate(0);
  for (size_t t = 0; t < seq.size(); t++) {
    std::span<const float> l = s.eval(std::span<const int32_t>(&seq[t], 1));
    for (int i = 0; i < 512; i++) ASSERT_NEAR(l[i], want[t * 512 + i], 1e-4) << "position " << t;
  }
}

}  // namespace

TEST(GoldenStories, BinGreedy) { check_stories_greedy("models/stories260K.bin", "models/tok512.bin"); }
TEST(GoldenStories, GgufGreedy) { check_stories_greedy("models/stories260K.gguf"); }
TEST(GoldenStories, HfGreedy) { check_stories_greedy("models/stories260K-hf"); }
TEST(GoldenStories, BinLogits) { check_stories_logits("models/stories260K.bin", "models/tok512.bin"); }
TEST(GoldenStories, GgufLogits) { check_stories_logits("models/stories260K.gguf"); }
TEST(GoldenStories, HfLogits) { check_stories_logits("models/stories260K-hf"); }

namespace {
double zoo_ppl(PerplexityMethod method, const char* model = "models/zoo-teacher-34m") {
  auto m = load(model);
  std::vector<int32_t> tokens = m->tokenize(read_text_file(shared_path("corpus/zoo/valid.txt")), true);
  Session s(m, {.n_ctx = 512, .n_threads = 2});
  PerplexityResult r = perplexity(s, tokens, 512, 40, method);
  EXPECT_EQ(r.chunks, 40);
  EXPECT_EQ(r.tokens_scored, method == PerplexityMethod::Stream ? 40 * 511 : 40 * 255);
  return r.ppl;
}
}  // namespace

// Heavy (≈1.4 TFLOP each): labelled "slow" by name; skipped in sanitizer runs.
TEST(GoldenPerplexity, ZooTeacherStreamMatchesTransformers) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  KITE_REQUIRE_SHARED("corpus/zoo/valid.txt");
  const double want = load_json("testdata/golden/golden-zoo-teacher-34m.json")["perplexity"]["ppl"];
  EXPECT_NEAR(zoo_ppl(PerplexityMethod::Stream), want, want * 5e-4);  // within 0.05%
}

TEST(GoldenPerplexity, ZooTeacherLlamaMethodMatchesLlamaCpp) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  KITE_REQUIRE_SHARED("corpus/zoo/valid.txt");
  const double want = 48.0419;  // testdata/golden/llamacpp-zoo.json, zoo-teacher-34m-f32
  EXPECT_NEAR(zoo_ppl(PerplexityMethod::Llama), want, want * 5e-4);  // within 0.05%
}

// llama.cpp-made quantized files give llama.cpp's perplexities (Q8_0: int8 activations in blocks
// of 32; Q4_K_M: K-quant weights with Q8_K activations, as llama.cpp computes them).
TEST(GoldenPerplexity, ZooTeacherLlamaCppQuantFiles) {
  KITE_REQUIRE_SHARED("corpus/zoo/valid.txt");
  const auto refs = load_json("testdata/golden/llamacpp-zoo.json")["models"];
  for (const char* name : {"zoo-teacher-34m-Q8_0", "zoo-teacher-34m-Q4_K_M"}) {
    const std::string file = std::string("models/zoo-gguf/") + name + ".gguf";
    if (!test::path_exists(shared_path(file))) continue;
    const double want = refs[name]["ppl_c512_40chunks"];
    EXPECT_NEAR(zoo_ppl(PerplexityMethod::Llama, file.c_str()), want, want * 1e-3) << name;  // within 0.1%
  }
}
