// Shift factor selection and the factor testing hook (see shift_factor.h).
#include "common/dispatch.h"
#include "spectral/shift_factor.h"

#include "spectral/nested_dissection.h"
#include "spectral/spectral.h"

#include <atomic>
#include <stdexcept>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

namespace {
std::atomic<int> g_factor_mode{0};  // 0 by size, 1 envelope, 2 supernodal (tests)
}  // namespace

int factor_mode() { return g_factor_mode.load(std::memory_order_relaxed); }

int64_t inertia_below(const SubCsr& A, const std::vector<int64_t>& perm, const SnSymbolic* sym, double mu) {
  return ShiftFactor(A, perm, sym, -mu, true).neg;
}

int64_t shift_factor_solve(const Csr& L, double shift, int mode, double* x) {
  if (mode != 1 && mode != 2) throw std::invalid_argument("mode: expected 1 (envelope) or 2 (supernodal)");
  SubCsr A;
  A.n = L.n;
  A.indptr = L.indptr;
  A.indices = L.indices;
  A.data = L.data;
  std::vector<int64_t> perm;
  std::unique_ptr<SnSymbolic> sym;
  if (mode == 1) {
    perm = rcm_order(A);
  } else {
    sym = std::make_unique<SnSymbolic>(A, nested_dissection_order(A, 32));
    perm = sym->perm;
  }
  const ShiftFactor f(A, perm, sym.get(), shift);
  std::vector<double> y(static_cast<size_t>(A.n));
  for (int64_t i = 0; i < A.n; ++i) y[i] = x[perm[i]];
  f.solve(y.data());
  for (int64_t i = 0; i < A.n; ++i) x[perm[i]] = y[i];
  return f.neg;
}

void set_factor_mode(int mode) {
  if (mode < 0 || mode > 2) throw std::invalid_argument("mode: expected 0 (by size), 1 (envelope) or 2 (supernodal)");
  g_factor_mode.store(mode);
}

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
