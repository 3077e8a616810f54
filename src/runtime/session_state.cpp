// Session::save_state / load_state: a prompt's K/V on disk (kite generate --prompt-cache), and
// Session::shift_context (kite generate --context-shift).
//
// File: "KITEKVC1", then u64 model fingerprint, u32 KV type (GGML type id), u32 n_layer,
// n_head_kv, head_dim, n_tokens, i32 tokens[n_tokens], the K rows then the V rows in
// [layer][head][position] order (each row_bytes(type, head_dim)), and a u64 FNV-1a checksum of
// everything before it. The fingerprint hashes the model's shape and the first 64 KiB of its
// embedding and output weights, so a cache made with another model (or another quantization of
// it) is refused with a clear error rather than silently giving wrong text.
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "core/error.h"
#include "kite/kite.h"
#include "model/architecture.h"
#include "model/blocks.h"
#include "quant/quant.h"
#include "runtime/kv_cache.h"

namespace kite {

namespace {

constexpr char kMagic[8] = {'K', 'I', 'T', 'E', 'K', 'V', 'C', '1'};

uint64_t fnv(uint64_t h, const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}
constexpr uint64_t kFnvSeed = 1469598103934665603ull;

uint64_t model_fingerprint(const LoadedModel& m) {
  const ModelConfig& c = m.config;
  uint64_t h = fnv(kFnvSeed, c.arch.data(), c.arch.size());
  const int32_t shape[] = {c.n_vocab, c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.head_dim, c.n_ff};
  h = fnv(h, shape, sizeof(shape));
  h = fnv(h, &c.rope_theta, sizeof(c.rope_theta));
  for (const Tensor* t : {m.weights.tok_embd, m.weights.output})
    if (t && t->data) {
      h = fnv(h, &t->type, sizeof(t->type));
      h = fnv(h, t->data, std::min<size_t>(t->nbytes, 65536));
    }
  return h;
}

template <class T>
void put(std::vector<uint8_t>& out, const T& v) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

}  // namespace

void Session::save_state(const std::string& path) const {
  const KVCache& kv = *cache_;
  const size_t rb = row_bytes(kv.type(), kv.head_dim());
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  put(out, model_fingerprint(model_->impl()));
  put(out, uint32_t(kv.type()));
  for (int v : {kv.n_layer(), kv.n_head_kv(), kv.head_dim(), n_past_}) put(out, uint32_t(v));
  for (int32_t t : tokens_) put(out, t);
  for (int which = 0; which < 2; which++)
    for (int l = 0; l < kv.n_layer(); l++)
      for (int g = 0; g < kv.n_head_kv(); g++)
        for (int p = 0; p < n_past_; p++) {
          const uint8_t* row = which == 0 ? kv.k_row(l, g, p) : kv.v_row(l, g, p);
          out.insert(out.end(), row, row + rb);
        }
  put(out, fnv(kFnvSeed, out.data(), out.size()));
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    check(bool(f), "prompt cache ", path, ": cannot write ", tmp);
    f.write(reinterpret_cast<const char*>(out.data()), std::streamsize(out.size()));
    check(bool(f), "prompt cache ", path, ": write failed (disk full?)");
  }
  check(std::rename(tmp.c_str(), path.c_str()) == 0, "prompt cache ", path, ": cannot rename ", tmp);
}

int Session::load_state(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  check(bool(f), "prompt cache ", path, ": cannot open");
  const std::vector<uint8_t> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t head = 8 + 8 + 4 * 5;
  check(d.size() >= head + 8 && std::memcmp(d.data(), kMagic, 8) == 0, "prompt cache ", path,
        ": not a kite prompt cache (bad magic or too short)");
  auto u32 = [&](size_t off) { uint32_t v; std::memcpy(&v, d.data() + off, 4); return v; };
  uint64_t fp, sum;
  std::memcpy(&fp, d.data() + 8, 8);
  std::memcpy(&sum, d.data() + d.size() - 8, 8);
  check(fnv(kFnvSeed, d.data(), d.size() - 8) == sum, "prompt cache ", path,
        ": corrupted (checksum mismatch); delete it to rebuild");
  check(fp == model_fingerprint(model_->impl()), "prompt cache ", path,
        ": was written for a different model (fingerprint mismatch); delete it or use the model that made it");
  const KVCache& kv = *cache_;
  const uint32_t type = u32(16), n_layer = u32(20), n_head_kv = u32(24), head_dim = u32(28), n = u32(32);
  check(type == uint32_t(kv.type()), "prompt cache ", path, ": holds a KV cache of type ",
        dtype_traits(type) ? dtype_traits(type)->name : "?", ", this session uses ", dtype_name(kv.type()),
        " (pass the matching --kv-type)");
  check(n_layer == uint32_t(kv.n_layer()) && n_head_kv == uint32_t(kv.n_head_kv()) &&
            head_dim == uint32_t(kv.head_dim()),
        "prompt cache ", path, ": KV shape does not match the model");
  check(n >= 1 && int64_t(n) <= n_ctx_, "prompt cache ", path, ": holds ", n, " tokens; the context is ", n_ctx_,
        " (use -c to enlarge it)");
  const size_t rb = row_bytes(kv.type(), kv.head_dim());
  const size_t rows = size_t(n_layer) * n_head_kv * n;
  check(d.size() == head + size_t(n) * 4 + 2 * rows * rb + 8, "prompt cache ", path, ": truncated or corrupted (size)");
  truncate(0);
  const uint8_t* p = d.data() + head;
  std::vector<int32_t> toks(n);
  std::memcpy(toks.data(), p, size_t(n) * 4);
  p += size_t(n) * 4;
  for (int32_t t : toks) check(t >= 0 && t < model_->n_vocab(), "prompt cache ", path, ": token id out of range");
  cache_->ensure(int(n));
  for (int which = 0; which < 2; which++)
    for (int l = 0; l < kv.n_layer(); l++)
      for (int g = 0; g < kv.n_head_kv(); g++)
        for (int pos = 0; pos < int(n); pos++, p += rb)
          std::memcpy(which == 0 ? cache_->k_row_mut(l, g, pos) : cache_->v_row_mut(l, g, pos), p, rb);
  tokens_ = std::move(toks);
  n_past_ = int(n);
  cache_->register_full_pages(tokens_);
  return n_past_;
}

}  // namespace kite

namespace kite {

void Session::shift_context(int keep, int n_discard) {
  check(keep >= 0 && n_discard >= 0 && keep + n_discard <= n_past_, "shift_context: cannot drop ", n_discard,
        " tokens after ", keep, " of ", n_past_);
  if (n_discard == 0) return;
  const LoadedModel& m = model_->impl();
  KVCache& kv = *cache_;
  const int hd = kv.head_dim(), n_move = n_past_ - keep - n_discard;
  const DType t = kv.type();
  const size_t rb = row_bytes(t, hd);
  kv.unregister_from(keep);
  std::vector<float> buf(size_t(std::max(n_move, 1)) * hd);  // [n_move][head_dim] keys of one head
  for (int l = 0; l < kv.n_layer(); l++)
    for (int g = 0; g < kv.n_head_kv(); g++) {
      for (int i = 0; i < n_move; i++) to_float(t, kv.k_row(l, g, keep + n_discard + i), buf.data() + size_t(i) * hd, hd);
      // Every row rotates by the same angle: n_move "heads" of one token at position -n_discard.
      apply_rope(m.config, m.weights.rope_freq_factors, buf.data(), 1, n_move, -n_discard);
      for (int i = 0; i < n_move; i++) {
        from_float(t, buf.data() + size_t(i) * hd, kv.k_row_mut(l, g, keep + i), hd);
        // Destination before source, row by row: an overlapping move is safe.
        std::memcpy(kv.v_row_mut(l, g, keep + i), kv.v_row(l, g, keep + n_discard + i), rb);
      }
    }
  tokens_.erase(tokens_.begin() + keep, tokens_.begin() + keep + n_discard);
  n_past_ -= n_discard;
  kv.truncate(n_past_);
}

}  // namespace kite
