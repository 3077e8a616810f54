// kite perplexity: score a text file.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "core/mmap.h"
#include "kite/kite.h"

namespace kite::cli {

Runner add_perplexity(CLI::App& app) {
  auto* sub = app.add_subcommand("perplexity", "perplexity of a text file");
  struct Opts {
    ModelFlags mf;
    std::string file, method = "llama", kv_type = "f32";
    int n_ctx = 512, chunks = -1, n_threads = 0, n_batch = 512;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(sub, o->mf);
  sub->add_option("-f,--file", o->file, "text file")->required();
  sub->add_option("-c,--ctx-size", o->n_ctx, "tokens per chunk");
  sub->add_option("--chunks", o->chunks, "at most this many chunks (-1: all)");
  sub->add_option("--method", o->method, "llama (llama.cpp's: score the second half of each chunk) or stream (score all)")
      ->check(CLI::IsMember({"llama", "stream"}));
  sub->add_option("-t,--threads", o->n_threads, "threads (0: all cores)");
  sub->add_option("-b,--batch-size", o->n_batch, "tokens per forward pass");
  sub->add_option("--kv-type", o->kv_type, "KV cache type: f32, f16, bf16, q8_0");
  sub->add_flag("--json", o->json, "print one JSON object");

  return [o]() {
    check(!o->mf.model.empty(), "perplexity: -m MODEL is required");
    ModelLoadOptions lo;
    lo.tokenizer_path = o->mf.tokenizer;
    auto model = Model::load(o->mf.model, lo);
    const std::string text = read_text_file(o->file);
    std::vector<int32_t> tokens = model->tokenize(text, true);
    SessionOptions so;
    so.n_ctx = o->n_ctx;
    so.n_threads = o->n_threads;
    so.n_batch = o->n_batch;
    so.kv_type = kv_type_from_string(o->kv_type);
    Session session(model, so);
    const auto method = o->method == "stream" ? PerplexityMethod::Stream : PerplexityMethod::Llama;
    std::fprintf(stderr, "perplexity: %zu tokens, chunks of %d, method %s, KV cache %s %.2f MiB\n", tokens.size(),
                 o->n_ctx, o->method.c_str(), kv_type_name(so.kv_type), session.kv_bytes() / 1048576.0);
    auto progress = [](int done, int total, double ppl) {
      std::fprintf(stderr, "\r[%d/%d] ppl %.4f", done, total, ppl);
      std::fflush(stderr);
    };
    PerplexityResult r = perplexity(session, tokens, o->n_ctx, o->chunks, method, progress);
    std::fprintf(stderr, "\n");
    if (o->json) {
      nlohmann::json j = {{"ppl", r.ppl}, {"chunks", r.chunks}, {"tokens_scored", r.tokens_scored},
                          {"method", o->method}, {"ctx", o->n_ctx},
                          {"kv_type", kv_type_name(so.kv_type)}, {"kv_bytes", session.kv_bytes()}};
      std::puts(j.dump().c_str());
    } else {
      std::printf("ppl = %.4f over %d chunks (%lld tokens scored)\n", r.ppl, r.chunks,
                  static_cast<long long>(r.tokens_scored));
    }
    return 0;
  };
}

}  // namespace kite::cli
