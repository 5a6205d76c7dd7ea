/* certkit C API: a small, stable FFI surface of the compiled core (any language that can
 * call C). Link libcertkit_core (CMake: find_package(certkit_core CONFIG) -> certkit::core;
 * from Python: certkit.core.get_include(), get_library_dir(), get_cmake_dir()).
 *
 * Every function but certkit_version / certkit_last_error returns CERTKIT_OK (0) on success
 * and a non-zero code on bad input, with a one-line message naming the argument in
 * certkit_last_error() (thread-local; valid until the next call on the same thread).
 * The values equal the Python API's bit for bit (tested in packages/core/tests).
 */
#ifndef CERTKIT_CERTKIT_H_
#define CERTKIT_CERTKIT_H_

#include <stdint.h>

#include "certkit/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CERTKIT_OK 0
#define CERTKIT_ERR_ARGUMENT 1 /* an argument is out of its domain (the message names it) */
#define CERTKIT_ERR_INTERNAL 2 /* an exception inside the core (out of memory, ...) */

/* "MAJOR.MINOR.PATCH" of the library (== certkit.core.__version__). */
const char* certkit_version(void);

/* The SIMD variant the kernels run: "baseline", "avx2", "avx512" or "native". */
const char* certkit_simd(void);

/* out[0:n) = sigma * N(0, 1), float32 elements [offset, offset + n) of the Philox4x32-10
 * stream (seed, stream): the same values as
 *   certkit.core.gaussian_noise(n, sigma, seed, offset, numpy.float32, stream=stream).
 * sigma finite and > 0; n >= 0 (0 writes nothing); offset + n <= 2^64 - 1; out != NULL
 * when n > 0. */
int certkit_gaussian_f32(uint64_t seed, uint64_t stream, uint64_t offset, float sigma, float* out,
                         int64_t n);

#define CERTKIT_SIDE_LOWER 0
#define CERTKIT_SIDE_UPPER 1
#define CERTKIT_SIDE_TWO_SIDED 2

/* Exact Clopper-Pearson bound on a binomial proportion from k successes in n trials
 * (0 <= k <= n, n >= 1) at level alpha in (0, 1): the same values as
 * certkit.core.stats.clopper_pearson(k, n, alpha, side).
 *   side 0 (lower): out[0] with P[p >= out[0]] >= 1 - alpha;
 *   side 1 (upper): out[0] with P[p <= out[0]] >= 1 - alpha;
 *   side 2 (two-sided, alpha / 2 per side): out[0] = lower, out[1] = upper (out holds 2). */
int certkit_clopper_pearson(int64_t k, int64_t n, double alpha, int side, double* out);

/* The message of the last failed call on this thread ("" when none failed yet). */
const char* certkit_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* CERTKIT_CERTKIT_H_ */
