// Randomized corruption of every format Kite reads. Each corrupted file must either load or
// throw kite::Error: no crash, hang, huge allocation, or read outside the file (the suite runs
// under ASan/UBSan). Seeds are fixed, so a failure reproduces; the iteration is reported.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/hf_config.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "test_util.h"

using namespace kite;
using json = nlohmann::json;

namespace {

const uint64_t kHuge64[] = {0xFFFFFFFFFFFFFFFFull, 0x8000000000000000ull, 0x7FFFFFFFFFFFFFFFull,
                            0x0000000100000000ull, 0x00000000FFFFFFFFull, 0x0000000000001000ull};
const uint32_t kOdd32[] = {0xFFFFFFFFu, 0x80000000u, 0x7FFFFFFFu, 13u, 99u, 5u, 0u};

// Touches the first and last byte of a view that claims to lie in [base, base + size).
void check_view(const void* data, size_t nbytes, const uint8_t* base, size_t size,
                const std::string& what) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  ASSERT_TRUE(p >= base && nbytes <= size && p - base <= ptrdiff_t(size - nbytes))
      << what << " lies outside its file";
  if (nbytes) {
    volatile uint8_t sink = p[0];
    sink = p[nbytes - 1];
    (void)sink;
  }
}

class FormatFuzz : public ::testing::Test {
 protected:
  // Thousands of small files are written: tmpfs when there is one, and each attempt's file is
  // fresh and removed afterwards (rewriting one file in place on ext4 flushes it each time).
  void SetUp() override {
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                           ? std::filesystem::path("/dev/shm")
                                           : std::filesystem::temp_directory_path();
    dir_ = base / ("kite_test_format_fuzz_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string p = path(name);
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), std::streamsize(bytes.size()));
    return p;
  }

  // Writes `bytes` to a fresh file, loads it with load(path), removes it.
  template <class Load>
  void attempt_file(const std::string& what, const std::string& bytes, Load&& load) {
    const std::string p = write("f" + std::to_string(counter_++) + ".bin", bytes);
    attempt(what, [&] { load(p); });
    std::filesystem::remove(p);
  }

  // One attempt: success and kite::Error are both fine; anything else is a test failure.
  template <class Load>
  void attempt(const std::string& what, Load&& load) {
    try {
      load();
      ok_++;
    } catch (const Error&) {
      rejected_++;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": non-kite exception: " << e.what();
    }
  }

  void report(const char* name) {
    std::printf("[ fuzz     ] %s: %d loaded, %d rejected\n", name, ok_, rejected_);
    ok_ = rejected_ = 0;
  }

  // Random mutations: flip, overwrite with a huge value, insert, delete, truncate.
  std::string mutate(std::string s, std::mt19937_64& rng, size_t focus_end) {
    if (s.empty()) return s;
    const size_t end = std::min(focus_end, s.size());
    auto pos = [&](size_t lim) { return size_t(rng() % std::max<size_t>(lim, 1)); };
    const int n = 1 + int(rng() % 4);
    for (int k = 0; k < n && !s.empty(); k++) {
      switch (rng() % 6) {
        case 0: case 1: s[pos(std::min(end, s.size()))] ^= char(1 + rng() % 255); break;
        case 2: {
          const uint64_t v = kHuge64[rng() % std::size(kHuge64)];
          const size_t p = pos(std::min(end, s.size()));
          std::memcpy(&s[p], &v, std::min<size_t>(8, s.size() - p));
          break;
        }
        case 3: {
          const uint32_t v = kOdd32[rng() % std::size(kOdd32)];
          const size_t p = pos(std::min(end, s.size()));
          std::memcpy(&s[p], &v, std::min<size_t>(4, s.size() - p));
          break;
        }
        case 4:
          s.insert(pos(std::min(end, s.size())), std::string(1 + rng() % 16, char(rng())));
          break;
        case 5: s.erase(pos(std::min(end, s.size())), 1 + rng() % 16); break;
      }
    }
    if (rng() % 4 == 0) s.resize(pos(s.size()));
    return s;
  }

  std::filesystem::path dir_;
  int ok_ = 0, rejected_ = 0;
  int counter_ = 0;
};

// ---- loaders that also exercise what they return --------------------------------

void load_gguf(const std::string& p) {
  auto g = GGUFFile::open(p);
  const uint8_t* base = g->file()->data();
  for (const Tensor& t : g->tensors())
    check_view(t.data, t.nbytes, base, g->file()->size(), t.name);
  for (const auto& [key, v] : g->metadata()) {  // getters must not misbehave on any type
    try { g->get_int(key); } catch (const Error&) {}
    try { g->get_string_array(key); } catch (const Error&) {}
    try { g->get_float_array(key); } catch (const Error&) {}
  }
}

void load_safetensors_file(const std::string& p) {
  auto st = SafeTensors::open_file(p);
  const auto& f = st->files().at(0);
  for (const auto& [name, t] : st->tensors())
    check_view(t.data, t.nbytes, f->data(), f->size(), name);
}

void load_llama2c_file(const std::string& p) {
  Llama2cCheckpoint ck = load_llama2c(p);
  for (const auto& [name, t] : ck.tensors)
    check_view(t.data, t.nbytes, ck.file->data(), ck.file->size(), name);
}

// A small GGUF touching every value type and a few tensor types.
std::string small_gguf(const std::string& p) {
  GGUFWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_u8("t.u8", 7);
  w.set_i16("t.i16", -7);
  w.set_u64("t.u64", 1ull << 40);
  w.set_f32("t.f32", 0.5f);
  w.set_f64("t.f64", 0.25);
  w.set_bool("t.bool", true);
  w.set_array_str("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "b"});
  w.set_array_f32("tokenizer.ggml.scores", {0, 0, 0, -1, -2});
  w.set_array_i32("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
  GGUFValue nested;
  nested.type = GGUFType::ARRAY;
  nested.elem_type = GGUFType::ARRAY;
  nested.arr.resize(2);
  for (GGUFValue& a : nested.arr) {
    a.type = GGUFType::ARRAY;
    a.elem_type = GGUFType::U16;
    a.arr.resize(2);
    for (GGUFValue& e : a.arr) e.type = GGUFType::U16;
  }
  w.set_value("t.nested", nested);
  static std::vector<uint8_t> buf(4096, 0x3c);
  w.add_tensor("a", DType::F32, {8, 2, 1, 1}, 2, buf.data(), 64);
  w.add_tensor("b", DType::Q8_0, {32, 2, 1, 1}, 2, buf.data(), 68);
  w.add_tensor("c", DType::F16, {16, 1, 1, 1}, 1, buf.data(), 32);
  w.add_tensor("d", DType::Q4_K, {256, 1, 1, 1}, 1, buf.data(), 144);
  w.write(p);
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string floats(size_t n, float v) {
  std::vector<float> x(n, v);
  return std::string(reinterpret_cast<const char*>(x.data()), n * 4);
}

std::string with_header_len(const std::string& header) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header;
}

json small_safetensors_header() {
  return json::parse(R"({
    "__metadata__": {"format": "pt"},
    "w": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]},
    "h": {"dtype": "F16", "shape": [4], "data_offsets": [32, 40]},
    "b": {"dtype": "BF16", "shape": [1, 2, 2], "data_offsets": [40, 48]},
    "i": {"dtype": "I64", "shape": [1], "data_offsets": [48, 56]},
    "u": {"dtype": "U8", "shape": [8], "data_offsets": [56, 64]}
  })");
}

// A tiny legacy llama2.c checkpoint: dim 8, hidden 16, 2 layers, 2 heads, 1 kv head,
// vocab 16 (negative: separate classifier), seq_len 4.
std::string small_llama2c(bool shared) {
  std::string s;
  for (int32_t v : {8, 16, 2, 2, 1, shared ? 16 : -16, 4})
    s.append(reinterpret_cast<const char*>(&v), 4);
  const size_t hs = 4, kv = 4;
  size_t n = 16 * 8 + 2 * (8 + 8 * 8 + 2 * 8 * kv + 8 * 8 + 8 + 3 * 16 * 8) + 8 + 4 * hs;
  if (!shared) n += 16 * 8;
  return s + floats(n, 0.5f);
}

}  // namespace

TEST_F(FormatFuzz, GGUFSmallFile) {
  const std::string orig = small_gguf(path("small.gguf"));
  const size_t header_end = GGUFFile::open(path("small.gguf"))->data_offset();
  ASSERT_NO_THROW(load_gguf(path("small.gguf")));
  // Every truncation.
  for (size_t n = 0; n < orig.size(); n += 1 + (n >= header_end) * 7) {
    attempt_file("truncate " + std::to_string(n), orig.substr(0, n), load_gguf);
  }
  // Huge / odd values at every header offset: hits every count, length, type and offset field.
  for (size_t pos = 0; pos < header_end; pos++) {
    for (uint64_t v : kHuge64) {
      std::string s = orig;
      std::memcpy(&s[pos], &v, std::min<size_t>(8, s.size() - pos));
      attempt_file("u64 at " + std::to_string(pos), s, load_gguf);
    }
    for (uint32_t v : kOdd32) {
      std::string s = orig;
      std::memcpy(&s[pos], &v, 4);
      attempt_file("u32 at " + std::to_string(pos), s, load_gguf);
    }
  }
  std::mt19937_64 rng(20240601);
  for (int i = 0; i < 3000; i++) {
    attempt_file("random #" + std::to_string(i), mutate(orig, rng, header_end + 64), load_gguf);
  }
  report("gguf small");
}

TEST_F(FormatFuzz, GGUFStories260K) {
  KITE_REQUIRE_SHARED("models/stories260K.gguf");
  std::ifstream in(test::shared_path("models/stories260K.gguf"), std::ios::binary);
  const std::string orig((std::istreambuf_iterator<char>(in)), {});
  const size_t header_end =
      GGUFFile::open(test::shared_path("models/stories260K.gguf"))->data_offset();
  std::mt19937_64 rng(1185376);
  for (int i = 0; i < 120; i++) {
    std::string s = orig;
    if (i % 3 == 0) {
      s.resize(rng() % s.size());
    } else {  // overwrite a header field with a huge value
      const uint64_t v = kHuge64[rng() % std::size(kHuge64)];
      std::memcpy(&s[rng() % header_end], &v, 8);
    }
    attempt_file("stories #" + std::to_string(i), s, load_gguf);
  }
  report("gguf stories260K");
}

TEST_F(FormatFuzz, SafeTensorsFile) {
  const std::string header = small_safetensors_header().dump();
  std::string data = floats(8, 1.0f) + std::string(32, '\x11');
  const std::string orig = with_header_len(header) + data;
  ASSERT_NO_THROW(load_safetensors_file(write("ok.safetensors", orig)));
  const size_t header_end = 8 + header.size();

  for (size_t n = 0; n < orig.size(); n++) {
    attempt_file("truncate " + std::to_string(n), orig.substr(0, n), load_safetensors_file);
  }
  for (uint64_t v : kHuge64) {
    std::string s = orig;
    std::memcpy(&s[0], &v, 8);
    attempt_file("header length", s, load_safetensors_file);
  }
  // Every header character replaced by JSON punctuation and digits (length kept).
  const char kChars[] = {'9', '-', '"', '{', '[', ']', '}', ',', ':', 'e', '.', '\0', '\xff'};
  for (size_t pos = 8; pos < header_end; pos++) {
    for (char c : kChars) {
      std::string s = orig;
      s[pos] = c;
      attempt_file("char at " + std::to_string(pos), s, load_safetensors_file);
    }
  }
  // Structured lies, with a consistent header length.
  const std::vector<json> kValues = {
      json(-1), json(18446744073709551615ull), json(4294967296ll), json(1e308), json(0.5),
      json("F32"), json(nullptr), json::array(), json::array({1, 2, 3}),
      json::array({18446744073709551615ull, 18446744073709551615ull}), json::array({64, 0}),
      json::array({0, 65}), json::object(), json::array({1, 2, 3, 4, 5})};
  for (const char* tensor : {"w", "h", "b", "i", "u"}) {
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
      for (const json& v : kValues) {
        json h = small_safetensors_header();
        h[tensor][field] = v;
        attempt_file(std::string(tensor) + "." + field + " = " + v.dump(),
                     with_header_len(h.dump()) + data, load_safetensors_file);
      }
    }
  }
  std::mt19937_64 rng(407);
  for (int i = 0; i < 3000; i++)
    attempt_file("random #" + std::to_string(i), mutate(orig, rng, header_end),
                 load_safetensors_file);
  report("safetensors");
}

TEST_F(FormatFuzz, SafeTensorsShardIndex) {
  std::filesystem::create_directories(dir_ / "sharded");
  const std::string shard = with_header_len(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}      )") + floats(2, 1.0f);
  write("sharded/s1.safetensors", shard);
  const std::string index = R"({"metadata":{"total_size":8},"weight_map":{"a":"s1.safetensors"}})";
  write("sharded/model.safetensors.index.json", index);
  ASSERT_NO_THROW(SafeTensors::open_dir(path("sharded")));
  std::mt19937_64 rng(2);
  for (int i = 0; i < 600; i++) {
    write("sharded/model.safetensors.index.json", mutate(index, rng, index.size()));
    attempt("index #" + std::to_string(i), [&] { SafeTensors::open_dir(path("sharded")); });
  }
  report("safetensors index");
}

TEST_F(FormatFuzz, Llama2cSmallFile) {
  for (bool shared : {true, false}) {
    const std::string orig = small_llama2c(shared);
    ASSERT_NO_THROW(load_llama2c_file(write("ok.bin", orig)));
    const int32_t kInts[] = {0, 1, -1, 2, 3, 16, -16, INT32_MAX, INT32_MIN, 0x40000000, 0x616b3432};
    for (int field = 0; field < 7; field++) {
      for (int32_t v : kInts) {
        std::string s = orig;
        std::memcpy(&s[field * 4], &v, 4);
        attempt_file("field " + std::to_string(field), s, load_llama2c_file);
      }
    }
    std::mt19937_64 rng(shared ? 28 : 29);
    for (int i = 0; i < 1000; i++) {
      attempt_file("random #" + std::to_string(i), mutate(orig, rng, 32), load_llama2c_file);
    }
    // Version-1 headers with random fields.
    for (int i = 0; i < 500; i++) {
      std::string s(256, '\0');
      const uint32_t magic = 0x616b3432;
      std::memcpy(&s[0], &magic, 4);
      for (int k = 1; k < 9; k++) {
        const int32_t v = (rng() % 3 == 0) ? kInts[rng() % std::size(kInts)] : int32_t(rng() % 20);
        std::memcpy(&s[k * 4], &v, 4);
      }
      s[36] = char(rng() % 2);
      s += std::string(rng() % 4096, '\0');
      attempt_file("v1 #" + std::to_string(i), s, load_llama2c_file);
    }
  }
  report("llama2c small");
}

TEST_F(FormatFuzz, Llama2cStories260K) {
  KITE_REQUIRE_SHARED("models/stories260K.bin");
  std::ifstream in(test::shared_path("models/stories260K.bin"), std::ios::binary);
  const std::string orig((std::istreambuf_iterator<char>(in)), {});
  std::mt19937_64 rng(260);
  for (int i = 0; i < 60; i++) {
    std::string s = orig;
    if (i % 4 == 0) {
      s.resize(rng() % s.size());
    } else {
      const int32_t v = int32_t(rng() % 3 == 0 ? rng() : rng() % 1024) * (rng() % 2 ? 1 : -1);
      std::memcpy(&s[(rng() % 7) * 4], &v, 4);
    }
    attempt_file("stories #" + std::to_string(i), s, load_llama2c_file);
  }
  report("llama2c stories260K");
}

TEST_F(FormatFuzz, HFConfig) {
  std::vector<std::string> originals = {R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "tie_word_embeddings": true, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0,
    "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}})"};
  if (test::path_exists(test::shared_path("models/zoo-teacher-34m/config.json")))
    originals.push_back(read_text_file(test::shared_path("models/zoo-teacher-34m/config.json")));

  const std::vector<json> kValues = {
      json(nullptr), json(0), json(-1), json(2147483648ll), json(18446744073709551615ull),
      json(1e308), json(-0.0), json(0.5), json("x"), json(true), json::array(),
      json::array({1}), json::object(), json({{"rope_type", "llama3"}}),
      json({{"type", "linear"}, {"factor", -1}})};
  for (const std::string& orig : originals) {
    ASSERT_NO_THROW(parse_hf_config(orig, "config.json"));
    for (size_t n = 0; n < orig.size(); n++)
      attempt("truncate", [&] { parse_hf_config(orig.substr(0, n), "config.json"); });
    const json base = json::parse(orig);
    for (auto it = base.begin(); it != base.end(); ++it) {
      for (const json& v : kValues) {
        json j = base;
        j[it.key()] = v;
        attempt(it.key() + " = " + v.dump(), [&] { parse_hf_config(j.dump(), "config.json"); });
        j.erase(it.key());
        attempt("without " + it.key(), [&] { parse_hf_config(j.dump(), "config.json"); });
      }
    }
    std::mt19937_64 rng(1024);
    for (int i = 0; i < 2000; i++) {
      const std::string s = mutate(orig, rng, orig.size());
      attempt("random #" + std::to_string(i), [&] { parse_hf_config(s, "config.json"); });
    }
  }
  // The file path goes through the same code.
  attempt_file("file", originals[0], read_hf_config);
  report("hf config");
}
