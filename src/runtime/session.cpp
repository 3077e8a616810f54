// Model and Session: the public face of the loader, the forward pass and the KV cache.
#include <omp.h>

#include <algorithm>

#include "core/error.h"
#include "kite/kite.h"
#include "model/architecture.h"
#include "runtime/kv_cache.h"

namespace kite {

DType to_dtype(KVType t) {
  switch (t) {
    case KVType::F16: return DType::F16;
    case KVType::BF16: return DType::BF16;
    case KVType::Q8_0: return DType::Q8_0;
    case KVType::F32: break;
  }
  return DType::F32;
}

Model::Model(std::unique_ptr<LoadedModel> m) : m_(std::move(m)) {}
Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::string& path, const ModelLoadOptions& opts) {
  LoadOptions lo;
  lo.tokenizer_path = opts.tokenizer_path;
  return std::shared_ptr<const Model>(new Model(load_model(path, lo)));
}

const ModelConfig& Model::config() const { return m_->config; }
const Tokenizer& Model::tokenizer() const { return *m_->tokenizer; }
std::vector<int32_t> Model::tokenize(std::string_view text, bool add_bos) const {
  return m_->tokenizer->encode(text, add_bos);
}
std::string Model::detokenize(const std::vector<int32_t>& ids) const { return m_->tokenizer->decode(ids); }
bool Model::add_bos() const { return m_->tokenizer->add_bos(); }
int Model::n_vocab() const { return m_->config.n_vocab; }

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& opts)
    : model_(std::move(model)) {
  const ModelConfig& c = model_->config();
  n_ctx_ = opts.n_ctx > 0 ? opts.n_ctx : c.n_ctx_train;
  check(n_ctx_ > 0 && n_ctx_ <= (1 << 24), "context size ", n_ctx_, " is out of range");
  n_threads_ = opts.n_threads > 0 ? opts.n_threads : omp_get_num_procs();
  n_batch_ = std::max(1, opts.n_batch);
  kv_type_ = opts.kv_type;
  int n_pages = 0;
  if (opts.kv_mem_mib > 0) {
    n_pages = KVCache::pages_for_bytes(size_t(opts.kv_mem_mib * 1048576.0), c.n_layer, c.n_head_kv, c.head_dim,
                                       to_dtype(kv_type_));
    check(n_pages > 0, "KV cache budget too small: ", opts.kv_mem_mib, " MiB holds no page of ", KVCache::kPageTokens,
          " tokens (", KVCache::bytes_for(c.n_layer, 1, c.n_head_kv, c.head_dim, to_dtype(kv_type_)) / 1048576.0,
          " MiB); one sequence of ", n_ctx_, " tokens needs ",
          KVCache::bytes_for(c.n_layer, n_ctx_, c.n_head_kv, c.head_dim, to_dtype(kv_type_)) / 1048576.0, " MiB");
  }
  cache_ = std::make_unique<KVCache>(c.n_layer, n_ctx_, c.n_head_kv, c.head_dim, to_dtype(kv_type_), n_pages);
  scratch_ = std::make_unique<Scratch>();
}

Session::~Session() = default;

size_t Session::kv_bytes() const { return cache_->bytes(); }

KVType kv_type_from_string(std::string_view name) {
  switch (kv_type_from_name(std::string(name))) {
    case DType::F16: return KVType::F16;
    case DType::BF16: return KVType::BF16;
    case DType::Q8_0: return KVType::Q8_0;
    default: return KVType::F32;
  }
}

const char* kv_type_name(KVType t) {
  switch (t) {
    case KVType::F16: return "f16";
    case KVType::BF16: return "bf16";
    case KVType::Q8_0: return "q8_0";
    case KVType::F32: break;
  }
  return "f32";
}

void Session::truncate(int n) {
  check(n >= 0 && n <= n_past_, "cannot truncate a session of ", n_past_, " tokens to ", n);
  n_past_ = n;
  tokens_.resize(n);
  cache_->truncate(n);
}

int Session::reuse_prefix(std::span<const int32_t> tokens) {
  const size_t limit = std::min(tokens_.size(), tokens.empty() ? 0 : tokens.size() - 1);
  size_t n = 0;
  while (n < limit && tokens_[n] == tokens[n]) n++;
  const int n_tok = int(tokens.size());
  const int n_paged = cache_->adopt_prefix(tokens, std::max(0, n_tok - 1), int(n));
  if (n_paged > int(n)) {  // pages of an earlier sequence now start the table
    n_past_ = n_paged;
    tokens_.assign(tokens.begin(), tokens.begin() + n_paged);
    return n_paged;
  }
  truncate(int(n));
  return int(n);
}

std::span<const float> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  const LoadedModel& m = model_->impl();
  const int n_vocab = m.config.n_vocab;
  const int n = int(tokens.size());
  check(n > 0, "eval: no tokens");
  if (n_past_ + n > n_ctx_)
    fail("context is full: ", n_past_, " cached + ", n, " new tokens > context size ", n_ctx_,
         " (use -c to enlarge it)");
  for (int32_t t : tokens)
    check(t >= 0 && t < n_vocab, "token id ", t, " is out of range (vocabulary of ", n_vocab, ")");
  omp_set_num_threads(n_threads_);
  ForwardFn forward = forward_for_arch(m.config.arch);
  if (all_logits) batch_logits_.assign(size_t(n) * n_vocab, 0.0f);
  for (int start = 0; start < n; start += n_batch_) {
    const int len = std::min(n_batch_, n - start);
    forward(m, *cache_, tokens.data() + start, len, n_past_, all_logits, *scratch_, logits_);
    if (all_logits) std::copy(logits_.begin(), logits_.end(), batch_logits_.begin() + size_t(start) * n_vocab);
    n_past_ += len;
    tokens_.insert(tokens_.end(), tokens.begin() + start, tokens.begin() + start + len);
  }
  cache_->register_full_pages(tokens_);
  if (all_logits) return batch_logits_;
  return std::span<const float>(logits_.data(), n_vocab);
}

}  // namespace kite
