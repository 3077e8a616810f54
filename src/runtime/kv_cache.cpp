#include "runtime/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <string>

#include "core/error.h"
#include "quant/quant.h"

namespace kite {

namespace {
int pages_for_positions(int n_pos) { return (n_pos + KVCache::kPageTokens - 1) / KVCache::kPageTokens; }
}  // namespace

KVCache::KVCache(int n_layer, int n_ctx, int n_head_kv, int head_dim, DType type, int n_pages)
    : n_layer_(n_layer), n_ctx_(n_ctx), n_head_kv_(n_head_kv), head_dim_(head_dim), type_(type) {
  check(kernels::attn_kv_type_supported(type, head_dim), "KV cache type ", dtype_name(type),
        " is not supported for head_dim ", head_dim, " (f32, f16, bf16, or q8_0 with head_dim % 32 == 0)");
  head_row_bytes_ = kite::row_bytes(type, head_dim);
  block_bytes_ = size_t(kPageTokens) * head_row_bytes_;
  page_bytes_ = size_t(n_layer) * n_head_kv * block_bytes_;
  const int need = pages_for_positions(n_ctx);
  if (n_pages <= 0) n_pages = need;
  check(n_pages >= need, "KV cache budget too small: ", n_pages, " pages of ", kPageTokens, " tokens (",
        double(n_pages) * 2 * page_bytes_ / 1048576.0, " MiB) cannot hold one sequence of ", n_ctx,
        " tokens, which needs ", need, " pages (", double(need) * 2 * page_bytes_ / 1048576.0,
        " MiB); raise --kv-mem or lower -c");
  // Decode reads each (layer, head)'s keys and values start to end: on huge pages where possible.
  k_ = StreamingBuffer(size_t(n_pages) * page_bytes_, "the KV cache (keys)");
  v_ = StreamingBuffer(size_t(n_pages) * page_bytes_, "the KV cache (values)");
  pages_.resize(n_pages);
  head_bytes_ = size_t(n_pages) * block_bytes_;
  // Taken from the back: page 0 first, so a fresh sequence's pages are in address order.
  for (int p = n_pages - 1; p >= 0; p--) free_.push_back(p);
}

size_t KVCache::bytes_for(int n_layer, int n_ctx, int n_head_kv, int head_dim, DType type) {
  return 2 * size_t(pages_for_positions(n_ctx)) * n_layer * n_head_kv * kPageTokens * kite::row_bytes(type, head_dim);
}

int KVCache::pages_for_bytes(size_t bytes, int n_layer, int n_head_kv, int head_dim, DType type) {
  const size_t page = 2 * size_t(n_layer) * n_head_kv * kPageTokens * kite::row_bytes(type, head_dim);
  return int(std::min<size_t>(bytes / page, size_t(1) << 30));
}

int KVCache::take_page() {
  int p;
  if (!free_.empty()) {
    p = free_.back();
    free_.pop_back();
  } else {
    check(!lru_.empty(), "KV cache: no free page (all ", pages_.size(), " are in use)");
    p = lru_.front();  // evict the least recently used cached prefix page
    lru_.pop_front();
    by_hash_.erase(pages_[p].hash);
    pages_[p].registered = false;
    pages_[p].tokens.clear();
  }
  pages_[p].refs = 1;
  return p;
}

void KVCache::release_page(int p) {
  Page& pg = pages_[p];
  pg.refs = 0;
  if (pg.registered) {
    lru_.push_back(p);
    pg.lru = std::prev(lru_.end());
  } else {
    free_.push_back(p);
  }
}

void KVCache::unregister(int p) {
  Page& pg = pages_[p];
  if (!pg.registered) return;
  by_hash_.erase(pg.hash);
  pg.registered = false;
  pg.tokens.clear();
}

void KVCache::ensure(int n_pos) {
  check(n_pos <= n_ctx_, "KV cache: position ", n_pos, " beyond the context of ", n_ctx_);
  while (int(table_.size()) < pages_for_positions(n_pos)) table_.push_back(take_page());
}

void KVCache::truncate(int n_pos) {
  const int keep = pages_for_positions(n_pos);
  while (int(table_.size()) > keep) {
    release_page(table_.back());
    table_.pop_back();
  }
}

void KVCache::unregister_from(int pos) {
  for (int i = pos / kPageTokens; i < int(table_.size()); i++) unregister(table_[i]);
}

uint64_t KVCache::chain_hash(uint64_t prev, std::span<const int32_t> tokens) {
  // FNV-1a over the previous hash and the tokens, then a final avalanche (splitmix64).
  uint64_t h = 1469598103934665603ull ^ prev;
  for (int32_t t : tokens) {
    h ^= uint32_t(t);
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

void KVCache::register_full_pages(std::span<const int32_t> tokens) {
  const int full = std::min(int(table_.size()), int(tokens.size()) / kPageTokens);
  for (int i = 0; i < full; i++) {
    Page& pg = pages_[table_[i]];
    if (pg.registered) continue;
    if (i > 0 && !pages_[table_[i - 1]].registered) return;  // the chain needs the previous hash
    const uint64_t prev = i > 0 ? pages_[table_[i - 1]].hash : 0;
    const auto toks = tokens.subspan(size_t(i) * kPageTokens, kPageTokens);
    const uint64_t h = chain_hash(prev, toks);
    if (auto it = by_hash_.find(h); it != by_hash_.end()) {
      // The same prefix is cached in another page: an unreferenced one (in the LRU list) gives
      // way, so that the table's chain stays registered; a referenced one keeps it.
      const int old = it->second;
      if (pages_[old].refs > 0) return;
      lru_.erase(pages_[old].lru);
      unregister(old);
      free_.push_back(old);
    }
    pg.hash = h;
    pg.registered = true;
    pg.tokens.assign(toks.begin(), toks.end());
    by_hash_[h] = table_[i];
  }
}

int KVCache::adopt_prefix(std::span<const int32_t> tokens, int limit, int min_positions) {
  const int n_full = std::min(limit, int(tokens.size())) / kPageTokens;
  // Dry run: how many leading pages are available (in the table or cached in the pool)?
  uint64_t prev = 0;
  int avail = 0;
  for (; avail < n_full; avail++) {
    const auto toks = tokens.subspan(size_t(avail) * kPageTokens, kPageTokens);
    const uint64_t h = chain_hash(prev, toks);
    const bool in_table = avail < int(table_.size()) && pages_[table_[avail]].registered && pages_[table_[avail]].hash == h;
    if (!in_table) {
      auto it = by_hash_.find(h);
      if (it == by_hash_.end() || pages_[it->second].refs > 0 ||
          !std::equal(toks.begin(), toks.end(), pages_[it->second].tokens.begin()))
        break;
    }
    prev = h;
  }
  if (avail * kPageTokens <= min_positions) return 0;  // the caller keeps more without changes
  prev = 0;
  int i = 0;
  for (; i < avail; i++) {
    const auto toks = tokens.subspan(size_t(i) * kPageTokens, kPageTokens);
    const uint64_t h = chain_hash(prev, toks);
    if (i < int(table_.size()) && pages_[table_[i]].registered && pages_[table_[i]].hash == h) {
      prev = h;  // already in the table
      continue;
    }
    auto it = by_hash_.find(h);
    if (it == by_hash_.end()) break;
    const int p = it->second;
    if (pages_[p].refs > 0 || !std::equal(toks.begin(), toks.end(), pages_[p].tokens.begin())) break;
    // Drop the table's pages from here on, then take the cached page out of the LRU list.
    truncate(i * kPageTokens);
    lru_.erase(pages_[p].lru);
    pages_[p].refs = 1;
    table_.push_back(p);
    reused_pages_++;
    prev = h;
  }
  truncate(i * kPageTokens);  // exactly the adopted pages
  return i * kPageTokens;
}

void KVCache::store(int layer, int pos0, int n_tok, const float* k, const float* v) {
  if (layer == 0) {
    ensure(pos0 + n_tok);
    // A registered page being written (after a truncate into it) would no longer hold what it
    // is registered under: copy it to a fresh page and write there, leaving the cached prefix
    // intact for later prompts; without a spare page, unregister it instead.
    for (int i = pos0 / kPageTokens; i <= (pos0 + n_tok - 1) / kPageTokens; i++) {
      const int old = table_[i];
      if (!pages_[old].registered) continue;
      if (free_.empty() && lru_.empty()) {
        unregister(old);
        continue;
      }
      const int fresh = take_page();
      for (int l = 0; l < n_layer_; l++)
        for (int g = 0; g < n_head_kv_; g++) {
          const size_t from = head_base(l, g) + size_t(old) * block_bytes_;
          const size_t to = head_base(l, g) + size_t(fresh) * block_bytes_;
          std::copy_n(k_.data() + from, block_bytes_, k_.data() + to);
          std::copy_n(v_.data() + from, block_bytes_, v_.data() + to);
        }
      table_[i] = fresh;
      release_page(old);
    }
  }
  const int kv_dim = n_head_kv_ * head_dim_;
  for (int g = 0; g < n_head_kv_; g++)
    for (int t = 0; t < n_tok; t++) {
      const size_t src = size_t(t) * kv_dim + size_t(g) * head_dim_;
      uint8_t* kd = k_.data() + offset(layer, g, pos0 + t);
      uint8_t* vd = v_.data() + offset(layer, g, pos0 + t);
      if (type_ == DType::F32) {
        std::copy_n(k + src, head_dim_, reinterpret_cast<float*>(kd));
        std::copy_n(v + src, head_dim_, reinterpret_cast<float*>(vd));
      } else {
        from_float(type_, k + src, kd, head_dim_);
        from_float(type_, v + src, vd, head_dim_);
      }
    }
}

kernels::AttnKV KVCache::layer(int layer) const {
  kernels::AttnKV a;
  const size_t layer_off = head_base(layer, 0);
  a.k = k_.data() + layer_off;
  a.v = v_.data() + layer_off;
  a.row_stride = head_row_bytes_;
  a.head_stride = head_bytes_;
  a.type = type_;
  a.pages = table_.data();
  a.page_stride = block_bytes_;
  return a;
}

DType kv_type_from_name(const std::string& name) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (s == "f32") return DType::F32;
  if (s == "f16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  if (s == "q8_0") return DType::Q8_0;
  fail("unknown KV cache type '", name, "' (f32, f16, bf16, q8_0)");
}

}  // namespace kite
