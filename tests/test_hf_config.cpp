// Hugging Face config.json reader: the shared model configs, synthetic Llama 3 / Qwen2 /
// Mistral configs, and precise errors for bad fields.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/hf_config.h"
#include "test_util.h"

using namespace kite;
using json = nlohmann::json;

namespace {

// A Llama-3.2-1B-like config.
json llama3_config() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
    "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 64, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "tie_word_embeddings": true, "attention_bias": false,
    "mlp_bias": false, "hidden_act": "silu", "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}
  })");
}

// A Qwen2.5-0.5B-like config.
json qwen2_config() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
    "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "rope_scaling": null, "sliding_window": 32768, "use_sliding_window": false,
    "tie_word_embeddings": true, "hidden_act": "silu", "torch_dtype": "bfloat16"
  })");
}

ModelConfig parse(const json& j) { return parse_hf_config(j.dump(), "test/config.json"); }

std::string parse_error(const json& j) {
  try {
    parse(j);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected kite::Error for " << j.dump();
  return "";
}

}  // namespace

TEST(HFConfig, ZooTeacher) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m/config.json");
  ModelConfig c = read_hf_config(test::shared_path("models/zoo-teacher-34m/config.json"));
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.name, "zoo-teacher-34m");
  EXPECT_EQ(c.n_vocab, 8192);
  EXPECT_EQ(c.n_embd, 512);
  EXPECT_EQ(c.n_ff, 1536);
  EXPECT_EQ(c.n_layer, 8);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope_dim, 64);
  EXPECT_EQ(c.n_ctx_train, 1024);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_style, RopeStyle::NeoX);
  EXPECT_EQ(c.rope_scaling, RopeScaling::None);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_FALSE(c.attn_bias);
}

TEST(HFConfig, ZooDraft) {
  KITE_REQUIRE_SHARED("models/zoo-draft-7m/config.json");
  ModelConfig c = read_hf_config(test::shared_path("models/zoo-draft-7m/config.json"));
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_ff, 768);
  EXPECT_EQ(c.n_layer, 4);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_vocab, 8192);
}

TEST(HFConfig, Stories260KHfDefaultsHeadDimAndTiesEmbeddings) {
  KITE_REQUIRE_SHARED("models/stories260K-hf/config.json");
  ModelConfig c = read_hf_config(test::shared_path("models/stories260K-hf/config.json"));
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.name, "stories260K-hf");  // no _name_or_path: the folder name
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_ff, 172);
  EXPECT_EQ(c.n_layer, 5);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.head_dim, 8);  // hidden / heads
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.n_ctx_train, 512);
  EXPECT_TRUE(c.tied_embeddings);
}

TEST(HFConfig, EosIdsFromGenerationConfig) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m/generation_config.json");
  EXPECT_EQ(read_hf_eos_ids(test::shared_path("models/zoo-teacher-34m")), std::vector<int>{2});
  const auto dir = std::filesystem::temp_directory_path() /
                   ("kite_test_hf_config_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_TRUE(read_hf_eos_ids(dir.string()).empty());
  std::ofstream(dir / "config.json") << llama3_config().dump();
  EXPECT_EQ(read_hf_eos_ids(dir.string()), (std::vector<int>{128001, 128008, 128009}));
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": 7})";
  EXPECT_EQ(read_hf_eos_ids(dir.string()), std::vector<int>{7});
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": "x"})";
  EXPECT_THROW(read_hf_eos_ids(dir.string()), Error);
  std::filesystem::remove_all(dir);
}

TEST(HFConfig, Llama3RopeScaling) {
  ModelConfig c = parse(llama3_config());
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_vocab, 128256);
  EXPECT_EQ(c.n_head_kv, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_ctx_train, 131072);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling, RopeScaling::Llama3);
  EXPECT_FLOAT_EQ(c.rope_factor, 32.0f);
  EXPECT_FLOAT_EQ(c.rope_low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(c.rope_high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_orig_ctx, 8192);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_FALSE(c.attn_bias);
}

TEST(HFConfig, Qwen2HasAttentionBias) {
  ModelConfig c = parse(qwen2_config());
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_EQ(c.n_embd, 896);
  EXPECT_EQ(c.n_head, 14);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_ff, 4864);
  EXPECT_EQ(c.n_layer, 24);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(c.rope_scaling, RopeScaling::None);
  EXPECT_EQ(c.rope_style, RopeStyle::NeoX);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_TRUE(c.attn_bias);
}

TEST(HFConfig, ArchitectureDetection) {
  json m = llama3_config();
  m["model_type"] = "mistral";
  m.erase("rope_scaling");
  EXPECT_EQ(parse(m).arch, "llama");
  m.erase("model_type");  // falls back to architectures
  EXPECT_EQ(parse(m).arch, "llama");
  m["model_type"] = "smollm";
  EXPECT_EQ(parse(m).arch, "llama");
  json q = qwen2_config();
  q.erase("model_type");
  EXPECT_EQ(parse(q).arch, "qwen2");
  q["model_type"] = "gpt2";
  q["architectures"] = {"GPT2LMHeadModel"};
  EXPECT_NE(parse_error(q).find("test/config.json: field 'model_type' = 'gpt2' is not supported"),
            std::string::npos);
  q.erase("model_type");
  EXPECT_NE(parse_error(q).find("GPT2LMHeadModel"), std::string::npos);
}

TEST(HFConfig, DefaultsAndRopeVariants) {
  json j = qwen2_config();
  j.erase("num_key_value_heads");
  j.erase("rope_theta");
  j.erase("rms_norm_eps");
  j.erase("tie_word_embeddings");
  ModelConfig c = parse(j);
  EXPECT_EQ(c.n_head_kv, 14);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_FALSE(c.tied_embeddings);

  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  c = parse(j);
  EXPECT_EQ(c.rope_scaling, RopeScaling::Linear);
  EXPECT_FLOAT_EQ(c.rope_factor, 2.0f);
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse(j).rope_scaling, RopeScaling::None);

  // transformers 5 folds rope_theta into rope_parameters.
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}};
  c = parse(j);
  EXPECT_EQ(c.rope_scaling, RopeScaling::None);
  EXPECT_FLOAT_EQ(c.rope_theta, 250000.0f);
}

TEST(HFConfig, ErrorsNameTheFieldAndValue) {
  json j = llama3_config();
  j["rope_scaling"]["rope_type"] = "yarn";
  EXPECT_NE(parse_error(j).find("field 'rope_scaling.rope_type' = 'yarn' is not supported"),
            std::string::npos);
  j = llama3_config();
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  EXPECT_NE(parse_error(j).find("'dynamic'"), std::string::npos);
  j["rope_scaling"] = {{"type", "linear"}};
  EXPECT_NE(parse_error(j).find("field 'rope_scaling.factor' is missing"), std::string::npos);
  j["rope_scaling"] = "linear";
  EXPECT_NE(parse_error(j).find("'rope_scaling' must be an object"), std::string::npos);

  j = llama3_config();
  j["num_key_value_heads"] = 5;
  EXPECT_NE(parse_error(j).find("field 'num_key_value_heads' = 5 does not divide "
                                "num_attention_heads = 32"),
            std::string::npos);
  j = llama3_config();
  j["hidden_size"] = -1;
  EXPECT_NE(parse_error(j).find("test/config.json: field 'hidden_size' = -1 must be positive"),
            std::string::npos);
  j = llama3_config();
  j["vocab_size"] = "big";
  EXPECT_NE(parse_error(j).find("field 'vocab_size' must be an integer, got \"big\""),
            std::string::npos);
  j["vocab_size"] = 1e12;
  EXPECT_NE(parse_error(j).find("'vocab_size' must be an integer"), std::string::npos);
  j["vocab_size"] = 4096.0;  // integral floats are accepted
  EXPECT_EQ(parse(j).n_vocab, 4096);
  j = llama3_config();
  j.erase("num_hidden_layers");
  EXPECT_NE(parse_error(j).find("field 'num_hidden_layers' is missing"), std::string::npos);
  j = llama3_config();
  j.erase("head_dim");
  j["num_attention_heads"] = 24;
  j["num_key_value_heads"] = 8;
  EXPECT_NE(parse_error(j).find("'hidden_size' = 2048 is not a multiple of num_attention_heads"),
            std::string::npos);
  j = llama3_config();
  j["rms_norm_eps"] = 0;
  EXPECT_NE(parse_error(j).find("'rms_norm_eps' = 0 must be positive"), std::string::npos);
  j = llama3_config();
  j["tie_word_embeddings"] = "yes";
  EXPECT_NE(parse_error(j).find("'tie_word_embeddings' must be true or false"), std::string::npos);
  j = llama3_config();
  j["hidden_act"] = "gelu";
  EXPECT_NE(parse_error(j).find("'hidden_act' = 'gelu' is not supported"), std::string::npos);
  j = llama3_config();
  j["attention_bias"] = true;
  EXPECT_NE(parse_error(j).find("'attention_bias'"), std::string::npos);

  EXPECT_THROW(parse_hf_config("{", "x.json"), Error);
  EXPECT_THROW(parse_hf_config("[]", "x.json"), Error);
  EXPECT_THROW(read_hf_config("/nonexistent/config.json"), Error);
}
