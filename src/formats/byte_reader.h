// Bounded little-endian reader over bytes of a mapped file (internal to src/formats).
// Every read first checks the bytes left, so a lying length or count in a header becomes a
// kite::Error naming the file, the field being read and the offset, never a wild read.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace kite {

static_assert(std::endian::native == std::endian::little,
              "Kite's file readers assume a little-endian host");

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string file)
      : data_(data), size_(size), file_(std::move(file)) {}

  size_t pos() const { return pos_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - pos_; }
  const uint8_t* data() const { return data_; }
  const std::string& file() const { return file_; }

  // Context prefixed to every error ("metadata 'general.name'", "tensor #3 'x'"); empty for none.
  void set_context(std::string ctx) { context_ = std::move(ctx); }
  const std::string& context() const { return context_; }

  // Throws unless `n` more bytes are available. `what` names the field for the message.
  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail(file_, ": ", prefix(), what, " at offset ", pos_, " needs ", n, " bytes, but only ",
           remaining(), " remain (file is ", size_, " bytes)");
  }

  template <class T>
  T read(const char* what) {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // A length-prefixed (uint64) string whose length is checked against the bytes left.
  std::string read_string(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    need(len, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

  void skip(uint64_t n, const char* what) {
    need(n, what);
    pos_ += static_cast<size_t>(n);
  }

  // Error helper: "<file>: <context>: <message...>".
  template <class... Args>
  [[noreturn]] void error(const Args&... args) const {
    fail(file_, ": ", prefix(), args...);
  }

 private:
  std::string prefix() const { return context_.empty() ? std::string() : context_ + ": "; }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string file_;
  std::string context_;
};

// Overflow-checked arithmetic on sizes read from files: false when the result does not fit.
inline bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
// Rounds `v` up to a multiple of the power of two `align`; false on overflow.
inline bool checked_align_up(uint64_t v, uint64_t align, uint64_t* out) {
  uint64_t t;
  if (!checked_add(v, align - 1, &t)) return false;
  *out = t & ~(align - 1);
  return true;
}

}  // namespace kite
