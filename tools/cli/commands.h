// Subcommands of the kite CLI. Each registers its flags on the app and returns the function
// that runs it (called only when that subcommand was chosen).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

namespace kite {
struct Imatrix;
class Model;
}

namespace kite::cli {

using Runner = std::function<int()>;

Runner add_generate(CLI::App& app);
Runner add_perplexity(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_info(CLI::App& app);
Runner add_gen_model(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_quantize(CLI::App& app);
Runner add_convert(CLI::App& app);
Runner add_quant_report(CLI::App& app);

// Calibration for quantization (cmd_quantize.cpp): reads a text (.xz decompressed, at most
// max_bytes), tokenizes enough of it for `chunks` chunks of n_ctx tokens (and some to spare), and
// collects an importance matrix over up to `chunks` chunks of the tokens.
std::string read_calibration_text(const std::string& path, size_t max_bytes);
std::vector<int32_t> calibration_tokens(const Model& model, const std::string& path, int n_ctx, int chunks);
Imatrix calibrate(const std::shared_ptr<const Model>& model, const std::vector<int32_t>& tokens, int n_ctx, int chunks,
                  int n_threads, bool hessian);
Runner add_bench_attn(CLI::App& app);

// Shared flags.
struct ModelFlags {
  std::string model;
  std::string tokenizer;
};
void add_model_flags(CLI::App* sub, ModelFlags& f);
// Default model for `kite generate` without -m: the zoo teacher in the shared folder.
std::string default_model_path();

}  // namespace kite::cli
