#include "convert/imatrix.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/kernels.h"
#include "model/blocks.h"
#include "tokenizer/tokenizer.h"

namespace kite {

const float* Imatrix::find(const std::string& name, int64_t n_in) const {
  auto it = mean_sq.find(name);
  if (it == mean_sq.end() || int64_t(it->second.size()) != n_in) return nullptr;
  return it->second.data();
}

const double* Imatrix::find_hessian(const std::string& name, int64_t n_in) const {
  auto it = hessian.find(name);
  if (it == hessian.end() || int64_t(it->second->size()) != n_in * n_in) return nullptr;
  return it->second->data();
}

namespace {

struct Sums {
  std::vector<double> sq;  // [n_in] sum of x^2
  int64_t n = 0;           // rows seen
};

struct Collector {
  std::map<std::string, Sums> sums;
  bool full = false;
  std::map<std::string, std::shared_ptr<std::vector<double>>> hessian;
  std::vector<float> xt, xx;  // [n_in][n_tok] transposed x, [n_in][128] one band of x^T x
};

void observe(void* ctx, const Tensor& w, const float* x, int n_tok) {
  auto& c = *static_cast<Collector*>(ctx);
  Sums& s = c.sums[w.name];
  const int64_t n_in = w.ne[0];
  if (s.sq.empty()) s.sq.assign(n_in, 0.0);
  for (int t = 0; t < n_tok; t++)
    for (int64_t i = 0; i < n_in; i++) s.sq[i] += double(x[t * n_in + i]) * x[t * n_in + i];
  s.n += n_tok;
  if (!c.full) return;
  // k and v read q's input, up reads gate's: they share its H (computed once per call).
  std::string key = w.name;
  for (auto [from, to] : {std::pair{"attn_k.", "attn_q."}, {"attn_v.", "attn_q."}, {"ffn_up.", "ffn_gate."}})
    if (size_t p = key.find(from); p != std::string::npos) key.replace(p, std::strlen(from), to);
  auto& h = c.hessian[key];
  if (!h) h = std::make_shared<std::vector<double>>(size_t(n_in) * n_in, 0.0);
  if (key != w.name) {
    c.hessian[w.name] = h;
    return;
  }
  // x^T x with the matmul kernel, one band of columns at a time and only what lies on or below
  // the diagonal (x^T x is symmetric: half the work). Band [i0, i1): "weights" rows i0..i1 of xt
  // ([n_in] rows of n_tok), "activations" rows 0..i1 of xt, out [i1][i1 - i0].
  c.xt.resize(size_t(n_in) * n_tok);
  for (int t = 0; t < n_tok; t++)
    for (int64_t i = 0; i < n_in; i++) c.xt[i * n_tok + t] = x[t * n_in + i];
  constexpr int64_t kBand = 128;
  c.xx.resize(size_t(n_in) * std::min(n_in, kBand));
  std::vector<double>& H = *h;
  for (int64_t i0 = 0; i0 < n_in; i0 += kBand) {
    const int64_t i1 = std::min(n_in, i0 + kBand), nb = i1 - i0;
    Tensor band;
    band.name = "imatrix.xt";
    band.type = DType::F32;
    band.n_dims = 2;
    band.ne = {n_tok, nb, 1, 1};
    band.data = c.xt.data() + i0 * n_tok;
    band.nbytes = size_t(nb) * n_tok * sizeof(float);
    kernels::matmul(band, c.xt.data(), c.xx.data(), int(i1));
    for (int64_t t = 0; t < i1; t++)
      for (int64_t o = 0; o < nb; o++) {
        const double v = c.xx[t * nb + o];
        H[t * n_in + i0 + o] += v;
        if (t < i0) H[(i0 + o) * n_in + t] += v;  // the mirror of the part above the band
      }
  }
}

// Removes the observer however collection ends.
struct ObserverGuard {
  ObserverGuard(void* ctx) { set_matmul_observer(observe, ctx); }
  ~ObserverGuard() { set_matmul_observer(nullptr, nullptr); }
};

}  // namespace

Imatrix collect_imatrix(const std::shared_ptr<const Model>& model, const std::vector<int32_t>& tokens,
                        int n_ctx, int max_chunks, int n_threads, const std::function<void(int, int)>& progress,
                        bool full_hessian) {
  check(n_ctx >= 2, "imatrix: context ", n_ctx, " is too small");
  const bool bos = model->add_bos();
  const int body = bos ? n_ctx - 1 : n_ctx;  // calibration tokens per chunk
  int n_chunks = int(tokens.size() / body);
  if (n_chunks == 0 && !tokens.empty()) n_chunks = 1;  // a short text: one partial chunk
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  check(n_chunks > 0, "imatrix: the calibration text is empty");

  Collector col;
  col.full = full_hessian;
  Imatrix im;
  {
    ObserverGuard guard(&col);
    Session s(model, {.n_ctx = n_ctx, .n_threads = n_threads, .n_batch = n_ctx});
    std::vector<int32_t> chunk;
    for (int c = 0; c < n_chunks; c++) {
      chunk.clear();
      if (bos) chunk.push_back(model->tokenizer().bos());
      const size_t begin = size_t(c) * body, end = std::min(tokens.size(), begin + body);
      chunk.insert(chunk.end(), tokens.begin() + begin, tokens.begin() + end);
      s.truncate(0);
      s.eval(chunk, /*all_logits=*/true);  // the output matrix sees every position
      im.tokens += int64_t(end - begin);
      if (progress) progress(c + 1, n_chunks);
    }
  }
  im.hessian = std::move(col.hessian);
  for (auto& [name, s] : col.sums) {
    std::vector<float> m(s.sq.size());
    for (size_t i = 0; i < m.size(); i++) m[i] = float(s.sq[i] / double(std::max<int64_t>(1, s.n)));
    im.mean_sq[name] = std::move(m);
  }
  return im;
}

}  // namespace kite
