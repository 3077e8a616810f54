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
  std::vector<std::string> merges;      // "left right", highest priority first (BPE; SPM only from tokenizer.json)
  std::string pre;                      // pre-tokenizer name, as GGUF tokenizer.ggml.pre ("default", "llama3", "qwen2", "gpt-2", "deepseek-llm", ...)
  int bos = -1, eos = -1, unk = -1, pad = -1, eot = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = true;         // SPM: prepend "▁" to the text (HF Metaspace prepend_scheme "first")
  bool remove_extra_whitespaces = false;// SPM normaliser option (tokenizer.model): trim and collapse spaces

  // ---- added to the original interface ----
  // SPM: the vocabulary promises all 256 <0xXX> byte tokens (checked at construction). Merging by
  // score uses byte tokens for uncovered text whenever they exist (llama.cpp); merging by rank
  // (tokenizer.json) uses them only when this is set, else UNK (Hugging Face).
  bool byte_fallback = false;
  // BPE: a pre-tokenized word that is itself a token is emitted whole (Llama 3's ignore_merges).
  bool ignore_merges = false;
  // SPM from tokenizer.json with a splitting Metaspace pre-tokenizer: every "▁" starts a new word
  // and merges never cross words.
  bool spm_split_words = false;
  // Added tokens that swallow the whitespace before (lstrip) or after (rstrip) them.
  std::vector<int32_t> lstrip_ids, rstrip_ids;
  // More end-of-generation ids (generation_config.json eos lists, GGUF eom id, ...).
  std::vector<int32_t> eog_ids;
  // Where the vocabulary came from, for error messages.
  std::string source;
};
// How merges are chosen: SPM with empty `merges` merges by score, as SentencePiece/llama.cpp do;
// SPM with merges (tokenizer.json) and BPE merge by rank, as Hugging Face does.

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
  // GPT-2 style Hugging Face pair vocab.json + merges.txt (byte-level BPE, GPT-2 pre-tokenizer).
  static Tokenizer from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt);

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
  // strip_leading_space: drop the space SPM adds at the start of the first non-empty piece, as
  // decode(ids, true) does. Pass false when the stream continues earlier text.
  explicit StreamDecoder(const Tokenizer& tok, bool strip_leading_space = true)
      : tok_(tok), first_(strip_leading_space) {}
  // Appends a token; returns the text that is now complete.
  std::string push(int32_t id);
  // Returns whatever is held back (invalid trailing bytes become U+FFFD).
  std::string flush();

 private:
  const Tokenizer& tok_;
  std::string take(bool final);

  std::string pending_;
  bool first_ = true;
};

}  // namespace kite
