// The generation loop: the whole prompt in one batched pass, then one token per step against
// the KV cache, streaming valid UTF-8 and stopping on EOS, length, stop strings or a full context.
#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "kite/kite.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kite {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

GenerateResult generate(Session& session, const std::vector<int32_t>& prompt_ids, const GenerateOptions& opts,
                        const TokenCallback& on_token) {
  GenerateResult r;
  r.prompt_ids = prompt_ids;
  check(!prompt_ids.empty(), "generate: the prompt is empty (and the model adds no BOS)");
  if (opts.reuse_cached_prefix) r.prompt_reused = session.reuse_prefix(prompt_ids);
  const std::span<const int32_t> to_eval(prompt_ids.data() + r.prompt_reused, prompt_ids.size() - r.prompt_reused);
  const int room = session.n_ctx() - session.n_past();
  if (int(to_eval.size()) > room)
    fail("prompt of ", prompt_ids.size(), " tokens does not fit in the context (", session.n_ctx(),
         " tokens, ", session.n_past(), " used); use -c to enlarge it");
  const Tokenizer& tok = session.model().tokenizer();
  Sampler sampler(opts.sampling);
  // The text continues the prompt, so a generated piece keeps its leading space; only when the
  // prompt is BOS alone (nothing to continue) is SentencePiece's prefix space dropped.
  const bool bos_only = prompt_ids.size() == 1 && prompt_ids[0] == tok.bos();
  StreamDecoder stream(tok, /*strip_leading_space=*/bos_only);
  std::vector<int32_t> history = prompt_ids;

  auto t0 = std::chrono::steady_clock::now();
  std::span<const float> logits = session.eval(to_eval);
  r.prompt_ms = ms_since(t0);

  t0 = std::chrono::steady_clock::now();
  std::string emitted;    // text already handed to the callback
  size_t max_stop = 0;
  for (const auto& s : opts.stop) max_stop = std::max(max_stop, s.size());
  r.stop_reason = "length";
  for (int i = 0; opts.n_predict < 0 || i < opts.n_predict; i++) {
    const int32_t id = sampler.sample(logits, history);
    if (opts.stop_at_eos && tok.is_eog(id)) { r.stop_reason = "eos"; break; }
    r.ids.push_back(id);
    history.push_back(id);
    r.text += stream.push(id);
    // Stop strings: cut the text at the first match and end.
    bool stopped = false;
    for (const auto& s : opts.stop) {
      if (s.empty()) continue;
      size_t pos = r.text.find(s, emitted.size() > s.size() ? emitted.size() - s.size() : 0);
      if (pos != std::string::npos) { r.text.resize(pos); stopped = true; }
    }
    // Hold back a tail that could still become a stop string.
    size_t safe = stopped ? r.text.size() : (r.text.size() > max_stop ? r.text.size() - max_stop : 0);
    if (max_stop == 0) safe = r.text.size();
    // Never split a UTF-8 character when holding back.
    while (safe > emitted.size() && safe < r.text.size() && (static_cast<unsigned char>(r.text[safe]) & 0xC0) == 0x80) safe--;
    if (safe > emitted.size()) {
      std::string piece = r.text.substr(emitted.size(), safe - emitted.size());
      emitted += piece;
      if (on_token && !on_token(id, piece)) { r.stop_reason = "callback"; break; }
    }
    if (stopped) { r.stop_reason = "stop"; break; }
    if (session.n_past() >= session.n_ctx()) {
      if (!opts.context_shift) { r.stop_reason = "context"; break; }
      // Drop half of what follows the first `keep` tokens; the rest moves down (keys re-rotated).
      const int keep = std::clamp(opts.keep, 0, session.n_past() - 2);
      session.shift_context(keep, (session.n_past() - keep) / 2);
      r.context_shifts++;
    }
    logits = session.eval(std::span<const int32_t>(&id, 1));
  }
  if (r.stop_reason != "stop") {
    r.text += stream.flush();
    if (r.text.size() > emitted.size() && on_token) on_token(-1, r.text.substr(emitted.size()));
  }
  r.gen_ms = ms_since(t0);
  return r;
}

}  // namespace kite
