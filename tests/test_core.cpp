#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "quant/quant.h"

using namespace kite;

TEST(DType, F16RoundTripIsExactForRepresentableValues) {
  for (uint32_t h = 0; h < 0x10000; h++) {
    uint16_t v = static_cast<uint16_t>(h);
    if (((v >> 10) & 0x1f) == 0x1f) continue;  // inf/nan
    EXPECT_EQ(f32_to_f16(f16_to_f32(v)), v) << std::hex << h;
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(fp32_from_bits(0x3f808000)), 0x3f80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(fp32_from_bits(0x3f818000)), 0x3f82);
}

TEST(Quant, Q8_0RoundTripWithinHalfStep) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; i++) x[i] = std::sin(i * 0.37f) * 3.0f;
  std::vector<BlockQ8_0> q(2);
  std::vector<float> y(64);
  from_float(DType::Q8_0, x.data(), q.data(), 64);
  to_float(DType::Q8_0, q.data(), y.data(), 64);
  for (int i = 0; i < 64; i++) EXPECT_NEAR(x[i], y[i], 3.0f / 127 * 0.51f + 1e-3f);
}
