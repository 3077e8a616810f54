// Calibrated quantization lowers what it promises to lower: the output error of a layer on
// activations it was not calibrated on, ||(W - Q) x||^2 over held-out tokens of the zoo teacher.
#include <gtest/gtest.h>

#include <map>

#include "convert/gptq.h"
#include "convert/imatrix.h"
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
  set_matmul_observer(capture, nullptr);
  {
    Session s(m, {.n_ctx = 256, .n_threads = 2});
    s.eval(std::vector<int32_t>(toks.begin() + 2500, toks.begin() + 2756), true);
  }
  set_matmul_observer(nullptr, nullptr);
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
