// kite gen-model: a GGUF with random weights in a real architecture's shapes and a real
// vocabulary, to measure speed at realistic sizes with nothing to download (speed does not
// depend on the weight values).
#include <cmath>
#include <cstdio>
#include <map>

#include "commands.h"
#include "core/error.h"
#include "formats/gguf_writer.h"
#include "model/config.h"
#include "model/model.h"
#include "quant/quant.h"
#include "tokenizer/vocab_gguf.h"

namespace kite::cli {

namespace {

struct Preset {
  ModelConfig c;
  const char* vocab;  // tokenizer under the shared folder
};

const std::map<std::string, Preset>& presets() {
  static const std::map<std::string, Preset> p = [] {
    std::map<std::string, Preset> m;
    auto mk = [](const char* name, int vocab, int embd, int layers, int heads, int kv, int ff, int ctx) {
      ModelConfig c;
      c.name = name;
      c.n_vocab = vocab; c.n_embd = embd; c.n_layer = layers; c.n_head = heads; c.n_head_kv = kv;
      c.head_dim = embd / heads; c.rope_dim = c.head_dim; c.n_ff = ff; c.n_ctx_train = ctx;
      return c;
    };
    m["tinyllama-1.1b"] = {mk("tinyllama-1.1b (random weights)", 32000, 2048, 22, 32, 4, 5632, 2048),
                           "models/llama2_tokenizer.model"};
    m["llama-7b"] = {mk("llama-7b (random weights)", 32000, 4096, 32, 32, 32, 11008, 4096),
                     "models/llama2_tokenizer.model"};
    m["zoo-teacher"] = {mk("zoo-teacher-34m (random weights)", 8192, 512, 8, 8, 4, 1536, 1024),
                        "models/zoo-teacher-34m/tokenizer.model"};
    return m;
  }();
  return p;
}

// xorshift64*: fast, deterministic per tensor.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() { s ^= s >> 12; s ^= s << 25; s ^= s >> 27; return s * 0x2545F4914F6CDD1Dull; }
  // Approximately N(0, 1): sum of 4 uniforms, rescaled.
  float normal() {
    float u = 0;
    for (int i = 0; i < 4; i++) u += float(next() >> 40) * (1.0f / 16777216.0f);
    return (u - 2.0f) * 1.7320508f;
  }
};

}  // namespace

Runner add_gen_model(CLI::App& app) {
  auto* sub = app.add_subcommand("gen-model", "write a random-weight GGUF with a real architecture's shapes");
  struct Opts {
    std::string preset = "tinyllama-1.1b", dtype = "f16", out, vocab;
    uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  std::vector<std::string> names;
  for (auto& [k, v] : presets()) names.push_back(k);
  sub->add_option("--preset", o->preset, "model shape")->check(CLI::IsMember(names));
  sub->add_option("--dtype", o->dtype, "weight type of the matrices")->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0"}));
  sub->add_option("-o,--output", o->out, "output .gguf")->required();
  sub->add_option("--vocab", o->vocab, "tokenizer to embed (default: the preset's, from the shared folder)");
  sub->add_option("--seed", o->seed, "random seed");
  return [o]() {
    const Preset& p = presets().at(o->preset);
    const ModelConfig& c = p.c;
    std::string vocab_path = o->vocab;
    if (vocab_path.empty()) {
      const char* shared = std::getenv("KITE_SHARED");
      vocab_path = std::string(shared && *shared ? shared : "../shared") + "/" + p.vocab;
    }
    Tokenizer tok = load_tokenizer(vocab_path);
    check(tok.n_vocab() <= c.n_vocab, vocab_path, ": vocabulary of ", tok.n_vocab(), " tokens exceeds the preset's ", c.n_vocab);
    std::map<std::string, DType> types = {{"f32", DType::F32}, {"f16", DType::F16}, {"bf16", DType::BF16},
                                          {"q8_0", DType::Q8_0}, {"q4_0", DType::Q4_0}};
    const DType wt = types.at(o->dtype);

    GGUFWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", c.name);
    w.set_u32("llama.context_length", c.n_ctx_train);
    w.set_u32("llama.embedding_length", c.n_embd);
    w.set_u32("llama.block_count", c.n_layer);
    w.set_u32("llama.feed_forward_length", c.n_ff);
    w.set_u32("llama.attention.head_count", c.n_head);
    w.set_u32("llama.attention.head_count_kv", c.n_head_kv);
    w.set_u32("llama.rope.dimension_count", c.rope_dim);
    w.set_f32("llama.rope.freq_base", c.rope_theta);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", c.rms_eps);
    write_vocab_gguf(tok.vocab(), w);

    uint64_t tensor_seed = o->seed;
    int64_t n_params = 0;
    auto matrix = [&](const std::string& name, int64_t n_in, int64_t n_out) {
      const uint64_t seed = tensor_seed++;
      const float scale = 1.0f / std::sqrt(float(n_in));
      n_params += n_in * n_out;
      w.add_tensor(name, wt, {n_in, n_out, 1, 1}, 2, [=](uint8_t* dst, size_t) {
        Rng rng(seed);
        std::vector<float> row(n_in);
        const size_t rb = row_bytes(wt, n_in);
        for (int64_t r = 0; r < n_out; r++) {
          for (auto& x : row) x = rng.normal() * scale;
          from_float(wt, row.data(), dst + r * rb, n_in);
        }
      });
    };
    auto norm = [&](const std::string& name, int64_t n) {
      n_params += n;
      w.add_tensor(name, DType::F32, {n, 1, 1, 1}, 1, [=](uint8_t* dst, size_t) {
        float* f = reinterpret_cast<float*>(dst);
        for (int64_t i = 0; i < n; i++) f[i] = 1.0f;
      });
    };
    const int q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
    matrix("token_embd.weight", c.n_embd, c.n_vocab);
    for (int i = 0; i < c.n_layer; i++) {
      const std::string b = "blk." + std::to_string(i) + ".";
      norm(b + "attn_norm.weight", c.n_embd);
      matrix(b + "attn_q.weight", c.n_embd, q_dim);
      matrix(b + "attn_k.weight", c.n_embd, kv_dim);
      matrix(b + "attn_v.weight", c.n_embd, kv_dim);
      matrix(b + "attn_output.weight", q_dim, c.n_embd);
      norm(b + "ffn_norm.weight", c.n_embd);
      matrix(b + "ffn_gate.weight", c.n_embd, c.n_ff);
      matrix(b + "ffn_up.weight", c.n_embd, c.n_ff);
      matrix(b + "ffn_down.weight", c.n_ff, c.n_embd);
    }
    norm("output_norm.weight", c.n_embd);
    matrix("output.weight", c.n_embd, c.n_vocab);
    std::fprintf(stderr, "gen-model: %s, %s, %.1f M parameters -> %s\n", o->preset.c_str(), o->dtype.c_str(),
                 n_params / 1e6, o->out.c_str());
    w.write(o->out);
    return 0;
  };
}

}  // namespace kite::cli
