// llama2.c checkpoints: stories260K.bin against stories260K.gguf (bit-identical tensors),
// version-1 and separate-classifier files rebuilt from it, and header/size errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "test_util.h"

using namespace kite;

namespace {

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

template <class T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_tensor(std::string& s, const Tensor& t) {
  s.append(static_cast<const char*>(t.data), t.nbytes);
}

class Llama2cTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kite_test_llama2c_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return p;
  }
  std::string load_error(const std::string& bytes) {
    const std::string p = write("bad.bin", bytes);
    try {
      load_llama2c(p);
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected kite::Error";
    return "";
  }
  std::filesystem::path dir_;
};

void expect_same_tensors(const Llama2cCheckpoint& a, const Llama2cCheckpoint& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    auto it = b.tensors.find(name);
    ASSERT_NE(it, b.tensors.end()) << name;
    EXPECT_EQ(t.ne, it->second.ne) << name;
    ASSERT_EQ(t.nbytes, it->second.nbytes) << name;
    EXPECT_EQ(std::memcmp(t.data, it->second.data, t.nbytes), 0) << name;
  }
}

const int kLayers = 5;

}  // namespace

TEST(Llama2c, Stories260KConfig) {
  KITE_REQUIRE_SHARED("models/stories260K.bin");
  Llama2cCheckpoint ck = load_llama2c(test::shared_path("models/stories260K.bin"));
  const ModelConfig& c = ck.config;
  EXPECT_EQ(ck.version, 0);
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.name, "stories260K");
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_ff, 172);
  EXPECT_EQ(c.n_layer, 5);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.n_ctx_train, 512);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_dim, 8);
  EXPECT_EQ(c.rope_style, RopeStyle::Interleaved);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(ck.tensors.size(), 2u + 9u * kLayers);  // no output.weight: shared
  EXPECT_EQ(ck.tensors.count("output.weight"), 0u);
  const Tensor& wk = ck.tensors.at("blk.0.attn_k.weight");
  EXPECT_EQ(wk.ne[0], 64);
  EXPECT_EQ(wk.ne[1], 32);
  EXPECT_EQ(ck.tensors.at("blk.4.ffn_down.weight").ne[0], 172);
  EXPECT_EQ(ck.tensors.at("output_norm.weight").n_dims, 1);
  // The views cover the file from byte 28 on.
  EXPECT_EQ(static_cast<const uint8_t*>(ck.tensors.at("token_embd.weight").data),
            ck.file->data() + 28);
}

TEST(Llama2c, Stories260KTensorsAreBitIdenticalToTheGGUF) {
  KITE_REQUIRE_SHARED("models/stories260K.bin");
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  Llama2cCheckpoint ck = load_llama2c(test::shared_path("models/stories260K.bin"));
  auto g = GGUFFile::open(test::shared_path("models/stories260K.gguf"));
  for (const auto& [name, t] : ck.tensors) {
    const Tensor* gt = g->find_tensor(name);
    ASSERT_NE(gt, nullptr) << name;
    EXPECT_EQ(t.type, gt->type) << name;
    EXPECT_EQ(t.n_dims, gt->n_dims) << name;
    EXPECT_EQ(t.ne, gt->ne) << name;
    ASSERT_EQ(t.nbytes, gt->nbytes) << name;
    EXPECT_EQ(std::memcmp(t.data, gt->data, t.nbytes), 0) << name;
  }
  // The GGUF spells out the shared classifier as output.weight.
  const Tensor* out = g->find_tensor("output.weight");
  ASSERT_NE(out, nullptr);
  const Tensor& emb = ck.tensors.at("token_embd.weight");
  ASSERT_EQ(out->nbytes, emb.nbytes);
  EXPECT_EQ(std::memcmp(out->data, emb.data, emb.nbytes), 0);
  EXPECT_EQ(g->tensors().size(), ck.tensors.size() + 1);
}

// Rebuilds stories260K in the v1 layout (magic, 256-byte header, norms first, no RoPE tables).
TEST_F(Llama2cTest, Version1FilesLoadTheSameTensors) {
  KITE_REQUIRE_SHARED("models/stories260K.bin");
  Llama2cCheckpoint v0 = load_llama2c(test::shared_path("models/stories260K.bin"));
  auto build = [&](bool shared) {
    std::string s;
    put<uint32_t>(s, 0x616b3432);
    put<int32_t>(s, 1);
    for (int32_t v : {64, 172, 5, 8, 4, 512, 512}) put<int32_t>(s, v);
    put<uint8_t>(s, shared ? 1 : 0);
    s.resize(256, '\0');
    auto layer = [&](const char* n) {
      for (int l = 0; l < kLayers; l++)
        put_tensor(s, v0.tensors.at("blk." + std::to_string(l) + "." + n));
    };
    layer("attn_norm.weight");
    layer("ffn_norm.weight");
    put_tensor(s, v0.tensors.at("output_norm.weight"));
    put_tensor(s, v0.tensors.at("token_embd.weight"));
    for (const char* n : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                          "ffn_gate.weight", "ffn_down.weight", "ffn_up.weight"})
      layer(n);
    if (!shared) put_tensor(s, v0.tensors.at("token_embd.weight"));
    return s;
  };
  Llama2cCheckpoint v1 = load_llama2c(write("v1.bin", build(true)));
  EXPECT_EQ(v1.version, 1);
  EXPECT_TRUE(v1.config.tied_embeddings);
  EXPECT_EQ(v1.config.n_ctx_train, 512);
  expect_same_tensors(v0, v1);

  Llama2cCheckpoint v1u = load_llama2c(write("v1u.bin", build(false)));
  EXPECT_FALSE(v1u.config.tied_embeddings);
  ASSERT_EQ(v1u.tensors.count("output.weight"), 1u);
  EXPECT_EQ(v1u.tensors.at("output.weight").ne, v0.tensors.at("token_embd.weight").ne);

  std::string v2 = build(true);
  v2[4] = 2;
  EXPECT_NE(load_error(v2).find("version 2 is not supported"), std::string::npos);
}

TEST_F(Llama2cTest, NegativeVocabMeansASeparateClassifier) {
  KITE_REQUIRE_SHARED("models/stories260K.bin");
  const std::string orig = read_all(test::shared_path("models/stories260K.bin"));
  Llama2cCheckpoint v0 = load_llama2c(test::shared_path("models/stories260K.bin"));
  std::string s = orig;
  const int32_t neg = -512;
  std::memcpy(&s[5 * 4], &neg, 4);
  std::string wcls(512 * 64 * 4, '\0');
  for (size_t i = 0; i < wcls.size(); i += 4) wcls[i + 3] = 0x3f;  // some non-zero floats
  Llama2cCheckpoint ck = load_llama2c(write("neg.bin", s + wcls));
  EXPECT_FALSE(ck.config.tied_embeddings);
  EXPECT_EQ(ck.config.n_vocab, 512);
  const Tensor& out = ck.tensors.at("output.weight");
  EXPECT_EQ(out.ne[0], 64);
  EXPECT_EQ(out.ne[1], 512);
  EXPECT_EQ(std::memcmp(out.data, wcls.data(), wcls.size()), 0);
  EXPECT_EQ(ck.tensors.size(), v0.tensors.size() + 1);

  // The flag says "separate", but the classifier is missing: the hint says so.
  const std::string m = load_error(s);
  EXPECT_NE(m.find("with a separate classifier"), std::string::npos) << m;
  EXPECT_NE(m.find("fits a shared classifier"), std::string::npos) << m;
}

TEST_F(Llama2cTest, SizeMustMatchTheHeaderExactly) {
  KITE_REQUIRE_SHARED("models/stories260K.bin");
  const std::string orig = read_all(test::shared_path("models/stories260K.bin"));
  std::string m = load_error(orig.substr(0, orig.size() - 4));
  EXPECT_NE(
      m.find("implies 1056540 bytes with a shared classifier, but the file has 1056536 bytes"),
      std::string::npos) << m;
  EXPECT_NE(m.find("dim 64, hidden_dim 172, n_layers 5, n_heads 8, n_kv_heads 4, vocab_size 512, "
                   "seq_len 512"),
            std::string::npos) << m;
  m = load_error(orig + "x");
  EXPECT_NE(m.find("but the file has 1056541 bytes"), std::string::npos) << m;
  m = load_error(orig.substr(0, 10));
  EXPECT_NE(m.find("llama2.c header: n_layers at offset 8 needs 4 bytes"), std::string::npos) << m;
}

TEST_F(Llama2cTest, HeaderFieldsAreValidated) {
  KITE_REQUIRE_SHARED("models/stories260K.bin");
  const std::string orig = read_all(test::shared_path("models/stories260K.bin"));
  auto with = [&](int field, int32_t v) {
    std::string s = orig;
    std::memcpy(&s[field * 4], &v, 4);
    return load_error(s);
  };
  EXPECT_NE(with(0, 0).find("dim = 0 must be positive"), std::string::npos);
  EXPECT_NE(with(3, -8).find("n_heads = -8 must be positive"), std::string::npos);
  EXPECT_NE(with(3, 7).find("dim 64 is not a multiple of n_heads 7"), std::string::npos);
  EXPECT_NE(with(4, 3).find("n_heads 8 is not a multiple of n_kv_heads 3"), std::string::npos);
  EXPECT_NE(with(5, 0).find("vocab_size = 0 is invalid"), std::string::npos);
  EXPECT_NE(with(5, INT32_MIN).find("vocab_size"), std::string::npos);
  EXPECT_NE(with(3, 64).find("head size 1 must be even"), std::string::npos);
  EXPECT_NE(with(0, 0x7fffffc0).find("implies"), std::string::npos);
  EXPECT_NE(with(2, 0x7fffffff).find("implies"), std::string::npos);
}
