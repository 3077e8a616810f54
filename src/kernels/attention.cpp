// Flash attention driver (tiling, causal mask, online softmax, key splits) and the naive
// reference. See attention.h for the algorithm; the arithmetic is in cpu/attn_micro.h.
#include "kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/cpu/attn_micro.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

namespace kite::kernels {

namespace {

constexpr int Bc = kAttnKeyBlock;
constexpr int kTileRows = 64;        // query rows per tile (tokens x heads of one GQA group)
constexpr int kTransposeRows = 8;    // tiles with at least this many rows use the transposed-K path
                                     // (not under ExactBatchScope: it sums scores in another order)
constexpr int kMinKeysPerSplit = 256;
// Floats between the per-thread buffers: K, Kt and V blocks are 16 KiB each for head_dim 64, so
// back to back their elements would share address bits 0-11 and loads from one would falsely
// wait on stores to another (4K aliasing); odd cache-line offsets avoid that.
constexpr int kPad = 48;

int threads_for_call() { return omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads()); }

// How a call is cut into work items.
struct Plan {
  int group, hd;
  int tile_tok;   // query tokens per tile
  int rows;       // max rows per tile = group * tile_tok
  int n_tiles;
  int n_split;    // key splits per tile (> 1: flash-decoding with a merge pass)
  int n_items;    // n_head_kv * n_tiles * n_split
  int n_threads;  // threads that run the items
  bool transpose_ok;  // false: every tile uses decode's per-row score path (exact small batches)
  // Floats of per-thread scratch: Q tile, S, acc, m, l, corr, K (converted), Kt, V (converted).
  size_t per_thread_floats() const {
    return size_t(rows) * hd * 2 + size_t(rows) * Bc + size_t(rows) * 3 + size_t(Bc) * hd * 3 + 9 * kPad;  // 9 pads, below
  }
  // Floats of the split partials: per item, rows x (acc[hd], m, l).
  size_t partial_floats() const { return n_split > 1 ? size_t(n_items) * rows * (hd + 2) : 0; }
};

Plan make_plan(const AttnShape& s, int n_threads) {
  Plan p;
  p.group = s.n_head / s.n_head_kv;
  p.hd = s.head_dim;
  p.tile_tok = std::min(s.n_tok, std::max(1, kTileRows / p.group));
  p.rows = p.group * p.tile_tok;
  p.n_tiles = (s.n_tok + p.tile_tok - 1) / p.tile_tok;
  const int base = s.n_head_kv * p.n_tiles;
  const int n_keys = s.pos0 + s.n_tok;
  p.n_split = 1;
  if (base < n_threads) {
    // Too few items to keep the threads busy (decode): split the keys, about two splits per
    // thread for balance, but not into pieces too small to pay for the merge.
    const int want = (2 * n_threads + base - 1) / base;
    p.n_split = std::max(1, std::min(want, n_keys / kMinKeysPerSplit));
  }
  p.n_items = base * p.n_split;
  p.n_threads = std::min(n_threads, p.n_items);
  p.transpose_ok = !exact_batch(s.n_tok);  // read here, on the calling thread (thread-local)
  return p;
}

// Keys [k0, k1) of split `split` among n_split, in whole blocks.
void split_range(int n_keys, int split, int n_split, int* k0, int* k1) {
  const int n_blocks = (n_keys + Bc - 1) / Bc;
  *k0 = std::min(n_keys, int(int64_t(n_blocks) * split / n_split) * Bc);
  *k1 = std::min(n_keys, int(int64_t(n_blocks) * (split + 1) / n_split) * Bc);
}

// Per-thread scratch, kept between calls (a decode step calls this once per layer).
std::vector<float>& thread_scratch() {
  thread_local std::vector<float> buf;
  return buf;
}

struct TileJob {
  int kvh, tile, k0, k1;
  float* partial;  // non-null: write (acc, m, l) per row here instead of the output
};

void run_tile(const AttnShape& s, const Plan& p, const cpu::AttnMicro& mk, const float* q, const AttnKV& kv,
              const TileJob& job, float* ws, float* out) {
  const int hd = p.hd, group = p.group;
  const int t0 = job.tile * p.tile_tok;
  const int nt = std::min(p.tile_tok, s.n_tok - t0);
  const int R = nt * group;
  float* Q = ws;                                      // [R][hd]
  float* S = Q + size_t(p.rows) * hd + kPad;          // [R][Bc]
  float* acc = S + size_t(p.rows) * Bc + kPad;        // [R][hd]
  float* m = acc + size_t(p.rows) * hd + kPad;        // [R]
  float* l = m + p.rows;                              // [R]
  float* corr = l + p.rows;                           // [R]
  float* Kf = corr + p.rows + kPad;                   // [Bc][hd]
  float* Kt = Kf + size_t(Bc) * hd + 2 * kPad;        // [hd][Bc]
  float* Vf = Kt + size_t(Bc) * hd + 3 * kPad;        // [Bc][hd]

  // Row r = ti * group + gi is query token t0 + ti, head kvh * group + gi.
  for (int ti = 0; ti < nt; ti++)
    for (int gi = 0; gi < group; gi++) {
      const float* src = q + (size_t(t0 + ti) * s.n_head + job.kvh * group + gi) * hd;
      float* dst = Q + size_t(ti * group + gi) * hd;
      for (int d = 0; d < hd; d++) dst[d] = src[d] * s.scale;
    }
  std::fill(acc, acc + size_t(R) * hd, 0.0f);
  std::fill(m, m + R, -INFINITY);
  std::fill(l, l + R, 0.0f);

  const int last_pos = s.pos0 + t0 + nt - 1;  // causal: no row of this tile sees keys beyond it
  const int k1 = std::min(job.k1, last_pos + 1);
  const bool f32 = kv.type == DType::F32;
  for (int jb = job.k0; jb < k1; jb += Bc) {
    const int nb = std::min(Bc, k1 - jb);
    const uint8_t* kb = kv.k_at(jb, job.kvh);  // jb is a multiple of Bc: one page when paged
    const uint8_t* vb = kv.v_at(jb, job.kvh);
    // Keys and values as float rows: the cache itself for F32, else converted once per block.
    const float* K = f32 ? reinterpret_cast<const float*>(kb) : Kf;
    const float* V = f32 ? reinterpret_cast<const float*>(vb) : Vf;
    const size_t stride = f32 ? kv.row_stride / sizeof(float) : size_t(hd);
    // Few rows (decode): the micro-kernels read the rows in place (converting as they load) when
    // the level has them; otherwise non-F32 blocks are converted first. Exact batches (speculative
    // verification) always read in place: a Q8_0 cache's in-place scores use int8 queries, and
    // every row of such a batch must get the bits of a one-token step.
    const bool in_place = (R < kTransposeRows || !p.transpose_ok) && mk.scores_kv && mk.pv_kv;
    // The next block's K and V: decode streams the whole cache once per token, and a head's pages
    // are not adjacent, so the hardware prefetcher loses the stream at every block. The in-place
    // kernels fetch them a few rows at a time as they work; otherwise it is done here at once.
    // (StreamPlan::Sequential, Zen 4: without these prefetches decode at depth 4096 is ~12% faster.)
    const bool has_next = jb + Bc < k1 && kernels::stream_plan() == kernels::StreamPlan::Interleaved;
    const uint8_t* kn = has_next ? kv.k_at(jb + Bc, job.kvh) : nullptr;
    const uint8_t* vn = has_next ? kv.v_at(jb + Bc, job.kvh) : nullptr;
    if (has_next && !in_place) {
      const size_t bytes = size_t(std::min(Bc, k1 - jb - Bc)) * kv.row_stride;
      for (size_t off = 0; off < bytes; off += 64) {
        __builtin_prefetch(kn + off);
        __builtin_prefetch(vn + off);
      }
    }
    if (!f32 && !in_place) {
      mk.convert(kv.type, kb, kv.row_stride, nb, hd, Kf);
      mk.convert(kv.type, vb, kv.row_stride, nb, hd, Vf);
    }
    if (in_place) {
      mk.scores_kv(kv.type, Q, R, hd, kb, kv.row_stride, nb, S, kn);
    } else if (R >= kTransposeRows && p.transpose_ok) {
      for (int j = 0; j < nb; j++)
        for (int d = 0; d < hd; d++) Kt[size_t(d) * Bc + j] = K[j * stride + d];
      mk.scores_t(Q, R, hd, Kt, S);
    } else {
      mk.scores_d(Q, R, hd, K, stride, nb, S);
    }
    // Online softmax: per row, the new running max, the factor that rescales what was
    // accumulated under the old max, and P = exp(S - max) (zero where masked).
    for (int r = 0; r < R; r++) {
      float* sr = S + size_t(r) * Bc;
      const int pos = s.pos0 + t0 + r / group;
      const int n_valid = std::clamp(pos - jb + 1, 0, nb);
      std::fill(sr + n_valid, sr + nb, 0.0f);
      if (n_valid == 0) {
        corr[r] = 1.0f;
        continue;
      }
      const float m_new = std::max(m[r], mk.row_max(sr, n_valid));
      corr[r] = std::exp(m[r] - m_new);  // exp(-inf) = 0 on the first block
      l[r] = l[r] * corr[r] + mk.exp_sum(sr, n_valid, m_new);
      m[r] = m_new;
    }
    if (in_place) mk.pv_kv(kv.type, S, R, nb, vb, kv.row_stride, hd, corr, acc, vn);
    else mk.pv(S, R, nb, V, stride, hd, corr, acc);
  }

  for (int r = 0; r < R; r++) {
    const int t = t0 + r / group, h = job.kvh * group + r % group;
    const float* a = acc + size_t(r) * hd;
    if (job.partial) {
      float* dst = job.partial + size_t(r) * (hd + 2);
      std::copy(a, a + hd, dst);
      dst[hd] = m[r];
      dst[hd + 1] = l[r];
    } else {
      float* o = out + (size_t(t) * s.n_head + h) * hd;
      const float inv = 1.0f / l[r];
      for (int d = 0; d < hd; d++) o[d] = a[d] * inv;
    }
  }
}

// Combines the key splits of one tile: out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s.
void merge_splits(const AttnShape& s, const Plan& p, int kvh, int tile, const float* partials, float* out) {
  const int hd = p.hd;
  const int t0 = tile * p.tile_tok, nt = std::min(p.tile_tok, s.n_tok - t0);
  const size_t item_floats = size_t(p.rows) * (hd + 2);
  const float* first = partials + size_t(kvh * p.n_tiles + tile) * p.n_split * item_floats;
  for (int r = 0; r < nt * p.group; r++) {
    float M = -INFINITY;
    for (int sp = 0; sp < p.n_split; sp++) M = std::max(M, first[sp * item_floats + size_t(r) * (hd + 2) + hd]);
    float* o = out + (size_t(t0 + r / p.group) * s.n_head + kvh * p.group + r % p.group) * hd;
    std::fill(o, o + hd, 0.0f);
    float L = 0;
    for (int sp = 0; sp < p.n_split; sp++) {
      const float* part = first + sp * item_floats + size_t(r) * (hd + 2);
      if (part[hd + 1] == 0) continue;  // split beyond this row's causal limit
      const float w = std::exp(part[hd] - M);
      L += w * part[hd + 1];
      for (int d = 0; d < hd; d++) o[d] += w * part[d];
    }
    const float inv = 1.0f / L;
    for (int d = 0; d < hd; d++) o[d] *= inv;
  }
}

std::atomic<int> g_impl{-1};  // -1: not read from the environment yet

}  // namespace

const cpu::AttnMicro& cpu::attn_micro(int hd) {
#if KITE_X86
  switch (kernel_level()) {
    case KernelLevel::Avx512:
      if (hd % 16 == 0) return avx512::kAttnMicro;
      [[fallthrough]];
    case KernelLevel::Avx2:
      if (hd % 8 == 0) return avx2::kAttnMicro;
      break;
    default: break;
  }
#endif
  return ref::kAttnMicro;
}

size_t flash_attention_workspace_bytes(const AttnShape& s, int n_threads) {
  const Plan p = make_plan(s, n_threads);
  return (p.per_thread_floats() * p.n_threads + p.partial_floats()) * sizeof(float);
}

void flash_attention(const AttnShape& s, const float* q, const AttnKV& kv, float* out) {
  const Plan p = make_plan(s, threads_for_call());
  const cpu::AttnMicro& mk = cpu::attn_micro(p.hd);
  const int n_keys = s.pos0 + s.n_tok;
  // Thread-local: reused by the next call on this thread. Inside the parallel regions below it
  // must be reached through this pointer (other threads have their own, empty, copy).
  thread_local std::vector<float> partials_buf;
  if (p.n_split > 1 && partials_buf.size() < p.partial_floats()) partials_buf.resize(p.partial_floats());
  float* const partials = partials_buf.data();
  const size_t item_floats = size_t(p.rows) * (p.hd + 2);
#pragma omp parallel for schedule(dynamic, 1) num_threads(p.n_threads) if (p.n_threads > 1)
  for (int item = 0; item < p.n_items; item++) {
    // Later query tiles see more keys: hand them out first so the dynamic schedule balances.
    const int split = item % p.n_split, rest = item / p.n_split;
    const int tile = p.n_tiles - 1 - rest % p.n_tiles, kvh = rest / p.n_tiles;
    TileJob job{kvh, tile, 0, n_keys, nullptr};
    if (p.n_split > 1) {
      split_range(n_keys, split, p.n_split, &job.k0, &job.k1);
      job.partial = partials + (size_t(kvh * p.n_tiles + tile) * p.n_split + split) * item_floats;
    }
    std::vector<float>& ws = thread_scratch();
    if (ws.size() < p.per_thread_floats()) ws.assign(p.per_thread_floats(), 0.0f);
    run_tile(s, p, mk, q, kv, job, ws.data(), out);
  }
  if (p.n_split > 1) {
    const int n_merge = s.n_head_kv * p.n_tiles;
#pragma omp parallel for schedule(static) num_threads(std::min(p.n_threads, n_merge)) if (n_merge > 1)
    for (int i = 0; i < n_merge; i++) merge_splits(s, p, i / p.n_tiles, i % p.n_tiles, partials, out);
  }
}

size_t naive_attention_workspace_bytes(const AttnShape& s, int n_threads) {
  // Per thread: the scores of one query row over every key, plus one converted K/V row.
  return size_t(n_threads) * (size_t(s.pos0 + s.n_tok) + size_t(s.head_dim)) * sizeof(float);
}

void naive_attention(const AttnShape& s, const float* q, const AttnKV& kv, float* out) {
  const int hd = s.head_dim, group = s.n_head / s.n_head_kv;
  const int n_pos = s.pos0 + s.n_tok;
  const bool f32 = kv.type == DType::F32;
  // Row j of KV head g as float: the cache itself for F32, else converted into `tmp`.
  auto row = [&](const uint8_t* base, int j, int g, float* tmp) -> const float* {
    const uint8_t* p = base + kv.offset(j, g);
    if (f32) return reinterpret_cast<const float*>(p);
    to_float(kv.type, p, tmp, hd);
    return tmp;
  };
#pragma omp parallel num_threads(threads_for_call())
  {
    std::vector<float> scores(n_pos);  // [n_pos] one query's scores over the cached positions
    std::vector<float> tmp(hd);        // [hd] one converted K or V row
#pragma omp for collapse(2) schedule(static)
    for (int t = 0; t < s.n_tok; t++) {
      for (int h = 0; h < s.n_head; h++) {
        const float* qh = q + (size_t(t) * s.n_head + h) * hd;
        const int kvh = h / group;
        const int n_keys = s.pos0 + t + 1;  // causal: keys 0..pos0+t
        for (int j = 0; j < n_keys; j++) {
          const float* kj = row(kv.k, j, kvh, tmp.data());
          float a = 0;
          for (int i = 0; i < hd; i++) a += qh[i] * kj[i];
          scores[j] = a * s.scale;
        }
        softmax(scores.data(), n_keys);
        float* o = out + (size_t(t) * s.n_head + h) * hd;
        for (int i = 0; i < hd; i++) o[i] = 0;
        for (int j = 0; j < n_keys; j++) {
          const float* vj = row(kv.v, j, kvh, tmp.data());
          const float p = scores[j];
          for (int i = 0; i < hd; i++) o[i] += p * vj[i];
        }
      }
    }
  }
}

bool attn_kv_type_supported(DType t, int head_dim) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return true;
    case DType::Q8_0: return head_dim % QK8_0 == 0;
    default: return false;
  }
}

AttnImpl attention_impl() {
  int v = g_impl.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* e = std::getenv("KITE_ATTN");
    v = int(AttnImpl::Flash);
    if (e && std::strcmp(e, "naive") == 0) v = int(AttnImpl::Naive);
    else if (e && *e && std::strcmp(e, "flash") != 0)
      std::fprintf(stderr, "kite: KITE_ATTN=%s is not one of flash, naive; using flash\n", e);
    g_impl.store(v, std::memory_order_relaxed);
  }
  return AttnImpl(v);
}

void set_attention_impl(AttnImpl impl) { g_impl.store(int(impl), std::memory_order_relaxed); }

}  // namespace kite::kernels
