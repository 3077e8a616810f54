// The zoo models' tokenizer: tokenizer.model (merged by score, as SentencePiece) and
// tokenizer.json (merged by rank, as Hugging Face) and the llama.cpp-made GGUF must give the
// same ids on the whole validation corpus, and reproduce the golden prompt ids.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace kite;
using kite::test::shared_path;

namespace {

const char* kModelDir = "models/zoo-teacher-34m";

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int32_t> timed_encode(const Tokenizer& tok, const std::string& text, const char* what) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tok.encode(text, true);
  std::printf("[ zoo      ] %s: %zu bytes -> %zu tokens in %.3f s\n", what, text.size(), ids.size(), seconds_since(t0));
  return ids;
}

// Index of the first difference, with some context for the failure message.
std::string first_difference(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) i++;
  if (i == a.size() && i == b.size()) return "identical";
  std::string s = "first difference at token " + std::to_string(i) + ":";
  for (size_t k = i; k < i + 8 && k < a.size(); k++) s.append(" ").append(std::to_string(a[k]));
  s += " vs";
  for (size_t k = i; k < i + 8 && k < b.size(); k++) s.append(" ").append(std::to_string(b[k]));
  return s;
}

}  // namespace

TEST(TokenizerZoo, ModelJsonAndGgufAgreeOnValidationCorpus) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m/tokenizer.model");
  KITE_REQUIRE_SHARED("corpus/zoo/valid.txt");
  const std::string text = read_text_file(shared_path("corpus/zoo/valid.txt"));
  const Tokenizer spm = Tokenizer::from_sentencepiece_model(shared_path(std::string(kModelDir) + "/tokenizer.model"));
  const Tokenizer hf = Tokenizer::from_hf_json(shared_path(std::string(kModelDir) + "/tokenizer.json"));
  EXPECT_TRUE(hf.vocab().byte_fallback);
  EXPECT_FALSE(hf.vocab().merges.empty());  // merged by rank
  EXPECT_TRUE(spm.vocab().merges.empty());  // merged by score

  const auto a = timed_encode(spm, text, "tokenizer.model");
  const auto b = timed_encode(hf, text, "tokenizer.json");
  ASSERT_GT(a.size(), 100000u);
  EXPECT_EQ(a.front(), 1);
  EXPECT_TRUE(a == b) << first_difference(a, b);
  // Decoding gives the corpus back (it has no text the vocab cannot spell).
  EXPECT_TRUE(spm.decode(a) == text);

  const std::string gguf_rel = "models/zoo-gguf/zoo-teacher-34m-Q8_0.gguf";
  if (test::path_exists(shared_path(gguf_rel))) {
    const Tokenizer gg = Tokenizer::from_gguf(*GGUFFile::open(shared_path(gguf_rel)));
    const auto c = timed_encode(gg, text, "zoo GGUF");
    EXPECT_TRUE(a == c) << first_difference(a, c);
  }
}

TEST(TokenizerZoo, GoldenPromptIds) {
  KITE_REQUIRE_SHARED("testdata/golden/golden-zoo-teacher-34m.json");
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m/tokenizer.json");
  const auto golden = nlohmann::json::parse(read_text_file(shared_path("testdata/golden/golden-zoo-teacher-34m.json")));
  const std::string dir = shared_path(kModelDir);
  const Tokenizer spm = Tokenizer::from_sentencepiece_model(dir + "/tokenizer.model");
  const Tokenizer hf = Tokenizer::from_hf_json(dir + "/tokenizer.json");
  const Tokenizer folder = Tokenizer::from_hf_dir(dir);  // prefers tokenizer.json
  ASSERT_TRUE(golden.contains("greedy"));
  ASSERT_FALSE(golden["greedy"].empty());
  for (const auto& g : golden["greedy"]) {
    const std::string prompt = g["prompt"].get<std::string>();
    const auto want = g["prompt_ids"].get<std::vector<int32_t>>();
    for (const Tokenizer* t : {&spm, &hf, &folder}) {
      ASSERT_TRUE(t->add_bos());
      EXPECT_EQ(t->encode(prompt, t->add_bos()), want) << "'" << prompt << "' from " << t->vocab().source;
      EXPECT_EQ(t->decode(want), prompt);
    }
  }
}
