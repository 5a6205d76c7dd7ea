// Symmetric tridiagonal eigensolvers (internal header): implicit QL with Wilkinson shifts
// (Golub & Van Loan, Matrix Computations, 8.3), multisection on Sturm counts for single
// eigenvalues, and inverse iteration with partial pivoting (as in LAPACK dstein/dlagtf).
#pragma once
#include "common/dispatch.h"
#include <cstdint>

#include "spectral/kernels.h"

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// Implicit QL with Wilkinson shifts on d (n), e (n, e[i] couples i and i+1, e[n-1] unused).
// If Zt is given (n rows of length ld), rotations are applied to its rows i, i+1.
void tql(double* d, double* e, int64_t n, double* Zt, int64_t ld);

// The k-th largest eigenvalue (k = 0: the largest) of the symmetric tridiagonal (a, b) of
// order p, by multisection on Sturm counts (bisection, Golub & Van Loan 8.4.1, with 15
// points per pass: the counts at all of them share one pass over T, whose cost is the
// chain of divisions, so a pass gives 4 bits instead of 1). Stops when the bracket is
// below rel_tol relative (2 eps: to rounding); returns its midpoint. O(15 p) per pass.
double tridiag_kth_largest(const double* a, const double* b, int64_t p, int64_t k, double rel_tol = 2 * kEps);

// Inverse iteration: eigenvectors of the tridiagonal (a, b) for eigenvalues theta[0..m)
// (any order). Z (m, p) row-major. Vectors for eigenvalues closer than `ortol` are
// reorthogonalised against each other (modified Gram-Schmidt).
void tridiag_inverse_iteration(const double* a, const double* b, int64_t p, const double* theta,
                               int64_t m, double* Z);

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
