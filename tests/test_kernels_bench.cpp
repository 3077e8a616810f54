// Matmul micro-benchmark on TinyLlama-1.1B shapes. Disabled by default (timings have no place in a
// test verdict); run with
//   kite_tests --gtest_also_run_disabled_tests --gtest_filter='KernelsBench.*'
// Settings (environment): KITE_BENCH_TYPES=F16,Q8_0,... (default F32,F16,BF16,Q8_0,Q4_0),
// KITE_BENCH_THREADS=1,2 (default 1 and omp_get_max_threads()), KITE_BENCH_TOK=1,512 (default),
// KITE_KERNELS=ref|avx2|avx512 for a lower kernel level, KITE_BENCH_PACK=0 to time Q8_0/Q4_0 in
// the file layout instead of the packed one, KITE_BENCH_IN_CACHE=1 to time one copy of each matrix
// (in cache when small: the kernels' compute speed rather than memory's), KITE_BENCH_EXACT=1 to
// time batches as speculative verification runs them (kernels::ExactBatchScope: the matvec
// kernels up to 65 tokens, streamed from memory like decode).
//
// Decode (n_tok = 1) is memory-bound: it is timed over copies of the weights totalling > 1 GiB so
// each call streams from DRAM as in a real decode step (a single 8 MB matrix would sit in L3), and
// reported as GB/s of weights and as a fraction of a read-only stream over a 1 GiB buffer measured
// in the same process with the same thread count. Prompt (n_tok = 512) is compute-bound: GFLOP/s.
// Each figure is the median of 5 passes. The last lines estimate TinyLlama tok/s from the matmuls
// alone (22 layers of q,k,v,o,gate,up,down + the output layer).
// On a shared machine, check the printed load average: with 1 thread the "cpu" columns use the
// thread's CPU time, which does not count time spent descheduled; with 2+ threads on a loaded
// machine, OpenMP's spin-waiting makes every parallel region wait for a descheduled thread
// (OMP_WAIT_POLICY=passive helps there; on an idle machine the default is faster).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <time.h>

using namespace kite;
namespace kk = kite::kernels;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double thread_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<std::string> env_list(const char* name, const std::string& def) {
  const char* e = std::getenv(name);
  std::stringstream ss(e && *e ? e : def);
  std::vector<std::string> out;
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

DType type_by_name(const std::string& n) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0})
    if (n == dtype_name(t)) return t;
  ADD_FAILURE() << "unknown type " << n;
  return DType::F32;
}

// ---- read bandwidth ------------------------------------------------------------------------------
#if defined(__x86_64__)
__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(p + i + 24));
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

float sum_plain(const float* p, size_t n) {
  float s[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) s[j] += p[i + j];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// Best-of-5 read bandwidth (GB/s) of `threads` threads each summing its share of buf [n floats].
double read_bandwidth(const float* buf, size_t n, int threads) {
  bool avx2 = false;
#if defined(__x86_64__)
  avx2 = __builtin_cpu_supports("avx2");
#endif
  double best = 0;
  volatile float sink = 0;
  for (int rep = 0; rep < 5; rep++) {
    const double t0 = now_s();
#pragma omp parallel num_threads(threads)
    {
      const int i = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t lo = n / nt * i / 32 * 32, hi = i == nt - 1 ? n : n / nt * (i + 1) / 32 * 32;
      float s;
#if defined(__x86_64__)
      s = avx2 ? sum_avx2(buf + lo, hi - lo) : sum_plain(buf + lo, hi - lo);
#else
      s = sum_plain(buf + lo, hi - lo);
#endif
#pragma omp critical
      sink = sink + s;
    }
    best = std::max(best, n * sizeof(float) / (now_s() - t0) / 1e9);
  }
  return best;
}

// ---- matmul --------------------------------------------------------------------------------------
struct Shape {
  const char* name;
  int n_in, n_out;
  int per_token;  // times per token in TinyLlama (22 layers)
};
const Shape kShapes[] = {
    {"attn q,o  2048x2048", 2048, 2048, 2 * 22},
    {"attn k,v  2048x256 ", 2048, 256, 2 * 22},
    {"ffn up    2048x5632", 2048, 5632, 2 * 22},
    {"ffn down  5632x2048", 5632, 2048, 22},
    {"output    2048x32000", 2048, 32000, 1},
};

struct Result {
  double seconds, gbs, gflops;  // wall time
  double cpu_seconds;           // the calling thread's CPU time (meaningful with 1 thread)
};

// Times y = W x with n_tok tokens: over enough copies of W to exceed the caches when n_tok is small.
Result time_matmul(DType type, const Shape& s, int n_tok) {
  const size_t rb = row_bytes(type, s.n_in), wbytes = rb * s.n_out;
  const bool in_cache = std::getenv("KITE_BENCH_IN_CACHE") != nullptr;  // one copy: compute speed
  const bool exact = std::getenv("KITE_BENCH_EXACT") != nullptr;
  std::optional<kk::ExactBatchScope> exact_scope;
  if (exact) exact_scope.emplace();
  const bool streamed = n_tok <= 4 || kk::exact_batch(n_tok);  // decode-like: W from memory
  const int copies = streamed && !in_cache ? static_cast<int>(std::max<size_t>(1, (size_t(1) << 30) / wbytes)) : 1;
  std::vector<uint8_t> w(wbytes * copies);  // [copies][n_out] rows
  {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<float> f(size_t(s.n_in) * s.n_out);
    for (float& v : f) v = nd(rng);
    quantize_rows(type, f.data(), w.data(), s.n_out, s.n_in);
    for (int c = 1; c < copies; c++) std::memcpy(w.data() + c * wbytes, w.data(), wbytes);
  }
  std::vector<float> x(size_t(n_tok) * s.n_in), y(size_t(n_tok) * s.n_out);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(rng);
  Tensor t;
  t.type = type;
  t.n_dims = 2;
  t.ne = {s.n_in, s.n_out, 1, 1};
  t.nbytes = wbytes;
  // KITE_BENCH_PACK=0: the file layout; otherwise the packed one where the level has it (as loaded models).
  std::vector<std::shared_ptr<void>> packs(copies);
  const char* pack_env = std::getenv("KITE_BENCH_PACK");
  if (!(pack_env && std::string(pack_env) == "0"))
    for (int c = 0; c < copies; c++) {
      t.data = w.data() + c * wbytes;
      packs[c] = kk::pack_weights(t);
    }
  // Calls per pass: every copy once (decode), or enough for ~0.3 s (prompt).
  t.data = w.data();
  t.packed = packs[0].get();
  kk::matmul(t, x.data(), y.data(), n_tok);  // warm-up: scratch buffers, thread team
  double t0 = now_s();
  kk::matmul(t, x.data(), y.data(), n_tok);
  const double once = now_s() - t0;
  const int calls = streamed ? std::max(copies, static_cast<int>(0.2 / once)) : std::max(1, static_cast<int>(0.3 / once));
  std::vector<double> passes, cpu_passes;
  for (int p = 0; p < 5; p++) {
    t0 = now_s();
    const double c0 = thread_cpu_s();
    for (int c = 0; c < calls; c++) {
      t.data = w.data() + (c % copies) * wbytes;
      t.packed = packs[c % copies].get();
      kk::matmul(t, x.data(), y.data(), n_tok);
    }
    cpu_passes.push_back((thread_cpu_s() - c0) / calls);
    passes.push_back((now_s() - t0) / calls);
  }
  const double sec = median(passes);
  return {sec, wbytes / sec / 1e9, 2.0 * s.n_in * s.n_out * n_tok / sec / 1e9, median(cpu_passes)};
}

}  // namespace

TEST(KernelsBench, DISABLED_MatmulTinyLlamaShapes) {
  std::vector<int> thread_counts;
  for (const std::string& t : env_list("KITE_BENCH_THREADS", "1," + std::to_string(omp_get_max_threads())))
    if (thread_counts.empty() || thread_counts.back() != std::stoi(t)) thread_counts.push_back(std::stoi(t));
  std::vector<int> toks;
  for (const std::string& t : env_list("KITE_BENCH_TOK", "1,512")) toks.push_back(std::stoi(t));
  const std::vector<std::string> types = env_list("KITE_BENCH_TYPES", "F32,F16,BF16,Q8_0,Q4_0");
  std::printf("kernel level: %s, load average at start: %s\n", kk::kernel_level_name(kk::kernel_level()),
              loadavg().c_str());
  const int saved_threads = omp_get_max_threads();
  const size_t n = (size_t(1) << 30) / sizeof(float);  // 1 GiB stream buffer, first touched in parallel
  std::unique_ptr<float, decltype(&std::free)> buf(static_cast<float*>(std::aligned_alloc(64, n * sizeof(float))), &std::free);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) buf.get()[i] = 1.0f;
  for (int threads : thread_counts) {
    omp_set_num_threads(threads);
    const double bw = read_bandwidth(buf.get(), n, threads);
    std::printf("\n== %d thread(s): read stream %.1f GB/s (best of 5 over 1 GiB)\n", threads, bw);
    for (const std::string& tn : types) {
      const DType type = type_by_name(tn);
      for (int n_tok : toks) {
        double per_token_s = 0, per_token_cpu_s = 0;  // TinyLlama matmul time per token
        for (const Shape& s : kShapes) {
          const Result r = time_matmul(type, s, n_tok);
          per_token_s += r.seconds * s.per_token / n_tok;
          per_token_cpu_s += r.cpu_seconds * s.per_token / n_tok;
          std::printf("%-5s n_tok=%-3d %s %9.1f us %6.1f GB/s (%3.0f%% of stream) %7.1f GFLOP/s", tn.c_str(), n_tok,
                      s.name, r.seconds * 1e6, r.gbs, 100 * r.gbs / bw, r.gflops);
          if (threads == 1)
            std::printf("  | cpu: %6.1f GB/s %7.1f GFLOP/s", r.gbs * r.seconds / r.cpu_seconds,
                        r.gflops * r.seconds / r.cpu_seconds);
          std::printf("\n");
        }
        std::printf("%-5s n_tok=%-3d TinyLlama matmuls only: %.1f tok/s", tn.c_str(), n_tok, 1 / per_token_s);
        if (threads == 1) std::printf("  | cpu: %.1f tok/s", 1 / per_token_cpu_s);
        std::printf("\n");
      }
    }
  }
  omp_set_num_threads(saved_threads);
  std::printf("load average at end: %s\n", loadavg().c_str());
}
