// Internal interface of the SIMD kernels: the data layouts they exchange and the per-ISA function
// tables that dispatch.cpp selects from. Nothing here is visible to the model (see kernels.h).
//
// A matmul is computed by one of two paths, both driven by matmul.cpp:
//  * matvec (n_tok < GemmEngine::min_tok, decode): reads the weights straight from the file layout,
//    several rows at a time, all tokens per weight load. Memory-bound: the goal is to stream W once.
//  * GEMM (prompt): weights are repacked per (row panel, k block) into a small, L1-resident
//    "A panel"; activations are packed once per call into "B tiles" of nr tokens. A micro-kernel
//    computes mr rows x nr tokens at a time so that every weight load feeds nr tokens. Compute-bound.
//
// Each weight type is one TypeKernels row per ISA level: its matvec, the GEMM engine it uses and
// the function that repacks its rows into that engine's A-panel format. Adding a type (e.g. Q4_K)
// is a new row plus those functions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "kernels/kernels.h"

// ---- compiling code for an ISA the build does not assume ----------------------------------------
// The library is compiled for baseline x86-64; SIMD code is compiled for its ISA by wrapping it in
// KITE_BEGIN_<ISA> ... KITE_END_TARGET (every function defined in between gets the target
// attribute) and is only reached through the tables after a run-time CPU check. Keep standard
// library headers outside these regions so that no std:: inline function is compiled for a newer
// ISA (the linker could otherwise pick that copy for baseline callers).
#if defined(__x86_64__) || defined(_M_X64)
#define KITE_X86 1
#define KITE_ISA_AVX2 "avx2,fma,f16c,bmi,bmi2,popcnt,lzcnt"
#define KITE_ISA_AVX512 KITE_ISA_AVX2 ",avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512vnni"
#if defined(__clang__)
#define KITE_BEGIN_TARGET(isa) \
  _Pragma(KITE_STR(clang attribute push(__attribute__((target(isa))), apply_to = function)))
#define KITE_END_TARGET _Pragma("clang attribute pop")
#else
#define KITE_BEGIN_TARGET(isa) _Pragma("GCC push_options") _Pragma(KITE_STR(GCC target(isa)))
#define KITE_END_TARGET _Pragma("GCC pop_options")
#endif
#define KITE_STR(...) #__VA_ARGS__
#define KITE_BEGIN_AVX2 KITE_BEGIN_TARGET(KITE_ISA_AVX2)
#define KITE_BEGIN_AVX512 KITE_BEGIN_TARGET(KITE_ISA_AVX512)
// AVX-512 plus AVX512_BF16 (Zen 4, Cooper Lake, Sapphire Rapids): only the bf16 GEMM engine.
#define KITE_BEGIN_AVX512BF16 KITE_BEGIN_TARGET(KITE_ISA_AVX512 ",avx512bf16")
#endif

namespace kite::kernels::cpu {


// ---- activations quantized to int8 (matvec path of the int8 types) --------------------------------
// Blocks of 32 along n_in, one fp32 scale each: x ≈ d * q with q in [-127, 127] (never -128, so
// sign tricks and |q| fit in int8). The error per element is at most d/2 = amax_block/254.
constexpr int kQBlock = 32;
struct ActQ8 {
  int8_t* qs;   // [n_tok][n_in]
  float* d;     // [n_tok][n_in/32]
  int32_t* s;   // [n_tok][n_in/32]   sum of the block's q (for weights stored with a zero point)
  // Per-token strides of d and s; 0 means n_in/32 (the Q8 kind). The Q8K kind (K-quant weights,
  // llama.cpp's Q8_K: blocks of 256) has n_in/256 scales and n_in/16 sums per token.
  int64_t d_per_tok = 0, s_per_tok = 0;
};
using QuantizeRowFn = void (*)(const float* x, int64_t n, int8_t* qs, float* d, int32_t* s);
// Q8_K (n a multiple of 256): d per 256, s per 16, byte-identical to llama.cpp's quants.
void quantize_row_q8k(const float* x, int64_t n, int8_t* qs, float* d, int32_t* s);
void quantize_row_q8_ref(const float* x, int64_t n, int8_t* qs, float* d, int32_t* s);

// ---- matvec ---------------------------------------------------------------------------------------
struct MatvecArgs {
  const uint8_t* w;   // row o of W starts at w + o * w_stride
  size_t w_stride;    // bytes per weight row
  int64_t n_in;
  int64_t n_out;      // also the row stride of y
  const float* x;     // [n_tok][n_in]  float activations (F32/F16/BF16 weights)
  ActQ8 xq;           // quantized activations (Q8_0/Q4_0 weights)
  float* y;           // [n_tok][n_out]
  int n_tok;
  const uint16_t* xh = nullptr;  // [n_tok][n_in]  fp16 activations (ActKind::F16)
};
// Computes output rows [r0, r1) for all tokens.
using MatvecFn = void (*)(const MatvecArgs& a, int64_t r0, int64_t r1);

// The matvec kernels are register-blocked for up to kMatvecTokGroup tokens. More tokens (a
// speculative verification batch) are done in groups, each group running the full multi-stream
// kernel over a block of rows whose weights (~kMatvecBlockBytes) stay in L2 from one token group
// to the next, so W is still read from memory once. (Blocks of a few rows, one L1-sized block at a
// time, lost the streams: 5 tokens cost 2.1x a one-token pass instead of 1.3x.) Each output
// element is summed in the same order whatever the blocking, so the bits do not change.
constexpr int kMatvecTokGroup = 4;
constexpr size_t kMatvecBlockBytes = size_t(128) << 10;
constexpr int64_t kMatvecBlockAlign = 64;  // rows; keeps packed 16-row groups whole

// Rows per block of a matrix with rows of row_bytes bytes: a multiple of kMatvecBlockAlign.
inline int64_t matvec_block_rows(size_t row_bytes) {
  const int64_t rows = int64_t(kMatvecBlockBytes / (row_bytes ? row_bytes : 1));
  return rows < kMatvecBlockAlign ? kMatvecBlockAlign : rows / kMatvecBlockAlign * kMatvecBlockAlign;
}

inline MatvecArgs token_group(const MatvecArgs& a, int t0, int n) {
  const int64_t nb = a.n_in / kQBlock;
  MatvecArgs g = a;
  g.n_tok = n;
  g.y = a.y + t0 * a.n_out;
  if (a.x) g.x = a.x + t0 * a.n_in;
  if (a.xh) g.xh = a.xh + t0 * a.n_in;
  if (a.xq.qs) {
    const int64_t dn = a.xq.d_per_tok ? a.xq.d_per_tok : nb, sn = a.xq.s_per_tok ? a.xq.s_per_tok : nb;
    g.xq = {a.xq.qs + t0 * a.n_in, a.xq.d + t0 * dn, a.xq.s + t0 * sn, a.xq.d_per_tok, a.xq.s_per_tok};
  }
  return g;
}

// Rows [r0, r1) as R streams: pass j computes rows r0 + j + r * q (r < R, q = (r1 - r0) / R), so
// each stream walks a long contiguous stretch of W. Reading R distant sequential streams at once
// keeps more memory requests in flight than R neighbouring rows do (a 2-thread read of 1 GiB:
// ~26 GB/s as one stream per thread, ~45 GB/s as 4-8). Rows left over go one at a time (single).
template <int R, class Streams, class Single>
inline void for_row_streams(int64_t r0, int64_t r1, Streams streams, Single single) {
  const int64_t q = (r1 - r0) / R;
  for (int64_t j = 0; j < q; j++) streams(r0 + j, q);
  for (int64_t o = r0 + R * q; o < r1; o++) single(o);
}

// A kernel for 1..kMatvecTokGroup tokens from kernels register-blocked for exactly 1, 2, 3, 4.
template <MatvecFn F1, MatvecFn F2, MatvecFn F3, MatvecFn F4>
void by_token_count(const MatvecArgs& a, int64_t r0, int64_t r1) {
  static_assert(kMatvecTokGroup == 4, "one kernel per token count");
  switch (a.n_tok) {
    case 1: F1(a, r0, r1); break;
    case 2: F2(a, r0, r1); break;
    case 3: F3(a, r0, r1); break;
    default: F4(a, r0, r1); break;
  }
}

// Runs Group (a kernel for 1..kMatvecTokGroup tokens) over rows [r0, r1) and all tokens of a.
// r0 is where the caller's chunk starts; blocks start at r0 + a multiple of kMatvecBlockAlign.
template <MatvecFn Group>
void matvec_token_groups(const MatvecArgs& a, int64_t r0, int64_t r1) {
  if (a.n_tok <= kMatvecTokGroup) {
    Group(a, r0, r1);
    return;
  }
  const int64_t block = matvec_block_rows(a.w_stride);
  for (int64_t o = r0; o < r1; o += block) {
    const int64_t o1 = o + block < r1 ? o + block : r1;
    for (int t0 = 0; t0 < a.n_tok; t0 += kMatvecTokGroup)
      Group(token_group(a, t0, a.n_tok - t0 < kMatvecTokGroup ? a.n_tok - t0 : kMatvecTokGroup), o, o1);
  }
}

// ---- GEMM ---------------------------------------------------------------------------------------
// An engine is a micro-kernel with its two packed formats. A panels hold mr weight rows x kc
// (k0..k0+kc) in the engine's layout; B tiles hold nr tokens x all n_in.
struct GemmEngine {
  const char* name;
  // Fewest tokens for which this engine beats the matvec path. Both read W from memory once;
  // the engine computes 3-8x faster but first repacks every weight. Measured crossover on
  // TinyLlama shapes (1 thread): ~6 tokens for the int8 engine, ~10 for the fp32 one.
  int min_tok;
  int mr;   // weight rows per A panel (micro-kernel height)
  int nr;   // tokens per B tile (micro-kernel width); the last tile may have fewer
  int kc;   // k elements per A panel (multiple of 32): sized so the panel stays in L1
  size_t (*b_tile_bytes)(int nr, int64_t n_in);
  size_t (*b_offset)(int nr, int64_t k0);  // bytes from a tile's start to column k0 (k0 % 32 == 0)
  // Packs nr tokens x[t][0..n_in) (row stride ldx) into a B tile. zero_point: see TypeKernels.
  void (*pack_b)(const float* x, int64_t ldx, int nr, int64_t n_in, int zero_point, void* tile);
  size_t a_panel_bytes;  // bytes of one A panel (mr x kc)
  // y[t][r] (+)= sum_k A[r][k] * B[t][k] for r < rows, t < nr over the panel's kc columns; b points
  // at the tile's column k0. accumulate: add to y instead of overwriting it.
  void (*kernel)(const void* a, const void* b, int nr, int64_t kc, float* y, int64_t ldy, int rows,
                 bool accumulate);
};
// Packs rows [0, rows) (rows <= mr; missing rows become zeros) of W, columns [k0, k0 + kc), into an
// A panel. Row r starts at w + r * w_stride.
using PackAFn = void (*)(const uint8_t* w, size_t w_stride, int rows, int64_t k0, int64_t kc,
                         void* panel);

// How the activations are prepared for the matvec path.
// F16: the activations rounded to fp16 once per call (AVX-512 with F16 weights, as llama.cpp
// does): half the activation bytes per weight byte (see matvec_float.cpp).
enum class ActKind { F32, Q8, Q8K, F16 };

// One row of the kernel table: everything needed to multiply by weights of one type.
struct TypeKernels {
  DType type;
  ActKind act;              // matvec activation format
  MatvecFn matvec;
  const GemmEngine* gemm;   // nullptr: the GEMM path falls back to matvec over token groups
  PackAFn pack_a;           // rows of this type -> gemm's A panel
  int zero_point;           // int8 engine: weights are packed as unsigned q + zero_point
};

// The GEMM path, unless the caller asked for decode's arithmetic (kernels.h, ExactBatchScope).
inline bool uses_gemm(const TypeKernels& tk, int n_tok) {
  return tk.gemm && n_tok >= tk.gemm->min_tok && !exact_batch(n_tok);
}

// Everything one ISA level provides.
struct LevelKernels {
  const TypeKernels* types;
  int n_types;
  QuantizeRowFn quantize_row_q8;
  void (*rmsnorm)(float* out, const float* x, const float* w, int n, float eps);
  void (*softmax)(float* x, int n);
  void (*silu_mul)(float* out, const float* gate, const float* up, int n);
  float (*dot_f32)(const float* a, const float* b, int n);
  void (*axpy)(float* y, float a, const float* x, int n);
  void (*add)(float* out, const float* a, const float* b, int n);

  // Kernels for weights in this level's packed layout (Tensor::packed); none: n_packed == 0.
  const TypeKernels* packed = nullptr;
  int n_packed = 0;

  const TypeKernels* find(DType t) const {
    for (int i = 0; i < n_types; i++)
      if (types[i].type == t) return &types[i];
    return nullptr;
  }
  const TypeKernels* find_packed(DType t) const {
    for (int i = 0; i < n_packed; i++)
      if (packed[i].type == t) return &packed[i];
    return nullptr;
  }
};

// The table of the level in use (nullptr for the reference level); set by dispatch.cpp.
const LevelKernels* active_kernels();
// The kernels matmul uses for unpacked weights of `type` at level lk: lk.find(type), except F16 at
// the AVX-512 level when the prompt GEMM runs in bf16 (kernels.h, f16_gemm()).
const TypeKernels* find_kernels(const LevelKernels& lk, DType type);

// Runs a matmul with the kernels of one type (matmul.cpp): threads, scratch, path choice.
struct MatmulShape {
  const uint8_t* w;  // row o at w + o * w_stride
  size_t w_stride;
  int64_t n_in, n_out;
  const float* x;    // [n_tok][n_in]
  float* y;          // [n_tok][n_out]
  int n_tok;
};
void matmul_with(const LevelKernels& lk, const TypeKernels& tk, const MatmulShape& s);
// The matvec path for several shapes with the same x, n_in and n_tok (kernels::matmul_shared_input):
// the activations prepared once, every shape's row chunks in one parallel region.
void matvec_shared_input(const LevelKernels& lk, const TypeKernels& tk, std::span<const MatmulShape> shapes);

#if KITE_X86
// Per-ISA implementations, defined in the kernel files; the tables are in dispatch.cpp.
#define KITE_DECLARE_ISA_KERNELS                                                                  \
  void quantize_row_q8(const float* x, int64_t n, int8_t* qs, float* d, int32_t* s);               \
  void matvec_f32(const MatvecArgs& a, int64_t r0, int64_t r1);                                    \
  void matvec_f16(const MatvecArgs& a, int64_t r0, int64_t r1);                                    \
  void matvec_bf16(const MatvecArgs& a, int64_t r0, int64_t r1);                                   \
  void matvec_q8_0(const MatvecArgs& a, int64_t r0, int64_t r1);                                   \
  void matvec_q4_0(const MatvecArgs& a, int64_t r0, int64_t r1);                                   \
  extern const GemmEngine gemm_f32;                                                                \
  void pack_a_f32_from_f32(const uint8_t*, size_t, int, int64_t, int64_t, void*);                  \
  void pack_a_f32_from_f16(const uint8_t*, size_t, int, int64_t, int64_t, void*);                  \
  void pack_a_f32_from_bf16(const uint8_t*, size_t, int, int64_t, int64_t, void*);                 \
  void rmsnorm(float* out, const float* x, const float* w, int n, float eps);                      \
  void softmax(float* x, int n);                                                                   \
  void silu_mul(float* out, const float* gate, const float* up, int n);                            \
  float dot_f32(const float* a, const float* b, int n);                                            \
  void axpy(float* y, float a, const float* x, int n);                                             \
  void add(float* out, const float* a, const float* b, int n);

namespace avx2 {
KITE_DECLARE_ISA_KERNELS
// Without VNNI the quantized types use the fp32 engine, dequantizing while packing.
void pack_a_f32_from_q8_0(const uint8_t*, size_t, int, int64_t, int64_t, void*);
void pack_a_f32_from_q4_0(const uint8_t*, size_t, int, int64_t, int64_t, void*);
}  // namespace avx2
namespace avx512 {
KITE_DECLARE_ISA_KERNELS
// int8 engine (VNNI): weights packed as unsigned bytes, activations as signed int8.
extern const GemmEngine gemm_q8;
void pack_b_q8(const float* x, int64_t ldx, int nr, int64_t n_in, int zero_point, void* tile);
void pack_a_q8_from_q8_0(const uint8_t*, size_t, int, int64_t, int64_t, void*);
void pack_a_q8_from_q4_0(const uint8_t*, size_t, int, int64_t, int64_t, void*);
// Packed Q8_0/Q4_0 (packed_q.h, matvec_packed.cpp): decode kernels and their GEMM panels.
void matvec_packed_q8_0(const MatvecArgs& a, int64_t r0, int64_t r1);
void matvec_packed_q4_0(const MatvecArgs& a, int64_t r0, int64_t r1);
void pack_a_q8_from_packed_q8_0(const uint8_t*, size_t, int, int64_t, int64_t, void*);
void pack_a_q8_from_packed_q4_0(const uint8_t*, size_t, int, int64_t, int64_t, void*);
// Q4_1/Q5_0/Q5_1 with int8 activations (matvec_q_legacy.cpp).
void matvec_q4_1(const MatvecArgs& a, int64_t r0, int64_t r1);
void matvec_q5_0(const MatvecArgs& a, int64_t r0, int64_t r1);
void matvec_q5_1(const MatvecArgs& a, int64_t r0, int64_t r1);
// K-quants with Q8_K activations (matvec_kquant.cpp).
void matvec_q2_k(const MatvecArgs& a, int64_t r0, int64_t r1);
void matvec_q3_k(const MatvecArgs& a, int64_t r0, int64_t r1);
void matvec_q4_k(const MatvecArgs& a, int64_t r0, int64_t r1);
void matvec_q5_k(const MatvecArgs& a, int64_t r0, int64_t r1);
void matvec_q6_k(const MatvecArgs& a, int64_t r0, int64_t r1);
// x rounded to fp16 (nearest even), for ActKind::F16.
void round_row_f16(const float* x, int64_t n, uint16_t* out);
// bf16 engine (AVX512_BF16, gemm_f32.cpp): F16 weights and fp32 activations both rounded to bf16,
// products summed in fp32 (vdpbf16ps: twice the multiply-adds per cycle of fp32 FMA). Only on CPUs
// with AVX512_BF16, when kernels::f16_gemm() is Bf16.
extern const GemmEngine gemm_bf16;
void pack_a_bf16_from_f16(const uint8_t*, size_t, int, int64_t, int64_t, void*);
}  // namespace avx512
#endif

}  // namespace kite::kernels::cpu
