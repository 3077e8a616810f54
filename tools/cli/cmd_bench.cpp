// kite bench: prompt-processing and decode speed, with the roofline beside them.
// Decode reads every weight once per token, so tok/s × bytes/token is the bandwidth achieved;
// the machine's read bandwidth is measured too (ReadBandwidthProbe, before the runs and after
// each decode repetition; `--no-membw` skips it, `--membw` alone runs only it), to show the
// fraction reached.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "core/error.h"
#include "core/profile.h"
#include "kernels/kernels.h"
#include "runtime/membw.h"
#include "kite/kite.h"
#include "model/model.h"

namespace kite::cli {

namespace {

struct Stats {
  double min = 0, median = 0, max = 0;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stats s;
  if (v.empty()) return s;
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  return s;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::stoi(item));
  return out;
}

// Bytes of weights a decode step reads: every matrix once (the embedding only one row).
double weight_bytes_per_token(const LoadedModel& m) {
  double b = 0;
  for (const auto& [name, t] : m.tensors)
    if (name != "token_embd.weight" || m.config.tied_embeddings) b += double(t.nbytes);
  return b;
}

std::vector<int32_t> synthetic_tokens(int n, int n_vocab, int salt) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; i++) t[i] = int32_t((size_t(i) * 7919 + 13 + size_t(salt) * 104729) % n_vocab);
  return t;
}

void warn_beyond_training(const LoadedModel& m, int n_ctx) {
  if (m.config.n_ctx_train > 0 && n_ctx > m.config.n_ctx_train)
    std::fprintf(stderr, "kite: warning: context %d is beyond the model's training length %d (speed is "
                 "still meaningful; outputs there may degrade)\n", n_ctx, m.config.n_ctx_train);
}

// Decode speed of s from where it stands: n_gen one-token steps (a fixed token sequence starting
// after `tok`), in tok/s.
double timed_decode(Session& s, int n_gen, int n_vocab, int32_t tok = 1) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n_gen; i++) {
    tok = int32_t((tok * 31 + 7) % n_vocab);
    s.eval(std::span<const int32_t>(&tok, 1));
  }
  return n_gen / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Decode speed after `depth` cached tokens: each depth's prompt is evaluated once, then each
// repetition truncates back to it and decodes n_gen tokens. The depths take turns within each
// repetition (not one after the other), so that a slow spell of a shared machine hits all of
// them alike and their ratio stays meaningful.
nlohmann::json bench_depths(const std::shared_ptr<const Model>& model, const std::vector<int>& depths, int n_gen,
                            int reps, int threads, KVType kv_type, bool json) {
  const int n_vocab = model->n_vocab();
  n_gen = std::max(1, n_gen);
  // --profile / --trace: only the deepest depth's decode steps are recorded (not the prompts).
  const bool profiling = profile::enabled();
  profile::pause(true);
  std::vector<std::unique_ptr<Session>> sessions;
  for (int depth : depths) {
    check(depth >= 1, "bench: --depth values must be positive");
    SessionOptions so;
    so.n_ctx = depth + n_gen + 1;
    so.n_threads = threads;
    so.kv_type = kv_type;
    warn_beyond_training(model->impl(), so.n_ctx);
    sessions.push_back(std::make_unique<Session>(model, so));
    sessions.back()->eval(synthetic_tokens(depth, n_vocab, 1));
  }
  if (profiling) profile::reset();
  std::vector<std::vector<double>> tg(depths.size());
  for (int r = 0; r < std::max(1, reps); r++)
    for (size_t d = 0; d < depths.size(); d++) {
      Session& s = *sessions[d];
      s.truncate(depths[d]);
      profile::pause(!(profiling && d + 1 == depths.size()));
      tg[d].push_back(timed_decode(s, n_gen, n_vocab, 1 % n_vocab));
    }
  profile::pause(false);
  nlohmann::json arr = nlohmann::json::array();
  for (size_t d = 0; d < depths.size(); d++) {
    const Stats st = stats(tg[d]);
    arr.push_back({{"depth", depths[d]}, {"tg_tok_s", st.median}, {"tg_tok_s_min", st.min}, {"tg_tok_s_max", st.max}});
    if (!json)
      std::printf("depth %6d  tg%-4d %8.1f tok/s  (min %.1f, max %.1f; %d threads, KV %s)\n", depths[d], n_gen,
                  st.median, st.min, st.max, threads, kv_type_name(kv_type));
  }
  return arr;
}

// Decode speed under each weight stream plan (kernels::StreamPlan), the plans taking turns within
// each repetition so that the machine's slow and fast spells hit them alike: which way of reading
// the weights this machine's prefetchers favour.
nlohmann::json bench_streams(const std::shared_ptr<const Model>& model, const std::vector<kernels::StreamPlan>& plans,
                             int n_gen, int reps, int threads, KVType kv_type, double bytes_tok, bool json) {
  const int n_vocab = model->n_vocab();
  n_gen = std::max(1, n_gen);
  SessionOptions so;
  so.n_ctx = n_gen + 2;
  so.n_threads = threads;
  so.kv_type = kv_type;
  Session s(model, so);
  const kernels::StreamPlan saved = kernels::stream_plan();
  std::vector<std::vector<double>> tg(plans.size());
  for (int r = 0; r < std::max(1, reps); r++)
    for (size_t i = 0; i < plans.size(); i++) {
      kernels::set_stream_plan(plans[i]);
      s.truncate(0);
      const int32_t tok = 1 % n_vocab;
      s.eval(std::span<const int32_t>(&tok, 1));
      tg[i].push_back(timed_decode(s, n_gen, n_vocab, tok));
    }
  kernels::set_stream_plan(saved);
  nlohmann::json arr = nlohmann::json::array();
  for (size_t i = 0; i < plans.size(); i++) {
    const Stats st = stats(tg[i]);
    const char* name = kernels::stream_plan_name(plans[i]);
    arr.push_back({{"plan", name}, {"tg_tok_s", st.median}, {"tg_tok_s_min", st.min}, {"tg_tok_s_max", st.max},
                   {"gbs", st.median * bytes_tok / 1e9}});
    if (!json)
      std::printf("streams %-11s  tg%-4d %8.1f tok/s  (min %.1f, max %.1f; %d threads)  %.1f GB/s\n", name, n_gen,
                  st.median, st.min, st.max, threads, st.median * bytes_tok / 1e9);
  }
  return arr;
}

// What a speculative verification pass costs: a batch of n tokens evaluated as speculative
// decoding does (ExactBatchScope: each token gets the bits of a one-token step; logits of every
// token), after `depth` cached tokens, truncated back after each pass. The sizes take turns
// within each repetition, and each is reported against the first size (usually 1: a plain step).
nlohmann::json bench_verify(const std::shared_ptr<const Model>& model, const std::vector<int>& sizes, int depth,
                            int reps, int threads, KVType kv_type, bool json) {
  const int n_vocab = model->n_vocab();
  int max_n = 1;
  for (int n : sizes) {
    check(n >= 1 && n <= kernels::kExactBatchTokens, "bench: --verify-batch sizes must be 1..",
          kernels::kExactBatchTokens);
    max_n = std::max(max_n, n);
  }
  SessionOptions so;
  so.n_ctx = depth + max_n + 1;
  so.n_threads = threads;
  so.kv_type = kv_type;
  Session s(model, so);
  s.eval(synthetic_tokens(depth, n_vocab, 2));
  kernels::ExactBatchScope exact;
  std::vector<std::vector<double>> ms(sizes.size());
  const int passes = std::max(1, reps) * 10;  // a pass is a few ms: more of them
  for (int r = 0; r < passes; r++)
    for (size_t i = 0; i < sizes.size(); i++) {
      const std::vector<int32_t> batch = synthetic_tokens(sizes[i], n_vocab, 3 + r);
      const auto t0 = std::chrono::steady_clock::now();
      s.eval(batch, /*all_logits=*/true);
      ms[i].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      s.truncate(depth);
    }
  nlohmann::json arr = nlohmann::json::array();
  const double first = stats(ms[0]).median;
  for (size_t i = 0; i < sizes.size(); i++) {
    const Stats st = stats(ms[i]);
    arr.push_back({{"tokens", sizes[i]}, {"ms", st.median}, {"ms_min", st.min}, {"ms_max", st.max},
                   {"vs_first", st.median / first}});
    if (!json)
      std::printf("verify %3d tokens  %8.3f ms  (%.2fx %d token%s; min %.3f, max %.3f; depth %d, %d threads)\n", sizes[i],
                  st.median, st.median / first, sizes[0], sizes[0] == 1 ? "" : "s", st.min, st.max, depth, threads);
  }
  return arr;
}

// Two requests sharing a prefix of n_prefix tokens and differing in their last 24 tokens (the
// "last sentence"). Cold: the first request on an empty session. Warm: the second request on
// the same session, which keeps the cached common prefix (Session::reuse_prefix) and evaluates
// only the rest. TTFT = time until the logits of the first generated token.
nlohmann::json bench_prefix(const std::shared_ptr<const Model>& model, int n_prefix, int threads, KVType kv_type,
                            double kv_mem, bool json) {
  constexpr int kTail = 24;
  const int n_vocab = model->n_vocab();
  std::vector<int32_t> a = synthetic_tokens(n_prefix, n_vocab, 1), b;
  a[0] = 1;
  b = a;
  const auto ta = synthetic_tokens(kTail, n_vocab, 2), tb = synthetic_tokens(kTail, n_vocab, 3);
  a.insert(a.end(), ta.begin(), ta.end());
  b.insert(b.end(), tb.begin(), tb.end());
  SessionOptions so;
  so.n_ctx = n_prefix + kTail + 1;
  so.n_threads = threads;
  so.kv_type = kv_type;
  so.kv_mem_mib = kv_mem;
  warn_beyond_training(model->impl(), so.n_ctx);
  Session s(model, so);
  auto ms_since = [](auto t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  auto t0 = std::chrono::steady_clock::now();
  const int reused_a = s.reuse_prefix(a);
  s.eval(std::span<const int32_t>(a.data() + reused_a, a.size() - reused_a));
  const double cold = ms_since(t0);
  t0 = std::chrono::steady_clock::now();
  const int reused_b = s.reuse_prefix(b);
  s.eval(std::span<const int32_t>(b.data() + reused_b, b.size() - reused_b));
  const double warm = ms_since(t0);
  if (!json)
    std::printf("prefix %d tokens + %d: ttft cold %.1f ms, warm %.1f ms (%d tokens reused), %.1fx\n", n_prefix, kTail,
                cold, warm, reused_b, cold / warm);
  return {{"ttft_cold_ms", cold}, {"ttft_warm_ms", warm}, {"prefix_reused_tokens", reused_b}};
}

}  // namespace

Runner add_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "prompt and decode speed, bandwidth roofline");
  struct Opts {
    ModelFlags mf;
    int n_prompt = 512, n_gen = 128, reps = 5;
    // KV cache F16 by default, as llama-bench's: figures compare like with like (generate and
    // perplexity default to F32, the cache the golden checks use).
    std::string threads = "2", kv_type = "f16", depths, verify, streams;
    int prefix_test = 0;
    double kv_mem = 0;
    bool json = false, membw = false, no_membw = false, profile = false;
    std::string trace;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(sub, o->mf);
  sub->add_option("-p,--n-prompt", o->n_prompt, "prompt tokens (0: skip)");
  sub->add_option("-n,--n-gen", o->n_gen, "generated tokens (0: skip)");
  sub->add_option("-t,--threads", o->threads, "thread counts, comma separated");
  sub->add_option("-r,--repetitions", o->reps, "repetitions (min/median/max reported)");
  sub->add_flag("--membw", o->membw,
                "measure the machine's read bandwidth (done by default when decode is timed; alone, without -m: only that)");
  sub->add_flag("--no-membw", o->no_membw, "do not measure the read bandwidth (no fraction of it is reported)");
  sub->add_flag("--profile", o->profile, "time per op (printed after the runs; with --depth: the deepest depth's decode steps only)");
  sub->add_option("--trace", o->trace, "write a Chrome trace (Perfetto) of the last repetition");
  sub->add_option("--kv-type", o->kv_type, "KV cache type: f32, f16, bf16, q8_0 (default f16, as llama-bench)");
  sub->add_option("--kv-mem", o->kv_mem, "KV cache memory in MiB for --prefix-test (pages of 64 tokens; 0: the context)");
  sub->add_option("--depth", o->depths,
                  "decode speed after a cached context of each of these depths, comma separated "
                  "(JSON \"depths\"; last -t thread count, -n tokens)");
  sub->add_option("--streams", o->streams,
                  "decode (-n tokens, last -t thread count) under each of these weight stream plans, "
                  "comma separated (sequential, interleaved), taking turns (JSON \"streams\")");
  sub->add_option("--verify-batch", o->verify,
                  "cost of speculative verification passes of these token counts, comma separated, after -p "
                  "cached tokens, each against the first count (JSON \"verify\"; last -t thread count)");
  sub->add_option("--prefix-test", o->prefix_test,
                  "time to first token of two requests sharing a prefix of N tokens, cold and with the "
                  "second reusing the cached prefix (JSON ttft_cold_ms, ttft_warm_ms)");
  sub->add_flag("--json", o->json, "print one JSON object");
  return [o]() {
    nlohmann::json out;
    const std::vector<int> thread_counts = parse_list(o->threads);
    check(!thread_counts.empty(), "bench: -t needs at least one thread count");
    double membw = 0;
    // Re-measures after each decode repetition with the largest thread count (the bandwidth's).
    std::unique_ptr<ReadBandwidthProbe> probe;
    const int probe_threads = *std::max_element(thread_counts.begin(), thread_counts.end());
    check(!(o->membw && o->no_membw), "bench: --membw and --no-membw contradict each other");
    // By default whenever decode is timed (-n > 0 with a model): the fraction of the machine's
    // read bandwidth is the roofline beside the decode figures.
    const bool measure_bw = o->membw || (!o->no_membw && !o->mf.model.empty() && o->n_gen > 0);
    if (measure_bw) {
      probe = std::make_unique<ReadBandwidthProbe>(probe_threads);
      membw = probe->measure(7);
      out["membw_gbs"] = membw;
      out["membw_streams_gbs"] = probe->best_streams();
      out["membw_sequential_gbs"] = probe->best_sequential();
      if (!o->json)
        std::printf("memory read bandwidth: %.1f GB/s (best of several, %d threads; 8 prefetched streams per thread "
                    "%.1f, one plain stream per thread %.1f)\n",
                    membw, probe_threads, probe->best_streams(), probe->best_sequential());
    }
    if (o->mf.model.empty()) {
      check(o->membw, "bench: -m MODEL is required (or --membw alone)");
      if (o->json) std::puts(out.dump().c_str());
      return 0;
    }
    ModelLoadOptions lo;
    lo.tokenizer_path = o->mf.tokenizer;
    auto model = Model::load(o->mf.model, lo);
    const LoadedModel& m = model->impl();
    const double bytes_tok = weight_bytes_per_token(m);
    const char* level = kernels::kernel_level_name(kernels::kernel_level());
    const char* streams = kernels::stream_plan_name(kernels::stream_plan());
    const char* f16_gemm = kernels::f16_gemm_name(kernels::f16_gemm());
    if (!o->json) {
      std::printf("model %s: %.1f MiB of weights read per decoded token\n", m.path.c_str(), bytes_tok / 1048576.0);
      std::printf("kernels %s, weight streams %s, F16 prompt GEMM %s (KITE_KERNELS, KITE_STREAMS, KITE_F16_GEMM)\n",
                  level, streams, f16_gemm);
    }
    out["kernels"] = level;
    out["stream_plan"] = streams;
    out["f16_gemm"] = f16_gemm;
    if (o->profile || !o->trace.empty()) profile::enable(true, !o->trace.empty());
    const KVType kv_type = kv_type_from_string(o->kv_type);
    out["model"] = m.path;
    out["kv_type"] = kv_type_name(kv_type);
    out["weight_bytes_per_token"] = bytes_tok;
    out["runs"] = nlohmann::json::array();
    const int n_vocab = m.config.n_vocab;
    for (int nt : thread_counts) {
      SessionOptions so;
      so.n_ctx = std::max(o->n_prompt, 1) + o->n_gen + 1;
      so.n_threads = nt;
      so.kv_type = kv_type;
      Session s(model, so);
      out["kv_bytes"] = s.kv_bytes();
      if (!o->json) std::printf("KV cache: %s, %.2f MiB for %d positions\n", kv_type_name(kv_type), s.kv_bytes() / 1048576.0, so.n_ctx);
      std::vector<int32_t> prompt(std::max(o->n_prompt, 1));
      for (size_t i = 0; i < prompt.size(); i++) prompt[i] = int32_t((i * 7919 + 13) % n_vocab);
      std::vector<double> pp, tg;
      std::vector<double> fractions;  // each decode repetition's GB/s over the bandwidth measured right after it
      s.eval(std::span<const int32_t>(prompt.data(), std::min<size_t>(prompt.size(), 16)));  // warm-up
      for (int r = 0; r < o->reps; r++) {
        if (!o->trace.empty() || o->profile) profile::reset();
        s.truncate(0);
        if (o->n_prompt > 0) {
          auto t0 = std::chrono::steady_clock::now();
          s.eval(prompt);
          double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          pp.push_back(o->n_prompt / sec);
        }
        if (o->n_gen > 0) {
          s.truncate(0);
          const int32_t tok = 1 % n_vocab;
          s.eval(std::span<const int32_t>(&tok, 1));
          const double tok_s = timed_decode(s, o->n_gen, n_vocab, tok);
          tg.push_back(tok_s);
          if (probe && nt == probe_threads) {
            const double bw = probe->measure(3);
            membw = std::max(membw, bw);
            fractions.push_back(tok_s * bytes_tok / 1e9 / bw);
          }
        }
      }
      Stats p = stats(pp), g = stats(tg);
      nlohmann::json run = {{"threads", nt}};
      if (!pp.empty()) run["pp"] = {{"tokens", o->n_prompt}, {"tok_s_min", p.min}, {"tok_s_median", p.median}, {"tok_s_max", p.max}};
      if (!tg.empty()) {
        const double gbs = g.median * bytes_tok / 1e9;
        run["tg"] = {{"tokens", o->n_gen}, {"tok_s_min", g.min}, {"tok_s_median", g.median}, {"tok_s_max", g.max},
                     {"gbs", gbs}};
        if (!fractions.empty()) {
          run["tg"]["membw_fraction"] = stats(fractions).median;
          run["tg"]["membw_fraction_of_best"] = gbs / membw;
          out["membw_gbs"] = membw;
        } else if (membw > 0) {
          run["tg"]["membw_fraction"] = gbs / membw;
        }
      }
      out["runs"].push_back(run);
      // Top-level pp/tg: the last thread count given (the one the checks compare).
      if (run.contains("pp")) out["pp"] = run["pp"];
      if (run.contains("tg")) out["tg"] = run["tg"];
      if (!o->json) {
        if (!pp.empty())
          std::printf("threads %d  pp%-4d %8.1f tok/s  (min %.1f, max %.1f)\n", nt, o->n_prompt, p.median, p.min, p.max);
        if (!tg.empty()) {
          std::printf("threads %d  tg%-4d %8.1f tok/s  (min %.1f, max %.1f)  %.1f GB/s", nt, o->n_gen, g.median, g.min,
                      g.max, g.median * bytes_tok / 1e9);
          if (!fractions.empty())
            std::printf("\n    = %.0f%% of the read bandwidth measured after each repetition (median; min %.0f%%, "
                        "max %.0f%%), %.0f%% of the best seen (%.1f GB/s)",
                        100 * stats(fractions).median, 100 * stats(fractions).min, 100 * stats(fractions).max,
                        100 * g.median * bytes_tok / 1e9 / membw, membw);
          else if (membw > 0)
            std::printf("  = %.0f%% of measured read bandwidth", 100 * g.median * bytes_tok / 1e9 / membw);
          std::printf("\n");
        }
      }
    }
    const int threads_last = thread_counts.back();
    if (!o->depths.empty()) out["depths"] = bench_depths(model, parse_list(o->depths), o->n_gen, o->reps, threads_last,
                                                         kv_type, o->json);
    if (!o->streams.empty()) {
      std::vector<kernels::StreamPlan> plans;
      for (const std::string& name : split_commas(o->streams)) {
        check(name == "sequential" || name == "interleaved", "bench: --streams: unknown plan '", name,
              "' (sequential, interleaved)");
        plans.push_back(name == "sequential" ? kernels::StreamPlan::Sequential : kernels::StreamPlan::Interleaved);
      }
      out["streams"] = bench_streams(model, plans, o->n_gen, o->reps, threads_last, kv_type, bytes_tok, o->json);
    }
    if (!o->verify.empty())
      out["verify"] = bench_verify(model, parse_list(o->verify), std::max(1, o->n_prompt), o->reps, threads_last,
                                   kv_type, o->json);
    if (o->prefix_test > 0) {
      const nlohmann::json p = bench_prefix(model, o->prefix_test, threads_last, kv_type, o->kv_mem, o->json);
      for (auto& [k, v] : p.items()) out[k] = v;
    }
    if (o->profile) std::fprintf(o->json ? stderr : stdout, "%s", profile::report().c_str());
    if (!o->trace.empty()) profile::write_trace(o->trace);
    if (o->json) std::puts(out.dump().c_str());
    return 0;
  };
}

}  // namespace kite::cli
