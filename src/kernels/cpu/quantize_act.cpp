// Activation quantization for the int8 dot products: blocks of 32 floats -> 32 int8 + fp32 scale.
//
// Every version computes bit-identical results (same operations, round-to-nearest-even), so the
// tests compare them exactly against quantize_row_q8_ref:
//   amax = max|x|,  d = amax / 127,  q = round_even(x * (1/d))  (0 when amax == 0),  s = sum q.
// q never reaches -128: |x * (1/d)| <= 127 * (1 + 2^-22) rounds to at most 127.
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_kernels.h"

#if KITE_X86
#include "kernels/cpu/simd_x86.h"
#endif

namespace kite::kernels::cpu {

void quantize_row_q8_ref(const float* x, int64_t n, int8_t* qs, float* d, int32_t* s) {
  for (int64_t b = 0; b < n / kQBlock; b++) {
    const float* xb = x + b * kQBlock;
    float amax = 0;
    for (int j = 0; j < kQBlock; j++) amax = std::fmax(amax, std::fabs(xb[j]));
    const float db = amax / 127.0f;
    const float id = db != 0 ? 1.0f / db : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < kQBlock; j++) {
      const int q = static_cast<int>(std::nearbyint(xb[j] * id));  // default rounding: to nearest even
      qs[b * kQBlock + j] = static_cast<int8_t>(q);
      sum += q;
    }
    d[b] = db;
    s[b] = sum;
  }
}

}  // namespace kite::kernels::cpu

#if KITE_X86
// ================================================================================== AVX2 =========
KITE_BEGIN_AVX2
namespace kite::kernels::cpu::avx2 {

void quantize_row_q8(const float* x, int64_t n, int8_t* qs, float* d, int32_t* s) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undoes the per-lane packs
  for (int64_t b = 0; b < n / kQBlock; b++) {
    const float* xb = x + b * kQBlock;
    __m256 v[4];  // the block: 4 x 8 floats
    for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(xb + 8 * i);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float db = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(db != 0 ? 1.0f / db : 0.0f);
    __m256i q[4];  // 4 x 8 int32
    for (int i = 0; i < 4; i++) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], id));
    // int32 -> int8 (values fit, so saturation never triggers)
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * kQBlock), _mm256_permutevar8x32_epi32(p, order));
    __m256i t = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i t4 = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0x4e));
    t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0xb1));
    d[b] = db;
    s[b] = _mm_cvtsi128_si32(t4);
  }
}

}  // namespace kite::kernels::cpu::avx2
KITE_END_TARGET

// ================================================================================ AVX-512 ========
KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

// One block: 32 floats -> 32 int8 (as a 256-bit vector), scale and sum.
inline __m256i quantize_block(const float* xb, float* d, int32_t* s) {
  const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  const float db = amax / 127.0f;
  const __m512 id = _mm512_set1_ps(db != 0 ? 1.0f / db : 0.0f);
  const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));
  const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
  *d = db;
  *s = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtsepi32_epi8(q0)), _mm512_cvtsepi32_epi8(q1), 1);
}

}  // namespace

void quantize_row_q8(const float* x, int64_t n, int8_t* qs, float* d, int32_t* s) {
  for (int64_t b = 0; b < n / kQBlock; b++)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * kQBlock), quantize_block(x + b * kQBlock, d + b, s + b));
}

// B tile of the int8 GEMM engine (gemm_q8.cpp): for each block of 32 along n_in, one record of
//   int8  q[8][nr][4]   group g holds elements 4g..4g+3 of each token: the micro-kernel
//                       broadcasts one token's 4 bytes against 16 rows' 4 bytes (vpdpbusd)
//   float dx[nr]        the tokens' block scales
//   int32 corr[nr]      -zero_point * sum(q): the weights are stored as q_w + zero_point, so
//                       sum (q_w + zp) * q = sum q_w * q + zp * sum q; starting the int32
//                       accumulator at corr cancels the zp term for free.
void pack_b_q8(const float* x, int64_t ldx, int nr, int64_t n_in, int zero_point, void* tile) {
  const int64_t rec = static_cast<int64_t>(nr) * (kQBlock + 8);  // bytes per block record
  for (int t = 0; t < nr; t++) {
    const float* xt = x + t * ldx;
    for (int64_t b = 0; b < n_in / kQBlock; b++) {
      uint8_t* r = static_cast<uint8_t*>(tile) + b * rec;
      float db;
      int32_t sb;
      const __m256i q = quantize_block(xt + b * kQBlock, &db, &sb);
      alignas(32) int32_t g[8];  // the 8 groups of 4 bytes
      _mm256_store_si256(reinterpret_cast<__m256i*>(g), q);
      for (int j = 0; j < 8; j++) std::memcpy(r + (j * nr + t) * 4, &g[j], 4);
      const int32_t corr = -zero_point * sb;
      std::memcpy(r + nr * kQBlock + t * 4, &db, 4);
      std::memcpy(r + nr * (kQBlock + 4) + t * 4, &corr, 4);
    }
  }
}

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
