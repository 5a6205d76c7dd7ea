// Calls certkit's core from C++: the C API (certkit/certkit.h) and the C++ API
// (certkit/rng.h, certkit/stats.h). Prints values as exact hex floats so that a test can
// compare them with the Python API bit for bit (packages/core/tests/test_embed.py).
#include <certkit/certkit.h>
#include <certkit/rng.h>
#include <certkit/stats.h>
#include <certkit/version.h>

#include <cstdint>
#include <cstdio>
#include <vector>

int main() {
  std::printf("version %s %d.%d\n", certkit_version(), CERTKIT_VERSION_MAJOR, CERTKIT_VERSION_MINOR);
  std::printf("simd %s\n", certkit_simd());

  // C API: 8 draws of N(0, 0.5^2), elements [3, 11) of stream (seed 42, stream 7)
  float g[8];
  if (certkit_gaussian_f32(42, 7, 3, 0.5f, g, 8) != 0) {
    std::fprintf(stderr, "error: %s\n", certkit_last_error());
    return 1;
  }
  std::printf("gaussian_c");
  for (float v : g) std::printf(" %a", double(v));
  std::printf("\n");

  // C++ API: the same draws through the (B, M) row fill
  std::vector<float> h(8);
  const uint64_t stream = 7, offset = 3;
  certkit::rng::fill_f32(h.data(), 1, 8, 42, &stream, &offset, certkit::rng::Dist::Normal, 0.0f, 0.5f);
  std::printf("gaussian_cpp");
  for (float v : h) std::printf(" %a", double(v));
  std::printf("\n");

  // Clopper-Pearson: 990 successes in 1000 trials, alpha = 0.001
  double lo[1], two[2];
  if (certkit_clopper_pearson(990, 1000, 0.001, CERTKIT_SIDE_LOWER, lo) != 0 ||
      certkit_clopper_pearson(990, 1000, 0.001, CERTKIT_SIDE_TWO_SIDED, two) != 0) {
    std::fprintf(stderr, "error: %s\n", certkit_last_error());
    return 1;
  }
  std::printf("cp_lower %a\n", lo[0]);
  std::printf("cp_two_sided %a %a\n", two[0], two[1]);
  std::printf("cp_lower_cpp %a\n", certkit::stats::cp_lower(990, 1000, 0.001));

  // bad input: a non-zero code and a message naming the argument
  const int rc = certkit_clopper_pearson(5, 4, 0.05, CERTKIT_SIDE_LOWER, lo);
  std::printf("error %d %s\n", rc, certkit_last_error());
  return 0;
}
