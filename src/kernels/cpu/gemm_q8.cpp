// int8 GEMM engine (prompt path) for Q8_0 and Q4_0 weights on AVX-512 VNNI.
//
// The activations are quantized once per call to int8 blocks of 32 with an fp32 scale (the B
// tiles, quantize_act.cpp: pack_b_q8); the weights' int8/int4 values are used as they are, so the
// only approximation is the activation rounding (see kernels.h).
//
// Micro-kernel: 16 weight rows (one zmm of int32 lanes, lane = row) x NR = 12 tokens. For each
// block of 32 columns and each group of 4 columns, one vpdpbusd multiplies the 16 rows' 4 weight
// bytes (one zmm load from the A panel) by one token's 4 activation bytes (an embedded broadcast
// from the B tile) and adds the 4 products into the row's lane: 64 multiply-adds per instruction,
// and each weight vector feeds 12 tokens. After the 8 groups of a block, each token's int32 lanes
// are converted and scaled by d_w[row] * d_x[token] into fp32 accumulators:
//   per block and token: 8 vpdpbusd + 3 fp32 ops (cvt, mul, fma).
// Registers: 12 int32 + 12 fp32 accumulators + weights + scales (of 32 zmm).
//
// vpdpbusd takes the unsigned operand from the register and the signed one from memory, so the
// weights are stored unsigned as q + zero_point (Q8_0: q + 128; Q4_0: the raw nibble, q + 8) and
// the int32 accumulators start at -zero_point * sum(x_block) (stored in the B tile), which cancels
// the offset exactly.
//
// A panel layout, per block of 32 columns (kARecord = 576 bytes, 64-byte aligned):
//   uint8 w[8][16][4]   group g: bytes 4g..4g+3 of each of the 16 rows (one zmm)
//   float dw[16]        the rows' block scales (0 for rows past the matrix edge)
// B tile layout: see pack_b_q8 (quantize_act.cpp), which quantizes and packs in one pass.
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/packed_q.h"

#if KITE_X86
#include "kernels/cpu/simd_x86.h"

KITE_BEGIN_AVX512
namespace kite::kernels::cpu::avx512 {
namespace {

constexpr int kMR = 16, kNR = 12;
constexpr int kKC = 1024;                       // A panel: 32 blocks x 576 B = 18 KiB (L1)
constexpr int kARecord = 8 * 16 * 4 + 16 * 4;  // bytes per block in the A panel
constexpr int kBPerToken = kQBlock + 8;        // bytes per block and token in a B tile

size_t b_tile_bytes(int nr, int64_t n_in) { return static_cast<size_t>(n_in / kQBlock) * nr * kBPerToken; }
size_t b_offset(int nr, int64_t k0) { return static_cast<size_t>(k0 / kQBlock) * nr * kBPerToken; }

// Stores group 4h+J of rows 0..15: lane J of z[0..3][h] (after the in-lane transpose below).
template <int J>
inline void store_group(uint8_t* rec, __m512i z[4][2], int h) {
  constexpr int sel = J | J << 2 | J << 4 | J << 6;
  const __m512i u = _mm512_shuffle_i32x4(z[0][h], z[1][h], sel), v = _mm512_shuffle_i32x4(z[2][h], z[3][h], sel);
  _mm512_store_si512(rec + (4 * h + J) * 64, _mm512_shuffle_i32x4(u, v, 0x88));
}

// Panel record of one block from 16 rows of 32 weight bytes, given as 8 vectors z[q][h]: lane i
// of z[q][h] holds bytes 16h..16h+15 (groups 4h..4h+3) of row 4q+i. Transposes the 16 x 8 matrix
// of 4-byte groups so that record vector g holds group g of rows 0..15.
inline void store_record(uint8_t* rec, __m512i z[4][2]) {
  // Within each vector, 4 lanes x 4 groups -> 4 groups x 4 rows: lane j = group 4h+j of rows 4q..4q+3.
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (int q = 0; q < 4; q++)
    for (int h = 0; h < 2; h++) z[q][h] = _mm512_permutexvar_epi32(idx, z[q][h]);
  for (int h = 0; h < 2; h++) {
    store_group<0>(rec, z, h);
    store_group<1>(rec, z, h);
    store_group<2>(rec, z, h);
    store_group<3>(rec, z, h);
  }
}

// Lanes 0..3 of a zmm from 16 bytes at each of p0..p3.
inline __m512i load_lanes(const uint8_t* p0, const uint8_t* p1, const uint8_t* p2, const uint8_t* p3) {
  __m512i z = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0)));
  z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1)), 1);
  z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p2)), 2);
  return _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p3)), 3);
}

// Rows past the matrix edge read this all-zero row segment (d = 0: they contribute nothing).
alignas(64) const uint8_t kZeroRow[kKC / kQBlock * sizeof(BlockQ8_0)] = {};

// Pointers to block k0/32 of the panel's 16 rows.
template <class Block>
inline void row_pointers(const uint8_t* w, size_t w_stride, int rows, int64_t k0, const uint8_t* rp[kMR]) {
  for (int r = 0; r < kMR; r++)
    rp[r] = r < rows ? w + r * w_stride + k0 / kQBlock * sizeof(Block) : kZeroRow;
}

template <int NR>
void micro_kernel(const uint8_t* a, const uint8_t* b, int64_t nb, float* y, int64_t ldy, int rows, bool accumulate) {
  constexpr int64_t kBRecord = NR * kBPerToken;  // bytes per block in this B tile
  __m512 f[NR];                                  // fp32 sums: 16 rows of token t
#pragma GCC unroll 16
  for (int t = 0; t < NR; t++) f[t] = _mm512_setzero_ps();
  for (int64_t blk = 0; blk < nb; blk++) {
    const uint8_t* ab = a + blk * kARecord;
    const uint8_t* bb = b + blk * kBRecord;
    prefetch_lines(bb + 2 * kBRecord, kBRecord);  // the B tile streams from L2
    const int32_t* corr = reinterpret_cast<const int32_t*>(bb + NR * (kQBlock + 4));
    const float* dx = reinterpret_cast<const float*>(bb + NR * kQBlock);
    __m512i acc[NR];  // int32 block sums: 16 rows of token t
#pragma GCC unroll 16
    for (int t = 0; t < NR; t++) acc[t] = _mm512_set1_epi32(corr[t]);
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) {
      const __m512i wv = _mm512_load_si512(ab + g * 64);
      const int32_t* xg = reinterpret_cast<const int32_t*>(bb + g * NR * 4);
#pragma GCC unroll 16
      for (int t = 0; t < NR; t++) acc[t] = dpbusd_bcast(acc[t], wv, xg + t);
    }
    const __m512 dw = _mm512_load_ps(reinterpret_cast<const float*>(ab + 512));
#pragma GCC unroll 16
    for (int t = 0; t < NR; t++)
      f[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t]), _mm512_mul_ps(dw, _mm512_set1_ps(dx[t])), f[t]);
  }
  const __mmask16 m = rows >= 16 ? 0xffff : static_cast<__mmask16>((1u << rows) - 1);
#pragma GCC unroll 16
  for (int t = 0; t < NR; t++) {
    float* yt = y + t * ldy;
    if (accumulate) f[t] = _mm512_add_ps(f[t], _mm512_maskz_loadu_ps(m, yt));
    _mm512_mask_storeu_ps(yt, m, f[t]);
  }
}

void kernel(const void* a, const void* b, int nr, int64_t kc, float* y, int64_t ldy, int rows, bool accumulate) {
  const uint8_t* A = static_cast<const uint8_t*>(a);
  const uint8_t* B = static_cast<const uint8_t*>(b);
  const int64_t nb = kc / kQBlock;
  switch (nr) {
    case 1: micro_kernel<1>(A, B, nb, y, ldy, rows, accumulate); break;
    case 2: micro_kernel<2>(A, B, nb, y, ldy, rows, accumulate); break;
    case 3: micro_kernel<3>(A, B, nb, y, ldy, rows, accumulate); break;
    case 4: micro_kernel<4>(A, B, nb, y, ldy, rows, accumulate); break;
    case 5: micro_kernel<5>(A, B, nb, y, ldy, rows, accumulate); break;
    case 6: micro_kernel<6>(A, B, nb, y, ldy, rows, accumulate); break;
    case 7: micro_kernel<7>(A, B, nb, y, ldy, rows, accumulate); break;
    case 8: micro_kernel<8>(A, B, nb, y, ldy, rows, accumulate); break;
    case 9: micro_kernel<9>(A, B, nb, y, ldy, rows, accumulate); break;
    case 10: micro_kernel<10>(A, B, nb, y, ldy, rows, accumulate); break;
    case 11: micro_kernel<11>(A, B, nb, y, ldy, rows, accumulate); break;
    default: micro_kernel<12>(A, B, nb, y, ldy, rows, accumulate); break;
  }
}

}  // namespace

void pack_a_q8_from_q8_0(const uint8_t* w, size_t w_stride, int rows, int64_t k0, int64_t kc, void* panel) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));  // q + 128 == q ^ 0x80 as a byte
  const uint8_t* rp[kMR];
  row_pointers<BlockQ8_0>(w, w_stride, rows, k0, rp);
  for (int64_t b = 0; b < kc / kQBlock; b++) {
    uint8_t* rec = static_cast<uint8_t*>(panel) + b * kARecord;
    const size_t off = b * sizeof(BlockQ8_0);
    float* dw = reinterpret_cast<float*>(rec + 512);
    for (int r = 0; r < kMR; r++) dw[r] = _cvtsh_ss(reinterpret_cast<const BlockQ8_0*>(rp[r] + off)->d);
    __m512i z[4][2];  // [row quad][half of the block]
    for (int q = 0; q < 4; q++)
      for (int h = 0; h < 2; h++) {
        const size_t o = off + 2 + 16 * h;  // qs after the 2-byte scale
        z[q][h] = _mm512_xor_si512(load_lanes(rp[4 * q] + o, rp[4 * q + 1] + o, rp[4 * q + 2] + o, rp[4 * q + 3] + o), flip);
      }
    store_record(rec, z);
  }
}

void pack_a_q8_from_q4_0(const uint8_t* w, size_t w_stride, int rows, int64_t k0, int64_t kc, void* panel) {
  const __m512i m = _mm512_set1_epi8(0x0f);
  const uint8_t* rp[kMR];
  row_pointers<BlockQ4_0>(w, w_stride, rows, k0, rp);
  for (int64_t b = 0; b < kc / kQBlock; b++) {
    uint8_t* rec = static_cast<uint8_t*>(panel) + b * kARecord;
    const size_t off = b * sizeof(BlockQ4_0);
    float* dw = reinterpret_cast<float*>(rec + 512);
    for (int r = 0; r < kMR; r++) dw[r] = _cvtsh_ss(reinterpret_cast<const BlockQ4_0*>(rp[r] + off)->d);
    __m512i z[4][2];  // [row quad][low / high nibbles]
    for (int q = 0; q < 4; q++) {
      const size_t o = off + 2;  // nibbles after the 2-byte scale
      const __m512i raw = load_lanes(rp[4 * q] + o, rp[4 * q + 1] + o, rp[4 * q + 2] + o, rp[4 * q + 3] + o);
      z[q][0] = _mm512_and_si512(raw, m);                         // elements 0..15, as bytes q + 8
      z[q][1] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m);  // elements 16..31
    }
    store_record(rec, z);
  }
}

// From the packed layout (packed_q.h), w at the start of a 16-row group (rows == 16) and k0 a
// multiple of 64: its records are this panel's blocks with fp16 scales, Q4_0's nibbles unsplit.
void pack_a_q8_from_packed_q8_0(const uint8_t* w, size_t, int, int64_t k0, int64_t kc, void* panel) {
  for (int64_t b = 0; b < kc / kQBlock; b++) {
    const int64_t bb = k0 / kQBlock + b;
    const uint8_t* rec = w + (bb / 2) * packed_record_bytes(DType::Q8_0);
    const uint8_t* q = rec + kPackScaleBytes + (bb % 2) * 512;
    uint8_t* dst = static_cast<uint8_t*>(panel) + b * kARecord;
    for (int g = 0; g < 8; g++) _mm512_store_si512(dst + g * 64, _mm512_load_si512(q + g * 64));
    _mm512_store_ps(dst + 512, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 32 * (bb % 2)))));
  }
}

void pack_a_q8_from_packed_q4_0(const uint8_t* w, size_t, int, int64_t k0, int64_t kc, void* panel) {
  const __m512i m = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < kc / kQBlock; b++) {
    const int64_t bb = k0 / kQBlock + b;
    const uint8_t* rec = w + (bb / 2) * packed_record_bytes(DType::Q4_0);
    const uint8_t* q = rec + kPackScaleBytes + (bb % 2) * 256;
    uint8_t* dst = static_cast<uint8_t*>(panel) + b * kARecord;
    for (int g = 0; g < 4; g++) {
      const __m512i raw = _mm512_load_si512(q + g * 64);
      _mm512_store_si512(dst + g * 64, _mm512_and_si512(raw, m));                               // weights 4g..
      _mm512_store_si512(dst + (4 + g) * 64, _mm512_and_si512(_mm512_srli_epi16(raw, 4), m));  // 16+4g..
    }
    _mm512_store_ps(dst + 512, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 32 * (bb % 2)))));
  }
}

const GemmEngine gemm_q8 = {"avx512-vnni-q8", 6, kMR, kNR, kKC, b_tile_bytes, b_offset, pack_b_q8,
                            static_cast<size_t>(kKC / kQBlock) * kARecord, kernel};

}  // namespace kite::kernels::cpu::avx512
KITE_END_TARGET
#endif  // KITE_X86
