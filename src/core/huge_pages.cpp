#include "core/huge_pages.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace kite {

bool huge_pages_possible() {
#ifdef MADV_HUGEPAGE
  static const bool possible = [] {
    FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return false;
    char buf[128] = {0};
    const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    return n > 0 && std::strstr(buf, "[never]") == nullptr;
  }();
  return possible;
#else
  return false;
#endif
}

void* alloc_streaming(size_t bytes, const char* what) {
  constexpr size_t kHuge = size_t(2) << 20;
  const bool huge = bytes >= kHuge;
  const size_t alloc = huge ? (bytes + kHuge - 1) / kHuge * kHuge : (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(huge ? kHuge : 64, alloc == 0 ? 64 : alloc);
  check(p != nullptr, "cannot allocate ", bytes, " bytes for ", what);
#ifdef MADV_HUGEPAGE
  if (huge && huge_pages_possible()) madvise(p, alloc, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  return p;
}

StreamingBuffer::StreamingBuffer(size_t bytes, const char* what)
    : p_(static_cast<uint8_t*>(alloc_streaming(bytes, what))), n_(bytes) {
  std::memset(p_.get(), 0, bytes);
}

void StreamingBuffer::Free::operator()(uint8_t* p) const { std::free(p); }

}  // namespace kite
