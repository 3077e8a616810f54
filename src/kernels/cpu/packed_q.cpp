// Packing Q8_0 / Q4_0 rows into the interleaved layout (packed_q.h). Plain C++: it runs once per
// matrix at load time (~0.3 s for a 1 GB model on 2 threads).
#include "kernels/cpu/packed_q.h"

#include <cstring>

namespace kite::kernels::cpu {

size_t packed_record_bytes(DType t) {
  switch (t) {
    case DType::Q8_0: return 2 * kPackRows * sizeof(BlockQ8_0);
    case DType::Q4_0: return 2 * kPackRows * sizeof(BlockQ4_0);
    default: return 0;
  }
}

bool packable(DType t, int64_t n_in, int64_t n_out) {
  return packed_record_bytes(t) > 0 && n_in > 0 && n_in % 64 == 0 && n_out > 0 && n_out % kPackRows == 0;
}

void pack_rows(DType t, const uint8_t* w, int64_t n_in, int64_t n_out, uint8_t* out) {
  const size_t rb = row_bytes(t, n_in), rec_bytes = packed_record_bytes(t);
  const int64_t nb = n_in / 32, n_groups = n_out / kPackRows;
  const bool q8 = t == DType::Q8_0;
  const size_t block_bytes = q8 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
  const int n_cols = q8 ? 8 : 4;                       // 4-byte column groups per block
  const size_t q_bytes = size_t(n_cols) * kPackRows * 4;  // one block of 16 rows, without scales
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < n_groups; g++) {
    const uint8_t* src = w + g * kPackRows * rb;
    uint8_t* dst = out + g * kPackRows * rb;
    for (int64_t b = 0; b < nb; b++) {
      uint8_t* rec = dst + (b / 2) * rec_bytes;
      const int j = int(b % 2);
      for (int r = 0; r < kPackRows; r++) {
        const uint8_t* blk = src + r * rb + b * block_bytes;
        std::memcpy(rec + 2 * (kPackRows * j + r), blk, 2);  // fp16 scale
        uint8_t* q = rec + kPackScaleBytes + j * q_bytes + r * 4;
        for (int c = 0; c < n_cols; c++)
          for (int i = 0; i < 4; i++) q[c * kPackRows * 4 + i] = q8 ? uint8_t(blk[2 + 4 * c + i] ^ 0x80) : blk[2 + 4 * c + i];
      }
    }
  }
}

}  // namespace kite::kernels::cpu
