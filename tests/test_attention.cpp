// Flash attention against the naive reference: causal mask, GQA, odd lengths, cache offsets,
// key splits (flash-decoding), every kernel level, every KV cache type; and through the model
// (flash vs naive logits, truncation).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "kite/kite.h"
#include "runtime/kv_cache.h"
#include "test_util.h"

namespace kite {
namespace {

using kernels::AttnShape;

// Tolerance of flash vs naive: both compute in fp32 but sum in different orders and the flash
// kernel's exp is a polynomial (~2 ulp); outputs are convex combinations of V values in [-1, 1].
constexpr float kTol = 1e-5f;

struct Case {
  int n_head, n_head_kv, hd, n_tok, pos0;
};

// Fills a cache layer (layer 0) with random K/V for all pos0 + n_tok positions, and random q.
struct Data {
  KVCache cache;
  std::vector<float> q;
  Data(const Case& c, DType type, uint32_t seed)
      : cache(1, c.pos0 + c.n_tok, c.n_head_kv, c.hd, type), q(size_t(c.n_tok) * c.n_head * c.hd) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const int n_pos = c.pos0 + c.n_tok, kv_dim = c.n_head_kv * c.hd;
    std::vector<float> k(size_t(n_pos) * kv_dim), v(k.size());
    // Keys scaled up so that the softmax is peaked (scores of several units), as in real models.
    for (auto& x : k) x = 3.0f * u(rng);
    for (auto& x : v) x = u(rng);
    for (auto& x : q) x = u(rng);
    cache.store(0, 0, n_pos, k.data(), v.data());
  }
};

AttnShape shape(const Case& c) {
  AttnShape s;
  s.n_tok = c.n_tok;
  s.n_head = c.n_head;
  s.n_head_kv = c.n_head_kv;
  s.head_dim = c.hd;
  s.pos0 = c.pos0;
  s.scale = 1.0f / std::sqrt(float(c.hd));
  return s;
}

float max_diff(const Case& c, DType type, int threads, uint32_t seed = 1) {
  Data d(c, type, seed);
  const AttnShape s = shape(c);
  std::vector<float> a(d.q.size(), NAN), b(d.q.size(), NAN);
  omp_set_num_threads(threads);
  kernels::naive_attention(s, d.q.data(), d.cache.layer(0), a.data());
  kernels::flash_attention(s, d.q.data(), d.cache.layer(0), b.data());
  float m = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (!std::isfinite(b[i])) return INFINITY;
    m = std::max(m, std::abs(a[i] - b[i]));
  }
  return m;
}

const Case kCases[] = {
    {8, 4, 64, 1, 0},    {8, 4, 64, 1, 999},   {8, 4, 64, 3, 0},    {8, 4, 64, 17, 0},
    {8, 4, 64, 17, 40},  {8, 4, 64, 130, 0},   {8, 4, 64, 3, 997},  {8, 8, 64, 65, 7},
    {8, 1, 64, 17, 300}, {8, 4, 8, 17, 20},    {4, 2, 48, 33, 11},  {6, 2, 128, 9, 100},
    {8, 4, 32, 200, 800},
};

class FlashVsNaive : public ::testing::TestWithParam<kernels::KernelLevel> {
 protected:
  void SetUp() override {
    saved_ = kernels::kernel_level();
    if (kernels::set_kernel_level(GetParam()) != GetParam()) GTEST_SKIP() << "CPU lacks this kernel level";
  }
  void TearDown() override {
    kernels::set_kernel_level(saved_);
    omp_set_num_threads(omp_get_num_procs());
  }
  kernels::KernelLevel saved_{};
};

TEST_P(FlashVsNaive, F32CausalGqaOddLengths) {
  for (const Case& c : kCases)
    for (int threads : {1, 2})
      EXPECT_LE(max_diff(c, DType::F32, threads), kTol)
          << "heads " << c.n_head << "/" << c.n_head_kv << " hd " << c.hd << " n_tok " << c.n_tok << " pos0 "
          << c.pos0 << " threads " << threads;
}

// One KV head and one query token on 4 threads: the keys are split (flash-decoding) and merged.
TEST_P(FlashVsNaive, KeySplitsMatch) {
  const AttnShape s = shape({8, 1, 64, 1, 999});
  EXPECT_GT(kernels::flash_attention_workspace_bytes(s, 4), kernels::flash_attention_workspace_bytes(s, 1))
      << "expected the split path (partials buffer) on 4 threads";
  for (const Case& c : {Case{8, 1, 64, 1, 999}, Case{8, 1, 64, 2, 700}, Case{4, 2, 32, 1, 1500}})
    EXPECT_LE(max_diff(c, DType::F32, 4), kTol) << "n_tok " << c.n_tok << " pos0 " << c.pos0;
}

// Both kernels read the same converted values from an F16/BF16/Q8_0 cache. With a Q8_0 cache
// the AVX-512 decode path quantizes the query rows to int8 per 32 elements (error up to
// amax/254 per element): scores here move by up to ~1e-2 and outputs, convex combinations of
// V in [-1, 1], by ~1e-3; hence a looser bound for that case.
TEST_P(FlashVsNaive, KvTypes) {
  for (DType t : {DType::F16, DType::BF16, DType::Q8_0}) {
    const float tol = t == DType::Q8_0 && GetParam() == kernels::KernelLevel::Avx512 ? 5e-3f : kTol;
    for (const Case& c : {Case{8, 4, 64, 1, 500}, Case{8, 4, 64, 33, 100}, Case{8, 4, 32, 3, 64}, Case{4, 2, 128, 2, 300}})
      EXPECT_LE(max_diff(c, t, 2), tol) << dtype_name(t) << " n_tok " << c.n_tok << " pos0 " << c.pos0;
  }
}

// Under ExactBatchScope (speculative verification) a batch of query tokens gets, row for row,
// the bits of one-token decode calls, for every cache type.
TEST_P(FlashVsNaive, ExactBatchMatchesOneTokenCalls) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0})
    for (const Case& c : {Case{8, 4, 64, 20, 150}, Case{8, 4, 64, 3, 61}, Case{4, 2, 128, 9, 70}}) {
      Data d(c, t, 7);
      const AttnShape s = shape(c);
      omp_set_num_threads(1);
      std::vector<float> batch(d.q.size(), NAN), one(size_t(c.n_head) * c.hd, NAN);
      {
        kernels::ExactBatchScope exact;
        kernels::flash_attention(s, d.q.data(), d.cache.layer(0), batch.data());
      }
      for (int i = 0; i < c.n_tok; i++) {
        AttnShape s1 = s;
        s1.n_tok = 1;
        s1.pos0 = c.pos0 + i;
        kernels::flash_attention(s1, d.q.data() + size_t(i) * one.size(), d.cache.layer(0), one.data());
        ASSERT_EQ(0, std::memcmp(one.data(), batch.data() + size_t(i) * one.size(), one.size() * sizeof(float)))
            << dtype_name(t) << " hd " << c.hd << " token " << i;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Levels, FlashVsNaive,
                         ::testing::Values(kernels::KernelLevel::Ref, kernels::KernelLevel::Avx2,
                                           kernels::KernelLevel::Avx512),
                         [](const auto& info) { return std::string(kernels::kernel_level_name(info.param)); });

TEST(FlashAttention, WorkspaceDoesNotGrowWithContext) {
  AttnShape a = shape({8, 4, 64, 512, 0}), b = shape({8, 4, 64, 8192, 0});
  EXPECT_EQ(kernels::flash_attention_workspace_bytes(a, 2), kernels::flash_attention_workspace_bytes(b, 2));
  EXPECT_EQ(kernels::naive_attention_workspace_bytes(b, 2), 2 * (8192 + 64) * sizeof(float));
}

TEST(KVCache, Q8_0NeedsHeadDimMultipleOf32) {
  EXPECT_THROW(KVCache(1, 16, 4, 8, DType::Q8_0), Error);
  EXPECT_NO_THROW(KVCache(1, 16, 4, 64, DType::Q8_0));
  EXPECT_EQ(KVCache::bytes_for(2, 100, 4, 64, DType::Q8_0), 2u * 2 * 128 * 4 * 68);  // 2 pages of 64
  EXPECT_EQ(kv_type_from_string("Q8_0"), KVType::Q8_0);
  EXPECT_THROW(kv_type_from_string("q4"), Error);
}

// ---- through the model ----------------------------------------------------------------------

std::vector<int32_t> some_tokens(int n, int n_vocab, int salt) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; i++) t[i] = int32_t((i * 7919 + salt * 31 + 13) % n_vocab);
  t[0] = 1;
  return t;
}

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST(FlashAttentionModel, TeacherLogitsMatchNaive) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  auto model = Model::load(test::shared_path("models/zoo-teacher-34m"));
  const auto toks = some_tokens(300, model->n_vocab(), 1);
  std::vector<float> ref, got;
  for (auto impl : {kernels::AttnImpl::Naive, kernels::AttnImpl::Flash}) {
    kernels::set_attention_impl(impl);
    Session s(model, {.n_ctx = 512, .n_threads = 2});
    auto l = s.eval(std::span<const int32_t>(toks.data(), 290), true);
    std::vector<float> all(l.begin(), l.end());
    for (int i = 290; i < 300; i++) {  // then decode steps
      auto d = s.eval(std::span<const int32_t>(&toks[i], 1));
      all.insert(all.end(), d.begin(), d.end());
    }
    (impl == kernels::AttnImpl::Naive ? ref : got) = std::move(all);
  }
  kernels::set_attention_impl(kernels::AttnImpl::Flash);
  ASSERT_EQ(ref.size(), got.size());
  EXPECT_LE(max_abs_diff(ref, got), 2e-3f);  // logits of magnitude ~10 after 8 layers
}

// After truncate, new tokens overwrite the cache: the logits equal a fresh session's.
TEST(FlashAttentionModel, TruncateThenContinueMatchesFresh) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  auto model = Model::load(test::shared_path("models/zoo-teacher-34m"));
  const auto a = some_tokens(150, model->n_vocab(), 1), b = some_tokens(150, model->n_vocab(), 2);
  std::vector<int32_t> ab(a.begin(), a.begin() + 80);
  ab.insert(ab.end(), b.begin() + 80, b.end());
  for (KVType kt : {KVType::F32, KVType::Q8_0}) {
    Session s(model, {.n_ctx = 256, .n_threads = 2, .kv_type = kt});
    s.eval(a);
    s.truncate(80);
    auto got = s.eval(std::span<const int32_t>(ab.data() + 80, ab.size() - 80));
    std::vector<float> g(got.begin(), got.end());
    Session f(model, {.n_ctx = 256, .n_threads = 2, .kv_type = kt});
    auto want = f.eval(ab);
    EXPECT_LE(max_abs_diff(g, want), 1e-4f) << kv_type_name(kt);
  }
}

}  // namespace
}  // namespace kite
