// Matrix-vector products for F32, F16 and BF16 weights (decode path), AVX2 and AVX-512.
//
// All three widen the weights to fp32 and accumulate with FMA in fp32, so the result matches the
// reference to rounding. For BF16, vdpbf16ps would halve the arithmetic but needs the activations
// rounded to bf16 (8-bit mantissa: ~2e-3 relative error per element); this path is memory-bound,
// so the exact widening (a zero-extend and a shift) costs nothing and is used instead.
//
// Structure: R weight rows x NT tokens per pass, so each weight vector loaded from memory feeds NT
// FMAs and each activation vector (L1-resident) feeds R. R rows are independent streams, which
// keeps several cache-line fetches in flight.
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"

#if KITE_X86
#include "kernels/cpu/simd_x86.h"

// ================================================================================== AVX2 =========
KITE_BEGIN_AVX2
namespace kite::kernels::cpu::avx2 {
namespace {

// Loaders: 8 weights of row p starting at element i, widened to fp32; plus a scalar one for tails.
struct LoadF32 {
  static constexpr int kBytes = 4;
  static __m256 load8(const uint8_t* p, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + i); }
  static float load1(const uint8_t* p, int64_t i) { return reinterpret_cast<const float*>(p)[i]; }
};
struct LoadF16 {
  static constexpr int kBytes = 2;
  static __m256 load8(const uint8_t* p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(p) + i)));
  }
  static float load1(const uint8_t* p, int64_t i) { return f16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]); }
};
struct LoadBF16 {
  static constexpr int kBytes = 2;
  static __m256 load8(const uint8_t* p, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float load1(const uint8_t* p, int64_t i) {
    return fp32_from_bits(uint32_t(reinterpret_cast<const uint16_t*>(p)[i]) << 16);
  }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Rows o .. o+R-1, all NT tokens.
template <class L, int R, int NT>
inline void rows_kernel(const MatvecArgs& a, int64_t o) {
  const int64_t n = a.n_in;
  const uint8_t* w[R];
  for (int r = 0; r < R; r++) w[r] = a.w + (o + r) * a.w_stride;
  __m256 acc[R][NT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();
  const uint8_t* pf = a.w + (o + R) * a.w_stride;  // the next R rows (see prefetch_lines)
  constexpr int64_t pf_step = R * 8 * L::kBytes;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    prefetch_lines(pf, pf_step);
    pf += pf_step;
    __m256 xv[NT];  // x[t][i .. i+8)
    for (int t = 0; t < NT; t++) xv[t] = _mm256_loadu_ps(a.x + t * n + i);
    for (int r = 0; r < R; r++) {
      const __m256 wv = L::load8(w[r], i);
      for (int t = 0; t < NT; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) {
      float s = hsum(acc[r][t]);
      for (int64_t j = i; j < n; j++) s += L::load1(w[r], j) * a.x[t * n + j];
      a.y[t * a.n_out + o + r] = s;
    }
}

template <class L, int NT>
void rows(const MatvecArgs& a, int64_t r0, int64_t r1) {
  constexpr int R = NT <= 2 ? 4 : 2;  // 16 ymm registers: R*NT accumulators + NT x + 1 w
  int64_t o = r0;
  for (; o + R <= r1; o += R) rows_kernel<L, R, NT>(a, o);
  for (; o < r1; o++) rows_kernel<L, 1, NT>(a, o);
}

template <class L>
void matvec(const MatvecArgs& a, int64_t r0, int64_t r1) {
  matvec_token_groups<by_token_count<rows<L, 1>, rows<L, 2>, rows<L, 3>, rows<L, 4>>>(a, r0, r1);
}

}  // namespace

void matvec_f32(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<LoadF32>(a, r0, r1); }
void matvec_f16(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<LoadF16>(a, r0, r1); }
void matvec_bf16(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<LoadBF16>(a, r0, r1); }

}  // namespace kite::kernels::cpu::avx2
KITE_END_TARGET

// ================================================================================ AVX-512 ========
KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

// Loaders: 16 weights of row p from element i, widened to fp32. The masked form loads only the
// lanes in m (no access past the row's end) and zeroes the others.
struct LoadF32 {
  static constexpr int kBytes = 4;
  static __m512 load(const uint8_t* p, int64_t i) { return _mm512_loadu_ps(reinterpret_cast<const float*>(p) + i); }
  static __m512 load(const uint8_t* p, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(p) + i);
  }
};
struct LoadF16 {
  static constexpr int kBytes = 2;
  static __m512 load(const uint8_t* p, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(p) + i)));
  }
  static __m512 load(const uint8_t* p, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(p) + i));
  }
};
struct LoadBF16 {
  static constexpr int kBytes = 2;
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 load(const uint8_t* p, int64_t i) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(p) + i)));
  }
  static __m512 load(const uint8_t* p, int64_t i, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(p) + i));
  }
};

// 16 activations from element off of a.x, or of a.xh widened (kXH: ActKind::F16).
template <bool kXH>
inline __m512 load_x(const MatvecArgs& a, int64_t off) {
  if constexpr (kXH) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xh + off)));
  else return _mm512_loadu_ps(a.x + off);
}
template <bool kXH>
inline __m512 load_x(const MatvecArgs& a, int64_t off, __mmask16 m) {
  if constexpr (kXH) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a.xh + off));
  else return _mm512_maskz_loadu_ps(m, a.x + off);
}

// Rows o, o + step, ..., o + (R-1) * step, all NT tokens; kPrefetch: each stream's next row is
// prefetched in software (StreamPlan::Interleaved); kXH: fp16 activations.
template <class L, int R, int NT, bool kPrefetch, bool kXH>
inline void rows_kernel(const MatvecArgs& a, int64_t o, int64_t step) {
  const int64_t n = a.n_in;
  const uint8_t* w[R];
  for (int r = 0; r < R; r++) w[r] = a.w + (o + r * step) * a.w_stride;
  __m512 acc[R][NT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if constexpr (kPrefetch) prefetch_next_rows<R, 16 * L::kBytes>(w, a.w_stride, i * L::kBytes);
    __m512 xv[NT];  // x[t][i .. i+16)
    for (int t = 0; t < NT; t++) xv[t] = load_x<kXH>(a, t * n + i);
    for (int r = 0; r < R; r++) {
      const __m512 wv = L::load(w[r], i);
      for (int t = 0; t < NT; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  if (i < n) {  // tail of n % 16 elements
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 xv[NT];
    for (int t = 0; t < NT; t++) xv[t] = load_x<kXH>(a, t * n + i, m);
    for (int r = 0; r < R; r++) {
      const __m512 wv = L::load(w[r], i, m);
      for (int t = 0; t < NT; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) a.y[t * a.n_out + o + r * step] = _mm512_reduce_add_ps(acc[r][t]);
}

// Every row and token is summed the same way whatever the plan and the number of tokens (one
// accumulator, 16 columns at a time), so a batch row gets the bits of a one-token step.
template <class L, int NT, bool kXH>
void rows(const MatvecArgs& a, int64_t r0, int64_t r1) {
  // 32 zmm registers: R*NT accumulators + NT x + 1 w. Interleaved, Zen 5: 2 tokens over 4 row
  // streams cost 1.65x a one-token step, over 8 1.32x.
  constexpr int R = NT <= 3 ? 8 : 4;
  if (stream_plan() == StreamPlan::Sequential) {
    if constexpr (NT <= 2) {
      // One row after the other: the single stream the hardware prefetcher follows best.
      for (int64_t o = r0; o < r1; o++) rows_kernel<L, 1, NT, false, kXH>(a, o, 0);
    } else {
      // 3-4 tokens do 3-4 FMAs per weight vector: R streams give the out-of-order core independent
      // work (one stream: 16 GB/s; R streams without prefetch: 30 GB/s, 2 threads, 4 tokens).
      for_row_streams<4>(r0, r1, [&](int64_t o, int64_t step) { rows_kernel<L, 4, NT, false, kXH>(a, o, step); },
                         [&](int64_t o) { rows_kernel<L, 1, NT, false, kXH>(a, o, 0); });
    }
    return;
  }
  // Zen 5, F32 teacher, verification passes (`bench --verify-batch`): 2-3 tokens with the
  // next-row prefetches cost 1.35x / 1.95x a one-token step, without them 1.25x / 1.47x (the
  // weights are re-read for every token from L1, the prefetches only add misses); 1 and 4 keep them.
  constexpr bool kPrefetch = NT == 1 || NT == 4;
  for_row_streams<R>(r0, r1, [&](int64_t o, int64_t step) { rows_kernel<L, R, NT, kPrefetch, kXH>(a, o, step); },
                     [&](int64_t o) { rows_kernel<L, 1, NT, kPrefetch, kXH>(a, o, 0); });
}

// 5-6 tokens (speculative verification) in one pass over the weights, 4 row streams with the
// next-row prefetches: each weight vector feeds NT FMAs, instead of two token groups whose second
// re-reads the block from L2 and widens it again. 24-28 accumulators: 7-8 tokens spill (and 2-3
// rows instead were slower than two groups). Zen 5, HF BF16 teacher, `bench --verify-batch`:
// 5 tokens 1.59x -> 1.40x a one-token step, 6 tokens 1.71x -> 1.59x. Interleaved plan only (the
// sequential one, Zen 3/4, keeps the token groups: not measured there).
template <class L, int NT, bool kXH>
void rows_wide(const MatvecArgs& a, int64_t r0, int64_t r1) {
  for_row_streams<4>(r0, r1, [&](int64_t o, int64_t step) { rows_kernel<L, 4, NT, true, kXH>(a, o, step); },
                     [&](int64_t o) { rows_kernel<L, 1, NT, true, kXH>(a, o, 0); });
}

template <class L, bool kXH = false>
void matvec(const MatvecArgs& a, int64_t r0, int64_t r1) {
  if ((a.n_tok == 5 || a.n_tok == 6) && stream_plan() == StreamPlan::Interleaved) {
    if (a.n_tok == 5) rows_wide<L, 5, kXH>(a, r0, r1);
    else rows_wide<L, 6, kXH>(a, r0, r1);
    return;
  }
  matvec_token_groups<by_token_count<rows<L, 1, kXH>, rows<L, 2, kXH>, rows<L, 3, kXH>, rows<L, 4, kXH>>>(a, r0, r1);
}

}  // namespace

void matvec_f32(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<LoadF32>(a, r0, r1); }
// F16 weights take fp16 activations (ActKind::F16, rounded once per call by round_row_f16), as
// llama.cpp does: fp32 x is as many bytes as two weights, and with rows of 5632 (ffn_down) x no
// longer stayed in L1 beside the weight stream (Zen 4, one 2048x5632 / 5632x2048 F16 matrix
// streamed from memory, 2 threads, alternating runs: 38.7 -> 51.4 and 21.8 -> 31.2 GB/s in the
// VM's fast state, +3-8% in its slow one). The rounding is x's relative 2^-11; F32 and BF16
// weights keep exact fp32 activations.
void matvec_f16(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<LoadF16, true>(a, r0, r1); }

void round_row_f16(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(out + i, m,
                             _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}
void matvec_bf16(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<LoadBF16>(a, r0, r1); }

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
