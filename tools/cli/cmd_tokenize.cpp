// kite tokenize: text to token ids (works with vocab-only GGUF files too).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "core/mmap.h"
#include "model/model.h"

namespace kite::cli {

Runner add_tokenize(CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "text to token ids");
  struct Opts {
    ModelFlags mf;
    std::string prompt, file;
    bool no_bos = false, json = false, pieces = false, no_special = false;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(sub, o->mf);
  auto* p = sub->add_option("-p,--prompt", o->prompt, "text");
  auto* f = sub->add_option("-f,--file", o->file, "read the text from a file");
  p->excludes(f);
  sub->add_flag("--no-bos", o->no_bos, "do not add BOS");
  sub->add_flag("--no-parse-special", o->no_special, "treat special-token text as plain text");
  sub->add_flag("--pieces", o->pieces, "also print each token's text");
  sub->add_flag("--json", o->json, "print {\"ids\": [...]}");
  return [o]() {
    check(!o->mf.model.empty(), "tokenize: -m MODEL is required");
    Tokenizer tok = load_tokenizer(o->mf.model, o->mf.tokenizer);
    const std::string text = o->file.empty() ? o->prompt : read_text_file(o->file);
    std::vector<int32_t> ids = tok.encode(text, tok.add_bos() && !o->no_bos, !o->no_special);
    if (o->json) {
      nlohmann::json j;
      j["ids"] = ids;
      if (o->pieces) {
        std::vector<std::string> ps;
        for (int32_t id : ids) ps.push_back(tok.token_to_piece(id));
        j["pieces"] = ps;
      }
      std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else if (o->pieces) {
      for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, tok.token_to_piece(id).c_str());
    } else {
      for (size_t i = 0; i < ids.size(); i++) std::printf(i ? " %d" : "%d", ids[i]);
      std::printf("\n");
    }
    return 0;
  };
}

}  // namespace kite::cli
