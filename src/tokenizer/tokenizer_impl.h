// Internal state of a Tokenizer: the VocabData plus the lookup structures built from it once
// (text -> id, byte tokens, merge ranks, special-token trie, detokenized pieces). Every member
// function is const after construction, so one Tokenizer may encode from several threads.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace kite {

namespace tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct MergeRule {
  int32_t rank;    // position in the merges list: lower merges first
  int32_t result;  // id of left+right
};

inline uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// A piece of the input after special tokens are cut out: either a token or raw text.
struct Fragment {
  int32_t token = -1;  // >= 0: this fragment is that token
  size_t begin = 0, end = 0;
};

// Byte trie over the texts of the special (control, user-defined, unknown) tokens.
struct SpecialTrie {
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // byte -> child node
    int32_t token = -1;                             // token whose text ends here
  };
  std::vector<Node> nodes{Node{}};
  void insert(std::string_view text, int32_t id);
  int32_t child(int32_t node, uint8_t b) const;
};

// VocabData loaders (one per file format); they fill `source` and throw kite::Error.
VocabData load_sentencepiece_model(const std::string& path);
VocabData load_hf_json(const std::string& path);
VocabData load_llama2c(const std::string& path);
VocabData load_vocab_merges(const std::string& vocab_json, const std::string& merges_txt);

}  // namespace tok

struct Tokenizer::Impl {
  explicit Impl(VocabData v);

  VocabData v;
  tok::TokenMap token_to_id;
  std::array<int32_t, 256> byte_token{};       // SPM: id of "<0xXX>", -1 when absent
  std::array<int32_t, 256> byte_char_token{};  // BPE: id of the GPT-2 character of each byte
  std::unordered_map<uint64_t, tok::MergeRule> merges;
  bool merge_by_rank = false;
  tok::PreTokenizer pre = tok::PreTokenizer::GPT2;
  tok::SpecialTrie specials;
  std::vector<int32_t> special_order;           // per token: position in llama.cpp's processing order
  std::vector<uint8_t> strip_flags;             // per token: 1 = lstrip, 2 = rstrip
  std::vector<std::string> pieces;              // token_to_piece, precomputed
  std::vector<uint8_t> eog;                     // per token: ends generation

  int32_t find(std::string_view text) const {
    auto it = token_to_id.find(text);
    return it == token_to_id.end() ? -1 : it->second;
  }
  const std::string& where() const;

  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // special_tokens.cpp
  void build_specials();
  std::vector<tok::Fragment> partition(std::string_view text, bool parse_special) const;
  // spm.cpp: one raw-text fragment; prefix says whether the SPM space prefix applies to it.
  void encode_spm(std::string_view text, bool prefix, std::vector<int32_t>& out) const;
  void encode_spm_by_score(const std::string& text, std::vector<int32_t>& out) const;
  void encode_spm_by_rank(std::string_view word, std::vector<int32_t>& out) const;
  void push_bytes(std::string_view bytes, std::vector<int32_t>& out) const;
  // bpe.cpp
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  // detokenize.cpp
  std::string compute_piece(int32_t id) const;
  bool strips_leading_space() const { return v.type == VocabType::SPM && v.add_space_prefix; }
};

}  // namespace kite
