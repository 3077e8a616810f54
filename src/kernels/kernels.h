// The compute kernels the model calls. Each op has a scalar reference in kernels/ref (the test
// oracle); kernels/cpu holds SIMD versions chosen at run time by CPU features. The entry points
// here dispatch to the best available implementation (see dispatch.cpp).
//
// Layout conventions: activations are row-major [n_tok][n], float32. A weight W has
// ne = {n_in, n_out} (n_out rows of n_in elements) in any type of the quant table.
//
// Threads: matmul splits output rows over the OpenMP team (omp_get_max_threads(); it runs on the
// calling thread alone when called from inside a parallel region or when the matrix is tiny).
// The element-wise ops are single-threaded: they are called on vectors of a few thousand floats.
#pragma once
#include <cstdint>
#include <memory>
#include <span>

#include "core/tensor.h"

namespace kite::kernels {

// y[t][o] = sum_i W[o][i] * x[t][i]   for t < n_tok, o < n_out.   x: [n_tok][n_in], y: [n_tok][n_out]
// x and y need no particular alignment and must not overlap.
// Precision: F32/F16/BF16 weights are computed in fp32 (error ~1e-6 of sum|w*x|), except that at
// the AVX-512 level the matvec path of F16 weights rounds the activations to fp16 first (as
// llama.cpp does; relative 2^-11 per activation, see cpu/matvec_float.cpp). For Q8_0/Q4_0
// weights the activations are quantized to int8 in blocks of 32 (one fp32 scale per block, as
// llama.cpp does with an fp16 one) and dotted in integers, adding at most 0.5*amax_block/127*sum|w|
// per block: a relative RMS error of ~5e-3 on Gaussian data, ~1e-2 with 1% 10x outliers, about the
// Q8_0 weights' own error and 10-20x below Q4_0's (test Int8ActivationErrorIsBelowWeight...).
// (AVX2 level: int8 activations in matvec only; its GEMM keeps fp32 activations.)
void matmul(const Tensor& W, const float* x, float* y, int n_tok);

// Several products of the same input, y_i = W_i x (q/k/v, gate/up): the same bits as one matmul
// call per output, in one parallel region with the activations prepared once, when every W_i has
// the same kernels and the decode path (matvec) is taken; otherwise one call after the other.
// Decode runs ~7 matmuls per layer; the small ones (k, v: 256 rows in a 1.1B model) streamed at
// half the rate of the large ones, and each call wakes the thread team.
struct MatmulOut {
  const Tensor* W;  // {n_in, n_out}; n_in the same for all
  float* y;         // [n_tok][n_out]
};
void matmul_shared_input(std::span<const MatmulOut> outs, const float* x, int n_tok);

// W's weights re-laid out for the active level's matmul kernels ("packed"): packed_bytes(W) is
// their size (W's own size), or 0 when that level has no such layout for W's type and shape;
// pack_into writes them to dst (64-byte aligned). Point W.packed at the result and keep it alive
// as long as W: matmul then reads it whenever that level is active, and W.data otherwise (a lower
// level chosen later, or the reference). Results equal the file-layout kernels' up to fp32
// summation order.
//  - AVX-512, Q8_0/Q4_0 with n_out % 16 == 0 and n_in % 64 == 0: 16 rows interleaved
//    (cpu/packed_q.h).
//  - F32/F16/BF16 where transparent huge pages are possible: a plain copy, same layout. Placed on
//    huge pages (the loader puts every packed matrix in one such arena), it streams faster than
//    the file mapping's 4 KiB pages, which stop the hardware prefetchers at every page boundary
//    (Zen 5, 2 threads: TinyLlama F16 decode 17 -> 22 tok/s).
size_t packed_bytes(const Tensor& W);
void pack_into(const Tensor& W, void* dst);
// Both in one: W's packed weights in their own allocation, or nullptr (packed_bytes(W) == 0).
std::shared_ptr<void> pack_weights(const Tensor& W);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]       (n elements; out may alias x)
void rmsnorm(float* out, const float* x, const float* w, int n, float eps);

// In-place softmax over n values.
void softmax(float* x, int n);

// SwiGLU: out[i] = gate[i] * sigmoid(gate[i]) * up[i]        (out may alias gate or up)
void silu_mul(float* out, const float* gate, const float* up, int n);

// sum_i a[i] * b[i]
float dot_f32(const float* a, const float* b, int n);

// y[i] += a * x[i]
void axpy(float* y, float a, const float* x, int n);

// out[i] = a[i] + b[i]                                        (out may alias a or b)
void add(float* out, const float* a, const float* b, int n);

// ---- exact small batches ----------------------------------------------------------------------
// Batched products and attention may round and sum in another order than one-token decode
// (GEMM engines, transposed score tiles). While an ExactBatchScope is alive on the calling
// thread, calls over at most kExactBatchTokens tokens use decode's arithmetic instead, so each
// token gets the same bits as when decoded alone. Speculative decoding verifies drafted tokens
// this way (its greedy output is then exactly the plain one); prompts and draft models, which
// need no such guarantee, keep the faster batched paths.
constexpr int kExactBatchTokens = 65;  // up to 64 drafted tokens + the pending one
class ExactBatchScope {
 public:
  ExactBatchScope();
  ~ExactBatchScope();
  ExactBatchScope(const ExactBatchScope&) = delete;
  ExactBatchScope& operator=(const ExactBatchScope&) = delete;

 private:
  bool prev_;
};
// True when a call over n_tok tokens must use decode's arithmetic (see ExactBatchScope).
bool exact_batch(int n_tok);

// ---- implementation selection ------------------------------------------------------------------
// Which family of SIMD kernels the entry points use. The default is the best the CPU supports;
// the environment variable KITE_KERNELS=ref|avx2|avx512 (read once, at first use) or
// set_kernel_level() pick a lower one, e.g. to test the fallbacks on a newer CPU.
enum class KernelLevel : int {
  Ref = 0,     // scalar reference code (the oracle)
  Avx2 = 1,    // x86-64 with AVX2 + FMA + F16C (Haswell / Zen 1 and later)
  Avx512 = 2,  // AVX-512 F/BW/VL/DQ + VNNI (Ice Lake / Zen 4 and later)
};
KernelLevel best_kernel_level();            // the highest level this CPU can run
KernelLevel kernel_level();                 // the level in use
// Selects a level; a level above best_kernel_level() is clamped to it. Returns the level now in
// use. Not thread-safe against concurrent kernel calls: set it before starting work.
KernelLevel set_kernel_level(KernelLevel level);
const char* kernel_level_name(KernelLevel level);
// Parses "ref", "avx2" or "avx512" (as in KITE_KERNELS); false for anything else.
bool kernel_level_from_name(const char* name, KernelLevel* level);

// How decode's matrix-vector kernels stream the weights from memory. The best pattern depends on
// the CPU's hardware prefetchers, so it is measured per machine type and chosen by CPU family
// (`kite bench --streams sequential,interleaved` compares them on a machine):
//  Interleaved: each thread reads R distant row streams side by side and prefetches each one a row
//    (or a few records) ahead in software. On the 2-core Xeon the kernels were first tuned on, one
//    stream per thread without help reached 40-55% of the read bandwidth, this ~90%. On Zen 5
//    (EPYC, family 0x1A) decode is 3-28% faster than with Sequential, attention at depth too.
//  Sequential: each thread reads its rows one after the other as one stream, no software prefetch.
//    On Zen 4 the hardware prefetcher follows one stream at ~30 GB/s per core; two or more
//    streams, or the prefetch instructions, cut that to 15-20 GB/s (F16, Q8_0, Q4_0 alike).
// The plan applies to the AVX-512 decode kernels (all weight types) and to attention's next-block
// prefetch; the AVX2 kernels keep the interleaved pattern (not measured on an AVX2-only AMD CPU).
// Default: Sequential on AMD family 0x19 (Zen 3/4), Interleaved elsewhere;
// KITE_STREAMS=interleaved|sequential (read at first use) or set_stream_plan() override it. Both
// give the same bits.
enum class StreamPlan : int { Interleaved = 0, Sequential = 1 };
StreamPlan stream_plan();
StreamPlan set_stream_plan(StreamPlan plan);  // returns the previous plan; set it before starting work
const char* stream_plan_name(StreamPlan plan);

// The arithmetic of prompt GEMMs (>= 10 tokens) with F16 weights.
//  Fp32: weights widened to fp32, fp32 FMA: exact products (the reference's arithmetic, reordered).
//  Bf16: weights and activations rounded to bf16 (8-bit significand), products summed in fp32 by
//    vdpbf16ps: twice the multiply-adds per cycle. Prompt processing of an F16 model is bound by
//    arithmetic, so this is ~1.5x faster; the rounding costs a few thousandths of a percent of
//    perplexity (README). Decode (matvec) is unchanged (fp16 activations x F16 weights).
// Default: Bf16 on CPUs with AVX512_BF16 (at the AVX-512 level), else Fp32 (the only choice there);
// KITE_F16_GEMM=fp32|bf16 (read at first use) or set_f16_gemm() override it.
enum class F16Gemm : int { Fp32 = 0, Bf16 = 1 };
F16Gemm f16_gemm();                 // the one in effect (Fp32 where the CPU has no AVX512_BF16)
F16Gemm set_f16_gemm(F16Gemm g);    // returns the previous one; set it before starting work
const char* f16_gemm_name(F16Gemm g);

namespace ref {
void matmul(const Tensor& W, const float* x, float* y, int n_tok);
void rmsnorm(float* out, const float* x, const float* w, int n, float eps);
void softmax(float* x, int n);
void silu_mul(float* out, const float* gate, const float* up, int n);
float dot_f32(const float* a, const float* b, int n);
void axpy(float* y, float a, const float* x, int n);
void add(float* out, const float* a, const float* b, int n);
}  // namespace ref

}  // namespace kite::kernels
