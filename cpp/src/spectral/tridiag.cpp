// Symmetric tridiagonal eigensolvers (see tridiag.h).
#include "common/dispatch.h"
#include "spectral/tridiag.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// Implicit QL with Wilkinson shifts on d (n), e (n, e[i] couples i and i+1, e[n-1] unused).
// If Zt is given (n rows of length ld), rotations are applied to its rows i, i+1.
void tql(double* d, double* e, int64_t n, double* Zt, int64_t ld) {
  if (n <= 1) return;
  e[n - 1] = 0.0;
  for (int64_t l = 0; l < n; ++l) {
    int iter = 0;
    int64_t m;
    do {
      for (m = l; m < n - 1; ++m) {
        const double dd = std::fabs(d[m]) + std::fabs(d[m + 1]);
        if (std::fabs(e[m]) <= kEps * dd) break;
      }
      if (m != l) {
        if (iter++ == 100) throw std::runtime_error("eigh: QL iteration did not converge");
        double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
        double r = fast_hypot(g, 1.0);
        g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));
        double s = 1.0, c = 1.0, p = 0.0;
        int64_t i;
        bool underflow = false;
        for (i = m - 1; i >= l; --i) {
          const double f = s * e[i], b = c * e[i];
          r = fast_hypot(f, g);
          e[i + 1] = r;
          if (r == 0.0) {
            d[i + 1] -= p;
            e[m] = 0.0;
            underflow = true;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2.0 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
          if (Zt) {
            double* a = Zt + i * ld;
            double* bb = Zt + (i + 1) * ld;
#pragma omp simd
            for (int64_t t = 0; t < ld; ++t) {
              const double x = a[t], y = bb[t];
              bb[t] = s * x + c * y;
              a[t] = c * x - s * y;
            }
          }
        }
        if (underflow) continue;
        d[l] -= p;
        e[l] = g;
        e[m] = 0.0;
      }
    } while (m != l);
  }
}


// The k-th largest eigenvalue (k = 0: the largest) of the symmetric tridiagonal (a, b) of
// order p, by multisection on Sturm counts (bisection, Golub & Van Loan 8.4.1, with 15
// points per pass: the counts at all of them share one pass over T, whose cost is the
// chain of divisions, so a pass gives 4 bits instead of 1). Stops when the bracket is
// below rel_tol relative (2 eps: to rounding); returns its midpoint. O(15 p) per pass.
double tridiag_kth_largest(const double* a, const double* b, int64_t p, int64_t k, double rel_tol) {
  double lo = a[0], hi = a[0];
  for (int64_t i = 0; i < p; ++i) {
    const double r = (i > 0 ? std::fabs(b[i - 1]) : 0.0) + (i + 1 < p ? std::fabs(b[i]) : 0.0);
    lo = std::min(lo, a[i] - r);
    hi = std::max(hi, a[i] + r);
  }
  const double scale = std::max(std::fabs(lo), std::fabs(hi));
  const double pivmin = std::numeric_limits<double>::min() / kEps + kEps * kEps * scale * scale;
  const int64_t target = p - 1 - k;  // ascending index: want count(x) <= target < count(hi)
  constexpr int kPts = 16;           // lanes; lane kPts - 1 repeats a point (padding)
  for (int it = 0; it < 100 && hi - lo > rel_tol * std::max(std::fabs(lo), std::fabs(hi)) + pivmin; ++it) {
    double x[kPts], d[kPts];
    int64_t c[kPts];
    const double step = (hi - lo) / kPts;
    for (int q = 0; q < kPts; ++q) {
      x[q] = lo + step * std::min(q + 1, kPts - 1);
      d[q] = 1.0;
      c[q] = 0;
    }
    for (int64_t i = 0; i < p; ++i) {
      const double bb = i > 0 ? b[i - 1] * b[i - 1] : 0.0;
      const double ai = a[i];
#pragma omp simd
      for (int q = 0; q < kPts; ++q) {
        double dq = (ai - x[q]) - bb / d[q];
        dq = std::fabs(dq) < pivmin ? -pivmin : dq;
        c[q] += dq < 0;
        d[q] = dq;
      }
    }
    // counts are nondecreasing in x: the bracket shrinks to [x_q, x_{q+1}]
    double nlo = lo, nhi = hi;
    for (int q = 0; q < kPts - 1; ++q) {
      if (c[q] > target) {
        nhi = x[q];
        break;
      }
      nlo = x[q];
    }
    lo = nlo;
    hi = nhi;
  }
  return 0.5 * (lo + hi);
}

// Inverse iteration: eigenvectors of the tridiagonal (a, b) for eigenvalues theta[0..m)
// (any order). Z (m, p) row-major. Vectors for eigenvalues closer than `ortol` are
// reorthogonalised against each other (modified Gram-Schmidt).
void tridiag_inverse_iteration(const double* a, const double* b, int64_t p, const double* theta,
                               int64_t m, double* Z) {
  double tnorm = 0;
  for (int64_t i = 0; i < p; ++i)
    tnorm = std::max(tnorm, std::fabs(a[i]) + (i > 0 ? std::fabs(b[i - 1]) : 0) + (i + 1 < p ? std::fabs(b[i]) : 0));
  if (tnorm == 0) tnorm = 1;
  const double ortol = 1e-7 * tnorm;  // only (nearly) repeated eigenvalues are reorthogonalised
  const double tiny = kEps * tnorm;
  std::vector<double> U0(p), U1(p), U2(p), mult(p), y(p);
  std::vector<char> swp(p);
  std::vector<int64_t> order(m);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t yy) { return theta[x] > theta[yy]; });
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (int64_t oi = 0; oi < m; ++oi) {
    const int64_t idx = order[oi];
    const double th = theta[idx];
    // Factor T - th I = P L U with partial pivoting.
    double cd = a[0] - th, cu = p > 1 ? b[0] : 0.0;
    for (int64_t r = 0; r + 1 < p; ++r) {
      const double lr = b[r];
      const double dn = a[r + 1] - th, un = (r + 2 < p) ? b[r + 1] : 0.0;
      if (std::fabs(lr) > std::fabs(cd)) {
        swp[r] = 1;
        U0[r] = lr;
        U1[r] = dn;
        U2[r] = un;
        mult[r] = cd / lr;
        const double ncd = cu - mult[r] * dn, ncu = -mult[r] * un;
        cd = ncd;
        cu = ncu;
      } else {
        swp[r] = 0;
        if (cd == 0) cd = tiny;
        U0[r] = cd;
        U1[r] = cu;
        U2[r] = 0.0;
        mult[r] = lr / cd;
        cd = dn - mult[r] * cu;
        cu = un;
      }
    }
    U0[p - 1] = (cd == 0) ? tiny : cd;
    for (int64_t r = 0; r < p; ++r) {
      if (U0[r] == 0 || std::fabs(U0[r]) < tiny) U0[r] = std::copysign(tiny, U0[r] == 0 ? 1.0 : U0[r]);
      U0[r] = 1.0 / U0[r];  // stored inverted: the back substitution multiplies (its chain
                            // of divisions was most of the time here)
    }
    // Start vector: deterministic pseudo-random.
    for (int64_t i = 0; i < p; ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      y[i] = 0.5 + static_cast<double>(state >> 11) * (1.0 / 9007199254740992.0);
    }
    double* z = Z + idx * p;
    for (int it = 0; it < 3; ++it) {
      for (int64_t r = 0; r + 1 < p; ++r) {
        if (swp[r]) std::swap(y[r], y[r + 1]);
        y[r + 1] -= mult[r] * y[r];
      }
      for (int64_t r = p - 1; r >= 0; --r) {
        double v = y[r];
        if (r + 1 < p) v -= U1[r] * y[r + 1];
        if (r + 2 < p) v -= U2[r] * y[r + 2];
        y[r] = v * U0[r];
      }
      // Reorthogonalise against earlier vectors of the cluster.
      for (int64_t oj = oi - 1; oj >= 0; --oj) {
        const int64_t jdx = order[oj];
        if (std::fabs(theta[jdx] - th) > ortol) break;
        const double* zj = Z + jdx * p;
        double dot = 0;
        for (int64_t i = 0; i < p; ++i) dot += zj[i] * y[i];
        for (int64_t i = 0; i < p; ++i) y[i] -= dot * zj[i];
      }
      double nrm = 0;
      for (int64_t i = 0; i < p; ++i) nrm += y[i] * y[i];
      nrm = std::sqrt(nrm);
      if (!(nrm > 0) || !std::isfinite(nrm)) {
        for (int64_t i = 0; i < p; ++i) y[i] = (i == oi % p) ? 1.0 : 0.0;
        nrm = 1.0;
      }
      for (int64_t i = 0; i < p; ++i) y[i] /= nrm;
    }
    std::memcpy(z, y.data(), sizeof(double) * p);
  }
}

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
