// Graph spectral ops for point clouds: k-d tree kNN, graph Laplacians, symmetric
// eigensolvers (full dense and truncated shift-invert Lanczos), batched over clouds.
//
// Dense solver: LAPACK dsyevd when a LAPACK was found (loaded at run time), otherwise our
// Householder tridiagonalisation + implicit QL (with Wilkinson shifts). Truncated solver:
// Lanczos with (every-other-step, measured) full reorthogonalisation on (L - sigma I)^{-1},
// applied through an envelope LDL^T factor in reverse Cuthill-McKee order, stopped by
// residuals plus a Sylvester inertia count, returned pairs checked by their true residual
// (BLAS gemv/gemm for the Krylov basis when LAPACK is there). Eigenvalues are returned ascending; eigenvectors are unit-norm columns whose
// entry of largest magnitude is positive (ties within 1e-9 * max go to the smallest index).
//
// Implementation, one algorithm per file, each with its internal header beside it:
// kdtree (knn), laplacian, tridiag (QL, Sturm multisection, inverse iteration), dense
// (eigh_dense, fix_signs), envelope_ldl (RCM + envelope LDL^T), nested_dissection,
// supernodal_ldl, shift_factor (the factor choice behind the shift-invert solves and inertia
// counts), lanczos (eigh_truncated); lapack (optional LAPACK, loaded at run time) and
// kernels (dot products, Krylov basis kernels) are shared.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace certkit {
namespace spectral {

// points: (N, 3) row-major doubles. Writes the k nearest neighbours of every point,
// excluding the point itself: idx (N, k) int64 and squared distances d2 (N, k), sorted by
// (distance, index). Duplicate points are ordinary neighbours at distance 0.
// Requires 1 <= k < N. Threads over queries.
void knn(const double* points, int64_t N, int64_t k, int64_t* idx, double* d2);

// Symmetric kNN graph Laplacian in CSR (rows sorted, diagonal included).
// weight: 0 = binary, 1 = Gaussian exp(-d^2 / (2 sigma^2)) (sigma <= 0: mean kNN distance).
// normalized: L = I - D^{-1/2} A D^{-1/2}; otherwise L = D - A. The adjacency A is the
// union (max) of the directed kNN relation.
struct Csr {
  int64_t n = 0;
  std::vector<int64_t> indptr, indices;
  std::vector<double> data;
};
Csr laplacian(const int64_t* idx, const double* d2, int64_t N, int64_t k, int weight,
              double sigma, bool normalized);

// Dense symmetric eigendecomposition of a (n, n) row-major matrix (only the lower triangle
// is read). w (n) ascending, V (n, n) row-major with eigenvectors as columns.
void eigh_dense(const double* A, int64_t n, double* w, double* V);

// First m eigenpairs (smallest eigenvalues) of a symmetric positive semi-definite CSR
// matrix. w (m), V (n, m) row-major (eigenvectors as columns). Splits the graph into
// connected components first, so repeated eigenvalue 0 (disconnected graphs) is exact.
// Returns the number of Lanczos steps taken in total.
int64_t eigh_truncated(const Csr& L, int64_t m, double* w, double* V);

// Truncated-solver policy (tests compare both). Default: the shift inside the wanted part of
// the spectrum (m >= 24) and full reorthogonalisation only every other Lanczos step while
// the measured loss of orthogonality stays below 1e-10. on = the safe path that a failed
// fast run also falls back to: shift below the spectrum, reorthogonalisation every step.
void set_lanczos_safe_mode(bool on);

// Factor used by the truncated solver's shift-invert solves and inertia counts (tests
// compare them): 0 = by size (the RCM envelope factor, or nested dissection + supernodal
// multifrontal when the envelope would exceed 384 KiB), 1 = always envelope, 2 = always
// supernodal.
void set_factor_mode(int mode);

// Testing hook: x <- (A + shift I)^{-1} x (original order) through the truncated solver's
// factor (mode 1 envelope, needs a connected graph; 2 supernodal); returns the number of
// negative pivots, i.e. of eigenvalues of A below -shift (Sylvester).
int64_t shift_factor_solve(const Csr& L, double shift, int mode, double* x);

// Fixes signs column-wise (see file comment). V (n, m) row-major.
void fix_signs(double* V, int64_t n, int64_t m);

// Optional LAPACK (see lapack.cpp): whether it was found and loaded, a one-line
// description, and a switch to force the own solvers (tests compare both paths).
bool has_lapack();
std::string lapack_info();
void set_lapack_enabled(bool on);

}  // namespace spectral
}  // namespace certkit
