// Malformed tokenizer files: every loader must answer with a kite::Error (naming the file) or
// load something usable, never crash, hang or read out of bounds (run these under ASan/UBSan).
// Includes randomized truncation/byte-flip corruption of tokenizer.model and tokenizer.bin with
// a fixed seed, hand-made bad JSON / GGUF / VocabData, and a GGUF export round trip.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/mmap.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_gguf.h"

using namespace kite;
using kite::test::shared_path;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("kite_tokrob_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const fs::path p = path / name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    return p.string();
  }
};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A loaded tokenizer must also survive use.
void exercise(const Tokenizer& t) {
  const std::string text = "Hello wörld, 你好 🦙!\n\t  <s>x</s>";
  for (bool special : {false, true}) {
    try {
      const auto ids = t.encode(text, true, special);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t.n_vocab());
      (void)t.decode(ids);
      StreamDecoder s(t);
      for (int32_t id : ids) (void)s.push(id);
      (void)s.flush();
    } catch (const Error&) {
      // e.g. a byte with neither a byte token nor UNK: a clean error is fine.
    }
  }
}

// Corrupts `original` `attempts` times (truncation, byte flips, or both) and loads each result.
// Returns how many attempts were rejected with kite::Error.
int fuzz_loader(const std::string& original, const std::string& name, int attempts,
                const std::function<Tokenizer(const std::string&)>& load) {
  std::mt19937 rng(20240607);
  TempDir d;
  int rejected = 0;
  for (int a = 0; a < attempts; a++) {
    std::string bytes = original;
    const int mode = static_cast<int>(rng() % 3);
    if (mode != 1) bytes.resize(rng() % bytes.size());
    if (mode != 0 && !bytes.empty()) {
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; f++) bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    const std::string path = d.write(name, bytes);
    try {
      const Tokenizer t = load(path);
      exercise(t);
    } catch (const Error& e) {
      rejected++;
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "attempt " << a << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "attempt " << a << " (mode " << mode << "): not a kite::Error: " << e.what();
    }
  }
  return rejected;
}

// Expects a kite::Error whose message contains `part`.
template <class F>
void expect_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected a kite::Error mentioning '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

VocabData small_vocab() {
  VocabData v;
  v.type = VocabType::SPM;
  v.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a"};
  v.token_types = {TokenType::Unknown, TokenType::Control, TokenType::Control, TokenType::Normal, TokenType::Normal};
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.source = "small.vocab";
  return v;
}

}  // namespace

TEST(TokenizerRobustness, FuzzSentencePieceModel) {
  KITE_REQUIRE_SHARED("models/tok512.model");
  const int rejected = fuzz_loader(read_bytes(shared_path("models/tok512.model")), "tokenizer.model", 400,
                                   [](const std::string& p) { return Tokenizer::from_sentencepiece_model(p); });
  EXPECT_GT(rejected, 100);
}

TEST(TokenizerRobustness, FuzzLlama2cBin) {
  KITE_REQUIRE_SHARED("models/tok512.bin");
  const int rejected = fuzz_loader(read_bytes(shared_path("models/tok512.bin")), "tokenizer.bin", 400,
                                   [](const std::string& p) { return Tokenizer::from_llama2c(p); });
  EXPECT_GT(rejected, 100);
}

TEST(TokenizerRobustness, FuzzTokenizerJsonTruncation) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m/tokenizer.json");
  const int rejected = fuzz_loader(read_bytes(shared_path("models/zoo-teacher-34m/tokenizer.json")),
                                   "tokenizer.json", 12, [](const std::string& p) { return Tokenizer::from_hf_json(p); });
  EXPECT_GT(rejected, 0);
}

TEST(TokenizerRobustness, SentencePieceModelErrors) {
  TempDir d;
  expect_error([&] { Tokenizer::from_sentencepiece_model(d.write("empty.model", "")); }, "no pieces");
  expect_error([&] { Tokenizer::from_sentencepiece_model((d.path / "absent.model").string()); }, "absent.model");
  // One piece "a" (field 1), then trainer_spec.model_type = 1 (UNIGRAM).
  const std::string piece = std::string("\x0a\x03\x0a\x01\x61", 5);
  expect_error([&] { Tokenizer::from_sentencepiece_model(d.write("unigram.model", piece + std::string("\x12\x02\x18\x01", 4))); },
               "model_type");
  // Group wire type (3) is not supported.
  expect_error([&] { Tokenizer::from_sentencepiece_model(d.write("group.model", piece + "\x1b")); }, "wire type");
  // A length that runs past the end.
  expect_error([&] { Tokenizer::from_sentencepiece_model(d.write("long.model", std::string("\x0a\x7f\x0a", 3))); },
               "past the end");
  // bos_id out of range.
  expect_error([&] { Tokenizer::from_sentencepiece_model(d.write("bos.model", piece + std::string("\x12\x05\x18\x02\xc8\x02\x05", 7))); },
               "bos_id");
}

TEST(TokenizerRobustness, Llama2cErrors) {
  TempDir d;
  auto rec = [](float score, int32_t len, const std::string& s) {
    std::string b(8, '\0');
    std::memcpy(b.data(), &score, 4);
    std::memcpy(b.data() + 4, &len, 4);
    return b + s;
  };
  auto header = [](int32_t max_len) { return std::string(reinterpret_cast<const char*>(&max_len), 4); };
  expect_error([&] { Tokenizer::from_llama2c(d.write("t.bin", "ab")); }, "too short");
  expect_error([&] { Tokenizer::from_llama2c(d.write("t.bin", header(0))); }, "max_token_length");
  expect_error([&] { Tokenizer::from_llama2c(d.write("t.bin", header(4))); }, "no tokens");
  expect_error([&] { Tokenizer::from_llama2c(d.write("t.bin", header(4) + rec(0, -1, ""))); }, "length -1");
  expect_error([&] { Tokenizer::from_llama2c(d.write("t.bin", header(4) + rec(0, 3, "ab"))); }, "past the end");
  expect_error([&] { Tokenizer::from_llama2c(d.write("t.bin", header(4) + rec(0, 1, "a") + "xyz")); }, "truncated");
  expect_error([&] { Tokenizer::from_llama2c(d.write("t.bin", header(4) + rec(NAN, 1, "a"))); }, "NaN");
  // Byte tokens present but incomplete: byte fallback would be impossible.
  expect_error([&] { Tokenizer::from_llama2c(d.write("t.bin", header(6) + rec(0, 6, "<0x41>") + rec(0, 1, "a"))); },
               "<0x00>");
  const Tokenizer ok = Tokenizer::from_llama2c(d.write("t.bin", header(5) + rec(0, 5, "<unk>") + rec(0, 1, "a")));
  EXPECT_EQ(ok.encode("aa", false), (std::vector<int32_t>{0, 1, 1}));  // " " is unknown -> <unk>
}

TEST(TokenizerRobustness, HfJsonErrors) {
  TempDir d;
  auto load = [&](const std::string& json) { return Tokenizer::from_hf_json(d.write("tokenizer.json", json)); };
  const std::string meta = R"("pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false})";
  expect_error([&] { load("{\"model\": "); }, "invalid JSON");
  expect_error([&] { load("[1, 2]"); }, "not a JSON object");
  expect_error([&] { load("{}"); }, "'model'");
  expect_error([&] { load(R"({"model": {"type": "Unigram", "vocab": []}})"); }, "Unigram");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, )" + meta + "}"); }, "empty");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 7}, "merges": []}, )" + meta + "}"); },
               "out of range");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": -1}, "merges": []}, )" + meta + "}"); },
               "-1");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}, )" + meta + "}"); },
               "used by both");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}, )" + meta + "}"); },
               "non-integer");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}, )" + meta + "}"); },
               "merges entry");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0, "aa": 1}, "merges": ["aa"]}, )" + meta + "}"); },
               "merge #0");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": true}, )" + meta + "}"); },
               "<0x00>");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}, )" + meta + "}"); },
               "unk_token");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 5, "content": "<x>"}], )" + meta + "}"); },
               "out of range");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})"); }, "cannot tell");
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": 1}, )" + meta + "}"); },
               "not a boolean");
  // A minimal valid one loads and works.
  const Tokenizer t = load(R"({"model": {"type": "BPE", "vocab": {"<unk>": 0, "▁": 1, "a": 2, "▁a": 3}, "merges": [["▁", "a"]], "unk_token": "<unk>"}, )" + meta + "}");
  EXPECT_EQ(t.encode("a a", false), (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(t.encode("ab", false), (std::vector<int32_t>{3, 0}));
}

TEST(TokenizerRobustness, VocabDataValidation) {
  expect_error([] { VocabData v = small_vocab(); v.tokens.clear(); v.token_types.clear(); Tokenizer t(std::move(v)); },
               "empty");
  expect_error([] { VocabData v = small_vocab(); v.bos = 5; Tokenizer t(std::move(v)); }, "BOS id 5");
  expect_error([] { VocabData v = small_vocab(); v.eos = -7; Tokenizer t(std::move(v)); }, "EOS id -7");
  expect_error([] { VocabData v = small_vocab(); v.token_types.pop_back(); Tokenizer t(std::move(v)); }, "token_type");
  expect_error([] { VocabData v = small_vocab(); v.token_types[4] = static_cast<TokenType>(9); Tokenizer t(std::move(v)); },
               "token type 9");
  expect_error([] { VocabData v = small_vocab(); v.scores = {0, 0, 0, 0, NAN}; Tokenizer t(std::move(v)); }, "NaN");
  expect_error([] { VocabData v = small_vocab(); v.byte_fallback = true; Tokenizer t(std::move(v)); }, "<0x00>");
  expect_error([] { VocabData v = small_vocab(); v.rstrip_ids = {99}; Tokenizer t(std::move(v)); }, "99");
  expect_error([] { VocabData v = small_vocab(); v.type = VocabType::BPE; v.merges = {"ab"}; Tokenizer t(std::move(v)); },
               "merge #0");
  const Tokenizer t(small_vocab());
  EXPECT_EQ(t.encode("a", true), (std::vector<int32_t>{1, 3, 4}));
  EXPECT_THROW(t.decode({0, 5}), Error);
}

TEST(TokenizerRobustness, GgufVocabErrors) {
  TempDir d;
  auto base = [] {
    GGUFWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_array_str("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a"});
    w.set_array_f32("tokenizer.ggml.scores", {0, 0, 0, -1, -1});
    w.set_array_i32("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
    return w;
  };
  auto load = [&](const GGUFWriter& w) {
    const std::string p = (d.path / "vocab.gguf").string();
    w.write(p);
    return Tokenizer::from_gguf(*GGUFFile::open(p));
  };
  EXPECT_EQ(load(base()).encode("a", true), (std::vector<int32_t>{1, 3, 4}));
  {
    GGUFWriter w = base();
    w.set_string("tokenizer.ggml.model", "bert");
    expect_error([&] { load(w); }, "bert");
  }
  {
    GGUFWriter w = base();
    w.remove("tokenizer.ggml.model");
    expect_error([&] { load(w); }, "tokenizer.ggml.model");
  }
  {
    GGUFWriter w = base();
    w.set_array_str("tokenizer.ggml.tokens", {});
    expect_error([&] { load(w); }, "empty");
  }
  {
    GGUFWriter w = base();
    w.set_array_i32("tokenizer.ggml.token_type", {2, 3, 3, 1});
    expect_error([&] { load(w); }, "token_type");
  }
  {
    GGUFWriter w = base();
    w.set_array_i32("tokenizer.ggml.token_type", {2, 3, 3, 1, 42});
    expect_error([&] { load(w); }, "42");
  }
  {
    GGUFWriter w = base();
    w.set_array_f32("tokenizer.ggml.scores", {0, 0});
    expect_error([&] { load(w); }, "scores");
  }
  {
    GGUFWriter w = base();
    w.set_u32("tokenizer.ggml.bos_token_id", 77);
    expect_error([&] { load(w); }, "bos_token_id");
  }
  {
    GGUFWriter w = base();
    w.set_u32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);  // llama.cpp's "none"
    EXPECT_EQ(load(w).vocab().pad, -1);
  }
  {
    GGUFWriter w = base();  // a byte token without the other 255
    w.set_array_str("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "<0x41>"});
    w.set_array_i32("tokenizer.ggml.token_type", {2, 3, 3, 1, 6});
    expect_error([&] { load(w); }, "<0x00>");
  }
  {
    GGUFWriter w = base();  // gpt2 without merges
    w.set_string("tokenizer.ggml.model", "gpt2");
    expect_error([&] { load(w); }, "tokenizer.ggml.merges");
  }
}

// A tokenizer.json vocabulary written to GGUF (tokenizer/vocab_gguf.h) and read back: the GGUF
// merges by score, with the scores derived from the merge ranks, and must give the same ids.
TEST(TokenizerRobustness, ZooJsonThroughGgufRoundTrip) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m/tokenizer.json");
  KITE_REQUIRE_SHARED("corpus/zoo/valid.txt");
  const Tokenizer hf = Tokenizer::from_hf_json(shared_path("models/zoo-teacher-34m/tokenizer.json"));
  TempDir d;
  GGUFWriter w;
  w.set_string("general.architecture", "llama");
  write_vocab_gguf(hf.vocab(), w);
  const std::string p = (d.path / "zoo-vocab.gguf").string();
  w.write(p);
  const Tokenizer gg = Tokenizer::from_gguf(*GGUFFile::open(p));
  EXPECT_TRUE(gg.vocab().merges.empty());
  const std::string text = read_text_file(shared_path("corpus/zoo/valid.txt")).substr(0, 150000);
  EXPECT_TRUE(hf.encode(text, true) == gg.encode(text, true));
}
