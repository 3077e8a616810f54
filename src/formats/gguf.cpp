// GGUF v2/v3 reader. Layout (little-endian):
//   "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x (string key | u32 value type | value)
//   tensor_count x (string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset)
//   padding to `general.alignment` (default 32) | tensor data (offsets are relative to here)
// Strings are u64 length + bytes; arrays are u32 element type + u64 count + elements.
// Every count and length is bounded by the bytes left before anything is allocated.
#include "formats/gguf.h"

#include <cstring>
#include <limits>
#include <set>

#include "core/error.h"
#include "formats/byte_reader.h"

namespace kite {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr int kMaxArrayDepth = 8;  // deeper nested arrays are refused (bounds the recursion)
constexpr int kMaxDims = 4;
constexpr uint64_t kDefaultAlignment = 32;
// Parsed metadata costs ~100 bytes per value (a GGUFValue each, array elements included), so
// the counts are also capped outright: a file can then never make us allocate more than a
// couple of GB, while real files stay far below (a 256k-token vocabulary with merges is ~1M).
constexpr uint64_t kMaxMetadataValues = uint64_t(1) << 24;
constexpr uint64_t kMaxTensors = uint64_t(1) << 20;

bool valid_type_id(uint32_t t) { return t <= static_cast<uint32_t>(GGUFType::F64); }

// Size in bytes of a fixed-size scalar type; 0 for string/array.
size_t scalar_size(GGUFType t) {
  switch (t) {
    case GGUFType::U8: case GGUFType::I8: case GGUFType::BOOL: return 1;
    case GGUFType::U16: case GGUFType::I16: return 2;
    case GGUFType::U32: case GGUFType::I32: case GGUFType::F32: return 4;
    case GGUFType::U64: case GGUFType::I64: case GGUFType::F64: return 8;
    case GGUFType::STRING: case GGUFType::ARRAY: return 0;
  }
  return 0;
}

// Fewest bytes one value of type `t` can take in the file: bounds array counts.
size_t min_encoded_size(GGUFType t) {
  if (t == GGUFType::STRING) return 8;           // u64 length
  if (t == GGUFType::ARRAY) return 4 + 8;        // element type + count
  return scalar_size(t);
}

template <class T>
void set_int(GGUFValue& v, T x) {
  if constexpr (std::is_signed_v<T>) {
    v.i = x;
    v.u = static_cast<uint64_t>(static_cast<int64_t>(x));
  } else {
    v.u = x;
    v.i = static_cast<int64_t>(static_cast<uint64_t>(x));  // wraps above INT64_MAX; get_int checks
  }
}

GGUFValue read_value(ByteReader& r, GGUFType type, int depth, uint64_t& budget);

// `budget` counts the metadata values still allowed (kMaxMetadataValues in all).
GGUFValue read_array(ByteReader& r, int depth, uint64_t& budget) {
  if (depth >= kMaxArrayDepth) r.error("arrays nested deeper than ", kMaxArrayDepth, " levels");
  GGUFValue v;
  v.type = GGUFType::ARRAY;
  const uint32_t et = r.read<uint32_t>("array element type");
  if (!valid_type_id(et)) r.error("unknown array element type id ", et);
  v.elem_type = static_cast<GGUFType>(et);
  const uint64_t n = r.read<uint64_t>("array length");
  const size_t min_size = min_encoded_size(v.elem_type);
  // A lying count cannot make us allocate: n elements need at least n * min_size bytes.
  if (n > r.remaining() / min_size)
    r.error("array of ", n, " ", gguf_type_name(v.elem_type), " elements needs at least ", n,
            " x ", min_size, " bytes, but only ", r.remaining(), " remain (offset ", r.pos(),
            ", file is ", r.size(), " bytes)");
  if (n > budget)
    r.error("array of ", n, " elements exceeds the limit of ", kMaxMetadataValues,
            " metadata values per file");
  budget -= n;
  v.arr.reserve(static_cast<size_t>(n));
  for (uint64_t k = 0; k < n; k++)
    v.arr.push_back(read_value(r, v.elem_type, depth + 1, budget));
  return v;
}

GGUFValue read_value(ByteReader& r, GGUFType type, int depth, uint64_t& budget) {
  GGUFValue v;
  v.type = type;
  switch (type) {
    case GGUFType::U8: set_int(v, r.read<uint8_t>("u8 value")); break;
    case GGUFType::I8: set_int(v, r.read<int8_t>("i8 value")); break;
    case GGUFType::U16: set_int(v, r.read<uint16_t>("u16 value")); break;
    case GGUFType::I16: set_int(v, r.read<int16_t>("i16 value")); break;
    case GGUFType::U32: set_int(v, r.read<uint32_t>("u32 value")); break;
    case GGUFType::I32: set_int(v, r.read<int32_t>("i32 value")); break;
    case GGUFType::U64: set_int(v, r.read<uint64_t>("u64 value")); break;
    case GGUFType::I64: set_int(v, r.read<int64_t>("i64 value")); break;
    case GGUFType::F32: v.f = r.read<float>("f32 value"); break;
    case GGUFType::F64: v.f = r.read<double>("f64 value"); break;
    case GGUFType::BOOL:
      v.b = r.read<uint8_t>("bool value") != 0;
      v.i = v.b;
      v.u = v.b;
      break;
    case GGUFType::STRING: v.s = r.read_string("string value"); break;
    case GGUFType::ARRAY: return read_array(r, depth, budget);
  }
  return v;
}

struct RawTensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};
  uint32_t type = 0;
  uint64_t offset = 0;
};

RawTensorInfo read_tensor_info(ByteReader& r) {
  RawTensorInfo t;
  t.name = r.read_string("tensor name");
  r.set_context(r.context() + " '" + t.name + "'");
  t.n_dims = r.read<uint32_t>("n_dims");
  if (t.n_dims > kMaxDims) r.error("n_dims ", t.n_dims, " exceeds ", kMaxDims);
  for (uint32_t d = 0; d < t.n_dims; d++) {
    const uint64_t ne = r.read<uint64_t>("dimension");
    if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      r.error("ne[", d, "] = ", ne, " is out of range");
    t.ne[d] = static_cast<int64_t>(ne);
  }
  t.type = r.read<uint32_t>("tensor type");
  t.offset = r.read<uint64_t>("tensor data offset");
  return t;
}

// Reads general.alignment (any integer type accepted; the spec says u32): a power of two.
uint64_t read_alignment(const std::string& path, const std::map<std::string, GGUFValue>& kv) {
  auto it = kv.find("general.alignment");
  if (it == kv.end()) return kDefaultAlignment;
  const GGUFValue& v = it->second;
  if (!v.is_int()) fail(path, ": metadata 'general.alignment' has type ", gguf_type_name(v.type),
                        ", expected an integer");
  if (v.u == 0 || (v.u & (v.u - 1)) != 0 || v.i < 0)
    fail(path, ": metadata 'general.alignment' = ", v.i, " is not a power of two");
  return v.u;
}

// Checks the tensor against the file and returns its view. `data_start` is the file offset of
// the data section, already known to lie within the file.
Tensor make_tensor_view(const ByteReader& r, const RawTensorInfo& info, uint64_t data_start,
                        uint64_t alignment) {
  const DTypeTraits* tr = dtype_traits(info.type);
  if (!tr) r.error("unknown tensor type id ", info.type);
  if (info.ne[0] % tr->block_size != 0)
    r.error("ne[0] = ", info.ne[0], " is not a multiple of the ", tr->name, " block size ",
            tr->block_size);
  // bytes = (ne0 / block) * type_size * ne1 * ne2 * ne3, each step overflow-checked.
  uint64_t nbytes = 0;
  bool ok = checked_mul(static_cast<uint64_t>(info.ne[0] / tr->block_size),
                        static_cast<uint64_t>(tr->type_size), &nbytes);
  uint64_t n_elements = static_cast<uint64_t>(info.ne[0]);
  for (int d = 1; d < kMaxDims && ok; d++) {
    ok = checked_mul(nbytes, static_cast<uint64_t>(info.ne[d]), &nbytes) &&
         checked_mul(n_elements, static_cast<uint64_t>(info.ne[d]), &n_elements) &&
         n_elements <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  if (!ok)
    r.error("shape [", info.ne[0], ", ", info.ne[1], ", ", info.ne[2], ", ", info.ne[3],
            "] of type ", tr->name, " overflows");
  if (info.offset % alignment != 0)
    r.error("data offset ", info.offset, " is not a multiple of the alignment ", alignment);
  uint64_t begin = 0, end = 0;
  if (!checked_add(data_start, info.offset, &begin) || !checked_add(begin, nbytes, &end) ||
      end > r.size())
    r.error("data [offset ", info.offset, ", ", nbytes, " bytes] extends past end of file (",
            r.size(), " bytes; data section starts at ", data_start, ")");
  Tensor t;
  t.name = info.name;
  t.type = tr->type;
  t.n_dims = static_cast<int>(info.n_dims);
  t.ne = info.ne;
  t.data = r.data() + begin;
  t.nbytes = static_cast<size_t>(nbytes);
  return t;
}

[[noreturn]] void key_error(const std::string& path, const std::string& key, const GGUFValue& v,
                            const char* expected) {
  fail(path, ": metadata '", key, "' has type ", gguf_type_name(v.type),
       v.type == GGUFType::ARRAY ? std::string(" of ") + gguf_type_name(v.elem_type) : "",
       ", expected ", expected);
}

int64_t value_to_int(const std::string& path, const std::string& key, const GGUFValue& v) {
  if (!v.is_int()) key_error(path, key, v, "an integer");
  if (v.type == GGUFType::U64 && v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail(path, ": metadata '", key, "' = ", v.u, " does not fit in int64");
  return v.i;
}

double value_to_float(const std::string& path, const std::string& key, const GGUFValue& v) {
  if (v.is_float()) return v.f;
  if (v.is_int()) return v.type == GGUFType::U64 ? static_cast<double>(v.u)
                                                  : static_cast<double>(v.i);
  key_error(path, key, v, "a number");
}

}  // namespace

// ---- GGUFValue -------------------------------------------------------------

bool GGUFValue::is_int() const {
  switch (type) {
    case GGUFType::U8: case GGUFType::I8: case GGUFType::U16: case GGUFType::I16:
    case GGUFType::U32: case GGUFType::I32: case GGUFType::U64: case GGUFType::I64:
      return true;
    default:
      return false;
  }
}

bool GGUFValue::is_float() const { return type == GGUFType::F32 || type == GGUFType::F64; }

const char* gguf_type_name(GGUFType t) {
  switch (t) {
    case GGUFType::U8: return "u8";
    case GGUFType::I8: return "i8";
    case GGUFType::U16: return "u16";
    case GGUFType::I16: return "i16";
    case GGUFType::U32: return "u32";
    case GGUFType::I32: return "i32";
    case GGUFType::F32: return "f32";
    case GGUFType::BOOL: return "bool";
    case GGUFType::STRING: return "string";
    case GGUFType::ARRAY: return "array";
    case GGUFType::U64: return "u64";
    case GGUFType::I64: return "i64";
    case GGUFType::F64: return "f64";
  }
  return "?";
}

// ---- GGUFFile: parsing -----------------------------------------------------

std::unique_ptr<GGUFFile> GGUFFile::open(const std::string& path) {
  std::unique_ptr<GGUFFile> g(new GGUFFile());
  g->file_ = MappedFile::open(path);
  ByteReader r(g->file_->data(), g->file_->size(), path);

  if (r.size() < 4 || r.read<uint32_t>("magic") != kMagic)
    fail(path, ": not a GGUF file (missing 'GGUF' magic)");
  g->version_ = r.read<uint32_t>("version");
  if (g->version_ == 1)
    fail(path, ": unsupported GGUF version 1 (only versions 2 and 3 are supported)");
  if (g->version_ != 2 && g->version_ != 3)
    fail(path, ": unsupported GGUF version ", g->version_,
         (g->version_ & 0xFFFF) == 0 ? " (a big-endian file?)" : "",
         " (only versions 2 and 3 are supported)");
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  // Smallest possible KV: 8-byte key length + 4-byte type + 1-byte value.
  if (n_kv > r.remaining() / 13)
    fail(path, ": metadata count ", n_kv, " cannot fit in the ", r.remaining(),
         " bytes left after the header");
  if (n_kv > kMaxMetadataValues)
    fail(path, ": metadata count ", n_kv, " exceeds the limit of ", kMaxMetadataValues);
  uint64_t budget = kMaxMetadataValues - n_kv;

  for (uint64_t k = 0; k < n_kv; k++) {
    r.set_context("metadata #" + std::to_string(k));
    std::string key = r.read_string("key");
    r.set_context("metadata '" + key + "'");
    const uint32_t type = r.read<uint32_t>("value type");
    if (!valid_type_id(type)) r.error("unknown value type id ", type);
    GGUFValue v = read_value(r, static_cast<GGUFType>(type), 0, budget);
    if (!g->kv_.emplace(std::move(key), std::move(v)).second) r.error("duplicate key");
  }
  r.set_context("");
  g->alignment_ = read_alignment(path, g->kv_);

  // Smallest tensor info: 8-byte name length + n_dims + type + offset = 24 bytes.
  if (n_tensors > r.remaining() / 24)
    fail(path, ": tensor count ", n_tensors, " cannot fit in the ", r.remaining(),
         " bytes left after the metadata");
  if (n_tensors > kMaxTensors)
    fail(path, ": tensor count ", n_tensors, " exceeds the limit of ", kMaxTensors);
  std::vector<RawTensorInfo> infos;
  infos.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; k++) {
    r.set_context("tensor #" + std::to_string(k));
    infos.push_back(read_tensor_info(r));
  }
  r.set_context("");

  uint64_t data_start = 0;
  if (!checked_align_up(r.pos(), g->alignment_, &data_start) ||
      (n_tensors > 0 && data_start > r.size()))
    fail(path, ": tensor data section (header ends at ", r.pos(), ", aligned to ", g->alignment_,
         ") starts past end of file (", r.size(), " bytes)");
  g->data_offset_ = static_cast<size_t>(n_tensors > 0 ? data_start : r.size());

  g->tensors_.reserve(infos.size());
  for (const RawTensorInfo& info : infos) {
    r.set_context("tensor '" + info.name + "'");
    if (g->tensor_index_.count(info.name)) r.error("duplicate tensor name");
    g->tensor_index_[info.name] = g->tensors_.size();
    g->tensors_.push_back(make_tensor_view(r, info, data_start, g->alignment_));
  }
  return g;
}

// ---- GGUFFile: lookups -----------------------------------------------------

const GGUFValue* GGUFFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const Tensor* GGUFFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
const GGUFValue& require_key(const GGUFFile& f, const std::string& key) {
  const GGUFValue* v = f.find(key);
  if (!v) fail(f.path(), ": metadata '", key, "' not found");
  return *v;
}
const GGUFValue& require_array(const GGUFFile& f, const std::string& key, bool ok_elem(GGUFType),
                               const char* expected) {
  const GGUFValue& v = require_key(f, key);
  if (v.type != GGUFType::ARRAY || !ok_elem(v.elem_type)) key_error(f.path(), key, v, expected);
  return v;
}
bool is_int_type(GGUFType t) { GGUFValue v; v.type = t; return v.is_int(); }
bool is_number_type(GGUFType t) { GGUFValue v; v.type = t; return v.is_int() || v.is_float(); }
bool is_string_type(GGUFType t) { return t == GGUFType::STRING; }
}  // namespace

std::string GGUFFile::get_string(const std::string& key) const {
  const GGUFValue& v = require_key(*this, key);
  if (v.type != GGUFType::STRING) key_error(path(), key, v, "a string");
  return v.s;
}

int64_t GGUFFile::get_int(const std::string& key) const {
  return value_to_int(path(), key, require_key(*this, key));
}

double GGUFFile::get_float(const std::string& key) const {
  return value_to_float(path(), key, require_key(*this, key));
}

bool GGUFFile::get_bool(const std::string& key) const {
  const GGUFValue& v = require_key(*this, key);
  if (v.type != GGUFType::BOOL) key_error(path(), key, v, "a bool");
  return v.b;
}

std::vector<std::string> GGUFFile::get_string_array(const std::string& key) const {
  const GGUFValue& v = require_array(*this, key, is_string_type, "an array of strings");
  std::vector<std::string> out;
  out.reserve(v.arr.size());
  for (const GGUFValue& e : v.arr) out.push_back(e.s);
  return out;
}

std::vector<double> GGUFFile::get_float_array(const std::string& key) const {
  const GGUFValue& v = require_array(*this, key, is_number_type, "an array of numbers");
  std::vector<double> out;
  out.reserve(v.arr.size());
  for (const GGUFValue& e : v.arr) out.push_back(value_to_float(path(), key, e));
  return out;
}

std::vector<int64_t> GGUFFile::get_int_array(const std::string& key) const {
  const GGUFValue& v = require_array(*this, key, is_int_type, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(v.arr.size());
  for (const GGUFValue& e : v.arr) out.push_back(value_to_int(path(), key, e));
  return out;
}

std::string GGUFFile::get_string(const std::string& key, const std::string& def) const {
  return find(key) ? get_string(key) : def;
}
int64_t GGUFFile::get_int(const std::string& key, int64_t def) const {
  return find(key) ? get_int(key) : def;
}
double GGUFFile::get_float(const std::string& key, double def) const {
  return find(key) ? get_float(key) : def;
}
bool GGUFFile::get_bool(const std::string& key, bool def) const {
  return find(key) ? get_bool(key) : def;
}

}  // namespace kite
