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
// Sums 64-byte lines with independent accumulators so the loop is bound by loads, not adds.
__attribute__((target_clones("avx512f", "avx2", "default")))
uint64_t sum_lines(const uint64_t* p, size_t n_words) {
  uint64_t a[8] = {0};
  for (size_t i = 0; i + 8 <= n_words; i += 8)
    for (int j = 0; j < 8; j++) a[j] ^= p[i + j];
  return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
}
}  // namespace

double measure_read_bandwidth(int n_threads, size_t bytes, int passes) {
  const size_t n_words = bytes / 8;
  uint64_t* buf = static_cast<uint64_t*>(std::aligned_alloc(64, n_words * 8));
  check(buf != nullptr, "membw: cannot allocate ", bytes, " bytes");
  // Touch every page from the threads that will read it (first-touch placement).
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (size_t i = 0; i < n_words; i++) buf[i] = i;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int p = 0; p < passes; p++) {
    auto t0 = std::chrono::steady_clock::now();
    uint64_t total = 0;
#pragma omp parallel num_threads(n_threads) reduction(^ : total)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t chunk = (n_words / nt) & ~size_t(7);
      total ^= sum_lines(buf + t * chunk, chunk);
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink ^ total;
    best = std::max(best, double(bytes) / sec / 1e9);
  }
  std::free(buf);
  return best;
}

}  // namespace kite
