// kite bench: prompt-processing and decode speed, with the roofline beside them.
// Decode reads every weight once per token, so tok/s × bytes/token is the bandwidth achieved;
// `--membw` measures what the machine can read, to show the fraction reached.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "core/error.h"
#include "core/profile.h"
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

}  // namespace

Runner add_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "prompt and decode speed, bandwidth roofline");
  struct Opts {
    ModelFlags mf;
    int n_prompt = 512, n_gen = 128, reps = 5;
    std::string threads = "2";
    bool json = false, membw = false, profile = false;
    std::string trace;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(sub, o->mf);
  sub->add_option("-p,--n-prompt", o->n_prompt, "prompt tokens (0: skip)");
  sub->add_option("-n,--n-gen", o->n_gen, "generated tokens (0: skip)");
  sub->add_option("-t,--threads", o->threads, "thread counts, comma separated");
  sub->add_option("-r,--repetitions", o->reps, "repetitions (min/median/max reported)");
  sub->add_flag("--membw", o->membw, "measure the machine's read bandwidth");
  sub->add_flag("--profile", o->profile, "time per op (printed after the runs)");
  sub->add_option("--trace", o->trace, "write a Chrome trace (Perfetto) of the last repetition");
  sub->add_flag("--json", o->json, "print one JSON object");
  return [o]() {
    nlohmann::json out;
    const std::vector<int> thread_counts = parse_list(o->threads);
    check(!thread_counts.empty(), "bench: -t needs at least one thread count");
    double membw = 0;
    if (o->membw) {
      membw = measure_read_bandwidth(*std::max_element(thread_counts.begin(), thread_counts.end()));
      out["membw_gbs"] = membw;
      if (!o->json) std::printf("memory read bandwidth: %.1f GB/s (best of several, %d threads)\n", membw,
                                *std::max_element(thread_counts.begin(), thread_counts.end()));
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
    if (!o->json)
      std::printf("model %s: %.1f MiB of weights read per decoded token\n", m.path.c_str(), bytes_tok / 1048576.0);
    if (o->profile || !o->trace.empty()) profile::enable(true, !o->trace.empty());
    out["model"] = m.path;
    out["weight_bytes_per_token"] = bytes_tok;
    out["runs"] = nlohmann::json::array();
    const int n_vocab = m.config.n_vocab;
    for (int nt : thread_counts) {
      SessionOptions so;
      so.n_ctx = std::max(o->n_prompt, 1) + o->n_gen + 1;
      so.n_threads = nt;
      Session s(model, so);
      std::vector<int32_t> prompt(std::max(o->n_prompt, 1));
      for (size_t i = 0; i < prompt.size(); i++) prompt[i] = int32_t((i * 7919 + 13) % n_vocab);
      std::vector<double> pp, tg;
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
          int32_t tok = 1 % n_vocab;
          s.eval(std::span<const int32_t>(&tok, 1));
          auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < o->n_gen; i++) {
            tok = int32_t((tok * 31 + 7) % n_vocab);
            s.eval(std::span<const int32_t>(&tok, 1));
          }
          double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          tg.push_back(o->n_gen / sec);
        }
      }
      Stats p = stats(pp), g = stats(tg);
      nlohmann::json run = {{"threads", nt}};
      if (!pp.empty()) run["pp"] = {{"tokens", o->n_prompt}, {"tok_s_min", p.min}, {"tok_s_median", p.median}, {"tok_s_max", p.max}};
      if (!tg.empty()) {
        const double gbs = g.median * bytes_tok / 1e9;
        run["tg"] = {{"tokens", o->n_gen}, {"tok_s_min", g.min}, {"tok_s_median", g.median}, {"tok_s_max", g.max},
                     {"gbs", gbs}};
        if (membw > 0) run["tg"]["membw_fraction"] = gbs / membw;
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
          if (membw > 0) std::printf("  = %.0f%% of measured read bandwidth", 100 * g.median * bytes_tok / 1e9 / membw);
          std::printf("\n");
        }
      }
    }
    if (o->profile) std::fprintf(o->json ? stderr : stdout, "%s", profile::report().c_str());
    if (!o->trace.empty()) profile::write_trace(o->trace);
    if (o->json) std::puts(out.dump().c_str());
    return 0;
  };
}

}  // namespace kite::cli
