// CLI of the KV cache and attention work: bench-attn, --kv-type, bench --depth / --prefix-test,
// and their bad-input errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "test_util.h"

using json = nlohmann::json;

namespace {

struct CliRun {
  int code = -1;
  std::string out;  // stdout (+ stderr when asked)
};

CliRun run(const std::string& args, bool with_stderr = true) {
  CliRun r;
  const std::string cmd = "timeout 300 " + kite::test::cli_path() + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}


TEST(KvCli, BenchAttnJson) {
  CliRun r = run("bench-attn --ctx 64,200 -r 1 --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["results"].size(), 2u);
  for (const auto& e : j["results"]) {
    for (const char* k : {"ctx", "naive_ms", "flash_ms", "naive_peak_mb", "flash_peak_mb"})
      EXPECT_TRUE(e.contains(k)) << k;
    EXPECT_EQ(e.size(), 5u);
    EXPECT_GT(e["flash_ms"].get<double>(), 0);
  }
  EXPECT_EQ(j["results"][1]["ctx"], 200);
}

TEST(KvCli, BenchAttnBadInput) {
  CliRun r = run("bench-attn --ctx 64 --heads 6 --kv-heads 4");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("multiple of --kv-heads"), std::string::npos) << r.out;
  r = run("bench-attn --ctx 64 --kv-type q4");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("unknown KV cache type"), std::string::npos) << r.out;
}

}  // namespace
