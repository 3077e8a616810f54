// Keys and values of every position a session has seen, per layer, so each new token costs one
// token of work. Contiguous F32 storage: [n_layer][n_ctx][kv_dim] for K and for V.
#pragma once
#include <cstdint>
#include <vector>

namespace kite {

class KVCache {
 public:
  KVCache(int n_layer, int n_ctx, int kv_dim)
      : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim),
        k_(size_t(n_layer) * n_ctx * kv_dim), v_(size_t(n_layer) * n_ctx * kv_dim) {}

  int n_ctx() const { return n_ctx_; }
  int kv_dim() const { return kv_dim_; }
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

  float* k(int layer, int pos) { return k_.data() + (size_t(layer) * n_ctx_ + pos) * kv_dim_; }
  float* v(int layer, int pos) { return v_.data() + (size_t(layer) * n_ctx_ + pos) * kv_dim_; }
  const float* k(int layer, int pos) const { return k_.data() + (size_t(layer) * n_ctx_ + pos) * kv_dim_; }
  const float* v(int layer, int pos) const { return v_.data() + (size_t(layer) * n_ctx_ + pos) * kv_dim_; }

 private:
  int n_layer_, n_ctx_, kv_dim_;
  std::vector<float> k_, v_;
};

}  // namespace kite
