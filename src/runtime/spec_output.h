// The output side of a generation loop, token by token: EOS, length, stop strings, streaming of
// valid UTF-8 through the callback. Same semantics as the loop in generate.cpp, so speculative
// decoding streams and stops exactly as plain decoding does (generate.cpp could use it too).
#pragma once
#include <cstdint>
#include <string>

#include "kite/kite.h"
#include "tokenizer/tokenizer.h"

namespace kite {

class OutputStream {
 public:
  // r.prompt_ids must be set: the text continues the prompt (see generate.cpp).
  OutputStream(const Tokenizer& tok, const GenerateOptions& opts, const TokenCallback& on_token, GenerateResult& r);

  // Takes the next sampled token. Returns false when generation must end: r.stop_reason is then
  // "eos", "stop" or "callback" ("length" is for the caller to decide with n_predict).
  bool push(int32_t id);
  // Flushes held-back text at the end (not after a stop string, which already cut the text).
  void finish();

 private:
  const Tokenizer& tok_;
  const GenerateOptions& opts_;
  const TokenCallback& on_token_;
  GenerateResult& r_;
  StreamDecoder stream_;
  std::string emitted_;  // text already handed to the callback
  size_t max_stop_ = 0;
};

}  // namespace kite
