// kite quantize / kite convert: write a model as GGUF with quantized (or float) weights.
//
//   kite quantize ../shared/models/zoo-teacher-34m zoo-Q4_K_M.gguf --type Q4_K_M --calib calib.txt
//   kite convert ../shared/models/zoo-teacher-34m zoo-f16.gguf --outtype f16
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "convert/export_gguf.h"
#include "convert/imatrix.h"
#include "core/error.h"
#include "core/mmap.h"
#include "kite/kite.h"
#include "quant/recipe.h"
#include "tokenizer/tokenizer.h"

namespace kite::cli {

namespace {

constexpr int kCheckChunks = 8;  // chunks of --calib-ctx tokens per text of the calibration check

// One line, rewritten in place: [ 12/75] ########------  blk.1.attn_q.weight -> Q4_K
void progress_bar(int i, int n, const std::string& name, DType t) {
  const int width = 24, filled = n > 0 ? (i + 1) * width / n : width;
  std::fprintf(stderr, "\r[%3d/%3d] %s%s  %-28s -> %-5s", i + 1, n, std::string(filled, '#').c_str(),
               std::string(width - filled, '-').c_str(), name.c_str(), dtype_name(t));
  std::fflush(stderr);
}

void print_summary(const ExportSummary& s, const std::string& out, bool json, nlohmann::json extra = nullptr) {
  std::fprintf(stderr, "\n");
  for (const std::string& n : s.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  if (json) {
    nlohmann::json j = {{"output", out},
                        {"file_bytes", s.file_bytes},
                        {"source_bytes", s.source_bytes},
                        {"n_params", s.n_params},
                        {"bits_per_weight", s.bits_per_weight()},
                        {"params_by_type", s.params_by_type},
                        {"notes", s.notes}};
    if (!extra.is_null()) j["calibration_check"] = std::move(extra);
    std::puts(j.dump().c_str());
    return;
  }
  std::printf("%s: %.2f MiB, %.3f bits per weight (%.1f M parameters; source tensors %.2f MiB, %.1f%%)\n",
              out.c_str(), s.file_bytes / 1048576.0, s.bits_per_weight(), s.n_params / 1e6,
              s.source_bytes / 1048576.0, 100.0 * s.file_bytes / std::max<uint64_t>(1, s.source_bytes));
  for (const auto& [type, n] : s.params_by_type)
    std::printf("  %-5s %6.2f M parameters (%.1f%%)\n", type.c_str(), n / 1e6, 100.0 * n / std::max<int64_t>(1, s.n_params));
}

// Text for checking a calibrated file: samples of the unquantized model itself (temperature 1,
// no truncation, fixed seeds), n_ctx tokens each starting with BOS, so that perplexity() scores
// each as one chunk. On its own samples a model's perplexity gap measures how far a quantized
// copy moved from it (the expected log-ratio is the KL divergence), on text it has not memorized.
struct CheckText {
  std::vector<int32_t> tokens;
  int chunks = 0;
  int n_ctx = 0;
};

CheckText sample_check_text(const std::shared_ptr<const Model>& model, int n_ctx, int chunks, int n_threads) {
  CheckText c;
  c.n_ctx = n_ctx;
  Session s(model, {.n_ctx = n_ctx, .n_threads = n_threads});
  const int32_t bos = model->tokenizer().bos();
  for (int i = 0; i < chunks; i++) {
    GenerateOptions g;
    g.n_predict = n_ctx - 1;
    g.stop_at_eos = false;
    g.sampling.temperature = 1.0f;
    g.sampling.top_k = 0;
    g.sampling.top_p = 1.0f;
    g.sampling.min_p = 0.0f;
    g.sampling.seed = uint64_t(i) + 1;
    s.truncate(0);
    const GenerateResult r = generate(s, {bos}, g);
    if (int(r.ids.size()) != n_ctx - 1) break;  // the model stopped: use what is whole
    c.tokens.push_back(bos);
    c.tokens.insert(c.tokens.end(), r.ids.begin(), r.ids.end());
    c.chunks++;
    std::fprintf(stderr, "\rcheck text: sample %d/%d", i + 1, chunks);
    std::fflush(stderr);
  }
  std::fprintf(stderr, "\n");
  return c;
}

// Held-out calibration text: the last chunks of the calibration tokens, removed from `tokens`
// so that the statistics never see them; whole chunks of n_ctx for perplexity().
CheckText hold_out(const Model& model, std::vector<int32_t>& tokens, int n_ctx) {
  CheckText h;
  h.n_ctx = n_ctx;
  const int64_t total = int64_t(tokens.size()) / n_ctx;
  if (total < 2) return h;  // too short to spare any
  h.chunks = int(std::clamp<int64_t>(total / 8, 1, kCheckChunks));
  const size_t keep = tokens.size() - size_t(h.chunks) * n_ctx;
  h.tokens.assign(tokens.begin() + keep, tokens.end());
  if (model.add_bos())
    for (int c = 0; c < h.chunks; c++) h.tokens[size_t(c) * n_ctx] = model.tokenizer().bos();
  tokens.resize(keep);
  return h;
}

double check_ppl(const std::shared_ptr<const Model>& m, const CheckText& c, int n_threads) {
  Session s(m, {.n_ctx = c.n_ctx, .n_threads = n_threads});
  return perplexity(s, c.tokens, c.n_ctx, c.chunks, PerplexityMethod::Stream).ppl;
}

// Calibration statistics describe each matrix's own output error on the calibration text; what
// matters is the whole model's, on text it has not seen. The zoo teacher has memorized its
// training text (perplexity 4-25 on slices of train.txt, 48 on valid.txt): there GPTQ lowered
// every matrix's error on a train.txt slice yet raised perplexity on valid.txt for some slices
// and lowered it for others (README, quantization). So the calibrated file must beat the one
// quantized without calibration on two texts the statistics did not see: held-out calibration
// text, and the model's own samples; otherwise the plain file is kept, and the summary says
// which. On five slices of train.txt each check alone kept the worse file once or twice; the two
// together kept the plain one wherever calibration cost more than 0.05 points (README).
nlohmann::json calibrated_or_plain(const std::shared_ptr<const Model>& model, ExportOptions eo, const CheckText& held,
                                   const std::string& out, int n_threads, ExportSummary& sum) {
  const CheckText samples = sample_check_text(model, held.n_ctx, kCheckChunks, n_threads);
  if (held.chunks == 0 && samples.chunks == 0) {
    sum.notes.push_back("no text to check the calibrated weights on: kept them unchecked");
    return nullptr;
  }
  const std::string plain = out + ".plain.tmp";
  eo.imatrix = nullptr;
  eo.gptq = false;
  std::fprintf(stderr, "quantizing without calibration, for the check\n");
  ExportSummary plain_sum = export_gguf(*model, plain, eo);
  std::fprintf(stderr, "\n");
  nlohmann::json j;
  bool keep_cal = true;
  std::string what;
  {
    const auto cal_model = Model::load(out), plain_model = Model::load(plain);
    struct Check {
      const char* key;
      const char* label;
      const CheckText& text;
    };
    for (const Check& k : {Check{"heldout", "held-out calibration text", held}, Check{"samples", "the model's samples", samples}}) {
      if (k.text.chunks == 0) continue;
      const double c = check_ppl(cal_model, k.text, n_threads), p = check_ppl(plain_model, k.text, n_threads);
      keep_cal = keep_cal && c < p;
      j[k.key] = {{"tokens", k.text.tokens.size()}, {"ppl_calibrated", c}, {"ppl_plain", p}};
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s%s (%zu tokens) %.4f calibrated vs %.4f", what.empty() ? "" : "; ", k.label,
                    k.text.tokens.size(), c, p);
      what += buf;
    }
  }  // both files closed before one replaces the other
  j["kept"] = keep_cal ? "calibrated" : "plain";
  if (keep_cal) {
    std::filesystem::remove(plain);
  } else {
    std::filesystem::rename(plain, out);
    plain_sum.notes.insert(plain_sum.notes.begin(), sum.notes.begin(), sum.notes.end());
    sum = plain_sum;
  }
  sum.notes.push_back("calibration check, perplexity on " + what + " without: kept " +
                      (keep_cal ? "the calibrated weights" : "the weights quantized without calibration"));
  return j;
}

}  // namespace

// Reads a calibration text; .xz files are decompressed with xz (at most max_bytes are used).
std::string read_calibration_text(const std::string& path, size_t max_bytes) {
  std::string text;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".xz") == 0) {
    check(file_exists(path), "calibration file '", path, "' does not exist");
    const std::string cmd = "xz -dc -- '" + path + "'";
    FILE* p = popen(cmd.c_str(), "r");
    check(p != nullptr, "cannot run xz to read '", path, "'");
    char buf[1 << 16];
    size_t n;
    while (text.size() < max_bytes && (n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    pclose(p);  // xz exits on SIGPIPE once we stop reading: not an error
    check(!text.empty(), "'", path, "': xz gave no text (is xz installed and the file valid?)");
  } else {
    text = read_text_file(path);
  }
  if (text.size() > max_bytes) text.resize(max_bytes);
  return text;
}

std::vector<int32_t> calibration_tokens(const Model& model, const std::string& path, int n_ctx, int chunks) {
  const std::string text = read_calibration_text(path, size_t(chunks) * n_ctx * 16);
  std::vector<int32_t> tokens = model.tokenize(text, false);
  std::fprintf(stderr, "calibration: %zu tokens of %s\n", tokens.size(), path.c_str());
  return tokens;
}

Imatrix calibrate(const std::shared_ptr<const Model>& model, const std::vector<int32_t>& tokens, int n_ctx, int chunks,
                  int n_threads, bool hessian) {
  Imatrix im = collect_imatrix(model, tokens, n_ctx, chunks, n_threads, [](int done, int total) {
    std::fprintf(stderr, "\rcalibrating: chunk %d/%d", done, total);
    std::fflush(stderr);
  }, hessian);
  std::fprintf(stderr, "\n");
  return im;
}

Runner add_quantize(CLI::App& app) {
  auto* sub = app.add_subcommand("quantize", "write a model as a quantized GGUF");
  struct Opts {
    std::string in, out, type, calib, tokenizer, method = "gptq";
    std::vector<std::string> keep;
    int calib_chunks = 256, calib_ctx = 512, n_threads = 0;
    bool json = false, calib_check = true;
  };
  auto o = std::make_shared<Opts>();
  std::string names;
  for (const std::string& n : quant_recipe_names()) names += (names.empty() ? "" : ", ") + n;
  sub->add_option("input", o->in, "GGUF file, Hugging Face folder or llama2.c .bin")->required();
  sub->add_option("output", o->out, "output .gguf")->required();
  sub->add_option("--type", o->type, "quantization type: " + names)->required();
  sub->add_option("--calib", o->calib, "calibration text (plain or .xz): importance-weighted quantization");
  sub->add_option("--calib-chunks", o->calib_chunks, "calibration chunks of --calib-ctx tokens")->check(CLI::Range(1, 100000));
  sub->add_option("--calib-ctx", o->calib_ctx, "tokens per calibration chunk")->check(CLI::Range(8, 1 << 20));
  sub->add_option("--calib-method", o->method, "with --calib: gptq (error-compensating rounding for Q4_K/Q5_K/Q6_K, imatrix for the rest) or imatrix (importance-weighted scale search only)")
      ->check(CLI::IsMember({"gptq", "imatrix"}));
  sub->add_flag("--calib-check,!--no-calib-check", o->calib_check,
                "with --calib: keep the calibrated weights only where they beat quantizing without calibration on "
                "held-out calibration text and on the model's own samples (default on)");
  sub->add_option("--keep", o->keep, "TENSOR=TYPE: override a tensor's type (* wildcards; repeatable)");
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer file (llama2.c input)");
  sub->add_option("-t,--threads", o->n_threads, "threads (0: all cores)");
  sub->add_flag("--json", o->json, "print the summary as JSON");
  return [o]() {
    ExportOptions eo;
    eo.recipe = quant_recipe(o->type);
    for (const std::string& k : o->keep) eo.keep.push_back(parse_type_override(k));
    ModelLoadOptions lo;
    lo.tokenizer_path = o->tokenizer;
    auto model = Model::load(o->in, lo);
    eo.progress = progress_bar;
    if (o->calib.empty()) {
      print_summary(export_gguf(*model, o->out, eo), o->out, o->json);
      return 0;
    }
    // Calibration, then a check against quantizing without it (calibrated_or_plain).
    std::vector<int32_t> tokens = calibration_tokens(*model, o->calib, o->calib_ctx, o->calib_chunks);
    const CheckText held = o->calib_check ? hold_out(*model, tokens, o->calib_ctx) : CheckText{};
    Imatrix im = calibrate(model, tokens, o->calib_ctx, o->calib_chunks, o->n_threads, o->method == "gptq");
    eo.gptq = o->method == "gptq";
    eo.imatrix = &im;
    ExportSummary sum = export_gguf(*model, o->out, eo);
    std::fprintf(stderr, "\n");
    nlohmann::json check =
        o->calib_check ? calibrated_or_plain(model, eo, held, o->out, o->n_threads, sum) : nlohmann::json();
    print_summary(sum, o->out, o->json, std::move(check));
    return 0;
  };
}

Runner add_convert(CLI::App& app) {
  auto* sub = app.add_subcommand("convert", "write a Hugging Face / llama2.c / GGUF model as an F32, F16 or BF16 GGUF");
  struct Opts {
    std::string in, out, outtype = "f16", tokenizer;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("input", o->in, "Hugging Face folder, llama2.c .bin or GGUF file")->required();
  sub->add_option("output", o->out, "output .gguf")->required();
  sub->add_option("--outtype", o->outtype, "f32, f16 or bf16")->check(CLI::IsMember({"f32", "f16", "bf16"}, CLI::ignore_case));
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer file (llama2.c input)");
  sub->add_flag("--json", o->json, "print the summary as JSON");
  return [o]() {
    ExportOptions eo;
    eo.recipe = quant_recipe(o->outtype);
    ModelLoadOptions lo;
    lo.tokenizer_path = o->tokenizer;
    auto model = Model::load(o->in, lo);
    eo.progress = progress_bar;
    print_summary(export_gguf(*model, o->out, eo), o->out, o->json);
    return 0;
  };
}

}  // namespace kite::cli
