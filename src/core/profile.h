// A light op profiler: time per op kind (each matmul by tensor name, attention, norm, rope,
// sampling, tokenizer) as a table, and a Chrome trace (opens in Perfetto / chrome://tracing).
// Off by default: a disabled scope costs one branch.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace kite::profile {

void enable(bool on, bool keep_trace_events = false);
bool enabled();
// While paused, an enabled profiler records nothing (e.g. a benchmark's set-up work).
void pause(bool paused);
void reset();
// Records one interval (microseconds since the profiler's epoch).
void record(const char* category, const std::string& name, int64_t start_us, int64_t dur_us);
int64_t now_us();
// Table of total time per (category, name), sorted by time, as text.
std::string report();
// Writes the recorded events as a Chrome trace JSON file.
void write_trace(const std::string& path);

class Scope {
 public:
  Scope(const char* category, const std::string& name) : on_(enabled()) {
    if (on_) { cat_ = category; name_ = name; t0_ = now_us(); }
  }
  ~Scope() {
    if (on_) record(cat_, name_, t0_, now_us() - t0_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  bool on_;
  const char* cat_ = nullptr;
  std::string name_;
  int64_t t0_ = 0;
};

}  // namespace kite::profile

#define KITE_PROFILE_CONCAT2(a, b) a##b
#define KITE_PROFILE_CONCAT(a, b) KITE_PROFILE_CONCAT2(a, b)
#define KITE_PROFILE(cat, name) ::kite::profile::Scope KITE_PROFILE_CONCAT(kite_prof_, __LINE__)(cat, name)
