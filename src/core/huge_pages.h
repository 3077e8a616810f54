// Memory that streams well: large buffers on transparent huge pages (2 MiB) where the system
// allows them. Decode reads the weights and the KV cache start to end for every token; with 4 KiB
// pages every page boundary is a TLB miss and a stop for the hardware prefetchers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace kite {

// Whether madvise(MADV_HUGEPAGE) can give anonymous memory huge pages (transparent huge pages
// not set to "never").
bool huge_pages_possible();

// `bytes` bytes (contents undefined), 64-byte aligned; from 2 MiB on, 2 MiB aligned and advised
// for huge pages. Free with std::free. Throws kite::Error when out of memory (`what` names it).
void* alloc_streaming(size_t bytes, const char* what);

// A zero-filled byte buffer from alloc_streaming.
class StreamingBuffer {
 public:
  StreamingBuffer() = default;
  StreamingBuffer(size_t bytes, const char* what);
  uint8_t* data() { return p_.get(); }
  const uint8_t* data() const { return p_.get(); }
  size_t size() const { return n_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> p_;
  size_t n_ = 0;
};

}  // namespace kite
