// Measures the machine's memory read bandwidth: a read-only, multi-threaded, vectorized sum over
// a buffer much larger than the caches; the best of several passes, in GB/s (1e9 bytes/s).
#pragma once
#include <cstddef>

namespace kite {

double measure_read_bandwidth(int n_threads, size_t bytes = size_t(1) << 30, int passes = 7);

}  // namespace kite
