// Activation statistics for accuracy-aware quantization (an "importance matrix", as llama.cpp's
// imatrix): for every weight matrix, the mean square of each input column's activation over a
// calibration text. A weight's quantization error reaches the output multiplied by its input,
// so E[(sum_i (w_i - q_i) x_i)^2] ~ sum_i (w_i - q_i)^2 E[x_i^2]: the quantizer minimises the
// error weighted by these means instead of the plain squared error.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kite/kite.h"

namespace kite {

struct Imatrix {
  std::map<std::string, std::vector<float>> mean_sq;  // tensor name -> [n_in] mean of x^2
  int64_t tokens = 0;                                 // calibration tokens evaluated
  // With full_hessian: H = sum x x^T [n_in][n_in] per tensor (tensors reading the same input,
  // such as q/k/v, share one), for GPTQ.
  std::map<std::string, std::shared_ptr<std::vector<double>>> hessian;
  const double* find_hessian(const std::string& name, int64_t n_in) const;
  // The column importances of a tensor, or nullptr when it was not observed (token_embd: a
  // lookup) or its width differs.
  const float* find(const std::string& name, int64_t n_in) const;
};

// Runs the model over `tokens` in chunks of n_ctx (BOS at each chunk start where the model adds
// one), at most max_chunks (0: all), observing every matmul. progress(done, total) per chunk.
Imatrix collect_imatrix(const std::shared_ptr<const Model>& model, const std::vector<int32_t>& tokens,
                        int n_ctx, int max_chunks, int n_threads,
                        const std::function<void(int, int)>& progress = nullptr, bool full_hessian = false);

}  // namespace kite
