// fp32 GEMM engine (prompt path) for F32/F16/BF16 weights, and on AVX2 also for Q8_0/Q4_0.
//
// Micro-kernel: MR weight rows x NR tokens held in registers as MR/W x NR vector accumulators
// (W = lanes per vector). Per k: load MR/W vectors of the A panel (MR rows at column k), broadcast
// each token's x[t][k] from the B tile and FMA. Every weight loaded feeds NR tokens and every
// broadcast feeds MR rows, so loads stay well below the 2 FMAs per cycle the core can issue.
//   AVX-512: MR = 32 (2 zmm), NR = 12 -> 24 accumulators + 2 weights + 1 broadcast of 32 registers.
//   AVX2:    MR = 16 (2 ymm), NR = 6  -> 12 accumulators + 2 weights + 1 broadcast of 16 registers.
// Each accumulator is MR/2 consecutive rows of one token, i.e. contiguous in y[t][.]: stored with
// one (masked at the edge) vector store.
//
// Layouts (all fp32):
//   A panel: [kc][MR]       column k of MR rows, widened from the weight type (pack_a_f32_from_*)
//   B tile:  [n_in][nr]     all columns of nr tokens, transposed from x (pack_b)
// The A panel stays in L1 across all token tiles; B tiles stream from L2 (prefetched ahead).
#include <cstring>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"

#if KITE_X86
#include "kernels/cpu/simd_x86.h"

namespace kite::kernels::cpu {
namespace {

size_t b_tile_bytes_f32(int nr, int64_t n_in) { return static_cast<size_t>(n_in) * nr * sizeof(float); }
size_t b_offset_f32(int nr, int64_t k0) { return static_cast<size_t>(k0) * nr * sizeof(float); }

// B tile [n_in][nr] from x [nr][ldx]. Runs once per call over all activations: plain transposing
// copy (its cost is a small fraction of the GEMM's).
void pack_b_f32(const float* x, int64_t ldx, int nr, int64_t n_in, int, void* tile) {
  float* b = static_cast<float*>(tile);
  for (int t = 0; t < nr; t++)
    for (int64_t k = 0; k < n_in; k++) b[k * nr + t] = x[t * ldx + k];
}

// AVX2 level: writes rows [0, rows) x columns [0, kc) of row-major `src` ([rows][kc]) into an A
// panel [kc][mr], zero-filling rows >= rows. Strided scalar stores: a few % of the GEMM, since
// the panel is reused by all token tiles (the AVX-512 level transposes in registers instead).
void transpose_into_panel(const float* src, int rows, int64_t kc, int mr, float* panel) {
  for (int r = 0; r < mr; r++) {
    if (r < rows) {
      for (int64_t k = 0; k < kc; k++) panel[k * mr + r] = src[r * kc + k];
    } else {
      for (int64_t k = 0; k < kc; k++) panel[k * mr + r] = 0.0f;
    }
  }
}

}  // namespace
}  // namespace kite::kernels::cpu

// ================================================================================== AVX2 =========
KITE_BEGIN_AVX2
namespace kite::kernels::cpu::avx2 {
namespace {

constexpr int kMR = 16, kNR = 6, kKC = 256;

// Row converters: elements [k0, k0 + n) of one weight row -> fp32 (k0 % 32 == 0 for block types).
void row_f32(const uint8_t* w, int64_t k0, int64_t n, float* out) {
  std::memcpy(out, reinterpret_cast<const float*>(w) + k0, n * sizeof(float));
}
void row_f16(const uint8_t* w, int64_t k0, int64_t n, float* out) {
  const uint16_t* p = reinterpret_cast<const uint16_t*>(w) + k0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))));
  for (; i < n; i++) out[i] = f16_to_f32(p[i]);
}
void row_bf16(const uint8_t* w, int64_t k0, int64_t n, float* out) {
  const uint16_t* p = reinterpret_cast<const uint16_t*>(w) + k0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
  }
  for (; i < n; i++) out[i] = fp32_from_bits(uint32_t(p[i]) << 16);
}
void row_q8_0(const uint8_t* w, int64_t k0, int64_t n, float* out) {
  const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(w) + k0 / QK8_0;
  for (int64_t b = 0; b < n / QK8_0; b++) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(blk[b].d));
    for (int j = 0; j < QK8_0; j += 8) {
      const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk[b].qs + j)));
      _mm256_storeu_ps(out + b * QK8_0 + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
    }
  }
}
void row_q4_0(const uint8_t* w, int64_t k0, int64_t n, float* out) {
  const BlockQ4_0* blk = reinterpret_cast<const BlockQ4_0*>(w) + k0 / QK4_0;
  for (int64_t b = 0; b < n / QK4_0; b++) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(blk[b].d));
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[b].qs));
    const __m128i m = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, m), eight);                     // elements 0..15
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m), eight);  // elements 16..31
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int j = 0; j < 4; j++)
      _mm256_storeu_ps(out + b * QK4_0 + 8 * j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[j]))));
  }
}

template <void (*Row)(const uint8_t*, int64_t, int64_t, float*)>
void pack_a(const uint8_t* w, size_t w_stride, int rows, int64_t k0, int64_t kc, void* panel) {
  alignas(32) float tmp[kMR * kKC];  // [rows][kc] widened weights
  for (int r = 0; r < rows; r++) Row(w + r * w_stride, k0, kc, tmp + r * kc);
  transpose_into_panel(tmp, rows, kc, kMR, static_cast<float*>(panel));
}

template <int NR>
void micro_kernel(const float* a, const float* b, int64_t kc, float* y, int64_t ldy, int rows, bool accumulate) {
  __m256 c0[NR], c1[NR];  // rows 0..7 and 8..15 of token t
#pragma GCC unroll 16
  for (int t = 0; t < NR; t++) c0[t] = c1[t] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    const __m256 a0 = _mm256_load_ps(a + k * kMR), a1 = _mm256_load_ps(a + k * kMR + 8);
#pragma GCC unroll 16
    for (int t = 0; t < NR; t++) {
      const __m256 bt = _mm256_broadcast_ss(b + k * NR + t);
      c0[t] = _mm256_fmadd_ps(a0, bt, c0[t]);
      c1[t] = _mm256_fmadd_ps(a1, bt, c1[t]);
    }
  }
  if (rows == kMR) {
#pragma GCC unroll 16
    for (int t = 0; t < NR; t++) {
      float* yt = y + t * ldy;
      if (accumulate) {
        c0[t] = _mm256_add_ps(c0[t], _mm256_loadu_ps(yt));
        c1[t] = _mm256_add_ps(c1[t], _mm256_loadu_ps(yt + 8));
      }
      _mm256_storeu_ps(yt, c0[t]);
      _mm256_storeu_ps(yt + 8, c1[t]);
    }
  } else {  // edge panel: go through memory
    alignas(32) float c[kMR];
#pragma GCC unroll 16
    for (int t = 0; t < NR; t++) {
      _mm256_store_ps(c, c0[t]);
      _mm256_store_ps(c + 8, c1[t]);
      float* yt = y + t * ldy;
      for (int r = 0; r < rows; r++) yt[r] = accumulate ? yt[r] + c[r] : c[r];
    }
  }
}

void kernel(const void* a, const void* b, int nr, int64_t kc, float* y, int64_t ldy, int rows, bool accumulate) {
  const float* A = static_cast<const float*>(a);
  const float* B = static_cast<const float*>(b);
  switch (nr) {
    case 1: micro_kernel<1>(A, B, kc, y, ldy, rows, accumulate); break;
    case 2: micro_kernel<2>(A, B, kc, y, ldy, rows, accumulate); break;
    case 3: micro_kernel<3>(A, B, kc, y, ldy, rows, accumulate); break;
    case 4: micro_kernel<4>(A, B, kc, y, ldy, rows, accumulate); break;
    case 5: micro_kernel<5>(A, B, kc, y, ldy, rows, accumulate); break;
    default: micro_kernel<6>(A, B, kc, y, ldy, rows, accumulate); break;
  }
}

}  // namespace

void pack_a_f32_from_f32(const uint8_t* w, size_t s, int rows, int64_t k0, int64_t kc, void* p) { pack_a<row_f32>(w, s, rows, k0, kc, p); }
void pack_a_f32_from_f16(const uint8_t* w, size_t s, int rows, int64_t k0, int64_t kc, void* p) { pack_a<row_f16>(w, s, rows, k0, kc, p); }
void pack_a_f32_from_bf16(const uint8_t* w, size_t s, int rows, int64_t k0, int64_t kc, void* p) { pack_a<row_bf16>(w, s, rows, k0, kc, p); }
void pack_a_f32_from_q8_0(const uint8_t* w, size_t s, int rows, int64_t k0, int64_t kc, void* p) { pack_a<row_q8_0>(w, s, rows, k0, kc, p); }
void pack_a_f32_from_q4_0(const uint8_t* w, size_t s, int rows, int64_t k0, int64_t kc, void* p) { pack_a<row_q4_0>(w, s, rows, k0, kc, p); }

const GemmEngine gemm_f32 = {"avx2-f32", 10, kMR, kNR, kKC, b_tile_bytes_f32, b_offset_f32, pack_b_f32,
                             sizeof(float) * kMR * kKC, kernel};

}  // namespace kite::kernels::cpu::avx2
KITE_END_TARGET

// ================================================================================ AVX-512 ========
KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

constexpr int kMR = 32, kNR = 12, kKC = 256;  // A panel: 256 x 32 floats = 32 KiB (L1)
constexpr int kPrefetchB = 1024;  // bytes ahead in the B tile (~20 k steps): it streams from L2

// Loaders: 16 consecutive weights of a row from element i, widened to fp32; lanes outside m read
// nothing and are zero.
struct LoadF32 {
  static __m512 load(const uint8_t* p, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(p) + i);
  }
};
struct LoadF16 {
  static __m512 load(const uint8_t* p, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(p) + i));
  }
};
struct LoadBF16 {
  static __m512 load(const uint8_t* p, int64_t i, __mmask16 m) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(p) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
};

// In-register transpose of a 16x16 fp32 block: r[i][j] -> r[j][i].
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {  // pairs of rows, interleaved within 128-bit lanes
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // r[i + j], lane L: rows i..i+3 of column 4L + j
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  __m512 o[16];
  for (int j = 0; j < 4; j++) {  // gather lane L of the four row groups: column 4L + j
    const __m512 t0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), t1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
    const __m512 t2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88), t3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
    o[j] = _mm512_shuffle_f32x4(t0, t2, 0x88);
    o[j + 8] = _mm512_shuffle_f32x4(t0, t2, 0xdd);
    o[j + 4] = _mm512_shuffle_f32x4(t1, t3, 0x88);
    o[j + 12] = _mm512_shuffle_f32x4(t1, t3, 0xdd);
  }
  for (int i = 0; i < 16; i++) r[i] = o[i];
}

// A panel [kc][32]: 16x16 blocks loaded row-wise (widened on the fly), transposed in registers
// and stored column-wise; missing rows load as zeros.
template <class L>
void pack_a(const uint8_t* w, size_t w_stride, int rows, int64_t k0, int64_t kc, void* panel) {
  float* p = static_cast<float*>(panel);
  for (int h = 0; h < kMR / 16; h++)
    for (int64_t k = 0; k < kc; k += 16) {
      const int64_t n = kc - k < 16 ? kc - k : 16;
      const __mmask16 m = static_cast<__mmask16>((1u << n) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; i++) {
        const int row = 16 * h + i;
        r[i] = row < rows ? L::load(w + row * w_stride, k0 + k, m) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int j = 0; j < n; j++) _mm512_store_ps(p + (k + j) * kMR + 16 * h, r[j]);
    }
}

// Lanes [0, n) of a 16-lane vector (none for n <= 0, all for n >= 16).
inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? 0xffff : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}

// Writes (or adds) the 32 x NR accumulators to y[t][0..rows): c0[t] rows 0..15, c1[t] rows 16..31.
template <int NR>
inline void store_tile(__m512 c0[NR], __m512 c1[NR], float* y, int64_t ldy, int rows, bool accumulate) {
  const __mmask16 m0 = first_lanes(rows), m1 = first_lanes(rows - 16);
#pragma GCC unroll 16
  for (int t = 0; t < NR; t++) {
    float* yt = y + t * ldy;
    if (accumulate) {
      c0[t] = _mm512_add_ps(c0[t], _mm512_maskz_loadu_ps(m0, yt));
      c1[t] = _mm512_add_ps(c1[t], _mm512_maskz_loadu_ps(m1, yt + 16));
    }
    _mm512_mask_storeu_ps(yt, m0, c0[t]);
    _mm512_mask_storeu_ps(yt + 16, m1, c1[t]);
  }
}

// Calls f(std::integral_constant<int, NR>) with NR = nr (1..12): one micro-kernel per tile width.
template <class F>
inline void with_nr(int nr, F&& f) {
  switch (nr) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 9: f(std::integral_constant<int, 9>{}); break;
    case 10: f(std::integral_constant<int, 10>{}); break;
    case 11: f(std::integral_constant<int, 11>{}); break;
    default: f(std::integral_constant<int, 12>{}); break;
  }
}

template <int NR>
void micro_kernel(const float* a, const float* b, int64_t kc, float* y, int64_t ldy, int rows, bool accumulate) {
  __m512 c0[NR], c1[NR];  // rows 0..15 and 16..31 of token t
#pragma GCC unroll 16
  for (int t = 0; t < NR; t++) c0[t] = c1[t] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    _mm_prefetch(reinterpret_cast<const char*>(b + k * NR) + kPrefetchB, _MM_HINT_T0);
    const __m512 a0 = _mm512_load_ps(a + k * kMR), a1 = _mm512_load_ps(a + k * kMR + 16);
#pragma GCC unroll 16
    for (int t = 0; t < NR; t++) {
      const __m512 bt = _mm512_set1_ps(b[k * NR + t]);
      c0[t] = _mm512_fmadd_ps(a0, bt, c0[t]);
      c1[t] = _mm512_fmadd_ps(a1, bt, c1[t]);
    }
  }
  store_tile<NR>(c0, c1, y, ldy, rows, accumulate);
}

void kernel(const void* a, const void* b, int nr, int64_t kc, float* y, int64_t ldy, int rows, bool accumulate) {
  with_nr(nr, [&](auto NR) {
    micro_kernel<NR()>(static_cast<const float*>(a), static_cast<const float*>(b), kc, y, ldy, rows, accumulate);
  });
}

}  // namespace

void pack_a_f32_from_f32(const uint8_t* w, size_t s, int rows, int64_t k0, int64_t kc, void* p) { pack_a<LoadF32>(w, s, rows, k0, kc, p); }
void pack_a_f32_from_f16(const uint8_t* w, size_t s, int rows, int64_t k0, int64_t kc, void* p) { pack_a<LoadF16>(w, s, rows, k0, kc, p); }
void pack_a_f32_from_bf16(const uint8_t* w, size_t s, int rows, int64_t k0, int64_t kc, void* p) { pack_a<LoadBF16>(w, s, rows, k0, kc, p); }

const GemmEngine gemm_f32 = {"avx512-f32", 10, kMR, kNR, kKC, b_tile_bytes_f32, b_offset_f32, pack_b_f32,
                             sizeof(float) * kMR * kKC, kernel};

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
// =========================================================================== AVX-512 BF16 ========
// The bf16 engine: same blocking as the fp32 one (MR = 32 rows x NR = 12 tokens of fp32
// accumulators), but each step takes a pair of k: vdpbf16ps multiplies 32 bf16 pairs and adds
// both products to 16 fp32 sums, twice the multiply-adds per instruction of vfmadd231ps at the
// same throughput (Zen 4: 117 vs 58 G multiply-adds/s per core, measured).
// Layouts (32-bit lanes holding a bf16 pair (even k in the low half, odd k in the high half)):
//   A panel: [ceil(kc/2)][MR]    pair p of MR rows; an odd kc's last pair has a zero high half
//   B tile:  [ceil(n_in/2)][nr]  pair p of nr tokens
// Rounding: each F16 weight and each activation to bf16 (nearest even; relative error <= 2^-8
// each), products exact in fp32, sums in fp32. Perplexity cost: see README (F16 prompt GEMM).
KITE_BEGIN_AVX512BF16
namespace kite::kernels::cpu::avx512 {
namespace {

constexpr int kKCPairs = 256;  // A panel: 256 pairs x 32 rows x 4 bytes = 32 KiB (L1)

size_t b_tile_bytes_bf16(int nr, int64_t n_in) { return static_cast<size_t>((n_in + 1) / 2) * nr * 4; }
size_t b_offset_bf16(int nr, int64_t k0) { return static_cast<size_t>(k0 / 2) * nr * 4; }

// 32 fp32 values (lo = elements 0..15, hi = 16..31) -> 16 lanes of bf16 pairs (lane j: 2j, 2j+1).
inline __m512i pairs_bf16(__m512 lo, __m512 hi) { return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)); }

void pack_b_bf16(const float* x, int64_t ldx, int nr, int64_t n_in, int, void* tile) {
  uint32_t* b = static_cast<uint32_t*>(tile);
  const int64_t n_pairs = (n_in + 1) / 2;
  alignas(64) uint32_t lane[16];
  for (int t = 0; t < nr; t++) {
    const float* xt = x + t * ldx;
    for (int64_t p = 0; p < n_pairs; p += 16) {
      const int64_t n = n_in - 2 * p < 32 ? n_in - 2 * p : 32;  // elements left in this group
      const __mmask16 m0 = first_lanes(n), m1 = first_lanes(n - 16);
      _mm512_store_si512(lane, pairs_bf16(_mm512_maskz_loadu_ps(m0, xt + 2 * p), _mm512_maskz_loadu_ps(m1, xt + 2 * p + 16)));
      for (int64_t j = 0; j < (n + 1) / 2; j++) b[(p + j) * nr + t] = lane[j];
    }
  }
}

// A panel from 16x32 blocks: each row's 32 weights widened to fp32, rounded to 16 bf16 pairs,
// then the 16 rows x 16 pairs transposed in registers (pairs move as 32-bit elements).
template <class L>
void pack_a_bf16(const uint8_t* w, size_t w_stride, int rows, int64_t k0, int64_t kc, void* panel) {
  uint32_t* p = static_cast<uint32_t*>(panel);
  for (int h = 0; h < kMR / 16; h++)
    for (int64_t k = 0; k < kc; k += 32) {
      const int64_t n = kc - k < 32 ? kc - k : 32;
      const __mmask16 m0 = first_lanes(n), m1 = first_lanes(n - 16);
      __m512 r[16];
      for (int i = 0; i < 16; i++) {
        const int row = 16 * h + i;
        r[i] = row < rows ? _mm512_castsi512_ps(pairs_bf16(L::load(w + row * w_stride, k0 + k, m0),
                                                           L::load(w + row * w_stride, k0 + k + 16, m1)))
                          : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int64_t j = 0; j < (n + 1) / 2; j++) _mm512_store_ps(reinterpret_cast<float*>(p + (k / 2 + j) * kMR + 16 * h), r[j]);
    }
}

template <int NR>
void micro_kernel_bf16(const uint32_t* a, const uint32_t* b, int64_t kc, float* y, int64_t ldy, int rows, bool accumulate) {
  __m512 c0[NR], c1[NR];  // rows 0..15 and 16..31 of token t
#pragma GCC unroll 16
  for (int t = 0; t < NR; t++) c0[t] = c1[t] = _mm512_setzero_ps();
  const int64_t n_pairs = (kc + 1) / 2;
  for (int64_t k = 0; k < n_pairs; k++) {
    _mm_prefetch(reinterpret_cast<const char*>(b + k * NR) + kPrefetchB, _MM_HINT_T0);
    const __m512bh a0 = reinterpret_cast<__m512bh>(_mm512_load_si512(a + k * kMR));
    const __m512bh a1 = reinterpret_cast<__m512bh>(_mm512_load_si512(a + k * kMR + 16));
#pragma GCC unroll 16
    for (int t = 0; t < NR; t++) {
      const __m512bh bt = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(b[k * NR + t])));
      c0[t] = _mm512_dpbf16_ps(c0[t], a0, bt);
      c1[t] = _mm512_dpbf16_ps(c1[t], a1, bt);
    }
  }
  store_tile<NR>(c0, c1, y, ldy, rows, accumulate);
}

void kernel_bf16(const void* a, const void* b, int nr, int64_t kc, float* y, int64_t ldy, int rows, bool accumulate) {
  with_nr(nr, [&](auto NR) {
    micro_kernel_bf16<NR()>(static_cast<const uint32_t*>(a), static_cast<const uint32_t*>(b), kc, y, ldy, rows, accumulate);
  });
}

}  // namespace

void pack_a_bf16_from_f16(const uint8_t* w, size_t s, int rows, int64_t k0, int64_t kc, void* p) { pack_a_bf16<LoadF16>(w, s, rows, k0, kc, p); }

const GemmEngine gemm_bf16 = {"avx512-bf16", 10, kMR, kNR, 2 * kKCPairs, b_tile_bytes_bf16, b_offset_bf16, pack_b_bf16,
                              sizeof(uint32_t) * kMR * kKCPairs, kernel_bf16};

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
