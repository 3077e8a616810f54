// Token-by-token output with the stop semantics of generate.cpp (kept identical on purpose).
#include "runtime/spec_output.h"

#include <algorithm>

namespace kite {

OutputStream::OutputStream(const Tokenizer& tok, const GenerateOptions& opts, const TokenCallback& on_token,
                           GenerateResult& r)
    : tok_(tok), opts_(opts), on_token_(on_token), r_(r),
      // The text continues the prompt, so a generated piece keeps its leading space; only when
      // the prompt is BOS alone is SentencePiece's prefix space dropped.
      stream_(tok, /*strip_leading_space=*/r.prompt_ids.size() == 1 && r.prompt_ids[0] == tok.bos()) {
  for (const auto& s : opts.stop) max_stop_ = std::max(max_stop_, s.size());
}

bool OutputStream::push(int32_t id) {
  if (opts_.stop_at_eos && tok_.is_eog(id)) { r_.stop_reason = "eos"; return false; }
  r_.ids.push_back(id);
  r_.text += stream_.push(id);
  // Stop strings: cut the text at the first match and end.
  bool stopped = false;
  for (const auto& s : opts_.stop) {
    if (s.empty()) continue;
    size_t pos = r_.text.find(s, emitted_.size() > s.size() ? emitted_.size() - s.size() : 0);
    if (pos != std::string::npos) { r_.text.resize(pos); stopped = true; }
  }
  // Hold back a tail that could still become a stop string, never splitting a UTF-8 character.
  size_t safe = stopped ? r_.text.size() : (r_.text.size() > max_stop_ ? r_.text.size() - max_stop_ : 0);
  if (max_stop_ == 0) safe = r_.text.size();
  while (safe > emitted_.size() && safe < r_.text.size() && (static_cast<unsigned char>(r_.text[safe]) & 0xC0) == 0x80)
    safe--;
  if (safe > emitted_.size()) {
    std::string piece = r_.text.substr(emitted_.size(), safe - emitted_.size());
    emitted_ += piece;
    if (on_token_ && !on_token_(id, piece)) { r_.stop_reason = "callback"; return false; }
  }
  if (stopped) { r_.stop_reason = "stop"; return false; }
  return true;
}

void OutputStream::finish() {
  if (r_.stop_reason == "stop") return;
  r_.text += stream_.flush();
  if (r_.text.size() > emitted_.size() && on_token_) on_token_(-1, r_.text.substr(emitted_.size()));
}

}  // namespace kite
