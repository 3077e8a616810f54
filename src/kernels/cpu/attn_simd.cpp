// AVX2 and AVX-512 flash-attention micro-kernels (see attn_micro.h for the buffers).
// Register blocking: scores_t computes 2 query rows x one key block (Bc = 64 keys) per pass, so
// each transposed key row loaded feeds two rows; pv accumulates 2 rows x up to 4 vectors of the
// head dimension over the whole block in registers, so each V row loaded feeds two rows and acc
// is read and written once per block. Tiles with few rows (decode) use scores_d instead: plain
// dot products against the untransposed keys, which avoids a transpose per block.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/attention.h"
#include "kernels/cpu/attn_micro.h"
#include "kernels/cpu/cpu_kernels.h"

#if KITE_X86
#include "kernels/cpu/simd_exp.h"
#include "kernels/cpu/simd_x86.h"

namespace {
constexpr int Bc = kite::kernels::kAttnKeyBlock;
static_assert(Bc == 64, "the micro-kernels hold one key block in 4 AVX-512 / 8 AVX2 vectors per row");
}  // namespace

// ================================================================================== AVX2 =========
KITE_BEGIN_AVX2
namespace kite::kernels::cpu::avx2 {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Half a key block (32 keys, 4 vectors) for rows r0 and r0 + 1 (R2 = 2) or r0 alone (R2 = 1).
template <int R2>
inline void scores_t_half(const float* Q, int hd, const float* Kt, int j0, float* S) {
  __m256 a[R2][4];
  for (int r = 0; r < R2; r++)
    for (int v = 0; v < 4; v++) a[r][v] = _mm256_setzero_ps();
  for (int d = 0; d < hd; d++) {
    const float* kt = Kt + size_t(d) * Bc + j0;
    const __m256 k0 = _mm256_loadu_ps(kt), k1 = _mm256_loadu_ps(kt + 8), k2 = _mm256_loadu_ps(kt + 16),
                 k3 = _mm256_loadu_ps(kt + 24);
    for (int r = 0; r < R2; r++) {
      const __m256 q = _mm256_broadcast_ss(Q + size_t(r) * hd + d);
      a[r][0] = _mm256_fmadd_ps(q, k0, a[r][0]);
      a[r][1] = _mm256_fmadd_ps(q, k1, a[r][1]);
      a[r][2] = _mm256_fmadd_ps(q, k2, a[r][2]);
      a[r][3] = _mm256_fmadd_ps(q, k3, a[r][3]);
    }
  }
  for (int r = 0; r < R2; r++)
    for (int v = 0; v < 4; v++) _mm256_storeu_ps(S + size_t(r) * Bc + j0 + 8 * v, a[r][v]);
}

void scores_t(const float* Q, int R, int hd, const float* Kt, float* S) {
  int r = 0;
  for (; r + 2 <= R; r += 2)
    for (int j0 = 0; j0 < Bc; j0 += 32) scores_t_half<2>(Q + size_t(r) * hd, hd, Kt, j0, S + size_t(r) * Bc);
  for (; r < R; r++)
    for (int j0 = 0; j0 < Bc; j0 += 32) scores_t_half<1>(Q + size_t(r) * hd, hd, Kt, j0, S + size_t(r) * Bc);
}

void scores_d(const float* Q, int R, int hd, const float* K, size_t k_stride, int nb, float* S) {
  for (int j = 0; j < nb; j++) {
    const float* k = K + j * k_stride;
    for (int r = 0; r < R; r++) {
      const float* q = Q + size_t(r) * hd;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      int d = 0;
      for (; d + 16 <= hd; d += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(k + d + 8), a1);
      }
      if (d < hd) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a0);
      S[size_t(r) * Bc + j] = hsum(_mm256_add_ps(a0, a1));
    }
  }
}

float row_max(const float* x, int n) {
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  float m = _mm_cvtss_f32(s);
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

float exp_sum(float* x, int n, float m) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 sv = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    _mm256_storeu_ps(x + i, e);
    sv = _mm256_add_ps(sv, e);
  }
  float s = hsum(sv);
  for (; i < n; i++) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  return s;
}

// Rows r0 (and r0 + 1 when R2 = 2), head-dim columns [d0, d0 + 8 NV).
template <int R2, int NV>
inline void pv_cols(const float* P, int nb, const float* V, size_t v_stride, int hd, const float* corr,
                    float* acc, int d0) {
  __m256 a[R2][NV];
  for (int r = 0; r < R2; r++) {
    const __m256 c = _mm256_set1_ps(corr[r]);
    for (int v = 0; v < NV; v++) a[r][v] = _mm256_mul_ps(c, _mm256_loadu_ps(acc + size_t(r) * hd + d0 + 8 * v));
  }
  for (int j = 0; j < nb; j++) {
    const float* vr = V + j * v_stride + d0;
    __m256 vv[NV];
    for (int v = 0; v < NV; v++) vv[v] = _mm256_loadu_ps(vr + 8 * v);
    for (int r = 0; r < R2; r++) {
      const __m256 p = _mm256_broadcast_ss(P + size_t(r) * Bc + j);
      for (int v = 0; v < NV; v++) a[r][v] = _mm256_fmadd_ps(p, vv[v], a[r][v]);
    }
  }
  for (int r = 0; r < R2; r++)
    for (int v = 0; v < NV; v++) _mm256_storeu_ps(acc + size_t(r) * hd + d0 + 8 * v, a[r][v]);
}

template <int R2>
inline void pv_rows(const float* P, int nb, const float* V, size_t v_stride, int hd, const float* corr, float* acc) {
  int d0 = 0;
  for (; d0 + 32 <= hd; d0 += 32) pv_cols<R2, 4>(P, nb, V, v_stride, hd, corr, acc, d0);
  for (; d0 < hd; d0 += 8) pv_cols<R2, 1>(P, nb, V, v_stride, hd, corr, acc, d0);
}

void pv(const float* P, int R, int nb, const float* V, size_t v_stride, int hd, const float* corr, float* acc) {
  int r = 0;
  for (; r + 2 <= R; r += 2)
    pv_rows<2>(P + size_t(r) * Bc, nb, V, v_stride, hd, corr + r, acc + size_t(r) * hd);
  for (; r < R; r++) pv_rows<1>(P + size_t(r) * Bc, nb, V, v_stride, hd, corr + r, acc + size_t(r) * hd);
}

void convert(DType t, const uint8_t* src, size_t src_stride, int nb, int hd, float* dst) {
  for (int j = 0; j < nb; j++) {
    const uint8_t* s = src + j * src_stride;
    float* o = dst + size_t(j) * hd;
    if (t == DType::F32) {
      for (int d = 0; d < hd; d += 8) _mm256_storeu_ps(o + d, _mm256_loadu_ps(reinterpret_cast<const float*>(s) + d));
    } else if (t == DType::F16) {
      for (int d = 0; d < hd; d += 8)
        _mm256_storeu_ps(o + d, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * d))));
    } else if (t == DType::BF16) {
      for (int d = 0; d < hd; d += 8) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * d)));
        _mm256_storeu_ps(o + d, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
      }
    } else {  // Q8_0 (attn_kv_type_supported guarantees hd % 32 == 0)
      const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(s);
      for (int k = 0; k < hd / QK8_0; k++) {
        const __m256 dv = _mm256_set1_ps(_cvtsh_ss(b[k].d));
        for (int i = 0; i < QK8_0; i += 8) {
          const __m256i qi = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b[k].qs + i)));
          _mm256_storeu_ps(o + k * QK8_0 + i, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(qi)));
        }
      }
    }
  }
}

}  // namespace

const AttnMicro kAttnMicro = {scores_t, scores_d, row_max, exp_sum, pv, convert, nullptr, nullptr};

}  // namespace kite::kernels::cpu::avx2
KITE_END_TARGET

// ================================================================================ AVX-512 ========
KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

inline __mmask16 tail_mask(int left) { return left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1); }

// A key block (64 keys, 4 vectors) for rows r0 and r0 + 1 (R2 = 2) or r0 alone (R2 = 1).
template <int R2>
inline void scores_t_rows(const float* Q, int hd, const float* Kt, float* S) {
  __m512 a[R2][4];
  for (int r = 0; r < R2; r++)
    for (int v = 0; v < 4; v++) a[r][v] = _mm512_setzero_ps();
  for (int d = 0; d < hd; d++) {
    const float* kt = Kt + size_t(d) * Bc;
    const __m512 k0 = _mm512_loadu_ps(kt), k1 = _mm512_loadu_ps(kt + 16), k2 = _mm512_loadu_ps(kt + 32),
                 k3 = _mm512_loadu_ps(kt + 48);
    for (int r = 0; r < R2; r++) {
      const __m512 q = _mm512_set1_ps(Q[size_t(r) * hd + d]);
      a[r][0] = _mm512_fmadd_ps(q, k0, a[r][0]);
      a[r][1] = _mm512_fmadd_ps(q, k1, a[r][1]);
      a[r][2] = _mm512_fmadd_ps(q, k2, a[r][2]);
      a[r][3] = _mm512_fmadd_ps(q, k3, a[r][3]);
    }
  }
  for (int r = 0; r < R2; r++)
    for (int v = 0; v < 4; v++) _mm512_storeu_ps(S + size_t(r) * Bc + 16 * v, a[r][v]);
}

void scores_t(const float* Q, int R, int hd, const float* Kt, float* S) {
  int r = 0;
  for (; r + 2 <= R; r += 2) scores_t_rows<2>(Q + size_t(r) * hd, hd, Kt, S + size_t(r) * Bc);
  for (; r < R; r++) scores_t_rows<1>(Q + size_t(r) * hd, hd, Kt, S + size_t(r) * Bc);
}

// Sums of four vectors at once: lane i of the result is the sum of a_i's 16 lanes (4 keys'
// dot products for about the cost of one and a half _mm512_reduce_add_ps).
inline __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  // Per 128-bit lane: [a0, a1, a2, a3] partial sums.
  const __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t01, t23, _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm512_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m128 l01 = _mm_add_ps(_mm512_castps512_ps128(u), _mm512_extractf32x4_ps(u, 1));
  const __m128 l23 = _mm_add_ps(_mm512_extractf32x4_ps(u, 2), _mm512_extractf32x4_ps(u, 3));
  return _mm_add_ps(l01, l23);
}

// 16 elements of a K/V row from element d, as fp32, for each cache element type. The F16/BF16
// widening is exact and Q8_0 computes d * float(q) exactly as convert() below does, so reading
// rows in place gives the same bits as converting the block first.
struct RowF32 {
  static __m512 load(const uint8_t* row, int d) { return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + d); }
};
struct RowF16 {
  static __m512 load(const uint8_t* row, int d) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d)));
  }
};
struct RowBF16 {
  static __m512 load(const uint8_t* row, int d) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
};
struct RowQ8_0 {  // d is a multiple of 16, so 16 elements never straddle two blocks of 32
  static __m512 load(const uint8_t* row, int d) { return _mm512_mul_ps(_mm512_set1_ps(scale(row, d)), unscaled(row, d)); }
  // The parts: the block's quants as floats, and its scale.
  static __m512 unscaled(const uint8_t* row, int d) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[d / QK8_0];
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + d % QK8_0))));
  }
  static float scale(const uint8_t* row, int d) { return _cvtsh_ss(reinterpret_cast<const BlockQ8_0*>(row)[d / QK8_0].d); }
};

// Calls f with the row loader of cache element type t (attn_kv_type_supported: Q8_0 rows hold
// whole blocks).
template <class F>
inline void with_row_loader(DType t, F&& f) {
  switch (t) {
    case DType::F16: f(RowF16{}); break;
    case DType::BF16: f(RowBF16{}); break;
    case DType::Q8_0: f(RowQ8_0{}); break;
    default: f(RowF32{}); break;
  }
}

// Rows r0 (and r0 + 1 when R2 = 2) against keys j .. j+3: each key vector is loaded (and
// widened) once for both rows.
template <class L, int R2>
__attribute__((always_inline)) inline void scores_group(const float* Q, int hd, const uint8_t* const* k, float* S) {
  __m512 a[R2][4];
  for (int r = 0; r < R2; r++)
    for (int kk = 0; kk < 4; kk++) a[r][kk] = _mm512_setzero_ps();
  for (int d = 0; d < hd; d += 16) {
    __m512 kv[4];
    for (int kk = 0; kk < 4; kk++) kv[kk] = L::load(k[kk], d);
    for (int r = 0; r < R2; r++) {
      const __m512 qv = _mm512_loadu_ps(Q + size_t(r) * hd + d);
      for (int kk = 0; kk < 4; kk++) a[r][kk] = _mm512_fmadd_ps(qv, kv[kk], a[r][kk]);
    }
  }
  for (int r = 0; r < R2; r++) _mm_storeu_ps(S + size_t(r) * Bc, reduce4(a[r][0], a[r][1], a[r][2], a[r][3]));
}

inline void prefetch_bytes(const uint8_t* p, size_t n) {
  for (size_t off = 0; off < n; off += 64) _mm_prefetch(reinterpret_cast<const char*>(p + off), _MM_HINT_T0);
}

// K_next (may be null): the next block's keys, fetched a few rows per group of 4 keys so that the
// prefetches are spread over the work (a burst of a whole block's lines filled the line-fill
// buffers and stalled the loop: ~30% of decode attention time).
template <class L>
void scores_rows(const float* Q, int R, int hd, const uint8_t* K, size_t k_stride, int nb, float* S,
                 const uint8_t* K_next = nullptr) {
  // Keys in groups of 4 from the block's start, the last group padded with copies of the last
  // key: every score is then summed the same way (its place in a group of 4) whatever nb is, so a
  // query gets the same bits in a one-token decode and in a batch that masks later keys.
  for (int j = 0; j < nb; j += 4) {
    const uint8_t* k[4];
    const uint8_t* kj = K + size_t(j) * k_stride;
    if (j + 4 <= nb) {
      for (int kk = 0; kk < 4; kk++) k[kk] = kj + kk * k_stride;
    } else {
      for (int kk = 0; kk < 4; kk++) k[kk] = K + size_t(std::min(j + kk, nb - 1)) * k_stride;
    }
    if (K_next) prefetch_bytes(K_next + j * k_stride, 4 * k_stride);
    // All four scores are stored, even past nb: S rows hold Bc floats (j + 3 < Bc) and nothing
    // reads past nb.
    int r = 0;
    for (; r + 2 <= R; r += 2) scores_group<L, 2>(Q + size_t(r) * hd, hd, k, S + size_t(r) * Bc + j);
    if (r < R) scores_group<L, 1>(Q + size_t(r) * hd, hd, k, S + size_t(r) * Bc + j);
  }
}

void scores_d(const float* Q, int R, int hd, const float* K, size_t k_stride, int nb, float* S) {
  scores_rows<RowF32>(Q, R, hd, reinterpret_cast<const uint8_t*>(K), k_stride * sizeof(float), nb, S);
}

constexpr int kQ8MaxHd = 256;  // the int8 path's largest head size (scores_q8 below)
void scores_q8(const float* Q, int R, int hd, const uint8_t* K, size_t k_stride, int nb, float* S,
               const uint8_t* K_next);

void scores_kv(DType t, const float* Q, int R, int hd, const uint8_t* K, size_t k_stride, int nb, float* S,
               const uint8_t* K_next) {
  if (t == DType::Q8_0 && hd % 64 == 0 && hd <= kQ8MaxHd) return scores_q8(Q, R, hd, K, k_stride, nb, S, K_next);
  with_row_loader(t, [&](auto row) { scores_rows<decltype(row)>(Q, R, hd, K, k_stride, nb, S, K_next); });
}

// ---- Q8_0 keys: int8 dot products -----------------------------------------------------------------
// The query rows are quantized to int8 per 32 elements (quantize_row_q8: x ~ dq * q, the
// activations' format of the Q8_0 matvec), so a score is sum_b dk_b * dq_b * (k_b . q_b) with
// the integer dot products done by vpdpbusd, as llama.cpp does for a Q8_0 cache: ~3x fewer
// instructions than widening every key element to fp32. vpdpbusd multiplies unsigned by signed
// bytes, so keys enter as k + 128 (one xor) and -128 * sum(q_b) starts block b's accumulator.
// Each score depends only on its key and query row (integer sums are exact, the float steps are
// per lane in a fixed order), so a query gets the same bits whatever the block length or the
// number of rows: the exact-batch guarantee holds. Head sizes that are a multiple of 64 (two
// blocks per 512-bit vector); others take the float path.
constexpr int kQ8Rows = 8;  // query rows quantized at a time

// Per 128-bit lane sums of four int32 vectors: lanes 0-7 (first block of a pair) in lo, lanes
// 8-15 (second block) in hi, key kk in element kk of each.
inline void reduce4_halves(__m512i a0, __m512i a1, __m512i a2, __m512i a3, __m128i* lo, __m128i* hi) {
  const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
  const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
  const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
  *lo = _mm_add_epi32(_mm512_castsi512_si128(u), _mm512_extracti32x4_epi32(u, 1));
  *hi = _mm_add_epi32(_mm512_extracti32x4_epi32(u, 2), _mm512_extracti32x4_epi32(u, 3));
}

// The fp16 scales of blocks 0 .. hd/32 - 1 of keys j .. j+15 of a Q8_0 block, as floats:
// d[b][j..j+15] (keys past nb repeat key nb - 1), one gather per block.
inline void gather_q8_scales_16(const uint8_t* rows, size_t stride, int nb, int n_blk, int j, float (*d)[Bc]) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i key = _mm512_min_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(j)), _mm512_set1_epi32(nb - 1));
  const __m512i off = _mm512_mullo_epi32(key, _mm512_set1_epi32(int(stride)));
  for (int b = 0; b < n_blk; b++) {
    // 4 bytes from the block's start: its fp16 scale in the low half (a row has >= 34 bytes).
    const __m512i w = _mm512_i32gather_epi32(off, rows + b * sizeof(BlockQ8_0), 1);
    _mm512_store_ps(d[b] + j, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w)));
  }
}
// The same for all Bc keys of the block.
inline void gather_q8_scales(const uint8_t* rows, size_t stride, int nb, int n_blk, float (*d)[Bc]) {
  for (int j = 0; j < Bc; j += 16) gather_q8_scales_16(rows, stride, nb, n_blk, j, d);
}

// Blocks 2p and 2p+1 of a Q8_0 row as one vector of 64 bytes, offset by 128 (unsigned).
inline __m512i key_pair(const uint8_t* row, int p) {
  const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + 2 * p;
  const __m512i v = _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)), 1);
  return _mm512_xor_si512(v, _mm512_set1_epi8(char(0x80)));
}

// Query rows quantized for the int8 scores, per pair p of blocks: the 64 bytes and the start of
// the accumulator (-128 * sum(q) of each block in the first lane of its half); per block, d.
struct QueryQ8 {
  alignas(64) int8_t qs[kQ8Rows][kQ8MaxHd];
  float d[kQ8Rows][kQ8MaxHd / 32];
  int32_t s[kQ8Rows][kQ8MaxHd / 32];
  __m512i init[kQ8Rows][kQ8MaxHd / 64];
};

// Rows r0 (and r0 + 1 when R2 = 2) of q against keys k[0..4): the integer dot products of each
// block, isum[r][b][kk] for the four keys.
template <int R2>
__attribute__((always_inline)) inline void block_dots_q8(const QueryQ8& q, int r0, int hd, const uint8_t* const* k,
                                                         int32_t (*isum)[kQ8MaxHd / 32][Bc], int j) {
  for (int p = 0; p < hd / 64; p++) {
    __m512i kv[4];
    for (int kk = 0; kk < 4; kk++) kv[kk] = key_pair(k[kk], p);
    for (int r = 0; r < R2; r++) {
      const int rr = r0 + r;
      const __m512i qv = _mm512_load_si512(q.qs[rr] + 64 * p);
      __m512i a[4];
      for (int kk = 0; kk < 4; kk++) a[kk] = _mm512_dpbusd_epi32(q.init[rr][p], kv[kk], qv);
      __m128i lo, hi;
      reduce4_halves(a[0], a[1], a[2], a[3], &lo, &hi);
      _mm_store_si128(reinterpret_cast<__m128i*>(isum[r][2 * p] + j), lo);
      _mm_store_si128(reinterpret_cast<__m128i*>(isum[r][2 * p + 1] + j), hi);
    }
  }
}

// Scores = sum over blocks b of float(isum_b) * (dk_b * dq_b), in block order, one fma per block
// (the first on a zero accumulator): per lane, so every score gets the same bits whatever nb,
// the key's place in its group or the number of rows.
void scores_q8(const float* Q, int R, int hd, const uint8_t* K, size_t k_stride, int nb, float* S,
               const uint8_t* K_next) {
  QueryQ8 q;
  const int n_blk = hd / 32;
  alignas(64) float dk[kQ8MaxHd / 32][Bc];
  bool have_dk = false;  // gathered after the first pass over the keys, which brings their lines in
  alignas(64) int32_t isum[2][kQ8MaxHd / 32][Bc];  // [row of the pair][block][key]
  // The groups of 4 fill keys up to nb rounded up to 4; the vector pass reads up to a multiple
  // of 16: defined zeros there (those scores are never read).
  const int filled = (nb + 3) / 4 * 4, read = (nb + 15) / 16 * 16;
  if (read > filled)
    for (auto& row : isum)
      for (int b = 0; b < n_blk; b++) std::fill(row[b] + filled, row[b] + read, 0);
  for (int r0 = 0; r0 < R; r0 += kQ8Rows) {
    const int nr = std::min(kQ8Rows, R - r0);
    for (int r = 0; r < nr; r++) {
      quantize_row_q8(Q + size_t(r0 + r) * hd, hd, q.qs[r], q.d[r], q.s[r]);
      for (int p = 0; p < hd / 64; p++)
        q.init[r][p] = _mm512_mask_set1_epi32(_mm512_maskz_set1_epi32(1, -128 * q.s[r][2 * p]), 1 << 8,
                                              -128 * q.s[r][2 * p + 1]);
    }
    for (int r = 0; r < nr; r += 2) {
      const int n2 = std::min(2, nr - r);
      // Keys in groups of 4, the last padded with copies of the last key (as scores_rows).
      for (int j = 0; j < nb; j += 4) {
        const uint8_t* k[4];
        for (int kk = 0; kk < 4; kk++) k[kk] = K + std::min(j + kk, nb - 1) * k_stride;
        if (K_next && r0 == 0 && r == 0) prefetch_bytes(K_next + j * k_stride, 4 * k_stride);
        if (n2 == 2) block_dots_q8<2>(q, r, hd, k, isum, j);
        else block_dots_q8<1>(q, r, hd, k, isum, j);
      }
      if (!have_dk) {
        gather_q8_scales(K, k_stride, nb, n_blk, dk);
        have_dk = true;
      }
      for (int rr = 0; rr < n2; rr++) {
        float* srow = S + size_t(r0 + r + rr) * Bc;
        for (int j = 0; j < nb; j += 16) {
          __m512 sc = _mm512_setzero_ps();
          for (int b = 0; b < n_blk; b++) {
            const __m512 w = _mm512_mul_ps(_mm512_load_ps(dk[b] + j), _mm512_set1_ps(q.d[r + rr][b]));
            sc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(isum[rr][b] + j)), w, sc);
          }
          _mm512_storeu_ps(srow + j, sc);  // S rows hold Bc floats; nothing reads past nb
        }
      }
    }
  }
}

float row_max(const float* x, int n) {
  __m512 mv = _mm512_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 16) mv = _mm512_max_ps(mv, _mm512_mask_loadu_ps(mv, tail_mask(n - i), x + i));
  return _mm512_reduce_max_ps(mv);
}

float exp_sum(float* x, int n, float m) {
  const __m512 mv = _mm512_set1_ps(m);
  __m512 sv = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mv));
    _mm512_mask_storeu_ps(x + i, k, e);
    sv = _mm512_add_ps(sv, _mm512_maskz_mov_ps(k, e));
  }
  return _mm512_reduce_add_ps(sv);
}

// acc[r][d0 .. d0 + 16 NV) = corr[r] * acc + sum_j weight(r, j, v) * L::load(V row j, d0 + 16 v):
// the P·V step for rows r < R2, one vector of values per 16 elements, loaded once for all rows.
template <class L, int R2, int NV, class Weight>
__attribute__((always_inline)) inline void pv_cols_by(int nb, const uint8_t* V, size_t v_stride, int hd,
                                                      const float* corr, float* acc, int d0, const uint8_t* V_next,
                                                      Weight weight) {
  __m512 a[R2][NV];
  for (int r = 0; r < R2; r++) {
    const __m512 c = _mm512_set1_ps(corr[r]);
    for (int v = 0; v < NV; v++) a[r][v] = _mm512_mul_ps(c, _mm512_loadu_ps(acc + size_t(r) * hd + d0 + 16 * v));
  }
  for (int j = 0; j < nb; j++) {
    const uint8_t* vr = V + j * v_stride;
    if (V_next) prefetch_bytes(V_next + j * v_stride, v_stride);
    __m512 vv[NV];
    for (int v = 0; v < NV; v++) vv[v] = L::load(vr, d0 + 16 * v);
    for (int r = 0; r < R2; r++)
      for (int v = 0; v < NV; v++) a[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(weight(r, j, v)), vv[v], a[r][v]);
  }
  for (int r = 0; r < R2; r++)
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(acc + size_t(r) * hd + d0 + 16 * v, a[r][v]);
}

template <class L, int R2, int NV>
inline void pv_cols(const float* P, int nb, const uint8_t* V, size_t v_stride, int hd, const float* corr,
                    float* acc, int d0, const uint8_t* V_next) {
  pv_cols_by<L, R2, NV>(nb, V, v_stride, hd, corr, acc, d0, V_next,
                        [&](int r, int j, int) { return P[size_t(r) * Bc + j]; });
}

// V_next (may be null): the next block's values, prefetched during the first pass over V.
template <class L, int R2>
inline void pv_rows(const float* P, int nb, const uint8_t* V, size_t v_stride, int hd, const float* corr, float* acc,
                    const uint8_t* V_next) {
  int d0 = 0;
  for (; d0 + 64 <= hd; d0 += 64, V_next = nullptr) pv_cols<L, R2, 4>(P, nb, V, v_stride, hd, corr, acc, d0, V_next);
  for (; d0 < hd; d0 += 16, V_next = nullptr) pv_cols<L, R2, 1>(P, nb, V, v_stride, hd, corr, acc, d0, V_next);
}

template <class L>
void pv_all(const float* P, int R, int nb, const uint8_t* V, size_t v_stride, int hd, const float* corr, float* acc,
            const uint8_t* V_next = nullptr) {
  int r = 0;
  for (; r + 2 <= R; r += 2, V_next = nullptr)
    pv_rows<L, 2>(P + size_t(r) * Bc, nb, V, v_stride, hd, corr + r, acc + size_t(r) * hd, V_next);
  for (; r < R; r++, V_next = nullptr)
    pv_rows<L, 1>(P + size_t(r) * Bc, nb, V, v_stride, hd, corr + r, acc + size_t(r) * hd, V_next);
}

// Q8_0 values: the block scale joins the probability (p * d, then * q) instead of each element
// (d * q, then * p). The products p * d of a block's 64 keys are formed first, vectorised (scales
// gathered 16 keys at a time), so the key loop is loads, conversions and FMAs with the weights
// broadcast from memory.
template <int R2, int NV>
inline void pv_q8_cols(const float (*pd)[kQ8MaxHd / 32][Bc], int nb, const uint8_t* V, size_t v_stride, int hd,
                       const float* corr, float* acc, int d0, const uint8_t* V_next) {
  struct Unscaled {  // the block's quants as floats; the scale is in pd
    static __m512 load(const uint8_t* row, int d) { return RowQ8_0::unscaled(row, d); }
  };
  pv_cols_by<Unscaled, R2, NV>(nb, V, v_stride, hd, corr, acc, d0, V_next,
                               [&](int r, int j, int v) { return pd[r][(d0 + 16 * v) / 32][j]; });
}

// Keys in chunks of 16: a chunk's scales are gathered (once, for the first pair of rows) just
// before its rows are used, so the gather touches lines the hardware prefetcher is already
// bringing in (gathering the whole block's scales first touched its 64 rows at once). Same
// bits: the same p * d products, and each accumulator still sums the keys in order (chunks after
// the first rescale it by 1, exactly).
void pv_q8(const float* P, int R, int nb, const uint8_t* V, size_t v_stride, int hd, const float* corr, float* acc,
           const uint8_t* V_next) {
  constexpr int kChunk = 16;
  const int n_blk = hd / 32;
  alignas(64) float dv[kQ8MaxHd / 32][Bc];
  alignas(64) float pd[2][kQ8MaxHd / 32][Bc];  // [row of the pair][block][key of the chunk]
  const float ones[2] = {1, 1};
  for (int r = 0; r < R; r += 2) {
    const int n2 = std::min(2, R - r);
    float* ar = acc + size_t(r) * hd;
    for (int j0 = 0; j0 < nb; j0 += kChunk) {
      const int nc = std::min(kChunk, nb - j0);
      if (r == 0) gather_q8_scales_16(V, v_stride, nb, n_blk, j0, dv);  // the chunk's scales
      for (int rr = 0; rr < n2; rr++)
        for (int b = 0; b < n_blk; b++)
          _mm512_store_ps(pd[rr][b], _mm512_mul_ps(_mm512_loadu_ps(P + size_t(r + rr) * Bc + j0), _mm512_load_ps(dv[b] + j0)));
      const float* cr = j0 == 0 ? corr + r : ones;
      const uint8_t* Vc = V + size_t(j0) * v_stride;
      const uint8_t* Vn = r == 0 && V_next ? V_next + size_t(j0) * v_stride : nullptr;
      int d0 = 0;
      for (; d0 + 64 <= hd; d0 += 64, Vn = nullptr) {
        if (n2 == 2) pv_q8_cols<2, 4>(pd, nc, Vc, v_stride, hd, cr, ar, d0, Vn);
        else pv_q8_cols<1, 4>(pd, nc, Vc, v_stride, hd, cr, ar, d0, Vn);
      }
      for (; d0 < hd; d0 += 16, Vn = nullptr) {
        if (n2 == 2) pv_q8_cols<2, 1>(pd, nc, Vc, v_stride, hd, cr, ar, d0, Vn);
        else pv_q8_cols<1, 1>(pd, nc, Vc, v_stride, hd, cr, ar, d0, Vn);
      }
    }
  }
}

void pv(const float* P, int R, int nb, const float* V, size_t v_stride, int hd, const float* corr, float* acc) {
  pv_all<RowF32>(P, R, nb, reinterpret_cast<const uint8_t*>(V), v_stride * sizeof(float), hd, corr, acc);
}

void pv_kv(DType t, const float* P, int R, int nb, const uint8_t* V, size_t v_stride, int hd, const float* corr,
           float* acc, const uint8_t* V_next) {
  if (t == DType::Q8_0 && hd <= kQ8MaxHd) return pv_q8(P, R, nb, V, v_stride, hd, corr, acc, V_next);
  with_row_loader(t, [&](auto row) { pv_all<decltype(row)>(P, R, nb, V, v_stride, hd, corr, acc, V_next); });
}

// The same row loaders, so a converted block holds exactly what the in-place kernels read.
void convert(DType t, const uint8_t* src, size_t src_stride, int nb, int hd, float* dst) {
  with_row_loader(t, [&](auto row) {
    for (int j = 0; j < nb; j++)
      for (int d = 0; d < hd; d += 16) _mm512_storeu_ps(dst + size_t(j) * hd + d, decltype(row)::load(src + j * src_stride, d));
  });
}

}  // namespace

const AttnMicro kAttnMicro = {scores_t, scores_d, row_max, exp_sum, pv, convert, scores_kv, pv_kv};

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
