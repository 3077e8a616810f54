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
// AVX2: one block per 256-bit vector; its 8 int32 lanes carry the block's partial sums into fp32.
// AVX-512: groups of blocks per 512-bit vector (see below).
//
// Each pass covers R rows x NT tokens: weights are loaded once for NT tokens.
#include <cstring>

#include "kernels/cpu/cpu_kernels.h"

#if KITE_X86
#include "kernels/cpu/simd_x86.h"

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
  const uint8_t* pf = a.w + (o + R) * a.w_stride;  // the next R rows (see prefetch_lines)
  for (int64_t b = 0; b < nb; b++) {
    prefetch_lines(pf, R * D::kBlockBytes);
    pf += R * D::kBlockBytes;
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
  matvec_token_groups<by_token_count<rows<D, 1>, rows<D, 2>, rows<D, 3>, rows<D, 4>>>(a, r0, r1);
}

}  // namespace

void matvec_q8_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q8_0Dot>(a, r0, r1); }
void matvec_q4_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q4_0Dot>(a, r0, r1); }

}  // namespace kite::kernels::cpu::avx2
KITE_END_TARGET

// ================================================================================ AVX-512 ========
// Several blocks per 512-bit vector, so the per-block overhead (scale conversion, int->float,
// FMA) is paid once per group:
//  * Q4_0, groups of 4 blocks: the 4 x 16 nibble bytes are gathered into one zmm (one 128-bit load
//    and insert per block), split into low nibbles (elements 0..15 of each block) and high ones
//    (16..31); the activations are rearranged to match once per token, shared by all rows. The 4
//    fp16 scales sit at words 0, 9, 18, 27 of one 64-byte load: one vpermw spreads them to the 4
//    int32 lanes of their block.
//  * Q8_0, groups of 2 blocks: 2 x 32 weights in one zmm, scales at words 0 and 17.
// A tail of fewer blocks than a group goes through the one-block-per-ymm code.
KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// fp16 words at the given indexes of a 64-byte load at p, as 16 floats.
inline __m512 spread_f16(const uint8_t* p, __m512i word_idx) {
  const __m512i words = _mm512_permutexvar_epi16(word_idx, _mm512_loadu_si512(p));
  return _mm512_cvtph_ps(_mm512_castsi512_si256(words));
}

struct Q8_0 {
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  static constexpr int kGroup = 2;
  struct X {      // one token, 2 blocks
    __m512i q;    // 64 int8, element order
    __m512i init; // -16 * sum(x) in each of a block's 8 lanes: -128 * sum(x) per block
    __m512 dx;    // block scales, 8 lanes each
  };
  struct W {      // one row, 2 blocks
    __m512i wu;   // w + 128 as unsigned bytes (w xor 0x80)
    __m512 dw;    // block scales, 8 lanes each
  };
  static X prep_x(const int8_t* q, const float* d, const int32_t* s) {
    const __m512i rep8 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i sums = _mm512_permutexvar_epi32(rep8, _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s))));
    return {_mm512_loadu_si512(q), _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, 4)),
            _mm512_permutexvar_ps(rep8, _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d)))))};
  }
  static W prep_w(const uint8_t* p) {
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2))),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kBlockBytes + 2)), 1);
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 17 | 17 << 16, 17 | 17 << 16, 17 | 17 << 16, 17 | 17 << 16,
                                          0, 0, 0, 0, 0, 0, 0, 0);  // words 0-7: d0, 8-15: d1
    return {_mm512_xor_si512(w, _mm512_set1_epi8(char(0x80))), spread_f16(p, idx)};
  }
  // sum w * x = sum (w + 128) * x - 128 * sum x: vpdpbusd takes the unsigned w + 128 directly,
  // and the correction is the accumulator's start (exact integers, as the sign trick was, in
  // fewer instructions per row and token).
  static __m512i dot(const W& w, const X& x) { return _mm512_dpbusd_epi32(x.init, w.wu, x.q); }
};

struct Q4_0 {
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_0);
  static constexpr int kGroup = 4;
  struct X {           // one token, 4 blocks
    __m512i lo, hi;    // elements 0..15 / 16..31 of the 4 blocks, 16 bytes per block
    __m512i init;      // -2 * sum(x) in each of a block's 4 lanes: -8 * sum(x) per block
    __m512 dx;         // block scales, 4 lanes each
  };
  struct W {           // one row, 4 blocks
    __m512i lo, hi;    // nibbles q (value q - 8) in the same order as X
    __m512 dw;
  };
  static X prep_x(const int8_t* q, const float* d, const int32_t* s) {
    const __m512i a = _mm512_loadu_si512(q), b = _mm512_loadu_si512(q + 64);  // blocks 0-1, 2-3
    const __m512i rep4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i sums = _mm512_permutexvar_epi32(rep4, _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s))));
    return {_mm512_permutex2var_epi64(a, _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13), b),
            _mm512_permutex2var_epi64(a, _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15), b),
            _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, 1)),
            _mm512_permutexvar_ps(rep4, _mm512_castps128_ps512(_mm_loadu_ps(d)))};
  }
  static W prep_w(const uint8_t* p) {
    __m512i raw = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2)));
    raw = _mm512_inserti32x4(raw, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1 * kBlockBytes + 2)), 1);
    raw = _mm512_inserti32x4(raw, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * kBlockBytes + 2)), 2);
    raw = _mm512_inserti32x4(raw, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 3 * kBlockBytes + 2)), 3);
    const __m512i m = _mm512_set1_epi8(0x0f);
    const __m512i idx = _mm512_setr_epi32(0, 0, 9 | 9 << 16, 9 | 9 << 16, 18 | 18 << 16, 18 | 18 << 16, 27 | 27 << 16,
                                          27 | 27 << 16, 0, 0, 0, 0, 0, 0, 0, 0);
    return {_mm512_and_si512(raw, m), _mm512_and_si512(_mm512_srli_epi16(raw, 4), m), spread_f16(p, idx)};
  }
  static __m512i dot(const W& w, const X& x) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(x.init, w.lo, x.lo), w.hi, x.hi);
  }
};

// One block per ymm, for the blocks after the last full group.
inline __m256i tail_dot(const Q8_0&, const uint8_t* blk, __m256i xq, int32_t) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(xq, w));
}
inline __m256i tail_dot(const Q4_0&, const uint8_t* blk, __m256i xq, int32_t sx) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
  return _mm256_dpbusd_epi32(_mm256_set1_epi32(-sx), _mm256_and_si256(both, _mm256_set1_epi8(0x0f)), xq);
}

// kPrefetch: each stream's next row is prefetched in software (StreamPlan::Interleaved).
template <class D, int R, int NT, bool kPrefetch>
inline void rows_kernel(const MatvecArgs& a, int64_t o, int64_t step) {
  const int64_t nb = a.n_in / kQBlock;
  const uint8_t* w[R];
  for (int r = 0; r < R; r++) w[r] = a.w + (o + r * step) * a.w_stride;
  __m512 acc[R][NT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + D::kGroup <= nb; b += D::kGroup) {
    if constexpr (kPrefetch) prefetch_next_rows<R, D::kGroup * D::kBlockBytes>(w, a.w_stride, b * D::kBlockBytes);
    typename D::X x[NT];  // activation blocks b .. b+kGroup of token t, rearranged for D
    for (int t = 0; t < NT; t++)
      x[t] = D::prep_x(a.xq.qs + t * a.n_in + b * kQBlock, a.xq.d + t * nb + b, a.xq.s + t * nb + b);
    for (int r = 0; r < R; r++) {
      const typename D::W wr = D::prep_w(w[r] + b * D::kBlockBytes);
      for (int t = 0; t < NT; t++)
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(D::dot(wr, x[t])), _mm512_mul_ps(wr.dw, x[t].dx), acc[r][t]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) {
      __m256 tail = _mm256_setzero_ps();
      for (int64_t bt = b; bt < nb; bt++) {
        const uint8_t* blk = w[r] + bt * D::kBlockBytes;
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.qs + t * a.n_in + bt * kQBlock));
        const __m256i dot = tail_dot(D(), blk, xq, a.xq.s[t * nb + bt]);
        tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(load_f16(blk) * a.xq.d[t * nb + bt]), tail);
      }
      a.y[t * a.n_out + o + r * step] = _mm512_reduce_add_ps(acc[r][t]) + hsum(tail);
    }
}

template <class D, int NT>
void rows(const MatvecArgs& a, int64_t r0, int64_t r1) {
  constexpr int R = NT <= 2 ? 4 : 2;  // 32 zmm: R*NT accumulators + NT prepared activations + 1 row
  // Sequential plan: the same R streams without prefetch instructions; one row at a time was 3-4%
  // slower here (this layout unpacks more per row: compute-bound with one row chain).
  if (stream_plan() == StreamPlan::Sequential) {
    for_row_streams<R>(r0, r1, [&](int64_t o, int64_t step) { rows_kernel<D, R, NT, false>(a, o, step); },
                       [&](int64_t o) { rows_kernel<D, 1, NT, false>(a, o, 0); });
    return;
  }
  for_row_streams<R>(r0, r1, [&](int64_t o, int64_t step) { rows_kernel<D, R, NT, true>(a, o, step); },
                     [&](int64_t o) { rows_kernel<D, 1, NT, true>(a, o, 0); });
}

template <class D>
void matvec(const MatvecArgs& a, int64_t r0, int64_t r1) {
  matvec_token_groups<by_token_count<rows<D, 1>, rows<D, 2>, rows<D, 3>, rows<D, 4>>>(a, r0, r1);
}

}  // namespace

void matvec_q8_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q8_0>(a, r0, r1); }
void matvec_q4_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q4_0>(a, r0, r1); }

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
