#include "runtime/membw.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace kite {

namespace {
constexpr int kStreams = 8;           // sequential streams per thread, read side by side
constexpr size_t kStepWords = 32;     // 256 bytes of each stream per step
constexpr size_t kPrefetchBytes = 512;

// Two ways to read a thread's part of the buffer; a pass takes the faster, since which one a
// machine's prefetchers favour differs (kernels::StreamPlan):
//  - kStreams distant sequential streams at once, each prefetched ahead in software: on the 2-core
//    Xeon this was written on, one stream per thread read ~26 GB/s, 4-8 streams ~45 GB/s (and
//    llama.cpp's decode moves more than the single-stream figure);
//  - one sequential stream without prefetch instructions: on Zen 4 this reads ~30 GB/s per core,
//    the 8 prefetched streams 15-20.
// The xor of every word keeps the loads from being optimised away.
__attribute__((target_clones("avx512f", "avx2", "default")))
uint64_t read_streams(const uint64_t* p, size_t n_words) {
  const size_t part = n_words / kStreams / kStepWords * kStepWords;
  uint64_t a[kStepWords] = {0};
  for (size_t off = 0; off < part; off += kStepWords)
    for (int s = 0; s < kStreams; s++) {
      const uint64_t* q = p + s * part + off;
      __builtin_prefetch(reinterpret_cast<const char*>(q) + kPrefetchBytes);
      __builtin_prefetch(reinterpret_cast<const char*>(q) + kPrefetchBytes + 64);
      __builtin_prefetch(reinterpret_cast<const char*>(q) + kPrefetchBytes + 128);
      __builtin_prefetch(reinterpret_cast<const char*>(q) + kPrefetchBytes + 192);
      for (size_t j = 0; j < kStepWords; j++) a[j] ^= q[j];
    }
  uint64_t r = 0;
  for (size_t j = 0; j < kStepWords; j++) r ^= a[j];
  return r;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
uint64_t read_sequential(const uint64_t* p, size_t n_words) {
  uint64_t a[kStepWords] = {0};
  for (size_t off = 0; off + kStepWords <= n_words; off += kStepWords)
    for (size_t j = 0; j < kStepWords; j++) a[j] ^= p[off + j];
  uint64_t r = 0;
  for (size_t j = 0; j < kStepWords; j++) r ^= a[j];
  return r;
}
}  // namespace

ReadBandwidthProbe::ReadBandwidthProbe(int n_threads, size_t bytes) : n_threads_(n_threads), n_words_(bytes / 8) {
  buf_ = static_cast<uint64_t*>(std::aligned_alloc(64, n_words_ * 8));
  check(buf_ != nullptr, "membw: cannot allocate ", bytes, " bytes");
  // Touch every page from the threads that will read it (first-touch placement).
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (size_t i = 0; i < n_words_; i++) buf_[i] = i;
}

ReadBandwidthProbe::~ReadBandwidthProbe() { std::free(buf_); }

double ReadBandwidthProbe::measure(int passes) {
  const uint64_t* buf = buf_;
  const int n_threads = n_threads_;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int p = 0; p < 2 * passes; p++) {  // the two patterns in turn
    const bool sequential = p % 2 == 1;
    const size_t chunk = n_words_ / n_threads / (kStreams * kStepWords) * (kStreams * kStepWords);
    auto t0 = std::chrono::steady_clock::now();
    uint64_t total = 0;
#pragma omp parallel num_threads(n_threads) reduction(^ : total)
    {
      const uint64_t* part = buf + omp_get_thread_num() * chunk;
      total ^= sequential ? read_sequential(part, chunk) : read_streams(part, chunk);
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink ^ total;
    const double gbs = double(chunk * n_threads * 8) / sec / 1e9;
    best = std::max(best, gbs);
    double& pattern_best = sequential ? best_sequential_ : best_streams_;
    pattern_best = std::max(pattern_best, gbs);
  }
  return best;
}

double measure_read_bandwidth(int n_threads, size_t bytes, int passes) {
  ReadBandwidthProbe probe(n_threads, bytes);
  return probe.measure(passes);
}

}  // namespace kite
