// Krylov basis kernels (see kernels.h).
#include "common/dispatch.h"
#include "spectral/kernels.h"

#include "spectral/lapack.h"

#include <vector>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// Q holds nq rows of length n (row-major). h[j] = Q[j] . x
// Own kernel (four rows per pass over x); also the supernodal backward solve's G^T u.
void qdots_own(const double* Q, int64_t nq, int64_t n, const double* x, double* h) {
  int64_t j = 0;
  for (; j + 4 <= nq; j += 4) {
    const double* a = Q + j * n;
    const double* b = a + n;
    const double* c = b + n;
    const double* d = c + n;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t i = 0; i < n; ++i) {
      const double xi = x[i];
      s0 += a[i] * xi;
      s1 += b[i] * xi;
      s2 += c[i] * xi;
      s3 += d[i] * xi;
    }
    h[j] = s0;
    h[j + 1] = s1;
    h[j + 2] = s2;
    h[j + 3] = s3;
  }
  for (; j < nq; ++j) {
    const double* a = Q + j * n;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += a[i] * x[i];
    h[j] = s;
  }
}

void qdots(const double* Q, int64_t nq, int64_t n, const double* x, double* h) {
  if (const Lapack* lp = lapack(); lp && nq >= 8 && fits_int(n) && fits_int(nq)) {
    const int nn = static_cast<int>(n), mq = static_cast<int>(nq), one = 1;
    const double a1 = 1.0, b0 = 0.0;
    lp->dgemv("T", &nn, &mq, &a1, Q, &nn, x, &one, &b0, h, &one);
    return;
  }
  qdots_own(Q, nq, n, x, h);
}

// x -= sum_j h[j] Q[j]
void qaxpy(const double* Q, int64_t nq, int64_t n, const double* h, double* x) {
  if (const Lapack* lp = lapack(); lp && nq >= 8 && fits_int(n) && fits_int(nq)) {
    const int nn = static_cast<int>(n), mq = static_cast<int>(nq), one = 1;
    const double am = -1.0, b1 = 1.0;
    lp->dgemv("N", &nn, &mq, &am, Q, &nn, h, &one, &b1, x, &one);
    return;
  }
  int64_t j = 0;
  for (; j + 4 <= nq; j += 4) {
    const double* a = Q + j * n;
    const double* b = a + n;
    const double* c = b + n;
    const double* d = c + n;
    const double h0 = h[j], h1 = h[j + 1], h2 = h[j + 2], h3 = h[j + 3];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] -= (h0 * a[i] + h1 * b[i]) + (h2 * c[i] + h3 * d[i]);
  }
  for (; j < nq; ++j) {
    const double* a = Q + j * n;
    const double s = h[j];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] -= s * a[i];
  }
}

// Yt (n, r) = Q^T Z^T with Z (r, p) and Q (p, n) row-major: the Ritz vectors as columns.
void ritz_vectors_t(const double* Z, int64_t r, int64_t p, const double* Q, int64_t n, double* Yt) {
  if (const Lapack* lp = lapack(); lp && fits_int(n) && fits_int(p) && fits_int(r)) {
    // Column-major view: Yt is (r, n) with leading dimension r, = Z (r, p) Q (p, n).
    const int nn = static_cast<int>(n), rr = static_cast<int>(r), pp = static_cast<int>(p);
    const double a1 = 1.0, b0 = 0.0;
    lp->dgemm("T", "T", &rr, &nn, &pp, &a1, Z, &pp, Q, &nn, &b0, Yt, &rr);
    return;
  }
  std::vector<double> Zt(static_cast<size_t>(p) * r);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < p; ++j) Zt[j * r + i] = Z[i * p + j];
  std::fill(Yt, Yt + n * r, 0.0);
  for (int64_t t = 0; t < n; ++t) {
    double* y = Yt + t * r;
    for (int64_t j = 0; j < p; ++j) {
      const double q = Q[j * n + t];
      const double* z = Zt.data() + j * r;
#pragma omp simd
      for (int64_t i = 0; i < r; ++i) y[i] += q * z[i];
    }
  }
}

// G (m, m) = Y^T Y for Y (n, m) row-major.
void gram_rows(const double* Y, int64_t n, int64_t m, double* G) {
  if (const Lapack* lp = lapack(); lp && fits_int(n) && fits_int(m)) {
    // Column-major view: Y is (m, n) with leading dimension m; G = Y Y^T.
    const int nn = static_cast<int>(n), mm = static_cast<int>(m);
    const double a1 = 1.0, b0 = 0.0;
    lp->dgemm("N", "T", &mm, &mm, &nn, &a1, Y, &mm, Y, &mm, &b0, G, &mm);
    return;
  }
  std::fill(G, G + m * m, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    const double* y = Y + r * m;
    for (int64_t i = 0; i < m; ++i) {
      const double yi = y[i];
      double* g = G + i * m;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) g[j] += yi * y[j];
    }
  }
}

// T (n, m) = Y B for Y (n, m) and B (m, m) row-major.
void rows_times(const double* Y, int64_t n, int64_t m, const double* B, double* T) {
  if (const Lapack* lp = lapack(); lp && fits_int(n) && fits_int(m)) {
    // Column-major: T^T (m, n) = B^T (m, m) Y^T (m, n), i.e. "N", "N" on the row-major data.
    const int nn = static_cast<int>(n), mm = static_cast<int>(m);
    const double a1 = 1.0, b0 = 0.0;
    lp->dgemm("N", "N", &mm, &nn, &mm, &a1, B, &mm, Y, &mm, &b0, T, &mm);
    return;
  }
  for (int64_t r = 0; r < n; ++r) {
    const double* y = Y + r * m;
    double* t = T + r * m;
    std::fill(t, t + m, 0.0);
    for (int64_t i = 0; i < m; ++i) {
      const double yi = y[i];
      const double* b = B + i * m;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) t[j] += yi * b[j];
    }
  }
}

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
