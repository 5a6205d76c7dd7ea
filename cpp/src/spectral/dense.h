// Dense symmetric eigensolver (internal header; eigh_dense / fix_signs are public, in
// spectral.h): LAPACK dsyevd when loaded, else Householder tridiagonalisation + implicit QL.
#pragma once
#include "common/dispatch.h"
#include <cstdint>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// LAPACK dsyevd (divide and conquer) on a full symmetric (n, n) matrix, overwritten by the
// eigenvectors as rows (a symmetric row-major matrix is its own column-major transpose).
// Returns false when LAPACK is unavailable or fails; A is then unspecified.
bool lapack_eigh_rows(double* A, int64_t n, double* w);

// A: full symmetric (n, n) row-major, overwritten. Outputs w ascending and Vt (n, n) with
// eigenvectors as rows.
void eigh_dense_rows(double* A, int64_t n, double* w, double* Vt);

// Flips v (n) so that its entry of largest magnitude is positive (ties within 1e-9 * max go
// to the smallest index).
void fix_sign_row(double* v, int64_t n);

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
