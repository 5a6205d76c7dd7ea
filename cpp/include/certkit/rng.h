// Counter-based sampling (Philox4x32-10). See philox.h for the stream layout.
//
// Every fill writes rows of a (B, M) C-contiguous buffer: row b holds elements
// [offsets[b], offsets[b] + M) of the stream (seed, streams[b]). B = 1 is the plain fill.
#pragma once
#include <cstdint>

namespace certkit {
namespace rng {

enum class Dist : int { Normal = 0, Uniform = 1, Laplace = 2 };

// out: (B, M) float32. For Normal: out = a + b * N(0,1); Uniform: a + (b - a) * U(0,1);
// Laplace: a + b * Laplace(0,1).
void fill_f32(float* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
              const uint64_t* offsets, Dist dist, float a, float b);
// out: (B, M) float64, same meaning. float64 element j uses block j / 2.
void fill_f64(double* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
              const uint64_t* offsets, Dist dist, double a, double b);
// out: (B, M) uint32 raw Philox words; element j is word j % 4 of block j / 4.
void fill_bits(uint32_t* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
               const uint64_t* offsets);

}  // namespace rng
}  // namespace certkit
