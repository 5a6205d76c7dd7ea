// CUDA entry points of the Philox sampler (built only with CERTKIT_CUDA=ON).
#pragma once
#include <cstdint>

namespace certkit {
namespace rng {
// out: device pointer to (B, M) float32; streams/offsets: host arrays of length B.
// dist: 0 normal (a + b·N), 1 uniform (a + (b-a)·U), 2 laplace (a + b·L).
void fill_f32_device(float* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
                     const uint64_t* offsets, int dist, float a, float b);
}  // namespace rng
}  // namespace certkit
