// Paged KV cache: prefix pages reused across requests (matching a fresh computation), LRU
// eviction, pages unregistered when rewritten, budget errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kite/kite.h"
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
