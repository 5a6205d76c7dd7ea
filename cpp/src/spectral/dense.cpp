// Dense symmetric eigensolver (see dense.h): Householder tridiagonalisation and implicit
// QL with Wilkinson shifts (Golub & Van Loan, Matrix Computations, 8.3), or LAPACK dsyevd.
#include "common/dispatch.h"
#include "spectral/dense.h"

#include "spectral/kernels.h"
#include "spectral/lapack.h"
#include "spectral/spectral.h"
#include "spectral/tridiag.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>
#include <numeric>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)


// LAPACK dsyevd (divide and conquer) on a full symmetric (n, n) matrix, overwritten by the
// eigenvectors as rows (a symmetric row-major matrix is its own column-major transpose).
// Returns false when LAPACK is unavailable or fails; A is then unspecified.
bool lapack_eigh_rows(double* A, int64_t n, double* w) {
  const Lapack* lp = lapack();
  if (!lp || !fits_int(n) || n * n >= (int64_t{1} << 31)) return false;
  const int nn = static_cast<int>(n);
  int info = 0, lwork = -1, liwork = -1, iq = 0;
  double wq = 0;
  lp->dsyevd("V", "L", &nn, A, &nn, w, &wq, &lwork, &iq, &liwork, &info);
  if (info != 0) return false;
  lwork = static_cast<int>(wq) + 1;
  liwork = iq;
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
  lp->dsyevd("V", "L", &nn, A, &nn, w, work.data(), &lwork, iwork.data(), &liwork, &info);
  return info == 0;
}

// A: full symmetric (n, n) row-major, overwritten. Outputs w ascending and Vt (n, n) with
// eigenvectors as rows.
void eigh_dense_rows(double* A, int64_t n, double* w, double* Vt) {
  std::vector<double> d(n), e(n, 0.0), beta(n, 0.0), v(n), pv(n);
  std::vector<double> H(n > 2 ? (n - 2) * n : 1);  // Householder vectors, row k holds v_k (length n-k-1)
  for (int64_t k = 0; k + 2 < n; ++k) {
    const int64_t m = n - k - 1;
    double* x = A + k * n + (k + 1);  // row k, cols k+1.. (== column k by symmetry)
    double tail = 0;
    for (int64_t i = 1; i < m; ++i) tail += x[i] * x[i];
    d[k] = A[k * n + k];
    double* hv = H.data() + k * n;
    if (tail == 0.0) {
      e[k] = x[0];
      beta[k] = 0.0;
      continue;
    }
    const double nrm = std::sqrt(x[0] * x[0] + tail);
    const double alpha = x[0] > 0 ? -nrm : nrm;
    for (int64_t i = 0; i < m; ++i) hv[i] = x[i];
    hv[0] -= alpha;
    const double vv = hv[0] * hv[0] + tail;
    const double bt = 2.0 / vv;
    beta[k] = bt;
    e[k] = alpha;
    // p = bt * A22 v
    double* A22 = A + (k + 1) * n + (k + 1);
    double pv_dot = 0;
    for (int64_t i = 0; i < m; ++i) {
      const double* row = A22 + i * n;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < m; ++j) s += row[j] * hv[j];
      pv[i] = bt * s;
      pv_dot += pv[i] * hv[i];
    }
    const double K = 0.5 * bt * pv_dot;
    for (int64_t i = 0; i < m; ++i) pv[i] -= K * hv[i];  // w
    for (int64_t i = 0; i < m; ++i) {
      double* row = A22 + i * n;
      const double vi = hv[i], wi = pv[i];
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) row[j] -= vi * pv[j] + wi * hv[j];
    }
  }
  if (n >= 2) {
    d[n - 2] = A[(n - 2) * n + (n - 2)];
    e[n - 2] = A[(n - 1) * n + (n - 2)];
  }
  d[n - 1] = A[(n - 1) * n + (n - 1)];
  // Vt starts as Q^T, accumulated backwards: Qt[k+1:, k+1:] <- Qt[k+1:, k+1:] H_k.
  std::fill(Vt, Vt + n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) Vt[i * n + i] = 1.0;
  for (int64_t k = n - 3; k >= 0; --k) {
    if (beta[k] == 0.0) continue;
    const int64_t m = n - k - 1;
    const double* hv = H.data() + k * n;
    const double bt = beta[k];
    for (int64_t r = k + 1; r < n; ++r) {
      double* row = Vt + r * n + (k + 1);
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < m; ++j) s += row[j] * hv[j];
      s *= bt;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) row[j] -= s * hv[j];
    }
  }
  tql(d.data(), e.data(), n, Vt, n);
  // Sort ascending (stable, rows follow).
  std::vector<int64_t> ord(n);
  std::iota(ord.begin(), ord.end(), int64_t{0});
  std::stable_sort(ord.begin(), ord.end(), [&](int64_t x, int64_t y) { return d[x] < d[y]; });
  std::vector<double> tmp(static_cast<size_t>(n) * n);
  for (int64_t i = 0; i < n; ++i) {
    w[i] = d[ord[i]];
    std::memcpy(tmp.data() + i * n, Vt + ord[i] * n, sizeof(double) * n);
  }
  std::memcpy(Vt, tmp.data(), sizeof(double) * n * n);
}

void fix_sign_row(double* v, int64_t n) {
  double mx = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, std::fabs(v[i]));
  if (mx == 0) return;
  for (int64_t i = 0; i < n; ++i) {
    if (std::fabs(v[i]) >= mx * (1.0 - 1e-9)) {
      if (v[i] < 0)
        for (int64_t j = 0; j < n; ++j) v[j] = -v[j];
      return;
    }
  }
}

void eigh_dense(const double* A, int64_t n, double* w, double* V) {
  std::vector<double> M(static_cast<size_t>(n) * n), Vt(static_cast<size_t>(n) * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) M[i * n + j] = M[j * n + i] = A[i * n + j];
  if (lapack_eigh_rows(M.data(), n, w)) {
    std::swap(M, Vt);
  } else {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) M[i * n + j] = M[j * n + i] = A[i * n + j];
    eigh_dense_rows(M.data(), n, w, Vt.data());
  }
  for (int64_t i = 0; i < n; ++i) fix_sign_row(Vt.data() + i * n, n);
  constexpr int64_t kT = 32;  // blocked transpose (a strided one costs ~1% at n = 2048)
  for (int64_t i0 = 0; i0 < n; i0 += kT)
    for (int64_t j0 = 0; j0 < n; j0 += kT)
      for (int64_t i = i0; i < std::min(n, i0 + kT); ++i)
        for (int64_t j = j0; j < std::min(n, j0 + kT); ++j) V[j * n + i] = Vt[i * n + j];
}

void fix_signs(double* V, int64_t n, int64_t m) {
  // fix_sign_row on every column, in three row-wise sweeps (columns are strided in V):
  // the largest magnitude per column, the first entry within 1e-9 of it, the flips.
  std::vector<double> thr(m, 0.0), sgn(m, 1.0);
  std::vector<char> found(m, 0);
  for (int64_t r = 0; r < n; ++r) {
    const double* v = V + r * m;
    for (int64_t j = 0; j < m; ++j) thr[j] = std::max(thr[j], std::fabs(v[j]));
  }
  int64_t left = 0;
  for (int64_t j = 0; j < m; ++j) {
    found[j] = thr[j] == 0;  // a zero column keeps its signs
    left += !found[j];
    thr[j] *= 1.0 - 1e-9;
  }
  for (int64_t r = 0; r < n && left > 0; ++r) {
    const double* v = V + r * m;
    for (int64_t j = 0; j < m; ++j) {
      if (!found[j] && std::fabs(v[j]) >= thr[j]) {
        found[j] = 1;
        --left;
        sgn[j] = v[j] < 0 ? -1.0 : 1.0;
      }
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    double* v = V + r * m;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) v[j] *= sgn[j];
  }
}

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
