// Matrix-vector products for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) with Q8_K activations,
// AVX-512 VNNI.
//
// Activations: quantized once per call to Q8_K exactly as llama.cpp does (blocks of 256, one fp32
// scale, int8 quants, sums of every 16 quants). Pairing K-quant weights with Q8_K activations is
// what llama.cpp computes, so perplexities of K-quant files agree with its figures (the float
// reference path, kernels/ref, is exact and gives slightly different numbers).
//
// Every K-quant super-block of 256 weights is decoded into one common form:
//   w_e = a[j] * u_e - b[j],   u_e unsigned in [0, 63],   j = e / 16 (16 sub-blocks of 16)
// (Q4_K/Q5_K: a = d*sc, b = dmin*mn per 32; Q6_K: u = q + 32, b = 32 a; Q3_K: u = q + 4, b = 4 a;
// Q2_K: a = d*(sc & 15), b = dmin*(sc >> 4)). The dot with x_e = dx * q_e is then
//   dx * ( sum_j a[j] * sum_{e in j} u_e q_e  -  sum_j b[j] * bsum_j )
// vpdpbusd multiplies the unsigned u by the signed q directly; each int32 lane holds 4 products
// of one sub-block, so the lanes are scaled by a[j] in fp32 without horizontal sums.
// Q4_K, Q5_K and Q6_K are unpacked with vector shifts and masks; Q2_K and Q3_K (rarely used)
// are unpacked with scalar code into a buffer.
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "quant/k_quants_packing.h"

namespace kite::kernels::cpu {

// llama.cpp's quantize_row_q8_K rule: the value of largest magnitude maps to -127, quants round
// half to even and clip at 127, d = 1 / iscale. s receives the sums of each 16 quants.
void quantize_row_q8k(const float* x, int64_t n, int8_t* qs, float* d, int32_t* s) {
  for (int64_t i = 0; i < n / 256; i++) {
    const float* xb = x + i * 256;
    int8_t* q = qs + i * 256;
    float amax = 0, max = 0;
    for (int j = 0; j < 256; j++)
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    if (amax == 0) {
      std::memset(q, 0, 256);
      d[i] = 0;
      for (int k = 0; k < 16; k++) s[i * 16 + k] = 0;
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < 256; j++) {
      const float v = std::nearbyint(iscale * xb[j]);
      q[j] = static_cast<int8_t>(v > 127.0f ? 127 : v);
    }
    for (int k = 0; k < 16; k++) {
      int sum = 0;
      for (int j = 0; j < 16; j++) sum += q[16 * k + j];
      s[i * 16 + k] = sum;
    }
    d[i] = 1.0f / iscale;
  }
}

}  // namespace kite::kernels::cpu

#if KITE_X86
#include "kernels/cpu/simd_x86.h"

KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

using quant::unpack_scale_min_6bit;
using quant::unpack_scale_q3_k;

// One super-block in the common form.
struct Decoded {
  __m512i u[4];  // elements 64k .. 64k+63, unsigned bytes
  __m512 a, b;   // per sub-block of 16
};

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// a/b for the 8 sub-blocks of 32 of Q4_K/Q5_K, each repeated for its two halves of 16.
inline void affine_scales_6bit(const uint8_t* scales, float d, float dmin, Decoded& o) {
  alignas(64) float a[16], b[16];
  for (int j = 0; j < 8; j++) {
    int sc, mn;
    unpack_scale_min_6bit(scales, j, sc, mn);
    a[2 * j] = a[2 * j + 1] = d * sc;
    b[2 * j] = b[2 * j + 1] = dmin * mn;
  }
  o.a = _mm512_load_ps(a);
  o.b = _mm512_load_ps(b);
}

inline __m512i concat(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

struct Q4K {
  static constexpr size_t kBytes = sizeof(BlockQ4_K);
  static void decode(const uint8_t* p, Decoded& o) {
    const BlockQ4_K& b = *reinterpret_cast<const BlockQ4_K*>(p);
    const __m256i m = _mm256_set1_epi8(0x0f);
    for (int c = 0; c < 4; c++) {  // qs[32c + l]: element 64c + l (low nibble), 64c + 32 + l (high)
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * c));
      o.u[c] = concat(_mm256_and_si256(raw, m), _mm256_and_si256(_mm256_srli_epi16(raw, 4), m));
    }
    affine_scales_6bit(b.scales, f16(b.d), f16(b.dmin), o);
  }
};

struct Q5K {
  static constexpr size_t kBytes = sizeof(BlockQ5_K);
  static void decode(const uint8_t* p, Decoded& o) {
    const BlockQ5_K& b = *reinterpret_cast<const BlockQ5_K*>(p);
    const __m256i m = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    for (int c = 0; c < 4; c++) {  // bit 4 of element 64c + 32hi + l is bit 2c + hi of qh[l]
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * c));
      const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4);
      const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4);
      o.u[c] = concat(_mm256_or_si256(_mm256_and_si256(raw, m), h0),
                      _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m), h1));
    }
    affine_scales_6bit(b.scales, f16(b.d), f16(b.dmin), o);
  }
};

struct Q6K {
  static constexpr size_t kBytes = sizeof(BlockQ6_K);
  static void decode(const uint8_t* p, Decoded& o) {
    const BlockQ6_K& b = *reinterpret_cast<const BlockQ6_K*>(p);
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    // Chunk k = 2h + gg holds groups g = 2gg (bytes 0-31) and 2gg + 1 (bytes 32-63) of half h:
    // low bits: nibble gg of ql[64h + 32(g % 2) + l]; high bits: bits 2g..2g+1 of qh[32h + l].
    for (int h = 0; h < 2; h++) {
      const __m512i ql = _mm512_loadu_si512(b.ql + 64 * h);
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
      const __m512i qh2 = concat(qh, qh);
      for (int gg = 0; gg < 2; gg++) {
        const __m512i lo = _mm512_and_si512(_mm512_srli_epi16(ql, 4 * gg), m4);
        // shift the low 32 bytes by 2g = 4gg, the high 32 by 4gg + 2
        const __m512i cnt = _mm512_inserti64x4(_mm512_set1_epi16(short(4 * gg)), _mm256_set1_epi16(short(4 * gg + 2)), 1);
        const __m512i hi = _mm512_and_si512(_mm512_srlv_epi16(qh2, cnt), m2);
        o.u[2 * h + gg] = _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
      }
    }
    const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales))));
    o.a = _mm512_mul_ps(_mm512_set1_ps(f16(b.d)), sc);
    o.b = _mm512_mul_ps(o.a, _mm512_set1_ps(32.0f));
  }
};

struct Q3K {
  static constexpr size_t kBytes = sizeof(BlockQ3_K);
  static void decode(const uint8_t* p, Decoded& o) {
    const BlockQ3_K& b = *reinterpret_cast<const BlockQ3_K*>(p);
    alignas(64) uint8_t u[256];
    alignas(64) float a[16], bb[16];
    for (int e = 0; e < 256; e++) {
      const int h = e / 128, g = (e % 128) / 32, l = e % 32;
      const int low = (b.qs[32 * h + l] >> (2 * g)) & 3;
      u[e] = static_cast<uint8_t>(low + (((b.hmask[l] >> (4 * h + g)) & 1) ? 4 : 0));  // q + 4
    }
    const float d = f16(b.d);
    for (int j = 0; j < 16; j++) {
      a[j] = d * unpack_scale_q3_k(b.scales, j);
      bb[j] = 4 * a[j];
    }
    for (int k = 0; k < 4; k++) o.u[k] = _mm512_load_si512(u + 64 * k);
    o.a = _mm512_load_ps(a);
    o.b = _mm512_load_ps(bb);
  }
};

struct Q2K {
  static constexpr size_t kBytes = sizeof(BlockQ2_K);
  static void decode(const uint8_t* p, Decoded& o) {
    const BlockQ2_K& b = *reinterpret_cast<const BlockQ2_K*>(p);
    alignas(64) uint8_t u[256];
    alignas(64) float a[16], bb[16];
    for (int e = 0; e < 256; e++) u[e] = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const float d = f16(b.d), dmin = f16(b.dmin);
    for (int j = 0; j < 16; j++) {
      a[j] = d * (b.scales[j] & 0x0f);
      bb[j] = dmin * (b.scales[j] >> 4);
    }
    for (int k = 0; k < 4; k++) o.u[k] = _mm512_load_si512(u + 64 * k);
    o.a = _mm512_load_ps(a);
    o.b = _mm512_load_ps(bb);
  }
};

// Rows [r0, r1), NT tokens.
template <class D, int NT>
void rows(const MatvecArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.n_in / 256;
  // int32 lane L of a 64-element chunk k covers sub-block 4k + L/4.
  __m512i lane_sub[4];
  for (int k = 0; k < 4; k++)
    lane_sub[k] = _mm512_setr_epi32(4 * k, 4 * k, 4 * k, 4 * k, 4 * k + 1, 4 * k + 1, 4 * k + 1, 4 * k + 1, 4 * k + 2,
                                    4 * k + 2, 4 * k + 2, 4 * k + 2, 4 * k + 3, 4 * k + 3, 4 * k + 3, 4 * k + 3);
  const bool prefetch = stream_plan() == StreamPlan::Interleaved;  // Zen 4: faster without (kernels.h)
  for (int64_t o = r0; o < r1; o++) {
    const uint8_t* w = a.w + o * a.w_stride;
    __m512 acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
      if (prefetch) prefetch_lines(w + a.w_stride + i * D::kBytes, D::kBytes);  // the same block of the next row
      Decoded dec;
      D::decode(w + i * D::kBytes, dec);
      __m512 sa[4];
      for (int k = 0; k < 4; k++) sa[k] = _mm512_permutexvar_ps(lane_sub[k], dec.a);
      for (int t = 0; t < NT; t++) {
        const int8_t* xq = a.xq.qs + t * a.n_in + i * 256;
        __m512 s = _mm512_setzero_ps();
        for (int k = 0; k < 4; k++) {
          const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), dec.u[k], _mm512_loadu_si512(xq + 64 * k));
          s = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sa[k], s);
        }
        const __m512 bs = _mm512_cvtepi32_ps(_mm512_loadu_si512(a.xq.s + t * a.xq.s_per_tok + i * 16));
        s = _mm512_fnmadd_ps(dec.b, bs, s);
        acc[t] = _mm512_fmadd_ps(s, _mm512_set1_ps(a.xq.d[t * a.xq.d_per_tok + i]), acc[t]);
      }
    }
    for (int t = 0; t < NT; t++) a.y[t * a.n_out + o] = _mm512_reduce_add_ps(acc[t]);
  }
}

template <class D>
void matvec(const MatvecArgs& a, int64_t r0, int64_t r1) {
  matvec_token_groups<by_token_count<rows<D, 1>, rows<D, 2>, rows<D, 3>, rows<D, 4>>>(a, r0, r1);
}

}  // namespace

void matvec_q2_k(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q2K>(a, r0, r1); }
void matvec_q3_k(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q3K>(a, r0, r1); }
void matvec_q4_k(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q4K>(a, r0, r1); }
void matvec_q5_k(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q5K>(a, r0, r1); }
void matvec_q6_k(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q6K>(a, r0, r1); }

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
