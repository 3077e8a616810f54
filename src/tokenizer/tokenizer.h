// Tokenizers, our own implementation:
//  - SentencePiece BPE with byte fallback (Llama 1/2, Mistral, TinyLlama, the zoo models,
//    llama2.c), from tokenizer.model, tokenizer.json, a GGUF "llama" vocab or llama2.c tokenizer.bin;
//  - byte-level BPE (GPT-2 style: Llama 3, Qwen2, SmolLM, GPT-2, DeepSeek...), from tokenizer.json
//    or a GGUF "gpt2" vocab, with each family's pre-tokenizer regex.
// All loaders fill one VocabData; Tokenizer works only from it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kite {

class GGUFFile;

enum class VocabType { SPM, BPE };

// Token attributes, as GGUF's tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

struct VocabData {
  VocabType type = VocabType::SPM;
  std::vector<std::string> tokens;      // piece text as stored (SPM: "▁" for space; BPE: GPT-2 byte-unicode)
  std::vector<float> scores;            // SPM merge priorities (may be empty for BPE)
  std::vector<TokenType> token_types;
  std::vector<std::string> merges;      // BPE: "left right", highest priority first
  std::string pre;                      // pre-tokenizer name, as GGUF tokenizer.ggml.pre ("default", "llama3", "qwen2", "gpt-2", "deepseek-llm", ...)
  int bos = -1, eos = -1, unk = -1, pad = -1, eot = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = true;         // SPM: prepend "▁" to the text (HF Metaspace prepend_scheme "first")
  bool remove_extra_whitespaces = false;// SPM normaliser option (tokenizer.model)
};

class Tokenizer {
 public:
  explicit Tokenizer(VocabData vocab);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // ---- loaders (throw kite::Error naming the file and field on bad input) ----
  static Tokenizer from_gguf(const GGUFFile& gguf);
  static Tokenizer from_sentencepiece_model(const std::string& path);  // tokenizer.model (protobuf)
  static Tokenizer from_hf_json(const std::string& path);              // tokenizer.json
  static Tokenizer from_llama2c(const std::string& path);              // llama2.c tokenizer.bin
  // HF folder: prefers tokenizer.json, else tokenizer.model; reads tokenizer_config.json for
  // add_bos/add_eos and special tokens. Error when the folder has neither.
  static Tokenizer from_hf_dir(const std::string& dir);

  // Encodes text. add_bos prepends BOS (when the vocab has one). parse_special: text matching a
  // special/added token's content becomes that token (as llama.cpp's parse_special=true).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = true) const;
  // The raw bytes a token stands for ("▁" -> " ", "<0x0A>" -> "\n", BPE byte-unicode undone).
  // Control tokens (BOS/EOS) give "".
  std::string token_to_piece(int32_t id) const;
  // Concatenated pieces; with strip_leading_space, the space SPM adds at the start is removed
  // (as HF decode and llama2.c do after BOS).
  std::string decode(const std::vector<int32_t>& ids, bool strip_leading_space = true) const;

  int n_vocab() const;
  int bos() const;
  int eos() const;
  bool add_bos() const;
  bool is_eog(int32_t id) const;      // end of generation: EOS, EOT and similar
  const VocabData& vocab() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streams detokenised text as valid UTF-8: bytes of a character split across several byte
// tokens are held back until the character is complete.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  // Appends a token; returns the text that is now complete.
  std::string push(int32_t id);
  // Returns whatever is held back (invalid trailing bytes become U+FFFD).
  std::string flush();

 private:
  const Tokenizer& tok_;
  std::string pending_;
  bool first_ = true;
};

}  // namespace kite
