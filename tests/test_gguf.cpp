// GGUF reader: the shared real files (llama.cpp-made, vocab-only, K-quants) and hand-built
// malformed files that must each give a precise kite::Error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_util.h"

using namespace kite;

namespace {

// Every tensor view lies inside the mapped file and has the size its type and shape imply.
void expect_views_in_file(const GGUFFile& g) {
  const uint8_t* begin = g.file()->data();
  const uint8_t* end = begin + g.file()->size();
  for (const Tensor& t : g.tensors()) {
    const uint8_t* p = static_cast<const uint8_t*>(t.data);
    EXPECT_GE(p, begin + g.data_offset()) << t.name;
    EXPECT_LE(p + t.nbytes, end) << t.name;
    EXPECT_EQ((p - begin) % g.alignment(), 0u) << t.name;
    EXPECT_EQ(t.nbytes, t.row_size() * t.rows()) << t.name;
  }
}

// Builds GGUF bytes by hand, field by field, so tests can write exactly the lie they want.
struct GGUFBytes {
  std::string b;
  template <class T>
  GGUFBytes& put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof(T));
    return *this;
  }
  GGUFBytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b += s;
    return *this;
  }
  GGUFBytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b += "GGUF";
    return put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
  }
  GGUFBytes& kv_u32(const std::string& key, uint32_t v) {
    return str(key).put<uint32_t>(uint32_t(GGUFType::U32)).put<uint32_t>(v);
  }
  GGUFBytes& kv_str(const std::string& key, const std::string& v) {
    return str(key).put<uint32_t>(uint32_t(GGUFType::STRING)).str(v);
  }
  GGUFBytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                    uint64_t offset) {
    str(name).put<uint32_t>(uint32_t(ne.size()));
    for (uint64_t n : ne) put<uint64_t>(n);
    return put<uint32_t>(type).put<uint64_t>(offset);
  }
  GGUFBytes& pad_to(size_t align) {
    while (b.size() % align) b += '\0';
    return *this;
  }
  GGUFBytes& zeros(size_t n) {
    b.append(n, '\0');
    return *this;
  }
};

class GGUFTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kite_test_gguf_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return p;
  }
  // Opens bytes that must be rejected; returns the error message.
  std::string open_error(const std::string& bytes) {
    const std::string p = write("bad.gguf", bytes);
    try {
      GGUFFile::open(p);
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected kite::Error";
    return "";
  }

  std::filesystem::path dir_;
};

}  // namespace

// ---- real files ------------------------------------------------------------------

TEST(GGUF, Stories260KHeaderMatchesReadme) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  auto g = GGUFFile::open(test::shared_path("models/stories260K.gguf"));
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->tensors().size(), 48u);
  EXPECT_EQ(g->metadata().size(), 19u);
  EXPECT_EQ(g->alignment(), 32u);
  EXPECT_EQ(g->get_string("general.architecture"), "llama");
  EXPECT_EQ(g->get_int("llama.context_length"), 2048);
  EXPECT_EQ(g->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(g->get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(g->get_int("llama.block_count"), 5);
  EXPECT_EQ(g->get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(g->get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(g->get_int("llama.rope.dimension_count"), 8);
  EXPECT_NEAR(g->get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-9);
  EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(g->get_string_array("tokenizer.ggml.tokens").size(), 512u);
  EXPECT_EQ(g->get_float_array("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(g->get_int_array("tokenizer.ggml.token_type").size(), 512u);
  EXPECT_EQ(g->get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(g->get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(g->get_int("tokenizer.ggml.unknown_token_id"), 0);

  for (const Tensor& t : g->tensors()) EXPECT_EQ(t.type, DType::F32) << t.name;
  const Tensor* emb = g->find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->n_dims, 2);
  EXPECT_EQ(emb->ne[0], 64);
  EXPECT_EQ(emb->ne[1], 512);
  ASSERT_NE(g->find_tensor("output.weight"), nullptr);
  const Tensor* k = g->find_tensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->ne[0], 64);
  EXPECT_EQ(k->ne[1], 32);
  const Tensor* down = g->find_tensor("blk.4.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->ne[0], 172);
  EXPECT_EQ(down->ne[1], 64);
  const Tensor* norm = g->find_tensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->n_dims, 1);
  EXPECT_EQ(norm->nbytes, 64u * 4);
  EXPECT_EQ(g->find_tensor("nope"), nullptr);
  expect_views_in_file(*g);
}

TEST(GGUF, TypedGettersReportMistypedAndMissingKeys) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  auto g = GGUFFile::open(test::shared_path("models/stories260K.gguf"));
  EXPECT_EQ(g->get_int("missing.key", 7), 7);
  EXPECT_EQ(g->get_string("missing.key", "x"), "x");
  EXPECT_DOUBLE_EQ(g->get_float("missing.key", 2.5), 2.5);
  EXPECT_TRUE(g->get_bool("missing.key", true));
  EXPECT_DOUBLE_EQ(g->get_float("llama.block_count"), 5.0);  // ints read as floats
  // padding_token_id is u32 0xFFFFFFFF: both views agree.
  EXPECT_EQ(g->get_int("tokenizer.ggml.padding_token_id"), 4294967295LL);
  try {
    g->get_int("general.architecture");
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("stories260K.gguf"), std::string::npos) << m;
    EXPECT_NE(m.find("'general.architecture'"), std::string::npos) << m;
    EXPECT_NE(m.find("string"), std::string::npos) << m;
  }
  try {
    g->get_string("llama.nonexistent");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'llama.nonexistent' not found"), std::string::npos);
  }
  EXPECT_THROW(g->get_string_array("tokenizer.ggml.scores"), Error);
  EXPECT_THROW(g->get_int_array("tokenizer.ggml.scores"), Error);
  EXPECT_THROW(g->get_bool("llama.block_count"), Error);
  EXPECT_THROW(g->get_string("llama.block_count", "default"), Error);  // present but mistyped
}

TEST(GGUF, TinyRandomLlamaHasF16Tensors) {
  KITE_REQUIRE_SHARED("models/llama-2-tiny-random.gguf");
  auto g = GGUFFile::open(test::shared_path("models/llama-2-tiny-random.gguf"));
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->tensors().size(), 12u);
  EXPECT_EQ(g->metadata().size(), 18u);
  EXPECT_EQ(g->get_int("llama.embedding_length"), 8);
  EXPECT_EQ(g->get_int("llama.context_length"), 4096);
  EXPECT_EQ(g->get_int("general.file_type"), 1);
  EXPECT_EQ(g->get_string_array("tokenizer.ggml.tokens").size(), 32000u);
  int f16 = 0, f32 = 0;
  for (const Tensor& t : g->tensors()) (t.type == DType::F16 ? f16 : f32)++;
  EXPECT_EQ(f16, 9);
  EXPECT_EQ(f32, 3);
  const Tensor* emb = g->find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, DType::F16);
  EXPECT_EQ(emb->ne[0], 8);
  EXPECT_EQ(emb->ne[1], 32000);
  EXPECT_EQ(emb->nbytes, 8u * 32000 * 2);
  expect_views_in_file(*g);
}

TEST(GGUF, VocabOnlyFilesHaveNoTensors) {
  KITE_REQUIRE_SHARED("testdata/tokenizer/ggml-vocab-llama-spm.gguf");
  struct Case { const char* file; const char* model; size_t n_tokens; size_t n_merges; };
  const Case cases[] = {
      {"ggml-vocab-llama-spm.gguf", "llama", 32000, 0},
      {"ggml-vocab-phi-3.gguf", "llama", 32064, 0},
      {"ggml-vocab-gpt-2.gguf", "gpt2", 50257, 50000},
      {"ggml-vocab-gpt-neox.gguf", "gpt2", 50432, 50009},
      {"ggml-vocab-deepseek-llm.gguf", "gpt2", 102400, 99757},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    auto g = GGUFFile::open(test::shared_path(std::string("testdata/tokenizer/") + c.file));
    EXPECT_EQ(g->version(), 3u);
    EXPECT_TRUE(g->tensors().empty());
    EXPECT_EQ(g->get_string("tokenizer.ggml.model"), c.model);
    EXPECT_EQ(g->get_string_array("tokenizer.ggml.tokens").size(), c.n_tokens);
    if (c.n_merges) {
      EXPECT_EQ(g->get_string_array("tokenizer.ggml.merges").size(), c.n_merges);
    }
  }
}

TEST(GGUF, ZooQ8_0AndKQuantFilesParse) {
  KITE_REQUIRE_SHARED("models/zoo-gguf");
  {
    auto g = GGUFFile::open(test::shared_path("models/zoo-gguf/zoo-teacher-34m-Q8_0.gguf"));
    EXPECT_EQ(g->tensors().size(), 75u);
    EXPECT_EQ(g->get_int("llama.embedding_length"), 512);
    const Tensor* emb = g->find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->type, DType::Q8_0);
    EXPECT_EQ(emb->ne[0], 512);
    EXPECT_EQ(emb->ne[1], 8192);
    EXPECT_EQ(emb->nbytes, 512u / 32 * 34 * 8192);
    expect_views_in_file(*g);
  }
  {
    auto g = GGUFFile::open(test::shared_path("models/zoo-gguf/zoo-teacher-34m-Q4_K_M.gguf"));
    EXPECT_EQ(g->tensors().size(), 75u);
    int q4k = 0, q6k = 0;
    for (const Tensor& t : g->tensors()) {
      q4k += t.type == DType::Q4_K;
      q6k += t.type == DType::Q6_K;
    }
    EXPECT_GT(q4k, 0);
    EXPECT_GT(q6k, 0);
    const Tensor* out = g->find_tensor("output.weight");
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(out->type, DType::Q6_K);
    EXPECT_EQ(out->nbytes, 512u / 256 * 210 * 8192);
    expect_views_in_file(*g);
  }
  {
    auto g = GGUFFile::open(test::shared_path("models/zoo-gguf/zoo-draft-7m-Q8_0.gguf"));
    EXPECT_EQ(g->tensors().size(), 39u);
    EXPECT_EQ(g->get_int("llama.block_count"), 4);
    expect_views_in_file(*g);
  }
}

TEST(GGUF, Stories260KQuantizedFilesParse) {
  KITE_REQUIRE_SHARED("models/stories260K-quant");
  for (const char* f : {"stories260K-F16.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"}) {
    SCOPED_TRACE(f);
    auto g = GGUFFile::open(test::shared_path(std::string("models/stories260K-quant/") + f));
    EXPECT_EQ(g->tensors().size(), 48u);
    // ffn_down rows of 172 are not a multiple of 32: llama.cpp kept them F16.
    EXPECT_EQ(g->find_tensor("blk.0.ffn_down.weight")->type, DType::F16);
    expect_views_in_file(*g);
  }
}

// ---- hand-built files ---------------------------------------------------------------

TEST_F(GGUFTest, MinimalFileWithOneTensor) {
  GGUFBytes b;
  b.header(2, 1, 1).kv_str("general.architecture", "llama").tensor("w", {4, 2}, 0, 0).pad_to(32);
  for (int i = 0; i < 8; i++) b.put<float>(float(i));
  auto g = GGUFFile::open(write("ok.gguf", b.b));
  EXPECT_EQ(g->version(), 2u);
  ASSERT_EQ(g->tensors().size(), 1u);
  const Tensor& t = g->tensors()[0];
  EXPECT_EQ(t.ne[0], 4);
  EXPECT_EQ(t.ne[1], 2);
  EXPECT_EQ(static_cast<const float*>(t.data)[7], 7.0f);
}

TEST_F(GGUFTest, RejectsBadMagicAndVersions) {
  EXPECT_NE(open_error("GGUX").find("not a GGUF file"), std::string::npos);
  EXPECT_NE(open_error("").find("not a GGUF file"), std::string::npos);
  GGUFBytes v1;
  v1.b = "GGUF";
  v1.put<uint32_t>(1).put<uint32_t>(0).put<uint32_t>(0);
  EXPECT_NE(open_error(v1.b).find("unsupported GGUF version 1"), std::string::npos);
  GGUFBytes v4;
  v4.header(4, 0, 0);
  EXPECT_NE(open_error(v4.b).find("unsupported GGUF version 4"), std::string::npos);
  GGUFBytes be;
  be.header(0x03000000, 0, 0);
  EXPECT_NE(open_error(be.b).find("big-endian"), std::string::npos);
  GGUFBytes cut;
  cut.b = "GGUF";
  cut.put<uint32_t>(3).put<uint32_t>(0);  // tensor count cut short
  EXPECT_NE(open_error(cut.b).find("tensor count"), std::string::npos);
}

TEST_F(GGUFTest, LyingCountsAndLengthsAreBoundedByTheFile) {
  GGUFBytes kv;
  kv.header(3, 0, 0xFFFFFFFFFFFFFFFFull);
  EXPECT_NE(open_error(kv.b).find("metadata count"), std::string::npos);
  GGUFBytes tc;
  tc.header(3, 1ull << 60, 0);
  EXPECT_NE(open_error(tc.b).find("tensor count"), std::string::npos);
  GGUFBytes key;
  key.header(3, 0, 1).put<uint64_t>(1ull << 62).zeros(16);
  EXPECT_NE(open_error(key.b).find("metadata #0: key"), std::string::npos);
  GGUFBytes str;
  str.header(3, 0, 1).str("k").put<uint32_t>(uint32_t(GGUFType::STRING)).put<uint64_t>(~0ull);
  EXPECT_NE(open_error(str.b).find("metadata 'k': string value"), std::string::npos);
  GGUFBytes arr;
  arr.header(3, 0, 1).str("a").put<uint32_t>(uint32_t(GGUFType::ARRAY));
  arr.put<uint32_t>(uint32_t(GGUFType::U64)).put<uint64_t>(1ull << 40).zeros(64);
  const std::string m = open_error(arr.b);
  EXPECT_NE(m.find("metadata 'a': array of 1099511627776 u64"), std::string::npos) << m;
}

TEST_F(GGUFTest, MetadataValueCountIsCapped) {
  // 2^24 + 1 one-byte elements fit in the file, but exceed the per-file value limit.
  GGUFBytes b;
  b.header(3, 0, 1).str("big").put<uint32_t>(uint32_t(GGUFType::ARRAY));
  b.put<uint32_t>(uint32_t(GGUFType::U8)).put<uint64_t>((1ull << 24) + 1).zeros((1 << 24) + 1);
  EXPECT_NE(open_error(b.b).find("exceeds the limit of 16777216 metadata values"),
            std::string::npos);
}

TEST_F(GGUFTest, RejectsBadValueTypesDuplicatesAndDeepNesting) {
  GGUFBytes bad_type;
  bad_type.header(3, 0, 1).str("k").put<uint32_t>(13).zeros(8);
  EXPECT_NE(open_error(bad_type.b).find("unknown value type id 13"), std::string::npos);
  GGUFBytes bad_elem;
  bad_elem.header(3, 0, 1).str("k").put<uint32_t>(uint32_t(GGUFType::ARRAY)).put<uint32_t>(99);
  bad_elem.put<uint64_t>(0);
  EXPECT_NE(open_error(bad_elem.b).find("unknown array element type id 99"), std::string::npos);
  GGUFBytes dup;
  dup.header(3, 0, 2).kv_u32("x", 1).kv_u32("x", 2);
  EXPECT_NE(open_error(dup.b).find("metadata 'x': duplicate key"), std::string::npos);
  GGUFBytes deep;
  deep.header(3, 0, 1).str("n").put<uint32_t>(uint32_t(GGUFType::ARRAY));
  for (int i = 0; i < 100; i++) deep.put<uint32_t>(uint32_t(GGUFType::ARRAY)).put<uint64_t>(1);
  deep.put<uint32_t>(uint32_t(GGUFType::U8)).put<uint64_t>(0);
  EXPECT_NE(open_error(deep.b).find("nested deeper"), std::string::npos);
}

TEST_F(GGUFTest, NestedArraysAreRead) {
  GGUFBytes b;
  b.header(3, 0, 1).str("nest").put<uint32_t>(uint32_t(GGUFType::ARRAY));
  b.put<uint32_t>(uint32_t(GGUFType::ARRAY)).put<uint64_t>(2);
  b.put<uint32_t>(uint32_t(GGUFType::I16)).put<uint64_t>(2).put<int16_t>(-3).put<int16_t>(4);
  b.put<uint32_t>(uint32_t(GGUFType::STRING)).put<uint64_t>(1).str("hi");
  auto g = GGUFFile::open(write("nest.gguf", b.b));
  const GGUFValue* v = g->find("nest");
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->arr.size(), 2u);
  EXPECT_EQ(v->arr[0].elem_type, GGUFType::I16);
  EXPECT_EQ(v->arr[0].arr[0].i, -3);
  EXPECT_EQ(v->arr[0].arr[1].u, 4u);
  EXPECT_EQ(v->arr[1].arr[0].s, "hi");
}

TEST_F(GGUFTest, AlignmentMustBeAPowerOfTwo) {
  GGUFBytes b;
  b.header(3, 0, 1).kv_u32("general.alignment", 48);
  EXPECT_NE(open_error(b.b).find("'general.alignment' = 48 is not a power of two"),
            std::string::npos);
  GGUFBytes z;
  z.header(3, 0, 1).kv_u32("general.alignment", 0);
  EXPECT_THROW(GGUFFile::open(write("z.gguf", z.b)), Error);
  GGUFBytes s;
  s.header(3, 0, 1).kv_str("general.alignment", "32");
  EXPECT_NE(open_error(s.b).find("expected an integer"), std::string::npos);
  // A custom alignment moves the data section.
  GGUFBytes ok;
  ok.header(3, 1, 1).kv_u32("general.alignment", 256).tensor("w", {2}, 0, 0).pad_to(256);
  ok.put<float>(1).put<float>(2);
  auto g = GGUFFile::open(write("a256.gguf", ok.b));
  EXPECT_EQ(g->alignment(), 256u);
  EXPECT_EQ(g->data_offset(), 256u);
  EXPECT_EQ(static_cast<const float*>(g->tensors()[0].data)[1], 2.0f);
}

TEST_F(GGUFTest, RejectsBadTensorInfos) {
  {
    GGUFBytes b;
    b.header(3, 1, 0).tensor("blk.0.attn_q.weight", {32}, 99, 0).pad_to(32).zeros(128);
    const std::string m = open_error(b.b);
    EXPECT_NE(m.find("tensor 'blk.0.attn_q.weight': unknown tensor type id 99"), std::string::npos)
        << m;
  }
  {
    GGUFBytes b;
    b.header(3, 1, 0).tensor("q", {48, 2}, uint32_t(DType::Q8_0), 0).pad_to(32).zeros(256);
    const std::string m = open_error(b.b);
    EXPECT_NE(m.find("tensor 'q': ne[0] = 48 is not a multiple of the Q8_0 block size 32"),
              std::string::npos) << m;
  }
  {
    GGUFBytes b;
    b.header(3, 1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).pad_to(32).zeros(64);
    EXPECT_NE(open_error(b.b).find("n_dims 5 exceeds 4"), std::string::npos);
  }
  {
    GGUFBytes b;
    b.header(3, 1, 0).tensor("w", {4}, 0, 8).pad_to(32).zeros(64);
    EXPECT_NE(open_error(b.b).find(
                  "tensor 'w': data offset 8 is not a multiple of the alignment 32"),
              std::string::npos);
  }
  {
    GGUFBytes b;
    b.header(3, 2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad_to(32).zeros(64);
    EXPECT_NE(open_error(b.b).find("tensor 'w': duplicate tensor name"), std::string::npos);
  }
  {
    GGUFBytes b;
    b.header(3, 1, 0).tensor("w", {1ull << 62, 1ull << 62}, 0, 0).pad_to(32).zeros(64);
    EXPECT_NE(open_error(b.b).find("overflows"), std::string::npos);
  }
  {
    GGUFBytes b;
    b.header(3, 1, 0).tensor("w", {~0ull}, 0, 0).pad_to(32);
    EXPECT_NE(open_error(b.b).find("out of range"), std::string::npos);
  }
}

TEST_F(GGUFTest, TensorDataPastEndOfFileIsNamed) {
  GGUFBytes b;
  b.header(3, 1, 0).tensor("blk.0.attn_q.weight", {1024}, 0, 0).pad_to(32).zeros(1000);
  const std::string p = write("short.gguf", b.b);
  try {
    GGUFFile::open(p);
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(p + ": tensor 'blk.0.attn_q.weight': data [offset 0"), std::string::npos) << m;
    EXPECT_NE(m.find("4096 bytes] extends past end of file (" + std::to_string(b.b.size()) +
                     " bytes"),
              std::string::npos) << m;
  }
  GGUFBytes huge;
  huge.header(3, 1, 0).tensor("w", {4}, 0, ~0ull & ~31ull).pad_to(32).zeros(64);
  EXPECT_NE(open_error(huge.b).find("extends past end of file"), std::string::npos);
}

TEST_F(GGUFTest, TruncatedHeaderNamesOffsetAndField) {
  GGUFBytes b;
  b.header(3, 1, 0).tensor("w", {4}, 0, 0);
  b.b.resize(b.b.size() - 3);  // offset field cut short
  const std::string m = open_error(b.b);
  EXPECT_NE(m.find("tensor #0 'w': tensor data offset at offset"), std::string::npos) << m;
}

TEST_F(GGUFTest, VocabOnlyFileNeedsNoDataSection) {
  GGUFBytes b;
  b.header(3, 0, 1).kv_str("tokenizer.ggml.model", "llama");  // ends right after the KV
  auto g = GGUFFile::open(write("vocab.gguf", b.b));
  EXPECT_TRUE(g->tensors().empty());
  EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "llama");
}
