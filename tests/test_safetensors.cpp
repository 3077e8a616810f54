// safetensors reader: the shared HF checkpoints (F32, BF16), synthetic single and sharded
// folders, and malformed headers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "test_util.h"

using namespace kite;
using json = nlohmann::json;

namespace {

struct StEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// Serialises a safetensors file: header padded with spaces to 8 bytes, then the data.
std::string make_safetensors(const std::vector<StEntry>& entries, const json& metadata = nullptr) {
  json h = json::object();
  std::string data;
  for (const StEntry& e : entries) {
    h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape},
                 {"data_offsets", {data.size(), data.size() + e.bytes.size()}}};
    data += e.bytes;
  }
  if (!metadata.is_null()) h["__metadata__"] = metadata;
  std::string text = h.dump();
  while ((text.size() + 8) % 8) text += ' ';
  std::string out(8, '\0');
  const uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  return out + text + data;
}

std::string floats(std::vector<float> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

class SafeTensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kite_test_safetensors_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) {
    const std::string p = (dir_ / name).string();
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return p;
  }
  std::string header_error(const std::string& header_json, const std::string& data = "") {
    std::string out(8, '\0');
    const uint64_t n = header_json.size();
    std::memcpy(out.data(), &n, 8);
    return open_error(out + header_json + data);
  }
  std::string open_error(const std::string& bytes) {
    const std::string p = write("bad.safetensors", bytes);
    try {
      SafeTensors::open_file(p);
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected kite::Error";
    return "";
  }
  std::string dir_error(const std::string& d) {
    try {
      SafeTensors::open_dir(d);
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected kite::Error";
    return "";
  }

  std::filesystem::path dir_;
};

}  // namespace

// ---- shared checkpoints ------------------------------------------------------------

TEST(SafeTensors, Stories260KHfIsF32AndMatchesTheGGUF) {
  KITE_REQUIRE_SHARED("models/stories260K-hf/model.safetensors");
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  auto st = SafeTensors::open_dir(test::shared_path("models/stories260K-hf"));
  EXPECT_EQ(st->tensors().size(), 47u);  // 5 x 9 + embed + norm; lm_head tied
  EXPECT_EQ(st->files().size(), 1u);
  EXPECT_EQ(st->metadata().at("format"), "pt");
  EXPECT_EQ(st->find("lm_head.weight"), nullptr);
  for (const auto& [name, t] : st->tensors()) EXPECT_EQ(t.type, DType::F32) << name;
  const Tensor& emb = st->require("model.embed_tokens.weight");
  EXPECT_EQ(emb.n_dims, 2);
  EXPECT_EQ(emb.ne[0], 64);   // HF [512, 64] -> ne {64, 512}
  EXPECT_EQ(emb.ne[1], 512);
  const Tensor& k = st->require("model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(k.ne[0], 64);
  EXPECT_EQ(k.ne[1], 32);
  EXPECT_EQ(st->require("model.norm.weight").n_dims, 1);

  // Tensors that are not RoPE-permuted are bit-identical to the GGUF's.
  auto g = GGUFFile::open(test::shared_path("models/stories260K.gguf"));
  const std::pair<const char*, const char*> same[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"model.layers.3.self_attn.v_proj.weight", "blk.3.attn_v.weight"},
      {"model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight"},
      {"model.layers.2.mlp.down_proj.weight", "blk.2.ffn_down.weight"},
      {"model.layers.2.mlp.gate_proj.weight", "blk.2.ffn_gate.weight"},
      {"model.layers.1.input_layernorm.weight", "blk.1.attn_norm.weight"},
  };
  for (auto [hf, gg] : same) {
    const Tensor& a = st->require(hf);
    const Tensor* b = g->find_tensor(gg);
    ASSERT_NE(b, nullptr) << gg;
    EXPECT_EQ(a.ne, b->ne) << hf;
    ASSERT_EQ(a.nbytes, b->nbytes) << hf;
    EXPECT_EQ(std::memcmp(a.data, b->data, a.nbytes), 0) << hf;
  }
}

TEST(SafeTensors, ZooTeacherIsBF16) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m/model.safetensors");
  auto st = SafeTensors::open_dir(test::shared_path("models/zoo-teacher-34m"));
  EXPECT_EQ(st->tensors().size(), 75u);
  EXPECT_TRUE(st->unsupported().empty());
  for (const auto& [name, t] : st->tensors()) EXPECT_EQ(t.type, DType::BF16) << name;
  const Tensor& head = st->require("lm_head.weight");
  EXPECT_EQ(head.ne[0], 512);
  EXPECT_EQ(head.ne[1], 8192);
  EXPECT_EQ(head.nbytes, 512u * 8192 * 2);
  const Tensor& down = st->require("model.layers.7.mlp.down_proj.weight");
  EXPECT_EQ(down.ne[0], 1536);
  EXPECT_EQ(down.ne[1], 512);
  // Views stay inside the file.
  const auto& f = st->files()[0];
  for (const auto& [name, t] : st->tensors()) {
    const uint8_t* p = static_cast<const uint8_t*>(t.data);
    EXPECT_GE(p, f->data());
    EXPECT_LE(p + t.nbytes, f->data() + f->size()) << name;
  }
}

// ---- synthetic files -----------------------------------------------------------------

TEST_F(SafeTensorsTest, SingleFileShapesAndDtypes) {
  std::vector<StEntry> e = {
      {"w", "F32", {3, 2}, floats({1, 2, 3, 4, 5, 6})},
      {"h", "F16", {2}, std::string("\x00\x3c\x00\xc0", 4)},
      {"b", "BF16", {1, 1, 2}, std::string(4, '\x01')},
      {"scalar", "F32", {}, floats({9})},
      {"ids", "I64", {2}, std::string(16, '\0')},
      {"mask", "BOOL", {3}, std::string(3, '\1')},
      {"empty", "F32", {0, 4}, ""},
  };
  const std::string p = write("m.safetensors", make_safetensors(e, {{"format", "pt"}, {"n", 1}}));
  auto st = SafeTensors::open_file(p);
  EXPECT_EQ(st->metadata().at("format"), "pt");
  EXPECT_EQ(st->metadata().at("n"), "1");
  const Tensor& w = st->require("w");
  EXPECT_EQ(w.n_dims, 2);
  EXPECT_EQ(w.ne[0], 2);
  EXPECT_EQ(w.ne[1], 3);
  EXPECT_EQ(static_cast<const float*>(w.data)[5], 6.0f);
  EXPECT_EQ(st->require("h").type, DType::F16);
  const Tensor& b = st->require("b");
  EXPECT_EQ(b.type, DType::BF16);
  EXPECT_EQ(b.n_dims, 3);
  EXPECT_EQ(b.ne[0], 2);
  EXPECT_EQ(st->require("scalar").n_dims, 0);
  EXPECT_EQ(st->require("scalar").n_elements(), 1);
  EXPECT_EQ(st->require("ids").type, DType::I64);
  EXPECT_EQ(st->require("empty").nbytes, 0u);
  EXPECT_EQ(st->find("mask"), nullptr);
  EXPECT_EQ(st->unsupported().at("mask"), "BOOL");
  try {
    st->require("mask");
    FAIL();
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("tensor 'mask' has dtype BOOL"), std::string::npos);
  }
  try {
    st->require("nope");
    FAIL();
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find(p + ": tensor 'nope' not found"), std::string::npos);
  }
}

TEST_F(SafeTensorsTest, ShardedFolderOpensEachShardOnce) {
  write("sharded/model-00001-of-00002.safetensors",
        make_safetensors({{"a", "F32", {2}, floats({1, 2})}, {"b", "F32", {1}, floats({3})}},
                         {{"format", "pt"}}));
  write("sharded/model-00002-of-00002.safetensors",
        make_safetensors({{"c", "BF16", {2, 2}, std::string(8, '\0')}}));
  json index = {{"metadata", {{"total_size", 20}}},
                {"weight_map",
                 {{"a", "model-00001-of-00002.safetensors"},
                  {"b", "model-00001-of-00002.safetensors"},
                  {"c", "model-00002-of-00002.safetensors"}}}};
  write("sharded/model.safetensors.index.json", index.dump());
  auto st = SafeTensors::open_dir((dir_ / "sharded").string());
  EXPECT_EQ(st->files().size(), 2u);
  EXPECT_EQ(st->tensors().size(), 3u);
  EXPECT_EQ(static_cast<const float*>(st->require("b").data)[0], 3.0f);
  EXPECT_EQ(st->require("c").type, DType::BF16);
  EXPECT_EQ(st->metadata().at("format"), "pt");

  // A missing shard is named.
  index["weight_map"]["d"] = "model-00003-of-00003.safetensors";
  write("sharded/model.safetensors.index.json", index.dump());
  std::string m = dir_error((dir_ / "sharded").string());
  EXPECT_NE(m.find("shard 'model-00003-of-00003.safetensors' (holding tensor 'd') not found"),
            std::string::npos) << m;

  // A tensor the index promises but its shard lacks.
  index["weight_map"]["d"] = "model-00002-of-00002.safetensors";
  write("sharded/model.safetensors.index.json", index.dump());
  m = dir_error((dir_ / "sharded").string());
  EXPECT_NE(m.find("tensor 'd' is listed for shard"), std::string::npos) << m;

  // Paths leaving the folder are refused.
  index["weight_map"]["d"] = "../x.safetensors";
  write("sharded/model.safetensors.index.json", index.dump());
  EXPECT_NE(dir_error((dir_ / "sharded").string()).find("is not a file in"), std::string::npos);

  write("sharded/model.safetensors.index.json", "{\"weight_map\": 5}");
  EXPECT_NE(dir_error((dir_ / "sharded").string()).find("'weight_map'"), std::string::npos);
  write("sharded/model.safetensors.index.json", "{not json");
  EXPECT_NE(dir_error((dir_ / "sharded").string()).find("invalid JSON"), std::string::npos);
}

TEST_F(SafeTensorsTest, DuplicateTensorAcrossShardsIsAnError) {
  write("dup/s1.safetensors", make_safetensors({{"a", "F32", {1}, floats({1})}}));
  write("dup/s2.safetensors", make_safetensors({{"a", "F32", {1}, floats({2})}}));
  write("dup/model.safetensors.index.json",
        json({{"weight_map", {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}}}}).dump());
  EXPECT_NE(dir_error((dir_ / "dup").string()).find("tensor 'a' also appears in an earlier file"),
            std::string::npos);
}

TEST_F(SafeTensorsTest, EmptyFolderIsAClearError) {
  std::filesystem::create_directories(dir_ / "empty");
  EXPECT_NE(dir_error((dir_ / "empty").string())
                .find("neither model.safetensors nor model.safetensors.index.json found"),
            std::string::npos);
}

TEST_F(SafeTensorsTest, RejectsMalformedHeaders) {
  // Header length larger than the file.
  std::string huge(8, '\xff');
  EXPECT_NE(open_error(huge + "{}").find("header length 18446744073709551615 exceeds"),
            std::string::npos);
  EXPECT_NE(open_error("abc").find("header length"), std::string::npos);
  EXPECT_NE(header_error("{\"a\":").find("invalid JSON"), std::string::npos);
  EXPECT_NE(header_error("[1,2]").find("expected a JSON object"), std::string::npos);

  const std::string data(16, '\0');
  auto entry = [](const std::string& body) { return "{\"t\":" + body + "}"; };
  std::string m = header_error(entry(R"({"dtype":"F32","shape":[4],"data_offsets":[0,20]})"), data);
  EXPECT_NE(m.find("tensor 't': data_offsets [0, 20] outside the data section (16 bytes)"),
            std::string::npos) << m;
  m = header_error(entry(R"({"dtype":"F32","shape":[4],"data_offsets":[8,4]})"), data);
  EXPECT_NE(m.find("outside the data section"), std::string::npos) << m;
  m = header_error(entry(R"({"dtype":"F32","shape":[3],"data_offsets":[0,16]})"), data);
  EXPECT_NE(m.find("hold 16 bytes, but shape [3] of F32 needs 3 x 4"), std::string::npos) << m;
  m = header_error(entry(R"({"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]})"), data);
  EXPECT_NE(m.find("has 5 dims; at most 4"), std::string::npos) << m;
  m = header_error(entry(R"({"dtype":"Q9","shape":[4],"data_offsets":[0,16]})"), data);
  EXPECT_NE(m.find("tensor 't': unknown dtype 'Q9'"), std::string::npos) << m;
  m = header_error(entry(R"({"dtype":"F32","shape":[-4],"data_offsets":[0,16]})"), data);
  EXPECT_NE(m.find("shape entry -4 is not a valid dimension"), std::string::npos) << m;
  m = header_error(
      entry(R"({"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]})"),
      data);
  EXPECT_NE(m.find("overflows"), std::string::npos) << m;
  m = header_error(entry(R"({"dtype":"F32","shape":[4],"data_offsets":[0,1e3]})"), data);
  EXPECT_NE(m.find("are not non-negative integers"), std::string::npos) << m;
  m = header_error(entry(R"({"dtype":"F32","shape":[4]})"), data);
  EXPECT_NE(m.find("'data_offsets' must be [begin, end]"), std::string::npos) << m;
  m = header_error(entry(R"({"dtype":5,"shape":[4],"data_offsets":[0,16]})"), data);
  EXPECT_NE(m.find("non-string 'dtype'"), std::string::npos) << m;
  m = header_error(entry("7"), data);
  EXPECT_NE(m.find("expected an object"), std::string::npos) << m;
  m = header_error(R"({"__metadata__":3})", data);
  EXPECT_NE(m.find("'__metadata__'"), std::string::npos) << m;
}
