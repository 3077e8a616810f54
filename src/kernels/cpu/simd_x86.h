// <immintrin.h> for the SIMD kernel files.
// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves (_mm512_undefined_ps),
// which -Wall reports as uninitialised uses wherever such an intrinsic is inlined (GCC bug 105593,
// fixed in 12.3). The diagnostics point into the header, so they are silenced for its lines only.
#pragma once
#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"  // KITE_BEGIN_AVX512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

namespace kite::kernels::cpu {

// Matvec prefetch. A thread's rows are contiguous in memory and a matvec pass reads R rows
// side by side, i.e. R short streams (a Q4_0 row of 2048 is only 18 cache lines), too short for
// the hardware prefetchers to ramp up on: Q4_0/Q8_0 decode reached only 40-55% of the read
// bandwidth without help. Each pass therefore prefetches the next R rows linearly, `bytes` per
// step, so the whole next chunk arrives during the current one (distance: one chunk, several KiB).
inline void prefetch_lines(const uint8_t* p, int64_t bytes) {
  for (int64_t j = 0; j < bytes; j += 64) _mm_prefetch(reinterpret_cast<const char*>(p + j), _MM_HINT_T0);
}

// Prefetch for R row streams (see for_row_streams): the part of each stream's next row that
// matches bytes [off, off + kStepBytes) of the current one, every cache line it touches (steps
// under 64 bytes must divide 64 and start at multiples of themselves: one prefetch per line).
template <int R, int kStepBytes>
inline void prefetch_next_rows(const uint8_t* const* w, size_t w_stride, int64_t off) {
  if constexpr (kStepBytes < 64) {
    if (off % 64 != 0) return;
  }
  for (int r = 0; r < R; r++) {
    const char* p = reinterpret_cast<const char*>(w[r] + w_stride + off);
    for (int j = 0; j < kStepBytes; j += 64) _mm_prefetch(p + j, _MM_HINT_T0);
    if constexpr (kStepBytes > 64 && kStepBytes % 64 != 0) _mm_prefetch(p + kStepBytes - 1, _MM_HINT_T0);
  }
}

}  // namespace kite::kernels::cpu

KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {

// acc += w (unsigned bytes) . the 4 signed bytes at x in every lane (vpdpbusd), the 4 bytes
// broadcast by the instruction's own memory operand ({1to16}). GCC compiles
// _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(v)) to a separate vpbroadcastd per product,
// which competes with the products for the vector pipes: in the packed Q4_0 decode kernel this
// took one Zen 4 core from 68 to 72 GB/s with the weights in cache.
inline __m512i dpbusd_bcast(__m512i acc, __m512i w, const void* x) {
  __asm__("vpdpbusd %[x]%{1to16%}, %[w], %[acc]" : [acc] "+v"(acc) : [w] "v"(w), [x] "m"(*static_cast<const int32_t*>(x)));
  return acc;
}

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
