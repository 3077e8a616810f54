#include "formats/hf_config.h"

#include <climits>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap.h"

namespace kite {

namespace {

using json = nlohmann::json;

std::string brief(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// Typed, checked access to the fields of one JSON object. A field that is absent or null
// takes the default. Errors read "<source>: field '<prefix><key>' <problem>".
class Fields {
 public:
  Fields(const json& obj, std::string source, std::string prefix = "")
      : obj_(obj), source_(std::move(source)), prefix_(std::move(prefix)) {}

  const std::string& source() const { return source_; }

  bool has(const char* key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && !it->is_null();
  }
  const json& at(const char* key) const { return *obj_.find(key); }

  template <class... Args>
  [[noreturn]] void error(const char* key, const Args&... args) const {
    fail(source_, ": field '", prefix_, key, "' ", args...);
  }

  int get_int(const char* key) const {
    if (!has(key)) error(key, "is missing");
    return to_int(key, at(key));
  }
  int get_int(const char* key, int def) const { return has(key) ? to_int(key, at(key)) : def; }

  int get_positive_int(const char* key) const { return positive(key, get_int(key)); }
  int get_positive_int(const char* key, int def) const { return positive(key, get_int(key, def)); }

  double get_number(const char* key) const {
    if (!has(key)) error(key, "is missing");
    return to_number(key, at(key));
  }
  double get_number(const char* key, double def) const {
    return has(key) ? to_number(key, at(key)) : def;
  }
  double get_positive_number(const char* key, double def) const {
    const double v = get_number(key, def);
    if (!(v > 0)) error(key, "= ", v, " must be positive");
    return v;
  }

  bool get_bool(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!at(key).is_boolean()) error(key, "must be true or false, got ", brief(at(key)));
    return at(key).get<bool>();
  }

  std::string get_string(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    if (!at(key).is_string()) error(key, "must be a string, got ", brief(at(key)));
    return at(key).get<std::string>();
  }

 private:
  int to_int(const char* key, const json& v) const {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT_MAX)) error(key, "= ", u, " is too large");
      return static_cast<int>(u);
    }
    if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if (i > INT_MAX || i < INT_MIN) error(key, "= ", i, " is out of range");
      return static_cast<int>(i);
    }
    if (v.is_number_float()) {  // e.g. 4096.0 from a sloppy writer
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && d >= INT_MIN && d <= INT_MAX)
        return static_cast<int>(d);
    }
    error(key, "must be an integer, got ", brief(v));
  }
  double to_number(const char* key, const json& v) const {
    if (!v.is_number()) error(key, "must be a number, got ", brief(v));
    const double d = v.get<double>();
    if (!std::isfinite(d)) error(key, "= ", brief(v), " is not finite");
    return d;
  }
  int positive(const char* key, int v) const {
    if (v <= 0) error(key, "= ", v, " must be positive");
    return v;
  }

  const json& obj_;
  std::string source_;
  std::string prefix_;
};

// "llama" or "qwen2" from model_type, falling back to architectures[] for unknown types.
std::string detect_arch(const Fields& f, const json& root) {
  const std::string model_type = f.get_string("model_type", "");
  if (model_type == "llama" || model_type == "mistral" || model_type == "smollm") return "llama";
  if (model_type == "qwen2") return "qwen2";
  std::string archs;
  if (f.has("architectures") && root.at("architectures").is_array()) {
    for (const json& a : root.at("architectures")) {
      if (!a.is_string()) continue;
      const std::string s = a.get<std::string>();
      if (s == "LlamaForCausalLM" || s == "MistralForCausalLM") return "llama";
      if (s == "Qwen2ForCausalLM") return "qwen2";
      archs += (archs.empty() ? "" : ", ") + s;
    }
  }
  if (!model_type.empty())
    f.error("model_type", "= '", model_type, "' is not supported (llama, mistral, qwen2)");
  f.error("model_type", "is missing and architectures [", archs,
          "] names no supported model (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
}

// rope_scaling / rope_parameters: {"type" or "rope_type": ..., factor, ...}.
void read_rope_scaling(const json& obj, const std::string& source, const char* field,
                       ModelConfig& c) {
  if (!obj.is_object()) fail(source, ": field '", field, "' must be an object or null, got ",
                             brief(obj));
  const Fields s(obj, source, std::string(field) + ".");
  const std::string type = s.has("rope_type") ? s.get_string("rope_type", "")
                                              : s.get_string("type", "default");
  const char* type_key = s.has("rope_type") ? "rope_type" : "type";
  if (type == "default") {
    c.rope_scaling = RopeScaling::None;
  } else if (type == "linear") {
    c.rope_scaling = RopeScaling::Linear;
    c.rope_factor = static_cast<float>(s.get_number("factor"));
    if (!(c.rope_factor > 0)) s.error("factor", "= ", c.rope_factor, " must be positive");
  } else if (type == "llama3") {
    c.rope_scaling = RopeScaling::Llama3;
    c.rope_factor = static_cast<float>(s.get_number("factor"));
    c.rope_low_freq_factor = static_cast<float>(s.get_number("low_freq_factor"));
    c.rope_high_freq_factor = static_cast<float>(s.get_number("high_freq_factor"));
    c.rope_orig_ctx = s.get_positive_int("original_max_position_embeddings");
    if (!(c.rope_factor > 0)) s.error("factor", "= ", c.rope_factor, " must be positive");
    if (!(c.rope_low_freq_factor > 0 && c.rope_high_freq_factor > c.rope_low_freq_factor))
      s.error("high_freq_factor", "= ", c.rope_high_freq_factor,
              " must exceed low_freq_factor = ", c.rope_low_freq_factor, " > 0");
  } else {
    s.error(type_key, "= '", type, "' is not supported (linear, llama3)");
  }
}

ModelConfig parse_config_object(const json& root, const std::string& source) {
  if (!root.is_object()) fail(source, ": expected a JSON object, got ", brief(root));
  const Fields f(root, source);
  ModelConfig c;
  c.arch = detect_arch(f, root);
  c.name = f.get_string("_name_or_path", "");
  if (c.name.empty()) c.name = std::filesystem::path(source).parent_path().filename().string();

  c.n_vocab = f.get_positive_int("vocab_size");
  c.n_embd = f.get_positive_int("hidden_size");
  c.n_ff = f.get_positive_int("intermediate_size");
  c.n_layer = f.get_positive_int("num_hidden_layers");
  c.n_head = f.get_positive_int("num_attention_heads");
  c.n_head_kv = f.get_positive_int("num_key_value_heads", c.n_head);
  if (c.n_head % c.n_head_kv != 0)
    f.error("num_key_value_heads", "= ", c.n_head_kv, " does not divide num_attention_heads = ",
            c.n_head);
  if (!f.has("head_dim") && c.n_embd % c.n_head != 0)
    f.error("hidden_size", "= ", c.n_embd, " is not a multiple of num_attention_heads = ",
            c.n_head, " (and no head_dim is given)");
  c.head_dim = f.get_positive_int("head_dim", c.n_embd / c.n_head);
  if (c.head_dim % 2 != 0) f.error("head_dim", "= ", c.head_dim, " must be even for RoPE");
  c.rope_dim = c.head_dim;
  c.n_ctx_train = f.get_positive_int("max_position_embeddings", c.arch == "qwen2" ? 32768 : 2048);
  c.rms_eps = static_cast<float>(f.get_positive_number("rms_norm_eps", 1e-6));
  c.rope_theta = static_cast<float>(f.get_positive_number("rope_theta", 10000.0));
  c.rope_style = RopeStyle::NeoX;

  if (f.has("rope_scaling")) {
    read_rope_scaling(root.at("rope_scaling"), source, "rope_scaling", c);
  } else if (f.has("rope_parameters")) {  // transformers >= 5
    read_rope_scaling(root.at("rope_parameters"), source, "rope_parameters", c);
    const Fields rp(root.at("rope_parameters"), source, "rope_parameters.");
    c.rope_theta = static_cast<float>(rp.get_positive_number("rope_theta", c.rope_theta));
  }

  c.tied_embeddings = f.get_bool("tie_word_embeddings", false);
  // Qwen2's q/k/v always carry biases. A Llama with attention_bias also biases o_proj, which
  // Kite does not implement: refuse rather than silently drop it.
  if (c.arch == "qwen2") {
    c.attn_bias = true;
  } else if (f.get_bool("attention_bias", false)) {
    f.error("attention_bias", "= true is not supported for llama (o_proj bias)");
  }
  if (f.get_bool("mlp_bias", false)) f.error("mlp_bias", "= true is not supported");
  const std::string act = f.get_string("hidden_act", "silu");
  if (act != "silu") f.error("hidden_act", "= '", act, "' is not supported (silu)");
  return c;
}

json parse_json(const std::string& text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(source, ": invalid JSON: ", e.what());
  }
}

void add_eos_ids(const json& v, const std::string& source, std::vector<int>& out) {
  auto add = [&](const json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT_MAX)
      fail(source, ": field 'eos_token_id' holds ", brief(x), ", expected a token id");
    out.push_back(static_cast<int>(x.get<int64_t>()));
  };
  if (v.is_array()) {
    for (const json& x : v) add(x);
  } else {
    add(v);
  }
}

}  // namespace

ModelConfig parse_hf_config(const std::string& json_text, const std::string& source) {
  try {
    return parse_config_object(parse_json(json_text, source), source);
  } catch (const json::exception& e) {  // a case the checks above missed: still a kite::Error
    fail(source, ": ", e.what());
  }
}

ModelConfig read_hf_config(const std::string& config_json_path) {
  return parse_hf_config(read_text_file(config_json_path), config_json_path);
}

std::vector<int> read_hf_eos_ids(const std::string& model_dir) {
  for (const char* name : {"generation_config.json", "config.json"}) {
    const std::string path = model_dir + "/" + name;
    if (!file_exists(path)) continue;
    try {
      const json j = parse_json(read_text_file(path), path);
      if (!j.is_object()) fail(path, ": expected a JSON object");
      auto it = j.find("eos_token_id");
      if (it == j.end() || it->is_null()) continue;
      std::vector<int> ids;
      add_eos_ids(*it, path, ids);
      return ids;
    } catch (const json::exception& e) {
      fail(path, ": ", e.what());
    }
  }
  return {};
}

}  // namespace kite
