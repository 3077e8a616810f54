// GGUF v2/v3 reader (and the value types a writer needs). The file is memory-mapped; tensor
// views point straight into it. Every size, count and offset read from the header is checked
// against the file before use, so a lying header gives a kite::Error, never a wild read.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "core/tensor.h"

namespace kite {

enum class GGUFType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

// One metadata value. Scalars live in i/u/f/b, strings in s, arrays in arr (all elements share
// elem_type). Integer types fill both i and u; float types fill f.
struct GGUFValue {
  GGUFType type = GGUFType::U32;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  GGUFType elem_type = GGUFType::U32;  // for arrays
  std::vector<GGUFValue> arr;

  bool is_int() const;
  bool is_float() const;
};

// "u32", "string", "array"... for messages.
const char* gguf_type_name(GGUFType t);

class GGUFFile {
 public:
  // Parses the header, metadata and tensor table of `path`; data stays mapped.
  static std::unique_ptr<GGUFFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  // File offset where the (aligned) tensor data section starts.
  size_t data_offset() const { return data_offset_; }
  const std::map<std::string, GGUFValue>& metadata() const { return kv_; }
  const std::vector<Tensor>& tensors() const { return tensors_; }
  const std::shared_ptr<MappedFile>& file() const { return file_; }

  const GGUFValue* find(const std::string& key) const;
  const Tensor* find_tensor(const std::string& name) const;
  // Typed getters: throw kite::Error "<file>: metadata 'key' ..." when missing or mistyped.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  // Same, with a default when the key is absent (still an error when present but mistyped).
  std::string get_string(const std::string& key, const std::string& def) const;
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::map<std::string, GGUFValue> kv_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace kite
