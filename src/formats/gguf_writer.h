// GGUF v3 writer, for convert / quantize / gen-model. Metadata is kept in insertion order;
// tensor data is streamed to disk at write() time, one tensor at a time, never copied whole.
//
//   GGUFWriter w;
//   w.set_string("general.architecture", "llama");
//   w.set_u32("llama.block_count", 5);
//   w.set_array_str("tokenizer.ggml.tokens", tokens);
//   w.add_tensor("token_embd.weight", DType::F32, {64, 512, 1, 1}, 2, ptr, nbytes);
//   w.write("out.gguf");   // writes out.gguf.tmp, then renames it over out.gguf
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "formats/gguf.h"

namespace kite {

class GGUFWriter {
 public:
  // Produces a tensor's bytes at write time into `dst` (exactly `nbytes`).
  using FillFn = std::function<void(uint8_t* dst, size_t nbytes)>;

  GGUFWriter() = default;

  // Tensor data alignment (power of two). Values other than the default 32 are recorded as
  // the u32 key general.alignment, as the spec asks.
  void set_alignment(uint32_t alignment);
  uint32_t alignment() const { return alignment_; }

  // Metadata. Setting a key again replaces its value and keeps its position.
  void set_u8(const std::string& key, uint8_t v);
  void set_i8(const std::string& key, int8_t v);
  void set_u16(const std::string& key, uint16_t v);
  void set_i16(const std::string& key, int16_t v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_i64(const std::string& key, int64_t v);
  void set_f32(const std::string& key, float v);
  void set_f64(const std::string& key, double v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_array_str(const std::string& key, const std::vector<std::string>& v);
  void set_array_f32(const std::string& key, const std::vector<float>& v);
  void set_array_i32(const std::string& key, const std::vector<int32_t>& v);
  void set_array_u32(const std::string& key, const std::vector<uint32_t>& v);
  // Any value, including nested arrays (e.g. copied from a GGUFFile's metadata). Arrays must
  // have every element of type elem_type. "general.alignment" goes through set_alignment.
  void set_value(const std::string& key, const GGUFValue& v);
  const GGUFValue* find(const std::string& key) const;
  void remove(const std::string& key);

  // A tensor whose bytes live in memory (e.g. a mapped file): NOT copied, so `data` must stay
  // valid until write() returns. ne uses GGUF order; entries past n_dims must be 1. nbytes
  // must equal the size the type and shape imply.
  void add_tensor(const std::string& name, DType type, std::array<int64_t, 4> ne, int n_dims,
                  const void* data, size_t nbytes);
  // A view from a reader (GGUFFile, SafeTensors, llama2.c): same rules as above.
  void add_tensor(const Tensor& t, const std::string& name_override = "");
  // A tensor computed at write time (quantized, converted...): `fill` is called once, during
  // write(), with a buffer of the tensor's size.
  void add_tensor(const std::string& name, DType type, std::array<int64_t, 4> ne, int n_dims,
                  FillFn fill);

  size_t n_tensors() const { return tensors_.size(); }
  size_t n_kv() const { return kv_.size(); }

  // Writes the file (to `path`.tmp, renamed to `path` on success). Throws kite::Error naming
  // the path on any I/O failure.
  void write(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::array<int64_t, 4> ne;
    int n_dims;
    size_t nbytes;
    const void* data = nullptr;  // either data...
    FillFn fill;                 // ...or fill
  };
  void set(const std::string& key, GGUFValue v);
  size_t check_tensor(const std::string& name, DType type, const std::array<int64_t, 4>& ne,
                      int n_dims) const;

  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, GGUFValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<PendingTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace kite
