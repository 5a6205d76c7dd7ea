// The public sampler entry points (rng.h): forward to the SIMD variant that runs
// (common/dispatch.h). Every variant gives identical bits (rng_cpu.cpp is compiled with
// -ffp-contract=off; tested in packages/core/tests/test_simd_dispatch.py).
#include "common/dispatch.h"
#include "certkit/rng.h"

namespace certkit {
namespace rng {

CERTKIT_DECLARE_VARIANTS(
    void fill_f32(float* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
                  const uint64_t* offsets, Dist dist, float a, float b);
    void fill_f64(double* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
                  const uint64_t* offsets, Dist dist, double a, double b);
    void fill_bits(uint32_t* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
                   const uint64_t* offsets);
    int compiled_isa();)

void fill_f32(float* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
              const uint64_t* offsets, Dist dist, float a, float b) {
  CERTKIT_DISPATCH(fill_f32, out, B, M, seed, streams, offsets, dist, a, b)
}

void fill_f64(double* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
              const uint64_t* offsets, Dist dist, double a, double b) {
  CERTKIT_DISPATCH(fill_f64, out, B, M, seed, streams, offsets, dist, a, b)
}

void fill_bits(uint32_t* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
               const uint64_t* offsets) {
  CERTKIT_DISPATCH(fill_bits, out, B, M, seed, streams, offsets)
}

}  // namespace rng

namespace simd {
int probe() {
  using namespace rng;  // NOLINT: the variant namespaces of the sampler
  CERTKIT_DISPATCH(compiled_isa, )
}
}  // namespace simd
}  // namespace certkit
