// CPU fills for the Philox sampler: tiles of blocks computed in vectorisable
// structure-of-arrays loops, threads over tiles and rows (OpenMP).
#include <algorithm>
#include <cmath>
#include <memory>
#include <cstring>
#include <vector>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "common/parallel.h"
#include "rng/philox.h"
#include "certkit/rng.h"
#include "common/dispatch.h"

namespace certkit {
namespace rng {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)
namespace {

constexpr int64_t kTile = 512;  // blocks per tile

#if defined(__AVX2__) && !defined(__AVX512F__)
// AVX2 Philox on 8 blocks at once (the compiler's vectorisation of the scalar round spent
// most of its time shuffling 64-bit products; no faster than SSE4.2). 32x32 -> 64-bit
// products of the even and odd lanes, recombined into hi / lo words with blends: the same
// words as philox4x32_10.
inline void mulhilo8(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i pe = _mm256_mul_epu32(a, m);
  const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

// Blocks [b0, b0 + nb - nb % 8) into w; returns how many it did.
inline int64_t philox_tile_avx2(uint32_t k0, uint32_t k1, uint32_t s0, uint32_t s1, uint64_t b0,
                                int64_t nb, uint32_t* __restrict w0, uint32_t* __restrict w1,
                                uint32_t* __restrict w2, uint32_t* __restrict w3) {
  const __m256i m0 = _mm256_set1_epi32(int(0xD2511F53u));
  const __m256i m1 = _mm256_set1_epi32(int(0xCD9E8D57u));
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8) {
    alignas(32) uint32_t lo[8], hi[8];
    for (int j = 0; j < 8; ++j) {
      const uint64_t blk = b0 + uint64_t(i + j);
      lo[j] = uint32_t(blk);
      hi[j] = uint32_t(blk >> 32);
    }
    __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
    __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
    __m256i c2 = _mm256_set1_epi32(int(s0));
    __m256i c3 = _mm256_set1_epi32(int(s1));
    uint32_t ka = k0, kb = k1;
    for (int r = 0; r < 10; ++r) {
      __m256i hi0, lo0, hi1, lo1;
      mulhilo8(c0, m0, hi0, lo0);
      mulhilo8(c2, m1, hi1, lo1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(int(ka)));
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(int(kb)));
      c1 = lo1;
      c3 = lo0;
      ka += 0x9E3779B9u;
      kb += 0xBB67AE85u;
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w0 + i), c0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w1 + i), c1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w2 + i), c2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w3 + i), c3);
  }
  return i;
}
#endif

// Raw words of blocks [b0, b0 + nb) into w (4 arrays of kTile). Always inlined, so that each
// caller below vectorises it with its own vector width.
__attribute__((always_inline)) inline void philox_tile_body(
    uint64_t seed, uint64_t stream, uint64_t b0, int64_t nb, uint32_t* __restrict w0,
    uint32_t* __restrict w1, uint32_t* __restrict w2, uint32_t* __restrict w3) {
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  const uint32_t s0 = uint32_t(stream), s1 = uint32_t(stream >> 32);
  int64_t i0 = 0;
#if defined(__AVX2__) && !defined(__AVX512F__)
  i0 = philox_tile_avx2(k0, k1, s0, s1, b0, nb, w0, w1, w2, w3);
#endif
#pragma omp simd
  for (int64_t i = i0; i < nb; ++i) {
    const uint64_t blk = b0 + uint64_t(i);
    uint32_t c0 = uint32_t(blk), c1 = uint32_t(blk >> 32), c2 = s0, c3 = s1;
    philox4x32_10(c0, c1, c2, c3, k0, k1);
    w0[i] = c0;
    w1[i] = c1;
    w2[i] = c2;
    w3[i] = c3;
  }
}

// The widest vectors the variant has (512-bit in the avx512 variant): the float32 fills,
// whose transforms are vectorised too.
inline void philox_tile(uint64_t seed, uint64_t stream, uint64_t b0, int64_t nb,
                        uint32_t* __restrict w0, uint32_t* __restrict w1,
                        uint32_t* __restrict w2, uint32_t* __restrict w3) {
  philox_tile_body(seed, stream, b0, nb, w0, w1, w2, w3);
}

// At most 256-bit vectors, for the float64 fills: their time goes to the scalar libm log /
// sincos after each tile, and 512-bit integer multiplies just before slowed that scalar code
// (most likely the AVX-512 clock licence): gaussian f64, 1M, one thread, 18.3 ms with zmm
// vs 16.7 ms with ymm, as fast as a -march=native build (whose tuning prefers 256-bit).
// Same words either way; a no-op below AVX-512.
CERTKIT_PREFER_256 void philox_tile_narrow(uint64_t seed, uint64_t stream, uint64_t b0, int64_t nb,
                        uint32_t* __restrict w0, uint32_t* __restrict w1,
                        uint32_t* __restrict w2, uint32_t* __restrict w3) {
  philox_tile_body(seed, stream, b0, nb, w0, w1, w2, w3);
}

struct TileF32 {
  alignas(64) uint32_t w[4][kTile];
  alignas(64) float v[4 * kTile];
};

inline void transform_f32(TileF32& t, int64_t nb, Dist dist, float a, float b) {
  float* __restrict v = t.v;
  const uint32_t* __restrict w0 = t.w[0];
  const uint32_t* __restrict w1 = t.w[1];
  const uint32_t* __restrict w2 = t.w[2];
  const uint32_t* __restrict w3 = t.w[3];
  if (dist == Dist::Normal) {
#pragma omp simd
    for (int64_t i = 0; i < nb; ++i) {
      float o0, o1, o2, o3;
      normal4f(w0[i], w1[i], w2[i], w3[i], o0, o1, o2, o3);
      v[4 * i + 0] = a + b * o0;
      v[4 * i + 1] = a + b * o1;
      v[4 * i + 2] = a + b * o2;
      v[4 * i + 3] = a + b * o3;
    }
  } else if (dist == Dist::Uniform) {
    const float span = b - a;
#pragma omp simd
    for (int64_t i = 0; i < nb; ++i) {
      v[4 * i + 0] = a + span * u32_to_open01f(w0[i]);
      v[4 * i + 1] = a + span * u32_to_open01f(w1[i]);
      v[4 * i + 2] = a + span * u32_to_open01f(w2[i]);
      v[4 * i + 3] = a + span * u32_to_open01f(w3[i]);
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < nb; ++i) {
      v[4 * i + 0] = a + b * laplace_std(w0[i]);
      v[4 * i + 1] = a + b * laplace_std(w1[i]);
      v[4 * i + 2] = a + b * laplace_std(w2[i]);
      v[4 * i + 3] = a + b * laplace_std(w3[i]);
    }
  }
}

// Fill out[0:n) with float32 elements [off, off + n) of (seed, stream).
void fill_row_f32(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t off, Dist dist,
                  float a, float b, TileF32& t) {
  if (n <= 0) return;
  const uint64_t first_block = off / 4;
  const uint64_t last_block = (off + uint64_t(n) - 1) / 4;
  uint64_t written = 0;
  for (uint64_t b0 = first_block; b0 <= last_block; b0 += kTile) {
    const int64_t nb = int64_t(std::min<uint64_t>(kTile, last_block - b0 + 1));
    philox_tile(seed, stream, b0, nb, t.w[0], t.w[1], t.w[2], t.w[3]);
    transform_f32(t, nb, dist, a, b);
    const uint64_t tile_first = b0 * 4;  // element index of t.v[0]
    const uint64_t lo = std::max<uint64_t>(tile_first, off);
    const uint64_t hi = std::min<uint64_t>(tile_first + uint64_t(nb) * 4, off + uint64_t(n));
    std::memcpy(out + written, t.v + (lo - tile_first), (hi - lo) * sizeof(float));
    written += hi - lo;
  }
}

struct TileF64 {
  alignas(64) uint32_t w[4][kTile];
  alignas(64) double v[2 * kTile];
};

inline void transform_f64(TileF64& t, int64_t nb, Dist dist, double a, double b) {
  for (int64_t i = 0; i < nb; ++i) {
    const double u1 = u64_to_open01(t.w[0][i], t.w[1][i]);
    const double u2 = u64_to_open01(t.w[2][i], t.w[3][i]);
    if (dist == Dist::Normal) {
      const double r = std::sqrt(-2.0 * std::log(u1));
      const double th = 6.283185307179586476925 * u2;
      t.v[2 * i] = a + b * (r * std::cos(th));
      t.v[2 * i + 1] = a + b * (r * std::sin(th));
    } else if (dist == Dist::Uniform) {
      t.v[2 * i] = a + (b - a) * u1;
      t.v[2 * i + 1] = a + (b - a) * u2;
    } else {
      const double us[2] = {u1, u2};
      for (int j = 0; j < 2; ++j) {
        const double s = us[j] - 0.5;
        const double mag = -std::log1p(-2.0 * std::fabs(s));
        t.v[2 * i + j] = a + b * (s < 0 ? -mag : mag);
      }
    }
  }
}

void fill_row_f64(double* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t off,
                  Dist dist, double a, double b, TileF64& t) {
  if (n <= 0) return;
  const uint64_t first_block = off / 2;
  const uint64_t last_block = (off + uint64_t(n) - 1) / 2;
  uint64_t written = 0;
  for (uint64_t b0 = first_block; b0 <= last_block; b0 += kTile) {
    const int64_t nb = int64_t(std::min<uint64_t>(kTile, last_block - b0 + 1));
    philox_tile_narrow(seed, stream, b0, nb, t.w[0], t.w[1], t.w[2], t.w[3]);
    transform_f64(t, nb, dist, a, b);
    const uint64_t tile_first = b0 * 2;
    const uint64_t lo = std::max<uint64_t>(tile_first, off);
    const uint64_t hi = std::min<uint64_t>(tile_first + uint64_t(nb) * 2, off + uint64_t(n));
    std::memcpy(out + written, t.v + (lo - tile_first), (hi - lo) * sizeof(double));
    written += hi - lo;
  }
}

// Splits the (B, M) fill into independent pieces of about `piece` elements, and hands
// each thread a run of pieces (>= ~32K elements of work) with one scratch tile, so many
// short rows (B large, M small) cost one allocation per thread rather than per row.
template <class Tile, class RowFn>
void fill_rows(int64_t B, int64_t M, const uint64_t* offsets, int64_t piece, RowFn&& row_fn) {
  if (B <= 0 || M <= 0) return;
  const int64_t per_row = (M + piece - 1) / piece;
  const int64_t total = B * per_row;
  const int64_t work_per_piece = std::min(piece, M);
  // Fills under ~256K values stay on one thread: an OpenMP region costs more than the
  // work there, and far more when the machine is oversubscribed.
  const int64_t grain = (B * M < (int64_t(1) << 18))
                            ? total
                            : std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, work_per_piece));
  parallel_for(total, grain, [&](int64_t lo, int64_t hi) {
    std::unique_ptr<Tile> tile(new Tile);
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t r = p / per_row;
      const int64_t c = p % per_row;
      const int64_t start = c * piece;
      const int64_t len = std::min(piece, M - start);
      row_fn(r, start, len, offsets[r] + uint64_t(start), *tile);
    }
  });
}

}  // namespace

void fill_f32(float* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
              const uint64_t* offsets, Dist dist, float a, float b) {
  fill_rows<TileF32>(B, M, offsets, 1 << 16,
                     [&](int64_t r, int64_t start, int64_t len, uint64_t off, TileF32& t) {
                       fill_row_f32(out + r * M + start, len, seed, streams[r], off, dist, a, b, t);
                     });
}

void fill_f64(double* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
              const uint64_t* offsets, Dist dist, double a, double b) {
  fill_rows<TileF64>(B, M, offsets, 1 << 15,
                     [&](int64_t r, int64_t start, int64_t len, uint64_t off, TileF64& t) {
                       fill_row_f64(out + r * M + start, len, seed, streams[r], off, dist, a, b, t);
                     });
}

void fill_bits(uint32_t* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
               const uint64_t* offsets) {
  struct TileBits {
    alignas(64) uint32_t w[4][kTile];
  };
  fill_rows<TileBits>(B, M, offsets, 1 << 16,
                      [&](int64_t r, int64_t start, int64_t len, uint64_t off, TileBits& t) {
                        uint32_t* dst = out + r * M + start;
                        const uint64_t first_block = off / 4;
                        const uint64_t last_block = (off + uint64_t(len) - 1) / 4;
                        for (uint64_t b0 = first_block; b0 <= last_block; b0 += kTile) {
                          const int64_t nb = int64_t(std::min<uint64_t>(kTile, last_block - b0 + 1));
                          philox_tile(seed, streams[r], b0, nb, t.w[0], t.w[1], t.w[2], t.w[3]);
                          for (int64_t i = 0; i < nb; ++i) {
                            for (int j = 0; j < 4; ++j) {
                              const uint64_t e = (b0 + uint64_t(i)) * 4 + uint64_t(j);
                              if (e >= off && e < off + uint64_t(len)) dst[e - off] = t.w[j][i];
                            }
                          }
                        }
                      });
}

// The instruction set this copy was compiled for (a probe that the dispatch really runs
// the variant it reports; tested in test_simd_dispatch.py).
int compiled_isa() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  return 2;
#elif defined(__AVX2__) && defined(__FMA__)
  return 1;
#else
  return 0;
#endif
}

}  // namespace CERTKIT_ISA
}  // namespace rng
}  // namespace certkit
