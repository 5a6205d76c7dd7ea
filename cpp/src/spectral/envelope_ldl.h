// Reverse Cuthill-McKee ordering and the envelope LDL^T factor (George & Liu 1981), used
// by the truncated solver's shift-invert solves and inertia counts (internal header).
#pragma once
#include "common/dispatch.h"
#include <cstdint>
#include <limits>
#include <vector>

#include "spectral/sparse.h"

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// Reverse Cuthill-McKee order (new -> old) of a connected graph, from a pseudo-peripheral
// vertex; throws std::runtime_error when the graph is not connected.
std::vector<int64_t> rcm_order(const SubCsr& A);

// First column of each row's envelope in P A P^T (perm[new] = old).
std::vector<int64_t> envelope_first(const SubCsr& A, const std::vector<int64_t>& perm);

// Entries of the envelope (profile) of P A P^T, perm[new] = old: sum over rows of
// (i - first column in row i + 1).
int64_t envelope_entries(const SubCsr& A, const std::vector<int64_t>& perm);

// Envelope LDL^T (no pivoting) of M = P (A + shift I) P^T, perm[new] = old: unit lower
// factor in George & Liu's envelope storage (row i holds columns first[i]..i at
// env[start[i]..]; the diagonal slot holds the pivot d_i). Serves both the shift-invert
// solves and Sylvester inertia counts: `neg` negative pivots = eigenvalues of A below
// -shift. A pivot of magnitude below eps * ||A||_1 is nudged to that size (it can only move
// the count across an eigenvalue within that distance); `min_pivot` and `max_l` (the
// largest |L_ij|) tell an indefinite factor's stability to the caller.
struct EnvLdl {
  int64_t n;
  std::vector<int64_t> first, start;
  std::vector<double> env, inv_d;
  int64_t neg = 0;
  double min_pivot = std::numeric_limits<double>::infinity(), max_l = 0;
  EnvLdl(const SubCsr& A, const std::vector<int64_t>& perm, double shift);
  // x <- M^{-1} x in permuted order: L y = x, D z = y, L^T x = z.
  void solve(double* x) const;
};

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
