// The public spectral entry points (spectral.h): forward to the SIMD variant that runs
// (common/dispatch.h). Every source of this op but bind.cpp is compiled once per variant;
// the solver switches (safe mode, factor mode, LAPACK on/off) are set in every variant.
// Variants agree to rounding (FMA contraction); the tests' tolerances hold for each.
#include "common/dispatch.h"
#include "spectral/spectral.h"

namespace certkit {
namespace spectral {

CERTKIT_DECLARE_VARIANTS(
    void knn(const double* points, int64_t N, int64_t k, int64_t* idx, double* d2);
    Csr laplacian(const int64_t* idx, const double* d2, int64_t N, int64_t k, int weight,
                  double sigma, bool normalized);
    void eigh_dense(const double* A, int64_t n, double* w, double* V);
    int64_t eigh_truncated(const Csr& L, int64_t m, double* w, double* V);
    void set_lanczos_safe_mode(bool on);
    void set_factor_mode(int mode);
    int64_t shift_factor_solve(const Csr& L, double shift, int mode, double* x);
    void fix_signs(double* V, int64_t n, int64_t m);
    bool has_lapack();
    std::string lapack_info();
    void set_lapack_enabled(bool on);)

void knn(const double* points, int64_t N, int64_t k, int64_t* idx, double* d2) {
  CERTKIT_DISPATCH(knn, points, N, k, idx, d2)
}
Csr laplacian(const int64_t* idx, const double* d2, int64_t N, int64_t k, int weight, double sigma,
              bool normalized) {
  CERTKIT_DISPATCH(laplacian, idx, d2, N, k, weight, sigma, normalized)
}
void eigh_dense(const double* A, int64_t n, double* w, double* V) { CERTKIT_DISPATCH(eigh_dense, A, n, w, V) }
int64_t eigh_truncated(const Csr& L, int64_t m, double* w, double* V) {
  CERTKIT_DISPATCH(eigh_truncated, L, m, w, V)
}
int64_t shift_factor_solve(const Csr& L, double shift, int mode, double* x) {
  CERTKIT_DISPATCH(shift_factor_solve, L, shift, mode, x)
}
void fix_signs(double* V, int64_t n, int64_t m) { CERTKIT_DISPATCH(fix_signs, V, n, m) }
bool has_lapack() { CERTKIT_DISPATCH(has_lapack, ) }
std::string lapack_info() { CERTKIT_DISPATCH(lapack_info, ) }

// Switches: every variant, so that changing the running variant keeps them.
#define CERTKIT_ALL_VARIANTS(call) \
  baseline::call;                  \
  CERTKIT_IF_AVX2_(avx2::call;)    \
  CERTKIT_IF_AVX512_(avx512::call;)
void set_lanczos_safe_mode(bool on) { CERTKIT_ALL_VARIANTS(set_lanczos_safe_mode(on)) }
void set_factor_mode(int mode) { CERTKIT_ALL_VARIANTS(set_factor_mode(mode)) }
void set_lapack_enabled(bool on) { CERTKIT_ALL_VARIANTS(set_lapack_enabled(on)) }

}  // namespace spectral
}  // namespace certkit
