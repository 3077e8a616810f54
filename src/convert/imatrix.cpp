#include "convert/imatrix.h"

#include <algorithm>

#include "core/error.h"
#include "model/blocks.h"
#include "tokenizer/tokenizer.h"

namespace kite {

const float* Imatrix::find(const std::string& name, int64_t n_in) const {
  auto it = mean_sq.find(name);
  if (it == mean_sq.end() || int64_t(it->second.size()) != n_in) return nullptr;
  return it->second.data();
}

namespace {

struct Sums {
  std::vector<double> sq;  // [n_in] sum of x^2
  int64_t n = 0;           // rows seen
};

void observe(void* ctx, const Tensor& w, const float* x, int n_tok) {
  auto& all = *static_cast<std::map<std::string, Sums>*>(ctx);
  Sums& s = all[w.name];
  const int64_t n_in = w.ne[0];
  if (s.sq.empty()) s.sq.assign(n_in, 0.0);
  for (int t = 0; t < n_tok; t++)
    for (int64_t i = 0; i < n_in; i++) s.sq[i] += double(x[t * n_in + i]) * x[t * n_in + i];
  s.n += n_tok;
}

// Removes the observer however collection ends.
struct ObserverGuard {
  ObserverGuard(void* ctx) { set_matmul_observer(observe, ctx); }
  ~ObserverGuard() { set_matmul_observer(nullptr, nullptr); }
};

}  // namespace

Imatrix collect_imatrix(const std::shared_ptr<const Model>& model, const std::vector<int32_t>& tokens,
                        int n_ctx, int max_chunks, int n_threads, const std::function<void(int, int)>& progress) {
  check(n_ctx >= 2, "imatrix: context ", n_ctx, " is too small");
  const bool bos = model->add_bos();
  const int body = bos ? n_ctx - 1 : n_ctx;  // calibration tokens per chunk
  int n_chunks = int(tokens.size() / body);
  if (n_chunks == 0 && !tokens.empty()) n_chunks = 1;  // a short text: one partial chunk
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  check(n_chunks > 0, "imatrix: the calibration text is empty");

  std::map<std::string, Sums> sums;
  Imatrix im;
  {
    ObserverGuard guard(&sums);
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
  for (auto& [name, s] : sums) {
    std::vector<float> m(s.sq.size());
    for (size_t i = 0; i < m.size(); i++) m[i] = float(s.sq[i] / double(std::max<int64_t>(1, s.n)));
    im.mean_sq[name] = std::move(m);
  }
  return im;
}

}  // namespace kite
