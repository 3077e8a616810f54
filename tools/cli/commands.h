// Subcommands of the kite CLI. Each registers its flags on the app and returns the function
// that runs it (called only when that subcommand was chosen).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace kite::cli {

using Runner = std::function<int()>;

Runner add_generate(CLI::App& app);
Runner add_perplexity(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_info(CLI::App& app);
Runner add_gen_model(CLI::App& app);
Runner add_bench(CLI::App& app);
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
