// Tokenizer unit tests on small hand-made vocabularies (no shared files needed) and on the
// shared Llama 2 / tok512 vocabularies: pre-tokenizer splits, special tokens, detokenization,
// the streaming decoder and the HF folder loader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace kite;
using kite::test::shared_path;
namespace fs = std::filesystem;

namespace {

const std::string kSp = "\xE2\x96\x81";  // "▁"

// A tiny SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then pieces with
// scores (higher merges first).
VocabData tiny_spm() {
  VocabData v;
  v.type = VocabType::SPM;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.token_types = {TokenType::Unknown, TokenType::Control, TokenType::Control};
  for (int b = 0; b < 256; b++) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    v.tokens.push_back(hex);
    v.token_types.push_back(TokenType::Byte);
  }
  const std::vector<std::pair<std::string, float>> pieces = {
      {kSp, -1}, {"a", -1}, {"b", -1}, {"c", -1}, {kSp + "a", -2}, {"ab", -3}, {kSp + "ab", -4}, {"<tag>", 0}};
  for (const auto& [p, s] : pieces) {
    v.tokens.push_back(p);
    v.token_types.push_back(p == "<tag>" ? TokenType::UserDefined : TokenType::Normal);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  for (size_t i = 0; i < pieces.size(); i++) v.scores[259 + i] = pieces[i].second;
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.add_bos = true;
  v.byte_fallback = true;
  v.source = "tiny_spm";
  return v;
}

int32_t id_of(const Tokenizer& t, const std::string& text) {
  const auto& toks = t.vocab().tokens;
  for (size_t i = 0; i < toks.size(); i++)
    if (toks[i] == text) return static_cast<int32_t>(i);
  return -1;
}

std::vector<std::string> split(tok::PreTokenizer kind, const std::string& text) {
  std::vector<tok::ByteRange> words;
  tok::pre_tokenize(kind, text, words);
  std::vector<std::string> out;
  for (auto [b, e] : words) out.push_back(text.substr(b, e - b));
  return out;
}

// A unique scratch folder, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("kite_tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const fs::path p = path / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
};

}  // namespace

// ---- pre-tokenizers ----

TEST(TokenizerPreTokenize, Gpt2) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(tok::PreTokenizer::GPT2, "Hello world's 12345 !!!\n\n  x"),
            (V{"Hello", " world", "'s", " 12345", " !!!", "\n\n ", " x"}));
  EXPECT_EQ(split(tok::PreTokenizer::GPT2, "I'M   fine\t"), (V{"I", "'", "M", "  ", " fine", "\t"}));
}

TEST(TokenizerPreTokenize, Llama3) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(tok::PreTokenizer::Llama3, "Hello world's 12345 !!!\n\n  x"),
            (V{"Hello", " world", "'s", " ", "123", "45", " !!!\n\n", " ", " x"}));
  // Case-insensitive contractions; one non-letter may lead a word (".net"), not two (" .net").
  EXPECT_EQ(split(tok::PreTokenizer::Llama3, "I'M .net\r\n\r\nok"), (V{"I", "'M", " .", "net", "\r\n\r\n", "ok"}));
  EXPECT_EQ(split(tok::PreTokenizer::Llama3, "a.net"), (V{"a", ".net"}));
  EXPECT_EQ(split(tok::PreTokenizer::Llama3, "Ünïcödé 你好"), (V{"Ünïcödé", " 你好"}));
}

TEST(TokenizerPreTokenize, Qwen2SplitsDigits) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(tok::PreTokenizer::Qwen2, "x 12345"), (V{"x", " ", "1", "2", "3", "4", "5"}));
}

TEST(TokenizerPreTokenize, SmolLMAndDeepSeek) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(tok::PreTokenizer::SmolLM, "a 123b"), (V{"a", " ", "1", "2", "3", "b"}));
  EXPECT_EQ(split(tok::PreTokenizer::DeepSeekLLM, "Hi there!\n  42 你好  "),
            (V{"Hi", " there", "!", "\n", "  ", "42", " ", "你好", "  "}));
}

TEST(TokenizerPreTokenize, Names) {
  EXPECT_EQ(tok::pre_tokenizer_from_name("llama-bpe"), tok::PreTokenizer::Llama3);
  EXPECT_EQ(tok::pre_tokenizer_from_name("llama3"), tok::PreTokenizer::Llama3);
  EXPECT_EQ(tok::pre_tokenizer_from_name("qwen2"), tok::PreTokenizer::Qwen2);
  EXPECT_EQ(tok::pre_tokenizer_from_name("deepseek-llm"), tok::PreTokenizer::DeepSeekLLM);
  EXPECT_EQ(tok::pre_tokenizer_from_name("smollm"), tok::PreTokenizer::SmolLM);
  EXPECT_EQ(tok::pre_tokenizer_from_name("gpt-2"), tok::PreTokenizer::GPT2);
  EXPECT_EQ(tok::pre_tokenizer_from_name("default"), tok::PreTokenizer::GPT2);
}

TEST(TokenizerUnicode, ByteMappingRoundTrips) {
  for (int b = 0; b < 256; b++) {
    const std::string& s = unicode::byte_to_utf8(static_cast<uint8_t>(b));
    size_t len = 0;
    const uint32_t cp = unicode::decode_utf8(s, 0, len);
    EXPECT_EQ(len, s.size());
    EXPECT_EQ(unicode::codepoint_to_byte(cp), b);
  }
  EXPECT_EQ(unicode::byte_to_utf8(' '), "\xC4\xA0");  // "Ġ"
  EXPECT_EQ(unicode::byte_to_utf8('\n'), "\xC4\x8A");  // "Ċ"
}

// ---- SPM encoding on the tiny vocabulary ----

TEST(TokenizerSpm, MergesByScoreWithByteFallback) {
  const Tokenizer t(tiny_spm());
  const int32_t sp_ab = id_of(t, kSp + "ab"), sp_a = id_of(t, kSp + "a"), c = id_of(t, "c"), sp = id_of(t, kSp);
  // "▁ab": ▁+a (score -2) beats a+b (-3), then ▁a+b -> ▁ab.
  EXPECT_EQ(t.encode("ab", false), (std::vector<int32_t>{sp_ab}));
  EXPECT_EQ(t.encode("ac", true), (std::vector<int32_t>{1, sp_a, c}));
  // "é" (C3 A9) is no piece: its bytes.
  EXPECT_EQ(t.encode("é", false), (std::vector<int32_t>{sp, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t.decode(t.encode("ab c é", true)), "ab c é");
  EXPECT_TRUE(t.encode("", false).empty());
  EXPECT_EQ(t.encode("", true), (std::vector<int32_t>{1}));
}

TEST(TokenizerSpm, SpecialTokensAndPrefixAfterThem) {
  const Tokenizer t(tiny_spm());
  const int32_t sp_a = id_of(t, kSp + "a"), tag = id_of(t, "<tag>"), sp = id_of(t, kSp);
  // parse_special: "<s>" is BOS; the text after a special token gets the space prefix again.
  EXPECT_EQ(t.encode("<s>a", false, true), (std::vector<int32_t>{1, sp_a}));
  // Without parse_special, control tokens are plain text, user-defined ones still split out.
  const auto plain = t.encode("<s>a", false, false);
  EXPECT_NE(plain.front(), 1);
  EXPECT_EQ(t.encode("a<tag>a", false, false), (std::vector<int32_t>{sp_a, tag, sp_a}));
  EXPECT_EQ(t.encode("<tag> a", false, false), (std::vector<int32_t>{tag, sp, sp_a}));
}

TEST(TokenizerSpm, LstripRstrip) {
  VocabData v = tiny_spm();
  const int32_t tag = static_cast<int32_t>(v.tokens.size() - 1);
  v.lstrip_ids = {tag};
  v.rstrip_ids = {tag};
  const Tokenizer t(std::move(v));
  const int32_t sp_a = id_of(t, kSp + "a");
  EXPECT_EQ(t.encode("a  <tag>  a", false, false), (std::vector<int32_t>{sp_a, tag, sp_a}));
}

TEST(TokenizerSpm, LlamaSpecialTokens) {
  KITE_REQUIRE_SHARED("models/llama2_tokenizer.model");
  const Tokenizer t = Tokenizer::from_sentencepiece_model(shared_path("models/llama2_tokenizer.model"));
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 2);
  EXPECT_TRUE(t.add_bos());
  EXPECT_TRUE(t.is_eog(2));
  EXPECT_FALSE(t.is_eog(1));
  // llama.cpp: "▁Hello" after <s>; " world" after </s> becomes "▁▁world" -> "▁" "▁world".
  EXPECT_EQ(t.encode("<s>Hello</s> world", false, true), (std::vector<int32_t>{1, 15043, 2, 29871, 3186}));
  const auto as_text = t.encode("<s>", false, false);
  EXPECT_TRUE(std::find(as_text.begin(), as_text.end(), 1) == as_text.end());
  EXPECT_EQ(t.token_to_piece(1), "");
  EXPECT_EQ(t.token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(t.token_to_piece(15043), " Hello");
  EXPECT_EQ(t.decode({1, 15043, 3186}), "Hello world");
  EXPECT_EQ(t.decode({1, 15043, 3186}, false), " Hello world");
  EXPECT_THROW(t.token_to_piece(32000), Error);
  EXPECT_THROW(t.token_to_piece(-1), Error);
}

// ---- StreamDecoder ----

TEST(TokenizerStream, HoldsBackSplitCharacters) {
  const Tokenizer t(tiny_spm());
  const int32_t sp_a = id_of(t, kSp + "a");
  StreamDecoder s(t);
  EXPECT_EQ(s.push(sp_a), "a");          // leading SPM space dropped
  EXPECT_EQ(s.push(3 + 0xE4), "");       // 你 = E4 BD A0
  EXPECT_EQ(s.push(3 + 0xBD), "");
  EXPECT_EQ(s.push(3 + 0xA0), "\xE4\xBD\xA0");
  EXPECT_EQ(s.push(1), "");              // control: nothing
  EXPECT_EQ(s.push(sp_a), " a");
  EXPECT_EQ(s.push(3 + 0xF0), "");       // 🦙 = F0 9F A6 99, cut short
  EXPECT_EQ(s.push(3 + 0x9F), "");
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");  // one U+FFFD for the incomplete character
  EXPECT_EQ(s.flush(), "");
  EXPECT_EQ(s.push(3 + 0xFF), "\xEF\xBF\xBD");  // never valid: replaced at once
  EXPECT_EQ(s.push(3 + 0x80), "\xEF\xBF\xBD");  // stray continuation byte
}

TEST(TokenizerStream, MatchesDecodeOnRealText) {
  KITE_REQUIRE_SHARED("models/tok512.bin");
  const Tokenizer t = Tokenizer::from_llama2c(shared_path("models/tok512.bin"));
  const std::string text = "Once upon a time 你好, a llama 🦙 said «ça va?»\n";
  const auto ids = t.encode(text, true);
  StreamDecoder s(t);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string part = s.push(id);
    EXPECT_EQ(unicode::complete_utf8_prefix(part), part.size());
    streamed += part;
  }
  streamed += s.flush();
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(t.decode(ids), text);
  StreamDecoder keep(t, /*strip_leading_space=*/false);
  EXPECT_EQ(keep.push(ids[1]), t.token_to_piece(ids[1]));
}

// ---- Hugging Face folders and files ----

TEST(TokenizerHf, DirectoryWithOnlyTokenizerModel) {
  KITE_REQUIRE_SHARED("models/stories260K-hf/tokenizer.model");
  const Tokenizer t = Tokenizer::from_hf_dir(shared_path("models/stories260K-hf"));
  EXPECT_EQ(t.n_vocab(), 512);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
}

TEST(TokenizerHf, DirectoryWithoutTokenizerIsAClearError) {
  TempDir d;
  d.write("config.json", "{}");
  try {
    Tokenizer::from_hf_dir(d.path.string());
    FAIL() << "expected kite::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(d.path.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tokenizer::from_hf_dir((d.path / "missing").string()), Error);
}

TEST(TokenizerHf, TokenizerConfigOverridesAddBos) {
  KITE_REQUIRE_SHARED("models/tok512.model");
  TempDir d;
  fs::copy_file(shared_path("models/tok512.model"), d.path / "tokenizer.model");
  EXPECT_TRUE(Tokenizer::from_hf_dir(d.path.string()).add_bos());  // Llama default
  d.write("tokenizer_config.json", R"({"add_bos_token": false, "add_eos_token": true, "eos_token": "</s>"})");
  const Tokenizer t = Tokenizer::from_hf_dir(d.path.string());
  EXPECT_FALSE(t.add_bos());
  EXPECT_TRUE(t.vocab().add_eos);
  d.write("tokenizer_config.json", R"({"add_bos_token": "yes"})");
  EXPECT_THROW(Tokenizer::from_hf_dir(d.path.string()), Error);
  d.write("tokenizer_config.json", R"({"eos_token": "<|nope|>"})");
  EXPECT_THROW(Tokenizer::from_hf_dir(d.path.string()), Error);
}

// A small byte-level tokenizer.json with Llama 3's pre-tokenizer regex: recognised as "llama3",
// merges applied by rank, ignore_merges honoured, added tokens split out, round trip exact.
TEST(TokenizerHf, ByteLevelJsonWithLlama3Regex) {
  nlohmann::json vocab = nlohmann::json::object();
  int next = 0;
  for (int b = 0; b < 256; b++) vocab[unicode::byte_to_utf8(static_cast<uint8_t>(b))] = next++;
  const std::string G = unicode::byte_to_utf8(' ');  // "Ġ"
  for (const std::string& t : std::vector<std::string>{G + "h", "el", "lo", G + "hel", G + "hello", "wor", "world"})
    vocab[t] = next++;
  const int eot = next++;
  const nlohmann::json merges =
      std::vector<std::string>{G + " h", "e l", "l o", G + "h el", G + "hel lo", "w o", "wo r"};  // no way to "world"
  vocab["wo"] = next++;
  const std::string regex =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  nlohmann::json j = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", true}}},
      {"added_tokens", {{{"id", eot}, {"content", "<|eot_id|>"}, {"special", true}}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
  };
  TempDir d;
  const Tokenizer t = Tokenizer::from_hf_json(d.write("tokenizer.json", j.dump()));
  EXPECT_EQ(t.vocab().type, VocabType::BPE);
  EXPECT_EQ(t.vocab().pre, "llama3");
  EXPECT_TRUE(t.is_eog(eot));
  const auto ids = t.encode(" hello\nworld helo<|eot_id|>", false, true);
  // "world" is a token its merges cannot reach: whole by ignore_merges. " helo" merges by rank:
  // Ġ+h (0), then e+l (1) before l+o (2), then Ġh+el (3).
  std::vector<std::string> texts;
  for (int32_t id : ids) texts.push_back(t.vocab().tokens[id]);
  EXPECT_EQ(texts, (std::vector<std::string>{G + "hello", unicode::byte_to_utf8('\n'), "world", G + "hel", "o",
                                             "<|eot_id|>"}));
  EXPECT_EQ(ids.back(), eot);
  EXPECT_EQ(t.decode(ids), " hello\nworld helo");
  EXPECT_EQ(t.decode(t.encode("ünï 12345\n\n", false)), "ünï 12345\n\n");
}
