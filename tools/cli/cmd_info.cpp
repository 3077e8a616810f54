// kite info: what a model file holds and what it needs.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

namespace kite::cli {

Runner add_info(CLI::App& app) {
  auto* sub = app.add_subcommand("info", "architecture, shapes, tensor types, tokenizer, memory");
  struct Opts {
    ModelFlags mf;
    int n_ctx = 0;
    std::string kv_type = "f32";
    bool json = false, tensors = false;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(sub, o->mf);
  sub->add_option("-c,--ctx-size", o->n_ctx, "context size for the KV-cache estimate (0: the model's)");
  sub->add_option("--kv-type", o->kv_type, "KV cache type for the estimate: f32, f16, bf16, q8_0");
  sub->add_flag("--tensors", o->tensors, "list every tensor");
  sub->add_flag("--json", o->json, "print JSON");
  return [o]() {
    check(!o->mf.model.empty(), "info: -m MODEL is required");
    LoadOptions lo;
    lo.tokenizer_path = o->mf.tokenizer;
    auto m = load_model(o->mf.model, lo);
    const ModelConfig& c = m->config;
    const int n_ctx = o->n_ctx > 0 ? o->n_ctx : c.n_ctx_train;
    const DType kv_type = kv_type_from_name(o->kv_type);
    check(kernels::attn_kv_type_supported(kv_type, c.head_dim), "KV cache type ", o->kv_type,
          " needs head_dim % 32 == 0 (this model: ", c.head_dim, ")");
    const double kv_bytes = double(KVCache::bytes_for(c.n_layer, n_ctx, c.n_head_kv, c.head_dim, kv_type));
    std::map<std::string, std::pair<int, size_t>> by_type;
    int64_t n_params = 0;
    for (const auto& [name, t] : m->tensors) {
      auto& e = by_type[dtype_name(t.type)];
      e.first++;
      e.second += t.nbytes;
      n_params += t.n_elements();
    }
    const VocabData& v = m->tokenizer->vocab();
    const char* tok_type = v.type == VocabType::SPM ? "SentencePiece BPE" : "byte-level BPE";
    const char* rope = c.rope_style == RopeStyle::NeoX ? "neox" : "interleaved";
    if (o->json) {
      nlohmann::json j = {
          {"path", m->path}, {"format", m->format}, {"arch", c.arch}, {"name", c.name},
          {"n_vocab", c.n_vocab}, {"n_embd", c.n_embd}, {"n_layer", c.n_layer}, {"n_head", c.n_head},
          {"n_head_kv", c.n_head_kv}, {"head_dim", c.head_dim}, {"n_ff", c.n_ff}, {"n_ctx_train", c.n_ctx_train},
          {"rope_theta", c.rope_theta}, {"rope_style", rope}, {"rms_eps", c.rms_eps},
          {"tied_embeddings", c.tied_embeddings}, {"n_params", n_params}, {"weight_bytes", m->weight_bytes()},
          {"kv_cache_bytes", kv_bytes}, {"kv_type", o->kv_type}, {"ctx", n_ctx},
          {"tokenizer", {{"type", tok_type}, {"n_vocab", m->tokenizer->n_vocab()}, {"bos", v.bos}, {"eos", v.eos},
                         {"add_bos", v.add_bos}, {"pre", v.pre}}}};
      for (auto& [t, e] : by_type) j["tensor_types"][t] = {{"count", e.first}, {"bytes", e.second}};
      std::puts(j.dump(2).c_str());
      return 0;
    }
    std::printf("model      %s (%s)\n", m->path.c_str(), m->format.c_str());
    std::printf("arch       %s%s%s\n", c.arch.c_str(), c.name.empty() ? "" : "  name: ", c.name.c_str());
    std::printf("shape      vocab %d, embd %d, layers %d, heads %d (kv %d), head_dim %d, ffn %d\n", c.n_vocab,
                c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.head_dim, c.n_ff);
    std::printf("rope       theta %g, %s, dims %d%s\n", c.rope_theta, rope, c.rope_dim,
                m->weights.rope_freq_factors.empty() ? "" : ", frequency factors");
    std::printf("context    trained %d\n", c.n_ctx_train);
    std::printf("embedding  %s\n", c.tied_embeddings ? "tied (output = token_embd)" : "untied");
    std::printf("params     %.2f M\n", n_params / 1e6);
    for (auto& [t, e] : by_type) std::printf("tensors    %-5s %4d tensors, %10.2f MiB\n", t.c_str(), e.first, e.second / 1048576.0);
    std::printf("tokenizer  %s, %d tokens, bos %d, eos %d, add_bos %s%s%s\n", tok_type, m->tokenizer->n_vocab(), v.bos,
                v.eos, v.add_bos ? "yes" : "no", v.pre.empty() ? "" : ", pre ", v.pre.c_str());
    std::printf("memory     weights %.2f MiB + KV cache %.2f MiB at context %d (%s)\n", m->weight_bytes() / 1048576.0,
                kv_bytes / 1048576.0, n_ctx, o->kv_type.c_str());
    if (o->tensors)
      for (const auto& [name, t] : m->tensors)
        std::printf("  %-32s %-5s %s\n", name.c_str(), dtype_name(t.type), t.shape_str().c_str());
    return 0;
  };
}

}  // namespace kite::cli
