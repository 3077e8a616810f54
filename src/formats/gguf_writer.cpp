#include "formats/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace kite {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" as a little-endian u32
constexpr uint32_t kVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;

// ---- header serialisation (into memory: the header is small) -----------------

template <class T>
void put(std::string& buf, T v) {
  buf.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_string(std::string& buf, const std::string& s) {
  put<uint64_t>(buf, s.size());
  buf.append(s);
}

void put_value(std::string& buf, const GGUFValue& v, const std::string& key) {
  switch (v.type) {
    case GGUFType::U8: put<uint8_t>(buf, static_cast<uint8_t>(v.u)); break;
    case GGUFType::I8: put<int8_t>(buf, static_cast<int8_t>(v.i)); break;
    case GGUFType::U16: put<uint16_t>(buf, static_cast<uint16_t>(v.u)); break;
    case GGUFType::I16: put<int16_t>(buf, static_cast<int16_t>(v.i)); break;
    case GGUFType::U32: put<uint32_t>(buf, static_cast<uint32_t>(v.u)); break;
    case GGUFType::I32: put<int32_t>(buf, static_cast<int32_t>(v.i)); break;
    case GGUFType::U64: put<uint64_t>(buf, v.u); break;
    case GGUFType::I64: put<int64_t>(buf, v.i); break;
    case GGUFType::F32: put<float>(buf, static_cast<float>(v.f)); break;
    case GGUFType::F64: put<double>(buf, v.f); break;
    case GGUFType::BOOL: put<uint8_t>(buf, v.b ? 1 : 0); break;
    case GGUFType::STRING: put_string(buf, v.s); break;
    case GGUFType::ARRAY:
      put<uint32_t>(buf, static_cast<uint32_t>(v.elem_type));
      put<uint64_t>(buf, v.arr.size());
      for (const GGUFValue& e : v.arr) {
        if (e.type != v.elem_type)
          fail("GGUF writer: metadata '", key, "': array of ", gguf_type_name(v.elem_type),
               " holds an element of type ", gguf_type_name(e.type));
        put_value(buf, e, key);
      }
      break;
    default:
      fail("GGUF writer: metadata '", key, "': unknown value type ",
           static_cast<uint32_t>(v.type));
  }
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

template <class T>
GGUFValue int_value(GGUFType type, T x) {
  GGUFValue v;
  v.type = type;
  if constexpr (std::is_signed_v<T>) {
    v.i = x;
    v.u = static_cast<uint64_t>(static_cast<int64_t>(x));
  } else {
    v.u = x;
    v.i = static_cast<int64_t>(static_cast<uint64_t>(x));
  }
  return v;
}

GGUFValue float_value(GGUFType type, double x) {
  GGUFValue v;
  v.type = type;
  v.f = x;
  return v;
}

GGUFValue string_value(const std::string& s) {
  GGUFValue v;
  v.type = GGUFType::STRING;
  v.s = s;
  return v;
}

template <class T, class Make>
GGUFValue array_value(GGUFType elem_type, const std::vector<T>& xs, Make make) {
  GGUFValue v;
  v.type = GGUFType::ARRAY;
  v.elem_type = elem_type;
  v.arr.reserve(xs.size());
  for (const T& x : xs) v.arr.push_back(make(x));
  return v;
}

// ---- file output --------------------------------------------------------------

// A FILE* that reports every failure as a kite::Error naming the path and removes the partial
// file unless commit() succeeded.
class OutFile {
 public:
  explicit OutFile(std::string path) : path_(std::move(path)) {
    f_ = std::fopen(path_.c_str(), "wb");
    if (!f_) fail("cannot create '", path_, "': ", std::strerror(errno));
  }
  ~OutFile() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(path_.c_str());
  }
  void write(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) fail("write to '", path_, "' failed: ",
                                                 std::strerror(errno));
    pos_ += n;
  }
  void pad_to(uint64_t target) {
    static const char zeros[256] = {};
    while (pos_ < target) write(zeros, std::min<uint64_t>(sizeof(zeros), target - pos_));
  }
  uint64_t pos() const { return pos_; }
  // Closes the file and renames it to `final_path`.
  void commit(const std::string& final_path) {
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) fail("closing '", path_, "' failed: ", std::strerror(errno));
    if (std::rename(path_.c_str(), final_path.c_str()) != 0)
      fail("cannot rename '", path_, "' to '", final_path, "': ", std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;
  bool committed_ = false;
};

}  // namespace

// ---- metadata -------------------------------------------------------------------

void GGUFWriter::set_alignment(uint32_t alignment) {
  check(alignment != 0 && (alignment & (alignment - 1)) == 0, "GGUF writer: alignment ",
        alignment, " is not a power of two");
  alignment_ = alignment;
  if (alignment == kDefaultAlignment && !find("general.alignment")) return;
  set("general.alignment", int_value(GGUFType::U32, alignment));
}

void GGUFWriter::set(const std::string& key, GGUFValue v) {
  auto it = kv_index_.find(key);
  if (it != kv_index_.end()) {
    kv_[it->second].second = std::move(v);
    return;
  }
  kv_index_[key] = kv_.size();
  kv_.emplace_back(key, std::move(v));
}

void GGUFWriter::set_value(const std::string& key, const GGUFValue& v) {
  if (key == "general.alignment") {
    check(v.is_int() && v.u <= 0xFFFFFFFFu, "GGUF writer: 'general.alignment' must be a u32");
    set_alignment(static_cast<uint32_t>(v.u));
    return;
  }
  set(key, v);
}

const GGUFValue* GGUFWriter::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

void GGUFWriter::remove(const std::string& key) {
  auto it = kv_index_.find(key);
  if (it == kv_index_.end()) return;
  kv_.erase(kv_.begin() + static_cast<std::ptrdiff_t>(it->second));
  kv_index_.clear();
  for (size_t i = 0; i < kv_.size(); i++) kv_index_[kv_[i].first] = i;
  if (key == "general.alignment") alignment_ = kDefaultAlignment;
}

void GGUFWriter::set_u8(const std::string& k, uint8_t v) { set(k, int_value(GGUFType::U8, v)); }
void GGUFWriter::set_i8(const std::string& k, int8_t v) { set(k, int_value(GGUFType::I8, v)); }
void GGUFWriter::set_u16(const std::string& k, uint16_t v) { set(k, int_value(GGUFType::U16, v)); }
void GGUFWriter::set_i16(const std::string& k, int16_t v) { set(k, int_value(GGUFType::I16, v)); }
void GGUFWriter::set_u32(const std::string& k, uint32_t v) {
  if (k == "general.alignment") return set_alignment(v);
  set(k, int_value(GGUFType::U32, v));
}
void GGUFWriter::set_i32(const std::string& k, int32_t v) { set(k, int_value(GGUFType::I32, v)); }
void GGUFWriter::set_u64(const std::string& k, uint64_t v) { set(k, int_value(GGUFType::U64, v)); }
void GGUFWriter::set_i64(const std::string& k, int64_t v) { set(k, int_value(GGUFType::I64, v)); }
void GGUFWriter::set_f32(const std::string& k, float v) { set(k, float_value(GGUFType::F32, v)); }
void GGUFWriter::set_f64(const std::string& k, double v) { set(k, float_value(GGUFType::F64, v)); }
void GGUFWriter::set_bool(const std::string& k, bool v) {
  GGUFValue g;
  g.type = GGUFType::BOOL;
  g.b = v;
  g.i = v;
  g.u = v;
  set(k, g);
}
void GGUFWriter::set_string(const std::string& k, const std::string& v) { set(k, string_value(v)); }
void GGUFWriter::set_array_str(const std::string& k, const std::vector<std::string>& v) {
  set(k, array_value(GGUFType::STRING, v, string_value));
}
void GGUFWriter::set_array_f32(const std::string& k, const std::vector<float>& v) {
  set(k, array_value(GGUFType::F32, v, [](float x) { return float_value(GGUFType::F32, x); }));
}
void GGUFWriter::set_array_i32(const std::string& k, const std::vector<int32_t>& v) {
  set(k, array_value(GGUFType::I32, v, [](int32_t x) { return int_value(GGUFType::I32, x); }));
}
void GGUFWriter::set_array_u32(const std::string& k, const std::vector<uint32_t>& v) {
  set(k, array_value(GGUFType::U32, v, [](uint32_t x) { return int_value(GGUFType::U32, x); }));
}

// ---- tensors --------------------------------------------------------------------

size_t GGUFWriter::check_tensor(const std::string& name, DType type,
                                const std::array<int64_t, 4>& ne, int n_dims) const {
  check(!name.empty(), "GGUF writer: empty tensor name");
  check(!tensor_index_.count(name), "GGUF writer: duplicate tensor '", name, "'");
  const DTypeTraits* tr = dtype_traits(static_cast<uint32_t>(type));
  check(tr != nullptr, "GGUF writer: tensor '", name, "': unknown type id ",
        static_cast<uint32_t>(type));
  check(n_dims >= 1 && n_dims <= 4, "GGUF writer: tensor '", name, "': n_dims ", n_dims,
        " not in 1..4");
  for (int d = 0; d < 4; d++) {
    check(ne[d] >= 0, "GGUF writer: tensor '", name, "': ne[", d, "] = ", ne[d], " < 0");
    check(d < n_dims || ne[d] == 1, "GGUF writer: tensor '", name, "': ne[", d, "] = ", ne[d],
          " but n_dims is ", n_dims);
  }
  check(ne[0] % tr->block_size == 0, "GGUF writer: tensor '", name, "': ne[0] = ", ne[0],
        " is not a multiple of the ", tr->name, " block size ", tr->block_size);
  return row_bytes(type, ne[0]) * static_cast<size_t>(ne[1] * ne[2] * ne[3]);
}

void GGUFWriter::add_tensor(const std::string& name, DType type, std::array<int64_t, 4> ne,
                            int n_dims, const void* data, size_t nbytes) {
  const size_t expected = check_tensor(name, type, ne, n_dims);
  check(nbytes == expected, "GGUF writer: tensor '", name, "': ", nbytes,
        " bytes given, but its type and shape need ", expected);
  check(data != nullptr || nbytes == 0, "GGUF writer: tensor '", name, "': null data");
  tensor_index_[name] = tensors_.size();
  tensors_.push_back({name, type, ne, n_dims, nbytes, data, nullptr});
}

void GGUFWriter::add_tensor(const Tensor& t, const std::string& name_override) {
  add_tensor(name_override.empty() ? t.name : name_override, t.type, t.ne,
             t.n_dims < 1 ? 1 : t.n_dims, t.data, t.nbytes);
}

void GGUFWriter::add_tensor(const std::string& name, DType type, std::array<int64_t, 4> ne,
                            int n_dims, FillFn fill) {
  const size_t nbytes = check_tensor(name, type, ne, n_dims);
  check(static_cast<bool>(fill), "GGUF writer: tensor '", name, "': empty fill function");
  tensor_index_[name] = tensors_.size();
  tensors_.push_back({name, type, ne, n_dims, nbytes, nullptr, std::move(fill)});
}

// ---- write ----------------------------------------------------------------------

void GGUFWriter::write(const std::string& path) const {
  std::string header;
  put<uint32_t>(header, kMagic);
  put<uint32_t>(header, kVersion);
  put<uint64_t>(header, tensors_.size());
  put<uint64_t>(header, kv_.size());
  for (const auto& [key, value] : kv_) {
    put_string(header, key);
    put<uint32_t>(header, static_cast<uint32_t>(value.type));
    put_value(header, value, key);
  }
  // Tensor offsets are relative to the data section; each tensor starts aligned.
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    put_string(header, t.name);
    put<uint32_t>(header, static_cast<uint32_t>(t.n_dims));
    for (int d = 0; d < t.n_dims; d++) put<uint64_t>(header, static_cast<uint64_t>(t.ne[d]));
    put<uint32_t>(header, static_cast<uint32_t>(t.type));
    put<uint64_t>(header, offset);
    offset = align_up(offset + t.nbytes, alignment_);
  }

  OutFile out(path + ".tmp");
  out.write(header.data(), header.size());
  if (!tensors_.empty()) {
    const uint64_t data_start = align_up(out.pos(), alignment_);
    out.pad_to(data_start);
    std::vector<uint8_t> buf;  // reused for computed tensors
    for (const PendingTensor& t : tensors_) {
      if (t.fill) {
        buf.assign(t.nbytes, 0);
        t.fill(buf.data(), t.nbytes);
        out.write(buf.data(), t.nbytes);
      } else {
        out.write(t.data, t.nbytes);
      }
      out.pad_to(align_up(out.pos() - data_start, alignment_) + data_start);
    }
  }
  out.commit(path);
}

}  // namespace kite
