#include "convert/export_gguf.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "convert/gptq.h"
#include "convert/imatrix.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "model/model.h"
#include "quant/quant.h"
#include "tokenizer/vocab_gguf.h"

namespace kite {

namespace {

// Architecture metadata from a config (inputs that are not GGUF).
void write_config(const ModelConfig& c, GGUFWriter& w) {
  const std::string p = c.arch + ".";
  w.set_string("general.architecture", c.arch);
  if (!c.name.empty()) w.set_string("general.name", c.name);
  w.set_u32(p + "context_length", uint32_t(c.n_ctx_train));
  w.set_u32(p + "embedding_length", uint32_t(c.n_embd));
  w.set_u32(p + "block_count", uint32_t(c.n_layer));
  w.set_u32(p + "feed_forward_length", uint32_t(c.n_ff));
  w.set_u32(p + "attention.head_count", uint32_t(c.n_head));
  w.set_u32(p + "attention.head_count_kv", uint32_t(c.n_head_kv));
  if (c.head_dim * c.n_head != c.n_embd) {
    w.set_u32(p + "attention.key_length", uint32_t(c.head_dim));
    w.set_u32(p + "attention.value_length", uint32_t(c.head_dim));
  }
  w.set_u32(p + "rope.dimension_count", uint32_t(c.rope_dim));
  w.set_f32(p + "rope.freq_base", c.rope_theta);
  w.set_f32(p + "attention.layer_norm_rms_epsilon", c.rms_eps);
  w.set_u32(p + "vocab_size", uint32_t(c.n_vocab));
  if (c.rope_scaling == RopeScaling::Linear) {
    w.set_string(p + "rope.scaling.type", "linear");
    w.set_f32(p + "rope.scaling.factor", c.rope_factor);
  }
}

// Tensor order of llama.cpp's files: token_embd, blocks in numeric order, then the rest.
std::vector<const Tensor*> ordered(const std::map<std::string, Tensor>& tensors) {
  std::vector<const Tensor*> v;
  for (const auto& [name, t] : tensors) v.push_back(&t);
  auto key = [](const Tensor* t) {
    if (t->name.rfind("token_embd", 0) == 0) return std::make_pair(-1, t->name);
    if (t->name.rfind("blk.", 0) == 0) return std::make_pair(std::atoi(t->name.c_str() + 4), t->name);
    return std::make_pair(1 << 30, t->name);
  };
  std::stable_sort(v.begin(), v.end(), [&](const Tensor* a, const Tensor* b) { return key(a) < key(b); });
  return v;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// Rows of a Q or K projection from rotate_half order (per head: all first halves, then all
// second halves) to interleaved pairs: row 2i of a head <- row i, row 2i+1 <- row i + hd/2.
void permute_rope_rows(std::vector<float>& f, int64_t n_in, int64_t n_rows, int head_dim) {
  check(n_rows % head_dim == 0 && head_dim % 2 == 0, "cannot permute ", n_rows, " rows into heads of ", head_dim);
  std::vector<float> head(size_t(head_dim) * n_in);
  const int half = head_dim / 2;
  for (int64_t h = 0; h < n_rows / head_dim; h++) {
    float* base = f.data() + h * head_dim * n_in;
    std::copy(base, base + head.size(), head.begin());
    for (int i = 0; i < half; i++) {
      std::copy_n(head.data() + size_t(i) * n_in, n_in, base + size_t(2 * i) * n_in);
      std::copy_n(head.data() + size_t(i + half) * n_in, n_in, base + size_t(2 * i + 1) * n_in);
    }
  }
}

// The vocabulary as llama.cpp's converter writes it. A SentencePiece vocabulary loaded from
// tokenizer.json has merge ranks instead of the model's scores; where tokenizer.model is beside
// it, its scores and token types are the ones llama.cpp's tokenizer expects, and no merges.
VocabData vocab_for_gguf(const LoadedModel& m, VocabData v) {
  namespace fs = std::filesystem;
  const std::string spm = (fs::path(m.path) / "tokenizer.model").string();
  if (m.format != "hf" || v.type != VocabType::SPM || !fs::exists(spm)) return v;
  const VocabData sp = Tokenizer::from_sentencepiece_model(spm).vocab();
  if (sp.tokens != v.tokens) return v;  // a different vocabulary: keep tokenizer.json's
  v.scores = sp.scores;
  v.token_types = sp.token_types;
  v.merges.clear();
  return v;
}

}  // namespace

ExportSummary export_gguf(const Model& model, const std::string& out_path, const ExportOptions& opts) {
  const LoadedModel& m = model.impl();
  const ModelConfig& c = m.config;
  GGUFWriter w;
  if (m.format == "gguf") {
    auto src = GGUFFile::open(m.path);
    for (const auto& [key, v] : src->metadata())
      if (key != "general.alignment" && key != "general.file_type" && key != "general.quantization_version")
        w.set_value(key, v);
  } else {
    write_config(c, w);
    write_vocab_gguf(vocab_for_gguf(m, model.tokenizer().vocab()), w);
  }
  w.set_u32("general.file_type", opts.recipe.file_type);

  // Hugging Face llama checkpoints keep rotate_half order; llama GGUF files are interleaved.
  const bool permute = m.format != "gguf" && c.arch == "llama" && c.rope_style == RopeStyle::NeoX;

  ExportSummary sum;
  const std::vector<const Tensor*> tensors = ordered(m.tensors);
  const int n_total = int(tensors.size()) + (m.weights.rope_freq_factors.empty() || m.tensors.count("rope_freqs.weight") ? 0 : 1);
  int index = 0;
  bool any_quant = false;
  // GPTQ fits a short calibration text (gptq.h): below kGptqMinTokensPerColumn tokens per column
  // of the widest matrix it would take, every such matrix is quantized as without calibration.
  bool gptq_enough = true;
  if (opts.imatrix && opts.gptq && !opts.imatrix->hessian.empty()) {
    int64_t widest = 0;
    for (const auto& [name, h] : opts.imatrix->hessian)
      widest = std::max(widest, int64_t(std::llround(std::sqrt(double(h->size())))));
    const int64_t need = kGptqMinTokensPerColumn * widest;
    gptq_enough = opts.imatrix->tokens >= need;
    if (!gptq_enough)
      sum.notes.push_back("calibration: " + std::to_string(opts.imatrix->tokens) + " tokens, GPTQ needs " +
                          std::to_string(need) + " (" + std::to_string(kGptqMinTokensPerColumn) + " per column of a " +
                          std::to_string(widest) + "-column matrix): Q4_K/Q5_K/Q6_K matrices quantized without "
                          "calibration (a longer text, or more --calib-chunks)");
  }
  for (const Tensor* tp : tensors) {
    const Tensor& t = *tp;
    check(quant_traits(t.type) != nullptr, m.path, ": tensor '", t.name, "' has type ", dtype_name(t.type),
          ", which Kite cannot convert");
    const TensorChoice choice =
        choose_tensor_type(opts.recipe, opts.keep, t.name, t.n_dims, t.ne[0], c.n_layer);
    if (!choice.note.empty()) sum.notes.push_back(t.name + ": " + choice.note);
    const DType type = choice.type;
    any_quant |= dtype_traits(type).block_size > 1;
    const bool rope_rows = permute && (ends_with(t.name, "attn_q.weight") || ends_with(t.name, "attn_k.weight"));
    const float* importance = opts.imatrix ? opts.imatrix->find(t.name, t.ne[0]) : nullptr;
    const double* hessian = opts.imatrix && opts.gptq ? opts.imatrix->find_hessian(t.name, t.ne[0]) : nullptr;
    if (hessian && gptq_supports(type) && !gptq_enough) {
      hessian = nullptr;  // too little calibration text: as without calibration (note above)
      importance = nullptr;
    }
    sum.n_params += t.n_elements();
    sum.source_bytes += t.nbytes;
    sum.params_by_type[dtype_name(type)] += t.n_elements();
    const int my_index = index++;
    auto progress = opts.progress;
    w.add_tensor(t.name, type, t.ne, t.n_dims, [&t, type, rope_rows, importance, hessian, my_index, n_total, progress,
                                                 head_dim = c.head_dim](uint8_t* dst, size_t nbytes) {
      if (progress) progress(my_index, n_total, t.name, type);
      if (type == t.type && !rope_rows) {  // same type: the bytes as they are
        std::copy_n(static_cast<const uint8_t*>(t.data), nbytes, dst);
        return;
      }
      const int64_t n_in = t.ne[0], n_rows = t.rows();
      std::vector<float> f(size_t(n_in) * n_rows);
      for (int64_t r = 0; r < n_rows; r++) to_float(t.type, t.row(r), f.data() + r * n_in, n_in);
      for (int64_t r = 0; r < n_rows; r++)
        for (int64_t i = 0; i < n_in; i++)
          if (!std::isfinite(f[r * n_in + i]))
            fail("tensor '", t.name, "' holds a non-finite value (", f[r * n_in + i], ") in row ", r, ", column ", i,
                 ": the input is corrupted");
      if (rope_rows) permute_rope_rows(f, n_in, n_rows, head_dim);
      if (hessian && gptq_supports(type))
        gptq_quantize(type, f.data(), n_rows, n_in, hessian, dst);
      else
        quantize_rows(type, f.data(), dst, n_rows, n_in, importance);
    });
  }
  if (!m.weights.rope_freq_factors.empty() && !m.tensors.count("rope_freqs.weight")) {
    const std::vector<float>& rf = m.weights.rope_freq_factors;
    sum.n_params += int64_t(rf.size());
    sum.params_by_type["F32"] += int64_t(rf.size());
    auto progress = opts.progress;
    const int my_index = index++;
    w.add_tensor("rope_freqs.weight", DType::F32, {int64_t(rf.size()), 1, 1, 1}, 1,
                 [&rf, progress, my_index, n_total](uint8_t* dst, size_t nbytes) {
                   if (progress) progress(my_index, n_total, "rope_freqs.weight", DType::F32);
                   std::copy_n(reinterpret_cast<const uint8_t*>(rf.data()), nbytes, dst);
                 });
  }
  if (any_quant) w.set_u32("general.quantization_version", 2);
  w.write(out_path);
  sum.file_bytes = std::filesystem::file_size(out_path);
  return sum;
}

}  // namespace kite
