#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mmap.h"
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

// Dropping a mapping's pages (done for packed weights) loses nothing: the bytes read back from
// the file; ranges outside the mapping are ignored.
TEST(Core, MappedFileDropPagesKeepsContents) {
  const std::string path = ::testing::TempDir() + "kite_drop_pages.bin";
  std::vector<uint8_t> bytes(3 * 4096 + 100);
  for (size_t i = 0; i < bytes.size(); i++) bytes[i] = uint8_t(i * 7 + 3);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  auto f = kite::MappedFile::open(path);
  ASSERT_EQ(f->size(), bytes.size());
  ASSERT_EQ(0, std::memcmp(f->data(), bytes.data(), bytes.size()));
  f->drop_pages(f->data() + 10, f->size() - 20);
  f->drop_pages(bytes.data(), bytes.size());  // not in the mapping: ignored
  EXPECT_EQ(0, std::memcmp(f->data(), bytes.data(), bytes.size()));
  std::remove(path.c_str());
}
