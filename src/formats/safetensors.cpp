// safetensors: u64 header length N | N bytes of JSON | data section. The JSON maps each tensor
// name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data
// section), plus an optional "__metadata__" object of strings.
//
// dtypes: F32, F16, BF16 become tensors Kite computes with; I8/I16/I32/I64/F64 become tensors of
// the matching (non-computable) DType. Other known safetensors dtypes (U8, BOOL, F8_*, ...) are
// bounds-checked but left out of tensors() and listed in unsupported(), so a checkpoint with an
// irrelevant odd buffer still opens; require() names the dtype if such a tensor is asked for.
// Unknown dtype strings are an error.
#include "formats/safetensors.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "formats/byte_reader.h"

namespace kite {

namespace {

using json = nlohmann::json;

// The reference implementation refuses headers over 100 MB; so do we (bounds JSON memory).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeInfo {
  const char* name;
  bool has_dtype;    // maps onto a Kite DType
  DType type;
  int bits;          // bits per element; 0 when sub-byte packing is unspecified
};

const DTypeInfo kDTypes[] = {
    {"F32", true, DType::F32, 32},   {"F16", true, DType::F16, 16},
    {"BF16", true, DType::BF16, 16}, {"F64", true, DType::F64, 64},
    {"I64", true, DType::I64, 64},   {"I32", true, DType::I32, 32},
    {"I16", true, DType::I16, 16},   {"I8", true, DType::I8, 8},
    {"U64", false, DType::F32, 64},  {"U32", false, DType::F32, 32},
    {"U16", false, DType::F32, 16},  {"U8", false, DType::F32, 8},
    {"BOOL", false, DType::F32, 8},  {"F8_E4M3", false, DType::F32, 8},
    {"F8_E5M2", false, DType::F32, 8}, {"F8_E8M0", false, DType::F32, 8},
    {"C64", false, DType::F32, 64},  {"F4", false, DType::F32, 0},
    {"F6_E2M3", false, DType::F32, 0}, {"F6_E3M2", false, DType::F32, 0},
};

const DTypeInfo* find_dtype(const std::string& s) {
  for (const DTypeInfo& d : kDTypes)
    if (s == d.name) return &d;
  return nullptr;
}

// A short rendering of a JSON value for error messages.
std::string brief(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

bool as_u64(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

// Checks one header entry against the data section and returns its view (or records it as
// unsupported). `data` / `data_size` describe the data section.
void parse_entry(const std::string& path, const std::string& name, const json& e,
                 const uint8_t* data, uint64_t data_size, std::map<std::string, Tensor>& tensors,
                 std::map<std::string, std::string>& unsupported) {
  auto err = [&](const auto&... args) { fail(path, ": tensor '", name, "': ", args...); };
  if (!e.is_object()) err("header entry is ", brief(e), ", expected an object");
  auto dt = e.find("dtype");
  auto sh = e.find("shape");
  auto off = e.find("data_offsets");
  if (dt == e.end() || !dt->is_string()) err("missing or non-string 'dtype'");
  if (sh == e.end() || !sh->is_array()) err("missing or non-array 'shape'");
  if (off == e.end() || !off->is_array() || off->size() != 2)
    err("'data_offsets' must be [begin, end]");

  const std::string dtype = dt->get<std::string>();
  const DTypeInfo* info = find_dtype(dtype);
  if (!info) err("unknown dtype '", dtype, "'");
  if (sh->size() > 4) err("shape ", brief(*sh), " has ", sh->size(), " dims; at most 4 supported");

  // HF shapes are outermost-first; GGUF ne is innermost-first, so reverse.
  Tensor t;
  t.name = name;
  t.n_dims = static_cast<int>(sh->size());
  uint64_t n_elements = 1;
  for (size_t d = 0; d < sh->size(); d++) {
    uint64_t v = 0;
    if (!as_u64((*sh)[d], &v) || v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      err("shape entry ", brief((*sh)[d]), " is not a valid dimension");
    if (!checked_mul(n_elements, v, &n_elements) ||
        n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      err("shape ", brief(*sh), " overflows");
    t.ne[sh->size() - 1 - d] = static_cast<int64_t>(v);
  }

  uint64_t begin = 0, end = 0;
  if (!as_u64((*off)[0], &begin) || !as_u64((*off)[1], &end))
    err("data_offsets ", brief(*off), " are not non-negative integers");
  if (begin > end || end > data_size)
    err("data_offsets [", begin, ", ", end, "] outside the data section (", data_size,
        " bytes)");
  if (info->bits > 0) {
    uint64_t nbytes = 0;
    if (!checked_mul(n_elements, static_cast<uint64_t>(info->bits / 8), &nbytes) ||
        nbytes != end - begin)
      err("data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes, but shape ",
          brief(*sh), " of ", dtype, " needs ", n_elements, " x ", info->bits / 8);
  }
  if (!info->has_dtype) {
    unsupported[name] = dtype;
    return;
  }
  t.type = info->type;
  t.data = data + begin;
  t.nbytes = static_cast<size_t>(end - begin);
  tensors.emplace(name, std::move(t));
}

json parse_json_text(const std::string& path, const char* begin, const char* end) {
  try {
    return json::parse(begin, end);
  } catch (const json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

}  // namespace

void SafeTensors::add_file(const std::string& path) {
  // Every JSON access below is type-checked first; this only turns a missed case into a
  // kite::Error instead of letting a nlohmann exception escape.
  try {
    add_file_checked(path);
  } catch (const json::exception& e) {
    fail(path, ": malformed header: ", e.what());
  }
}

void SafeTensors::add_file_checked(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  ByteReader r(file->data(), file->size(), path);
  const uint64_t header_len = r.read<uint64_t>("header length");
  if (header_len > r.remaining())
    fail(path, ": header length ", header_len, " exceeds the file (", file->size(), " bytes)");
  if (header_len > kMaxHeaderBytes)
    fail(path, ": header length ", header_len, " exceeds the format's limit of ",
         kMaxHeaderBytes, " bytes");
  const char* text = reinterpret_cast<const char*>(file->data() + 8);
  json header = parse_json_text(path, text, text + header_len);
  if (!header.is_object()) fail(path, ": header is ", brief(header), ", expected a JSON object");

  const uint8_t* data = file->data() + 8 + header_len;
  const uint64_t data_size = file->size() - 8 - header_len;
  std::map<std::string, Tensor> found;
  std::map<std::string, std::string> odd;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail(path, ": '__metadata__' is ", brief(*it), ", expected an object");
      if (!files_.empty()) continue;  // the first file's metadata describes the checkpoint
      for (auto m = it->begin(); m != it->end(); ++m)
        metadata_[m.key()] = m->is_string() ? m->get<std::string>() : brief(*m);
      continue;
    }
    parse_entry(path, it.key(), *it, data, data_size, found, odd);
  }
  for (auto& [name, t] : found) {
    if (tensors_.count(name) || unsupported_.count(name))
      fail(path, ": tensor '", name, "' also appears in an earlier file");
    tensors_.emplace(name, std::move(t));
  }
  for (auto& [name, dtype] : odd) {
    if (tensors_.count(name) || unsupported_.count(name))
      fail(path, ": tensor '", name, "' also appears in an earlier file");
    unsupported_.emplace(name, dtype);
  }
  files_.push_back(std::move(file));
}

std::unique_ptr<SafeTensors> SafeTensors::open_file(const std::string& path) {
  std::unique_ptr<SafeTensors> st(new SafeTensors());
  st->source_ = path;
  st->add_file(path);
  return st;
}

std::unique_ptr<SafeTensors> SafeTensors::open_dir(const std::string& dir) {
  std::unique_ptr<SafeTensors> st(new SafeTensors());
  st->source_ = dir;
  const std::string single = join_path(dir, "model.safetensors");
  const std::string index = join_path(dir, "model.safetensors.index.json");
  if (file_exists(single)) {
    st->add_file(single);
    return st;
  }
  if (!file_exists(index))
    fail(dir, ": neither model.safetensors nor model.safetensors.index.json found");

  try {
    open_index(*st, dir, index);
  } catch (const json::exception& e) {
    fail(index, ": malformed index: ", e.what());
  }
  return st;
}

void SafeTensors::open_index(SafeTensors& st, const std::string& dir, const std::string& index) {
  const std::string text = read_text_file(index);
  json j = parse_json_text(index, text.data(), text.data() + text.size());
  auto wm = j.is_object() ? j.find("weight_map") : j.end();
  if (wm == j.end() || !wm->is_object() || wm->empty())
    fail(index, ": missing or empty 'weight_map' object");

  // Open each distinct shard once, in order of first appearance.
  std::vector<std::string> shards;
  std::set<std::string> seen;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      fail(index, ": weight_map['", it.key(), "'] is ", brief(*it), ", expected a file name");
    const std::string shard = it->get<std::string>();
    if (shard.empty() || shard[0] == '/' || shard.find("..") != std::string::npos)
      fail(index, ": weight_map['", it.key(), "'] = '", shard, "' is not a file in ", dir);
    if (seen.insert(shard).second) {
      if (!file_exists(join_path(dir, shard)))
        fail(index, ": shard '", shard, "' (holding tensor '", it.key(), "') not found in ",
             dir);
      shards.push_back(shard);
    }
  }
  for (const std::string& shard : shards) st.add_file(join_path(dir, shard));

  // Every tensor the index promises must be in the shards.
  for (auto it = wm->begin(); it != wm->end(); ++it)
    if (!st.tensors_.count(it.key()) && !st.unsupported_.count(it.key()))
      fail(index, ": tensor '", it.key(), "' is listed for shard '", it->get<std::string>(),
           "' but that shard does not contain it");
}

const Tensor* SafeTensors::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const Tensor& SafeTensors::require(const std::string& name) const {
  if (const Tensor* t = find(name)) return *t;
  auto odd = unsupported_.find(name);
  if (odd != unsupported_.end())
    fail(source_, ": tensor '", name, "' has dtype ", odd->second,
         ", which Kite cannot load (supported: F32, F16, BF16)");
  fail(source_, ": tensor '", name, "' not found");
}

}  // namespace kite
