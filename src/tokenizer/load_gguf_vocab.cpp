// GGUF vocabularies (tokenizer.ggml.*), as llama.cpp writes and reads them:
//   model "llama" -> SPM merged by score (scores, token_type, add_space_prefix);
//   model "gpt2"  -> byte-level BPE (merges, pre = pre-tokenizer family).
// An SPM GGUF's merges, if any, are ignored, as llama.cpp does.
#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer_impl.h"

namespace kite {

namespace {

// An optional token id: absent, negative or 0xFFFFFFFF ("none" as llama.cpp writes it) give
// def; anything else must be a token.
int32_t optional_id(const GGUFFile& g, const char* key, int32_t def, size_t n) {
  const int64_t id = g.get_int(key, def);
  if (id < 0 || id == 0xFFFFFFFFll) return -1;
  check(static_cast<uint64_t>(id) < n, g.path(), ": metadata '", key, "' = ", id, " is out of range (", n,
        " tokens)");
  return static_cast<int32_t>(id);
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

Tokenizer Tokenizer::from_gguf(const GGUFFile& g) {
  const std::string& path = g.path();
  const std::string model = g.get_string("tokenizer.ggml.model");
  VocabData v;
  v.source = path;
  if (model == "llama")
    v.type = VocabType::SPM;
  else if (model == "gpt2")
    v.type = VocabType::BPE;
  else
    fail(path, ": metadata 'tokenizer.ggml.model' = '", model,
         "' is not supported (only 'llama' SentencePiece BPE and 'gpt2' byte-level BPE)");

  v.tokens = g.get_string_array("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  check(n > 0, path, ": metadata 'tokenizer.ggml.tokens' is empty");
  if (g.find("tokenizer.ggml.scores")) {
    const std::vector<double> s = g.get_float_array("tokenizer.ggml.scores");
    check(s.size() == n, path, ": metadata 'tokenizer.ggml.scores' has ", s.size(), " entries for ", n, " tokens");
    v.scores.assign(s.begin(), s.end());
  }
  if (g.find("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> t = g.get_int_array("tokenizer.ggml.token_type");
    check(t.size() == n, path, ": metadata 'tokenizer.ggml.token_type' has ", t.size(), " entries for ", n,
          " tokens");
    v.token_types.resize(n);
    for (size_t i = 0; i < n; i++) {
      check(t[i] >= 0 && t[i] <= 6, path, ": metadata 'tokenizer.ggml.token_type'[", i, "] = ", t[i],
            " (valid: 0..6)");
      v.token_types[i] = static_cast<TokenType>(t[i]);
    }
  } else {
    v.token_types.assign(n, TokenType::Normal);
  }

  const bool spm = v.type == VocabType::SPM;
  if (!spm) {
    v.merges = g.get_string_array("tokenizer.ggml.merges");
    v.pre = g.get_string("tokenizer.ggml.pre", "default");
  } else {
    v.pre = g.get_string("tokenizer.ggml.pre", "default");
    v.byte_fallback = std::find(v.token_types.begin(), v.token_types.end(), TokenType::Byte) != v.token_types.end();
  }
  // llama.cpp's defaults for an SPM vocab: <unk>=0, <s>=1, </s>=2.
  v.bos = optional_id(g, "tokenizer.ggml.bos_token_id", spm && n > 1 ? 1 : -1, n);
  v.eos = optional_id(g, "tokenizer.ggml.eos_token_id", spm && n > 2 ? 2 : -1, n);
  v.unk = optional_id(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n);
  v.pad = optional_id(g, "tokenizer.ggml.padding_token_id", -1, n);
  v.eot = optional_id(g, "tokenizer.ggml.eot_token_id", -1, n);
  if (int32_t eom = optional_id(g, "tokenizer.ggml.eom_token_id", -1, n); eom >= 0) v.eog_ids.push_back(eom);
  v.add_bos = g.get_bool("tokenizer.ggml.add_bos_token", spm) && v.bos >= 0;
  v.add_eos = g.get_bool("tokenizer.ggml.add_eos_token", false) && v.eos >= 0;
  v.add_space_prefix = spm && g.get_bool("tokenizer.ggml.add_space_prefix", true);

  // llama.cpp marks Phi-3's special tokens (but <unk>, <s>, <|endoftext|>) and </s> as eating
  // the whitespace that follows them; the GGUF has no field for it, only the model name.
  std::string name = g.get_string("general.name", "");
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (contains(name, "phi-3") || contains(name, "phi3")) {
    for (size_t i = 0; i < n; i++) {
      const TokenType t = v.token_types[i];
      const std::string& s = v.tokens[i];
      const bool special = t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown;
      if ((special || s == "</s>") && s != "<unk>" && s != "<s>" && s != "<|endoftext|>")
        v.rstrip_ids.push_back(static_cast<int32_t>(i));
    }
  }
  return Tokenizer(std::move(v));
}

}  // namespace kite
