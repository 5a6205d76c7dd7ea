// Philox4x32-10 counter-based generator (Salmon, Moraes, Dror, Shaw, "Parallel random
// numbers: as easy as 1, 2, 3", SC'11) and the transforms certkit uses on top of it.
//
// One shared implementation body for the CPU and CUDA builds (CK_HD).
//
// Stream layout (the contract every sampler in certkit relies on):
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (block & 0xffffffff, block >> 32, stream & 0xffffffff, stream >> 32)
// float32 element j of (seed, stream) comes from block j / 4, word j % 4;
// float64 element j comes from block j / 2, words (2*(j%2), 2*(j%2)+1).
// Element j therefore never depends on chunking, thread count or how an offset is split.
//
// All arithmetic here is plain IEEE float/double with no FMA contraction (the build uses
// -ffp-contract=off / -fmad=false for this code), so CPU and GPU give identical bits.
#pragma once
#include <cstdint>

#include "common/hostdevice.h"

namespace certkit {
namespace rng {

struct Block4 {
  uint32_t w[4];
};

CK_HD void philox_round(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0,
                        uint32_t k1) {
  const uint64_t p0 = uint64_t(0xD2511F53u) * c0;
  const uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
  const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
  const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
  const uint32_t n0 = hi1 ^ c1 ^ k0;
  const uint32_t n2 = hi0 ^ c3 ^ k1;
  c0 = n0;
  c1 = lo1;
  c2 = n2;
  c3 = lo0;
}

// Philox4x32 with 10 rounds on counter (c0..c3) and key (k0, k1).
CK_HD void philox4x32_10(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0,
                         uint32_t k1) {
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    philox_round(c0, c1, c2, c3, k0, k1);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// ---- uniform conversions -----------------------------------------------------------
// float32 in (0, 1): 24 random bits, centred in their cell, never 0 or 1.
CK_HD float u32_to_open01f(uint32_t x) {
  return (float(x >> 8) + 0.5f) * 5.9604644775390625e-08f;  // 2^-24
}
// float64 in (0, 1): 53 random bits from two words, never 0 or 1.
CK_HD double u64_to_open01(uint32_t hi, uint32_t lo) {
  const uint64_t x = ((uint64_t(hi) << 32) | lo) >> 11;
  return (double(x) + 0.5) * 1.1102230246251565e-16;  // 2^-53
}

// ---- float32 transcendental kernels (branch-free, vectorisable) ----------------------
// Natural log for x in (0, 1]; max relative error ~1e-7 (float rounding level).
CK_HD float logf_open01(float x) {
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)).
  union {
    float f;
    uint32_t u;
  } v;
  v.f = x;
  int32_t e = int32_t((v.u >> 23) & 0xffu) - 127;
  v.u = (v.u & 0x007fffffu) | 0x3f800000u;  // m in [1, 2)
  float m = v.f;
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1 : e;
  const float t = (m - 1.0f) / (m + 1.0f);  // |t| <= 0.1716
  const float t2 = t * t;
  const float poly =
      2.0f + t2 * (0.6666666667f + t2 * (0.4f + t2 * (0.2857142857f + t2 * 0.2222222222f)));
  return float(e) * 0.693147180559945f + t * poly;
}

// sin and cos of 2*pi*u for u in (0, 1); absolute error ~1e-7.
CK_HD void sincos_2pi(float u, float& s, float& c) {
  // reduce to w in [-1/8, 1/8] and quadrant q (all exact in float)
  const float q = float(int32_t(u * 4.0f + 0.5f));  // nearest quarter, u>0
  const float w = u - q * 0.25f;
  const float p = w * 6.28318530717958648f;  // |p| <= pi/4
  const float p2 = p * p;
  const float sp =
      p * (1.0f + p2 * (-1.6666667e-1f + p2 * (8.3333333e-3f + p2 * (-1.98412698e-4f +
                                                                     p2 * 2.75573192e-6f))));
  const float cp =
      1.0f + p2 * (-0.5f + p2 * (4.16666667e-2f + p2 * (-1.38888889e-3f + p2 * (2.48015873e-5f -
                                                                               p2 * 2.75573192e-7f))));
  const int32_t qi = int32_t(q) & 3;
  // rotate (cp, sp) by qi quarter turns with selects only (no branches, exact):
  // qi: 0 -> (c, s) = (cp, sp); 1 -> (-sp, cp); 2 -> (-cp, -sp); 3 -> (sp, -cp)
  const bool swap = (qi & 1) != 0;
  const float x = swap ? sp : cp;
  const float y = swap ? cp : sp;
  const bool neg_c = ((qi + 1) & 2) != 0;
  const bool neg_s = (qi & 2) != 0;
  const float c1 = neg_c ? -x : x;
  const float s1 = neg_s ? -y : y;
  s = s1;
  c = c1;
}

// ---- distributions ------------------------------------------------------------------
// Two standard normals (float32) by Box-Muller from two words.
CK_HD void box_muller_f(uint32_t wa, uint32_t wb, float& n0, float& n1) {
  const float u1 = u32_to_open01f(wa);
  const float u2 = u32_to_open01f(wb);
  float r = -2.0f * logf_open01(u1);
  r = r > 0.0f ? r : 0.0f;
#if defined(__CUDA_ARCH__)
  r = __fsqrt_rn(r);
#else
  r = __builtin_sqrtf(r);
#endif
  float s, c;
  sincos_2pi(u2, s, c);
  n0 = r * c;
  n1 = r * s;
}

// Standard Laplace (float32, density e^{-|x|}/2) by inversion of one word.
CK_HD float laplace_std(uint32_t w) {
  const float s = u32_to_open01f(w) - 0.5f;  // (-0.5, 0.5), exact
  const float mag = -logf_open01(1.0f - 2.0f * (s < 0.0f ? -s : s));
  return s < 0.0f ? -mag : mag;
}

// 4 standard normals (float32) from one block: Box-Muller on (w0,w1) and (w2,w3).
CK_HD void normal4f(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, float& o0, float& o1,
                    float& o2, float& o3) {
  box_muller_f(w0, w1, o0, o1);
  box_muller_f(w2, w3, o2, o3);
}

}  // namespace rng
}  // namespace certkit
