#include "core/profile.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace kite::profile {

namespace {
struct Event {
  const char* cat;
  std::string name;
  int64_t start, dur;
};
struct State {
  bool on = false, trace = false, paused = false;
  std::mutex mu;
  std::map<std::pair<std::string, std::string>, std::pair<int64_t, int64_t>> totals;  // -> (us, calls)
  std::vector<Event> events;
  std::chrono::steady_clock::time_point epoch = std::chrono::steady_clock::now();
};
State& state() {
  static State s;
  return s;
}
}  // namespace

void enable(bool on, bool keep_trace_events) {
  state().on = on;
  state().trace = keep_trace_events;
}
bool enabled() { return state().on && !state().paused; }
void pause(bool paused) { state().paused = paused; }

void reset() {
  std::lock_guard<std::mutex> lock(state().mu);
  state().totals.clear();
  state().events.clear();
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - state().epoch)
      .count();
}

void record(const char* category, const std::string& name, int64_t start_us, int64_t dur_us) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto& t = s.totals[{category, name}];
  t.first += dur_us;
  t.second++;
  if (s.trace) s.events.push_back({category, name, start_us, dur_us});
}

std::string report() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<std::pair<std::pair<std::string, std::string>, std::pair<int64_t, int64_t>>> rows(s.totals.begin(),
                                                                                              s.totals.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  int64_t total = 0;
  std::map<std::string, int64_t> by_cat;
  for (auto& r : rows) {
    total += r.second.first;
    by_cat[r.first.first] += r.second.first;
  }
  std::string out;
  // The name column as wide as the longest name (products sharing an input are named
  // "blk.0.attn_q.weight+blk.0.attn_k.weight+..."), capped so a line stays readable.
  int w = 32;
  for (auto& r : rows) w = std::max(w, std::min(96, int(r.first.second.size())));
  char line[512];
  std::snprintf(line, sizeof line, "%-10s %-*s %10s %8s %10s %6s\n", "op", w, "name", "total ms", "calls", "us/call", "%");
  out += line;
  for (auto& [key, v] : rows) {
    std::snprintf(line, sizeof line, "%-10s %-*.*s %10.2f %8lld %10.1f %5.1f%%\n", key.first.c_str(), w, w,
                  key.second.c_str(), v.first / 1000.0, static_cast<long long>(v.second),
                  double(v.first) / std::max<int64_t>(1, v.second), total ? 100.0 * v.first / total : 0.0);
    out += line;
  }
  out += "-- by op kind --\n";
  for (auto& [cat, us] : by_cat) {
    std::snprintf(line, sizeof line, "%-10s %10.2f ms %5.1f%%\n", cat.c_str(), us / 1000.0, total ? 100.0 * us / total : 0.0);
    out += line;
  }
  return out;
}

void write_trace(const std::string& path) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::ofstream f(path);
  if (!f) fail("cannot write trace file '", path, "'");
  f << "{\"traceEvents\":[\n";
  for (size_t i = 0; i < s.events.size(); i++) {
    const Event& e = s.events[i];
    std::string name;
    for (char c : e.name) {
      if (c == '"' || c == '\\') name += '\\';
      name += c;
    }
    f << "{\"name\":\"" << name << "\",\"cat\":\"" << e.cat << "\",\"ph\":\"X\",\"ts\":" << e.start
      << ",\"dur\":" << e.dur << ",\"pid\":1,\"tid\":1}" << (i + 1 < s.events.size() ? ",\n" : "\n");
  }
  f << "],\"displayTimeUnit\":\"ms\"}\n";
}

}  // namespace kite::profile
