// Turns a model file (GGUF, Hugging Face folder, llama2.c .bin) into a LoadedModel:
// configuration + tokenizer + weights named as GGUF names them, checked against the config.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/huge_pages.h"
#include "core/mmap.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "quant/quant.h"

namespace kite {

namespace fs = std::filesystem;

size_t LoadedModel::weight_bytes() const {
  size_t n = 0;
  for (const auto& [name, t] : tensors) n += t.nbytes;
  return n;
}

std::vector<float> llama3_rope_freq_factors(const ModelConfig& c) {
  // Llama 3.1 scaling: long wavelengths are slowed by `factor`, short ones kept, and the band in
  // between is interpolated smoothly. Expressed as a divisor of each base frequency.
  const int n = c.rope_dim / 2;
  std::vector<float> f(n, 1.0f);
  const double low_wavelen = c.rope_orig_ctx / c.rope_low_freq_factor;
  const double high_wavelen = c.rope_orig_ctx / c.rope_high_freq_factor;
  for (int i = 0; i < n; i++) {
    const double inv_freq = 1.0 / std::pow(double(c.rope_theta), 2.0 * i / c.rope_dim);
    const double wavelen = 2 * M_PI / inv_freq;
    double scaled;
    if (wavelen < high_wavelen) scaled = inv_freq;
    else if (wavelen > low_wavelen) scaled = inv_freq / c.rope_factor;
    else {
      const double smooth = (c.rope_orig_ctx / wavelen - c.rope_low_freq_factor) /
                            (c.rope_high_freq_factor - c.rope_low_freq_factor);
      scaled = (1 - smooth) * inv_freq / c.rope_factor + smooth * inv_freq;
    }
    f[i] = float(inv_freq / scaled);
  }
  return f;
}

namespace {

std::string hf_to_gguf_name(const std::string& hf) {
  static const std::pair<const char*, const char*> kTop[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  for (auto [a, b] : kTop)
    if (hf == a) return b;
  static const std::string kPrefix = "model.layers.";
  if (hf.rfind(kPrefix, 0) != 0) return "";
  size_t dot = hf.find('.', kPrefix.size());
  if (dot == std::string::npos) return "";
  const std::string layer = hf.substr(kPrefix.size(), dot - kPrefix.size());
  const std::string rest = hf.substr(dot + 1);
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  for (auto [a, b] : kLayer)
    if (rest == a) return "blk." + layer + "." + b;
  return "";
}

void load_hf(LoadedModel& m, const std::string& dir) {
  const std::string cfg_path = dir + "/config.json";
  check(file_exists(cfg_path), dir, ": not a model folder (no config.json)");
  m.config = read_hf_config(cfg_path);
  m.config.rope_style = RopeStyle::NeoX;  // HF keeps q/k in rotate_half layout
  auto st = std::shared_ptr<SafeTensors>(SafeTensors::open_dir(dir).release());
  for (const auto& [name, t] : st->tensors()) {
    std::string g = hf_to_gguf_name(name);
    if (g.empty()) continue;  // e.g. rotary_emb.inv_freq
    Tensor v = t;
    v.name = g;
    m.tensors[g] = v;
  }
  m.storage.push_back(st);
  m.tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_hf_dir(dir));
}

ModelConfig gguf_config(const GGUFFile& g) {
  ModelConfig c;
  const std::string arch = g.get_string("general.architecture");
  if (arch != "llama" && arch != "qwen2" && arch != "mistral")
    fail(g.path(), ": general.architecture = '", arch, "' is not supported (llama, mistral, qwen2)");
  c.arch = arch == "mistral" ? "llama" : arch;
  c.name = g.get_string("general.name", "");
  const std::string p = arch + ".";
  c.n_embd = int(g.get_int(p + "embedding_length"));
  c.n_layer = int(g.get_int(p + "block_count"));
  c.n_ff = int(g.get_int(p + "feed_forward_length"));
  c.n_head = int(g.get_int(p + "attention.head_count"));
  c.n_head_kv = int(g.get_int(p + "attention.head_count_kv", c.n_head));
  c.n_ctx_train = int(g.get_int(p + "context_length", 2048));
  c.rms_eps = float(g.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_theta = float(g.get_float(p + "rope.freq_base", 10000.0));
  check(c.n_head > 0 && c.n_embd > 0 && c.n_layer > 0 && c.n_ff > 0, g.path(),
        ": metadata gives a non-positive size (embedding_length ", c.n_embd, ", block_count ", c.n_layer,
        ", feed_forward_length ", c.n_ff, ", head_count ", c.n_head, ")");
  c.head_dim = int(g.get_int(p + "attention.key_length", c.n_embd / c.n_head));
  c.rope_dim = int(g.get_int(p + "rope.dimension_count", c.head_dim));
  const std::string scaling = g.get_string(p + "rope.scaling.type", "none");
  if (scaling == "linear") {
    c.rope_scaling = RopeScaling::Linear;
    c.rope_factor = float(g.get_float(p + "rope.scaling.factor", 1.0));
  } else if (scaling != "none") {
    fail(g.path(), ": metadata '", p, "rope.scaling.type' = '", scaling, "' is not supported");
  }
  // llama.cpp permutes Q/K of llama files into interleaved-pair RoPE order; qwen2 files keep NeoX.
  c.rope_style = c.arch == "llama" ? RopeStyle::Interleaved : RopeStyle::NeoX;
  c.attn_bias = c.arch == "qwen2";
  if (const Tensor* e = g.find_tensor("token_embd.weight")) c.n_vocab = int(e->ne[1]);
  return c;
}

void load_gguf(LoadedModel& m, const std::string& path) {
  auto g = std::shared_ptr<GGUFFile>(GGUFFile::open(path).release());
  m.config = gguf_config(*g);
  for (const Tensor& t : g->tensors()) m.tensors[t.name] = t;
  m.storage.push_back(g);
  m.mapped_files.push_back(g->file());
  m.tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_gguf(*g));
}

void load_llama2c(LoadedModel& m, const std::string& path, const LoadOptions& opts) {
  auto ck = std::make_shared<Llama2cCheckpoint>(kite::load_llama2c(path));
  m.config = ck->config;
  m.tensors = ck->tensors;
  m.storage.push_back(ck);
  std::string tok = opts.tokenizer_path;
  if (tok.empty()) {
    const fs::path dir = fs::path(path).parent_path();
    for (const char* cand : {"tokenizer.bin", "tok512.bin"})
      if (file_exists((dir / cand).string())) { tok = (dir / cand).string(); break; }
  }
  check(!tok.empty(), path, ": llama2.c checkpoint needs a tokenizer: pass --tokenizer FILE (tokenizer.bin)");
  m.tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_llama2c(tok));
}

const Tensor* need(LoadedModel& m, const std::string& name, int64_t ne0, int64_t ne1) {
  auto it = m.tensors.find(name);
  if (it == m.tensors.end()) fail(m.path, ": missing tensor '", name, "'");
  const Tensor& t = it->second;
  const int64_t want_dims = ne1 > 0 ? 2 : 1;
  bool ok = t.ne[0] == ne0 && (ne1 <= 0 ? t.rows() == 1 : t.ne[1] == ne1 && t.ne[2] == 1 && t.ne[3] == 1);
  if (!ok)
    fail(m.path, ": tensor '", name, "' has shape ", t.shape_str(), ", the config implies [", ne0,
         want_dims == 2 ? ", " + std::to_string(ne1) : std::string(), "]");
  const QuantTraits* q = quant_traits(t.type);
  check(q != nullptr && dtype_traits(t.type).supported, m.path, ": tensor '", name, "' has type ",
        dtype_name(t.type), ", which Kite cannot compute with yet");
  return &t;
}

const float* need_f32(LoadedModel& m, const std::string& name, int64_t n) {
  const Tensor* t = need(m, name, n, 0);
  auto v = std::make_unique<std::vector<float>>(n);
  to_float(t->type, t->data, v->data(), n);
  m.f32_copies.push_back(std::move(v));
  return m.f32_copies.back()->data();
}

void bind_weights(LoadedModel& m) {
  ModelConfig& c = m.config;
  if (c.n_vocab == 0) {
    auto it = m.tensors.find("token_embd.weight");
    if (it != m.tensors.end()) c.n_vocab = int(it->second.ne[1]);
  }
  check(c.n_vocab > 0, m.path, ": cannot tell the vocabulary size (no token_embd.weight)");
  check(c.n_head_kv > 0 && c.n_head % c.n_head_kv == 0, m.path, ": head_count ", c.n_head,
        " is not a multiple of head_count_kv ", c.n_head_kv);
  if (c.head_dim == 0) c.head_dim = c.n_embd / c.n_head;
  if (c.rope_dim == 0) c.rope_dim = c.head_dim;
  check(c.rope_dim % 2 == 0 && c.rope_dim <= c.head_dim, m.path, ": rope dimension ", c.rope_dim,
        " must be even and at most head_dim ", c.head_dim);
  check(m.tokenizer->n_vocab() <= c.n_vocab, m.path, ": tokenizer has ", m.tokenizer->n_vocab(),
        " tokens but the embedding only ", c.n_vocab, " rows");

  const int q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  ModelWeights& w = m.weights;
  w.tok_embd = need(m, "token_embd.weight", c.n_embd, c.n_vocab);
  w.output_norm = need_f32(m, "output_norm.weight", c.n_embd);
  if (m.tensors.count("output.weight")) {
    w.output = need(m, "output.weight", c.n_embd, c.n_vocab);
    c.tied_embeddings = false;
  } else {
    w.output = w.tok_embd;
    c.tied_embeddings = true;
  }
  w.layers.resize(c.n_layer);
  for (int i = 0; i < c.n_layer; i++) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& l = w.layers[i];
    l.attn_norm = need_f32(m, p + "attn_norm.weight", c.n_embd);
    l.wq = need(m, p + "attn_q.weight", c.n_embd, q_dim);
    l.wk = need(m, p + "attn_k.weight", c.n_embd, kv_dim);
    l.wv = need(m, p + "attn_v.weight", c.n_embd, kv_dim);
    l.wo = need(m, p + "attn_output.weight", q_dim, c.n_embd);
    if (c.attn_bias || m.tensors.count(p + "attn_q.bias")) {
      l.bq = need_f32(m, p + "attn_q.bias", q_dim);
      l.bk = need_f32(m, p + "attn_k.bias", kv_dim);
      l.bv = need_f32(m, p + "attn_v.bias", kv_dim);
    }
    l.ffn_norm = need_f32(m, p + "ffn_norm.weight", c.n_embd);
    l.w_gate = need(m, p + "ffn_gate.weight", c.n_embd, c.n_ff);
    l.w_up = need(m, p + "ffn_up.weight", c.n_embd, c.n_ff);
    l.w_down = need(m, p + "ffn_down.weight", c.n_ff, c.n_embd);
  }
  if (auto it = m.tensors.find("rope_freqs.weight"); it != m.tensors.end()) {
    const float* f = need_f32(m, "rope_freqs.weight", c.rope_dim / 2);
    w.rope_freq_factors.assign(f, f + c.rope_dim / 2);
  } else if (c.rope_scaling == RopeScaling::Llama3) {
    w.rope_freq_factors = llama3_rope_freq_factors(c);
  }
}

// Gives every matrix of the forward pass the matmul kernels' packed layout where the active
// kernel level has one (kernels::packed_bytes / pack_into: AVX-512 with Q8_0/Q4_0, kernels 2-4x
// faster in cache, whole-model Q4_0 decode +12-15%; float matrices a plain copy), all in one
// arena of anonymous memory on huge pages (core/huge_pages.h: decode streams it start to end, and
// small matrices on 4 KiB pages of the file mapping cost a prefetcher restart every 4 KiB). The
// file stays mapped for everything else (embedding rows, export), and this process's pages of the
// packed matrices are dropped (read again from the file if something needs them).
// KITE_REPACK=0 in the environment keeps the file layout (to measure what packing gives).
void pack_matmul_weights(LoadedModel& m) {
  if (const char* e = std::getenv("KITE_REPACK"); e && std::strcmp(e, "0") == 0) return;
  std::vector<const Tensor*> mats{m.weights.output};
  for (const LayerWeights& l : m.weights.layers)
    mats.insert(mats.end(), {l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down});
  std::vector<std::pair<Tensor*, size_t>> todo;  // matrix, offset in the arena
  size_t total = 0;
  for (const Tensor* t : mats) {
    Tensor& w = m.tensors.at(t->name);  // the map's tensor, which the weights point to
    bool seen = false;                   // tied or shared matrices appear twice
    for (const auto& [p, off] : todo) seen = seen || p == &w;
    const size_t bytes = seen ? 0 : kernels::packed_bytes(w);
    if (bytes == 0) continue;
    todo.emplace_back(&w, total);
    total += (bytes + 4095) / 4096 * 4096;  // page-aligned starts: a matrix's rows begin on a page
  }
  if (total == 0) return;
  uint8_t* arena = static_cast<uint8_t*>(alloc_streaming(total, "the packed weights"));
  m.storage.push_back(std::shared_ptr<void>(arena, std::free));
  for (const auto& [w, off] : todo) {
    kernels::pack_into(*w, arena + off);
    w->packed = arena + off;
    // Without this the file pages read while packing stay resident beside the copy (twice the
    // model in RSS). The embedding's rows are still read (tied output: same tensor).
    if (w != m.weights.tok_embd)
      for (const auto& f : m.mapped_files) f->drop_pages(w->data, w->nbytes);
  }
}

}  // namespace

Tokenizer load_tokenizer(const std::string& path, const std::string& tokenizer_path) {
  if (!tokenizer_path.empty()) return load_tokenizer(tokenizer_path);
  if (is_directory(path)) return Tokenizer::from_hf_dir(path);
  check(file_exists(path), "'", path, "' does not exist");
  const std::string name = fs::path(path).filename().string();
  auto ends_with = [&](const char* suf) {
    const size_t n = std::strlen(suf);
    return name.size() >= n && name.compare(name.size() - n, n, suf) == 0;
  };
  if (ends_with(".json")) return Tokenizer::from_hf_json(path);
  if (ends_with(".model")) return Tokenizer::from_sentencepiece_model(path);
  auto f = MappedFile::open(path);
  if (f->size() >= 4 && std::memcmp(f->data(), "GGUF", 4) == 0) return Tokenizer::from_gguf(*GGUFFile::open(path));
  if (name == "tokenizer.bin" || name.rfind("tok", 0) == 0) return Tokenizer::from_llama2c(path);
  // A llama2.c checkpoint: its tokenizer lives beside it.
  const fs::path dir = fs::path(path).parent_path();
  for (const char* cand : {"tokenizer.bin", "tok512.bin"})
    if (file_exists((dir / cand).string())) return Tokenizer::from_llama2c((dir / cand).string());
  fail(path, ": cannot find a tokenizer (pass --tokenizer FILE)");
}

std::unique_ptr<LoadedModel> load_model(const std::string& path, const LoadOptions& opts) {
  auto m = std::make_unique<LoadedModel>();
  m->path = path;
  if (is_directory(path)) {
    m->format = "hf";
    load_hf(*m, path);
  } else {
    check(file_exists(path), "model '", path, "' does not exist");
    auto f = MappedFile::open(path);
    check(f->size() >= 4, path, ": file is too small (", f->size(), " bytes) to be a model");
    if (std::memcmp(f->data(), "GGUF", 4) == 0) {
      m->format = "gguf";
      load_gguf(*m, path);
    } else {
      m->format = "llama2c";
      load_llama2c(*m, path, opts);
    }
  }
  bind_weights(*m);
  pack_matmul_weights(*m);
  return m;
}

}  // namespace kite
