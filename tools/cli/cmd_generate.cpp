// kite generate: stream a continuation of a prompt, plainly or with speculative decoding (a draft
// model or prompt lookup proposing tokens, the model verifying them in batches).
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "commands.h"
#include "core/error.h"
#include "core/mmap.h"
#include "core/profile.h"
#include "kite/kite.h"
#include "model/config.h"
#include "model/model.h"
#include "runtime/speculative.h"

namespace kite::cli {

namespace {

// Sampling defaults: the model's generation_config.json when it has one (do_sample=false means
// greedy), else llama.cpp's defaults.
SamplingParams model_sampling_defaults(const std::string& model_path) {
  SamplingParams p;
  const std::string gc = model_path + "/generation_config.json";
  if (!is_directory(model_path) || !file_exists(gc)) return p;
  try {
    auto j = nlohmann::json::parse(read_text_file(gc));
    if (j.contains("do_sample") && j["do_sample"].is_boolean() && !j["do_sample"].get<bool>()) p.temperature = 0;
    if (j.contains("temperature") && j["temperature"].is_number()) p.temperature = j["temperature"].get<float>();
    if (j.contains("top_k") && j["top_k"].is_number()) p.top_k = j["top_k"].get<int>();
    if (j.contains("top_p") && j["top_p"].is_number()) p.top_p = j["top_p"].get<float>();
    if (j.contains("repetition_penalty") && j["repetition_penalty"].is_number())
      p.repeat_penalty = j["repetition_penalty"].get<float>();
  } catch (const nlohmann::json::exception& e) {
    fail(gc, ": invalid JSON: ", e.what());
  }
  return p;
}

// A small draft decodes from cache, where each of its ~60 matrix products per token is a few
// microseconds of work and a second thread's wake-up and barrier cost about as much as it saves.
// Measured (Zen 4, 2 cores, zoo pair, 6 golden prompts): the 7.5 MiB Q8_0 draft on 1 thread
// took the median speed-up from 1.09x to 1.19-1.22x; the 28 MiB F32 draft is better on 2
// (1.67x against 1.48x), and so is the 14 MiB BF16 one (1.49 / 1.63x against 1.44 / 1.41x):
// its weights come from DRAM after each target pass, at one core's bandwidth on 1 thread.
constexpr size_t kSmallDraftBytes = size_t(10) << 20;
int default_draft_threads(const Model& draft, int n_threads) {
  return draft.impl().weight_bytes() <= kSmallDraftBytes ? 1 : n_threads;
}

}  // namespace

Runner add_generate(CLI::App& app) {
  auto* sub = app.add_subcommand("generate", "generate text from a prompt");
  struct Opts {
    ModelFlags mf;
    std::string prompt, prompt_file;
    int n_predict = 128, n_ctx = 0, n_threads = 0, n_batch = 512;
    std::string kv_type = "f32";
    double kv_mem = 0;
    std::string prompt_cache;
    bool context_shift = false;
    int keep = 0;
    std::optional<float> temp, top_p, min_p, repeat_penalty;
    std::optional<int> top_k;
    float freq_penalty = 0, presence_penalty = 0;
    int repeat_last_n = 64;
    int64_t seed = -1;
    std::vector<std::string> stop;
    bool json = false, no_bos = false, ignore_eos = false;
    // Speculative decoding.
    std::string draft;
    int draft_max = 8, draft_min = 0, lookup = 0, draft_threads = 0;
    bool compare = false;
    int compare_reps = 1;
    bool profile = false;
    std::string trace;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(sub, o->mf);
  sub->add_option("-p,--prompt", o->prompt, "prompt text");
  sub->add_option("-f,--file", o->prompt_file, "read the prompt from a file");
  sub->add_option("-n,--n-predict", o->n_predict, "tokens to generate (-1: until EOS)");
  sub->add_option("-c,--ctx-size", o->n_ctx, "context size (0: the model's)");
  sub->add_option("-t,--threads", o->n_threads, "threads (0: all cores)");
  sub->add_option("-b,--batch-size", o->n_batch, "prompt tokens per forward pass");
  sub->add_option("--kv-type", o->kv_type, "KV cache type: f32, f16, bf16, q8_0");
  sub->add_option("--prompt-cache", o->prompt_cache,
                  "file with the prompt's K/V: loaded when present (its longest common prefix with the prompt "
                  "is reused), then rewritten with this prompt");
  sub->add_flag("--context-shift", o->context_shift,
                "when the context is full, drop the oldest half of the tokens after --keep and continue "
                "(cached keys are re-rotated, nothing is recomputed)");
  sub->add_option("--keep", o->keep, "with --context-shift: tokens at the start that are never dropped (e.g. 1 for BOS)");
  sub->add_option("--kv-mem", o->kv_mem, "KV cache memory in MiB (pages of 64 tokens; 0: the context)");
  sub->add_option("--temp", o->temp, "temperature (0: greedy)");
  sub->add_option("--top-k", o->top_k, "top-k (0: off)");
  sub->add_option("--top-p", o->top_p, "top-p (1: off)");
  sub->add_option("--min-p", o->min_p, "min-p (0: off)");
  sub->add_option("--repeat-penalty", o->repeat_penalty, "repetition penalty (1: off)");
  sub->add_option("--repeat-last-n", o->repeat_last_n, "tokens the penalties look back at (-1: all)");
  sub->add_option("--frequency-penalty", o->freq_penalty, "frequency penalty");
  sub->add_option("--presence-penalty", o->presence_penalty, "presence penalty");
  sub->add_option("-s,--seed", o->seed, "random seed (-1: random)");
  sub->add_option("--stop", o->stop, "stop string (repeatable)");
  sub->add_flag("--no-bos", o->no_bos, "do not add BOS even if the model's tokenizer asks for it");
  sub->add_flag("--ignore-eos", o->ignore_eos, "keep generating past EOS");
  sub->add_flag("--json", o->json, "print one JSON object instead of streaming text");
  sub->add_option("--draft", o->draft, "speculative decoding with this draft model (same vocabulary)");
  sub->add_option("--threads-draft", o->draft_threads,
                  "threads for the draft model (0: 1 for a draft of at most 10 MiB of weights, else as -t)")
      ->check(CLI::Range(0, 1024));
  sub->add_option("--draft-max", o->draft_max, "most tokens drafted per verification pass")->check(CLI::Range(1, 64));
  sub->add_option("--draft-min", o->draft_min,
                  "fewest tokens drafted per speculative pass (= --draft-max: fixed length, no adaptation)")
      ->check(CLI::Range(0, 64));
  sub->add_option("--lookup", o->lookup, "speculative decoding by prompt lookup: match n-grams of up to N tokens")
      ->check(CLI::Range(1, 64));
  sub->add_flag("--compare", o->compare, "also decode plainly (not streamed) and report the speedup");
  sub->add_option("--compare-reps", o->compare_reps, "with --compare: alternate N plain and N speculative runs, compare medians")
      ->check(CLI::Range(1, 1000));
  sub->add_flag("--profile", o->profile,
                "time per op (tokenizer, each matmul by tensor name, attention, norm, rope, sampling), printed to "
                "stderr at the end (with --compare: the last, speculative run only)");
  sub->add_option("--trace", o->trace, "write a Chrome trace (opens in Perfetto) of the same run to this file");

  return [o]() {
    std::string model_path = o->mf.model.empty() ? default_model_path() : o->mf.model;
    std::string prompt = o->prompt;
    if (!o->prompt_file.empty()) prompt = read_text_file(o->prompt_file);
    ModelLoadOptions lo;
    lo.tokenizer_path = o->mf.tokenizer;
    auto model = Model::load(model_path, lo);

    GenerateOptions g;
    g.n_predict = o->n_predict;
    g.stop = o->stop;
    g.stop_at_eos = !o->ignore_eos;
    g.context_shift = o->context_shift;
    g.keep = o->keep;
    check(o->keep >= 0, "--keep must be >= 0");
    SamplingParams& s = g.sampling;
    s = model_sampling_defaults(model_path);
    if (o->temp) s.temperature = *o->temp;
    if (o->top_k) s.top_k = *o->top_k;
    if (o->top_p) s.top_p = *o->top_p;
    if (o->min_p) s.min_p = *o->min_p;
    if (o->repeat_penalty) s.repeat_penalty = *o->repeat_penalty;
    s.penalty_last_n = o->repeat_last_n;
    s.frequency_penalty = o->freq_penalty;
    s.presence_penalty = o->presence_penalty;
    s.seed = o->seed >= 0 ? uint64_t(o->seed) : std::random_device{}();

    SessionOptions so;
    so.n_ctx = o->n_ctx;
    so.n_threads = o->n_threads;
    so.n_batch = o->n_batch;
    so.kv_type = kv_type_from_string(o->kv_type);
    so.kv_mem_mib = o->kv_mem;
    Session session(model, so);
    // --profile / --trace: from tokenization on; paused during --compare's other runs.
    if (o->profile || !o->trace.empty()) profile::enable(true, !o->trace.empty());
    std::vector<int32_t> prompt_ids = model->tokenize(prompt, model->add_bos() && !o->no_bos);

    if (!o->prompt_cache.empty()) {
      // Load the file when present, reuse its common prefix with this prompt, evaluate the rest
      // of the prompt but its last token (generate evaluates that one), save for next time.
      int loaded = 0;
      if (FILE* f = std::fopen(o->prompt_cache.c_str(), "rb")) {
        std::fclose(f);
        loaded = session.load_state(o->prompt_cache);
      }
      const int reused = session.reuse_prefix(prompt_ids);
      if (reused + 1 < int(prompt_ids.size()))
        session.eval(std::span<const int32_t>(prompt_ids.data() + reused, prompt_ids.size() - 1 - reused));
      session.save_state(o->prompt_cache);
      std::fprintf(stderr, "prompt cache %s: %d tokens loaded, %d reused, %zu evaluated, saved %d\n",
                   o->prompt_cache.c_str(), loaded, reused, prompt_ids.size() - reused, session.n_past());
      g.reuse_cached_prefix = true;
    }
    const bool speculative = !o->draft.empty() || o->lookup > 0;
    check(o->draft.empty() || o->lookup == 0, "--draft and --lookup are exclusive: pick one");
    check(!o->compare || speculative, "--compare needs --draft or --lookup");
    check(o->draft_min <= o->draft_max, "--draft-min (", o->draft_min, ") exceeds --draft-max (", o->draft_max, ")");

    std::shared_ptr<const Model> draft_model;
    if (!o->draft.empty()) {
      draft_model = Model::load(o->draft);
      check_same_vocabulary(*model, *draft_model);
    }
    std::unique_ptr<Session> draft_session;
    int draft_threads = 0;  // as the draft session runs (0: all cores, as -t 0)
    if (draft_model) {
      SessionOptions dso = so;
      dso.n_threads = o->draft_threads > 0 ? o->draft_threads : default_draft_threads(*draft_model, so.n_threads);
      draft_threads = dso.n_threads;
      draft_session = std::make_unique<Session>(draft_model, dso);
    }
    SpecStats stats;
    auto run_speculative = [&](const TokenCallback& on_token) {
      session.truncate(0);
      SpeculativeOptions spec;
      spec.draft_max = o->draft_max;
      spec.draft_min = o->draft_min;
      spec.lookup_ngram = o->lookup;
      if (draft_session) {
        draft_session->truncate(0);
        spec.draft = draft_session.get();
      }
      return generate_speculative(session, prompt_ids, g, spec, on_token, &stats);
    };
    auto tok_s = [](const GenerateResult& x) { return x.gen_ms > 0 ? x.ids.size() * 1000.0 / x.gen_ms : 0.0; };

    // --compare: plain and speculative runs alternate (all silent but the last speculative one),
    // and the medians of their speeds are compared: this machine's load changes by the second.
    GenerateResult plain;
    std::vector<double> plain_speeds, spec_speeds;
    if (o->compare) {
      profile::pause(true);
      Session plain_session(model, so);
      for (int rep = 0; rep < o->compare_reps; rep++) {
        plain_session.truncate(0);
        plain = generate(plain_session, prompt_ids, g);
        plain_speeds.push_back(tok_s(plain));
        if (rep + 1 < o->compare_reps) spec_speeds.push_back(tok_s(run_speculative(nullptr)));
      }
      profile::pause(false);
    }

    TokenCallback cb = nullptr;
    if (!o->json) {
      std::fputs(prompt.c_str(), stdout);
      std::fflush(stdout);
      cb = [](int32_t, const std::string& piece) {
        std::fputs(piece.c_str(), stdout);
        std::fflush(stdout);
        return true;
      };
    }
    GenerateResult r = speculative ? run_speculative(cb) : generate(session, prompt_ids, g, cb);
    spec_speeds.push_back(tok_s(r));
    auto median = [](std::vector<double> v) {
      if (v.empty()) return 0.0;
      std::sort(v.begin(), v.end());
      return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    };
    const double plain_tok_s = median(plain_speeds), spec_tok_s = median(spec_speeds);
    const double speedup = plain_tok_s > 0 ? spec_tok_s / plain_tok_s : 0.0;
    if (o->json) {
      nlohmann::json j;
      j["prompt_ids"] = r.prompt_ids;
      j["ids"] = r.ids;
      j["text"] = r.text;
      j["stop_reason"] = r.stop_reason;
      j["seed"] = s.seed;
      j["timings"] = {{"prompt_tokens", r.prompt_ids.size()},
                      {"prompt_ms", r.prompt_ms},
                      {"gen_tokens", r.ids.size()},
                      {"gen_ms", r.gen_ms}};
      if (speculative)
        j["spec"] = {{"drafted", stats.drafted},
                     {"accepted", stats.accepted},
                     {"acceptance", stats.acceptance()},
                     {"tokens_per_pass", stats.tokens_per_pass()},
                     {"target_passes", stats.target_passes},
                     {"draft_evals", stats.draft_evals},
                     {"draft_threads", draft_threads}};
      if (o->compare)
        j["compare"] = {{"plain_tok_s", plain_tok_s},
                        {"spec_tok_s", spec_tok_s},
                        {"speedup", speedup},
                        {"runs", o->compare_reps},
                        {"plain_ids", plain.ids},
                        {"same_ids", plain.ids == r.ids}};
      std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::fputs("\n", stdout);
      const double pp = r.prompt_ms > 0 ? r.prompt_ids.size() * 1000.0 / r.prompt_ms : 0;
      std::fprintf(stderr, "\nprompt: %zu tokens, %.1f ms (%.1f tok/s) | generated: %zu tokens, %.1f ms (%.1f tok/s) | stop: %s\n",
                   r.prompt_ids.size(), r.prompt_ms, pp, r.ids.size(), r.gen_ms, tok_s(r), r.stop_reason.c_str());
      if (speculative)
        std::fprintf(stderr, "speculative: drafted %lld, accepted %lld (%.1f%%), %.2f tokens per target pass\n",
                     (long long)stats.drafted, (long long)stats.accepted, 100 * stats.acceptance(),
                     stats.tokens_per_pass());
      if (o->compare)
        std::fprintf(stderr, "compare (median of %d runs each): plain %.1f tok/s, speculative %.1f tok/s, speedup %.2fx%s\n",
                     o->compare_reps, plain_tok_s, spec_tok_s, speedup,
                     s.temperature > 0 || plain.ids == r.ids ? "" : " (greedy outputs differ)");
    }
    if (o->profile) std::fputs(profile::report().c_str(), stderr);
    if (!o->trace.empty()) profile::write_trace(o->trace);
    return 0;
  };
}

}  // namespace kite::cli
