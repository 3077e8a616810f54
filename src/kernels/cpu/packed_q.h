// Q8_0 / Q4_0 weights re-laid out for the AVX-512 kernels ("packed": 16 rows interleaved).
//
// Why: in the file layout a 34- or 18-byte block holds one row's 32 weights behind their fp16
// scale, so a decode kernel spends most of its instructions gathering misaligned blocks and
// spreading scales (~10 instructions per 68 bytes of Q8_0), and is limited by that rather than by
// memory. Interleaving 16 rows puts row r of a 32-column block in lane r of a 512-bit vector:
// one vpdpbusd then multiplies 16 rows by the same 4 activation bytes (an embedded broadcast),
// the block's 16 scales are one 32-byte load, and the 16 results need no horizontal sums
// (~21 instructions per 544 bytes of Q8_0). It is the A-panel layout of the int8 GEMM engine
// (gemm_q8.cpp) kept in memory, so the prompt path also repacks less.
//
// Layout: rows in groups of 16; group g holds rows 16g..16g+15 and occupies the same bytes as
// they did in the file (16 * row_bytes from g * 16 * row_bytes). Within a group, blocks go in
// pairs, one 64-byte aligned record per pair (two blocks of 16 rows, exactly their file bytes):
//   uint16 d[2][16]               fp16 scales, [block of the pair][row]
//   Q8_0: uint8 q[2][8][16][4]    [block][column group c][row][i]: weight 4c+i as q + 128 (1088 B)
//   Q4_0: uint8 q[2][4][16][4]    [block][c][row][i]: the file's nibble byte 4c+i: low nibble =
//                                 weight 4c+i, high nibble = weight 16+4c+i, value nibble - 8 (576 B)
// Only matrices with n_out % 16 == 0 and n_in % 64 == 0 are packed (every Llama-family shape);
// others stay in the file layout.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace kite::kernels::cpu {

constexpr int kPackRows = 16;
constexpr size_t kPackScaleBytes = 64;  // d[2][16] at the start of each record

// Bytes of one record (two blocks of 16 rows): 1088 for Q8_0, 576 for Q4_0; 0 for other types.
size_t packed_record_bytes(DType t);
// Whether W (type t, ne = {n_in, n_out}) has a packed layout.
bool packable(DType t, int64_t n_in, int64_t n_out);
// Writes the packed layout of w (n_out rows of row_bytes(t, n_in)) to out (as many bytes,
// 64-byte aligned). Threads over groups.
void pack_rows(DType t, const uint8_t* w, int64_t n_in, int64_t n_out, uint8_t* out);

}  // namespace kite::kernels::cpu
