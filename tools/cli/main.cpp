// kite — command-line front end. Subcommands live in their own files (cmd_*.cpp).
#include <cstdio>
#include <cstdlib>
#include <map>

#include "commands.h"
#include "core/error.h"

namespace kite::cli {

void add_model_flags(CLI::App* sub, ModelFlags& f) {
  sub->add_option("-m,--model", f.model, "GGUF file, Hugging Face folder, or llama2.c .bin");
  sub->add_option("--tokenizer", f.tokenizer, "tokenizer file (llama2.c tokenizer.bin)");
}

std::string default_model_path() {
  const char* shared = std::getenv("KITE_SHARED");
  std::string base = shared && *shared ? shared : "../shared";
  return base + "/models/zoo-teacher-34m";
}

}  // namespace kite::cli

int main(int argc, char** argv) {
  CLI::App app{"kite: fast LLM inference on the CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kite 0.1.0");
  std::map<std::string, kite::cli::Runner> runners;
  runners["generate"] = kite::cli::add_generate(app);
  runners["perplexity"] = kite::cli::add_perplexity(app);
  runners["tokenize"] = kite::cli::add_tokenize(app);
  runners["info"] = kite::cli::add_info(app);
  runners["gen-model"] = kite::cli::add_gen_model(app);
  runners["bench"] = kite::cli::add_bench(app);
  runners["quantize"] = kite::cli::add_quantize(app);
  runners["convert"] = kite::cli::add_convert(app);
  runners["quant-report"] = kite::cli::add_quant_report(app);
  runners["bench-attn"] = kite::cli::add_bench_attn(app);
  CLI11_PARSE(app, argc, argv);
  try {
    for (auto* sub : app.get_subcommands()) return runners.at(sub->get_name())();
  } catch (const kite::Error& e) {
    std::fprintf(stderr, "kite: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kite: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kite: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
