// Matrix-vector products for Q4_1, Q5_0 and Q5_1 weights with int8 activations (AVX-512 VNNI,
// 256-bit operations).
//
// These are the older 32-element formats with an offset (Q4_1/Q5_1: x = d*q + m) or a fifth bit
// (Q5_0/Q5_1). llama.cpp multiplies them by activations rounded to int8 blocks of 32; doing the
// same here (the activations Q8_0/Q4_0 use: quantize_act.cpp) keeps perplexities of files in
// these types equal to llama.cpp's. Per block, with the activation block x = dx * qx, sum_x = sum qx:
//   Q4_1, Q5_1:  d * dx * sum(q * qx) + m * dx * sum_x
//   Q5_0:        d * dx * (sum(q * qx) - 16 * sum_x)
// q is unsigned (0..15 or 0..31), so vpdpbusd takes it directly.
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"

#if KITE_X86
#include "kernels/cpu/simd_x86.h"

KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// 32 unsigned 4-bit values in element order: low nibbles are elements 0-15, high nibbles 16-31.
inline __m256i nibbles(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0f);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(raw, m)),
                                 _mm_and_si128(_mm_srli_epi16(raw, 4), m), 1);
}
// Adds bit 4 of element j from bit j of qh.
inline __m256i with_fifth_bit(__m256i q, const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  return _mm256_or_si256(q, _mm256_maskz_mov_epi8(__mmask32(bits), _mm256_set1_epi8(16)));
}

struct Q41 {
  static constexpr size_t kBytes = sizeof(BlockQ4_1);
  // unsigned quants, scale, and the multiplier of sum_x
  static __m256i q(const uint8_t* p) { return nibbles(reinterpret_cast<const BlockQ4_1*>(p)->qs); }
  static float d(const uint8_t* p) { return f16(reinterpret_cast<const BlockQ4_1*>(p)->d); }
  static float off(const uint8_t* p, float d) { return f16(reinterpret_cast<const BlockQ4_1*>(p)->m); }
};
struct Q50 {
  static constexpr size_t kBytes = sizeof(BlockQ5_0);
  static __m256i q(const uint8_t* p) {
    const BlockQ5_0* b = reinterpret_cast<const BlockQ5_0*>(p);
    return with_fifth_bit(nibbles(b->qs), b->qh);
  }
  static float d(const uint8_t* p) { return f16(reinterpret_cast<const BlockQ5_0*>(p)->d); }
  static float off(const uint8_t*, float d) { return -16.0f * d; }
};
struct Q51 {
  static constexpr size_t kBytes = sizeof(BlockQ5_1);
  static __m256i q(const uint8_t* p) {
    const BlockQ5_1* b = reinterpret_cast<const BlockQ5_1*>(p);
    return with_fifth_bit(nibbles(b->qs), b->qh);
  }
  static float d(const uint8_t* p) { return f16(reinterpret_cast<const BlockQ5_1*>(p)->d); }
  static float off(const uint8_t* p, float) { return f16(reinterpret_cast<const BlockQ5_1*>(p)->m); }
};

inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <class D, int NT>
void rows(const MatvecArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.n_in / kQBlock;
  const bool prefetch = stream_plan() == StreamPlan::Interleaved;  // Zen 4: faster without (kernels.h)
  for (int64_t o = r0; o < r1; o++) {
    const uint8_t* w = a.w + o * a.w_stride;
    __m256 acc[NT];
    float offs[NT] = {};
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t* blk = w + b * D::kBytes;
      if (prefetch && (b & 1) == 0) prefetch_lines(blk + a.w_stride, 2 * D::kBytes);  // the next row
      const __m256i q = D::q(blk);
      const float d = D::d(blk), off = D::off(blk, d);
      for (int t = 0; t < NT; t++) {
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.qs + t * a.n_in + b * kQBlock));
        const float dx = a.xq.d[t * nb + b];
        const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, xq);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(d * dx), acc[t]);
        offs[t] += off * dx * float(a.xq.s[t * nb + b]);
      }
    }
    for (int t = 0; t < NT; t++) a.y[t * a.n_out + o] = hsum8(acc[t]) + offs[t];
  }
}

template <class D>
void matvec(const MatvecArgs& a, int64_t r0, int64_t r1) {
  matvec_token_groups<by_token_count<rows<D, 1>, rows<D, 2>, rows<D, 3>, rows<D, 4>>>(a, r0, r1);
}

}  // namespace

void matvec_q4_1(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q41>(a, r0, r1); }
void matvec_q5_0(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q50>(a, r0, r1); }
void matvec_q5_1(const MatvecArgs& a, int64_t r0, int64_t r1) { matvec<Q51>(a, r0, r1); }

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
