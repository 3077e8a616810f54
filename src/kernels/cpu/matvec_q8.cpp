// Matrix-vector products for Q8_0 and Q4_0 weights (decode path) with int8 activations.
//
// The activations were quantized once per call to int8 blocks of 32 (quantize_act.cpp), so each
// weight block is one 32-element integer dot product, scaled by d_w * d_x and accumulated in fp32:
//   y += d_w * d_x * sum_j w_j * q_j
// The weights are read in their file layout (no repacking: this path is memory-bound and streams
// W exactly once per call, for all tokens).
//
// Integer dot of 32 signed weights with 32 signed activations:
//  * AVX-512 VNNI: vpdpbusd multiplies unsigned by signed bytes, so Q8_0 uses |w| and sign(x, w);
//    Q4_0's nibbles are unsigned already (value = q - 8): we take sum q*x and start the int32
//    accumulator at -sum(x) per lane (8 lanes * -sum x = -8 sum x) for the offset.
//  * AVX2: vpmaddubsw (u8*s8 pairs -> s16, no overflow since |w|,|x| <= 127 or q <= 15) then
//    vpmaddwd with ones to widen to int32; the same |w| / sign and offset tricks.
// One block is one 256-bit vector; 8 int32 lanes carry the block's partial sums into fp32.
//
// Each pass covers R rows x NT tokens: weights are loaded once for NT tokens.
#include <cstring>

#include "kernels/cpu/cpu_kernels.h"

#if KITE_X86
#include <immintrin.h>

// Block layouts (dtype.h): Q8_0 = fp16 d + 32 x int8; Q4_0 = fp16 d + 16 bytes of nibbles, element
// j in the low nibble of byte j and element j + 16 in its high nibble.

// ================================================================================== AVX2 =========
KITE_BEGIN_AVX2
namespace kite::kernels::cpu::avx2 {
namespace {

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 8 int32 lanes summing u8 a * s8 b over 32 bytes.
inline __m256i dot_u8s8(__m256i a, __m256i b) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
}

struct Q8_0Dot {
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  struct W {
    __m256i w, aw;  // weights, |weights|
    float d;
  };
  static W prep(const uint8_t* blk) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    return {w, _mm256_abs_epi8(w), load_f16(blk)};
  }
  static __m256i dot(const W& w, __m256i xq, int32_t) { return dot_u8s8(w.aw, _mm256_sign_epi8(xq, w.w)); }
};

struct Q4_0Dot {
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_0);
  struct W {
    __m256i q;  // the 32 nibbles as bytes 0..15, in element order
    float d;
  };
  static W prep(const uint8_t* blk) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return {_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), load_f16(blk)};
  }
  // sum (q - 8) * x = sum q * x - 8 * sum x, with -sum x added to each of the 8 lanes.
  static __m256i dot(const W& w, __m256i xq, int32_t sx) {
    return _mm256_add_epi32(dot_u8s8(w.q, xq), _mm256_set1_epi32(-sx));
  }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <class D, int R, int NT>
inline void rows_kernel(const MatvecArgs& a, int64_t o) {
  const int64_t nb = a.n_in / kQBlock;
  const uint8_t* w[R];
  for (int r = 0; r < R; r++) w[r] = a.w + (o + r) * a.w_stride;
  __m256 acc[R][NT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    __m256i xq[NT];  // activation block b of token t
    for (int t = 0; t < NT; t++)
      xq[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.qs + t * a.n_in + b * kQBlock));
    for (int r = 0; r < R; r++) {
      const typename D::W wb = D::prep(w[r] + b * D::kBlockBytes);
      for (int t = 0; t < NT; t++) {
        const __m256i dot = D::dot(wb, xq[t], a.xq.s[t * nb + b]);
        const __m256 scale = _mm256_set1_ps(wb.d * a.xq.d[t * nb + b]);
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) a.y[t * a.n_out + o + r] = hsum(acc[r][t]);
}

template <class D, int NT>
void rows(const MatvecArgs& a, int64_t r0, int64_t r1) {
  constexpr int R = NT <= 2 ? 4 : 2;  // 16 ymm registers
  int64_t o = r0;
  for (; o + R <= r1; o += R) rows_kernel<D, R, NT>(a, o);
  for (; o < r1; o++) rows_kernel<D, 1, NT>(a, o);
}

template <class D>
void matvec(const MatvecArgs& a, int64_t r0, int64_t r1) {
  switch (a.n_tok) {
    case 1: rows<D, 1>(a, r0, r1); break;
    case 2: rows<D, 2>(a, r0, r1); break;
    case 3: rows<D, 3>(a, r0, r1); break;
    default: rows<D, 4>(a, r0, r1); break;
  }
}

}  // namespace

void matvec_q8_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q8_0Dot>(a, r0, r1); }
void matvec_q4_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q4_0Dot>(a, r0, r1); }

}  // namespace kite::kernels::cpu::avx2
KITE_END_TARGET

// ================================================================================ AVX-512 ========
// 256-bit vectors here too: one block per vector keeps the per-block scale a plain broadcast, and on
// Intel, 256-bit integer ops issue on three ports instead of two. The path is memory-bound anyway.
KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

struct Q8_0Dot {
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  struct W {
    __m256i w, aw;  // weights, |weights|
    float d;
  };
  static W prep(const uint8_t* blk) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    return {w, _mm256_abs_epi8(w), load_f16(blk)};
  }
  static __m256i dot(const W& w, __m256i xq, int32_t) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w.aw, _mm256_sign_epi8(xq, w.w));
  }
};

struct Q4_0Dot {
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_0);
  struct W {
    __m256i q;  // the 32 nibbles as bytes 0..15, in element order
    float d;
  };
  static W prep(const uint8_t* blk) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return {_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), load_f16(blk)};
  }
  // sum (q - 8) * x: the accumulator starts at -sum x in each of the 8 lanes.
  static __m256i dot(const W& w, __m256i xq, int32_t sx) {
    return _mm256_dpbusd_epi32(_mm256_set1_epi32(-sx), w.q, xq);
  }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <class D, int R, int NT>
inline void rows_kernel(const MatvecArgs& a, int64_t o) {
  const int64_t nb = a.n_in / kQBlock;
  const uint8_t* w[R];
  for (int r = 0; r < R; r++) w[r] = a.w + (o + r) * a.w_stride;
  __m256 acc[R][NT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    __m256i xq[NT];  // activation block b of token t
    for (int t = 0; t < NT; t++)
      xq[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.qs + t * a.n_in + b * kQBlock));
    for (int r = 0; r < R; r++) {
      const typename D::W wb = D::prep(w[r] + b * D::kBlockBytes);
      for (int t = 0; t < NT; t++) {
        const __m256i dot = D::dot(wb, xq[t], a.xq.s[t * nb + b]);
        const __m256 scale = _mm256_set1_ps(wb.d * a.xq.d[t * nb + b]);
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) a.y[t * a.n_out + o + r] = hsum(acc[r][t]);
}

template <class D, int NT>
void rows(const MatvecArgs& a, int64_t r0, int64_t r1) {
  constexpr int R = 4;
  int64_t o = r0;
  for (; o + R <= r1; o += R) rows_kernel<D, R, NT>(a, o);
  for (; o < r1; o++) rows_kernel<D, 1, NT>(a, o);
}

template <class D>
void matvec(const MatvecArgs& a, int64_t r0, int64_t r1) {
  switch (a.n_tok) {
    case 1: rows<D, 1>(a, r0, r1); break;
    case 2: rows<D, 2>(a, r0, r1); break;
    case 3: rows<D, 3>(a, r0, r1); break;
    default: rows<D, 4>(a, r0, r1); break;
  }
}

}  // namespace

void matvec_q8_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q8_0Dot>(a, r0, r1); }
void matvec_q4_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q4_0Dot>(a, r0, r1); }

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
