// Calibrated quantization lowers what it promises to lower: the output error of a layer on
// activations it was not calibrated on, ||(W - Q) x||^2 over held-out tokens of the zoo teacher.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>

#include "convert/export_gguf.h"
#include "convert/gptq.h"
#include "convert/imatrix.h"
#include "core/error.h"
#include "core/mmap.h"
#include "kite/kite.h"
#include "model/blocks.h"
#include "model/model.h"
#include "quant/quant.h"
#include "test_util.h"

using namespace kite;

namespace {
std::map<std::string, std::vector<float>> g_inputs;  // tensor name -> [n][n_in] held-out inputs
void capture(void*, const Tensor& w, const float* x, int n_tok) {
  g_inputs[w.name].assign(x, x + size_t(n_tok) * w.ne[0]);
}

// One pass of the model over `tokens` (all logits), recording each matrix's inputs in g_inputs.
void capture_inputs(const std::shared_ptr<const Model>& m, const std::vector<int32_t>& tokens, int n_ctx) {
  g_inputs.clear();
  set_matmul_observer(capture, nullptr);
  {
    Session s(m, {.n_ctx = n_ctx, .n_threads = 2});
    s.eval(tokens, true);
  }
  set_matmul_observer(nullptr, nullptr);
}

// sum over held-out tokens and every 2nd row of ((W - Q) x)^2
double output_error(const std::vector<float>& w, const std::vector<float>& q, const std::vector<float>& X,
                    int64_t n_in, int64_t n_out) {
  double err = 0;
  for (size_t t = 0; t < X.size() / n_in; t++)
    for (int64_t r = 0; r < n_out; r += 2) {
      double s = 0;
      for (int64_t i = 0; i < n_in; i++) s += (double(q[r * n_in + i]) - w[r * n_in + i]) * X[t * n_in + i];
      err += s * s;
    }
  return err;
}
}  // namespace

TEST(Gptq, LowersHeldOutLayerOutputError) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  KITE_REQUIRE_SHARED("corpus/zoo/valid.txt");
  auto m = Model::load(test::shared_path("models/zoo-teacher-34m"));
  const auto toks = m->tokenize(read_text_file(test::shared_path("corpus/zoo/valid.txt")).substr(0, 60000), false);
  ASSERT_GT(toks.size(), 3000u);
  const Imatrix im = collect_imatrix(m, std::vector<int32_t>(toks.begin(), toks.begin() + 2040), 256, 8, 2, nullptr, true);
  capture_inputs(m, std::vector<int32_t>(toks.begin() + 2500, toks.begin() + 2756), 256);
  for (const char* name : {"blk.3.attn_q.weight", "blk.5.ffn_up.weight"}) {
    const Tensor& t = m->impl().tensors.at(name);
    const int64_t n_in = t.ne[0], n_out = t.ne[1];
    std::vector<float> w(n_in * n_out), qp(w.size()), qg(w.size());
    for (int64_t r = 0; r < n_out; r++) to_float(t.type, t.row(r), w.data() + r * n_in, n_in);
    const size_t rb = row_bytes(DType::Q4_K, n_in);
    std::vector<uint8_t> bytes(rb * n_out);
    quantize_rows(DType::Q4_K, w.data(), bytes.data(), n_out, n_in);
    for (int64_t r = 0; r < n_out; r++) to_float(DType::Q4_K, bytes.data() + r * rb, qp.data() + r * n_in, n_in);
    std::vector<float> work = w;
    ASSERT_NE(im.find_hessian(name, n_in), nullptr) << name;
    gptq_quantize(DType::Q4_K, work.data(), n_out, n_in, im.find_hessian(name, n_in), bytes.data());
    for (int64_t r = 0; r < n_out; r++) to_float(DType::Q4_K, bytes.data() + r * rb, qg.data() + r * n_in, n_in);
    const double plain = output_error(w, qp, g_inputs[name], n_in, n_out);
    const double gptq = output_error(w, qg, g_inputs[name], n_in, n_out);
    std::printf("%s: held-out output error plain %.4g, GPTQ %.4g (%.0f%%)\n", name, plain, gptq, 100 * gptq / plain);
    EXPECT_LT(gptq, 0.95 * plain) << name;
  }
  // k and v read q's input: one shared Hessian.
  EXPECT_EQ(im.hessian.at("blk.3.attn_k.weight"), im.hessian.at("blk.3.attn_q.weight"));
}

// The Hessian (computed in bands, lower half mirrored) is sum x x^T of the inputs the layer saw.
TEST(Gptq, HessianIsSumOfOuterProducts) {
  KITE_REQUIRE_SHARED("models/zoo-teacher-34m");
  KITE_REQUIRE_SHARED("corpus/zoo/valid.txt");
  auto m = Model::load(test::shared_path("models/zoo-teacher-34m"));
  const auto toks = m->tokenize(read_text_file(test::shared_path("corpus/zoo/valid.txt")).substr(0, 4000), false);
  ASSERT_GT(toks.size(), 255u);
  const std::vector<int32_t> body(toks.begin(), toks.begin() + 255);
  const Imatrix im = collect_imatrix(m, body, 256, 1, 2, nullptr, true);
  std::vector<int32_t> chunk = body;
  if (m->add_bos()) chunk.insert(chunk.begin(), m->tokenizer().bos());
  capture_inputs(m, chunk, 256);
  for (const char* name : {"blk.2.ffn_down.weight", "blk.0.attn_q.weight"}) {
    const std::vector<float>& X = g_inputs.at(name);
    const int64_t n_in = m->impl().tensors.at(name).ne[0], n = int64_t(X.size()) / n_in;
    ASSERT_EQ(n, int64_t(chunk.size()));
    const double* H = im.find_hessian(name, n_in);
    ASSERT_NE(H, nullptr);
    double worst = 0;
    for (int64_t i = 0; i < n_in; i += 7)
      for (int64_t j = 0; j < n_in; j += 5) {
        double want = 0, scale = 0;
        for (int64_t t = 0; t < n; t++) {
          want += double(X[t * n_in + i]) * X[t * n_in + j];
          scale += std::abs(double(X[t * n_in + i]) * X[t * n_in + j]);
        }
        if (scale > 0) worst = std::max(worst, std::abs(H[i * n_in + j] - want) / scale);
      }
    EXPECT_LT(worst, 1e-5) << name;  // fp32 products summed in another order
  }
}

// U is upper triangular and U^T U is the inverse of the damped H.
TEST(Gptq, InverseCholeskyUpper) {
  for (int64_t n : {1, 5, 37, 130}) {
    std::mt19937 rng{uint32_t(n)};
    std::normal_distribution<double> g;
    std::vector<double> X(size_t(n) * (n + 10)), H(size_t(n) * n, 0.0);
    for (auto& v : X) v = g(rng);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++)
        for (int64_t t = 0; t < n + 10; t++) H[i * n + j] += X[t * n + i] * X[t * n + j];
    const double damp = 0.01;
    double mean = 0;
    for (int64_t i = 0; i < n; i++) mean += H[i * n + i] / double(n);
    const std::vector<float> U = gptq_inverse_cholesky_upper(H.data(), n, damp);
    double worst = 0;
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) {
        if (j < i) {
          EXPECT_EQ(U[i * n + j], 0.0f);
        }
        // (U^T U (H + damp I))[i][j] should be the identity.
        double s = 0;
        for (int64_t k = 0; k < n; k++) {
          double uu = 0;  // (U^T U)[i][k]
          for (int64_t a = 0; a <= std::min(i, k); a++) uu += double(U[a * n + i]) * U[a * n + k];
          s += uu * (H[k * n + j] + (k == j ? damp * mean : 0.0));
        }
        worst = std::max(worst, std::abs(s - (i == j ? 1.0 : 0.0)));
      }
    EXPECT_LT(worst, 1e-3) << "n " << n;  // U is stored as fp32
  }
  const double bad[4] = {1, 2, 2, 1};  // indefinite, and damping 0
  EXPECT_THROW(gptq_inverse_cholesky_upper(bad, 2, 0.0), Error);
}

// Too little calibration text for GPTQ: the K-quant matrices are written exactly as without
// calibration, and the summary says so.
TEST(Gptq, ShortCalibrationTextFallsBackToPlainSearch) {
  KITE_REQUIRE_SHARED("models/zoo-draft-7m");
  KITE_REQUIRE_SHARED("corpus/zoo/valid.txt");
  auto m = Model::load(test::shared_path("models/zoo-draft-7m"));
  const auto toks = m->tokenize(read_text_file(test::shared_path("corpus/zoo/valid.txt")).substr(0, 4000), false);
  const Imatrix im = collect_imatrix(m, toks, 256, 2, 2, nullptr, true);
  ASSERT_LT(im.tokens, kGptqMinTokensPerColumn * 256);
  const auto dir = test::fresh_temp_dir("gptq_short");
  ExportOptions plain, calibrated;
  plain.recipe = calibrated.recipe = quant_recipe("Q4_K_M");
  calibrated.imatrix = &im;
  const ExportSummary a = export_gguf(*m, (dir / "plain.gguf").string(), plain);
  const ExportSummary b = export_gguf(*m, (dir / "calib.gguf").string(), calibrated);
  ASSERT_FALSE(b.notes.empty());
  EXPECT_NE(b.notes.back().find("without calibration"), std::string::npos) << b.notes.back();
  EXPECT_EQ(read_text_file((dir / "plain.gguf").string()), read_text_file((dir / "calib.gguf").string()));
  std::filesystem::remove_all(dir);
}
