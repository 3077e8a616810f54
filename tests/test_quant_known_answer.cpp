// Known-answer decoding: blocks whose bytes are set by hand, checked against values worked out
// from the GGUF layout (the literal numbers in the comments), and random blocks checked against
// a second, independent decoder written here from the layout description with generic
// bit-field reads. Every comparison is exact: to_float must reproduce ggml's float32 formulas
// bit for bit, so the expected values below are evaluated in the same operation order.
#include <gtest/gtest.h>

// The expected values are computed here as a*b - c with two roundings, like the decoders (see
// src/quant/quant_impl.h): no FMA contraction in this file either.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "quant/quant.h"

using namespace kite;

namespace {

constexpr uint16_t kHalf0_125 = 0x3000, kHalf0_25 = 0x3400, kHalf0_5 = 0x3800, kHalf1 = 0x3C00,
                   kHalfMinus1 = 0xBC00;

template <class Block>
std::vector<float> decode(DType t, const Block& b) {
  const int n = dtype_traits(t).block_size;
  EXPECT_EQ(sizeof(Block), static_cast<size_t>(dtype_traits(t).type_size));
  std::vector<float> y(n);
  to_float(t, &b, y.data(), n);
  return y;
}

TEST(QuantKnownAnswer, Q4_0) {
  BlockQ4_0 b{};
  b.d = kHalf0_5;
  b.qs[0] = 0xF0;  // element 0: q=0 -> (0-8)*0.5 = -4; element 16: q=15 -> 3.5
  b.qs[5] = 0x98;  // element 5: q=8 -> 0; element 21: q=9 -> 0.5
  const auto y = decode(DType::Q4_0, b);
  EXPECT_EQ(y[0], -4.0f);
  EXPECT_EQ(y[16], 3.5f);
  EXPECT_EQ(y[5], 0.0f);
  EXPECT_EQ(y[21], 0.5f);
  EXPECT_EQ(y[1], -4.0f);
}

TEST(QuantKnownAnswer, Q8_0) {
  BlockQ8_0 b{};
  b.d = kHalf0_25;
  b.qs[0] = -128;
  b.qs[31] = 127;
  b.qs[7] = -3;
  const auto y = decode(DType::Q8_0, b);
  EXPECT_EQ(y[0], -32.0f);
  EXPECT_EQ(y[31], 31.75f);
  EXPECT_EQ(y[7], -0.75f);
  EXPECT_EQ(y[8], 0.0f);
}

TEST(QuantKnownAnswer, Q4_1) {
  BlockQ4_1 b{};
  b.d = kHalf0_5;
  b.m = kHalfMinus1;
  b.qs[0] = 0x21;  // element 0: q=1 -> 1*0.5-1 = -0.5; element 16: q=2 -> 0
  b.qs[15] = 0xF0; // element 15: q=0 -> -1; element 31: q=15 -> 6.5
  const auto y = decode(DType::Q4_1, b);
  EXPECT_EQ(y[0], -0.5f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[15], -1.0f);
  EXPECT_EQ(y[31], 6.5f);
  EXPECT_EQ(y[3], -1.0f);
}

TEST(QuantKnownAnswer, Q5_0) {
  BlockQ5_0 b{};
  b.d = kHalf0_5;
  b.qs[0] = 0x0F;   // element 0 low bits 15, element 16 low bits 0
  b.qs[15] = 0x30;  // element 15 low bits 0, element 31 low bits 3
  // qh as little-endian uint32: bit 0 (element 0), bit 16 (element 16), bit 31 (element 31).
  b.qh[0] = 0x01;
  b.qh[2] = 0x01;
  b.qh[3] = 0x80;
  const auto y = decode(DType::Q5_0, b);
  EXPECT_EQ(y[0], 7.5f);    // q = 31 -> (31-16)*0.5
  EXPECT_EQ(y[16], 0.0f);   // q = 16
  EXPECT_EQ(y[31], 1.5f);   // q = 19
  EXPECT_EQ(y[15], -8.0f);  // q = 0
  EXPECT_EQ(y[1], -8.0f);
}

TEST(QuantKnownAnswer, Q5_1) {
  BlockQ5_1 b{};
  b.d = kHalf0_5;
  b.m = kHalf1;
  b.qs[0] = 0x0F;
  b.qs[15] = 0x30;
  b.qh[0] = 0x01;
  b.qh[2] = 0x01;
  b.qh[3] = 0x80;
  const auto y = decode(DType::Q5_1, b);
  EXPECT_EQ(y[0], 16.5f);  // q = 31 -> 31*0.5+1
  EXPECT_EQ(y[16], 9.0f);  // q = 16
  EXPECT_EQ(y[31], 10.5f); // q = 19
  EXPECT_EQ(y[15], 1.0f);  // q = 0
}

TEST(QuantKnownAnswer, Q2_K) {
  BlockQ2_K b{};
  b.d = kHalf1;
  b.dmin = kHalf0_5;
  b.scales[0] = 0x23;  // sub-block 0 (elements 0-15): scale 3, min 2 -> y = 3q - 1
  b.scales[2] = 0x05;  // sub-block 2 (32-47): scale 5, min 0
  b.scales[4] = 0x12;  // sub-block 4 (64-79): scale 2, min 1 -> y = 2q - 0.5
  b.scales[6] = 0xF1;  // sub-block 6 (96-111): scale 1, min 15 -> y = q - 7.5
  b.scales[8] = 0x11;  // sub-block 8 (128-143): scale 1, min 1 -> y = q - 0.5
  b.qs[0] = 0xE4;      // 2-bit fields 0,1,2,3: elements 0, 32, 64, 96
  b.qs[32] = 0x03;     // element 128: q = 3
  const auto y = decode(DType::Q2_K, b);
  EXPECT_EQ(y[0], -1.0f);   // 3*0 - 1
  EXPECT_EQ(y[32], 5.0f);   // 5*1 - 0
  EXPECT_EQ(y[64], 3.5f);   // 2*2 - 0.5
  EXPECT_EQ(y[96], -4.5f);  // 1*3 - 7.5
  EXPECT_EQ(y[128], 2.5f);  // 1*3 - 0.5
  EXPECT_EQ(y[1], -1.0f);   // q = 0 in sub-block 0
  EXPECT_EQ(y[16], 0.0f);   // sub-block 1: scale 0, min 0
}

TEST(QuantKnownAnswer, Q3_K) {
  BlockQ3_K b{};
  b.d = kHalf0_5;
  // Sub-block 0 scale +3: stored 35 = 0b10'0011 -> low nibble 3 in scales[0], high bits 2 in
  // scales[8] bits 0-1. Sub-block 9 scale -5: stored 27 = 0b01'1011 -> low nibble 11 in the high
  // nibble of scales[1], high bits 1 in scales[9] bits 4-5. Every other scale is stored 0: -32.
  b.scales[0] = 0x03;
  b.scales[8] = 0x02;
  b.scales[1] = 0xB0;
  b.scales[9] = 0x10;
  b.qs[0] = 0x0E;     // element 0: low bits 2; element 32: low bits 3
  b.hmask[0] = 0x03;  // element 0 and element 32 have the high bit (no -4)
  b.qs[48] = 0x01;    // element 144 (half 1, group 0, l 16): low bits 1
  b.hmask[16] = 0x10; // element 144 high bit (bit 4*1 + 0)
  const auto y = decode(DType::Q3_K, b);
  EXPECT_EQ(y[0], 3.0f);     // 0.5*3 * 2
  EXPECT_EQ(y[1], -6.0f);    // 0.5*3 * (0-4)
  EXPECT_EQ(y[32], -48.0f);  // 0.5*-32 * 3
  EXPECT_EQ(y[144], -2.5f);  // 0.5*-5 * 1
  EXPECT_EQ(y[145], 10.0f);  // 0.5*-5 * (0-4)
  EXPECT_EQ(y[16], 64.0f);   // 0.5*-32 * (0-4)
}

TEST(QuantKnownAnswer, Q4_K) {
  BlockQ4_K b{};
  b.d = kHalf0_5;
  b.dmin = kHalf0_25;
  b.scales[0] = 10;  // sub-block 0: scale 10
  b.scales[4] = 4;   // sub-block 0: min 4
  // Sub-block 5: scale 37 = 0b10'0101, min 50 = 0b11'0010.
  b.scales[9] = 0x25;  // low nibbles: scale 5, min 2
  b.scales[1] = 0x80;  // scale bits 4-5 (2) in bits 6-7 of byte 5 - 4
  b.scales[5] = 0xC0;  // min bits 4-5 (3) in bits 6-7 of byte 5
  b.qs[0] = 0x07;      // element 0: q = 7; element 32: q = 0
  b.qs[67] = 0xD0;     // element 131 (sub-block 4): q = 0; element 163 (sub-block 5): q = 13
  const auto y = decode(DType::Q4_K, b);
  EXPECT_EQ(y[0], 34.0f);    // 0.5*10*7 - 0.25*4
  EXPECT_EQ(y[1], -1.0f);    // q = 0
  EXPECT_EQ(y[32], 0.0f);    // sub-block 1: scale 0 (0x80 & 63), min 0
  EXPECT_EQ(y[163], 228.0f); // 0.5*37*13 - 0.25*50
  EXPECT_EQ(y[160], -12.5f); // q = 0 in sub-block 5
  EXPECT_EQ(y[131], 0.0f);
}

TEST(QuantKnownAnswer, Q5_K) {
  BlockQ5_K b{};
  b.d = kHalf0_5;
  b.dmin = kHalf0_25;
  b.scales[0] = 10;
  b.scales[4] = 4;
  b.scales[9] = 0x25;
  b.scales[1] = 0x80;
  b.scales[5] = 0xC0;
  b.qs[0] = 0x07;
  b.qs[67] = 0xD0;
  b.qh[0] = 0x01;  // element 0: bit 4 (sub-block 0 -> bit 0)
  b.qh[3] = 0x20;  // element 163: bit 4 (sub-block 5 -> bit 5)
  const auto y = decode(DType::Q5_K, b);
  EXPECT_EQ(y[0], 114.0f);   // 0.5*10*23 - 1
  EXPECT_EQ(y[163], 524.0f); // 0.5*37*29 - 12.5
  EXPECT_EQ(y[3], -1.0f);    // qh[3] bit 0 is clear and qs[3] = 0: q = 0
}

TEST(QuantKnownAnswer, Q6_K) {
  BlockQ6_K b{};
  b.d = kHalf0_5;
  b.scales[0] = 3;
  b.scales[9] = -2;
  b.scales[15] = 127;
  b.ql[0] = 0x05;   // element 0: low bits 5
  b.qh[0] = 0x02;   // element 0: high bits 2 -> q = 37 - 32 = 5
  b.ql[80] = 0x0A;  // element 144 (half 1, group 0, l 16): low bits 10
  b.qh[48] = 0x01;  // element 144: high bits 1 -> q = 26 - 32 = -6
  b.ql[127] = 0xF0; // element 255 (half 1, group 3, l 31): low bits 15 (high nibble)
  b.qh[63] = 0xC0;  // element 255: high bits 3 -> q = 63 - 32 = 31
  const auto y = decode(DType::Q6_K, b);
  EXPECT_EQ(y[0], 7.5f);       // 0.5*3 * 5
  EXPECT_EQ(y[144], 6.0f);     // 0.5*-2 * -6
  EXPECT_EQ(y[255], 1968.5f);  // 0.5*127 * 31
  EXPECT_EQ(y[1], -48.0f);     // 0.5*3 * -32
}

TEST(QuantKnownAnswer, Q8_K) {
  BlockQ8_K b{};
  b.d = 0.125f;
  b.qs[5] = -7;
  b.qs[255] = 127;
  const auto y = decode(DType::Q8_K, b);
  EXPECT_EQ(y[5], -0.875f);
  EXPECT_EQ(y[255], 15.875f);
  EXPECT_EQ(y[0], 0.0f);
}

// The fixed llama.cpp rules, including their tie-breaking: Q8_0 rounds half away from zero
// (roundf), Q8_K rounds half to even (ggml's nearest_int) and maps the largest magnitude to -127.
TEST(QuantKnownAnswer, Q8_0AndQ8_KRoundingRules) {
  std::vector<float> x(QK8_0, 0.0f);
  x[0] = 127.0f;  // d = 1, 1/d = 1
  x[1] = 2.5f;
  x[2] = -2.5f;
  x[3] = 3.5f;
  BlockQ8_0 b8;
  from_float(DType::Q8_0, x.data(), &b8, QK8_0);
  EXPECT_EQ(b8.d, kHalf1);
  EXPECT_EQ(b8.qs[0], 127);
  EXPECT_EQ(b8.qs[1], 3);
  EXPECT_EQ(b8.qs[2], -3);
  EXPECT_EQ(b8.qs[3], 4);

  std::vector<float> k(QK_K, 0.0f);
  k[0] = -2.0f;               // largest magnitude, negative: iscale = -127 / -2 = 63.5
  k[1] = 1.0f / 127.0f;       // 0.5 -> 0 (half to even)
  k[2] = 3.0f / 127.0f;       // 1.5 -> 2
  k[17] = 5.0f / 127.0f;      // 2.5 -> 2
  k[255] = 2.0f;              // +127
  BlockQ8_K bk;
  from_float(DType::Q8_K, k.data(), &bk, QK_K);
  EXPECT_EQ(bk.d, 1.0f / 63.5f);
  EXPECT_EQ(bk.qs[0], -127);
  EXPECT_EQ(bk.qs[1], 0);
  EXPECT_EQ(bk.qs[2], 2);
  EXPECT_EQ(bk.qs[17], 2);
  EXPECT_EQ(bk.qs[255], 127);
  EXPECT_EQ(bk.bsums[0], -125);
  EXPECT_EQ(bk.bsums[1], 2);
  EXPECT_EQ(bk.bsums[15], 127);
  for (int g = 2; g < 15; g++) EXPECT_EQ(bk.bsums[g], 0);
}

// ---- random blocks vs an independent decoder ----------------------------------------------

// Reads `bits` bits starting at absolute bit position `pos` of a byte array (LSB-first).
int bits_at(const uint8_t* p, int pos, int bits) {
  int v = 0;
  for (int k = 0; k < bits; k++) v |= ((p[(pos + k) / 8] >> ((pos + k) % 8)) & 1) << k;
  return v;
}

// Random bytes for a block, with the fp16 scale fields replaced by sane values (random bytes
// could make inf/NaN scales).
template <class Block>
Block random_block(std::mt19937& rng) {
  Block b;
  uint8_t* p = reinterpret_cast<uint8_t*>(&b);
  for (size_t i = 0; i < sizeof(Block); i++) p[i] = static_cast<uint8_t>(rng());
  return b;
}
uint16_t random_scale(std::mt19937& rng) { return f32_to_f16(std::ldexp(1.0f + (rng() % 1000) / 1000.0f, -int(rng() % 12)) * ((rng() & 1) ? 1 : -1)); }

TEST(QuantKnownAnswer, RandomBlocksMatchIndependentDecoder) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 50; trial++) {
    {
      auto b = random_block<BlockQ4_1>(rng);
      b.d = random_scale(rng), b.m = random_scale(rng);
      const auto y = decode(DType::Q4_1, b);
      for (int e = 0; e < 32; e++) {
        const int q = bits_at(b.qs, 8 * (e % 16) + 4 * (e / 16), 4);
        ASSERT_EQ(y[e], q * f16_to_f32(b.d) + f16_to_f32(b.m)) << "Q4_1 element " << e;
      }
    }
    {
      auto b = random_block<BlockQ5_0>(rng);
      b.d = random_scale(rng);
      const auto y = decode(DType::Q5_0, b);
      for (int e = 0; e < 32; e++) {
        const int q = bits_at(b.qs, 8 * (e % 16) + 4 * (e / 16), 4) | (bits_at(b.qh, e, 1) << 4);
        ASSERT_EQ(y[e], (q - 16) * f16_to_f32(b.d)) << "Q5_0 element " << e;
      }
    }
    {
      auto b = random_block<BlockQ5_1>(rng);
      b.d = random_scale(rng), b.m = random_scale(rng);
      const auto y = decode(DType::Q5_1, b);
      for (int e = 0; e < 32; e++) {
        const int q = bits_at(b.qs, 8 * (e % 16) + 4 * (e / 16), 4) | (bits_at(b.qh, e, 1) << 4);
        ASSERT_EQ(y[e], q * f16_to_f32(b.d) + f16_to_f32(b.m)) << "Q5_1 element " << e;
      }
    }
    {
      auto b = random_block<BlockQ2_K>(rng);
      b.d = random_scale(rng), b.dmin = random_scale(rng);
      const auto y = decode(DType::Q2_K, b);
      for (int e = 0; e < QK_K; e++) {
        const int h = e / 128, g = (e / 32) % 4, l = e % 32;
        const int q = bits_at(b.qs, 8 * (32 * h + l) + 2 * g, 2);
        const int sc = bits_at(b.scales, 8 * (e / 16), 4), mn = bits_at(b.scales, 8 * (e / 16) + 4, 4);
        const float dl = f16_to_f32(b.d) * sc, ml = f16_to_f32(b.dmin) * mn;
        ASSERT_EQ(y[e], dl * q - ml) << "Q2_K element " << e;
      }
    }
    {
      auto b = random_block<BlockQ3_K>(rng);
      b.d = random_scale(rng);
      const auto y = decode(DType::Q3_K, b);
      for (int e = 0; e < QK_K; e++) {
        const int h = e / 128, g = (e / 32) % 4, l = e % 32, j = e / 16;
        const int q = bits_at(b.qs, 8 * (32 * h + l) + 2 * g, 2) - (bits_at(b.hmask, 8 * l + 4 * h + g, 1) ? 0 : 4);
        const int sc_low = bits_at(b.scales, 8 * (j % 8) + 4 * (j / 8), 4);
        const int sc_high = bits_at(b.scales, 8 * (8 + j % 4) + 2 * (j / 4), 2);
        const float dl = f16_to_f32(b.d) * ((sc_low | (sc_high << 4)) - 32);
        ASSERT_EQ(y[e], dl * q) << "Q3_K element " << e;
      }
    }
    for (DType t : {DType::Q4_K, DType::Q5_K}) {
      // Q4_K and Q5_K share the scale layout and the low 4 bits of the quants.
      BlockQ5_K b5 = random_block<BlockQ5_K>(rng);
      BlockQ4_K b4;
      b5.d = random_scale(rng), b5.dmin = random_scale(rng);
      b4.d = b5.d, b4.dmin = b5.dmin;
      std::memcpy(b4.scales, b5.scales, 12);
      std::memcpy(b4.qs, b5.qs, QK_K / 2);
      const auto y = t == DType::Q4_K ? decode(t, b4) : decode(t, b5);
      for (int e = 0; e < QK_K; e++) {
        const int j = e / 32;
        int sc, mn;
        if (j < 4) {
          sc = bits_at(b5.scales, 8 * j, 6);
          mn = bits_at(b5.scales, 8 * (j + 4), 6);
        } else {
          sc = bits_at(b5.scales, 8 * (j + 4), 4) | (bits_at(b5.scales, 8 * (j - 4) + 6, 2) << 4);
          mn = bits_at(b5.scales, 8 * (j + 4) + 4, 4) | (bits_at(b5.scales, 8 * j + 6, 2) << 4);
        }
        int q = bits_at(b5.qs, 8 * (32 * (e / 64) + e % 32) + 4 * ((e / 32) % 2), 4);
        if (t == DType::Q5_K) q += 16 * bits_at(b5.qh, 8 * (e % 32) + j, 1);
        const float d1 = f16_to_f32(b5.d) * sc, m1 = f16_to_f32(b5.dmin) * mn;
        ASSERT_EQ(y[e], d1 * q - m1) << dtype_name(t) << " element " << e;
      }
    }
    {
      auto b = random_block<BlockQ6_K>(rng);
      b.d = random_scale(rng);
      const auto y = decode(DType::Q6_K, b);
      for (int e = 0; e < QK_K; e++) {
        const int h = e / 128, g = (e / 32) % 4, l = e % 32;
        const int low = bits_at(b.ql, 8 * (64 * h + 32 * (g % 2) + l) + 4 * (g / 2), 4);
        const int high = bits_at(b.qh, 8 * (32 * h + l) + 2 * g, 2);
        const float ds = f16_to_f32(b.d) * b.scales[e / 16];
        ASSERT_EQ(y[e], ds * ((low | (high << 4)) - 32)) << "Q6_K element " << e;
      }
    }
  }
}

// Encoders write what the decoders read: bytes -> floats -> bytes is stable for values that
// are exactly representable, so a second quantization of decoded data decodes to the same
// floats (for every type whose encoder searches; the fixed rules are checked in the model tests).
TEST(QuantKnownAnswer, RequantizingDecodedDataIsStable) {
  std::mt19937 rng(99);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (DType t : {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q4_K,
                  DType::Q5_K, DType::Q6_K, DType::Q8_0, DType::Q4_0}) {
    const int64_t n = QK_K * 4;
    std::vector<float> x(n), y(n), z(n);
    for (auto& v : x) v = nd(rng);
    std::vector<uint8_t> q(row_bytes(t, n));
    from_float(t, x.data(), q.data(), n);
    to_float(t, q.data(), y.data(), n);
    from_float(t, y.data(), q.data(), n);
    to_float(t, q.data(), z.data(), n);
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
      e += double(z[i] - y[i]) * (z[i] - y[i]);
      s += double(y[i]) * y[i];
    }
    // Not always bit-exact (another scale can give an equal error), but nearly lossless.
    EXPECT_LT(std::sqrt(e / s), 0.01) << dtype_name(t);
  }
}

}  // namespace
