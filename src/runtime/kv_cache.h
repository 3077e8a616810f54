// Keys and values of every position a session has seen, per layer, so each new token costs one
// token of work.
//
// Paged: storage is a pool of pages of kPageTokens (= the flash kernel's key block, 64) positions;
// a block table maps the sequence's pages to pool pages. Page layout, K and V separately:
// [n_layer][n_head_kv][kPageTokens][head_dim] elements of the cache type: F32 (default, exact),
// F16 or BF16 (half the bytes), or Q8_0 (blocks of 32 values with one fp16 scale: 34 bytes per 32
// values, 53% of F16). Head-major inside a page: a decode step streams each head's keys in runs of
// 64 rows (position-major rows interleave the heads, and reading 256 bytes of every 1 KiB row ran
// the decode kernel at a third of the speed).
//
// Prefix caching: a page whose 64 positions are all written is registered under a hash of the
// whole token prefix up to its end (chained: hash(previous page's hash, its 64 tokens)). When the
// sequence is truncated, its registered pages stay in the pool, unreferenced, in LRU order, and a
// later prompt that starts with the same tokens adopts them instead of recomputing
// (adopt_prefix). New pages come from the free list, else by evicting the least recently used
// unreferenced page. Writing into a registered page (after truncating into it) unregisters it.
// The pool holds n_pages pages: by default exactly the context, or more (--kv-mem) to keep
// prefixes of earlier requests around.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/huge_pages.h"

#include "core/dtype.h"
#include "kernels/attention.h"

namespace kite {

class KVCache {
 public:
  static constexpr int kPageTokens = kernels::kAttnKeyBlock;

  // n_pages = 0: enough pages for n_ctx positions. Throws kite::Error when the type cannot hold
  // rows of head_dim values (see attn_kv_type_supported) or n_pages cannot hold n_ctx positions.
  KVCache(int n_layer, int n_ctx, int n_head_kv, int head_dim, DType type = DType::F32, int n_pages = 0);

  int n_layer() const { return n_layer_; }
  int n_ctx() const { return n_ctx_; }
  int n_head_kv() const { return n_head_kv_; }
  int head_dim() const { return head_dim_; }
  DType type() const { return type_; }
  int n_pages() const { return int(pages_.size()); }
  size_t page_bytes() const { return page_bytes_; }     // one page, K or V
  size_t bytes() const { return k_.size() + v_.size(); }
  // Bytes of a cache of n_ctx positions (K and V, all layers), without allocating it.
  static size_t bytes_for(int n_layer, int n_ctx, int n_head_kv, int head_dim, DType type);
  // Pages of `bytes` of memory (K and V), for --kv-mem.
  static int pages_for_bytes(size_t bytes, int n_layer, int n_head_kv, int head_dim, DType type);

  // Writes the K and V rows of n_tok tokens (float [n_tok][n_head_kv * head_dim]) at positions
  // pos0 ... (pages are taken from the pool as needed for layer 0's call).
  void store(int layer, int pos0, int n_tok, const float* k, const float* v);
  // The layer as the attention kernels read it (valid until the block table changes).
  kernels::AttnKV layer(int layer) const;

  // Sequence bookkeeping (the session calls these).
  void ensure(int n_pos);       // pages for positions [0, n_pos)
  void truncate(int n_pos);     // drops pages wholly beyond n_pos (registered ones stay cached)
  void unregister_from(int pos);  // pages holding pos and later are about to change in place
  // Registers the full pages of the sequence whose tokens are `tokens` (the cached positions).
  void register_full_pages(std::span<const int32_t> tokens);
  // Adopts cached pages for the longest run of full pages at the start of `tokens` (at most
  // `limit` positions), replacing the table's pages from the first that differs, provided that
  // covers more than min_positions (else nothing changes and 0 is returned). Returns the
  // positions covered (a multiple of kPageTokens); the table then holds exactly those pages.
  int adopt_prefix(std::span<const int32_t> tokens, int limit, int min_positions);
  // How many pages the table holds; statistics of prefix reuse.
  int table_pages() const { return int(table_.size()); }
  int64_t reused_pages() const { return reused_pages_; }

  // Row of one head at one position, for tests and tools.
  const uint8_t* k_row(int layer, int head, int pos) const { return k_.data() + offset(layer, head, pos); }
  const uint8_t* v_row(int layer, int head, int pos) const { return v_.data() + offset(layer, head, pos); }
  // Writable rows (state loading): the page must exist (ensure) and must not be registered.
  uint8_t* k_row_mut(int layer, int head, int pos) { return k_.data() + offset(layer, head, pos); }
  uint8_t* v_row_mut(int layer, int head, int pos) { return v_.data() + offset(layer, head, pos); }

 private:
  struct Page {
    int refs = 0;               // 1 while in the block table
    bool registered = false;    // in by_hash_
    uint64_t hash = 0;          // prefix hash up to the page's end (when registered)
    std::vector<int32_t> tokens;  // the page's tokens (when registered): verifies hash hits
    std::list<int>::iterator lru;  // position in lru_ while unreferenced and registered
  };
  // Pool layout (K and V alike): [n_layer][n_head_kv][n_pages][kPageTokens][head_row_bytes].
  // One (layer, head)'s blocks of successive pages are adjacent, so decode attention, which
  // streams one head's keys from position 0 on, reads a sequential stretch of memory when the
  // pages were taken in order (a fresh sequence's are) and the hardware prefetchers keep up; with
  // whole pages contiguous ([page][layer][head]) each 64-row block was a jump of a page.
  size_t offset(int layer, int head, int pos) const {
    return head_base(layer, head) + size_t(table_[pos / kPageTokens]) * block_bytes_ +
           size_t(pos % kPageTokens) * head_row_bytes_;
  }
  size_t head_base(int layer, int head) const { return (size_t(layer) * n_head_kv_ + head) * head_bytes_; }
  int take_page();                 // from the free list, else evicting the LRU cached page
  void release_page(int p);        // the table no longer references p
  void unregister(int p);
  static uint64_t chain_hash(uint64_t prev, std::span<const int32_t> tokens);

  int n_layer_, n_ctx_, n_head_kv_, head_dim_;
  DType type_;
  size_t head_row_bytes_;
  size_t block_bytes_;             // one page of one (layer, head): kPageTokens rows
  size_t head_bytes_;              // all pages of one (layer, head)
  size_t page_bytes_;              // one page over all layers and heads (K or V)
  StreamingBuffer k_, v_;          // [n_layer][n_head_kv][n_pages][kPageTokens][head_row_bytes] (huge pages)
  std::vector<Page> pages_;
  std::vector<int32_t> table_;     // block table: pool page of each kPageTokens positions
  std::vector<int> free_;          // unreferenced, unregistered pages
  std::list<int> lru_;             // unreferenced, registered pages, least recently used first
  std::unordered_map<uint64_t, int> by_hash_;
  int64_t reused_pages_ = 0;
};

// Parses a --kv-type name: f32, f16, bf16, q8_0 (case-insensitive). Throws on anything else.
DType kv_type_from_name(const std::string& name);

enum class KVType;
DType to_dtype(KVType t);

}  // namespace kite
