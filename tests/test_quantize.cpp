// kite quantize / convert: recipes, files that match llama.cpp's byte for byte, round trips
// through Kite's own loader, calibration, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert/imatrix.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "model/config.h"
#include "kite/kite.h"
#include "quant/recipe.h"
#include "test_util.h"

using namespace kite;
using kite::test::fresh_temp_dir;
using kite::test::run_cli;
using kite::test::shared_path;
namespace fs = std::filesystem;

namespace {
std::string q(const std::string& s) { return "'" + s + "'"; }

// Greedy ids of a prompt (8 tokens).
std::vector<int32_t> greedy(const std::string& model_path, const std::string& prompt) {
  auto m = Model::load(model_path);
  Session s(m, {.n_ctx = 64, .n_threads = 1});
  GenerateOptions g;
  g.n_predict = 8;
  g.sampling.temperature = 0;
  g.stop_at_eos = false;
  return generate(s, m->tokenize(prompt, m->add_bos()), g).ids;
}
}  // namespace

TEST(QuantRecipe, Q4KMMix) {
  const QuantRecipe r = quant_recipe("q4_k_m");
  EXPECT_EQ(r.name, "Q4_K_M");
  EXPECT_EQ(r.file_type, 15u);
  auto type = [&](const std::string& name, int n_dims = 2, int64_t n = 512) {
    return choose_tensor_type(r, {}, name, n_dims, n, 8).type;
  };
  // Q5_K where the zoo teacher's perplexity is most sensitive: ffn_down, output, token_embd
  EXPECT_EQ(type("blk.0.attn_v.weight"), DType::Q4_K);
  EXPECT_EQ(type("blk.1.attn_q.weight"), DType::Q4_K);
  EXPECT_EQ(type("blk.3.ffn_down.weight"), DType::Q5_K);
  EXPECT_EQ(type("blk.4.ffn_down.weight"), DType::Q5_K);
  EXPECT_EQ(type("blk.2.ffn_up.weight"), DType::Q4_K);
  EXPECT_EQ(type("output.weight"), DType::Q5_K);
  EXPECT_EQ(type("token_embd.weight"), DType::Q5_K);
  // Q5_K_M: use_more_bits on 8 layers: 0, 3, 6, 7
  const QuantRecipe r5 = quant_recipe("Q5_K_M");
  EXPECT_EQ(choose_tensor_type(r5, {}, "blk.0.attn_v.weight", 2, 512, 8).type, DType::Q6_K);
  EXPECT_EQ(choose_tensor_type(r5, {}, "blk.1.attn_v.weight", 2, 512, 8).type, DType::Q5_K);
  EXPECT_EQ(choose_tensor_type(r5, {}, "blk.7.ffn_down.weight", 2, 512, 8).type, DType::Q6_K);
  EXPECT_EQ(choose_tensor_type(quant_recipe("Q4_0"), {}, "output.weight", 2, 512, 8).type, DType::Q6_K);
  EXPECT_EQ(type("blk.0.attn_norm.weight", 1), DType::F32);
  // --keep wins, with wildcards
  const std::vector<TypeOverride> keep = {parse_type_override("blk.*.attn_q.weight=q8_0")};
  EXPECT_EQ(choose_tensor_type(r, keep, "blk.5.attn_q.weight", 2, 512, 8).type, DType::Q8_0);
  // rows that K-quants cannot hold fall back, and say so
  const TensorChoice c = choose_tensor_type(r, {}, "blk.1.ffn_up.weight", 2, 64, 8);
  EXPECT_EQ(c.type, DType::Q5_0);
  EXPECT_NE(c.note.find("256"), std::string::npos) << c.note;
  EXPECT_EQ(choose_tensor_type(r, {}, "blk.1.ffn_up.weight", 2, 48, 8).type, DType::F16);
}

TEST(QuantRecipe, BadNamesAreClearErrors) {
  try {
    quant_recipe("Q9_X");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q9_X"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("Q4_K_M"), std::string::npos);  // lists the known ones
  }
  EXPECT_THROW(parse_type_override("output.weight"), Error);
  EXPECT_THROW(parse_type_override("output.weight=Q7"), Error);
  EXPECT_THROW(parse_type_override("=Q8_0"), Error);
}

// Kite's Q8_0 of the Hugging Face teacher is llama.cpp's file, tensor for tensor: same names,
// shapes, types and bytes (Q/K rows permuted as llama.cpp's converter does), same tokenizer.
TEST(Quantize, Q8_0FromHfIsByteIdenticalToLlamaCpp) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  KITE_REQUIRE_SHARED("models/zoo-gguf/zoo-teacher-34m-Q8_0.gguf");
  const fs::path dir = fresh_temp_dir("q8");
  const std::string out = (dir / "t.gguf").string();
  const auto r = run_cli("quantize " + q(shared_path("models/zoo-teacher-34m")) + " " + q(out) + " --type Q8_0");
  ASSERT_EQ(r.code, 0) << r.out;
  auto ours = GGUFFile::open(out);
  auto ref = GGUFFile::open(shared_path("models/zoo-gguf/zoo-teacher-34m-Q8_0.gguf"));
  ASSERT_EQ(ours->tensors().size(), ref->tensors().size());
  for (const Tensor& t : ref->tensors()) {
    const Tensor* o = ours->find_tensor(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    EXPECT_EQ(o->type, t.type) << t.name;
    EXPECT_EQ(o->ne, t.ne) << t.name;
    ASSERT_EQ(o->nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(o->data, t.data, t.nbytes), 0) << t.name << " bytes differ";
  }
  EXPECT_EQ(ours->get_string_array("tokenizer.ggml.tokens"), ref->get_string_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(ours->get_float_array("tokenizer.ggml.scores"), ref->get_float_array("tokenizer.ggml.scores"));
  EXPECT_EQ(ours->get_int_array("tokenizer.ggml.token_type"), ref->get_int_array("tokenizer.ggml.token_type"));
  EXPECT_EQ(ours->get_int("general.file_type"), 7);
  fs::remove_all(dir);
}

// convert (HF -> F32 GGUF) and quantize (GGUF -> GGUF) keep the model: greedy ids are the HF
// model's; a K-quant recipe on 64-wide rows falls back (and says so) and still runs.
TEST(Quantize, ConvertAndRequantizeRoundTrip) {
  KITE_REQUIRE_SHARED("models/stories260K-hf");
  const fs::path dir = fresh_temp_dir("convert");
  const std::string hf = shared_path("models/stories260K-hf"), f32 = (dir / "f32.gguf").string(),
                    q8 = (dir / "q8.gguf").string(), q4 = (dir / "q4km.gguf").string();
  auto r = run_cli("convert " + q(hf) + " " + q(f32) + " --outtype f32");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(greedy(f32, "Once upon a time"), greedy(hf, "Once upon a time"));
  r = run_cli("quantize " + q(f32) + " " + q(q8) + " --type Q8_0 --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["bits_per_weight"].get<double>(), 8.0);
  EXPECT_LT(j["bits_per_weight"].get<double>(), 12.0);  // a 260K model: the tokenizer is a large share
  EXPECT_EQ(greedy(q8, "Once upon a time").size(), 8u);
  r = run_cli("quantize " + q(f32) + " " + q(q4) + " --type Q4_K_M");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("note: "), std::string::npos) << r.out;  // 64-wide rows: fallback noted
  EXPECT_EQ(greedy(q4, "Once upon a time").size(), 8u);
  fs::remove_all(dir);
}

// --calib writes the calibrated file only where it beats the uncalibrated one on held-out
// calibration text and on the model's own samples; the JSON says what was compared and kept.
TEST(Quantize, CalibratedFileIsCheckedAgainstPlain) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  KITE_REQUIRE_SHARED("corpus/tinystories_valid_head.txt");
  const fs::path dir = fresh_temp_dir("quant_calib");
  const std::string src = shared_path("models/stories260K.gguf"), out = (dir / "q.gguf").string(),
                    calib = (dir / "calib.txt").string();
  {
    std::ofstream f(calib);
    f << read_text_file(shared_path("corpus/tinystories_valid_head.txt")).substr(0, 6000);
  }
  auto r = run_cli("quantize " + q(src) + " " + q(out) + " --type Q4_0 --calib " + q(calib) +
                       " --calib-ctx 64 --calib-chunks 8 --json -t 1", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const auto& c = j["calibration_check"];
  ASSERT_TRUE(c.is_object()) << r.out;
  const std::string kept = c["kept"];
  EXPECT_TRUE(kept == "calibrated" || kept == "plain") << kept;
  for (const char* text : {"heldout", "samples"}) {
    ASSERT_TRUE(c.contains(text)) << r.out;
    EXPECT_EQ(c[text]["tokens"].get<int>() % 64, 0) << text;  // whole chunks
    EXPECT_GT(c[text]["ppl_calibrated"].get<double>(), 1.0) << text;
    EXPECT_GT(c[text]["ppl_plain"].get<double>(), 1.0) << text;
  }
  const bool cal_won = c["heldout"]["ppl_calibrated"] < c["heldout"]["ppl_plain"] &&
                       c["samples"]["ppl_calibrated"] < c["samples"]["ppl_plain"];
  EXPECT_EQ(kept == "calibrated", cal_won);
  EXPECT_FALSE(fs::exists(out + ".plain.tmp"));
  EXPECT_EQ(greedy(out, "Once upon a time").size(), 8u);
  fs::remove_all(dir);
}

TEST(Quantize, ImatrixObservesEveryMatrix) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  auto m = Model::load(shared_path("models/stories260K.gguf"));
  const std::vector<int32_t> toks = m->tokenize("Once upon a time there was a little girl named Lily. She liked to play.", false);
  const Imatrix im = collect_imatrix(m, toks, 16, 0, 1);
  EXPECT_EQ(im.tokens, int64_t(toks.size() / 15 * 15));  // whole chunks of 15 tokens after BOS
  const int n_layer = m->config().n_layer;
  EXPECT_EQ(im.mean_sq.size(), size_t(7 * n_layer + 1));  // q k v o gate up down per layer + output
  for (const auto& [name, v] : im.mean_sq) {
    double s = 0;
    for (float x : v) s += x;
    EXPECT_GT(s, 0) << name;
  }
  EXPECT_EQ(im.find("token_embd.weight", m->config().n_embd), nullptr);  // a lookup, not a product
}

TEST(Quantize, BadInputIsAClearError) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  const fs::path dir = fresh_temp_dir("quant_bad");
  const std::string src = shared_path("models/stories260K.gguf"), out = (dir / "o.gguf").string();
  auto r = run_cli("quantize " + q(src) + " " + q(out) + " --type Q3_X");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("unknown quantization type 'Q3_X'"), std::string::npos) << r.out;
  r = run_cli("quantize " + q(src) + " " + q(out) + " --type Q8_0 --keep output.weight=Q1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("Q1"), std::string::npos) << r.out;
  r = run_cli("quantize " + q((dir / "missing.gguf").string()) + " " + q(out) + " --type Q8_0");
  EXPECT_EQ(r.code, 1) << r.out;
  r = run_cli("quantize " + q(src) + " " + q(out) + " --type Q8_0 --calib " + q((dir / "none.txt").string()));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("none.txt"), std::string::npos) << r.out;

  // A corrupted weight (NaN) is named, not quantized into garbage.
  const std::string bad = (dir / "nan.gguf").string();
  fs::copy_file(src, bad);
  {
    auto g = GGUFFile::open(src);
    const Tensor* t = g->find_tensor("blk.0.attn_q.weight");
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(t->type, DType::F32);
    const auto offset = static_cast<const uint8_t*>(t->data) - static_cast<const uint8_t*>(g->file()->data());
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(offset + 4 * 70);
    const float nan = std::nanf("");
    f.write(reinterpret_cast<const char*>(&nan), 4);
  }
  r = run_cli("quantize " + q(bad) + " " + q(out) + " --type Q4_0");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("blk.0.attn_q.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("non-finite"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out)) << "a failed quantize must not leave an output file";
  fs::remove_all(dir);
}
