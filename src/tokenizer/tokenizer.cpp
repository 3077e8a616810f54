// Tokenizer: checks a VocabData once, builds the lookup structures, and dispatches encoding
// fragment by fragment (special tokens, then SPM or byte-level BPE on the text between them).
#include "tokenizer/tokenizer.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/profile.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace kite {

namespace {

const char* type_name(VocabType t) { return t == VocabType::SPM ? "SPM" : "BPE"; }

// Parses a merge rule "left right" (split at the first space after the first byte, so a rule
// whose left part is itself a space still parses).
bool split_merge(const std::string& m, std::string_view& left, std::string_view& right) {
  const size_t sp = m.find(' ', 1);
  if (sp == std::string::npos || sp + 1 >= m.size()) return false;
  left = std::string_view(m).substr(0, sp);
  right = std::string_view(m).substr(sp + 1);
  return true;
}

// Texts that end generation in the chat formats llama.cpp knows, when they are control tokens.
constexpr const char* kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "<|end_of_text|>", "<｜end▁of▁sentence｜>", "<|return|>", "<|call|>",
};

}  // namespace

const std::string& Tokenizer::Impl::where() const {
  static const std::string kUnknown = "vocabulary";
  return v.source.empty() ? kUnknown : v.source;
}

Tokenizer::Impl::Impl(VocabData vocab) : v(std::move(vocab)) {
  const std::string& src = where();
  const size_t n = v.tokens.size();
  check(n > 0, src, ": the vocabulary is empty (no tokens)");
  check(n < (1u << 31) - 1, src, ": ", n, " tokens is more than a token id can hold");
  if (v.token_types.empty()) v.token_types.assign(n, TokenType::Normal);
  check(v.token_types.size() == n, src, ": token_type has ", v.token_types.size(), " entries but there are ", n,
        " tokens");
  if (v.scores.empty()) v.scores.assign(n, 0.0f);
  check(v.scores.size() == n, src, ": scores has ", v.scores.size(), " entries but there are ", n, " tokens");
  for (size_t i = 0; i < n; i++) {
    const auto t = static_cast<int32_t>(v.token_types[i]);
    check(t >= 0 && t <= 6, src, ": token ", i, " '", v.tokens[i], "' has token type ", t, " (valid: 0..6)");
    check(!std::isnan(v.scores[i]), src, ": token ", i, " '", v.tokens[i], "' has a NaN score");
  }
  const auto check_id = [&](int32_t id, const char* what) {
    check(id >= -1 && id < static_cast<int64_t>(n), src, ": ", what, " id ", id, " is out of range (vocabulary of ",
          n, " tokens)");
  };
  check_id(v.bos, "BOS");
  check_id(v.eos, "EOS");
  check_id(v.unk, "UNK");
  check_id(v.pad, "PAD");
  check_id(v.eot, "EOT");
  for (int32_t id : v.lstrip_ids) check_id(id, "lstrip token");
  for (int32_t id : v.rstrip_ids) check_id(id, "rstrip token");
  for (int32_t id : v.eog_ids) check_id(id, "end-of-generation token");

  // Later duplicates win, as in llama.cpp.
  token_to_id.reserve(n);
  for (size_t i = 0; i < n; i++) token_to_id[v.tokens[i]] = static_cast<int32_t>(i);

  for (int b = 0; b < 256; b++) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    byte_token[b] = find(hex);
    byte_char_token[b] = find(unicode::byte_to_utf8(static_cast<uint8_t>(b)));
    if (v.type == VocabType::SPM && v.byte_fallback)
      check(byte_token[b] >= 0, src, ": byte_fallback is on but the vocabulary has no piece '", hex, "'");
  }

  // Merge rules. SPM vocabularies from GGUF/tokenizer.model have none (they merge by score).
  merge_by_rank = v.type == VocabType::BPE || !v.merges.empty();
  merges.reserve(v.merges.size());
  for (size_t i = 0; i < v.merges.size(); i++) {
    std::string_view left, right;
    check(split_merge(v.merges[i], left, right), src, ": merge #", i, " '", v.merges[i],
          "' is not two tokens separated by a space");
    check(i < (1u << 31) - 1, src, ": too many merges");
    const int32_t l = find(left), r = find(right);
    const int32_t m = find(std::string(left) + std::string(right));
    // A rule over texts that are not tokens can never apply to token symbols: skip it.
    if (l < 0 || r < 0 || m < 0) continue;
    merges.try_emplace(tok::pair_key(l, r), tok::MergeRule{static_cast<int32_t>(i), m});
  }
  pre = tok::pre_tokenizer_from_name(v.pre);

  strip_flags.assign(n, 0);
  for (int32_t id : v.lstrip_ids) strip_flags[id] |= 1;
  for (int32_t id : v.rstrip_ids) strip_flags[id] |= 2;
  build_specials();

  eog.assign(n, 0);
  for (int32_t id : {v.eos, v.eot})
    if (id >= 0) eog[id] = 1;
  for (int32_t id : v.eog_ids) eog[id] = 1;
  for (const char* t : kEogTexts) {
    const int32_t id = find(t);
    if (id >= 0 && v.token_types[id] == TokenType::Control) eog[id] = 1;
  }

  pieces.resize(n);
  for (size_t i = 0; i < n; i++) pieces[i] = compute_piece(static_cast<int32_t>(i));
}

std::vector<int32_t> Tokenizer::Impl::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && v.bos >= 0) out.push_back(v.bos);
  if (text.empty()) return out;
  // llama.cpp: SPM text gets the space prefix at the start and again after every special
  // token, since each such fragment is tokenized as if it began a text.
  bool after_special = true;
  for (const tok::Fragment& f : partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    const std::string_view raw = text.substr(f.begin, f.end - f.begin);
    if (v.type == VocabType::SPM)
      encode_spm(raw, after_special, out);
    else
      encode_bpe(raw, out);
    after_special = false;
  }
  return out;
}

// ---- public interface ----

Tokenizer::Tokenizer(VocabData vocab) : impl_(std::make_unique<Impl>(std::move(vocab))) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  KITE_PROFILE("tokenizer", "encode");
  return impl_->encode(text, add_bos, parse_special);
}

std::string Tokenizer::token_to_piece(int32_t id) const {
  check(id >= 0 && id < n_vocab(), impl_->where(), ": token id ", id, " is out of range (", type_name(impl_->v.type),
        " vocabulary of ", n_vocab(), " tokens)");
  return impl_->pieces[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool strip_leading_space) const {
  KITE_PROFILE("tokenizer", "decode");
  std::string out;
  bool first = strip_leading_space && impl_->strips_leading_space();
  for (int32_t id : ids) {
    check(id >= 0 && id < n_vocab(), impl_->where(), ": decode: token id ", id, " is out of range (vocabulary of ",
          n_vocab(), " tokens)");
    const std::string& p = impl_->pieces[id];
    if (p.empty()) continue;
    if (first && p[0] == ' ')
      out.append(p, 1, std::string::npos);
    else
      out += p;
    first = false;
  }
  return out;
}

int Tokenizer::n_vocab() const { return static_cast<int>(impl_->v.tokens.size()); }
int Tokenizer::bos() const { return impl_->v.bos; }
int Tokenizer::eos() const { return impl_->v.eos; }
bool Tokenizer::add_bos() const { return impl_->v.add_bos; }
bool Tokenizer::is_eog(int32_t id) const { return id >= 0 && id < n_vocab() && impl_->eog[id]; }
const VocabData& Tokenizer::vocab() const { return impl_->v; }

// ---- StreamDecoder ----

std::string StreamDecoder::push(int32_t id) {
  KITE_PROFILE("tokenizer", "decode");
  std::string p = tok_.token_to_piece(id);
  if (first_ && !p.empty()) {
    first_ = false;
    const VocabData& v = tok_.vocab();
    if (v.type == VocabType::SPM && v.add_space_prefix && p[0] == ' ') p.erase(0, 1);
  }
  pending_ += p;
  return take(false);
}

std::string StreamDecoder::flush() { return take(true); }

// Hands out the complete characters of pending_; invalid bytes become U+FFFD. Unless final, an
// incomplete character at the end stays pending for the next token.
std::string StreamDecoder::take(bool final) {
  static constexpr const char* kReplacement = "\xEF\xBF\xBD";
  std::string out;
  const size_t keep_from = final ? pending_.size() : unicode::complete_utf8_prefix(pending_);
  size_t i = 0;
  while (i < keep_from) {
    size_t len = 1;
    const uint32_t cp = unicode::decode_utf8(pending_, i, len);
    if (cp < unicode::kInvalidBase) {
      out.append(pending_, i, len);
      i += len;
      continue;
    }
    // One U+FFFD for a bad lead byte and the continuation bytes that follow it.
    out += kReplacement;
    const size_t want = unicode::utf8_seq_len(static_cast<uint8_t>(pending_[i]));
    size_t k = i + 1;
    while (k < keep_from && k < i + want && (static_cast<uint8_t>(pending_[k]) & 0xC0) == 0x80) k++;
    i = k;
  }
  pending_.erase(0, i);
  return out;
}

}  // namespace kite
