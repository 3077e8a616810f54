#include "model/blocks.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <span>
#include <string>

#include "core/profile.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

namespace kite {

namespace {
MatmulObserver g_observer = nullptr;
void* g_observer_ctx = nullptr;

// Products of one input (q/k/v, gate/up; or a single one) in one kernel call
// (kernels::matmul_shared_input), timed under their names joined by '+' when profiling.
void linear_shared_input(std::initializer_list<kernels::MatmulOut> outs, const float* x, int n_tok) {
  std::string label;
  for (const kernels::MatmulOut& o : outs) {
    if (g_observer) g_observer(g_observer_ctx, *o.W, x, n_tok);
    if (profile::enabled()) label += (label.empty() ? "" : "+") + o.W->name;
  }
  KITE_PROFILE("matmul", label);
  kernels::matmul_shared_input(std::span<const kernels::MatmulOut>(outs.begin(), outs.size()), x, n_tok);
}

// A matmul, timed under the weight's name when profiling.
void linear(const Tensor& W, const float* x, float* y, int n_tok) { linear_shared_input({{&W, y}}, x, n_tok); }

void rmsnorm_rows(float* out, const float* x, const float* w, int n_tok, int d, float eps) {
  KITE_PROFILE("norm", "rmsnorm");
  for (int t = 0; t < n_tok; t++) kernels::rmsnorm(out + size_t(t) * d, x + size_t(t) * d, w, d, eps);
}
}  // namespace

void set_matmul_observer(MatmulObserver fn, void* ctx) {
  g_observer = fn;
  g_observer_ctx = ctx;
}

void Scratch::reserve(const ModelConfig& c, int n_tok) {
  const size_t n = size_t(n_tok);
  x.resize(n * c.n_embd);
  xn.resize(n * c.n_embd);
  q.resize(n * c.n_head * c.head_dim);
  k.resize(n * c.n_head_kv * c.head_dim);
  v.resize(n * c.n_head_kv * c.head_dim);
  att.resize(n * c.n_head * c.head_dim);
  proj.resize(n * c.n_embd);
  gate.resize(n * c.n_ff);
  up.resize(n * c.n_ff);
}

void embed_tokens(const Tensor& tok_embd, const int32_t* tokens, int n_tok, float* x) {
  const int64_t d = tok_embd.ne[0];
  for (int t = 0; t < n_tok; t++) to_float(tok_embd.type, tok_embd.row(tokens[t]), x + t * d, d);
}

namespace {
// The rotation angles' cos and sin for positions pos0 .. pos0+n_tok-1, [n_tok][rope_dim/2] each.
// A forward pass rotates q and k of every layer at the same positions, so the table is kept
// per thread and recomputed only when the positions or the model change (the std::pow / cos /
// sin per pair cost ~1% of a small model's decode step when done for each call).
struct RopeTable {
  // What the table was computed for: the values (not the model's address, which a later model
  // can reuse).
  float theta = 0, factor = 0;
  int rope_dim = 0, pos0 = 0, n_tok = -1;
  RopeScaling scaling = RopeScaling::None;
  std::vector<float> freq_factors;
  std::vector<float> cs, sn;

  void ensure(const ModelConfig& cfg, const std::vector<float>& ff, int p0, int nt) {
    if (n_tok == nt && pos0 == p0 && theta == cfg.rope_theta && rope_dim == cfg.rope_dim &&
        scaling == cfg.rope_scaling && factor == cfg.rope_factor && freq_factors == ff)
      return;
    theta = cfg.rope_theta;
    factor = cfg.rope_factor;
    rope_dim = cfg.rope_dim;
    scaling = cfg.rope_scaling;
    freq_factors = ff;
    pos0 = p0;
    n_tok = nt;
    const int half = cfg.rope_dim / 2;
    // Frequencies as Hugging Face computes them, in float32: inv_freq_i = 1 / theta^(2i/d).
    std::vector<float> inv_freq(half);
    for (int i = 0; i < half; i++) {
      inv_freq[i] = 1.0f / std::pow(cfg.rope_theta, float(2 * i) / float(cfg.rope_dim));
      if (!ff.empty()) inv_freq[i] /= ff[i];
    }
    cs.resize(size_t(nt) * half);
    sn.resize(size_t(nt) * half);
    for (int t = 0; t < nt; t++) {
      float pos = float(p0 + t);
      if (cfg.rope_scaling == RopeScaling::Linear) pos /= cfg.rope_factor;
      for (int i = 0; i < half; i++) {
        const float a = pos * inv_freq[i];
        cs[size_t(t) * half + i] = std::cos(a);
        sn[size_t(t) * half + i] = std::sin(a);
      }
    }
  }
};
}  // namespace

void apply_rope(const ModelConfig& c, const std::vector<float>& freq_factors, float* x, int n_tok,
                int n_heads, int pos0) {
  const int hd = c.head_dim, half = c.rope_dim / 2;
  thread_local RopeTable table;
  table.ensure(c, freq_factors, pos0, n_tok);
  for (int t = 0; t < n_tok; t++) {
    const float* cs = table.cs.data() + size_t(t) * half;
    const float* sn = table.sn.data() + size_t(t) * half;
    for (int h = 0; h < n_heads; h++) {
      float* v = x + (size_t(t) * n_heads + h) * hd;
      for (int i = 0; i < half; i++) {
        // Interleaved pairs (2i, 2i+1) or NeoX pairs (i, i + rope_dim/2).
        const int a = c.rope_style == RopeStyle::Interleaved ? 2 * i : i;
        const int b = c.rope_style == RopeStyle::Interleaved ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
      }
    }
  }
}

void attention(const ModelConfig& c, const KVCache& cache, int layer, const float* q, int n_tok,
               int pos0, float* out, kernels::AttnImpl impl) {
  kernels::AttnShape sh;
  sh.n_tok = n_tok;
  sh.n_head = c.n_head;
  sh.n_head_kv = c.n_head_kv;
  sh.head_dim = c.head_dim;
  sh.pos0 = pos0;
  sh.scale = 1.0f / std::sqrt(float(c.head_dim));
  if (impl == kernels::AttnImpl::Naive)
    kernels::naive_attention(sh, q, cache.layer(layer), out);
  else
    kernels::flash_attention(sh, q, cache.layer(layer), out);
}

void attention_block(const ModelConfig& c, const ModelWeights& w, const LayerWeights& l, KVCache& cache,
                     int layer, int n_tok, int pos0, Scratch& s) {
  const int d = c.n_embd, q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  rmsnorm_rows(s.xn.data(), s.x.data(), l.attn_norm, n_tok, d, c.rms_eps);
  linear_shared_input({{l.wq, s.q.data()}, {l.wk, s.k.data()}, {l.wv, s.v.data()}}, s.xn.data(), n_tok);
  if (l.bq) {
    for (int t = 0; t < n_tok; t++) {
      for (int i = 0; i < q_dim; i++) s.q[size_t(t) * q_dim + i] += l.bq[i];
      for (int i = 0; i < kv_dim; i++) s.k[size_t(t) * kv_dim + i] += l.bk[i];
      for (int i = 0; i < kv_dim; i++) s.v[size_t(t) * kv_dim + i] += l.bv[i];
    }
  }
  {
    KITE_PROFILE("rope", "rope");
    apply_rope(c, w.rope_freq_factors, s.q.data(), n_tok, c.n_head, pos0);
    apply_rope(c, w.rope_freq_factors, s.k.data(), n_tok, c.n_head_kv, pos0);
  }
  cache.store(layer, pos0, n_tok, s.k.data(), s.v.data());
  {
    KITE_PROFILE("attention", "attention");
    attention(c, cache, layer, s.q.data(), n_tok, pos0, s.att.data(), kernels::attention_impl());
  }
  linear(*l.wo, s.att.data(), s.proj.data(), n_tok);
  for (size_t i = 0; i < size_t(n_tok) * d; i++) s.x[i] += s.proj[i];
}

void ffn_block(const ModelConfig& c, const LayerWeights& l, int n_tok, Scratch& s) {
  const int d = c.n_embd;
  rmsnorm_rows(s.xn.data(), s.x.data(), l.ffn_norm, n_tok, d, c.rms_eps);
  linear_shared_input({{l.w_gate, s.gate.data()}, {l.w_up, s.up.data()}}, s.xn.data(), n_tok);
  {
    KITE_PROFILE("ffn", "swiglu");
    // The SIMD kernel (exp within ~2 ulp): the scalar std::exp loop took ~4% of a decode step.
    kernels::silu_mul(s.gate.data(), s.gate.data(), s.up.data(), n_tok * c.n_ff);
  }
  linear(*l.w_down, s.gate.data(), s.proj.data(), n_tok);
  for (size_t i = 0; i < size_t(n_tok) * d; i++) s.x[i] += s.proj[i];
}

void output_logits(const ModelConfig& c, const ModelWeights& w, int n_tok, bool all_logits, Scratch& s,
                   std::vector<float>& logits) {
  const int d = c.n_embd;
  const int first = all_logits ? 0 : n_tok - 1;
  const int n_out = n_tok - first;
  for (int t = first; t < n_tok; t++)
    kernels::rmsnorm(s.xn.data() + size_t(t - first) * d, s.x.data() + size_t(t) * d, w.output_norm, d,
                     c.rms_eps);
  logits.resize(size_t(n_out) * c.n_vocab);
  linear(*w.output, s.xn.data(), logits.data(), n_out);
}

}  // namespace kite
