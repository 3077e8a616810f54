// The kite CLI as users and checks run it: JSON outputs, and bad input giving a clear error and a
// non-zero exit (never a crash or a hang).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "core/mmap.h"
#include "test_util.h"

using kite::test::cli_path;
using kite::test::shared_path;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

using Run = kite::test::CliRun;

Run run(const std::string& args) { return kite::test::run_cli(args, true, 120); }

// Runs without stderr (for JSON parsing).
json run_json(const std::string& args) {
  const std::string cmd = cli_path() + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string s;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) s.append(buf.data(), n);
  EXPECT_EQ(pclose(p), 0) << args;
  return json::parse(s);
}

std::string q(const std::string& s) { return "'" + s + "'"; }

fs::path temp_dir(const std::string& name) { return kite::test::fresh_temp_dir("cli_" + name); }

// A bad-input run must fail cleanly: exit 1, a "kite: error:" line mentioning `needle`.
void expect_clean_error(const std::string& args, const std::string& needle) {
  Run r = run(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
  EXPECT_NE(r.out.find("kite: error:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << "message should mention '" << needle << "':\n" << r.out;
}

}  // namespace

TEST(Cli, GenerateJsonGreedyMatchesRunC) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  json j = run_json("generate -m " + q(shared_path("models/stories260K.gguf")) +
                    " -p 'Once upon a time' -n 20 --temp 0 --json -t 2");
  EXPECT_EQ(j["prompt_ids"], json::parse("[1, 403, 407, 261, 378]"));

  ASSERT_EQ(j["ids"].size(), 20u);
  EXPECT_EQ(j["ids"][0], 432);
  EXPECT_TRUE(j["text"].get<std::string>().rfind(", there was a little girl", 0) == 0) << j["text"];
  for (const char* k : {"prompt_tokens", "prompt_ms", "gen_tokens", "gen_ms"}) EXPECT_TRUE(j["timings"].contains(k)) << k;
  EXPECT_EQ(j["timings"]["gen_tokens"], 20);
}

// generate --profile prints a table of time per op (tokenizer, matmuls by tensor name, attention,
// norm, rope, sampling) on stderr, the JSON result staying alone on stdout; --trace writes a
// Chrome trace whose events name the same ops. bench --profile prints the same table.
TEST(Cli, GenerateAndBenchProfileAndTrace) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  const fs::path dir = temp_dir("profile");
  const std::string trace = (dir / "trace.json").string();
  const std::string model = q(shared_path("models/stories260K.gguf"));
  kite::test::CliRun r = run("generate -m " + model + " -p 'Once upon a time' -n 8 --temp 0 -t 1 --profile --trace " + q(trace));
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* row : {"tokenizer  encode", "tokenizer  decode", "sampling   sample", "matmul     output.weight",
                          "attention  attention", "norm       rmsnorm", "rope       rope", "-- by op kind --"})
    EXPECT_NE(r.out.find(row), std::string::npos) << row << "\n" << r.out;
  // Products of one input are timed as one call, named after all of them.
  EXPECT_NE(r.out.find("blk.0.attn_q.weight+blk.0.attn_k.weight+blk.0.attn_v.weight"), std::string::npos) << r.out;
  std::ifstream f(trace);
  ASSERT_TRUE(f) << trace;
  const json t = json::parse(f);
  ASSERT_TRUE(t.contains("traceEvents"));
  std::set<std::string> cats;
  for (const auto& e : t["traceEvents"]) {
    EXPECT_EQ(e["ph"], "X");
    EXPECT_GE(e["dur"].get<int64_t>(), 0);
    cats.insert(e["cat"].get<std::string>());
  }
  for (const char* c : {"tokenizer", "matmul", "attention", "sampling"}) EXPECT_TRUE(cats.count(c)) << c;
  // Without --profile the JSON is unchanged and nothing else is printed to stdout.
  const json j = run_json("generate -m " + model + " -p 'Once upon a time' -n 4 --temp 0 -t 1 --json --profile");
  EXPECT_EQ(j["ids"].size(), 4u);

  kite::test::CliRun b = run("bench -m " + model + " -p 16 -n 4 -r 1 -t 1 --profile --no-membw");
  ASSERT_EQ(b.code, 0) << b.out;
  EXPECT_NE(b.out.find("matmul     output.weight"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("-- by op kind --"), std::string::npos) << b.out;
}

// bench measures the machine's read bandwidth by default whenever it times decode, and reports
// decode as a fraction of it; --no-membw skips that, --membw without a model runs only the probe.
TEST(Cli, BenchReportsTheReadBandwidthByDefault) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  const std::string model = q(shared_path("models/stories260K.gguf"));
  const json j = run_json("bench -m " + model + " -p 8 -n 4 -r 1 -t 1 --json");
  for (const char* k : {"pp", "tg", "membw_gbs", "weight_bytes_per_token"}) EXPECT_TRUE(j.contains(k)) << k << j.dump();
  EXPECT_GT(j["membw_gbs"].get<double>(), 0);
  for (const char* k : {"tok_s_median", "tok_s_min", "tok_s_max", "gbs", "membw_fraction"})
    EXPECT_TRUE(j["tg"].contains(k)) << k << j.dump();
  const json off = run_json("bench -m " + model + " -p 8 -n 4 -r 1 -t 1 --json --no-membw");
  EXPECT_FALSE(off.contains("membw_gbs")) << off.dump();
  EXPECT_TRUE(off["tg"].contains("gbs"));
  const json alone = run_json("bench --membw -t 1 --json");
  EXPECT_GT(alone["membw_gbs"].get<double>(), 0);
  expect_clean_error("bench -m " + model + " --membw --no-membw", "contradict");
}

TEST(Cli, SeededSamplingIsReproducible) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  const std::string args = "generate -m " + q(shared_path("models/stories260K.gguf")) +
                           " -p 'Lily' -n 24 --temp 0.9 --top-k 40 --top-p 0.9 --min-p 0.02 --seed 7 --json";
  json a = run_json(args), b = run_json(args);
  EXPECT_EQ(a["ids"], b["ids"]);
  json c = run_json("generate -m " + q(shared_path("models/stories260K.gguf")) +
                    " -p 'Lily' -n 24 --temp 0.9 --top-k 40 --top-p 0.9 --min-p 0.02 --seed 8 --json");
  EXPECT_NE(a["ids"], c["ids"]);
}

TEST(Cli, StopStringEndsGeneration) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  json j = run_json("generate -m " + q(shared_path("models/stories260K.gguf")) +
                    " -p 'Once upon a time' -n 60 --temp 0 --stop Lily --json");
  EXPECT_EQ(j["stop_reason"], "stop");
  EXPECT_EQ(j["text"], ", there was a little girl named ");
}

TEST(Cli, TokenizeVocabOnlyGguf) {
  KITE_REQUIRE_SHARED("testdata/tokenizer/ggml-vocab-llama-spm.gguf");
  json j = run_json("tokenize -m " + q(shared_path("testdata/tokenizer/ggml-vocab-llama-spm.gguf")) +
                    " -p 'Hello world' --json");
  EXPECT_EQ(j["ids"], json::parse("[1, 15043, 3186]"));
  j = run_json("tokenize -m " + q(shared_path("testdata/tokenizer/ggml-vocab-llama-spm.gguf")) +
               " -p 'Hello world' --no-bos --json");
  EXPECT_EQ(j["ids"], json::parse("[15043, 3186]"));
}

TEST(Cli, PerplexityJson) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  json j = run_json("perplexity -m " + q(shared_path("models/stories260K.gguf")) + " -f " +
                    q(shared_path("corpus/tinystories_valid_head.txt")) + " -c 128 --chunks 3 --json");
  EXPECT_EQ(j["chunks"], 3);
  EXPECT_EQ(j["tokens_scored"], 3 * 63);
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
  EXPECT_LT(j["ppl"].get<double>(), 20.0);
}

TEST(Cli, InfoJson) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  json j = run_json("info -m " + q(shared_path("models/zoo-teacher-34m")) + " --json");
  EXPECT_EQ(j["n_layer"], 8);
  EXPECT_EQ(j["n_head_kv"], 4);
  EXPECT_EQ(j["tensor_types"]["BF16"]["count"], 75);
}

TEST(CliBadInput, MissingModel) { expect_clean_error("generate -m /nonexistent/model.gguf -p hi", "/nonexistent/model.gguf"); }

TEST(CliBadInput, TruncatedGguf) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  fs::path d = temp_dir("trunc");
  std::string data = kite::read_text_file(shared_path("models/stories260K.gguf"));
  for (size_t cut : {size_t(3), size_t(20), size_t(1000), data.size() / 2, data.size() - 1}) {
    std::ofstream(d / "t.gguf", std::ios::binary).write(data.data(), cut);
    expect_clean_error("generate -m " + q((d / "t.gguf").string()) + " -p hi -n 2", "t.gguf");
  }
  fs::remove_all(d);
}

TEST(CliBadInput, ShapesDisagreeWithConfig) {
  KITE_REQUIRE_SHARED("models/stories260K-hf");
  fs::path d = temp_dir("shape");
  fs::copy(shared_path("models/stories260K-hf"), d, fs::copy_options::recursive);
  fs::permissions(d / "config.json", fs::perms::owner_write, fs::perm_options::add);
  json cfg = json::parse(kite::read_text_file((d / "config.json").string()));
  cfg["intermediate_size"] = 200;  // the tensors say 172
  std::ofstream(d / "config.json") << cfg.dump();
  expect_clean_error("generate -m " + q(d.string()) + " -p hi -n 2", "ffn_gate.weight");
  fs::remove_all(d);
}

TEST(CliBadInput, MissingTokenizer) {
  KITE_REQUIRE_SHARED("models/stories260K-hf");
  fs::path d = temp_dir("notok");
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy(shared_path(std::string("models/stories260K-hf/") + f), d / f);
  expect_clean_error("generate -m " + q(d.string()) + " -p hi -n 2", "tokenizer");
  // A llama2.c checkpoint alone, with no tokenizer beside it.
  fs::copy(shared_path("models/stories260K.bin"), d / "model.bin");
  expect_clean_error("generate -m " + q((d / "model.bin").string()) + " -p hi -n 2", "tokenizer");
  fs::remove_all(d);
}

TEST(CliBadInput, PromptLongerThanContext) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  expect_clean_error("generate -m " + q(shared_path("models/stories260K.gguf")) +
                         " -c 8 -p 'Once upon a time there was a little girl named Lily who loved to play' -n 4",
                     "context");
}

TEST(CliBadInput, NotAModel) {
  fs::path d = temp_dir("junk");
  std::ofstream(d / "junk.bin") << "this is not a model file at all";
  expect_clean_error("generate -m " + q((d / "junk.bin").string()) + " -p hi", "junk.bin");
  std::ofstream(d / "fake.gguf", std::ios::binary) << std::string("GGUF\x03\x00\x00\x00", 8) << std::string(16, '\xff');
  expect_clean_error("info -m " + q((d / "fake.gguf").string()), "fake.gguf");
  fs::remove_all(d);
}

TEST(Cli, GeneratedTextContinuesThePrompt) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  // The first generated piece keeps its leading space: the text continues "Once upon a".
  json j = run_json("generate -m " + q(shared_path("models/stories260K.gguf")) + " -p 'Once upon a' -n 3 --temp 0 --json");
  EXPECT_EQ(j["text"].get<std::string>().rfind(" time", 0), 0u) << j["text"];
  // With nothing to continue (BOS alone), SentencePiece's prefix space is dropped, as run.c does.
  j = run_json("generate -m " + q(shared_path("models/stories260K.gguf")) + " -p '' -n 3 --temp 0 --json");
  EXPECT_EQ(j["text"].get<std::string>().rfind("Once", 0), 0u) << j["text"];
}
