// kite quant-report: quantize a model to several types, measure each one's perplexity, print a
// table (type, size, bits/weight, ppl, change) and draw size against perplexity as SVG.
//
//   kite quant-report -m ../shared/models/zoo-teacher-34m -f ../shared/corpus/zoo/valid.txt
//       --calib calib.txt -o report.svg
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "convert/export_gguf.h"
#include "convert/imatrix.h"
#include "core/error.h"
#include "core/mmap.h"
#include "kite/kite.h"
#include "model/model.h"
#include "quant/recipe.h"

namespace kite::cli {

namespace {

struct Row {
  std::string type;
  uint64_t bytes = 0;
  double bpw = 0, ppl = 0, delta_pct = 0, f32_pct = 0;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) v.push_back(x);
  return v;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

// Size (MiB, x) against perplexity (y): one labelled point per type, the source as a dashed line.
std::string draw_svg(const std::string& title, const std::vector<Row>& rows, double base_ppl) {
  const double W = 720, H = 440, L = 70, R = 20, T = 40, B = 55;
  double x0 = 0, x1 = 0, y0 = base_ppl, y1 = base_ppl;
  for (const Row& r : rows) {
    x1 = std::max(x1, r.bytes / 1048576.0);
    y0 = std::min(y0, r.ppl);
    y1 = std::max(y1, r.ppl);
  }
  x1 *= 1.08;
  const double pad = std::max(1e-3, (y1 - y0) * 0.1);
  y0 -= pad;
  y1 += pad;
  auto X = [&](double v) { return L + (W - L - R) * (v - x0) / (x1 - x0); };
  auto Y = [&](double v) { return H - B - (H - T - B) * (v - y0) / (y1 - y0); };
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << xml_escape(title) << "</text>\n";
  s << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  s << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 5; i++) {
    const double xv = x0 + (x1 - x0) * i / 5, yv = y0 + (y1 - y0) * i / 5;
    s << "<text x=\"" << X(xv) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">" << xv << "</text>\n";
    s.precision(3);
    s << "<text x=\"" << L - 6 << "\" y=\"" << Y(yv) + 4 << "\" text-anchor=\"end\">" << yv << "</text>\n";
    s.precision(1);
    s << "<line x1=\"" << L << "\" y1=\"" << Y(yv) << "\" x2=\"" << W - R << "\" y2=\"" << Y(yv)
      << "\" stroke=\"#eee\"/>\n";
  }
  s << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">file size (MiB)</text>\n";
  s << "<text x=\"16\" y=\"" << (T + H - B) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
    << (T + H - B) / 2 << ")\">perplexity</text>\n";
  s << "<line x1=\"" << L << "\" y1=\"" << Y(base_ppl) << "\" x2=\"" << W - R << "\" y2=\"" << Y(base_ppl)
    << "\" stroke=\"gray\" stroke-dasharray=\"5,4\"/>\n";
  s.precision(4);
  s << "<text x=\"" << W - R - 4 << "\" y=\"" << Y(base_ppl) - 5 << "\" text-anchor=\"end\" fill=\"gray\">source "
    << base_ppl << "</text>\n";
  for (const Row& r : rows) {
    s.precision(1);
    const double cx = X(r.bytes / 1048576.0), cy = Y(r.ppl);
    s << "<circle cx=\"" << cx << "\" cy=\"" << cy << "\" r=\"4\" fill=\"#1f6feb\"/>\n";
    s.precision(2);
    s << "<text x=\"" << cx + 6 << "\" y=\"" << cy - 6 << "\">" << xml_escape(r.type) << " (" << r.bpw
      << " bpw, " << (r.delta_pct >= 0 ? "+" : "") << r.delta_pct << "%)</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace

Runner add_quant_report(CLI::App& app) {
  auto* sub = app.add_subcommand("quant-report", "quantize to several types and compare size and perplexity");
  struct Opts {
    ModelFlags mf;
    std::string file, types = "Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K", calib, svg, method = "llama", keep_dir;
    int n_ctx = 512, chunks = 40, n_threads = 0, calib_chunks = 256;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(sub, o->mf);
  sub->add_option("-f,--file", o->file, "evaluation text")->required();
  sub->add_option("--types", o->types, "comma-separated quantization types");
  sub->add_option("--calib", o->calib, "calibration text (plain or .xz) for importance-weighted quantization");
  sub->add_option("--calib-chunks", o->calib_chunks, "calibration chunks of -c tokens")->check(CLI::Range(1, 100000));
  sub->add_option("-c,--ctx-size", o->n_ctx, "tokens per perplexity chunk");
  sub->add_option("--chunks", o->chunks, "perplexity chunks (-1: all)");
  sub->add_option("--method", o->method, "perplexity method: llama or stream")->check(CLI::IsMember({"llama", "stream"}));
  sub->add_option("-o,--output", o->svg, "write the size-vs-perplexity chart here (SVG)");
  sub->add_option("--keep-files", o->keep_dir, "keep the quantized GGUFs in this folder");
  sub->add_option("-t,--threads", o->n_threads, "threads (0: all cores)");
  sub->add_flag("--json", o->json, "print one JSON object");
  return [o]() {
    check(!o->mf.model.empty(), "quant-report: -m MODEL is required");
    const std::vector<std::string> types = split(o->types);
    check(!types.empty(), "quant-report: --types is empty");
    for (const std::string& t : types) quant_recipe(t);  // fail early on an unknown name
    ModelLoadOptions lo;
    lo.tokenizer_path = o->mf.tokenizer;
    auto model = Model::load(o->mf.model, lo);
    const std::vector<int32_t> tokens = model->tokenize(read_text_file(o->file), true);
    const auto method = o->method == "stream" ? PerplexityMethod::Stream : PerplexityMethod::Llama;
    auto ppl_of = [&](const std::shared_ptr<const Model>& m, const std::string& label) {
      Session s(m, {.n_ctx = o->n_ctx, .n_threads = o->n_threads});
      return perplexity(s, tokens, o->n_ctx, o->chunks, method, [&](int done, int total, double p) {
               std::fprintf(stderr, "\r%-8s perplexity: chunk %d/%d, ppl %.4f   ", label.c_str(), done, total, p);
               std::fflush(stderr);
             }).ppl;
    };
    const double base = ppl_of(model, "source");
    std::fprintf(stderr, "\n");
    int64_t n_params = 0;
    for (const auto& [name, t] : model->impl().tensors) n_params += t.n_elements();

    Imatrix im;
    if (!o->calib.empty()) {
      const std::vector<int32_t> tokens = calibration_tokens(*model, o->calib, o->n_ctx, o->calib_chunks);
      im = calibrate(model, tokens, o->n_ctx, o->calib_chunks, o->n_threads, true);
    }

    namespace fs = std::filesystem;
    const fs::path dir = o->keep_dir.empty() ? fs::temp_directory_path() : fs::path(o->keep_dir);
    if (!o->keep_dir.empty()) fs::create_directories(dir);
    std::vector<Row> rows;
    for (const std::string& t : types) {
      ExportOptions eo;
      eo.recipe = quant_recipe(t);
      eo.imatrix = o->calib.empty() ? nullptr : &im;
      const fs::path out = dir / (o->keep_dir.empty() ? "kite-quant-report-" + std::to_string(getpid()) + "-" + eo.recipe.name + ".gguf"
                                                      : eo.recipe.name + ".gguf");
      eo.progress = [&](int i, int n, const std::string&, DType) {
        std::fprintf(stderr, "\r%-8s quantizing: tensor %d/%d          ", eo.recipe.name.c_str(), i + 1, n);
        std::fflush(stderr);
      };
      Row r;
      r.type = eo.recipe.name;
      try {
        const ExportSummary sm = export_gguf(*model, out.string(), eo);
        r.bytes = sm.file_bytes;
        r.bpw = sm.bits_per_weight();
        r.ppl = ppl_of(Model::load(out.string()), r.type);
      } catch (...) {
        if (o->keep_dir.empty()) fs::remove(out);
        throw;
      }
      if (o->keep_dir.empty()) fs::remove(out);
      r.delta_pct = 100 * (r.ppl / base - 1);
      r.f32_pct = 100.0 * r.bytes / (4.0 * n_params);
      std::fprintf(stderr, "\n");
      rows.push_back(r);
    }
    const std::string title = "Kite quantization: " + model->config().name + (o->calib.empty() ? "" : " (calibrated)");
    if (!o->svg.empty()) {
      std::ofstream f(o->svg);
      f << draw_svg(title, rows, base);
      check(bool(f), "cannot write ", o->svg);
    }
    if (o->json) {
      nlohmann::json j;
      j["source_ppl"] = base;
      j["n_params"] = n_params;
      j["calibrated"] = !o->calib.empty();
      for (const Row& r : rows)
        j["results"].push_back({{"type", r.type}, {"bytes", r.bytes}, {"bpw", r.bpw}, {"ppl", r.ppl},
                                {"delta_pct", r.delta_pct}, {"pct_of_f32", r.f32_pct}});
      std::puts(j.dump().c_str());
    } else {
      std::printf("%-8s %10s %8s %9s %10s %9s\n", "type", "MiB", "bpw", "% of F32", "ppl", "delta");
      std::printf("%-8s %10s %8s %9s %10.4f %9s\n", "source", "", "", "", base, "");
      for (const Row& r : rows)
        std::printf("%-8s %10.2f %8.3f %8.1f%% %10.4f %+8.3f%%\n", r.type.c_str(), r.bytes / 1048576.0, r.bpw, r.f32_pct,
                    r.ppl, r.delta_pct);
      if (!o->svg.empty()) std::printf("chart: %s\n", o->svg.c_str());
    }
    return 0;
  };
}

}  // namespace kite::cli
