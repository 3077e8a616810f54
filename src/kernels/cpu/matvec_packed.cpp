// Matrix-vector products (decode path) for packed Q8_0 / Q4_0 weights (layout: packed_q.h) on
// AVX-512 VNNI, with the activations quantized to int8 blocks of 32 (quantize_act.cpp).
//
// A 16-row group is one 512-bit vector of int32 lanes, lane r = row r. Per block of 32 columns
// and token: 8 vpdpbusd, each multiplying 4 weight bytes of every row (one aligned 64-byte load)
// by the token's 4 activation bytes (an embedded broadcast), into two int32 chains (even and odd
// steps, halving the dependency chain); then one conversion and one FMA with d_w[row] * d_x:
//   y[row] += d_w[row] * d_x * (sum_j (w_j + zero) * x_j - zero * sum_j x_j)
// vpdpbusd takes the unsigned operand (weights: Q8_0 stored as q + 128, Q4_0 nibbles as q + 8)
// and the signed one (activations); the chains start at -zero * sum(x_block), which cancels the
// offset exactly. Every token's arithmetic is the same whatever the number of tokens in the call,
// so a batch row gets the bits of a one-token step (ExactBatchScope).
//
// Streams: R groups from distant parts of the thread's rows are read side by side (as the file
// layout kernels do, see for_row_streams), each a long contiguous run of records.
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/packed_q.h"

#if KITE_X86
#include "kernels/cpu/simd_x86.h"

KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

// How far ahead each stream is prefetched, in records (measured: 6, or 8 into L2, no faster).
constexpr int kPrefetchRecords = 3;

struct PackedQ8_0 {
  static constexpr int kZero = 128;
  static constexpr size_t kRecord = 1088, kBlockQ = 512;
  // Adds block q's products with token activations x (32 int8) to s0 / s1.
  static inline void block(const uint8_t* q, const int8_t* x, __m512i& s0, __m512i& s1) {
#pragma GCC unroll 4
    for (int c = 0; c < 8; c += 2) {
      s0 = dpbusd_bcast(s0, _mm512_load_si512(q + c * 64), x + 4 * c);
      s1 = dpbusd_bcast(s1, _mm512_load_si512(q + (c + 1) * 64), x + 4 * c + 4);
    }
  }
};

struct PackedQ4_0 {
  static constexpr int kZero = 8;
  static constexpr size_t kRecord = 576, kBlockQ = 256;
  // The high nibbles enter as 16 * q (raw & 0xf0, no shift per vector): their products, all
  // multiples of 16, go to s1 alone, which is divided by 16 exactly (one shift) at the end.
  static inline void block(const uint8_t* q, const int8_t* x, __m512i& s0, __m512i& s1) {
    const __m512i lo = _mm512_set1_epi8(0x0f), hi = _mm512_set1_epi8(char(0xf0));
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
      const __m512i raw = _mm512_load_si512(q + c * 64);
      s0 = dpbusd_bcast(s0, _mm512_and_si512(raw, lo), x + 4 * c);       // weights 4c..
      s1 = dpbusd_bcast(s1, _mm512_and_si512(raw, hi), x + 16 + 4 * c);  // 16+4c.., x16
    }
    s1 = _mm512_srai_epi32(s1, 4);
  }
};

// Groups g, g + step, ..., g + (R-1) * step, tokens 0..NT-1 of a.
// kPrefetch: each stream is prefetched kPrefetchRecords ahead in software (StreamPlan::Interleaved).
template <class D, int R, int NT, bool kPrefetch>
inline void groups_kernel(const MatvecArgs& a, int64_t g, int64_t step) {
  const int64_t nb = a.n_in / kQBlock;
  const size_t group_bytes = kPackRows * a.w_stride;
  const uint8_t* w[R];
  for (int r = 0; r < R; r++) w[r] = a.w + (g + r * step) * group_bytes;
  __m512 acc[R][NT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_ps();
  for (int64_t p = 0; p < nb / 2; p++) {
    if constexpr (kPrefetch)
      for (int r = 0; r < R; r++) prefetch_lines(w[r] + (p + kPrefetchRecords) * D::kRecord, D::kRecord);
    for (int j = 0; j < 2; j++) {
      const int64_t b = 2 * p + j;
      __m512i init[NT];
      __m512 dx[NT];
      for (int t = 0; t < NT; t++) {
        init[t] = _mm512_set1_epi32(-D::kZero * a.xq.s[t * nb + b]);
        dx[t] = _mm512_set1_ps(a.xq.d[t * nb + b]);
      }
      for (int r = 0; r < R; r++) {
        const uint8_t* rec = w[r] + p * D::kRecord;
        const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 32 * j)));
        const uint8_t* q = rec + kPackScaleBytes + j * D::kBlockQ;
        for (int t = 0; t < NT; t++) {
          __m512i s0 = init[t], s1 = _mm512_setzero_si512();
          D::block(q, a.xq.qs + t * a.n_in + b * kQBlock, s0, s1);
          acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_mul_ps(dw, dx[t]), acc[r][t]);
        }
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < NT; t++) _mm512_storeu_ps(a.y + t * a.n_out + (g + r * step) * kPackRows, acc[r][t]);
}

// Rows [r0, r1), multiples of 16 (the driver's chunks are, and packed matrices have n_out % 16
// == 0), for exactly NT tokens.
template <class D, int NT>
void groups(const MatvecArgs& a, int64_t r0, int64_t r1) {
  if (stream_plan() == StreamPlan::Sequential) {
    // One group after the other, one stream (Zen 4, 1 token: 37 -> 58 GB/s Q8_0, 38 -> 53 Q4_0).
    for (int64_t g = r0 / kPackRows; g < r1 / kPackRows; g++) groups_kernel<D, 1, NT, false>(a, g, 0);
    return;
  }
  constexpr int R = NT <= 2 ? 4 : 2;  // 2 or 8 streams for one token: 5-15% slower decode
  for_row_streams<R>(r0 / kPackRows, r1 / kPackRows, [&](int64_t g, int64_t step) { groups_kernel<D, R, NT, true>(a, g, step); },
                     [&](int64_t g) { groups_kernel<D, 1, NT, true>(a, g, 0); });
}

// 5-6 tokens (speculative verification) under the interleaved plan: one pass over the weights,
// 2 streams (4 spill). Zen 5, Q8_0 teacher, `bench --verify-batch`: 5 / 6 tokens 1.60x / 1.81x a
// one-token step -> 1.49x / 1.70x. (The sequential plan, Zen 3/4, keeps the token groups: not
// measured there.) More tokens: matvec_token_groups' L2-sized blocks (multiples of 64 rows, so
// 16-row groups stay whole; chunks start at multiples of 64 and end at n_out, a multiple of 16).
template <class D>
void matvec(const MatvecArgs& a, int64_t r0, int64_t r1) {
  if ((a.n_tok == 5 || a.n_tok == 6) && stream_plan() == StreamPlan::Interleaved) {
    if (a.n_tok == 5) groups<D, 5>(a, r0, r1);
    else groups<D, 6>(a, r0, r1);
    return;
  }
  matvec_token_groups<by_token_count<groups<D, 1>, groups<D, 2>, groups<D, 3>, groups<D, 4>>>(a, r0, r1);
}

}  // namespace

void matvec_packed_q8_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<PackedQ8_0>(a, r0, r1); }
void matvec_packed_q4_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<PackedQ4_0>(a, r0, r1); }

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
