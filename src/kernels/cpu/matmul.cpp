// The matmul driver: prepares the activations once per call, picks the matvec or GEMM path and
// splits the output rows over the OpenMP team.
//
// Per-call overhead matters: a decode step of a small model is ~150 matmuls of 10-300 us each. So:
//  * no heap allocation per call: activations and A panels live in thread-local buffers that grow
//    to the largest size seen and are kept;
//  * one parallel region per call (and one for products sharing an input: q/k/v, gate/up); rows
//    are handed out in contiguous pieces (each streams its own slab of W), taken dynamically: a
//    thread that is descheduled or slowed by other processes (2 cores shared with compilers)
//    delays the call by one piece, not by its whole share;
//  * small products run on the calling thread alone (waking the team costs a few microseconds).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "core/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace kite::kernels::cpu {
namespace {

// A growable, 64-byte aligned buffer; contents are not preserved across growth.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p_); }
  void* get(size_t bytes) {
    if (bytes > cap_) {
      std::free(p_);
      cap_ = (bytes + bytes / 4 + 63) / 64 * 64;
      p_ = std::aligned_alloc(64, cap_);
      check(p_ != nullptr, "matmul: cannot allocate ", cap_, " bytes of scratch");
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

thread_local Scratch t_acts;   // the call's prepared activations (owned by the calling thread)
thread_local Scratch t_panel;  // this thread's A panel (GEMM path)

inline size_t align64(size_t n) { return (n + 63) / 64 * 64; }

// Threads worth using for `work` multiply-adds: waking the team costs a few microseconds, a
// thread streams ~0.5-1 multiply-add per ns from memory in decode.
int team_size(double work) {
  if (omp_in_parallel()) return 1;
  const int max_threads = omp_get_max_threads();
  const double per_thread = 64 * 1024;  // below this many multiply-adds per thread, not worth it
  return static_cast<int>(std::clamp(work / per_thread, 1.0, static_cast<double>(max_threads)));
}

// GEMM rows per chunk: about kChunksPerThread chunks per thread, a multiple of `unit` rows.
constexpr int kChunksPerThread = 8;
inline int64_t chunk_rows(int64_t n, int64_t unit, int n_threads) {
  const int64_t units = (n + unit - 1) / unit;
  return std::max<int64_t>(1, units / (int64_t(n_threads) * kChunksPerThread)) * unit;
}

// The matvec arguments for shape s, with s.x prepared in the kernels' activation format (in this
// thread's scratch, valid until the next call on this thread).
MatvecArgs prepare_matvec(const LevelKernels& lk, const TypeKernels& tk, const MatmulShape& s) {
  MatvecArgs a{s.w, s.w_stride, s.n_in, s.n_out, s.x, {}, s.y, s.n_tok};
  if (tk.act == ActKind::Q8) {
    // [n_tok][n_in] int8, [n_tok][nb] scales and sums, quantized once here for all threads
    const int64_t nb = s.n_in / kQBlock;
    const size_t qs_bytes = align64(s.n_tok * s.n_in), d_bytes = align64(s.n_tok * nb * sizeof(float));
    uint8_t* buf = static_cast<uint8_t*>(t_acts.get(qs_bytes + 2 * d_bytes));
    a.xq = {reinterpret_cast<int8_t*>(buf), reinterpret_cast<float*>(buf + qs_bytes),
            reinterpret_cast<int32_t*>(buf + qs_bytes + d_bytes)};
    for (int t = 0; t < s.n_tok; t++)
      lk.quantize_row_q8(s.x + t * s.n_in, s.n_in, a.xq.qs + t * s.n_in, a.xq.d + t * nb, a.xq.s + t * nb);
  } else if (tk.act == ActKind::Q8K) {
    // [n_tok][n_in] int8, [n_tok][n_in/256] scales, [n_tok][n_in/16] sums
    check(s.n_in % 256 == 0, "matmul: K-quant rows of ", s.n_in, " elements are not a multiple of 256");
    const int64_t nd = s.n_in / 256, ns = s.n_in / 16;
    const size_t qs_bytes = align64(s.n_tok * s.n_in), d_bytes = align64(s.n_tok * nd * sizeof(float));
    uint8_t* buf = static_cast<uint8_t*>(t_acts.get(qs_bytes + d_bytes + s.n_tok * ns * sizeof(int32_t)));
    a.xq = {reinterpret_cast<int8_t*>(buf), reinterpret_cast<float*>(buf + qs_bytes),
            reinterpret_cast<int32_t*>(buf + qs_bytes + d_bytes), nd, ns};
    for (int t = 0; t < s.n_tok; t++)
      quantize_row_q8k(s.x + t * s.n_in, s.n_in, a.xq.qs + t * s.n_in, a.xq.d + t * nd, a.xq.s + t * ns);
  }
#if KITE_X86
  else if (tk.act == ActKind::F16) {
    uint16_t* xh = static_cast<uint16_t*>(t_acts.get(size_t(s.n_tok) * s.n_in * sizeof(uint16_t)));  // [n_tok][n_in]
    avx512::round_row_f16(s.x, int64_t(s.n_tok) * s.n_in, xh);
    a.xh = xh;
  }
#endif
  return a;
}

void run_gemm(const TypeKernels& tk, const MatmulShape& s) {
  const GemmEngine& e = *tk.gemm;
  const int n_tiles = (s.n_tok + e.nr - 1) / e.nr;
  const size_t tile_stride = align64(e.b_tile_bytes(e.nr, s.n_in));
  uint8_t* tiles = static_cast<uint8_t*>(t_acts.get(tile_stride * n_tiles));  // [n_tiles] B tiles
  const int n_threads = team_size(double(s.n_out) * s.n_in * s.n_tok);
  const int64_t chunk = chunk_rows(s.n_out, e.mr, n_threads);
  const int64_t n_chunks = (s.n_out + chunk - 1) / chunk;

#pragma omp parallel num_threads(n_threads)
  {
    // 1. Pack (and quantize) the activations, tiles shared out over the team.
#pragma omp for schedule(static)
    for (int i = 0; i < n_tiles; i++) {
      const int nr = std::min(e.nr, s.n_tok - i * e.nr);
      e.pack_b(s.x + static_cast<int64_t>(i) * e.nr * s.n_in, s.n_in, nr, s.n_in, tk.zero_point, tiles + i * tile_stride);
    }  // implicit barrier: every thread reads all tiles below

    // 2. Chunks of rows; within a chunk, one k block at a time so that the B tiles' k block stays
    //    in L2 while the chunk's row panels pass over it; each A panel is packed once and stays
    //    in L1 across all token tiles.
    void* panel = t_panel.get(e.a_panel_bytes);
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t c = 0; c < n_chunks; c++) {
      const int64_t r0 = c * chunk, r1 = std::min(s.n_out, r0 + chunk);
      for (int64_t k0 = 0; k0 < s.n_in; k0 += e.kc) {
        const int64_t kc = std::min<int64_t>(e.kc, s.n_in - k0);
        for (int64_t r = r0; r < r1; r += e.mr) {
          const int rows = static_cast<int>(std::min<int64_t>(e.mr, r1 - r));
          tk.pack_a(s.w + r * s.w_stride, s.w_stride, rows, k0, kc, panel);
          for (int i = 0; i < n_tiles; i++) {
            const int nr = std::min(e.nr, s.n_tok - i * e.nr);
            e.kernel(panel, tiles + i * tile_stride + e.b_offset(nr, k0), nr, kc,
                     s.y + static_cast<int64_t>(i) * e.nr * s.n_out + r, s.n_out, rows, k0 > 0);
          }
        }
      }
    }
  }
}

}  // namespace

void matmul_with(const LevelKernels& lk, const TypeKernels& tk, const MatmulShape& s) {
  if (s.n_tok <= 0 || s.n_out <= 0) return;
  if (uses_gemm(tk, s.n_tok))
    run_gemm(tk, s);
  else
    matvec_shared_input(lk, tk, std::span<const MatmulShape>(&s, 1));
}

void matvec_shared_input(const LevelKernels& lk, const TypeKernels& tk, std::span<const MatmulShape> shapes) {
  constexpr int kMaxShapes = 4;
  constexpr int64_t kRowUnit = 64;
  const int n = int(shapes.size());
  check(n >= 1 && n <= kMaxShapes, "matvec_shared_input: ", n, " shapes (1 to ", kMaxShapes, ")");
  // One preparation of x serves all: same n_in, n_tok and activation format; only w and y differ.
  MatvecArgs a[kMaxShapes];
  a[0] = prepare_matvec(lk, tk, shapes[0]);
  double work = 0;
  for (int i = 0; i < n; i++) {
    a[i] = a[0];
    a[i].w = shapes[i].w;
    a[i].w_stride = shapes[i].w_stride;
    a[i].n_out = shapes[i].n_out;
    a[i].y = shapes[i].y;
    work += double(shapes[i].n_out) * shapes[i].n_in * shapes[i].n_tok;
  }
  const int n_threads = team_size(work);
  if (n_threads == 1) {
    for (int i = 0; i < n; i++) tk.matvec(a[i], 0, a[i].n_out);
    return;
  }
  // Rows are handed out in units of 64 (the kernels read 4 row streams side by side, packed: 4
  // groups of 16 rows; smaller pieces would leave one-stream passes, at half the speed), in
  // "guided" grabs of remaining / (2 * threads) units: long streams first, small pieces at the end,
  // so that the threads finish together (a thread slowed by another process takes fewer). The
  // shapes' units form one sequence; a grab that spans two shapes is split. Fixed chunks of 1/16
  // of a matrix, taken dynamically, before: Zen 5, TinyLlama Q4_0 decode, alternating runs,
  // 82.2 -> 87.3 tok/s (Q8_0 49.4 -> 50.2). Every row is summed the same way whatever its piece.
  int64_t first[kMaxShapes + 1];  // shape i's units are [first[i], first[i + 1])
  first[0] = 0;
  for (int i = 0; i < n; i++) first[i + 1] = first[i] + (a[i].n_out + kRowUnit - 1) / kRowUnit;
  const int64_t total = first[n], divisor = 2 * int64_t(n_threads);
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(n_threads)
  {
    int64_t u0 = next.load(std::memory_order_relaxed);
    while (u0 < total) {
      const int64_t take = std::max<int64_t>(1, (total - u0 + divisor - 1) / divisor);
      if (!next.compare_exchange_weak(u0, u0 + take, std::memory_order_relaxed)) continue;  // u0 reloaded
      const int64_t u1 = std::min(total, u0 + take);
      for (int i = 0; i < n; i++) {
        const int64_t lo = std::max(u0, first[i]), hi = std::min(u1, first[i + 1]);
        if (lo < hi) tk.matvec(a[i], (lo - first[i]) * kRowUnit, std::min(a[i].n_out, (hi - first[i]) * kRowUnit));
      }
      u0 = next.load(std::memory_order_relaxed);
    }
  }
}

}  // namespace kite::kernels::cpu
