// Keys and values of every position a session has seen, per layer, so each new token costs one
// token of work. Contiguous storage, K and V each [n_layer][n_head_kv][n_ctx][head_dim] elements
// of the cache type: F32 (default, exact), F16 or BF16 (half the bytes), or Q8_0 (blocks of 32
// values with one fp16 scale: 34 bytes per 32 values, 53% of F16). Rows are converted from float
// when written; the attention kernels read the type directly (converting one block at a time).
// Head-major order: a decode step streams each head's keys as one sequential run (position-major
// rows interleave the heads, and reading one head's 256 bytes out of every 1 KiB row ran the
// flash decode at a third of this layout's speed).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/attention.h"

namespace kite {

class KVCache {
 public:
  // Throws kite::Error when the type cannot hold rows of head_dim values (see attn_kv_type_supported).
  KVCache(int n_layer, int n_ctx, int n_head_kv, int head_dim, DType type = DType::F32);

  int n_layer() const { return n_layer_; }
  int n_ctx() const { return n_ctx_; }
  int n_head_kv() const { return n_head_kv_; }
  int head_dim() const { return head_dim_; }
  DType type() const { return type_; }
  size_t head_row_bytes() const { return head_row_bytes_; }  // one position of one head, K or V
  size_t bytes() const { return k_.size() + v_.size(); }
  // Bytes a cache of this shape takes (K and V, all layers), without allocating it.
  static size_t bytes_for(int n_layer, int n_ctx, int n_head_kv, int head_dim, DType type);

  // Writes the K and V rows of n_tok tokens (float [n_tok][n_head_kv * head_dim]) at positions pos0 ...
  void store(int layer, int pos0, int n_tok, const float* k, const float* v);
  // The layer as the attention kernels read it.
  kernels::AttnKV layer(int layer) const;

  uint8_t* k_row(int layer, int head, int pos) { return k_.data() + offset(layer, head, pos); }
  uint8_t* v_row(int layer, int head, int pos) { return v_.data() + offset(layer, head, pos); }
  const uint8_t* k_row(int layer, int head, int pos) const { return k_.data() + offset(layer, head, pos); }
  const uint8_t* v_row(int layer, int head, int pos) const { return v_.data() + offset(layer, head, pos); }

 private:
  size_t offset(int layer, int head, int pos) const {
    return ((size_t(layer) * n_head_kv_ + head) * n_ctx_ + pos) * head_row_bytes_;
  }
  int n_layer_, n_ctx_, n_head_kv_, head_dim_;
  DType type_;
  size_t head_row_bytes_;
  std::vector<uint8_t> k_, v_;  // [n_layer][n_head_kv][n_ctx][head_row_bytes]
};

// Parses a --kv-type name: f32, f16, bf16, q8_0 (case-insensitive). Throws on anything else.
DType kv_type_from_name(const std::string& name);

enum class KVType;
DType to_dtype(KVType t);

}  // namespace kite
