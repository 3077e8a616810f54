// kite bench-attn: the attention kernel alone, naive reference vs flash, for one layer and a full
// causal prompt of ctx tokens (every token attends to all earlier ones), as a prefill does.
// Peak memory is each kernel's own working buffers, computed exactly from what it allocates
// (kernels::*_attention_workspace_bytes); q, out and the KV cache are shared inputs and not counted.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "commands.h"
#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "runtime/kv_cache.h"

namespace kite::cli {

namespace {

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::stoi(item));
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

template <class F>
double time_ms(F&& f, int reps) {
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(t);
}

}  // namespace

Runner add_bench_attn(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "bench-attn",
      "attention kernel alone: naive vs flash, time and working memory, for a causal prompt of ctx tokens");
  struct Opts {
    std::string ctx = "512,2048,8192";
    int heads = 8, kv_heads = 4, head_dim = 64, threads = 2, reps = 3, naive_max_ctx = 16384;
    std::string kv_type = "f32";
    bool json = false, decode = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--ctx", o->ctx, "context lengths, comma separated (one causal prompt of each)");
  sub->add_option("--heads", o->heads, "query heads");
  sub->add_option("--kv-heads", o->kv_heads, "KV heads (grouped-query attention when fewer)");
  sub->add_option("--head-dim", o->head_dim, "head size");
  sub->add_option("-t,--threads", o->threads, "threads");
  sub->add_option("-r,--repetitions", o->reps, "repetitions (median reported); contexts >= 8192 run the naive kernel once");
  sub->add_option("--kv-type", o->kv_type, "KV cache type: f32, f16, bf16, q8_0");
  sub->add_option("--naive-max-ctx", o->naive_max_ctx, "skip the naive kernel above this context (it is quadratic and scalar)");
  sub->add_flag("--decode", o->decode, "one query token after ctx - 1 cached ones (a decode step) instead of a full prompt");
  sub->add_flag("--json", o->json,
                "print {\"results\": [{ctx, naive_ms, flash_ms, naive_peak_mb, flash_peak_mb}]}");
  sub->footer(
      "Memory: each kernel's own working buffers in MB (1e6 bytes), computed exactly from what it allocates for\n"
      "that call on -t threads (naive: one row of ctx scores + one row buffer per thread; flash: one tile's\n"
      "Q/S/acc/K/V block buffers per thread, plus split partials for decode). Times: ms, median of -r runs.");
  return [o]() {
    const std::vector<int> ctxs = parse_ints(o->ctx);
    check(!ctxs.empty(), "bench-attn: --ctx needs at least one length");
    check(o->heads > 0 && o->kv_heads > 0 && o->heads % o->kv_heads == 0, "bench-attn: --heads (", o->heads,
          ") must be a positive multiple of --kv-heads (", o->kv_heads, ")");
    check(o->head_dim > 0 && o->threads > 0 && o->reps > 0, "bench-attn: --head-dim, -t and -r must be positive");
    const DType kt = kv_type_from_name(o->kv_type);
    omp_set_num_threads(o->threads);
    nlohmann::json out = {{"results", nlohmann::json::array()}};
    if (!o->json)
      std::printf("attention, one layer: %d heads, %d KV heads, head_dim %d, KV %s, %d threads, kernels %s\n",
                  o->heads, o->kv_heads, o->head_dim, o->kv_type.c_str(), o->threads,
                  kernels::kernel_level_name(kernels::kernel_level()));
    for (int ctx : ctxs) {
      check(ctx > 0, "bench-attn: context lengths must be positive");
      kernels::AttnShape s;
      s.n_tok = o->decode ? 1 : ctx;
      s.n_head = o->heads;
      s.n_head_kv = o->kv_heads;
      s.head_dim = o->head_dim;
      s.pos0 = ctx - s.n_tok;
      s.scale = 1.0f / std::sqrt(float(o->head_dim));
      KVCache cache(1, ctx, o->kv_heads, o->head_dim, kt);
      std::mt19937 rng(42);
      std::normal_distribution<float> nd(0.0f, 1.0f);
      const size_t kv_n = size_t(ctx) * o->kv_heads * o->head_dim;
      std::vector<float> k(kv_n), v(kv_n), q(size_t(s.n_tok) * o->heads * o->head_dim), y(q.size());
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      for (auto& x : q) x = nd(rng);
      cache.store(0, 0, ctx, k.data(), v.data());
      const kernels::AttnKV kv = cache.layer(0);

      const int reps = o->decode ? o->reps * 20 : o->reps;  // a decode step is short: more runs
      const double flash_ms = time_ms([&] { kernels::flash_attention(s, q.data(), kv, y.data()); }, reps);
      const bool run_naive = ctx <= o->naive_max_ctx;
      const double naive_ms =
          run_naive ? time_ms([&] { kernels::naive_attention(s, q.data(), kv, y.data()); }, ctx >= 8192 && !o->decode ? 1 : reps)
                    : NAN;
      const double naive_mb = kernels::naive_attention_workspace_bytes(s, o->threads) / 1e6;
      const double flash_mb = kernels::flash_attention_workspace_bytes(s, o->threads) / 1e6;
      nlohmann::json r = {{"ctx", ctx}, {"flash_ms", flash_ms}, {"naive_peak_mb", naive_mb}, {"flash_peak_mb", flash_mb}};
      r["naive_ms"] = run_naive ? nlohmann::json(naive_ms) : nlohmann::json(nullptr);
      out["results"].push_back(r);
      if (!o->json) {
        std::printf("ctx %6d  naive %10.2f ms  flash %9.3f ms  speed-up %5.1fx  memory naive %7.3f MB  flash %7.3f MB"
                    "  (a materialised score matrix would be %.3g MB)\n",
                    ctx, naive_ms, flash_ms, naive_ms / flash_ms, naive_mb, flash_mb,
                    double(o->heads) * s.n_tok * ctx * 4 / 1e6);
        std::fflush(stdout);
      }
    }
    if (o->json) std::puts(out.dump().c_str());
    return 0;
  };
}

}  // namespace kite::cli
