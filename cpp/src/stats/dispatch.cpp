// The public statistics entry points (stats.h): forward to the SIMD variant that runs
// (common/dispatch.h). Variants may differ in the last bits (FMA contraction), within the
// accuracy stated in stats.h.
#include "common/dispatch.h"
#include "certkit/stats.h"

namespace certkit {
namespace stats {

CERTKIT_DECLARE_VARIANTS(
    double norm_cdf(double x);
    double norm_ppf(double p);
    double log_beta_prefactor(double a, double b, double x, double y);
    int ibeta(double a, double b, double x, double y, double* lower, double* upper);
    double beta_quantile(double a, double b, double P, double Q, int* evals);
    double cp_lower(int64_t k, int64_t n, double alpha);
    double cp_upper(int64_t k, int64_t n, double alpha);
    double binom_pmf(int64_t k, int64_t n, double p);
    double binom_cdf(int64_t k, int64_t n, double p);
    double binom_sf(int64_t k, int64_t n, double p);
    double binom_test_two_sided(int64_t k, int64_t n, double p);
    void norm_cdf_array(const double* x, int64_t N, double* out);
    void norm_ppf_array(const double* p, int64_t N, double* out);
    void certified_radius_array(const double* p, int64_t N, double sigma, double* out);
    int64_t clopper_pearson_array(const int64_t* k, const int64_t* n, int64_t N, bool n_scalar,
                                  double alpha, Side side, double* out, int64_t* distinct);
    int64_t binom_test_array(const int64_t* k, const int64_t* n, int64_t N, bool n_scalar,
                             double p, double* out);)

double norm_cdf(double x) { CERTKIT_DISPATCH(norm_cdf, x) }
double norm_ppf(double p) { CERTKIT_DISPATCH(norm_ppf, p) }
double log_beta_prefactor(double a, double b, double x, double y) {
  CERTKIT_DISPATCH(log_beta_prefactor, a, b, x, y)
}
int ibeta(double a, double b, double x, double y, double* lower, double* upper) {
  CERTKIT_DISPATCH(ibeta, a, b, x, y, lower, upper)
}
double beta_quantile(double a, double b, double P, double Q, int* evals) {
  CERTKIT_DISPATCH(beta_quantile, a, b, P, Q, evals)
}
double cp_lower(int64_t k, int64_t n, double alpha) { CERTKIT_DISPATCH(cp_lower, k, n, alpha) }
double cp_upper(int64_t k, int64_t n, double alpha) { CERTKIT_DISPATCH(cp_upper, k, n, alpha) }
double binom_pmf(int64_t k, int64_t n, double p) { CERTKIT_DISPATCH(binom_pmf, k, n, p) }
double binom_cdf(int64_t k, int64_t n, double p) { CERTKIT_DISPATCH(binom_cdf, k, n, p) }
double binom_sf(int64_t k, int64_t n, double p) { CERTKIT_DISPATCH(binom_sf, k, n, p) }
double binom_test_two_sided(int64_t k, int64_t n, double p) {
  CERTKIT_DISPATCH(binom_test_two_sided, k, n, p)
}
void norm_cdf_array(const double* x, int64_t N, double* out) { CERTKIT_DISPATCH(norm_cdf_array, x, N, out) }
void norm_ppf_array(const double* p, int64_t N, double* out) { CERTKIT_DISPATCH(norm_ppf_array, p, N, out) }
void certified_radius_array(const double* p, int64_t N, double sigma, double* out) {
  CERTKIT_DISPATCH(certified_radius_array, p, N, sigma, out)
}
int64_t clopper_pearson_array(const int64_t* k, const int64_t* n, int64_t N, bool n_scalar,
                              double alpha, Side side, double* out, int64_t* distinct) {
  CERTKIT_DISPATCH(clopper_pearson_array, k, n, N, n_scalar, alpha, side, out, distinct)
}
int64_t binom_test_array(const int64_t* k, const int64_t* n, int64_t N, bool n_scalar, double p,
                         double* out) {
  CERTKIT_DISPATCH(binom_test_array, k, n, N, n_scalar, p, out)
}

}  // namespace stats
}  // namespace certkit
