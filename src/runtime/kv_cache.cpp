#include "runtime/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "core/error.h"
#include "quant/quant.h"

namespace kite {

KVCache::KVCache(int n_layer, int n_ctx, int n_head_kv, int head_dim, DType type)
    : n_layer_(n_layer), n_ctx_(n_ctx), n_head_kv_(n_head_kv), head_dim_(head_dim), type_(type) {
  check(kernels::attn_kv_type_supported(type, head_dim), "KV cache type ", dtype_name(type),
        " is not supported for head_dim ", head_dim, " (f32, f16, bf16, or q8_0 with head_dim % 32 == 0)");
  head_row_bytes_ = kite::row_bytes(type, head_dim);
  const size_t n = size_t(n_layer) * n_head_kv * n_ctx * head_row_bytes_;
  k_.resize(n);
  v_.resize(n);
}

size_t KVCache::bytes_for(int n_layer, int n_ctx, int n_head_kv, int head_dim, DType type) {
  return 2 * size_t(n_layer) * n_ctx * n_head_kv * kite::row_bytes(type, head_dim);
}

void KVCache::store(int layer, int pos0, int n_tok, const float* k, const float* v) {
  const int kv_dim = n_head_kv_ * head_dim_;
  for (int g = 0; g < n_head_kv_; g++)
    for (int t = 0; t < n_tok; t++) {
      const size_t src = size_t(t) * kv_dim + size_t(g) * head_dim_;
      if (type_ == DType::F32) {
        std::copy_n(k + src, head_dim_, reinterpret_cast<float*>(k_row(layer, g, pos0 + t)));
        std::copy_n(v + src, head_dim_, reinterpret_cast<float*>(v_row(layer, g, pos0 + t)));
      } else {
        from_float(type_, k + src, k_row(layer, g, pos0 + t), head_dim_);
        from_float(type_, v + src, v_row(layer, g, pos0 + t), head_dim_);
      }
    }
}

kernels::AttnKV KVCache::layer(int layer) const {
  kernels::AttnKV a;
  a.k = k_row(layer, 0, 0);
  a.v = v_row(layer, 0, 0);
  a.row_stride = head_row_bytes_;
  a.head_stride = size_t(n_ctx_) * head_row_bytes_;
  a.type = type_;
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
