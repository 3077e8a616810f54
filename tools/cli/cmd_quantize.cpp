// kite quantize / kite convert: write a model as GGUF with quantized (or float) weights.
//
//   kite quantize ../shared/models/zoo-teacher-34m zoo-Q4_K_M.gguf --type Q4_K_M --calib calib.txt
//   kite convert ../shared/models/zoo-teacher-34m zoo-f16.gguf --outtype f16
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "convert/export_gguf.h"
#include "convert/imatrix.h"
#include "core/error.h"
#include "core/mmap.h"
#include "kite/kite.h"
#include "quant/recipe.h"

namespace kite::cli {

namespace {

// One line, rewritten in place: [ 12/75] ########------  blk.1.attn_q.weight -> Q4_K
void progress_bar(int i, int n, const std::string& name, DType t) {
  const int width = 24, filled = n > 0 ? (i + 1) * width / n : width;
  std::fprintf(stderr, "\r[%3d/%3d] %s%s  %-28s -> %-5s", i + 1, n, std::string(filled, '#').c_str(),
               std::string(width - filled, '-').c_str(), name.c_str(), dtype_name(t));
  std::fflush(stderr);
}

void print_summary(const ExportSummary& s, const std::string& out, bool json) {
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
    std::puts(j.dump().c_str());
    return;
  }
  std::printf("%s: %.2f MiB, %.3f bits per weight (%.1f M parameters; source tensors %.2f MiB, %.1f%%)\n",
              out.c_str(), s.file_bytes / 1048576.0, s.bits_per_weight(), s.n_params / 1e6,
              s.source_bytes / 1048576.0, 100.0 * s.file_bytes / std::max<uint64_t>(1, s.source_bytes));
  for (const auto& [type, n] : s.params_by_type)
    std::printf("  %-5s %6.2f M parameters (%.1f%%)\n", type.c_str(), n / 1e6, 100.0 * n / std::max<int64_t>(1, s.n_params));
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

Imatrix calibrate(const std::shared_ptr<const Model>& model, const std::string& path, int n_ctx, int chunks,
                  int n_threads, bool hessian) {
  const std::string text = read_calibration_text(path, size_t(chunks) * n_ctx * 16);
  const std::vector<int32_t> tokens = model->tokenize(text, false);
  std::fprintf(stderr, "calibration: %zu tokens of %s\n", tokens.size(), path.c_str());
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
    bool json = false;
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
    Imatrix im;
    if (!o->calib.empty()) {
      im = calibrate(model, o->calib, o->calib_ctx, o->calib_chunks, o->n_threads, o->method == "gptq");
      eo.gptq = o->method == "gptq";
      eo.imatrix = &im;
    }
    eo.progress = progress_bar;
    print_summary(export_gguf(*model, o->out, eo), o->out, o->json);
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
