// GGUF writer: round trips through GGUFFile, alignment, streamed tensors, and its own checks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "test_util.h"

using namespace kite;

namespace {

class GGUFWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kite_test_gguf_writer_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

bool same_value(const GGUFValue& a, const GGUFValue& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case GGUFType::STRING: return a.s == b.s;
    case GGUFType::BOOL: return a.b == b.b;
    case GGUFType::F32: case GGUFType::F64: return a.f == b.f || (a.f != a.f && b.f != b.f);
    case GGUFType::ARRAY:
      if (a.elem_type != b.elem_type || a.arr.size() != b.arr.size()) return false;
      for (size_t i = 0; i < a.arr.size(); i++)
        if (!same_value(a.arr[i], b.arr[i])) return false;
      return true;
    default: return a.i == b.i && a.u == b.u;
  }
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes == b.nbytes && std::memcmp(a.data, b.data, a.nbytes) == 0;
}

}  // namespace

TEST_F(GGUFWriterTest, RoundTripsEveryValueTypeAndTensor) {
  GGUFWriter w;
  w.set_u8("t.u8", 200);
  w.set_i8("t.i8", -100);
  w.set_u16("t.u16", 60000);
  w.set_i16("t.i16", -30000);
  w.set_u32("t.u32", 4000000000u);
  w.set_i32("t.i32", -2000000000);
  w.set_u64("t.u64", 18000000000000000000ull);
  w.set_i64("t.i64", -9000000000000000000ll);
  w.set_f32("t.f32", 0.1f);
  w.set_f64("t.f64", 1e-300);
  w.set_bool("t.bool", true);
  w.set_string("t.str", std::string("with\0nul", 8));
  w.set_array_str("t.astr", {"a", "", "\xe2\x96\x81the"});
  w.set_array_f32("t.af32", {1.5f, -2.0f});
  w.set_array_i32("t.ai32", {-1, 0, 7});
  w.set_array_u32("t.au32", {});
  GGUFValue nested;
  nested.type = GGUFType::ARRAY;
  nested.elem_type = GGUFType::ARRAY;
  GGUFValue inner;
  inner.type = GGUFType::ARRAY;
  inner.elem_type = GGUFType::U8;
  GGUFValue byte;
  byte.type = GGUFType::U8;
  byte.u = byte.i = 9;
  inner.arr = {byte, byte};
  nested.arr = {inner};
  w.set_value("t.nested", nested);
  w.set_u32("t.replaced", 1);
  w.set_u32("t.replaced", 2);  // replaces, no duplicate key

  std::vector<float> f32(4 * 3);
  std::iota(f32.begin(), f32.end(), 0.0f);
  std::vector<uint16_t> f16(5, 0x3c00);
  std::vector<uint8_t> q8(2 * 34 * 2, 0x11);
  w.add_tensor("a.f32", DType::F32, {4, 3, 1, 1}, 2, f32.data(), f32.size() * 4);
  w.add_tensor("b.f16", DType::F16, {5, 1, 1, 1}, 1, f16.data(), f16.size() * 2);
  w.add_tensor("c.q8_0", DType::Q8_0, {64, 2, 1, 1}, 2, q8.data(), q8.size());
  w.add_tensor("d.fill", DType::F32, {2, 2, 2, 1}, 3, [](uint8_t* dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = uint8_t(i);
  });
  EXPECT_EQ(w.n_tensors(), 4u);
  w.write(path("rt.gguf"));
  EXPECT_FALSE(std::filesystem::exists(path("rt.gguf.tmp")));

  auto g = GGUFFile::open(path("rt.gguf"));
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->metadata().size(), 18u);
  EXPECT_EQ(g->get_int("t.u8"), 200);
  EXPECT_EQ(g->get_int("t.i8"), -100);
  EXPECT_EQ(g->get_int("t.u16"), 60000);
  EXPECT_EQ(g->get_int("t.i16"), -30000);
  EXPECT_EQ(g->get_int("t.u32"), 4000000000LL);
  EXPECT_EQ(g->get_int("t.i32"), -2000000000);
  EXPECT_EQ(g->find("t.u64")->u, 18000000000000000000ull);
  EXPECT_THROW(g->get_int("t.u64"), Error);  // does not fit in int64
  EXPECT_EQ(g->get_int("t.i64"), -9000000000000000000ll);
  EXPECT_EQ(g->get_float("t.f32"), double(0.1f));
  EXPECT_EQ(g->get_float("t.f64"), 1e-300);
  EXPECT_TRUE(g->get_bool("t.bool"));
  EXPECT_EQ(g->get_string("t.str"), std::string("with\0nul", 8));
  EXPECT_EQ(g->get_string_array("t.astr"), (std::vector<std::string>{"a", "", "\xe2\x96\x81the"}));
  EXPECT_EQ(g->get_float_array("t.af32"), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(g->get_int_array("t.ai32"), (std::vector<int64_t>{-1, 0, 7}));
  EXPECT_TRUE(g->get_int_array("t.au32").empty());
  EXPECT_TRUE(same_value(*g->find("t.nested"), nested));
  EXPECT_EQ(g->get_int("t.replaced"), 2);

  ASSERT_EQ(g->tensors().size(), 4u);
  EXPECT_EQ(g->tensors()[0].name, "a.f32");  // order kept
  const Tensor* a = g->find_tensor("a.f32");
  EXPECT_EQ(a->ne[0], 4);
  EXPECT_EQ(a->ne[1], 3);
  EXPECT_EQ(std::memcmp(a->data, f32.data(), f32.size() * 4), 0);
  EXPECT_EQ(std::memcmp(g->find_tensor("b.f16")->data, f16.data(), 10), 0);
  const Tensor* q = g->find_tensor("c.q8_0");
  EXPECT_EQ(q->type, DType::Q8_0);
  EXPECT_EQ(std::memcmp(q->data, q8.data(), q8.size()), 0);
  const Tensor* d = g->find_tensor("d.fill");
  EXPECT_EQ(d->n_dims, 3);
  EXPECT_EQ(d->nbytes, 32u);
  EXPECT_EQ(static_cast<const uint8_t*>(d->data)[31], 31);
}

TEST_F(GGUFWriterTest, CustomAlignmentIsRecordedAndHonoured) {
  GGUFWriter w;
  w.set_alignment(128);
  std::vector<float> x(3, 1.0f), y(5, 2.0f);
  w.add_tensor("x", DType::F32, {3, 1, 1, 1}, 1, x.data(), 12);
  w.add_tensor("y", DType::F32, {5, 1, 1, 1}, 1, y.data(), 20);
  w.write(path("a128.gguf"));
  auto g = GGUFFile::open(path("a128.gguf"));
  EXPECT_EQ(g->alignment(), 128u);
  EXPECT_EQ(g->get_int("general.alignment"), 128);
  EXPECT_EQ(g->find("general.alignment")->type, GGUFType::U32);
  for (const Tensor& t : g->tensors())
    EXPECT_EQ((static_cast<const uint8_t*>(t.data) - g->file()->data()) % 128, 0) << t.name;
  EXPECT_EQ(static_cast<const float*>(g->find_tensor("y")->data)[4], 2.0f);
  EXPECT_THROW(w.set_alignment(96), Error);
}

TEST_F(GGUFWriterTest, VocabOnlyFileHasNoTensors) {
  GGUFWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_array_str("tokenizer.ggml.merges", {"a b", "c d"});
  w.write(path("vocab.gguf"));
  auto g = GGUFFile::open(path("vocab.gguf"));
  EXPECT_TRUE(g->tensors().empty());
  EXPECT_EQ(g->get_string_array("tokenizer.ggml.merges").size(), 2u);
}

TEST_F(GGUFWriterTest, RejectsInconsistentTensorsAndValues) {
  GGUFWriter w;
  float buf[64] = {};
  EXPECT_THROW(w.add_tensor("", DType::F32, {1, 1, 1, 1}, 1, buf, 4), Error);
  EXPECT_THROW(w.add_tensor("n", DType::F32, {4, 1, 1, 1}, 1, buf, 8), Error);  // wrong nbytes
  EXPECT_THROW(w.add_tensor("n", DType::F32, {4, 1, 1, 1}, 5, buf, 16), Error); // n_dims
  EXPECT_THROW(w.add_tensor("n", DType::F32, {4, 2, 1, 1}, 1, buf, 32), Error); // ne past n_dims
  EXPECT_THROW(w.add_tensor("n", DType::Q8_0, {48, 1, 1, 1}, 1, buf, 51), Error);  // block size
  w.add_tensor("ok", DType::F32, {4, 1, 1, 1}, 1, buf, 16);
  EXPECT_THROW(w.add_tensor("ok", DType::F32, {4, 1, 1, 1}, 1, buf, 16), Error);  // duplicate
  try {
    w.add_tensor("z", DType::F32, {3, 1, 1, 1}, 1, buf, 4);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "tensor 'z': 4 bytes given, but its type and shape need 12"),
              std::string::npos) << e.what();
  }

  GGUFValue bad;
  bad.type = GGUFType::ARRAY;
  bad.elem_type = GGUFType::U32;
  bad.arr.resize(1);
  bad.arr[0].type = GGUFType::STRING;
  w.set_value("bad", bad);
  EXPECT_THROW(w.write(path("bad.gguf")), Error);
  EXPECT_FALSE(std::filesystem::exists(path("bad.gguf")));
  EXPECT_FALSE(std::filesystem::exists(path("bad.gguf.tmp")));
}

TEST_F(GGUFWriterTest, UnwritablePathIsNamed) {
  GGUFWriter w;
  w.set_u32("x", 1);
  const std::string p = path("no/such/dir/out.gguf");
  try {
    w.write(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

// Copying every key and tensor of a llama.cpp file gives back the same file contents.
TEST_F(GGUFWriterTest, CopiesStories260KFaithfully) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  auto src = GGUFFile::open(test::shared_path("models/stories260K.gguf"));
  GGUFWriter w;
  for (const auto& [k, v] : src->metadata()) w.set_value(k, v);
  for (const Tensor& t : src->tensors()) w.add_tensor(t);
  w.write(path("copy.gguf"));

  auto dst = GGUFFile::open(path("copy.gguf"));
  ASSERT_EQ(dst->metadata().size(), src->metadata().size());
  for (const auto& [k, v] : src->metadata()) {
    const GGUFValue* c = dst->find(k);
    ASSERT_NE(c, nullptr) << k;
    EXPECT_TRUE(same_value(v, *c)) << k;
  }
  ASSERT_EQ(dst->tensors().size(), src->tensors().size());
  for (size_t i = 0; i < src->tensors().size(); i++) {
    const Tensor& a = src->tensors()[i];
    const Tensor& b = dst->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.n_dims, b.n_dims);
    EXPECT_EQ(a.ne, b.ne);
    EXPECT_TRUE(same_bytes(a, b)) << a.name;
  }
  // Same layout rules as llama.cpp: the copy has the same size.
  EXPECT_EQ(dst->file()->size(), src->file()->size());
}
