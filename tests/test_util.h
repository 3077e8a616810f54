// Helpers shared by the tests: where the shared test material lives, and how to skip cleanly.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

namespace kite::test {

// The one setting that locates ../shared: the KITE_SHARED environment variable, else the
// directory CMake was configured with (KITE_SHARED_DIR, default <source>/../shared).
inline std::string shared_dir() {
  if (const char* e = std::getenv("KITE_SHARED"); e && *e) return e;
  return KITE_SHARED_DEFAULT;
}

inline std::string shared_path(const std::string& rel) { return shared_dir() + "/" + rel; }

inline bool path_exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

// Path of the kite CLI built alongside the tests.
inline std::string cli_path() { return KITE_CLI_PATH; }

}  // namespace kite::test

// Skips the current test with a clear message when a shared file or folder is absent.
#define KITE_REQUIRE_SHARED(rel)                                                        \
  do {                                                                                  \
    if (!::kite::test::path_exists(::kite::test::shared_path(rel)))                     \
      GTEST_SKIP() << "shared test material not found: " << ::kite::test::shared_path(rel) \
                   << " (set KITE_SHARED to the shared/ folder)";                       \
  } while (0)
