// CLI of the KV cache and attention work: bench-attn, --kv-type, bench --depth / --prefix-test / --verify-batch,
// and their bad-input errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <sstream>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "test_util.h"

using json = nlohmann::json;

namespace {

using kite::test::CliRun;
CliRun run(const std::string& args, bool with_stderr = true) { return kite::test::run_cli(args, with_stderr, 300); }


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

namespace {

// Quoted shared path (appended piecewise: GCC 12 warns falsely on "'" + std::string, bug 105329).
std::string shared_q(const std::string& rel) {
  std::string s(1, '\'');
  s += kite::test::shared_path(rel);
  s += '\'';
  return s;
}

// --prompt-cache: a second run with a longer prompt reuses the saved prefix and prints the same
// text as a run without the cache; a file for another model, another KV type, or a corrupted
// one is a clear error.
TEST(KvCli, PromptCacheRoundTripAndErrors) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  KITE_REQUIRE_SHARED("models/zoo-draft-7m");
  const std::string file = "/tmp/kite_prompt_cache_" + std::to_string(::getpid()) + ".bin";
  std::remove(file.c_str());
  const std::string m = "-m " + shared_q("models/zoo-teacher-34m");
  const std::string p = "The little robot looked at the sky and wondered why the stars were so far";
  const std::string gen = "generate " + m + " -n 12 --temp 0 --json -c 256 ";
  CliRun a = run(gen + "-p '" + p + "' --prompt-cache " + file, false);
  ASSERT_EQ(a.code, 0) << a.out;
  CliRun b = run(gen + "-p '" + p + " away' --prompt-cache " + file);
  ASSERT_EQ(b.code, 0) << b.out;
  EXPECT_NE(b.out.find("reused"), std::string::npos) << b.out;
  CliRun plain = run(gen + "-p '" + p + " away'", false);
  ASSERT_EQ(plain.code, 0);
  const auto jb = json::parse(b.out.substr(b.out.find('{')));
  EXPECT_EQ(jb["ids"], json::parse(plain.out)["ids"]);

  CliRun other = run("generate -m " + shared_q("models/zoo-draft-7m") + " -n 2 -p 'x' --prompt-cache " + file);
  EXPECT_EQ(other.code, 1);
  EXPECT_NE(other.out.find("different model"), std::string::npos) << other.out;
  CliRun type = run(gen + "-p 'x' --kv-type q8_0 --prompt-cache " + file);
  EXPECT_EQ(type.code, 1);
  EXPECT_NE(type.out.find("--kv-type"), std::string::npos) << type.out;
  {  // flip one byte in the middle
    FILE* f = std::fopen(file.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 200, SEEK_SET);
    const int c = std::fgetc(f);
    std::fseek(f, 200, SEEK_SET);
    std::fputc(c ^ 0x5a, f);
    std::fclose(f);
  }
  CliRun bad = run(gen + "-p 'x' --prompt-cache " + file);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("corrupted"), std::string::npos) << bad.out;
  std::remove(file.c_str());
}

// bench --depth and --verify-batch: one entry per value, the verify costs relative to the first
// size; sizes outside 1..65 are a clear error.
TEST(KvCli, BenchDepthAndVerifyBatchJson) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  const std::string m = "bench -m " + shared_q("models/stories260K.gguf") + " -t 1 -r 1 --no-membw ";
  CliRun r = run(m + "-p 16 -n 4 --depth 8,40 --verify-batch 1,3,5 --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["depths"].size(), 2u);
  EXPECT_EQ(j["depths"][1]["depth"], 40);
  EXPECT_GT(j["depths"][1]["tg_tok_s"].get<double>(), 0);
  ASSERT_EQ(j["verify"].size(), 3u);
  EXPECT_EQ(j["verify"][2]["tokens"], 5);
  EXPECT_DOUBLE_EQ(j["verify"][0]["vs_first"].get<double>(), 1.0);
  EXPECT_GT(j["verify"][2]["ms"].get<double>(), 0);
  CliRun bad = run(m + "-p 16 -n 0 --verify-batch 1,66");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("--verify-batch"), std::string::npos) << bad.out;
}

// bench --streams: one entry per stream plan, in the order given; an unknown plan is a clear error.
// --profile with --depth covers the deepest depth's decode steps only: one attention call per
// layer and token, no prompt-sized calls.
TEST(KvCli, BenchStreamsAndDepthProfile) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  const std::string m = "bench -m " + shared_q("models/stories260K.gguf") + " -t 1 -r 2 -p 0 --no-membw ";
  CliRun r = run(m + "-n 4 --streams sequential,interleaved --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["streams"].size(), 2u);
  EXPECT_EQ(j["streams"][0]["plan"], "sequential");
  EXPECT_EQ(j["streams"][1]["plan"], "interleaved");
  EXPECT_GT(j["streams"][1]["tg_tok_s"].get<double>(), 0);
  CliRun bad = run(m + "-n 4 --streams fast");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("unknown plan 'fast'"), std::string::npos) << bad.out;

  CliRun prof = run(m + "-n 3 --depth 8,40 --profile", false);
  ASSERT_EQ(prof.code, 0) << prof.out;
  // stories260K: 5 layers; -r 2 x -n 3 decode steps at depth 40, plus the plain tg run's 1 + 3
  // steps per repetition (its profile is reset when --depth starts): 5 x 6 = 30 calls.
  const size_t at = prof.out.find("attention  attention");
  ASSERT_NE(at, std::string::npos) << prof.out;
  std::istringstream line(prof.out.substr(at + 21));
  double ms = 0;
  int calls = 0;
  line >> ms >> calls;
  EXPECT_EQ(calls, 30) << prof.out.substr(at, 120);
}

TEST(KvCli, KvBudgetTooSmallIsAClearError) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  CliRun r = run("generate -m " + shared_q("models/zoo-teacher-34m") + " -p hi -n 2 -c 512 --kv-mem 4");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("KV cache budget too small"), std::string::npos) << r.out;
}

}  // namespace
