// Causal self-attention over one layer of the KV cache, for a batch of new query tokens.
//
//   out[t][h] = softmax_j(scale * q[t][h] · K[j][h/group]) · V[j][h/group],  j = 0 .. pos0 + t
//
// Two implementations share this interface:
//  * flash_attention: FlashAttention-2 style. Queries are taken in tiles (all heads of a GQA group
//    together, so each converted key block serves group x tile rows), keys in blocks of
//    kAttnKeyBlock; an online softmax keeps a running max m and sum l per query row and rescales
//    the output accumulator when m grows, so the score matrix is never materialised (a tile's
//    scores for one key block live in a small per-thread buffer). Threads take (kv head, query
//    tile) work items; when there are too few items for the threads and many keys (single-token
//    decode over a long context) the keys are also split ("flash-decoding"): each split writes a
//    partial (m, l, acc) and a final pass merges them. SIMD micro-kernels (AVX-512, AVX2, scalar)
//    follow kernels::kernel_level().
//  * naive_attention: the reference. One query row at a time: all its scores into a buffer of
//    pos0 + n_tok floats per thread, softmax, weighted sum of V; scalar code.
//
// The cache may hold F32, F16, BF16 or Q8_0 rows; both read every type (flash converts one key
// block at a time into a float buffer, naive one row at a time).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace kite::kernels {

constexpr int kAttnKeyBlock = 64;  // keys per block in the flash kernel (= KV page size)

// One layer of a KV cache, rows of head_dim values of `type` (same layout for v).
//  Contiguous (pages == nullptr): position j of KV head g at k + g * head_stride + j * row_stride.
//  Paged: positions in pages of kAttnKeyBlock tokens; position j of head g at
//         k + pages[j / kAttnKeyBlock] * page_stride + g * head_stride + (j % kAttnKeyBlock) * row_stride.
//  A page is exactly one key block of the flash kernel, so a block never straddles two pages.
struct AttnKV {
  const uint8_t* k = nullptr;
  const uint8_t* v = nullptr;
  size_t row_stride = 0;   // bytes between consecutive positions of one head
  size_t head_stride = 0;  // bytes between KV heads
  DType type = DType::F32;
  const int32_t* pages = nullptr;  // block table: page index of each kAttnKeyBlock positions
  size_t page_stride = 0;          // bytes between pages
  // Start of the rows of head g from position j on (up to the end of j's page when paged).
  const uint8_t* k_at(int j, int g) const { return k + offset(j, g); }
  const uint8_t* v_at(int j, int g) const { return v + offset(j, g); }
  size_t offset(int j, int g) const {
    if (!pages) return size_t(g) * head_stride + size_t(j) * row_stride;
    return size_t(pages[j / kAttnKeyBlock]) * page_stride + size_t(g) * head_stride +
           size_t(j % kAttnKeyBlock) * row_stride;
  }
};

struct AttnShape {
  int n_tok = 1;      // new query tokens, at positions pos0 .. pos0 + n_tok - 1
  int n_head = 1;
  int n_head_kv = 1;  // divides n_head (grouped-query attention)
  int head_dim = 1;
  int pos0 = 0;       // tokens cached before the first query; keys 0 .. pos0 + n_tok - 1 are read
  float scale = 1;    // usually 1 / sqrt(head_dim)
};

// q: [n_tok][n_head][head_dim], out: same shape. Uses omp_get_max_threads() threads (one when
// called inside a parallel region).
void flash_attention(const AttnShape& s, const float* q, const AttnKV& kv, float* out);
void naive_attention(const AttnShape& s, const float* q, const AttnKV& kv, float* out);

// Exact bytes of working memory each kernel allocates for a call of this shape on n_threads
// threads (its own buffers only: q, out and the cache are the caller's).
size_t flash_attention_workspace_bytes(const AttnShape& s, int n_threads);
size_t naive_attention_workspace_bytes(const AttnShape& s, int n_threads);

// Whether the cache may use this type for rows of head_dim elements (Q8_0 needs head_dim % 32 == 0).
bool attn_kv_type_supported(DType t, int head_dim);

// Which kernel attention_block uses: flash by default; the environment variable KITE_ATTN=naive
// (read at first use) or set_attention_impl() select the reference.
enum class AttnImpl { Flash, Naive };
AttnImpl attention_impl();
void set_attention_impl(AttnImpl impl);

}  // namespace kite::kernels
