// Errors: every failure Kite reports is a kite::Error whose message names the file, the field
// and the offending value. Callers (the CLI) print it and exit non-zero; nothing aborts.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace kite {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// fail("file ", path, ": field '", key, "' = ", v) — concatenates its arguments with operator<<.
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(os.str());
}

// check(cond, ...) — throws kite::Error with the message when cond is false.
template <class... Args>
void check(bool cond, const Args&... args) {
  if (!cond) fail(args...);
}

}  // namespace kite
