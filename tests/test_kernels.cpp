// SIMD kernels against the scalar references, at every kernel level this CPU supports (so the AVX2
// fallbacks are exercised on AVX-512 machines too).
//
// Tolerances, per output y[t][o] (|w*x| sums use the dequantized weights):
//  * fp32 paths (F32/F16/BF16 weights, and Q8_0/Q4_0 where activations stay fp32):
//      |y - ref| <= 1e-5 * sum_i |w_oi * x_ti|            (reordered fp32 sums; n_in <= ~1e3)
//  * int8-activation paths (Q8_0/Q4_0: AVX-512 always, AVX2 in matvec): each activation is rounded
//    to a multiple of d_b = amax_b / 127 of its block, an error of at most d_b / 2, so
//      |y - ref| <= sum_b (d_b / 2) * sum_{i in b} |w_oi|  +  1e-5 * sum_i |w_oi * x_ti|
//  * fp16-activation path (F16 weights, AVX-512 matvec): each activation is rounded to fp16, an
//    error of at most 2^-11 |x| (+ 2^-25 for values in fp16's subnormal range), so
//      |y - ref| <= sum_i |w_oi| (2^-11 |x_ti| + 2^-25)  +  1e-5 * sum_i |w_oi * x_ti|
//  * bf16 GEMM (F16 weights, prompts, CPUs with AVX512_BF16 unless KITE_F16_GEMM=fp32): weight and
//    activation each rounded to bf16 (8-bit significand), a relative error of at most 2^-8 each,
//    so per product |w x - bf16(w) bf16(x)| <= (2^-7 + 2^-16) |w x|, and
//      |y - ref| <= (2^-7 + 2^-16) * sum_i |w_oi * x_ti|  +  1e-5 * sum_i |w_oi * x_ti|
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/huge_pages.h"
#include "core/tensor.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

using namespace kite;
namespace kk = kite::kernels;

namespace {

// Every SIMD level this CPU can run (the reference level is the oracle, not tested against itself).
std::vector<kk::KernelLevel> simd_levels() {
  std::vector<kk::KernelLevel> v;
  for (kk::KernelLevel l : {kk::KernelLevel::Avx2, kk::KernelLevel::Avx512})
    if (static_cast<int>(l) <= static_cast<int>(kk::best_kernel_level())) v.push_back(l);
  return v;
}

// Restores the kernel level when a test ends.
struct LevelGuard {
  kk::KernelLevel saved = kk::kernel_level();
  ~LevelGuard() { kk::set_kernel_level(saved); }
};

// Normal values with a per-row scale spread over two decades and a few 10x outliers, like
// trained weights and activations.
std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed, bool outliers = true) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  std::vector<float> m(rows * cols);
  for (int64_t r = 0; r < rows; r++) {
    const float scale = std::pow(10.0f, ud(rng));
    for (int64_t c = 0; c < cols; c++) {
      float v = nd(rng) * scale;
      if (outliers && rng() % 97 == 0) v *= 10;
      m[r * cols + c] = v;
    }
  }
  return m;
}

struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // [n_out][n_in] dequantized (what the kernels multiply by)
  Tensor t;
};

Weights make_weights(DType type, int64_t n_in, int64_t n_out, uint32_t seed) {
  Weights w;
  const std::vector<float> f = random_matrix(n_out, n_in, seed);
  const size_t rb = row_bytes(type, n_in);
  w.bytes.resize(rb * n_out + 64);
  w.deq.resize(n_in * n_out);
  for (int64_t o = 0; o < n_out; o++) {
    from_float(type, f.data() + o * n_in, w.bytes.data() + o * rb, n_in);
    to_float(type, w.bytes.data() + o * rb, w.deq.data() + o * n_in, n_in);
  }
  w.t.name = "test";
  w.t.type = type;
  w.t.n_dims = 2;
  w.t.ne = {n_in, n_out, 1, 1};
  w.t.data = w.bytes.data();
  w.t.nbytes = rb * n_out;
  return w;
}

bool is_int8_type(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }

// Whether matmul quantizes the activations to int8 for this type, level and token count: the
// matvec path of Q8_0/Q4_0 does; of the GEMM engines only the AVX-512 (VNNI) one does.
// F16 weights at the AVX-512 level take fp16 activations in matvec (not in the GEMM).
bool uses_f16_acts(DType t, kk::KernelLevel level, int n_tok) {
  if (t != DType::F16 || level != kk::KernelLevel::Avx512) return false;
  const kk::KernelLevel saved = kk::kernel_level();
  kk::set_kernel_level(level);
  const bool gemm = kk::cpu::uses_gemm(*kk::cpu::active_kernels()->find(t), n_tok);
  kk::set_kernel_level(saved);
  return !gemm;
}

// Whether matmul runs the bf16 GEMM engine for this type, level and token count.
bool uses_bf16_gemm(DType t, kk::KernelLevel level, int n_tok) {
  if (t != DType::F16 || level != kk::KernelLevel::Avx512 || kk::f16_gemm() != kk::F16Gemm::Bf16) return false;
  const kk::KernelLevel saved = kk::kernel_level();
  kk::set_kernel_level(level);
  const kk::cpu::TypeKernels* tk = kk::cpu::find_kernels(*kk::cpu::active_kernels(), t);
  const bool bf16 = kk::cpu::uses_gemm(*tk, n_tok) && tk->gemm == &kk::cpu::avx512::gemm_bf16;
  kk::set_kernel_level(saved);
  return bf16;
}

bool uses_int8_acts(DType t, kk::KernelLevel level, int n_tok) {
  if (!is_int8_type(t)) return false;
  if (level == kk::KernelLevel::Avx512) return true;
  const kk::KernelLevel saved = kk::kernel_level();
  kk::set_kernel_level(level);
  const bool gemm = kk::cpu::uses_gemm(*kk::cpu::active_kernels()->find(t), n_tok);
  kk::set_kernel_level(saved);
  return !gemm;
}

// Checks y against ref with the tolerance described at the top of the file.
void expect_matmul_close(const Weights& w, const float* x, const float* y, const float* ref, int n_tok,
                         bool int8_acts, const std::string& what, int act_block = 32, bool f16_acts = false,
                         bool bf16_gemm = false) {
  const int64_t n_in = w.t.ne[0], n_out = w.t.ne[1];
  int bad = 0;
  for (int t = 0; t < n_tok && bad < 5; t++) {
    const float* xt = x + t * n_in;
    std::vector<float> half_step(n_in, 0.0f);  // d_b / 2 of the block holding element i
    if (int8_acts)
      for (int64_t b = 0; b < n_in / act_block; b++) {
        float amax = 0;
        for (int j = 0; j < act_block; j++) amax = std::max(amax, std::fabs(xt[b * act_block + j]));
        for (int j = 0; j < act_block; j++) half_step[b * act_block + j] = amax / 127 / 2;
      }
    if (f16_acts)
      for (int64_t i = 0; i < n_in; i++) half_step[i] = std::ldexp(std::fabs(xt[i]), -11) + std::ldexp(1.0f, -25);
    for (int64_t o = 0; o < n_out && bad < 5; o++) {
      double sum_abs = 0, quant = 0;
      for (int64_t i = 0; i < n_in; i++) {
        const double wi = std::fabs(w.deq[o * n_in + i]);
        sum_abs += wi * std::fabs(xt[i]);
        quant += wi * half_step[i];
      }
      const double rel = bf16_gemm ? 1e-5 + std::ldexp(1.0, -7) + std::ldexp(1.0, -16) : 1e-5;
      const double tol = rel * sum_abs + quant * 1.0001 + 1e-30;
      const double err = std::fabs(double(y[t * n_out + o]) - ref[t * n_out + o]);
      if (!(err <= tol)) {
        ADD_FAILURE() << what << ": y[" << t << "][" << o << "] = " << y[t * n_out + o] << ", ref "
                      << ref[t * n_out + o] << ", |err| " << err << " > tol " << tol;
        bad++;
      }
    }
  }
}

constexpr float kSentinel = -12345.678f;

}  // namespace

// ---- matmul -----------------------------------------------------------------------------------

// All types x odd shapes x token counts, misaligned x and y (offset by one float), and a check that
// nothing outside y is written.
TEST(Kernels, MatmulMatchesReferenceAllTypesAndShapes) {
  LevelGuard guard;
  const DType types[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0};
  const int n_outs[] = {1, 3, 17, 33, 100};
  const int n_toks[] = {1, 2, 3, 5, 6, 8, 17, 64, 131};
  for (DType type : types) {
    // Quantized: odd numbers of blocks, one above the int8 GEMM's k block (1024). Float: odd sizes,
    // below, at and above the fp32 GEMM's k block (256) and the vector widths.
    const std::vector<int> n_ins = is_int8_type(type) ? std::vector<int>{32, 96, 288, 1056}
                                                      : std::vector<int>{1, 7, 33, 100, 257, 531};
    for (int n_in : n_ins)
      for (int n_out : n_outs) {
        const Weights w = make_weights(type, n_in, n_out, 1000u * n_in + n_out);
        for (int n_tok : n_toks) {
          const std::vector<float> xs = random_matrix(n_tok, n_in, 7u * n_tok + n_in);
          std::vector<float> xbuf(xs.size() + 1);
          float* x = xbuf.data() + 1;  // misaligned
          std::copy(xs.begin(), xs.end(), x);
          std::vector<float> ref(n_tok * n_out);
          kk::ref::matmul(w.t, x, ref.data(), n_tok);
          for (kk::KernelLevel level : simd_levels()) {
            kk::set_kernel_level(level);
            std::vector<float> ybuf(n_tok * n_out + 1 + 16, kSentinel);
            float* y = ybuf.data() + 1;  // misaligned
            kk::matmul(w.t, x, y, n_tok);
            const std::string what = std::string(dtype_name(type)) + " " + kk::kernel_level_name(level) +
                                     " n_in=" + std::to_string(n_in) + " n_out=" + std::to_string(n_out) +
                                     " n_tok=" + std::to_string(n_tok);
            expect_matmul_close(w, x, y, ref.data(), n_tok, uses_int8_acts(type, level, n_tok), what, 32,
                                uses_f16_acts(type, level, n_tok), uses_bf16_gemm(type, level, n_tok));
            EXPECT_EQ(ybuf[0], kSentinel) << what << ": wrote before y";
            for (size_t i = 1 + n_tok * n_out; i < ybuf.size(); i++)
              ASSERT_EQ(ybuf[i], kSentinel) << what << ": wrote past y";
          }
        }
      }
  }
}

// K-quants and Q4_1/Q5_0/Q5_1: at the AVX-512 level, activations are rounded to Q8_K (blocks of
// 256) or int8 blocks of 32 as llama.cpp does; the tolerance is the int8 one with those blocks.
// Other levels use the reference.
TEST(Kernels, MatmulKQuantsMatchReference) {
  LevelGuard guard;
  for (DType type : {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K})
    for (int n_in : {256, 768})
      for (int n_out : {1, 5, 37})
        for (int n_tok : {1, 2, 3, 4, 5, 9, 17}) {
          const Weights w = make_weights(type, n_in, n_out, 31u * n_in + n_out);
          const std::vector<float> xs = random_matrix(n_tok, n_in, 5u * n_tok + n_in);
          std::vector<float> xbuf(xs.size() + 1);
          float* x = xbuf.data() + 1;  // misaligned
          std::copy(xs.begin(), xs.end(), x);
          std::vector<float> ref(n_tok * n_out);
          kk::ref::matmul(w.t, x, ref.data(), n_tok);
          for (kk::KernelLevel level : simd_levels()) {
            kk::set_kernel_level(level);
            std::vector<float> ybuf(n_tok * n_out + 1 + 16, kSentinel);
            float* y = ybuf.data() + 1;
            kk::matmul(w.t, x, y, n_tok);
            const std::string what = std::string(dtype_name(type)) + " " + kk::kernel_level_name(level) +
                                     " n_in=" + std::to_string(n_in) + " n_out=" + std::to_string(n_out) +
                                     " n_tok=" + std::to_string(n_tok);
            const bool k_quant = dtype_traits(type).block_size == 256;
            expect_matmul_close(w, x, y, ref.data(), n_tok, level == kk::KernelLevel::Avx512, what, k_quant ? 256 : 32);
            EXPECT_EQ(ybuf[0], kSentinel) << what;
            for (size_t i = 1 + n_tok * n_out; i < ybuf.size(); i++) ASSERT_EQ(ybuf[i], kSentinel) << what;
          }
        }
}

// Large enough to run on several threads, with row counts that do not divide evenly.
TEST(Kernels, MatmulMultiThreadedShapes) {
  LevelGuard guard;
  for (DType type : {DType::F16, DType::Q8_0, DType::Q4_0})
    for (int n_tok : {1, 4, 5, 30}) {
      const int n_in = 512, n_out = 1000 + 7;
      const Weights w = make_weights(type, n_in, n_out, 77);
      const std::vector<float> x = random_matrix(n_tok, n_in, 78);
      std::vector<float> ref(n_tok * n_out), y(n_tok * n_out);
      kk::ref::matmul(w.t, x.data(), ref.data(), n_tok);
      for (kk::KernelLevel level : simd_levels()) {
        kk::set_kernel_level(level);
        kk::matmul(w.t, x.data(), y.data(), n_tok);
        expect_matmul_close(w, x.data(), y.data(), ref.data(), n_tok, uses_int8_acts(type, level, n_tok),
                            std::string(dtype_name(type)) + " " + kk::kernel_level_name(level) + " threaded", 32,
                            uses_f16_acts(type, level, n_tok), uses_bf16_gemm(type, level, n_tok));
      }
    }
}

// Restores the F16 prompt GEMM arithmetic when a test ends.
struct F16GemmGuard {
  kk::F16Gemm saved = kk::f16_gemm();
  ~F16GemmGuard() { kk::set_f16_gemm(saved); }
};

// The bf16 engine computes exactly what it claims: bf16(w) . bf16(x) summed in fp32, i.e. within
// fp32 reordering (1e-5 relative to sum |w x|) of that sum taken in double; odd n_in (a zero pair
// half), k blocks of 512 and their edge, tile widths 10, 11, 12 and 1 (37 = 3 x 12 + 1). With
// KITE_F16_GEMM's fp32 choice F16 prompts keep the fp32 tolerance.
TEST(Kernels, F16GemmBf16IsBf16RoundedProducts) {
  LevelGuard guard;
  F16GemmGuard gemm_guard;
  if (kk::best_kernel_level() != kk::KernelLevel::Avx512) GTEST_SKIP() << "needs AVX-512";
  kk::set_kernel_level(kk::KernelLevel::Avx512);
  kk::set_f16_gemm(kk::F16Gemm::Bf16);
  if (kk::f16_gemm() != kk::F16Gemm::Bf16) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  auto bf = [](float v) { return bf16_to_f32(f32_to_bf16(v)); };
  for (int n_in : {3, 64, 511, 513, 1100})
    for (int n_tok : {10, 12, 23, 37}) {
      const int n_out = 45;
      const Weights w = make_weights(DType::F16, n_in, n_out, 31u * n_in + n_tok);
      const std::vector<float> x = random_matrix(n_tok, n_in, 17u * n_tok + n_in);
      std::vector<float> y(n_tok * n_out);
      kk::matmul(w.t, x.data(), y.data(), n_tok);
      for (int t = 0; t < n_tok; t++)
        for (int o = 0; o < n_out; o++) {
          double want = 0, sum_abs = 0;
          for (int i = 0; i < n_in; i++) {
            const double p = double(bf(w.deq[o * n_in + i])) * bf(x[t * n_in + i]);
            want += p;
            sum_abs += std::fabs(p);
          }
          ASSERT_LE(std::fabs(y[t * n_out + o] - want), 1e-5 * sum_abs + 1e-30)
              << "n_in=" << n_in << " n_tok=" << n_tok << " y[" << t << "][" << o << "]";
        }
      kk::set_f16_gemm(kk::F16Gemm::Fp32);
      std::vector<float> ref(n_tok * n_out);
      kk::ref::matmul(w.t, x.data(), ref.data(), n_tok);
      kk::matmul(w.t, x.data(), y.data(), n_tok);
      expect_matmul_close(w, x.data(), y.data(), ref.data(), n_tok, false, "F16 fp32 GEMM");
      kk::set_f16_gemm(kk::F16Gemm::Bf16);
    }
}

// Called from inside a parallel region (e.g. per-head work), matmul runs on the calling thread.
TEST(Kernels, MatmulInsideParallelRegion) {
  LevelGuard guard;
  const Weights w = make_weights(DType::Q4_0, 256, 200, 5);
  const std::vector<float> x = random_matrix(8, 256, 6);
  std::vector<float> ref(8 * 200);
  kk::ref::matmul(w.t, x.data(), ref.data(), 8);
  std::vector<std::vector<float>> ys(4, std::vector<float>(8 * 200));
#pragma omp parallel for num_threads(4)
  for (int i = 0; i < 4; i++) kk::matmul(w.t, x.data(), ys[i].data(), 8);
  for (int i = 0; i < 4; i++)
    expect_matmul_close(w, x.data(), ys[i].data(), ref.data(), 8,
                        uses_int8_acts(DType::Q4_0, kk::kernel_level(), 8), "nested");
}

// The reference level is the reference code.
TEST(Kernels, RefLevelIsExactlyTheReference) {
  LevelGuard guard;
  ASSERT_EQ(kk::set_kernel_level(kk::KernelLevel::Ref), kk::KernelLevel::Ref);
  const Weights w = make_weights(DType::Q8_0, 64, 9, 3);
  const std::vector<float> x = random_matrix(3, 64, 4);
  std::vector<float> ref(27), y(27);
  kk::ref::matmul(w.t, x.data(), ref.data(), 3);
  kk::matmul(w.t, x.data(), y.data(), 3);
  EXPECT_EQ(ref, y);
}

TEST(Kernels, LevelSelectionClampsToTheCpu) {
  LevelGuard guard;
  const kk::KernelLevel best = kk::best_kernel_level();
  EXPECT_EQ(kk::set_kernel_level(kk::KernelLevel::Avx512), best);
  EXPECT_EQ(kk::kernel_level(), best);
  EXPECT_EQ(kk::set_kernel_level(kk::KernelLevel::Ref), kk::KernelLevel::Ref);
  EXPECT_STREQ(kk::kernel_level_name(kk::KernelLevel::Avx2), "avx2");
  kk::KernelLevel parsed = kk::KernelLevel::Ref;  // the names KITE_KERNELS accepts
  EXPECT_TRUE(kk::kernel_level_from_name("avx512", &parsed));
  EXPECT_EQ(parsed, kk::KernelLevel::Avx512);
  EXPECT_TRUE(kk::kernel_level_from_name("ref", &parsed));
  EXPECT_EQ(parsed, kk::KernelLevel::Ref);
  EXPECT_FALSE(kk::kernel_level_from_name("AVX2", &parsed));
  EXPECT_FALSE(kk::kernel_level_from_name(nullptr, &parsed));
  std::printf("[ info ] best kernel level on this CPU: %s\n", kk::kernel_level_name(best));
}

// What int8 activations cost in accuracy, next to what the weight format itself costs: relative
// RMS error of y against fp32 activations times the dequantized weights (activation error), and of
// the dequantized weights times fp32 activations against the original fp32 weights (weight error).
// Data: Gaussian, then Gaussian with 1% of the values 10x larger (outliers set a block's scale).
TEST(Kernels, Int8ActivationErrorIsBelowWeightQuantizationError) {
  LevelGuard guard;
  if (kk::best_kernel_level() < kk::KernelLevel::Avx2) GTEST_SKIP() << "no SIMD level";
  const int n_in = 2048, n_out = 256, n_tok = 8;
  for (bool outliers : {false, true}) {
    const std::vector<float> x = random_matrix(n_tok, n_in, 12, outliers);
    const std::vector<float> wf = random_matrix(n_out, n_in, 11, outliers);
    for (DType type : {DType::Q8_0, DType::Q4_0}) {
      const Weights w = make_weights(type, n_in, n_out, 11);  // same values as wf when outliers
      std::vector<uint8_t> wq(row_bytes(type, n_in) * n_out);
      std::vector<float> wd(n_in * n_out);
      quantize_rows(type, wf.data(), wq.data(), n_out, n_in);
      to_float(type, wq.data(), wd.data(), int64_t(n_in) * n_out);
      Tensor t = w.t;
      t.data = wq.data();
      for (kk::KernelLevel level : simd_levels())
        for (int nt : {1, n_tok}) {
          if (!uses_int8_acts(type, level, nt)) continue;
          kk::set_kernel_level(level);
          std::vector<float> ref(nt * n_out), y(nt * n_out);
          kk::ref::matmul(t, x.data(), ref.data(), nt);
          kk::matmul(t, x.data(), y.data(), nt);
          double e_act = 0, e_w = 0, norm = 0;
          for (int tk = 0; tk < nt; tk++)
            for (int o = 0; o < n_out; o++) {
              double exact = 0;  // original fp32 weights, fp32 activations
              for (int i = 0; i < n_in; i++) exact += double(wf[o * n_in + i]) * x[tk * n_in + i];
              const int k = tk * n_out + o;
              e_act += (double(y[k]) - ref[k]) * (double(y[k]) - ref[k]);
              e_w += (ref[k] - exact) * (ref[k] - exact);
              norm += exact * exact;
            }
          const double rel_act = std::sqrt(e_act / norm), rel_w = std::sqrt(e_w / norm);
          std::printf("[ info ] %-4s %-6s n_tok=%d %-13s relative RMS error: int8 activations %.2e, %s weights %.2e\n",
                      dtype_name(type), kk::kernel_level_name(level), nt, outliers ? "(outliers)" : "(gaussian)",
                      rel_act, dtype_name(type), rel_w);
          EXPECT_LT(rel_act, outliers ? 2e-2 : 8e-3);
          if (type == DType::Q4_0) {
            EXPECT_LT(rel_act, rel_w / 5);
          } else {
            EXPECT_LT(rel_act, rel_w * 1.5);
          }
        }
    }
  }
}

// ---- activation quantization --------------------------------------------------------------------

TEST(Kernels, QuantizeActivationsBitExactWithReference) {
  const int n = 32 * 41;
  std::vector<float> x = random_matrix(1, n, 21);
  for (int j = 0; j < 32; j++) x[5 * 32 + j] = 0.0f;       // an all-zero block
  x[7 * 32 + 3] = 1e-30f;                                    // a tiny one
  for (int j = 0; j < 32; j++) x[9 * 32 + j] = (j - 16) * 0.5f;  // exact ties at .5 steps
  std::vector<int8_t> q0(n), q1(n);
  std::vector<float> d0(n / 32), d1(n / 32);
  std::vector<int32_t> s0(n / 32), s1(n / 32);
  kk::cpu::quantize_row_q8_ref(x.data(), n, q0.data(), d0.data(), s0.data());
  for (int b = 0; b < n / 32; b++) {
    int32_t sum = 0;
    for (int j = 0; j < 32; j++) {
      EXPECT_GE(q0[b * 32 + j], -127);
      EXPECT_LE(std::fabs(x[b * 32 + j] - d0[b] * q0[b * 32 + j]), d0[b] * 0.5f * 1.0001f + 1e-38f);
      sum += q0[b * 32 + j];
    }
    EXPECT_EQ(sum, s0[b]);
  }
#if KITE_X86
  struct Impl { const char* name; kk::KernelLevel level; kk::cpu::QuantizeRowFn fn; };
  for (const Impl& impl : {Impl{"avx2", kk::KernelLevel::Avx2, kk::cpu::avx2::quantize_row_q8},
                           Impl{"avx512", kk::KernelLevel::Avx512, kk::cpu::avx512::quantize_row_q8}}) {
    if (impl.level > kk::best_kernel_level()) continue;
    impl.fn(x.data(), n, q1.data(), d1.data(), s1.data());
    EXPECT_EQ(q0, q1) << impl.name;
    EXPECT_EQ(d0, d1) << impl.name;
    EXPECT_EQ(s0, s1) << impl.name;
  }
#endif
}

// ---- element-wise ops -------------------------------------------------------------------------

namespace {
const int kSizes[] = {1, 2, 7, 8, 15, 16, 17, 31, 33, 100, 255, 2048 + 13, 5632};
}

TEST(Kernels, VectorOpsMatchReference) {
  LevelGuard guard;
  for (kk::KernelLevel level : simd_levels()) {
    kk::set_kernel_level(level);
    for (int n : kSizes) {
      const std::string what = std::string(kk::kernel_level_name(level)) + " n=" + std::to_string(n);
      const std::vector<float> a0 = random_matrix(1, n + 1, n), b0 = random_matrix(1, n + 1, n + 1);
      const float* a = a0.data() + 1;  // misaligned inputs
      const float* b = b0.data() + 1;

      double sum_abs = 0;
      for (int i = 0; i < n; i++) sum_abs += std::fabs(double(a[i]) * b[i]);
      EXPECT_NEAR(kk::dot_f32(a, b, n), kk::ref::dot_f32(a, b, n), 1e-6 * sum_abs + 1e-30) << "dot " << what;

      std::vector<float> y1(b, b + n), y2(b, b + n);
      kk::axpy(y1.data(), 0.37f, a, n);
      kk::ref::axpy(y2.data(), 0.37f, a, n);
      for (int i = 0; i < n; i++)
        ASSERT_NEAR(y1[i], y2[i], 1e-6f * (std::fabs(b[i]) + std::fabs(0.37f * a[i]))) << "axpy " << what;

      std::vector<float> s1(n), s2(n);
      kk::add(s1.data(), a, b, n);
      kk::ref::add(s2.data(), a, b, n);
      ASSERT_EQ(s1, s2) << "add " << what;

      kk::rmsnorm(s1.data(), a, b, n, 1e-5f);
      kk::ref::rmsnorm(s2.data(), a, b, n, 1e-5f);
      for (int i = 0; i < n; i++) ASSERT_NEAR(s1[i], s2[i], 1e-5f * std::fabs(s2[i]) + 1e-30f) << "rmsnorm " << what;
      std::vector<float> inplace(a, a + n);  // out aliasing x
      kk::rmsnorm(inplace.data(), inplace.data(), b, n, 1e-5f);
      for (int i = 0; i < n; i++) ASSERT_NEAR(inplace[i], s2[i], 1e-5f * std::fabs(s2[i]) + 1e-30f) << "rmsnorm in place " << what;

      // Softmax over logits with a wide range (exp of large negative differences).
      std::vector<float> p1(n), p2(n);
      for (int i = 0; i < n; i++) p1[i] = p2[i] = a[i] * 3;
      kk::softmax(p1.data(), n);
      kk::ref::softmax(p2.data(), n);
      for (int i = 0; i < n; i++) ASSERT_NEAR(p1[i], p2[i], 2e-6f * p2[i] + 1e-37f) << "softmax " << what;

      // SwiGLU with gates from -100 to 100.
      std::vector<float> g(n), o1(n), o2(n);
      for (int i = 0; i < n; i++) g[i] = a[i] * 10;
      kk::silu_mul(o1.data(), g.data(), b, n);
      kk::ref::silu_mul(o2.data(), g.data(), b, n);
      for (int i = 0; i < n; i++) ASSERT_NEAR(o1[i], o2[i], 2e-6f * std::fabs(o2[i]) + 1e-30f) << "silu_mul " << what;
    }
  }
}

TEST(Kernels, SoftmaxAndSiluEdgeCases) {
  LevelGuard guard;
  for (kk::KernelLevel level : simd_levels()) {
    kk::set_kernel_level(level);
    // Masked attention scores: -inf must give exactly 0.
    std::vector<float> s(37);
    for (int i = 0; i < 37; i++) s[i] = i % 3 == 0 ? -INFINITY : 0.1f * i;
    kk::softmax(s.data(), 37);
    double total = 0;
    for (int i = 0; i < 37; i++) {
      if (i % 3 == 0) {
        EXPECT_EQ(s[i], 0.0f) << kk::kernel_level_name(level);
      }
      total += s[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-6);
    // One dominant value.
    std::vector<float> t = {0.0f, 1000.0f, -1000.0f, 3.0f};
    kk::softmax(t.data(), 4);
    EXPECT_EQ(t[1], 1.0f);
    EXPECT_EQ(t[2], 0.0f);
    // silu at extremes: -> 0 for very negative gates, -> gate for very positive ones.
    const float g[] = {-200.0f, -90.0f, 0.0f, 90.0f, 200.0f}, up[] = {1, 1, 1, 1, 1};
    float o[5];
    kk::silu_mul(o, g, up, 5);
    EXPECT_NEAR(o[0], 0.0f, 1e-30f);
    EXPECT_NEAR(o[1], 0.0f, 1e-30f);
    EXPECT_EQ(o[2], 0.0f);
    EXPECT_FLOAT_EQ(o[3], 90.0f);
    EXPECT_FLOAT_EQ(o[4], 200.0f);
  }
}

// Under ExactBatchScope a batch gives every token the bits of a one-token call (the int8 and
// fp32 GEMM engines would otherwise take batches of 6-10+ tokens and round differently).
namespace {
// Multiplies n_tok tokens by W under ExactBatchScope and checks each row against a one-token call
// (5-6 tokens: the float kernels' one-pass path; 40: token groups over L2 blocks).
void expect_exact_batch_matches_one_token_calls(const Tensor& W, uint32_t seed, const std::string& what, int n_tok = 40) {
  const int64_t n_in = W.ne[0], n_out = W.ne[1];
  const std::vector<float> x = random_matrix(n_tok, n_in, seed);
  std::vector<float> batch(n_tok * n_out), one(n_out);
  {
    kk::ExactBatchScope exact;
    kk::matmul(W, x.data(), batch.data(), n_tok);
  }
  for (int t = 0; t < n_tok; t++) {
    kk::matmul(W, x.data() + t * n_in, one.data(), 1);
    ASSERT_EQ(0, std::memcmp(one.data(), batch.data() + t * n_out, n_out * sizeof(float))) << what << " token " << t << " of " << n_tok;
  }
}
}  // namespace

TEST(Kernels, ExactBatchScopeMatchesOneTokenCalls) {
  LevelGuard guard;
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K})
    for (kk::KernelLevel level : simd_levels()) {
      kk::set_kernel_level(level);
      const Weights w = make_weights(type, 512, 300, 91);
      for (int n_tok : {5, 6, 40})
        expect_exact_batch_matches_one_token_calls(w.t, 92, std::string(dtype_name(type)) + " " + kk::kernel_level_name(level), n_tok);
      if (is_int8_type(type) || type == DType::Q4_K) continue;
      // Float rows with a tail (531 % 16 != 0) and an odd row count (the streams' leftovers).
      const Weights odd = make_weights(type, 531, 37, 93);
      for (int n_tok : {5, 6})
        expect_exact_batch_matches_one_token_calls(odd.t, 94, std::string(dtype_name(type)) + " " + kk::kernel_level_name(level) + " n_in=531", n_tok);
    }
}

// ---- packed weights (AVX-512 Q8_0/Q4_0, kernels/cpu/packed_q.h) ----------------------------------

// Packed matrices against the reference on the file layout: decode (1-4 tokens), token groups
// (5, 17), the GEMM path (64), shapes around the int8 GEMM's k block (1024); misaligned x and y.
// Also: a lower level chosen after packing reads the file layout and still matches.
TEST(Kernels, PackedWeightsMatchReference) {
  LevelGuard guard;
  if (kk::best_kernel_level() != kk::KernelLevel::Avx512) GTEST_SKIP() << "packed kernels need AVX-512";
  for (DType type : {DType::Q8_0, DType::Q4_0})
    for (int n_in : {64, 192, 1088, 2048})
      for (int n_out : {16, 48, 336}) {
        kk::set_kernel_level(kk::KernelLevel::Avx512);
        Weights w = make_weights(type, n_in, n_out, 77u * n_in + n_out);
        std::shared_ptr<void> packed = kk::pack_weights(w.t);
        ASSERT_TRUE(packed) << dtype_name(type) << " " << n_in << "x" << n_out;
        w.t.packed = packed.get();
        for (int n_tok : {1, 2, 3, 4, 5, 17, 64}) {
          const std::vector<float> xs = random_matrix(n_tok, n_in, 5u * n_tok + n_in);
          std::vector<float> xbuf(xs.size() + 1);
          float* x = xbuf.data() + 1;
          std::copy(xs.begin(), xs.end(), x);
          std::vector<float> ref(n_tok * n_out);
          kk::ref::matmul(w.t, x, ref.data(), n_tok);
          for (kk::KernelLevel level : simd_levels()) {
            kk::set_kernel_level(level);
            std::vector<float> ybuf(n_tok * n_out + 1 + 16, kSentinel);
            float* y = ybuf.data() + 1;
            kk::matmul(w.t, x, y, n_tok);
            const std::string what = std::string("packed ") + dtype_name(type) + " " + kk::kernel_level_name(level) +
                                     " n_in=" + std::to_string(n_in) + " n_out=" + std::to_string(n_out) +
                                     " n_tok=" + std::to_string(n_tok);
            expect_matmul_close(w, x, y, ref.data(), n_tok, uses_int8_acts(type, level, n_tok), what);
            EXPECT_EQ(ybuf[0], kSentinel) << what << ": wrote before y";
            for (size_t i = 1 + n_tok * n_out; i < ybuf.size(); i++) ASSERT_EQ(ybuf[i], kSentinel) << what << ": wrote past y";
          }
        }
      }
}

// Shapes and types without a packed layout stay in the file layout (pack_weights: nullptr).
TEST(Kernels, PackWeightsDeclinesOtherTypesAndShapes) {
  LevelGuard guard;
  if (kk::best_kernel_level() != kk::KernelLevel::Avx512) GTEST_SKIP() << "packed kernels need AVX-512";
  kk::set_kernel_level(kk::KernelLevel::Avx512);
  EXPECT_FALSE(kk::pack_weights(make_weights(DType::Q8_0, 96, 32, 1).t)) << "odd number of blocks";
  EXPECT_FALSE(kk::pack_weights(make_weights(DType::Q4_0, 64, 17, 1).t)) << "rows not a multiple of 16";

  EXPECT_FALSE(kk::pack_weights(make_weights(DType::Q4_K, 256, 32, 1).t)) << "no packed Q4_K";
  kk::set_kernel_level(kk::KernelLevel::Avx2);
  EXPECT_FALSE(kk::pack_weights(make_weights(DType::Q8_0, 64, 32, 1).t)) << "AVX2 has no packed layout";
}

// F32/F16/BF16 "packed" = a plain copy (moved onto huge pages), where huge pages are possible:
// the same bytes, and matmul through it gives exactly the bits of the file layout.
TEST(Kernels, FloatWeightsCopyGivesTheSameBits) {
  LevelGuard guard;
  for (DType type : {DType::F32, DType::F16, DType::BF16}) {
    Weights w = make_weights(type, 320, 48, 11);
    std::shared_ptr<void> copy = kk::pack_weights(w.t);
    if (!kite::huge_pages_possible()) {
      EXPECT_FALSE(copy) << dtype_name(type);
      continue;
    }
    ASSERT_TRUE(copy) << dtype_name(type);
    ASSERT_EQ(std::memcmp(copy.get(), w.t.data, w.t.nbytes), 0) << dtype_name(type);
    const std::vector<float> x = random_matrix(3, 320, 12);
    for (int n_tok : {1, 3}) {
      std::vector<float> y_file(n_tok * 48), y_copy(n_tok * 48);
      kk::matmul(w.t, x.data(), y_file.data(), n_tok);
      w.t.packed = copy.get();
      kk::matmul(w.t, x.data(), y_copy.data(), n_tok);
      w.t.packed = nullptr;
      EXPECT_EQ(y_file, y_copy) << dtype_name(type) << " n_tok=" << n_tok;
    }
  }
}

// Speculative decoding's exactness rule holds for packed weights too: a batch under
// ExactBatchScope gives each token the bits of a one-token call.
TEST(Kernels, PackedExactBatchMatchesOneTokenCalls) {
  LevelGuard guard;
  if (kk::best_kernel_level() != kk::KernelLevel::Avx512) GTEST_SKIP() << "packed kernels need AVX-512";
  kk::set_kernel_level(kk::KernelLevel::Avx512);
  for (DType type : {DType::Q8_0, DType::Q4_0}) {
    Weights w = make_weights(type, 512, 320, 93);
    std::shared_ptr<void> packed = kk::pack_weights(w.t);
    ASSERT_TRUE(packed);
    w.t.packed = packed.get();
    expect_exact_batch_matches_one_token_calls(w.t, 94, std::string("packed ") + dtype_name(type));
  }
}

// ---- stream plans (kernels.h: StreamPlan) --------------------------------------------------------

namespace {
struct StreamPlanGuard {
  kk::StreamPlan saved = kk::stream_plan();
  ~StreamPlanGuard() { kk::set_stream_plan(saved); }
};
}  // namespace

// The two ways of streaming the weights (chosen per CPU vendor) sum every output the same way:
// same bits for every type, layout, level and token count, one-token steps and batches alike; and
// under each plan a batch under ExactBatchScope still gives each token a one-token call's bits.
TEST(Kernels, StreamPlansGiveTheSameBits) {
  LevelGuard guard;
  StreamPlanGuard plan_guard;
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K})
    for (bool pack : {false, true})
      for (kk::KernelLevel level : simd_levels()) {
        kk::set_kernel_level(level);
        const int n_in = type == DType::Q4_K ? 512 : 320, n_out = 1008;  // several threads' chunks, 16-row groups
        Weights w = make_weights(type, n_in, n_out, 95);
        std::shared_ptr<void> packed = pack ? kk::pack_weights(w.t) : nullptr;
        if (pack && !packed) continue;
        w.t.packed = packed.get();
        const std::string what = std::string(pack ? "packed " : "") + dtype_name(type) + " " + kk::kernel_level_name(level);
        for (int n_tok : {1, 2, 3, 4, 5, 6, 17}) {
          const std::vector<float> x = random_matrix(n_tok, n_in, 96u + n_tok);
          std::vector<float> y[2];
          for (int p = 0; p < 2; p++) {
            kk::set_stream_plan(static_cast<kk::StreamPlan>(p));
            y[p].assign(size_t(n_tok) * n_out, kSentinel);
            kk::matmul(w.t, x.data(), y[p].data(), n_tok);
          }
          ASSERT_EQ(0, std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float))) << what << " n_tok=" << n_tok;
        }
        for (kk::StreamPlan p : {kk::StreamPlan::Interleaved, kk::StreamPlan::Sequential}) {
          kk::set_stream_plan(p);
          for (int n_tok : {5, 6, 40})
            expect_exact_batch_matches_one_token_calls(w.t, 97, what + " " + kk::stream_plan_name(p), n_tok);
        }
      }
}

// Products of one input in one call (q/k/v, gate/up) give each output the bits of its own matmul
// call: every type, packed or not, one-token steps, small batches (exact or not), matrices of
// different heights (k, v are shorter than q), sizes run by one thread; and mixed types (which
// fall back to one call each).
TEST(Kernels, SharedInputMatmulGivesEachOutputItsOwnCallsBits) {
  LevelGuard guard;
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K})
    for (bool pack : {false, true})
      for (kk::KernelLevel level : simd_levels())
        for (int64_t n_in : {int64_t(256), int64_t(1024)}) {
          kk::set_kernel_level(level);
          Weights w[3] = {make_weights(type, n_in, 1024, 201), make_weights(type, n_in, 256, 202),
                          make_weights(type, n_in, 320, 203)};
          std::shared_ptr<void> packed[3];
          for (int i = 0; i < 3; i++) {
            packed[i] = pack ? kk::pack_weights(w[i].t) : nullptr;
            w[i].t.packed = packed[i].get();
          }
          if (pack && !packed[0]) continue;
          const std::string what = std::string(pack ? "packed " : "") + dtype_name(type) + " " +
                                   kk::kernel_level_name(level) + " n_in=" + std::to_string(n_in);
          for (int n_tok : {1, 3, 5, 6, 12})
            for (bool exact : {false, true}) {
              const std::vector<float> x = random_matrix(n_tok, n_in, 204u + n_tok);
              std::vector<float> own[3], shared[3];
              for (int i = 0; i < 3; i++) {
                own[i].assign(size_t(n_tok) * w[i].t.ne[1], kSentinel);
                shared[i].assign(own[i].size(), kSentinel);
              }
              std::optional<kk::ExactBatchScope> scope;
              if (exact) scope.emplace();
              for (int i = 0; i < 3; i++) kk::matmul(w[i].t, x.data(), own[i].data(), n_tok);
              const kk::MatmulOut outs[3] = {{&w[0].t, shared[0].data()}, {&w[1].t, shared[1].data()}, {&w[2].t, shared[2].data()}};
              kk::matmul_shared_input(outs, x.data(), n_tok);
              for (int i = 0; i < 3; i++)
                ASSERT_EQ(0, std::memcmp(own[i].data(), shared[i].data(), own[i].size() * sizeof(float)))
                    << what << " output " << i << " n_tok=" << n_tok << (exact ? " exact" : "");
            }
        }
  // Different types: one call each, same results.
  const Weights a = make_weights(DType::Q8_0, 256, 64, 205), b = make_weights(DType::F32, 256, 48, 206);
  const std::vector<float> x = random_matrix(2, 256, 207);
  std::vector<float> ya(2 * 64), yb(2 * 48), ya1(ya.size()), yb1(yb.size());
  const kk::MatmulOut outs[2] = {{&a.t, ya.data()}, {&b.t, yb.data()}};
  kk::matmul_shared_input(outs, x.data(), 2);
  kk::matmul(a.t, x.data(), ya1.data(), 2);
  kk::matmul(b.t, x.data(), yb1.data(), 2);
  EXPECT_EQ(ya, ya1);
  EXPECT_EQ(yb, yb1);
}

TEST(Kernels, StreamPlanNames) {
  StreamPlanGuard plan_guard;
  EXPECT_STREQ(kk::stream_plan_name(kk::StreamPlan::Interleaved), "interleaved");
  EXPECT_STREQ(kk::stream_plan_name(kk::StreamPlan::Sequential), "sequential");
  EXPECT_EQ(kk::set_stream_plan(kk::StreamPlan::Sequential), plan_guard.saved);
  EXPECT_EQ(kk::stream_plan(), kk::StreamPlan::Sequential);
}
