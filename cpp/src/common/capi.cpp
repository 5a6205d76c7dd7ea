// The C API (include/certkit/certkit.h) over the C++ kernels: argument checks with the
// messages of the Python face (certkit/core/validation.py), no exception crosses the API.
#include "certkit/certkit.h"

#include <cmath>
#include <exception>
#include <string>

#include "certkit/rng.h"
#include "certkit/stats.h"
#include "common/build_info.h"

namespace {

thread_local std::string g_last_error;

int fail(int code, std::string msg) {
  g_last_error = std::move(msg);
  return code;
}

template <class Fn>
int guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return fail(CERTKIT_ERR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(CERTKIT_ERR_INTERNAL, "internal error: unknown exception");
  }
}

}  // namespace

extern "C" {

const char* certkit_version(void) { return CERTKIT_VERSION; }

const char* certkit_simd(void) { return certkit::build::simd(); }

const char* certkit_last_error(void) { return g_last_error.c_str(); }

int certkit_gaussian_f32(uint64_t seed, uint64_t stream, uint64_t offset, float sigma, float* out,
                         int64_t n) {
  if (!(std::isfinite(sigma) && sigma > 0.0f))
    return fail(CERTKIT_ERR_ARGUMENT, "sigma: expected a finite number > 0, got " + std::to_string(sigma));
  if (n < 0) return fail(CERTKIT_ERR_ARGUMENT, "n: expected n >= 0, got " + std::to_string(n));
  if (n == 0) return CERTKIT_OK;
  if (out == nullptr) return fail(CERTKIT_ERR_ARGUMENT, "out: expected a buffer of n floats, got NULL");
  if (uint64_t(n) > ~uint64_t(0) - offset)
    return fail(CERTKIT_ERR_ARGUMENT, "offset: offset + n exceeds the 2**64 stream length");
  return guarded([&] {
    certkit::rng::fill_f32(out, 1, n, seed, &stream, &offset, certkit::rng::Dist::Normal, 0.0f, sigma);
    return CERTKIT_OK;
  });
}

int certkit_clopper_pearson(int64_t k, int64_t n, double alpha, int side, double* out) {
  if (!(std::isfinite(alpha) && alpha > 0.0 && alpha < 1.0))
    return fail(CERTKIT_ERR_ARGUMENT, "alpha: expected a value in (0, 1), got " + std::to_string(alpha));
  if (side < 0 || side > 2)
    return fail(CERTKIT_ERR_ARGUMENT, "side: expected 0 (lower), 1 (upper) or 2 (two-sided), got " +
                                          std::to_string(side));
  if (n < 1) return fail(CERTKIT_ERR_ARGUMENT, "n: expected n >= 1, got " + std::to_string(n));
  if (k < 0 || k > n)
    return fail(CERTKIT_ERR_ARGUMENT, "k: expected 0 <= k <= n, got k=" + std::to_string(k) +
                                          ", n=" + std::to_string(n));
  if (out == nullptr) return fail(CERTKIT_ERR_ARGUMENT, "out: expected a buffer, got NULL");
  return guarded([&] {
    // The array driver is what certkit.core.stats.clopper_pearson calls: identical values.
    const int64_t bad = certkit::stats::clopper_pearson_array(&k, &n, 1, true, alpha,
                                                              certkit::stats::Side(side), out);
    if (bad != 0) return fail(CERTKIT_ERR_ARGUMENT, "k: expected 0 <= k <= n");
    return CERTKIT_OK;
  });
}

}  // extern "C"
