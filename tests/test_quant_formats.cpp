// Block formats without model files: round-trip error bounds on random and structured data,
// importance weighting, the scale searches, and error handling. Known-answer decoding of
// hand-built blocks is in test_quant_known_answer.cpp; real-model checks in test_quant_models.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/k_quants_search.h"
#include "quant/quant.h"

using namespace kite;

namespace {

// Relative RMS error ||y - x|| / ||x||.
double rel_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); i++) {
    e += double(y[i] - x[i]) * (y[i] - x[i]);
    s += double(x[i]) * x[i];
  }
  return s > 0 ? std::sqrt(e / s) : std::sqrt(e);
}

std::vector<float> round_trip(DType t, const std::vector<float>& x, const float* importance = nullptr) {
  std::vector<uint8_t> q(row_bytes(t, static_cast<int64_t>(x.size())));
  from_float(t, x.data(), q.data(), static_cast<int64_t>(x.size()), importance);
  std::vector<float> y(x.size());
  to_float(t, q.data(), y.data(), static_cast<int64_t>(x.size()));
  return y;
}

// One quantized type and the relative RMS error it may reach on N(0, 1) data. The bounds are
// the measured values (see the comment on each) plus about 5%: a regression in the search shows.
struct TypeCase {
  DType type;
  double gauss_bound;
};

const TypeCase kTypes[] = {
    {DType::F16, 0.0004},   // 0.00028
    {DType::BF16, 0.0025},  // 0.0022
    {DType::Q8_0, 0.0057},  // 0.0053
    {DType::Q4_0, 0.090},   // 0.0857 (llama.cpp's round-to-nearest rule)
    {DType::Q4_1, 0.072},   // 0.0687
    {DType::Q5_0, 0.042},   // 0.0399
    {DType::Q5_1, 0.035},   // 0.0333
    {DType::Q2_K, 0.272},   // 0.2589
    {DType::Q3_K, 0.150},   // 0.1431
    {DType::Q4_K, 0.073},   // 0.0693
    {DType::Q5_K, 0.036},   // 0.0343
    {DType::Q6_K, 0.0177},  // 0.0168
    {DType::Q8_K, 0.0073},  // 0.0069
};

// An odd number of blocks for every block size, so no code path may assume pairs of blocks.
int64_t odd_size(DType t) {
  const int bs = dtype_traits(t).block_size;
  if (bs == QK_K) return QK_K * 31;  // 31 super-blocks
  if (bs == 32) return 32 * 249;     // 249 blocks
  return 7967;                       // plain element types
}

std::string type_name(const testing::TestParamInfo<TypeCase>& info) { return dtype_name(info.param.type); }

class QuantRoundTrip : public testing::TestWithParam<TypeCase> {};

TEST_P(QuantRoundTrip, GaussianWithinBound) {
  const DType t = GetParam().type;
  // 255 super-blocks (an odd count for every block size): the figure is stable to well under
  // the 5% margin.
  std::vector<float> x(QK_K * 255);
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : x) v = nd(rng);
  const double err = rel_rmse(x, round_trip(t, x));
  EXPECT_LT(err, GetParam().gauss_bound) << dtype_name(t);
  EXPECT_GT(err, GetParam().gauss_bound * 0.5) << dtype_name(t) << ": suspiciously exact";
}

// Structured inputs that break naive quantizers: each must stay within a multiple of the
// Gaussian bound (1.1 allows for the smaller sample), and be finite. Outliers cost every type:
// one large value per block sets the scale of the whole block.
TEST_P(QuantRoundTrip, StructuredDataWithinBound) {
  const DType t = GetParam().type;
  const int64_t n = odd_size(t);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  struct Case {
    const char* name;
    std::function<float(int64_t)> gen;
    double factor;  // allowed multiple of the Gaussian bound
  };
  const std::vector<Case> cases = {
      {"uniform", [&](int64_t) { return ud(rng); }, 1.1},
      {"ramp", [&](int64_t i) { return static_cast<float>(i % 97) / 97.0f - 0.3f; }, 1.1},
      {"all positive", [&](int64_t) { return std::fabs(nd(rng)) + 0.5f; }, 1.1},
      {"all negative", [&](int64_t) { return -std::fabs(nd(rng)) - 0.5f; }, 1.1},
      {"large offset", [&](int64_t) { return 100.0f + nd(rng); }, 1.1},
      // (The fixed round-to-nearest rules, Q8_K with its 256-value blocks above all, get 5x.)
      {"outliers", [&](int64_t i) { return (i % 61 == 3) ? 25.0f * nd(rng) : nd(rng); },
       quant_traits(t)->from_float_matches_ggml ? 5.0 : 2.5},
      {"sparse", [&](int64_t i) { return (i % 7 == 0) ? nd(rng) : 0.0f; }, 2.0},
      {"small (1e-2, like real weights)", [&](int64_t) { return 1e-2f * nd(rng); }, 1.1},
      {"large (1e3)", [&](int64_t) { return 1e3f * nd(rng); }, 1.1},
      {"alternating sign", [&](int64_t i) { return (i % 2 ? 1.0f : -1.0f) * (0.5f + 0.1f * ud(rng)); }, 1.1},
  };
  for (const Case& c : cases) {
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; i++) x[i] = c.gen(i);
    const std::vector<float> y = round_trip(t, x);
    for (int64_t i = 0; i < n; i++) ASSERT_TRUE(std::isfinite(y[i])) << c.name << " element " << i;
    EXPECT_LT(rel_rmse(x, y), GetParam().gauss_bound * c.factor) << dtype_name(t) << " on " << c.name;
  }
}

// Values around 1e-5 put fp16 scales (and F16 values) in the subnormal range, where they lose
// relative precision. The searched types keep the super-block factor at least the smallest
// fp16 subnormal and stay within 4x their Gaussian bound; the fixed llama.cpp rules (F16, Q8_0,
// Q4_0, which must stay byte-identical) only have to stay meaningful.
TEST_P(QuantRoundTrip, TinyValuesSurviveSubnormalScales) {
  const DType t = GetParam().type;
  const int64_t n = odd_size(t);
  std::mt19937 rng(8);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = 1e-5f * nd(rng);
  const double bound = quant_traits(t)->from_float_matches_ggml ? 0.15 : 4 * GetParam().gauss_bound;
  EXPECT_LT(rel_rmse(x, round_trip(t, x)), bound) << dtype_name(t);
}

TEST_P(QuantRoundTrip, ZerosAndConstantsAreExactOrClose) {
  const DType t = GetParam().type;
  const int64_t n = odd_size(t);
  std::vector<float> zeros(n, 0.0f);
  for (float v : round_trip(t, zeros)) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  // A constant that fp16 holds exactly: every type reproduces it to within its step size.
  for (float c : {0.75f, -3.5f}) {
    std::vector<float> x(n, c);
    const std::vector<float> y = round_trip(t, x);
    EXPECT_LT(rel_rmse(x, y), GetParam().gauss_bound) << dtype_name(t) << " constant " << c;
  }
}

TEST_P(QuantRoundTrip, RowBytesMatchBlockLayout) {
  const DType t = GetParam().type;
  const DTypeTraits& tr = dtype_traits(t);
  const int64_t n = odd_size(t);
  EXPECT_EQ(row_bytes(t, n), static_cast<size_t>(n / tr.block_size) * tr.type_size);
  const QuantTraits* q = quant_traits(t);
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q->to_float, nullptr);
  EXPECT_NE(q->from_float, nullptr);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantRoundTrip, testing::ValuesIn(kTypes), type_name);

// Values on an fp16-exact grid come back exactly from the affine/symmetric 32-blocks.
TEST(Quant, GridValuesAreReproducedExactly) {
  std::vector<float> x(QK4_1 * 3);
  for (size_t i = 0; i < x.size(); i++) x[i] = -3.0f + 0.5f * static_cast<float>((i * 7) % 16);
  EXPECT_EQ(rel_rmse(x, round_trip(DType::Q4_1, x)), 0.0);
  for (size_t i = 0; i < x.size(); i++) x[i] = 1.25f + 0.25f * static_cast<float>((i * 11) % 32);
  EXPECT_EQ(rel_rmse(x, round_trip(DType::Q5_1, x)), 0.0);
  for (size_t i = 0; i < x.size(); i++) x[i] = 0.125f * (static_cast<float>((i * 5) % 32) - 16.0f);
  EXPECT_EQ(rel_rmse(x, round_trip(DType::Q5_0, x)), 0.0);
}

// The searches never do worse than plain min/max (affine) or max-abs (symmetric) rounding on
// the same grid, and clearly better on average.
TEST(QuantSearch, BeatsMinMaxRounding) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const float w[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                       1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  for (int nmax : {3, 15, 31}) {
    double sum_fit = 0, sum_naive = 0;
    for (int trial = 0; trial < 200; trial++) {
      float x[32];
      for (float& v : x) v = nd(rng);
      uint8_t L[32];
      const quant::AffineFit f = quant::fit_affine(x, w, 32, nmax, false, L);
      float lo = x[0], hi = x[0];
      for (float v : x) lo = std::min(lo, v), hi = std::max(hi, v);
      const float d = (hi - lo) / nmax;
      double naive = 0, fit = 0;
      for (int i = 0; i < 32; i++) {
        const float q = std::round((x[i] - lo) / d);
        naive += std::pow(double(lo + d * q - x[i]), 2);
        fit += std::pow(double(f.offset + f.scale * L[i] - x[i]), 2);
      }
      EXPECT_LE(fit, naive * (1 + 1e-5)) << "nmax " << nmax;
      // The reported error is the real one (up to float sums: ~1e-6 of the signal energy).
      double energy = 0;
      for (float v : x) energy += double(v) * v;
      EXPECT_NEAR(fit, f.err, 2e-6 * energy);
      sum_fit += fit;
      sum_naive += naive;
    }
    EXPECT_LT(sum_fit, 0.9 * sum_naive) << "affine nmax " << nmax;
  }
  for (int qmax : {3, 15, 31}) {
    double sum_fit = 0, sum_naive = 0;
    for (int trial = 0; trial < 200; trial++) {
      float x[16];
      for (float& v : x) v = nd(rng);
      int8_t L[16];
      const quant::SymmetricFit f = quant::fit_symmetric(x, w, 16, -qmax - 1, qmax, L);
      float amax = 0;
      for (float v : x) amax = std::max(amax, std::fabs(v));
      const float d = amax / qmax;
      double naive = 0, fit = 0;
      for (int i = 0; i < 16; i++) {
        naive += std::pow(double(d * std::round(x[i] / d) - x[i]), 2);
        fit += std::pow(double(f.scale * L[i] - x[i]), 2);
      }
      EXPECT_LE(fit, naive * (1 + 1e-5)) << "qmax " << qmax;
      sum_fit += fit;
      sum_naive += naive;
    }
    EXPECT_LT(sum_fit, 0.9 * sum_naive) << "symmetric qmax " << qmax;
  }
}

// Importance: weights from skewed activation statistics (a few columns carry most of the
// signal, as in real imatrix data). Quantizing with them must lower the importance-weighted
// error against quantizing without, for every type that uses importance, by at least 25%
// (measured: the weighted error falls to 0.37 (Q2_K) .. 0.60 (Q3_K) of the plain one).
TEST(QuantImportance, WeightedErrorDropsWithSkewedImportance) {
  const int rows = 24, cols = 512;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> col_imp(cols);
  for (int c = 0; c < cols; c++) col_imp[c] = std::exp(2.0f * nd(rng));  // log-normal, heavy tail
  std::vector<float> x(rows * cols), imp(rows * cols);
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      x[r * cols + c] = nd(rng);
      imp[r * cols + c] = col_imp[c];
    }
  auto weighted_err = [&](const std::vector<float>& y) {
    double e = 0;
    for (size_t i = 0; i < x.size(); i++) e += imp[i] * double(y[i] - x[i]) * (y[i] - x[i]);
    return e;
  };
  for (const TypeCase& tc : kTypes) {
    const QuantTraits* q = quant_traits(tc.type);
    if (q->ignores_importance) continue;
    const double plain = weighted_err(round_trip(tc.type, x));
    const double weighted = weighted_err(round_trip(tc.type, x, imp.data()));
    EXPECT_LT(weighted, 0.75 * plain) << dtype_name(tc.type) << ": importance-weighted error "
                                      << weighted << " vs " << plain << " without importance";
    // And the unweighted error may rise only moderately.
    EXPECT_LT(rel_rmse(x, round_trip(tc.type, x, imp.data())), 1.5 * rel_rmse(x, round_trip(tc.type, x)))
        << dtype_name(tc.type);
  }
}

// All-zero, negative or single-spike importance must not break a quantizer. With a spike of
// 1e6 on one element and zeros elsewhere, the objective really only cares about that element,
// so its super-block may lose precision elsewhere: the bound is loose (4x), the point is sane,
// finite output.
TEST(QuantImportance, DegenerateImportanceStillQuantizes) {
  const int64_t n = QK_K * 3;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  std::vector<float> zero(n, 0.0f), spike(n, 0.0f), negative(n, -1.0f);
  spike[17] = 1e6f;
  for (const TypeCase& tc : kTypes) {
    for (const std::vector<float>* imp : {&zero, &spike, &negative}) {
      const std::vector<float> y = round_trip(tc.type, x, imp->data());
      for (float v : y) ASSERT_TRUE(std::isfinite(v)) << dtype_name(tc.type);
      EXPECT_LT(rel_rmse(x, y), 4 * tc.gauss_bound) << dtype_name(tc.type);
    }
  }
}

TEST(QuantRows, ColumnImportanceMatchesPerElementImportance) {
  const int rows = 5, cols = QK_K * 2;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(rows * cols), col(cols), full(rows * cols);
  for (auto& v : x) v = nd(rng);
  for (auto& v : col) v = std::exp(nd(rng));
  for (int r = 0; r < rows; r++) std::copy(col.begin(), col.end(), full.begin() + r * cols);
  for (DType t : {DType::Q4_K, DType::Q6_K, DType::Q5_0, DType::Q8_0}) {
    std::vector<uint8_t> a(row_bytes(t, cols) * rows), b(a.size());
    quantize_rows(t, x.data(), a.data(), rows, cols, col.data());
    from_float(t, x.data(), b.data(), rows * cols, full.data());
    EXPECT_EQ(a, b) << dtype_name(t);
  }
}

TEST(QuantErrors, BadSizesAndTypesNameTheType) {
  std::vector<float> x(QK_K + 32);
  std::vector<uint8_t> q(4096);
  try {
    from_float(DType::Q4_K, x.data(), q.data(), QK_K + 32);
    FAIL() << "expected kite::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q4_K"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("288"), std::string::npos) << e.what();
  }
  EXPECT_THROW(to_float(DType::Q5_1, q.data(), x.data(), 33), Error);
  EXPECT_THROW(quantize_rows(DType::Q6_K, x.data(), q.data(), 1, 100), Error);
  try {
    from_float(DType::I32, x.data(), q.data(), 32);
    FAIL() << "expected kite::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("I32"), std::string::npos) << e.what();
  }
}

TEST(QuantTraitsTable, EveryComputableTypeHasARow) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                  DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K,
                  DType::Q6_K, DType::Q8_K}) {
    const QuantTraits* q = quant_traits(t);
    ASSERT_NE(q, nullptr) << dtype_name(t);
    EXPECT_EQ(q->type, t);
  }
  EXPECT_EQ(quant_traits(DType::Q8_1), nullptr);
  EXPECT_EQ(quant_traits(DType::I32), nullptr);
}

}  // namespace
