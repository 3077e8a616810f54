// Hugging Face tokenizers: tokenizer.json (model.type "BPE"), the GPT-2 pair vocab.json +
// merges.txt, and HF model folders (tokenizer_config.json for add_bos/add_eos and special
// tokens, generation_config.json for extra end-of-generation ids).
//
// A tokenizer.json BPE is one of two kinds, told apart by its pipeline:
//  - byte-level (a ByteLevel pre-tokenizer or decoder): GPT-2 style; the pre-tokenizer family
//    is recognised from its Split regexes / Digits step;
//  - SentencePiece-style (Metaspace, or the Prepend/Replace "▁" normalizers, or byte_fallback):
//    merged by rank like HF; scores are derived from the merge ranks so that a score-based
//    tokenizer (e.g. after conversion to GGUF) merges in the same order.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap.h"
#include "tokenizer/tokenizer_impl.h"

namespace kite {

using nlohmann::json;

namespace {

json parse_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
}

// The value of key when obj is an object holding a non-null value there, else nullptr.
const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

bool get_bool(const json& obj, const char* key, bool def, const std::string& path, const char* where) {
  const json* v = member(obj, key);
  if (!v) return def;
  check(v->is_boolean(), path, ": ", where, ".", key, " is not a boolean: ", v->dump());
  return v->get<bool>();
}

std::string get_string(const json& obj, const char* key, const std::string& path, const char* where) {
  const json* v = member(obj, key);
  if (!v) return "";
  check(v->is_string(), path, ": ", where, ".", key, " is not a string: ", v->dump().substr(0, 80));
  return v->get<std::string>();
}

// A token given as "text" or {"content": "text"} (tokenizer_config.json styles).
std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (const json* c = member(v, "content"); c && c->is_string()) return c->get<std::string>();
  return "";
}

// The components of a (possibly nested) Sequence, depth first.
void flatten(const json* node, const char* list_key, std::vector<const json*>& out, int depth = 0) {
  if (!node || !node->is_object() || depth > 16) return;
  const json* type = member(*node, "type");
  if (type && type->is_string() && type->get<std::string>() == "Sequence") {
    if (const json* items = member(*node, list_key); items && items->is_array())
      for (const json& it : *items) flatten(&it, list_key, out, depth + 1);
    return;
  }
  out.push_back(node);
}

std::string type_of(const json* node) {
  const json* t = node ? member(*node, "type") : nullptr;
  return t && t->is_string() ? t->get<std::string>() : "";
}

// The regex (or literal) of a Split pre-tokenizer.
std::string split_pattern(const json& node) {
  const json* pat = member(node, "pattern");
  if (!pat) return "";
  for (const char* k : {"Regex", "String"})
    if (const json* s = member(*pat, k); s && s->is_string()) return s->get<std::string>();
  return "";
}

// Recognises the byte-level pre-tokenizer family from the pre_tokenizer steps.
std::string detect_bpe_pre(const std::vector<const json*>& steps) {
  bool digits = false;
  for (const json* s : steps) {
    const std::string t = type_of(s);
    if (t == "Digits" && member(*s, "individual_digits") && member(*s, "individual_digits")->is_boolean() &&
        member(*s, "individual_digits")->get<bool>())
      digits = true;
    if (t != "Split") continue;
    const std::string re = split_pattern(*s);
    if (re.find("\\p{L}\\p{N}]?\\p{L}+") != std::string::npos)
      return re.find("\\p{N}{1,3}") != std::string::npos ? "llama3" : "qwen2";
    if (re.find("A-Za-z\xC2\xB5\xC3\x80") != std::string::npos) return "deepseek-llm";  // "A-Za-zµÀ"
  }
  return digits ? "smollm" : "gpt-2";
}

bool is_byte_token(const std::string& t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

int32_t find_token(const VocabData& v, const std::string& text) {
  if (text.empty()) return -1;
  for (size_t i = 0; i < v.tokens.size(); i++)
    if (v.tokens[i] == text) return static_cast<int32_t>(i);
  return -1;
}

int32_t find_first(const VocabData& v, std::initializer_list<const char*> texts) {
  for (const char* t : texts)
    if (int32_t id = find_token(v, t); id >= 0) return id;
  return -1;
}

// Reads a vocab object {"text": id, ...} into v.tokens (size n); returns false on a clash.
void read_vocab(const json& vocab, size_t n, VocabData& v, std::vector<uint8_t>& filled, const std::string& path,
                const char* where) {
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    check(it.value().is_number_integer(), path, ": ", where, " entry '", it.key(), "' has a non-integer id ",
          it.value().dump());
    const int64_t id = it.value().get<int64_t>();
    check(id >= 0 && static_cast<uint64_t>(id) < n, path, ": ", where, " entry '", it.key(), "' has id ", id,
          ", out of range for ", n, " tokens");
    check(!filled[id], path, ": ", where, ": id ", id, " is used by both '", v.tokens[id], "' and '", it.key(), "'");
    v.tokens[id] = it.key();
    filled[id] = 1;
  }
}

}  // namespace

namespace tok {

VocabData load_hf_json(const std::string& path) {
  const json root = parse_json_file(path);
  check(root.is_object(), path, ": top level is not a JSON object");
  const json* model = member(root, "model");
  check(model && model->is_object(), path, ": no 'model' object: not a Hugging Face tokenizer.json");
  const std::string mtype = get_string(*model, "type", path, "model");
  check(mtype == "BPE" || (mtype.empty() && member(*model, "merges")), path, ": model.type is '", mtype,
        "'; only BPE tokenizers are supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    check(get_string(*model, key, path, "model").empty(), path, ": model.", key,
          " is set: word-piece style BPE is not supported");
  const json* vocab = member(*model, "vocab");
  check(vocab && vocab->is_object(), path, ": model.vocab is missing or not an object");

  // Added tokens: [{id, content, special, lstrip, rstrip, ...}].
  struct Added {
    int64_t id;
    std::string content;
    bool special, lstrip, rstrip;
  };
  std::vector<Added> added;
  if (const json* at = member(root, "added_tokens")) {
    check(at->is_array(), path, ": added_tokens is not an array");
    for (const json& a : *at) {
      check(a.is_object(), path, ": added_tokens entry is not an object: ", a.dump().substr(0, 80));
      const json* id = member(a, "id");
      check(id && id->is_number_integer(), path, ": added_tokens entry without an integer id: ", a.dump().substr(0, 80));
      const std::string content = get_string(a, "content", path, "added_tokens[]");
      check(!content.empty(), path, ": added token ", id->dump(), " has no content");
      added.push_back({id->get<int64_t>(), content, get_bool(a, "special", false, path, "added_tokens[]"),
                       get_bool(a, "lstrip", false, path, "added_tokens[]"),
                       get_bool(a, "rstrip", false, path, "added_tokens[]")});
    }
  }

  // Ids must be dense: at most one slot per vocab entry and added token.
  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    check(it.value().is_number_integer(), path, ": model.vocab entry '", it.key(), "' has a non-integer id ",
          it.value().dump());
    max_id = std::max(max_id, it.value().get<int64_t>());
  }
  for (const Added& a : added) max_id = std::max(max_id, a.id);
  const size_t limit = vocab->size() + added.size();
  check(max_id >= 0, path, ": model.vocab is empty");
  check(static_cast<uint64_t>(max_id) < limit, path, ": token id ", max_id, " is out of range (", vocab->size(),
        " vocab entries and ", added.size(), " added tokens)");
  const size_t n = static_cast<size_t>(max_id) + 1;

  VocabData v;
  v.source = path;
  v.tokens.assign(n, "");
  v.token_types.assign(n, TokenType::Normal);
  std::vector<uint8_t> filled(n, 0);
  read_vocab(*vocab, n, v, filled, path, "model.vocab");
  for (const Added& a : added) {
    check(a.id >= 0 && static_cast<uint64_t>(a.id) < n, path, ": added token '", a.content, "' has id ", a.id,
          ", out of range");
    v.tokens[a.id] = a.content;  // HF reports the added content for that id
    filled[a.id] = 1;
    v.token_types[a.id] = a.special ? TokenType::Control : TokenType::UserDefined;
    if (a.lstrip) v.lstrip_ids.push_back(static_cast<int32_t>(a.id));
    if (a.rstrip) v.rstrip_ids.push_back(static_cast<int32_t>(a.id));
  }
  for (size_t i = 0; i < n; i++) {
    if (filled[i]) continue;
    v.tokens[i] = "[PAD" + std::to_string(i) + "]";  // a hole in the ids, as llama.cpp's converter fills it
    v.token_types[i] = TokenType::Unused;
  }

  // Merges: "a b" strings (older files) or ["a", "b"] pairs (newer).
  if (const json* merges = member(*model, "merges")) {
    check(merges->is_array(), path, ": model.merges is not an array");
    v.merges.reserve(merges->size());
    for (const json& m : *merges) {
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else {
        check(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), path,
              ": model.merges entry is neither \"a b\" nor [\"a\", \"b\"]: ", m.dump().substr(0, 80));
        v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      }
    }
  }

  std::vector<const json*> pre_steps, norm_steps, dec_steps;
  flatten(member(root, "pre_tokenizer"), "pretokenizers", pre_steps);
  flatten(member(root, "normalizer"), "normalizers", norm_steps);
  flatten(member(root, "decoder"), "decoders", dec_steps);
  bool byte_level = false, metaspace = false;
  for (const json* s : pre_steps) byte_level |= type_of(s) == "ByteLevel";
  for (const json* s : dec_steps) byte_level |= type_of(s) == "ByteLevel";
  const std::string kSpace = "\xE2\x96\x81";
  bool prepend = false;
  for (const json* s : pre_steps) {
    if (type_of(s) != "Metaspace") continue;
    metaspace = true;
    const std::string scheme = get_string(*s, "prepend_scheme", path, "pre_tokenizer");
    if (!scheme.empty())
      prepend = scheme != "never";
    else
      prepend = get_bool(*s, "add_prefix_space", true, path, "pre_tokenizer");
    // Older files have no "split" and always split.
    v.spm_split_words = get_bool(*s, "split", true, path, "pre_tokenizer");
  }
  for (const json* s : norm_steps) {
    if (type_of(s) == "Prepend" && get_string(*s, "prepend", path, "normalizer") == kSpace) {
      metaspace = true;
      prepend = true;
    }
    if (type_of(s) == "Replace" && get_string(*s, "content", path, "normalizer") == kSpace) metaspace = true;
  }
  const bool byte_fallback = get_bool(*model, "byte_fallback", false, path, "model");
  check(byte_level || metaspace || byte_fallback, path,
        ": cannot tell the BPE kind: neither a ByteLevel step (GPT-2 style) nor Metaspace/\"▁\" normalizers "
        "(SentencePiece style)");

  if (const std::string unk = get_string(*model, "unk_token", path, "model"); !unk.empty()) {
    v.unk = find_token(v, unk);
    check(v.unk >= 0, path, ": model.unk_token '", unk, "' is not in the vocabulary");
    v.token_types[v.unk] = TokenType::Unknown;
  }

  if (byte_level) {
    v.type = VocabType::BPE;
    v.pre = detect_bpe_pre(pre_steps);
    v.ignore_merges = get_bool(*model, "ignore_merges", false, path, "model");
    v.add_space_prefix = false;
  } else {
    v.type = VocabType::SPM;
    v.pre = "default";
    v.add_space_prefix = prepend;
    v.byte_fallback = byte_fallback;
    for (size_t i = 0; i < n; i++)
      if (v.token_types[i] == TokenType::Normal && is_byte_token(v.tokens[i])) v.token_types[i] = TokenType::Byte;
    // Scores for score-based consumers: minus the rank of the first merge that makes the token.
    v.scores.assign(n, 0.0f);
    std::vector<uint8_t> scored(n, 0);
    std::unordered_map<std::string, int32_t> ids;
    for (size_t i = 0; i < n; i++) ids.emplace(v.tokens[i], static_cast<int32_t>(i));
    for (size_t r = 0; r < v.merges.size(); r++) {
      const std::string& m = v.merges[r];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;  // rejected with a clear message by Tokenizer
      auto it = ids.find(m.substr(0, sp) + m.substr(sp + 1));
      if (it == ids.end() || scored[it->second]) continue;
      scored[it->second] = 1;
      v.scores[it->second] = -static_cast<float>(r);
    }
  }

  // BOS/EOS: the post-processor's template says what is added; else the usual names.
  std::vector<const json*> post_steps;
  flatten(member(root, "post_processor"), "processors", post_steps);
  bool template_found = false;
  for (const json* s : post_steps) {
    if (type_of(s) != "TemplateProcessing") continue;
    const json* single = member(*s, "single");
    if (!single || !single->is_array() || single->empty()) continue;
    template_found = true;
    auto special_id = [&](const json& item) -> int32_t {
      const json* st = member(item, "SpecialToken");
      if (!st) return -1;
      const std::string name = get_string(*st, "id", path, "post_processor");
      // special_tokens maps the template name to its ids; the name is usually the token text.
      if (const json* map = member(*s, "special_tokens"); map && member(*map, name.c_str())) {
        const json* ids = member(*member(*map, name.c_str()), "ids");
        if (ids && ids->is_array() && ids->size() == 1 && (*ids)[0].is_number_integer()) {
          const int64_t id = (*ids)[0].get<int64_t>();
          check(id >= 0 && static_cast<uint64_t>(id) < n, path, ": post_processor special token '", name, "' has id ",
                id, ", out of range");
          return static_cast<int32_t>(id);
        }
      }
      return find_token(v, name);
    };
    if (int32_t b = special_id(single->front()); b >= 0) {
      v.bos = b;
      v.add_bos = true;
    }
    if (single->size() > 1)
      if (int32_t e = special_id(single->back()); e >= 0) {
        v.eos = e;
        v.add_eos = true;
      }
  }
  if (!template_found) v.add_bos = v.type == VocabType::SPM;  // Llama's default
  if (v.bos < 0) v.bos = find_first(v, {"<s>", "<|begin_of_text|>", "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<bos>"});
  if (v.eos < 0)
    v.eos = find_first(v, {"</s>", "<|end_of_text|>", "<|endoftext|>",
                           "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<eos>"});
  if (v.bos < 0) v.add_bos = false;
  if (v.unk < 0 && v.type == VocabType::SPM) v.unk = find_token(v, "<unk>");
  return v;
}

VocabData load_vocab_merges(const std::string& vocab_json, const std::string& merges_txt) {
  const json vocab = parse_json_file(vocab_json);
  check(vocab.is_object() && !vocab.empty(), vocab_json, ": not a non-empty JSON object of token -> id");
  VocabData v;
  v.type = VocabType::BPE;
  v.pre = "gpt-2";
  v.add_space_prefix = false;
  v.source = vocab_json;
  const size_t n = vocab.size();
  v.tokens.assign(n, "");
  v.token_types.assign(n, TokenType::Normal);
  std::vector<uint8_t> filled(n, 0);
  read_vocab(vocab, n, v, filled, vocab_json, "vocab");
  const std::string text = read_text_file(merges_txt);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    v.merges.push_back(std::move(line));
  }
  if (int32_t id = find_token(v, "<|endoftext|>"); id >= 0) {
    v.token_types[id] = TokenType::Control;
    v.bos = v.eos = id;
  }
  return v;
}

}  // namespace tok

Tokenizer Tokenizer::from_hf_json(const std::string& path) { return Tokenizer(tok::load_hf_json(path)); }

Tokenizer Tokenizer::from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt) {
  return Tokenizer(tok::load_vocab_merges(vocab_json, merges_txt));
}

Tokenizer Tokenizer::from_hf_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  check(is_directory(dir), dir, ": not a folder (expected a Hugging Face model folder with a tokenizer)");
  const auto in = [&](const char* name) { return (fs::path(dir) / name).string(); };
  VocabData v;
  if (file_exists(in("tokenizer.json")))
    v = tok::load_hf_json(in("tokenizer.json"));
  else if (file_exists(in("tokenizer.model")))
    v = tok::load_sentencepiece_model(in("tokenizer.model"));
  else if (file_exists(in("vocab.json")) && file_exists(in("merges.txt")))
    v = tok::load_vocab_merges(in("vocab.json"), in("merges.txt"));
  else
    fail(dir, ": no tokenizer in this folder (looked for tokenizer.json, tokenizer.model, vocab.json + merges.txt)");

  const auto lookup = [&](const json& cfg, const char* key, const std::string& file) -> int32_t {
    const json* t = member(cfg, key);
    if (!t) return -1;
    const std::string text = token_text(*t);
    if (text.empty()) return -1;
    for (size_t i = 0; i < v.tokens.size(); i++)
      if (v.tokens[i] == text) return static_cast<int32_t>(i);
    fail(file, ": ", key, " '", text, "' is not in the vocabulary");
  };
  if (file_exists(in("tokenizer_config.json"))) {
    const std::string file = in("tokenizer_config.json");
    const json cfg = parse_json_file(file);
    check(cfg.is_object(), file, ": top level is not a JSON object");
    if (int32_t id = lookup(cfg, "bos_token", file); id >= 0) v.bos = id;
    if (int32_t id = lookup(cfg, "eos_token", file); id >= 0) v.eos = id;
    if (int32_t id = lookup(cfg, "unk_token", file); id >= 0) v.unk = id;
    if (int32_t id = lookup(cfg, "pad_token", file); id >= 0) v.pad = id;
    // Absent: keep what the tokenizer file says (for SPM without a template: Llama's add_bos=true).
    v.add_bos = get_bool(cfg, "add_bos_token", v.add_bos || (v.type == VocabType::SPM && v.bos >= 0), file,
                         "tokenizer_config");
    v.add_eos = get_bool(cfg, "add_eos_token", v.add_eos, file, "tokenizer_config");
    if (v.bos < 0) v.add_bos = false;
  }
  if (file_exists(in("generation_config.json"))) {
    const std::string file = in("generation_config.json");
    const json gen = parse_json_file(file);
    if (const json* e = member(gen, "eos_token_id")) {
      std::vector<json> ids = e->is_array() ? e->get<std::vector<json>>() : std::vector<json>{*e};
      for (const json& id : ids) {
        check(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < int64_t(v.tokens.size()), file,
              ": eos_token_id ", id.dump(), " is not a token id of this vocabulary (", v.tokens.size(), " tokens)");
        v.eog_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
    }
  }
  return Tokenizer(std::move(v));
}

}  // namespace kite
