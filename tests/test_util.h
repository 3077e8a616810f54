// Helpers shared by the tests: where the shared test material lives, and how to skip cleanly.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
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

// Result of running the CLI: exit code (128 + signal when killed) and stdout (+ stderr if merged).
struct CliRun {
  int code = -1;
  std::string out;
};

// Runs `kite ARGS` through the shell (with a timeout, so a hang fails instead of blocking);
// merge_stderr: capture stderr too, else discard it.
inline CliRun run_cli(const std::string& args, bool merge_stderr = true, int timeout_s = 600) {
  CliRun r;
  const std::string cmd = "timeout " + std::to_string(timeout_s) + " " + cli_path() + " " + args +
                          (merge_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// A fresh, empty folder under the system temp dir, unique to this process.
inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path d = fs::temp_directory_path() / ("kite_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace kite::test

// Skips the current test with a clear message when a shared file or folder is absent.
#define KITE_REQUIRE_SHARED(rel)                                                        \
  do {                                                                                  \
    if (!::kite::test::path_exists(::kite::test::shared_path(rel)))                     \
      GTEST_SKIP() << "shared test material not found: " << ::kite::test::shared_path(rel) \
                   << " (set KITE_SHARED to the shared/ folder)";                       \
  } while (0)
