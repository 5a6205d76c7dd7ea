// Dense kernels shared by the spectral solvers (internal header): scalar helpers, a
// latency-bound dot product, and the Krylov basis products (BLAS when loaded, else own loops).
#pragma once
#include "common/dispatch.h"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

constexpr double kEps = std::numeric_limits<double>::epsilon();

// Whether v fits a 32-bit BLAS / LAPACK integer.
inline bool fits_int(int64_t v) { return v >= 0 && v < (int64_t{1} << 31); }

// sqrt(a^2 + b^2) without the cost of std::hypot on well-scaled input.
inline double fast_hypot(double a, double b) {
  const double m = std::max(std::fabs(a), std::fabs(b));
  if (m > 1e-150 && m < 1e150) return std::sqrt(a * a + b * b);
  return std::hypot(a, b);
}

// Dot product with four independent accumulators: the triangular solves chain one dot per
// row, so its latency (not its throughput) sets the speed.
inline double dot4(const double* a, const double* b, int64_t len) {
  typedef double v4 __attribute__((vector_size(32)));
  v4 s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
  int64_t t = 0;
  for (; t + 16 <= len; t += 16) {
    v4 a0, a1, a2, a3, b0, b1, b2, b3;
    std::memcpy(&a0, a + t, 32);
    std::memcpy(&a1, a + t + 4, 32);
    std::memcpy(&a2, a + t + 8, 32);
    std::memcpy(&a3, a + t + 12, 32);
    std::memcpy(&b0, b + t, 32);
    std::memcpy(&b1, b + t + 4, 32);
    std::memcpy(&b2, b + t + 8, 32);
    std::memcpy(&b3, b + t + 12, 32);
    s0 += a0 * b0;
    s1 += a1 * b1;
    s2 += a2 * b2;
    s3 += a3 * b3;
  }
  for (; t + 4 <= len; t += 4) {
    v4 a0, b0;
    std::memcpy(&a0, a + t, 32);
    std::memcpy(&b0, b + t, 32);
    s0 += a0 * b0;
  }
  const v4 s = (s0 + s1) + (s2 + s3);
  double r = (s[0] + s[1]) + (s[2] + s[3]);
  for (; t < len; ++t) r += a[t] * b[t];
  return r;
}

// ---------------------------------------------------- Krylov basis kernels -----------
// Q holds nq rows of length n (row-major). h[j] = Q[j] . x
// Own kernel (four rows per pass over x); also the supernodal backward solve's G^T u.
void qdots_own(const double* Q, int64_t nq, int64_t n, const double* x, double* h);
// The same through BLAS dgemv when LAPACK is loaded and nq >= 8.
void qdots(const double* Q, int64_t nq, int64_t n, const double* x, double* h);

// x -= sum_j h[j] Q[j]
void qaxpy(const double* Q, int64_t nq, int64_t n, const double* h, double* x);

// Yt (n, r) = Q^T Z^T with Z (r, p) and Q (p, n) row-major: the Ritz vectors as columns.
void ritz_vectors_t(const double* Z, int64_t r, int64_t p, const double* Q, int64_t n, double* Yt);

// G (m, m) = Y^T Y for Y (n, m) row-major.
void gram_rows(const double* Y, int64_t n, int64_t m, double* G);

// T (n, m) = Y B for Y (n, m) and B (m, m) row-major.
void rows_times(const double* Y, int64_t n, int64_t m, const double* B, double* T);

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
