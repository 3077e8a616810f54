#include "quant/recipe.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "quant/quant.h"

namespace kite {

namespace {

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// llama.cpp's llama_ftype values, recorded as general.file_type.
const std::vector<QuantRecipe>& recipes() {
  static const std::vector<QuantRecipe> r = {
      {"F32", DType::F32, 0},       {"F16", DType::F16, 1},       {"BF16", DType::BF16, 32},
      {"Q8_0", DType::Q8_0, 7},     {"Q4_0", DType::Q4_0, 2},     {"Q4_1", DType::Q4_1, 3},
      {"Q5_0", DType::Q5_0, 8},     {"Q5_1", DType::Q5_1, 9},     {"Q2_K", DType::Q2_K, 10},
      {"Q3_K_M", DType::Q3_K, 12},  {"Q4_K_S", DType::Q4_K, 14},  {"Q4_K_M", DType::Q4_K, 15},
      {"Q5_K_S", DType::Q5_K, 16},  {"Q5_K_M", DType::Q5_K, 17},  {"Q6_K", DType::Q6_K, 18},
  };
  return r;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between.
bool more_bits(int layer, int n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

int layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::atoi(name.c_str() + 4);
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// '*' matches any run of characters.
bool glob_match(const char* p, const char* s) {
  if (!*p) return !*s;
  if (*p == '*') return glob_match(p + 1, s) || (*s && glob_match(p, s + 1));
  return *s == *p && glob_match(p + 1, s + 1);
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// When rows are not a multiple of a type's block: the nearest type with 32-element blocks (as
// llama.cpp falls back), then F16.
DType fallback(DType t, int64_t n_per_row) {
  const int64_t block = dtype_traits(t).block_size;
  if (n_per_row % block == 0) return t;
  DType f = DType::F16;
  switch (t) {
    case DType::Q2_K: case DType::Q3_K: f = DType::Q4_0; break;
    case DType::Q4_K: f = DType::Q5_0; break;
    case DType::Q5_K: f = DType::Q5_1; break;
    case DType::Q6_K: f = DType::Q8_0; break;
    default: break;
  }
  return n_per_row % dtype_traits(f).block_size == 0 ? f : DType::F16;
}

}  // namespace

QuantRecipe quant_recipe(const std::string& name) {
  const std::string u = upper(name);
  for (const QuantRecipe& r : recipes())
    if (r.name == u) return r;
  std::string known;
  for (const QuantRecipe& r : recipes()) known += (known.empty() ? "" : ", ") + r.name;
  fail("unknown quantization type '", name, "' (known: ", known, ")");
}

std::vector<std::string> quant_recipe_names() {
  std::vector<std::string> v;
  for (const QuantRecipe& r : recipes()) v.push_back(r.name);
  return v;
}

TypeOverride parse_type_override(const std::string& spec) {
  const size_t eq = spec.rfind('=');
  check(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(), "--keep '", spec,
        "': expected TENSOR=TYPE, e.g. output.weight=Q8_0");
  const std::string tn = upper(spec.substr(eq + 1));
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                  DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K})
    if (upper(dtype_name(t)) == tn) return {spec.substr(0, eq), t};
  fail("--keep '", spec, "': unknown tensor type '", spec.substr(eq + 1),
       "' (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)");
}

TensorChoice choose_tensor_type(const QuantRecipe& r, const std::vector<TypeOverride>& keep,
                                const std::string& name, int n_dims, int64_t n_per_row, int n_layer) {
  if (n_dims < 2) return {DType::F32, ""};  // norms, biases, rope factors
  DType t = r.base;
  bool overridden = false;
  for (const TypeOverride& k : keep)
    if (glob_match(k.pattern.c_str(), name.c_str())) {
      t = k.type;
      overridden = true;
    }
  if (!overridden && !is_float(r.base) && r.base != DType::Q8_0) {
    const int layer = layer_of(name);
    const bool more = layer >= 0 && more_bits(layer, n_layer);
    if (name == "output.weight") {
      t = r.name == "Q4_K_M" ? DType::Q5_K : DType::Q6_K;
    } else if (r.name == "Q4_K_M") {
      if (contains(name, "ffn_down.") || name == "token_embd.weight") t = DType::Q5_K;
    } else if (r.name == "Q5_K_M") {
      if ((contains(name, "attn_v.") || contains(name, "ffn_down.")) && more) t = DType::Q6_K;
    } else if (r.name == "Q3_K_M") {
      if (contains(name, "attn_v.")) t = DType::Q5_K;
      else if (contains(name, "ffn_down.")) t = DType::Q4_K;
    }
  }
  const DType f = fallback(t, n_per_row);
  if (f != t)
    return {f, std::string(dtype_name(t)) + " needs rows that are a multiple of " +
                   std::to_string(dtype_traits(t).block_size) + " (this has " + std::to_string(n_per_row) +
                   "): using " + dtype_name(f)};
  return {t, ""};
}

}  // namespace kite
