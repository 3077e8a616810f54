// Chooses the implementation behind each kernel entry point.
//
// How SIMD code is selected: hand-written x86 intrinsics, compiled per ISA with target attributes
// (KITE_BEGIN_AVX2 / KITE_BEGIN_AVX512 regions, see cpu/cpu_kernels.h) inside a baseline x86-64
// build, and picked at run time from CPUID: one table of function pointers per ISA level.
// Why not Highway (libhwy 1.0.x is available): the kernels that set the speed are the int8 dot
// products (vpdpbusd with an embedded broadcast, vpmaddubsw), which Highway 1.0 does not expose,
// and the float ones depend on register blocking chosen per ISA anyway. Hand-written kernels keep
// those instructions explicit, and one explicit table per level makes forcing a lower level for
// tests trivial (Highway's own dispatch would be a second mechanism). An ARM port adds a `neon`
// namespace (vdotq_s32 / vmlal for int8, fp16 vcvt) and a table row here; the drivers
// (cpu/matmul.cpp), data layouts and tests are ISA-independent.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>

#include "core/error.h"
#include "core/huge_pages.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/packed_q.h"
#include "kernels/kernels.h"

#if KITE_X86
#include <cpuid.h>
#endif

namespace kite::kernels {

namespace {

using namespace cpu;

#if KITE_X86
const TypeKernels kAvx2Types[] = {
    {DType::F32, ActKind::F32, avx2::matvec_f32, &avx2::gemm_f32, avx2::pack_a_f32_from_f32, 0},
    {DType::F16, ActKind::F32, avx2::matvec_f16, &avx2::gemm_f32, avx2::pack_a_f32_from_f16, 0},
    {DType::BF16, ActKind::F32, avx2::matvec_bf16, &avx2::gemm_f32, avx2::pack_a_f32_from_bf16, 0},
    {DType::Q8_0, ActKind::Q8, avx2::matvec_q8_0, &avx2::gemm_f32, avx2::pack_a_f32_from_q8_0, 0},
    {DType::Q4_0, ActKind::Q8, avx2::matvec_q4_0, &avx2::gemm_f32, avx2::pack_a_f32_from_q4_0, 0},
};
const LevelKernels kAvx2 = {kAvx2Types, int(std::size(kAvx2Types)), avx2::quantize_row_q8,
                            avx2::rmsnorm, avx2::softmax, avx2::silu_mul, avx2::dot_f32, avx2::axpy, avx2::add};

const TypeKernels kAvx512Types[] = {
    {DType::F32, ActKind::F32, avx512::matvec_f32, &avx512::gemm_f32, avx512::pack_a_f32_from_f32, 0},
    {DType::F16, ActKind::F16, avx512::matvec_f16, &avx512::gemm_f32, avx512::pack_a_f32_from_f16, 0},
    {DType::BF16, ActKind::F32, avx512::matvec_bf16, &avx512::gemm_f32, avx512::pack_a_f32_from_bf16, 0},
    {DType::Q8_0, ActKind::Q8, avx512::matvec_q8_0, &avx512::gemm_q8, avx512::pack_a_q8_from_q8_0, 128},
    {DType::Q4_0, ActKind::Q8, avx512::matvec_q4_0, &avx512::gemm_q8, avx512::pack_a_q8_from_q4_0, 8},
    {DType::Q4_1, ActKind::Q8, avx512::matvec_q4_1, nullptr, nullptr, 0},
    {DType::Q5_0, ActKind::Q8, avx512::matvec_q5_0, nullptr, nullptr, 0},
    {DType::Q5_1, ActKind::Q8, avx512::matvec_q5_1, nullptr, nullptr, 0},
    {DType::Q2_K, ActKind::Q8K, avx512::matvec_q2_k, nullptr, nullptr, 0},
    {DType::Q3_K, ActKind::Q8K, avx512::matvec_q3_k, nullptr, nullptr, 0},
    {DType::Q4_K, ActKind::Q8K, avx512::matvec_q4_k, nullptr, nullptr, 0},
    {DType::Q5_K, ActKind::Q8K, avx512::matvec_q5_k, nullptr, nullptr, 0},
    {DType::Q6_K, ActKind::Q8K, avx512::matvec_q6_k, nullptr, nullptr, 0},
};
// Weights in the packed layout (cpu/packed_q.h), used when Tensor::packed is set.
const TypeKernels kAvx512Packed[] = {
    {DType::Q8_0, ActKind::Q8, avx512::matvec_packed_q8_0, &avx512::gemm_q8, avx512::pack_a_q8_from_packed_q8_0, 128},
    {DType::Q4_0, ActKind::Q8, avx512::matvec_packed_q4_0, &avx512::gemm_q8, avx512::pack_a_q8_from_packed_q4_0, 8},
};
// F16 weights when the prompt GEMM runs in bf16 (f16_gemm() == Bf16 on a CPU with AVX512_BF16):
// decode (matvec) as in the table above, prompts through the bf16 engine.
const TypeKernels kAvx512F16Bf16 = {DType::F16, ActKind::F16, avx512::matvec_f16, &avx512::gemm_bf16,
                                    avx512::pack_a_bf16_from_f16, 0};
const LevelKernels kAvx512 = {kAvx512Types, int(std::size(kAvx512Types)), avx512::quantize_row_q8,
                              avx512::rmsnorm, avx512::softmax, avx512::silu_mul, avx512::dot_f32,
                              avx512::axpy, avx512::add, kAvx512Packed, int(std::size(kAvx512Packed))};

// XCR0: which register states the OS saves (a CPU feature is usable only if the OS enables it).
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

KernelLevel detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return KernelLevel::Ref;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  const bool popcnt = c & (1u << 23);
  if (!(osxsave && avx)) return KernelLevel::Ref;
  const uint64_t xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) return KernelLevel::Ref;  // SSE and AVX state
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return KernelLevel::Ref;
  const bool avx2 = b & (1u << 5), bmi1 = b & (1u << 3), bmi2 = b & (1u << 8);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512cd = b & (1u << 28);
  const bool avx512bw = b & (1u << 30), avx512vl = b & (1u << 31), vnni = c & (1u << 11);
  unsigned ea, eb, ec, ed;
  const bool lzcnt = __get_cpuid(0x80000001, &ea, &eb, &ec, &ed) && (ec & (1u << 5));
  if (!(avx2 && fma && f16c && bmi1 && bmi2 && popcnt && lzcnt)) return KernelLevel::Ref;
  const bool zmm_state = (xcr0 & 0xe0) == 0xe0;  // opmask, upper halves of zmm0-15, zmm16-31
  if (avx512f && avx512dq && avx512cd && avx512bw && avx512vl && vnni && zmm_state) return KernelLevel::Avx512;
  return KernelLevel::Avx2;
}
#else
KernelLevel detect() { return KernelLevel::Ref; }
#endif

#if KITE_X86
bool detect_avx512_bf16() {
  unsigned a, b, c, d;
  return detect() == KernelLevel::Avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}
#else
bool detect_avx512_bf16() { return false; }
#endif

KernelLevel best() {
  static const KernelLevel b = detect();
  return b;
}

KernelLevel clamp_level(KernelLevel l) { return static_cast<int>(l) > static_cast<int>(best()) ? best() : l; }

// The level at first use: the best one, lowered by KITE_KERNELS if set.
KernelLevel initial_level() {
  const char* e = std::getenv("KITE_KERNELS");
  if (!e || !*e) return best();
  KernelLevel l;
  if (kernel_level_from_name(e, &l)) return clamp_level(l);
  std::fprintf(stderr, "kite: KITE_KERNELS=%s is not one of ref, avx2, avx512; using %s\n", e,
               kernel_level_name(best()));
  return best();
}

std::atomic<int> g_level{-1};  // -1: not chosen yet

KernelLevel current() {
  int l = g_level.load(std::memory_order_relaxed);
  if (l < 0) {
    l = static_cast<int>(initial_level());
    g_level.store(l, std::memory_order_relaxed);
  }
  return static_cast<KernelLevel>(l);
}

}  // namespace

namespace {
thread_local bool t_exact_batches = false;
}  // namespace
ExactBatchScope::ExactBatchScope() : prev_(t_exact_batches) { t_exact_batches = true; }
ExactBatchScope::~ExactBatchScope() { t_exact_batches = prev_; }
bool exact_batch(int n_tok) { return t_exact_batches && n_tok <= kExactBatchTokens; }

KernelLevel best_kernel_level() { return best(); }
KernelLevel kernel_level() { return current(); }
KernelLevel set_kernel_level(KernelLevel level) {
  const KernelLevel l = clamp_level(level);
  g_level.store(static_cast<int>(l), std::memory_order_relaxed);
  return l;
}

const char* kernel_level_name(KernelLevel level) {
  switch (level) {
    case KernelLevel::Ref: return "ref";
    case KernelLevel::Avx2: return "avx2";
    case KernelLevel::Avx512: return "avx512";
  }
  return "?";
}

bool kernel_level_from_name(const char* name, KernelLevel* level) {
  for (KernelLevel l : {KernelLevel::Ref, KernelLevel::Avx2, KernelLevel::Avx512})
    if (name && std::strcmp(name, kernel_level_name(l)) == 0) {
      *level = l;
      return true;
    }
  return false;
}

namespace {
bool is_float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// The CPU's family as cpuid leaf 1 reports it (base family, plus the extended family when the base
// is 0xF): AMD Zen 3 / Zen 4 are 0x19, Zen 5 0x1A. 0 when unknown.
unsigned cpu_family() {
#if KITE_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const unsigned base = (a >> 8) & 0xf;
  return base == 0xf ? base + ((a >> 20) & 0xff) : base;
#else
  return 0;
#endif
}

bool cpu_is_amd() {
#if KITE_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  char vendor[13];
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  vendor[12] = 0;
  return std::strcmp(vendor, "AuthenticAMD") == 0;
#else
  return false;
#endif
}

// A run-time choice among N values of E: from the environment variable `var` at first use (an
// unknown value is reported and the machine's default kept), or set() by the program. constinit:
// ready before any static constructor elsewhere could ask.
template <class E, int N>
class EnvChoice {
 public:
  constexpr EnvChoice(const char* var, std::array<E, N> values, const char* (*name)(E), E (*by_machine)())
      : var_(var), values_(values), name_(name), by_machine_(by_machine) {}
  E get() {
    int v = v_.load(std::memory_order_relaxed);
    if (v < 0) {
      v = static_cast<int>(initial());
      v_.store(v, std::memory_order_relaxed);
    }
    return static_cast<E>(v);
  }
  E set(E e) {
    const E prev = get();
    v_.store(static_cast<int>(e), std::memory_order_relaxed);
    return prev;
  }

 private:
  E initial() const {
    const E def = by_machine_();
    const char* e = std::getenv(var_);
    if (!e || !*e) return def;
    std::string names;
    for (E v : values_) {
      if (std::strcmp(e, name_(v)) == 0) return v;
      names += (names.empty() ? "" : ", ") + std::string(name_(v));
    }
    std::fprintf(stderr, "kite: %s=%s is not one of %s; using %s\n", var_, e, names.c_str(), name_(def));
    return def;
  }
  const char* var_;
  std::array<E, N> values_;
  const char* (*name_)(E);
  E (*by_machine_)();
  std::atomic<int> v_{-1};  // -1: not chosen yet
};

constinit EnvChoice<StreamPlan, 2> g_stream_plan("KITE_STREAMS", {StreamPlan::Interleaved, StreamPlan::Sequential},
                                       stream_plan_name,
                                       [] { return cpu_is_amd() && cpu_family() == 0x19 ? StreamPlan::Sequential
                                                                                         : StreamPlan::Interleaved; });
}  // namespace

StreamPlan stream_plan() { return g_stream_plan.get(); }
StreamPlan set_stream_plan(StreamPlan plan) { return g_stream_plan.set(plan); }

const char* stream_plan_name(StreamPlan plan) {
  return plan == StreamPlan::Sequential ? "sequential" : "interleaved";
}

namespace {
bool cpu_has_avx512_bf16() {
  static const bool has = detect_avx512_bf16();
  return has;
}

constinit EnvChoice<F16Gemm, 2> g_f16_gemm("KITE_F16_GEMM", {F16Gemm::Fp32, F16Gemm::Bf16}, f16_gemm_name,
                                 [] { return cpu_has_avx512_bf16() ? F16Gemm::Bf16 : F16Gemm::Fp32; });
}  // namespace

F16Gemm f16_gemm() { return cpu_has_avx512_bf16() ? g_f16_gemm.get() : F16Gemm::Fp32; }
F16Gemm set_f16_gemm(F16Gemm g) {
  const F16Gemm prev = f16_gemm();  // the effective choice, as f16_gemm() reports it
  g_f16_gemm.set(g);
  return prev;
}

const char* f16_gemm_name(F16Gemm g) { return g == F16Gemm::Bf16 ? "bf16" : "fp32"; }

const cpu::TypeKernels* cpu::find_kernels(const LevelKernels& lk, DType type) {
#if KITE_X86
  if (type == DType::F16 && &lk == &kAvx512 && f16_gemm() == F16Gemm::Bf16) return &kAvx512F16Bf16;
#endif
  return lk.find(type);
}

const LevelKernels* cpu::active_kernels() {
  switch (current()) {
#if KITE_X86
    case KernelLevel::Avx2: return &kAvx2;
    case KernelLevel::Avx512: return &kAvx512;
#endif
    default: return nullptr;
  }
}

// ---- entry points -----------------------------------------------------------------------------

namespace {
// The kernels and the bytes matmul uses for W at the active level; tk == nullptr: the reference.
struct Resolved {
  const LevelKernels* lk = nullptr;
  const TypeKernels* tk = nullptr;
  const void* data = nullptr;
};

Resolved resolve(const Tensor& W) {
  Resolved r;
  r.lk = active_kernels();
  // The packed copy when this level has kernels for it (other levels read W.data).
  r.tk = r.lk && W.packed ? r.lk->find_packed(W.type) : nullptr;
  r.data = r.tk ? W.packed : W.data;
  if (!r.tk) {
    r.tk = r.lk ? find_kernels(*r.lk, W.type) : nullptr;
    // Float matrices' "packed" copy: the same layout on huge pages (packed_bytes).
    if (r.tk && W.packed && is_float_type(W.type)) r.data = W.packed;
  }
  if (r.tk) check(r.data != nullptr, "matmul: weight '", W.name, "' has no data");
  return r;
}

MatmulShape shape_of(const Tensor& W, const Resolved& r, const float* x, float* y, int n_tok) {
  return MatmulShape{static_cast<const uint8_t*>(r.data), W.row_size(), W.ne[0], W.ne[1], x, y, n_tok};
}
}  // namespace

void matmul(const Tensor& W, const float* x, float* y, int n_tok) {
  const Resolved r = resolve(W);
  if (!r.tk) {  // reference level, or a type without SIMD kernels yet
    ref::matmul(W, x, y, n_tok);
    return;
  }
  matmul_with(*r.lk, *r.tk, shape_of(W, r, x, y, n_tok));
}

void matmul_shared_input(std::span<const MatmulOut> outs, const float* x, int n_tok) {
  constexpr size_t kMaxOuts = 4;
  if (outs.empty()) return;
  bool together = outs.size() <= kMaxOuts && n_tok > 0;
  Resolved r[kMaxOuts];
  MatmulShape shapes[kMaxOuts];
  for (size_t i = 0; together && i < outs.size(); i++) {
    r[i] = resolve(*outs[i].W);
    together = r[i].tk && r[i].tk == r[0].tk && outs[i].W->ne[0] == outs[0].W->ne[0] && !uses_gemm(*r[i].tk, n_tok);
    if (together) shapes[i] = shape_of(*outs[i].W, r[i], x, outs[i].y, n_tok);
  }
  if (!together) {
    for (const MatmulOut& o : outs) matmul(*o.W, x, o.y, n_tok);
    return;
  }
  matvec_shared_input(*r[0].lk, *r[0].tk, std::span<const MatmulShape>(shapes, outs.size()));
}

size_t packed_bytes(const Tensor& W) {
  const LevelKernels* lk = active_kernels();
  if (!lk || W.data == nullptr || W.ne[2] != 1 || W.ne[3] != 1) return 0;
  const bool packable = lk->find_packed(W.type) && cpu::packable(W.type, W.ne[0], W.ne[1]);
  // F32/F16/BF16 keep their layout: the copy only moves them onto huge pages (pack_into).
  const bool copy = is_float_type(W.type) && find_kernels(*lk, W.type) != nullptr && huge_pages_possible();
  return packable || copy ? W.row_size() * W.ne[1] : 0;
}

void pack_into(const Tensor& W, void* dst) {
  const size_t bytes = packed_bytes(W);
  check(bytes > 0, "pack_into: '", W.name, "' has no packed layout at this kernel level");
  if (!is_float_type(W.type)) {
    cpu::pack_rows(W.type, static_cast<const uint8_t*>(W.data), W.ne[0], W.ne[1], static_cast<uint8_t*>(dst));
    return;
  }
  constexpr size_t kChunk = size_t(2) << 20;
  const int64_t n_chunks = int64_t((bytes + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (n_chunks > 1)
  for (int64_t c = 0; c < n_chunks; c++) {
    const size_t off = size_t(c) * kChunk;
    std::memcpy(static_cast<uint8_t*>(dst) + off, static_cast<const uint8_t*>(W.data) + off, std::min(kChunk, bytes - off));
  }
}

std::shared_ptr<void> pack_weights(const Tensor& W) {
  const size_t bytes = packed_bytes(W);
  if (bytes == 0) return nullptr;
  void* p = alloc_streaming(bytes, W.name.c_str());
  pack_into(W, p);
  return std::shared_ptr<void>(p, std::free);
}

void rmsnorm(float* out, const float* x, const float* w, int n, float eps) {
  const LevelKernels* lk = active_kernels();
  lk ? lk->rmsnorm(out, x, w, n, eps) : ref::rmsnorm(out, x, w, n, eps);
}
void softmax(float* x, int n) {
  const LevelKernels* lk = active_kernels();
  lk ? lk->softmax(x, n) : ref::softmax(x, n);
}
void silu_mul(float* out, const float* gate, const float* up, int n) {
  const LevelKernels* lk = active_kernels();
  lk ? lk->silu_mul(out, gate, up, n) : ref::silu_mul(out, gate, up, n);
}
float dot_f32(const float* a, const float* b, int n) {
  const LevelKernels* lk = active_kernels();
  return lk ? lk->dot_f32(a, b, n) : ref::dot_f32(a, b, n);
}
void axpy(float* y, float a, const float* x, int n) {
  const LevelKernels* lk = active_kernels();
  lk ? lk->axpy(y, a, x, n) : ref::axpy(y, a, x, n);
}
void add(float* out, const float* a, const float* b, int n) {
  const LevelKernels* lk = active_kernels();
  lk ? lk->add(out, a, b, n) : ref::add(out, a, b, n);
}

}  // namespace kite::kernels
