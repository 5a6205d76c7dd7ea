// Certificate statistics: normal cdf/quantile, regularised incomplete beta, Clopper-Pearson
// bounds, the two-sided exact binomial test. Scalar kernels plus vectorised array drivers
// (OpenMP through certkit::parallel_for; callers release the GIL).
//
// Accuracy (tested against scipy and 40-digit mpmath in packages/core/tests/test_stats*.py):
// Clopper-Pearson bounds ~1e-15 relative for n <= 1e7 (tests assert 1e-10 against scipy,
// 1e-13 against mpmath); incomplete beta ~1e-14; norm_cdf / norm_ppf ~1e-15.
#pragma once
#include <cstdint>

namespace certkit {
namespace stats {

// ---- scalar kernels --------------------------------------------------------------------

// Phi(x) = 0.5 erfc(-x / sqrt 2).
double norm_cdf(double x);
// Phi^{-1}(p) for p in [0, 1]: -inf at 0, +inf at 1, NaN outside.
double norm_ppf(double p);

// log of the incomplete-beta prefactor x^a y^b / B(a, b), y = 1 - x supplied by the caller
// (accurately: y is used where x is close to 1). a, b >= 1.
double log_beta_prefactor(double a, double b, double x, double y);

// Regularised incomplete beta: lower = I_x(a, b), upper = 1 - I_x(a, b), both with small
// relative error (the smaller one is computed directly). a, b >= 1, x in [0, 1], y = 1 - x.
// Returns the number of continued-fraction iterations used (for tests/benchmarks).
int ibeta(double a, double b, double x, double y, double* lower, double* upper);

// x in [0, 1] with I_x(a, b) = P and 1 - I_x(a, b) = Q (P + Q = 1; the smaller of the two is
// the one solved for, so pass it exactly). a, b >= 1. `evals` (optional) receives the number
// of incomplete-beta evaluations.
double beta_quantile(double a, double b, double P, double Q, int* evals = nullptr);

// One-sided Clopper-Pearson bounds at level alpha for k successes in n trials (0 <= k <= n,
// n >= 1): lower = 0 at k = 0, alpha^(1/n) at k = n; upper = 1 at k = n, 1 - alpha^(1/n)
// (as -expm1(log(alpha)/n)) at k = 0.
double cp_lower(int64_t k, int64_t n, double alpha);
double cp_upper(int64_t k, int64_t n, double alpha);

// Binomial pmf, cdf P(X <= k) and sf P(X > k) for X ~ Bin(n, p), p in [0, 1].
double binom_pmf(int64_t k, int64_t n, double p);
double binom_cdf(int64_t k, int64_t n, double p);
double binom_sf(int64_t k, int64_t n, double p);
// Two-sided exact binomial test p-value (the "minlike" rule, mirroring
// scipy.stats.binomtest(k, n, p).pvalue, relative tie tolerance 1e-7).
double binom_test_two_sided(int64_t k, int64_t n, double p);

// ---- array drivers (all buffers C-contiguous; N elements) ------------------------------

// out[i] = f(in[i]).
void norm_cdf_array(const double* x, int64_t N, double* out);
void norm_ppf_array(const double* p, int64_t N, double* out);
// out[i] = sigma * Phi^{-1}(p[i]) if p[i] > 1/2 else 0 (p[i] = 1 gives +inf).
void certified_radius_array(const double* p, int64_t N, double sigma, double* out);

enum Side : int { kLower = 0, kUpper = 1, kTwoSided = 2 };

// k: (N,), n: (N,) or (1,) when n_scalar. out: (N,) for kLower/kUpper, (N, 2) [lower, upper]
// for kTwoSided (alpha/2 per side). Repeated (k, n) pairs are solved once (a bitmap over
// [0, n] or a sort when n is shared, a sort of the pairs otherwise). Returns the number of
// invalid pairs (k < 0, k > n or n < 1); out is undefined then. `distinct` (optional)
// receives the number of distinct pairs solved.
int64_t clopper_pearson_array(const int64_t* k, const int64_t* n, int64_t N, bool n_scalar,
                              double alpha, Side side, double* out, int64_t* distinct = nullptr);

// out[i] = binom_test_two_sided(k[i], n[i] or n[0], p). Returns the number of invalid pairs.
int64_t binom_test_array(const int64_t* k, const int64_t* n, int64_t N, bool n_scalar, double p,
                         double* out);

}  // namespace stats
}  // namespace certkit
