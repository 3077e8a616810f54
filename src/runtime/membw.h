// Measures the machine's memory read bandwidth: a read-only, multi-threaded, vectorized sum over
// a buffer much larger than the caches, read in two patterns (several prefetched streams per
// thread, or one plain sequential stream: machines differ in which is faster); the best of
// several passes of each, in GB/s (1e9 bytes/s).
#pragma once
#include <cstddef>
#include <cstdint>

namespace kite {

double measure_read_bandwidth(int n_threads, size_t bytes = size_t(1) << 30, int passes = 7);

// The same measurement, repeatable without reallocating: a benchmark can take one right after
// each of its repetitions (on a shared machine the bandwidth moves by 20% within seconds, so a
// single figure taken before the runs is a poor yardstick for each of them).
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(int n_threads, size_t bytes = size_t(1) << 30);
  ~ReadBandwidthProbe();
  ReadBandwidthProbe(const ReadBandwidthProbe&) = delete;
  ReadBandwidthProbe& operator=(const ReadBandwidthProbe&) = delete;
  double measure(int passes);  // best of `passes` of each pattern, GB/s
  // Each pattern's best over every measure() so far, GB/s: which one the machine favours (see
  // kernels::StreamPlan: interleaved ~ streams, sequential ~ one stream).
  double best_streams() const { return best_streams_; }
  double best_sequential() const { return best_sequential_; }

 private:
  double best_streams_ = 0, best_sequential_ = 0;
  int n_threads_;
  size_t n_words_;
  uint64_t* buf_;
};

}  // namespace kite
