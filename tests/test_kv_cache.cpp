// Paged KV cache: prefix pages reused across requests (matching a fresh computation), LRU
// eviction, pages unregistered when rewritten, budget errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kite/kite.h"
#include "quant/quant.h"
#include "runtime/kv_cache.h"
#include "test_util.h"

namespace kite {
namespace {

std::vector<int32_t> toks(int n, int n_vocab, int salt) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; i++) t[i] = int32_t((i * 7919 + 13 + salt * 104729) % n_vocab);
  t[0] = 1;
  return t;
}

std::vector<int32_t> concat(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::vector<int32_t> r = a;
  r.insert(r.end(), b.begin(), b.end());
  return r;
}

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Evaluates `prompt` reusing what the session has cached; returns the last logits and how many
// tokens were reused.
std::vector<float> serve(Session& s, const std::vector<int32_t>& prompt, int* reused) {
  *reused = s.reuse_prefix(prompt);
  auto l = s.eval(std::span<const int32_t>(prompt.data() + *reused, prompt.size() - *reused));
  return {l.begin(), l.end()};
}

class PagedKV : public ::testing::Test {
 protected:
  void SetUp() override {
    KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
    model = Model::load(test::shared_path("models/zoo-teacher-34m"));
  }
  std::vector<float> fresh(const std::vector<int32_t>& prompt) {
    Session f(model, {.n_ctx = 512, .n_threads = 2});
    auto l = f.eval(prompt);
    return {l.begin(), l.end()};
  }
  std::shared_ptr<const Model> model;
};

// A, an unrelated C, then B sharing A's 200-token prefix: B adopts A's 3 full pages (192 tokens)
// from the pool and its logits match a fresh session's.
TEST_F(PagedKV, PrefixPagesSurviveAnUnrelatedRequest) {
  const int nv = model->n_vocab();
  const auto prefix = toks(200, nv, 1);
  const auto a = concat(prefix, toks(20, nv, 2)), b = concat(prefix, toks(30, nv, 3)), c = toks(300, nv, 4);
  SessionOptions so{.n_ctx = 512, .n_threads = 2};
  so.kv_mem_mib = 3 * KVCache::bytes_for(8, 512, 4, 64, DType::F32) / 1048576.0;  // room for 3 sequences
  Session s(model, so);
  int reused = -1;
  serve(s, a, &reused);
  EXPECT_EQ(reused, 0);
  serve(s, c, &reused);
  EXPECT_EQ(reused, 1);  // only BOS in common with A
  const auto got = serve(s, b, &reused);
  EXPECT_EQ(reused, 192);
  EXPECT_LE(max_abs_diff(got, fresh(b)), 1e-3f);
  // The same prompt again: everything but its last token is reused, from the current sequence.
  const auto again = serve(s, b, &reused);
  EXPECT_EQ(reused, int(b.size()) - 1);
  EXPECT_LE(max_abs_diff(again, got), 1e-3f);
}

// With a pool of exactly one context, a long unrelated request evicts the cached prefix pages.
TEST_F(PagedKV, LruEvictsWhenThePoolIsFull) {
  const int nv = model->n_vocab();
  const auto prefix = toks(200, nv, 1);
  Session s(model, {.n_ctx = 512, .n_threads = 2});  // 8 pages
  int reused = -1;
  serve(s, concat(prefix, toks(10, nv, 2)), &reused);
  serve(s, toks(500, nv, 5), &reused);  // needs all 8 pages
  const auto b = concat(prefix, toks(30, nv, 3));
  const auto got = serve(s, b, &reused);
  EXPECT_EQ(reused, 1);
  EXPECT_LE(max_abs_diff(got, fresh(b)), 1e-3f);
}

// Truncating into a registered page and rewriting it: with a spare page the write goes to a copy
// (the cached prefix stays reusable); without one the page is unregistered. Either way a later
// prompt never adopts rewritten contents.
TEST_F(PagedKV, RewrittenPagesAreNeverReusedStale) {
  const int nv = model->n_vocab();
  const auto a = toks(150, nv, 1), other = toks(60, nv, 7);
  const auto b = concat(a, toks(5, nv, 8));
  for (int n_ctx : {512, 192}) {  // 192: three pages, no spare one
    Session s(model, {.n_ctx = n_ctx, .n_threads = 2});
    s.eval(a);
    s.truncate(100);  // into page 1 (positions 64..127)
    s.eval(other);    // rewrites positions 100..159
    s.truncate(0);
    int reused = -1;
    const auto got = serve(s, b, &reused);
    EXPECT_EQ(reused, n_ctx == 512 ? 128 : 64) << "n_ctx " << n_ctx;
    EXPECT_LE(max_abs_diff(got, fresh(b)), 1e-3f) << "n_ctx " << n_ctx;
  }
}

TEST(KVCacheBudget, TooSmallForOneSequenceIsAClearError) {
  EXPECT_THROW(KVCache(2, 1000, 4, 64, DType::F32, 3), Error);
  try {
    KVCache(2, 1000, 4, 64, DType::F32, 3);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KV cache budget too small"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(KVCache(2, 1000, 4, 64, DType::F32, 16));
}

}  // namespace
}  // namespace kite

namespace kite {
namespace {

// After a context shift, layer 0's keys and values depend only on each token and its (new)
// position, so they must equal a fresh session's for the shifted token sequence: this checks the
// move and the RoPE re-rotation. Then generation goes on past the context with --context-shift.
TEST_F(PagedKV, ContextShiftReRotatesKeys) {
  const int nv = model->n_vocab();
  const auto a = toks(150, nv, 3);
  for (KVType kt : {KVType::F32, KVType::F16}) {
    Session s(model, {.n_ctx = 160, .n_threads = 2, .kv_type = kt});
    s.eval(a);
    s.shift_context(1, 70);  // keep BOS, drop 70, move 79 down
    ASSERT_EQ(s.n_past(), 80);
    std::vector<int32_t> shifted = {a[0]};
    shifted.insert(shifted.end(), a.begin() + 71, a.end());
    EXPECT_EQ(s.cached_tokens(), shifted);
    Session f(model, {.n_ctx = 160, .n_threads = 2, .kv_type = kt});
    f.eval(shifted);
    const KVCache &x = s.kv_cache(), &y = f.kv_cache();
    float worst = 0;
    std::vector<float> u(64), w(64);
    for (int g = 0; g < x.n_head_kv(); g++)
      for (int p = 0; p < 80; p++)
        for (int which = 0; which < 2; which++) {
          to_float(to_dtype(kt), which ? x.v_row(0, g, p) : x.k_row(0, g, p), u.data(), 64);
          to_float(to_dtype(kt), which ? y.v_row(0, g, p) : y.k_row(0, g, p), w.data(), 64);
          for (int i = 0; i < 64; i++) worst = std::max(worst, std::abs(u[i] - w[i]) / (1.0f + std::abs(w[i])));
        }
    EXPECT_LE(worst, kt == KVType::F32 ? 1e-4f : 2e-3f) << kv_type_name(kt);
    s.eval(std::vector<int32_t>{5, 6, 7});  // and it keeps working
    EXPECT_EQ(s.n_past(), 83);
  }
}

TEST_F(PagedKV, GenerateWithContextShiftGoesPastTheContext) {
  Session s(model, {.n_ctx = 64, .n_threads = 1});
  GenerateOptions g;
  g.n_predict = 150;
  g.sampling.temperature = 0;
  g.stop_at_eos = false;
  g.context_shift = true;
  g.keep = 1;
  auto r = generate(s, model->tokenize("Once upon a time", true), g);
  EXPECT_EQ(r.ids.size(), 150u);
  EXPECT_EQ(r.stop_reason, "length");
  EXPECT_GE(r.context_shifts, 3);
  g.context_shift = false;
  Session t(model, {.n_ctx = 64, .n_threads = 1});
  EXPECT_EQ(generate(t, model->tokenize("Once upon a time", true), g).stop_reason, "context");
}

}  // namespace
}  // namespace kite
