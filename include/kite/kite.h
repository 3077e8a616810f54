// Kite public API: load a model, open sessions (each owns its KV cache), tokenize, evaluate
// tokens, sample, stream text.
//
//   auto model = kite::Model::load("models/zoo-teacher-34m");
//   kite::Session session(model, {.n_ctx = 1024, .n_threads = 2});
//   kite::GenerateOptions g; g.n_predict = 64;
//   auto r = kite::generate(session, model->tokenize("Once upon a time", true), g,
//                           [](int32_t id, const std::string& text) { fputs(text.c_str(), stdout); return true; });
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kite {

struct LoadedModel;
struct ModelConfig;
class Tokenizer;
class KVCache;
struct Scratch;

struct ModelLoadOptions {
  std::string tokenizer_path;  // llama2.c checkpoints: tokenizer.bin (default: beside the model)
};

// Weights + tokenizer, shared read-only by any number of sessions.
class Model {
 public:
  static std::shared_ptr<const Model> load(const std::string& path, const ModelLoadOptions& opts = {});
  ~Model();

  const ModelConfig& config() const;
  const Tokenizer& tokenizer() const;
  const LoadedModel& impl() const { return *m_; }

  std::vector<int32_t> tokenize(std::string_view text, bool add_bos) const;
  std::string detokenize(const std::vector<int32_t>& ids) const;
  bool add_bos() const;  // as the model's tokenizer config says
  int n_vocab() const;

 private:
  explicit Model(std::unique_ptr<LoadedModel> m);
  std::unique_ptr<LoadedModel> m_;
};

// Element type of the KV cache. F16/BF16 halve its memory; Q8_0 (blocks of 32 int8 values with
// an fp16 scale, 8.5 bits per value) takes 53% of F16 at a perplexity cost of ~0.01% (README).
enum class KVType { F32, F16, BF16, Q8_0 };
// "f32", "f16", "bf16", "q8_0" (case-insensitive); throws kite::Error on anything else.
KVType kv_type_from_string(std::string_view name);
const char* kv_type_name(KVType t);

struct SessionOptions {
  int n_ctx = 0;      // 0: the model's training context
  int n_threads = 0;  // 0: all cores
  int n_batch = 512;  // prompt tokens per forward pass
  KVType kv_type = KVType::F32;
  // KV memory in MiB (K and V, all layers): a pool of pages of 64 positions. 0: exactly n_ctx
  // positions. More keeps the prefixes of earlier prompts for reuse (see reuse_prefix); less
  // than one sequence of n_ctx is an error.
  double kv_mem_mib = 0;
};

// One conversation: its own KV cache and work buffers.
class Session {
 public:
  Session(std::shared_ptr<const Model> model, const SessionOptions& opts = {});
  ~Session();

  // Evaluates tokens after the n_past already cached. Returns the logits of the last token
  // [n_vocab], or with all_logits those of every token [n_tok][n_vocab]. The span stays valid
  // until the next call. Throws kite::Error when the context would overflow.
  std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false);

  int n_past() const { return n_past_; }
  int n_ctx() const { return n_ctx_; }
  size_t kv_bytes() const;  // memory of the KV cache (K and V, all layers, n_ctx positions)
  KVType kv_type() const { return kv_type_; }
  // Forgets everything after the first n tokens (cheap: the cache is simply overwritten).
  void truncate(int n);
  // Prefix reuse: keeps the longest prefix of `tokens` whose K/V are cached and forgets the rest:
  // the common prefix with the current sequence, or, when longer, whole 64-token pages of an
  // earlier sequence still in the page pool (matched by a hash of the full token prefix). At
  // most tokens.size() - 1 are kept, so that evaluating the rest yields logits. Returns how many
  // tokens were kept; the caller evaluates tokens[kept..].
  int reuse_prefix(std::span<const int32_t> tokens);
  // Saves the cached tokens and their K/V to a file (a prompt cache), with a header that ties it
  // to this model and KV type, and a checksum.
  void save_state(const std::string& path) const;
  // Replaces what is cached by a file from save_state. Throws kite::Error naming the problem when
  // the file is for another model or KV type, does not fit the context, or is corrupted.
  // Returns the number of tokens now cached.
  int load_state(const std::string& path);
  // Context shift: forgets the n_discard tokens after the first `keep` and moves the later ones
  // down by n_discard positions, re-rotating their cached keys (RoPE by -n_discard: rotations
  // compose), so generation can continue past a full context without recomputing anything.
  void shift_context(int keep, int n_discard);
  const KVCache& kv_cache() const { return *cache_; }
  // The token ids at the cached positions [n_past].
  const std::vector<int32_t>& cached_tokens() const { return tokens_; }
  const Model& model() const { return *model_; }

 private:
  std::shared_ptr<const Model> model_;
  std::unique_ptr<KVCache> cache_;
  std::unique_ptr<Scratch> scratch_;
  std::vector<float> logits_, batch_logits_;
  std::vector<int32_t> tokens_;  // ids at cached positions
  int n_ctx_ = 0, n_threads_ = 0, n_batch_ = 512, n_past_ = 0;
  KVType kv_type_ = KVType::F32;
};

struct SamplingParams {
  float temperature = 0.8f;     // <= 0: greedy
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off (divides positive logits, multiplies negative ones)
  float frequency_penalty = 0;  // subtracts count * f
  float presence_penalty = 0;   // subtracts p once a token has appeared
  int penalty_last_n = 64;      // how many recent tokens the penalties look at (-1: all)
  uint64_t seed = 0xC0FFEE;     // same seed, same output
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // Picks the next token from logits [n_vocab], given the tokens so far (for penalties).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

struct GenerateOptions {
  int n_predict = 128;                 // maximum new tokens (< 0: until EOS or the context is full)
  SamplingParams sampling;
  std::vector<std::string> stop;       // stop strings (not included in the output)
  bool stop_at_eos = true;
  // prompt_ids is the whole sequence: keep what the session already caches of it
  // (Session::reuse_prefix) and evaluate only the rest. false: evaluate it after n_past.
  bool reuse_cached_prefix = false;
  // When the context fills up during generation: context_shift drops the oldest half of the
  // tokens after the first `keep` (e.g. BOS and a system prompt) and continues
  // (Session::shift_context); otherwise generation stops with stop_reason "context".
  bool context_shift = false;
  int keep = 0;
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids, ids;
  std::string text;
  std::string stop_reason;             // "eos", "length", "stop", "context", "callback"
  int prompt_reused = 0;               // prompt tokens whose K/V were already cached
  int context_shifts = 0;
  double prompt_ms = 0, gen_ms = 0;
};

// Streams text: on_token(id, text_piece) for each new token (text pieces are valid UTF-8);
// return false to stop.
using TokenCallback = std::function<bool(int32_t id, const std::string& piece)>;

GenerateResult generate(Session& session, const std::vector<int32_t>& prompt_ids, const GenerateOptions& opts,
                        const TokenCallback& on_token = nullptr);

}  // namespace kite

namespace kite {

// Perplexity of a token stream.
//  Llama:  llama.cpp's method: non-overlapping chunks of n_ctx tokens, each chunk's first token
//          replaced by BOS, only the second half of each chunk scored.
//  Stream: consecutive non-overlapping windows of n_ctx tokens, all n_ctx-1 predictions scored.
enum class PerplexityMethod { Llama, Stream };

struct PerplexityResult {
  double ppl = 0;
  int chunks = 0;
  int64_t tokens_scored = 0;
  double nll_sum = 0;
};

// tokens: BOS + the encoded text. max_chunks <= 0: as many as fit. progress(done, total) after
// each chunk.
PerplexityResult perplexity(Session& session, const std::vector<int32_t>& tokens, int n_ctx, int max_chunks,
                            PerplexityMethod method,
                            const std::function<void(int, int, double)>& progress = nullptr);

}  // namespace kite
