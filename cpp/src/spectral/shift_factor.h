// The factor of P (A + shift I) P^T behind the truncated solver's shift-invert solves and
// Sylvester inertia counts: envelope or supernodal, chosen by size (internal header;
// set_factor_mode / shift_factor_solve are public, in spectral.h).
#pragma once
#include "common/dispatch.h"
#include <cstdint>
#include <memory>
#include <vector>

#include "spectral/envelope_ldl.h"
#include "spectral/sparse.h"
#include "spectral/supernodal_ldl.h"

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// Above this many envelope entries (384 KiB of doubles) the supernodal factor is used.
// Measured (CPU time of the whole truncated solve, m = 100, best of 7 interleaved runs,
// supernodal / envelope) on kNN Laplacians (k = 10) of the embedded shapes: 2048 points
// (RCM envelopes of 142k-226k entries, 25 Laplacians) 0.67-0.95, mean 0.81; 1024 points
// (49k-76k, 9) 0.88-1.03, mean 0.94; 512 and 768 points (26k-39k, 16) 0.93-1.10, mean
// 1.02: there the orderings and the symbolic analysis cost what the faster solves save.
constexpr int64_t kEnvelopeCacheEntries = int64_t{3} << 14;
// The mode set by set_factor_mode: 0 by size, 1 envelope, 2 supernodal (tests).
int factor_mode();

// The factor of P (A + shift I) P^T that the Lanczos run and the inertia counts use: the
// envelope one (sym == nullptr, perm from RCM) or the supernodal one (perm = sym->perm).
struct ShiftFactor {
  std::unique_ptr<EnvLdl> env;
  std::unique_ptr<SnLdl> sn;
  int64_t neg = 0;
  double min_pivot = 0, max_l = 0;
  ShiftFactor(const SubCsr& A, const std::vector<int64_t>& perm, const SnSymbolic* sym, double shift,
              bool counts_only = false) {
    if (sym) {
      sn = std::make_unique<SnLdl>(A, *sym, shift, counts_only);
      neg = sn->neg;
      min_pivot = sn->min_pivot;
      max_l = sn->max_l;
    } else {
      env = std::make_unique<EnvLdl>(A, perm, shift);
      neg = env->neg;
      min_pivot = env->min_pivot;
      max_l = env->max_l;
    }
  }
  void solve(double* x) const {
    if (sn)
      sn->solve(x);
    else
      env->solve(x);
  }
};

// Number of eigenvalues of A below mu (Sylvester's law of inertia): the negative pivots of
// the LDL^T of P (A - mu I) P^T.
int64_t inertia_below(const SubCsr& A, const std::vector<int64_t>& perm, const SnSymbolic* sym, double mu);

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
