// Tokenizer test vectors: llama.cpp's .inp/.out pairs (encoded as its test-tokenizer-0 does:
// no BOS, parse_special=false) for every vocab present, tok512 with the llama2.c, GGUF and
// SentencePiece loaders, and the Llama 2 tokenizer.model against llama.cpp's Llama 2 vectors.
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace kite;
using kite::test::shared_path;

namespace {

struct Vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> expected;
};

// .inp: each string followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per string.
Vectors read_vectors(const std::string& inp_rel, const std::string& out_rel) {
  Vectors v;
  const std::string inp = read_text_file(shared_path(inp_rel));
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0, next; (next = inp.find(sep, pos)) != std::string::npos; pos = next + sep.size())
    v.inputs.push_back(inp.substr(pos, next - pos));
  std::istringstream out(read_text_file(shared_path(out_rel)));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    v.expected.push_back(ids);
  }
  return v;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    s += ' ';
    s += std::to_string(id);
  }
  return s;
}

std::string escaped(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out;
}

// Encodes every input and compares with the expected ids.
void expect_vectors(const Tokenizer& tok, const std::string& inp_rel, const std::string& out_rel) {
  const Vectors v = read_vectors(inp_rel, out_rel);
  ASSERT_FALSE(v.inputs.empty()) << inp_rel;
  ASSERT_EQ(v.inputs.size(), v.expected.size()) << inp_rel << " vs " << out_rel;
  int bad = 0;
  for (size_t i = 0; i < v.inputs.size(); i++) {
    const std::vector<int32_t> got = tok.encode(v.inputs[i], /*add_bos=*/false, /*parse_special=*/false);
    if (got != v.expected[i]) bad++;
    EXPECT_EQ(show(got), show(v.expected[i])) << out_rel << " line " << i + 1 << ": '" << escaped(v.inputs[i]) << "'";
  }
  EXPECT_EQ(bad, 0) << bad << " of " << v.inputs.size() << " strings differ";
}

Tokenizer gguf_tokenizer(const std::string& rel) { return Tokenizer::from_gguf(*GGUFFile::open(shared_path(rel))); }

const char* kDir = "testdata/tokenizer/";

void check_gguf_vocab(const std::string& name) {
  const std::string base = std::string(kDir) + "ggml-vocab-" + name + ".gguf";
  expect_vectors(gguf_tokenizer(base), base + ".inp", base + ".out");
}

}  // namespace

TEST(TokenizerVectors, LlamaSpmGguf) {
  KITE_REQUIRE_SHARED("testdata/tokenizer/ggml-vocab-llama-spm.gguf");
  check_gguf_vocab("llama-spm");
}

TEST(TokenizerVectors, Phi3Gguf) {
  KITE_REQUIRE_SHARED("testdata/tokenizer/ggml-vocab-phi-3.gguf");
  check_gguf_vocab("phi-3");
}

TEST(TokenizerVectors, Gpt2Gguf) {
  KITE_REQUIRE_SHARED("testdata/tokenizer/ggml-vocab-gpt-2.gguf");
  check_gguf_vocab("gpt-2");
}

TEST(TokenizerVectors, DeepSeekLlmGguf) {
  KITE_REQUIRE_SHARED("testdata/tokenizer/ggml-vocab-deepseek-llm.gguf");
  check_gguf_vocab("deepseek-llm");
}

// Vectors whose vocab file is not in the shared material: skipped with a message, not failed.
// (Their pre-tokenizers are implemented and unit-tested in test_tokenizer_unit.cpp.)
void check_or_skip(const std::string& name) {
  const std::string base = std::string(kDir) + "ggml-vocab-" + name + ".gguf";
  if (!test::path_exists(shared_path(base)))
    GTEST_SKIP() << "llama.cpp vectors " << base << ".inp/.out are present but the vocab " << base
                 << " is not in the shared material";
  check_gguf_vocab(name);
}

TEST(TokenizerVectors, LlamaBpeNeedsVocab) { check_or_skip("llama-bpe"); }

TEST(TokenizerVectors, Qwen2NeedsVocab) { check_or_skip("qwen2"); }

// gpt-neox has no vectors: it must load (no tokenizer.ggml.pre: the GPT-2 default) and round-trip.
TEST(TokenizerVectors, GptNeoxGgufRoundTrips) {
  KITE_REQUIRE_SHARED("testdata/tokenizer/ggml-vocab-gpt-neox.gguf");
  const Tokenizer tok = gguf_tokenizer("testdata/tokenizer/ggml-vocab-gpt-neox.gguf");
  EXPECT_EQ(tok.vocab().type, VocabType::BPE);
  const std::string text = "Hello world!  \n\tdef f(x):\n    return x ** 2  # Ünïcødé 你好 🦙";
  const auto ids = tok.encode(text, false, false);
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(TokenizerVectors, Tok512FromLlama2cBin) {
  KITE_REQUIRE_SHARED("models/tok512.bin");
  expect_vectors(Tokenizer::from_llama2c(shared_path("models/tok512.bin")), "testdata/tokenizer/tok512.inp",
                 "testdata/tokenizer/tok512.out");
}

TEST(TokenizerVectors, Tok512FromStories260KGguf) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  expect_vectors(gguf_tokenizer("models/stories260K.gguf"), "testdata/tokenizer/tok512.inp",
                 "testdata/tokenizer/tok512.out");
}

// tok512.model asks for SentencePiece's remove_extra_whitespaces, which we honour for
// tokenizer.model files: it then matches python-sentencepiece rather than run.c.
TEST(TokenizerVectors, Tok512ModelMatchesSentencePiece) {
  KITE_REQUIRE_SHARED("models/tok512.model");
  const Tokenizer tok = Tokenizer::from_sentencepiece_model(shared_path("models/tok512.model"));
  EXPECT_TRUE(tok.vocab().remove_extra_whitespaces);
  expect_vectors(tok, "testdata/tokenizer/tok512.inp", "testdata/tokenizer/tok512.sentencepiece.out");
}

TEST(TokenizerVectors, Llama2TokenizerModelMatchesLlamaSpm) {
  KITE_REQUIRE_SHARED("models/llama2_tokenizer.model");
  expect_vectors(Tokenizer::from_sentencepiece_model(shared_path("models/llama2_tokenizer.model")),
                 "testdata/tokenizer/ggml-vocab-llama-spm.gguf.inp", "testdata/tokenizer/ggml-vocab-llama-spm.gguf.out");
}

TEST(TokenizerVectors, Llama2TokenizerBinMatchesLlamaSpm) {
  KITE_REQUIRE_SHARED("models/llama2_tokenizer.bin");
  expect_vectors(Tokenizer::from_llama2c(shared_path("models/llama2_tokenizer.bin")),
                 "testdata/tokenizer/ggml-vocab-llama-spm.gguf.inp", "testdata/tokenizer/ggml-vocab-llama-spm.gguf.out");
}

// The same GPT-2 vocabulary in Hugging Face's vocab.json + merges.txt form.
TEST(TokenizerVectors, Gpt2HfVocabMerges) {
  KITE_REQUIRE_SHARED("testdata/tokenizer/gpt2-hf/vocab.json");
  const Tokenizer tok = Tokenizer::from_vocab_merges(shared_path("testdata/tokenizer/gpt2-hf/vocab.json"),
                                                     shared_path("testdata/tokenizer/gpt2-hf/merges.txt"));
  EXPECT_EQ(tok.n_vocab(), 50257);
  expect_vectors(tok, "testdata/tokenizer/ggml-vocab-gpt-2.gguf.inp", "testdata/tokenizer/ggml-vocab-gpt-2.gguf.out");
}
