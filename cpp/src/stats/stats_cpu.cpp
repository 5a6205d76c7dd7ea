// Certificate statistics, CPU. See stats.h for the contract.
//
// Sources (formulas recalled, code written here):
//  * norm_ppf: P. J. Acklam's rational approximation (relative error ~1.2e-9) as the start,
//    refined by one Halley step on Phi (erf near the centre, erfc in the tails; cubic
//    convergence takes 1.2e-9 to rounding level), Newton on log Phi below p = 1e-280.
//  * Incomplete beta: the positive-element continued fraction of Didonato & Morris (1992)
//    on the side of the mean where all its elements are positive (forward recurrence); the
//    other side by symmetry, so both tails keep full relative precision.
//  * Prefactor x^a y^b / B(a,b): a Stirling-series form expanded about the mean a/(a+b)
//    (derived by the certkit lead; re-derived here, plus a first-order correction for the
//    rounding of a/(a+b), and checked against mpmath) so that it keeps ~1e-15 relative
//    precision at a, b ~ 1e7 where exp(a log x + b log y - lbeta) loses ~1e-8.
//  * Beta quantile start: Abramowitz & Stegun 26.5.22; brackets from the bounds
//    I_x(a,b) <= x^a / (a B(a,b)) and 1 - I_x(a,b) <= y^b / (b B(a,b)) (valid for a, b >= 1).
#include "certkit/stats.h"
#include "common/dispatch.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/parallel.h"

namespace certkit {
namespace stats {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLnSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))
constexpr double kSqrt2Pi = 2.50662827463100050242;
constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kLn2Pi = 1.83787706640934548356;

inline double lgam(double x) {
  int sign;
  return ::lgamma_r(x, &sign);  // thread-safe variant (no write to signgam)
}

// delta(z) = lgamma(z) - [(z - 1/2) log z - z + log sqrt(2 pi)] (Stirling correction).
// Asymptotic Bernoulli series, truncation error < 4e-17 for z >= 10.
inline double stirling_delta(double z) {
  if (z < 10.0) return lgam(z) - ((z - 0.5) * std::log(z) - z + kLnSqrt2Pi);
  const double r = 1.0 / z, r2 = r * r;
  return r * (1.0 / 12 +
              r2 * (-1.0 / 360 +
                    r2 * (1.0 / 1260 +
                          r2 * (-1.0 / 1680 +
                                r2 * (1.0 / 1188 + r2 * (-691.0 / 360360 + r2 * (1.0 / 156)))))));
}

// log1p(t) - t without cancellation for small |t|: with w = t / (2 + t),
// log1p(t) = 2 atanh(w), so log1p(t) - t = -t w + 2 (w^3/3 + w^5/5 + ...).
inline double log1pmx(double t) {
  if (std::fabs(t) < 0.5) {
    const double w = t / (2.0 + t), w2 = w * w;
    double term = w2 * w, sum = 0.0;
    for (int j = 3; j < 200; j += 2) {
      const double add = term / j;
      sum += add;
      if (std::fabs(add) <= 1e-17 * std::fabs(sum)) break;
      term *= w2;
    }
    return 2.0 * sum - t * w;
  }
  return std::log1p(t) - t;
}

// log B(a, b) for a, b >= 1 (accurate to ~1e-15 relative of the larger of a, b; used only
// for brackets and starting points).
inline double lbeta(double a, double b) {
  if (a > b) std::swap(a, b);
  if (b < 10.0) return lgam(a) + lgam(b) - lgam(a + b);
  const double s = a + b;
  // lgamma(b) - lgamma(s) by Stirling: -(b - 1/2) log1p(a/b) - a log s + a + d(b) - d(s).
  return lgam(a) - (b - 0.5) * std::log1p(a / b) - a * std::log(s) + a + stirling_delta(b) -
         stirling_delta(s);
}

// Continued fraction for the lower tail with all-positive elements (Didonato & Morris 1992,
// ACM TOMS 708 "BFRAC"; the recurrence as used by Boost.Math's ibeta_fraction2, recalled):
//   I_x(a, b) = prefactor / f,  f = b_0 + a_1 / (b_1 + a_2 / (b_2 + ...)),
//   a_m = (a+m-1)(a+b+m-1) m (b-m) x^2 / (a+2m-1)^2,
//   b_m = m + m (b-m) x / (a+2m-1) + (a+m)(lambda + 1 + m (2-x)) / (a+2m+1),
//   lambda = a - (a+b) x = a y - b x.
// Used only for lambda >= 0 (x at or below the mean; the other side by symmetry), where every
// element is positive (integer b: the fraction terminates at m = b), so the forward
// evaluation is numerically stable; Numerical Recipes' form, with alternating signs,
// lost up to ~1e-11 relative near the mean at n = 1e7. w = 1 - x; lambda is formed from
// whichever of x, w is exact (the one <= 1/2, see ibeta) with an exact product.
inline double beta_frac(double a, double b, double x, double w, int* iters) {
  constexpr double kEps = 1e-16;
  constexpr double kBig = 0x1p+500, kScale = 0x1p-500;  // exact power-of-two rescaling
  const int max_it = 50000000;
  const double s = a + b;
  double lam;
  if (x <= 0.5) {  // a - s x
    const double p = s * x, e = std::fma(s, x, -p);
    lam = (a - p) - e;
  } else {  // s w - b
    const double p = s * w, e = std::fma(s, w, -p);
    lam = (p - b) + e;
  }
  const double x2 = x * x, two_mx = 2.0 - x, lam1 = lam + 1.0;
  // Forward (Wallis) recurrence A_m = b_m A_{m-1} + a_m A_{m-2}, same for B; f = A / B.
  // All terms are positive, so it is stable; one division per step instead of Lentz's four.
  double A0 = 1.0, B0 = 0.0, A1 = a * lam1 / (a + 1.0), B1 = 1.0;
  double f = A1;
  int m = 1;
  for (; m <= max_it; ++m) {
    const double dm = m, den = a + 2.0 * dm - 1.0;
    const double r = 1.0 / (den * (den + 2.0));  // 1/den = (den+2) r, 1/(den+2) = den r
    const double inv_den = (den + 2.0) * r;
    const double mb = dm * (b - dm);
    const double aN = (a + dm - 1.0) * (s + dm - 1.0) * mb * x2 * inv_den * inv_den;
    const double bN = dm + mb * x * inv_den + (a + dm) * (lam1 + dm * two_mx) * (den * r);
    const double A2 = bN * A1 + aN * A0, B2 = bN * B1 + aN * B0;
    A0 = A1;
    B0 = B1;
    A1 = A2;
    B1 = B2;
    if (B1 > kBig) {
      A0 *= kScale;
      B0 *= kScale;
      A1 *= kScale;
      B1 *= kScale;
    }
    const double fn = A1 / B1;
    const bool done = std::fabs(fn - f) <= kEps * fn || aN == 0.0;
    f = fn;
    if (done) break;
  }
  if (iters) *iters = m;
  return f;
}

// log of one tail at x and its x-derivative (for the quantile solver):
// lower = true: T = I_x(a, b), else T = 1 - I_x(a, b). D = d log T / dx = +-pdf / T.
struct TailEval {
  double log_t, dlog_t;
};

inline TailEval tail_eval(double a, double b, double x, double y, bool lower) {
  TailEval e;
  const double lp = log_beta_prefactor(a, b, x, y);
  const bool direct_lower = x * (a + b) <= a;  // which tail the fraction gives directly
  const double f = direct_lower ? beta_frac(a, b, x, y, nullptr) : beta_frac(b, a, y, x, nullptr);
  const double log_direct = lp - std::log(f);
  if (direct_lower == lower) {
    e.log_t = log_direct;
    e.dlog_t = f / (x * y);
  } else {
    e.log_t = std::log1p(-std::exp(log_direct));
    e.dlog_t = std::exp(lp - e.log_t) / (x * y);
  }
  if (!lower) e.dlog_t = -e.dlog_t;
  return e;
}

double acklam_central(double q) {  // |q| = |p - 1/2| <= 0.47575
  const double r = q * q;
  return (((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r +
            1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) * q /
         (((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r +
            6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1.0);
}

double acklam_lower_tail(double p) {  // p < 0.02425
  const double q = std::sqrt(-2.0 * std::log(p));
  return (((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q -
            2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00) /
         ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q +
           3.754408661907416e+00) * q + 1.0);
}

// Phi^{-1}(p) for 0 < p < 1/2, refined in relative terms.
double ppf_lower_tail(double p) {
  double x = p < 0.02425 ? acklam_lower_tail(p) : acklam_central(p - 0.5);
  const double lp = std::log(p);
  if (p < 1e-280) {
    // Phi(x) would be near or below the denormal range: Newton on log Phi(x) from the
    // asymptotic series Phi(x) = phi(x)/(-x) * sum_j (-1)^j (2j-1)!! / x^{2j} (x < -35).
    for (int it = 0; it < 3; ++it) {
      const double ix2 = 1.0 / (x * x);
      double term = 1.0, sum = 1.0;
      for (int j = 1; j <= 10; ++j) {
        term *= -(2.0 * j - 1.0) * ix2;
        sum += term;
      }
      const double log_cdf = -0.5 * x * x - std::log(-x) - kLnSqrt2Pi + std::log(sum);
      x -= (log_cdf - lp) / (-x / sum);  // d log Phi / dx = phi / Phi = -x / sum
    }
    return x;
  }
  for (int it = 0; it < 1; ++it) {  // one Halley step: 1.2e-9 -> rounding level
    const double c = 0.5 * std::erfc(-x * kSqrt1_2);
    const double u = (c / p - 1.0) * kSqrt2Pi * std::exp(lp + 0.5 * x * x);
    x -= u / (1.0 + 0.5 * x * u);
  }
  return x;
}

}  // namespace

// ---- normal ----------------------------------------------------------------------------

double norm_cdf(double x) { return 0.5 * std::erfc(-x * kSqrt1_2); }

double norm_ppf(double p) {
  if (!(p > 0.0 && p < 1.0)) {
    if (p == 0.0) return -kInf;
    if (p == 1.0) return kInf;
    return kNaN;
  }
  if (p >= 0.25 && p <= 0.75) {
    const double r = p - 0.5;  // exact (Sterbenz)
    double x = acklam_central(r);
    for (int it = 0; it < 1; ++it) {  // one Halley step: 1.2e-9 -> rounding level
      const double e = 0.5 * std::erf(x * kSqrt1_2) - r;
      const double u = e * kSqrt2Pi * std::exp(0.5 * x * x);
      x -= u / (1.0 + 0.5 * x * u);
    }
    return x;
  }
  if (p < 0.5) return ppf_lower_tail(p);
  return -ppf_lower_tail(1.0 - p);  // 1 - p exact for p >= 1/2
}

// ---- incomplete beta --------------------------------------------------------------------

double log_beta_prefactor(double a, double b, double x, double y) {
  if (a >= 10.0 && b >= 10.0) {
    // x^a y^b / B(a,b) expanded about the mean: with p0 = a/s, q0 = b/s, u = x/p0 - 1,
    // v = y/q0 - 1 (so a u + b v = 0) and Stirling for the three lgammas,
    //   log = 1/2 log(a b / (2 pi s)) - d(a) - d(b) + d(s) + a L(u) + b L(v),
    // L(t) = log1p(t) - t. p0, q0 are rounded: E1 = p0 s - a, E2 = q0 s - b (exact by fma)
    // give the first-order correction R = (x - p0)(E2/q0 - E1/p0) and the exact
    // y - q0 = -(x - p0) - (E1 + E2)/s; without them the error grows like s * |x - p0| * eps.
    const double s = a + b, p0 = a / s, q0 = b / s;
    const double E1 = std::fma(p0, s, -a), E2 = std::fma(q0, s, -b), eta = (E1 + E2) / s;
    // d = x - p0, from whichever of x, y is exact (x < 1/2: x; else y and x = 1 - y).
    const double d = x < 0.5 ? x - p0 : (q0 - y) - eta;
    const double u = d / p0, v = (-d - eta) / q0;
    // Far from the mean take log1p(u) = log(x / p0) from x itself (u near -1 would lose the
    // digits of x / p0).
    const double lu = std::fabs(u) < 0.5 ? log1pmx(u) : std::log(x / p0) - u;
    const double lv = std::fabs(v) < 0.5 ? log1pmx(v) : std::log(y / q0) - v;
    const double R = d * (E2 / q0 - E1 / p0);
    return 0.5 * (std::log(a) + std::log(b) - std::log(s) - kLn2Pi) - stirling_delta(a) -
           stirling_delta(b) + stirling_delta(s) + (a * lu + b * lv + R);
  }
  if (a < 10.0 && b < 10.0) {
    return a * std::log(x) + b * std::log(y) - lgam(a) - lgam(b) + lgam(a + b);
  }
  // One parameter small: Stirling on the large one and on s only.
  if (a >= 10.0) {  // make `a` the small one (the prefactor is symmetric under a<->b, x<->y)
    std::swap(a, b);
    std::swap(x, y);
  }
  const double s = a + b;
  const double t = x < 0.5 ? (a - s * x) / b : (s * y - b) / b;  // = y s / b - 1
  // t <= -1/2 only when y < 1/2 (then y is exact): take log(y s / b) directly.
  const double lt = t > -0.5 ? std::log1p(t) : std::log(y * s / b);
  return a * std::log(x * s) + b * lt + 0.5 * std::log1p(-a / s) - a - lgam(a) -
         stirling_delta(b) + stirling_delta(s);
}

int ibeta(double a, double b, double x, double y, double* lower, double* upper) {
  if (x <= 0.0) {
    *lower = 0.0;
    *upper = 1.0;
    return 0;
  }
  if (y <= 0.0) {
    *lower = 1.0;
    *upper = 0.0;
    return 0;
  }
  const double lp = log_beta_prefactor(a, b, x, y);
  int it = 0;
  if (x * (a + b) <= a) {
    *lower = std::exp(lp) / beta_frac(a, b, x, y, &it);
    *upper = 1.0 - *lower;
  } else {
    *upper = std::exp(lp) / beta_frac(b, a, y, x, &it);
    *lower = 1.0 - *upper;
  }
  return it;
}

namespace {
// zz = upper standard-normal quantile of P (-norm_ppf(P)), passed in so that a batch with one
// alpha computes it once.
double beta_quantile_zz(double a, double b, double P, double Q, double zz, int* evals) {
  const bool solve_lower = P <= Q;  // iterate on the log of the smaller tail
  const double lb = lbeta(a, b);
  // Brackets: x* >= (P a B)^(1/a) and 1 - x* >= (Q b B)^(1/b).
  double lo = std::exp((std::log(P) + std::log(a) + lb) / a - 1e-9);
  double hi = -std::expm1((std::log(Q) + std::log(b) + lb) / b - 1e-9);
  if (!(lo > 0.0)) lo = 0.0;
  if (!(hi < 1.0)) hi = 1.0;
  // Start: Abramowitz & Stegun 26.5.22 (zz: upper standard-normal quantile of P).
  const double lam = (zz * zz - 3.0) / 6.0;
  const double ia = 1.0 / (2.0 * a - 1.0), ib = 1.0 / (2.0 * b - 1.0);
  const double hh = 2.0 / (ia + ib);
  const double w = zz * std::sqrt(hh + lam) / hh - (ib - ia) * (lam + 5.0 / 6.0 - 2.0 / (3.0 * hh));
  double x = a / (a + b * std::exp(2.0 * w));
  // Power-law start near the ends (exact as x -> 0 or x -> 1).
  if (solve_lower && a < 10.0 && lo * b < 0.05) x = lo * (1.0 + 2e-9);
  if (!solve_lower && b < 10.0 && (1.0 - hi) * a < 0.05) x = 1.0 - (1.0 - hi) * (1.0 + 2e-9);
  if (!(x > lo && x < hi)) x = (lo > 0.0 && hi / lo > 4.0) ? std::sqrt(lo * hi) : 0.5 * (lo + hi);
  if (!(x > lo && x < hi)) x = 0.5 * (lo + hi);
  const double log_target = solve_lower ? std::log(P) : std::log(Q);
  int n_eval = 0;
  for (int it = 0; it < 200; ++it) {
    const double y = 1.0 - x;
    const TailEval e = tail_eval(a, b, x, y, solve_lower);
    ++n_eval;
    const double g = e.log_t - log_target;  // log T(x) - log target
    const double D = e.dlog_t;              // d log T / dx
    if (g == 0.0) break;
    // Maintain the bracket: T increasing when solving the lower tail.
    if (std::isnan(g)) {
      // cannot happen for x in (0, 1); keep the bracket and bisect
    } else if ((g < 0.0) == solve_lower) {
      lo = x;
    } else {
      hi = x;
    }
    double xn = x;
    bool bisect = true;
    if (std::isfinite(g) && std::isfinite(D) && D != 0.0) {
      // Iterate in t = log x (x < 1/2) or t = log y (x >= 1/2): the tails are close to power
      // laws there, which Newton in t solves in one step. sc = dx/dt.
      const double sc = x < 0.5 ? x : -y;
      const double newton = g / (sc * D);
      // Halley only while its correction factor is moderate; far from the root (in the
      // log-tail) it would shrink the steps to nothing.
      const double r = (a - 1.0) / x - (b - 1.0) / y;  // pdf' / pdf
      const double corr = 0.5 * newton * (1.0 + sc * (r - D));
      const double dt = std::fabs(corr) <= 0.5 ? newton / (1.0 - corr) : newton;
      xn = x < 0.5 ? x * std::exp(-dt) : x - y * std::expm1(-dt);
      if (std::fabs(xn - x) <= 1e-12 * x) {  // converged (next error ~1e-24 relative)
        x = std::min(std::max(xn, lo), hi);
        break;
      }
      bisect = !(xn > lo && xn < hi);
    }
    if (bisect) {
      if (lo > 0.0 && hi / lo > 4.0) {
        xn = std::sqrt(lo * hi);
      } else if (hi < 1.0 && (1.0 - lo) / (1.0 - hi) > 4.0) {
        xn = 1.0 - std::sqrt((1.0 - lo) * (1.0 - hi));
      } else {
        xn = 0.5 * (lo + hi);
      }
    }
    x = xn;
    if (hi - lo <= 4e-16 * x) break;
  }
  if (evals) *evals = n_eval;
  return x;
}
}  // namespace

double beta_quantile(double a, double b, double P, double Q, int* evals) {
  return beta_quantile_zz(a, b, P, Q, P <= Q ? -norm_ppf(P) : norm_ppf(Q), evals);
}

namespace {
// Closed forms and the general solve for one Clopper-Pearson side; z = norm_ppf(alpha).
double cp_lower_impl(int64_t k, int64_t n, double alpha, double z) {
  if (k == 0) return 0.0;
  const double dn = double(n);
  if (k == n) return std::pow(alpha, 1.0 / dn);
  if (k == 1) return -std::expm1(std::log1p(-alpha) / dn);  // 1 - (1-x)^n = alpha
  return beta_quantile_zz(double(k), double(n - k + 1), alpha, 1.0 - alpha, -z, nullptr);
}

double cp_upper_impl(int64_t k, int64_t n, double alpha, double z) {
  if (k == n) return 1.0;
  const double dn = double(n);
  if (k == 0) return -std::expm1(std::log(alpha) / dn);
  if (k == n - 1) return std::exp(std::log1p(-alpha) / dn);  // 1 - x^n = alpha
  return beta_quantile_zz(double(k + 1), double(n - k), 1.0 - alpha, alpha, z, nullptr);
}
}  // namespace

double cp_lower(int64_t k, int64_t n, double alpha) { return cp_lower_impl(k, n, alpha, norm_ppf(alpha)); }
double cp_upper(int64_t k, int64_t n, double alpha) { return cp_upper_impl(k, n, alpha, norm_ppf(alpha)); }

// ---- binomial ---------------------------------------------------------------------------

double binom_pmf(int64_t k, int64_t n, double p) {
  if (k < 0 || k > n) return 0.0;
  if (p <= 0.0) return k == 0 ? 1.0 : 0.0;
  if (p >= 1.0) return k == n ? 1.0 : 0.0;
  const double q = 1.0 - p;
  // C(n,k) p^k q^(n-k) = prefactor(k+1, n-k+1, p) / ((n+1) p q).
  const double lp = log_beta_prefactor(double(k + 1), double(n - k + 1), p, q);
  return std::exp(lp - std::log(double(n) + 1.0) - std::log(p) - std::log(q));
}

double binom_sf(int64_t k, int64_t n, double p) {  // P(X > k) = I_p(k+1, n-k)
  if (k < 0) return 1.0;
  if (k >= n) return 0.0;
  if (p <= 0.0) return 0.0;
  if (p >= 1.0) return 1.0;
  double lo, up;
  ibeta(double(k + 1), double(n - k), p, 1.0 - p, &lo, &up);
  return lo;
}

double binom_cdf(int64_t k, int64_t n, double p) {  // P(X <= k) = 1 - I_p(k+1, n-k)
  if (k < 0) return 0.0;
  if (k >= n) return 1.0;
  if (p <= 0.0) return 1.0;
  if (p >= 1.0) return 0.0;
  double lo, up;
  ibeta(double(k + 1), double(n - k), p, 1.0 - p, &lo, &up);
  return up;
}

double binom_test_two_sided(int64_t k, int64_t n, double p) {
  if (p <= 0.0 || p >= 1.0) return double(k) == p * double(n) ? 1.0 : 0.0;
  const double d = binom_pmf(k, n, p);
  const double rerr = 1.0 + 1e-7;
  const double pn = p * double(n);
  const double dk = double(k);
  if (dk == pn) return 1.0;
  double pval;
  if (dk < pn) {
    // Largest ix in [ceil(pn), n] (or ceil(pn) - 1) with pmf(ix) >= d * rerr, searching the
    // decreasing side of the mode (scipy's _binary_search_for_binom_tst on -pmf).
    const double target = d * rerr;
    int64_t lo = int64_t(std::ceil(pn)), hi = n, ix = 0;
    bool found = false;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      const double v = binom_pmf(mid, n, p);
      if (v > target) {
        lo = mid + 1;
      } else if (v < target) {
        hi = mid - 1;
      } else {
        ix = mid;
        found = true;
        break;
      }
    }
    if (!found) ix = binom_pmf(lo, n, p) >= target ? lo : lo - 1;
    const int64_t y = n - ix + (target == binom_pmf(ix, n, p) ? 1 : 0);
    pval = binom_cdf(k, n, p) + binom_sf(n - y, n, p);
  } else {
    const double target = d * rerr;
    int64_t lo = 0, hi = int64_t(std::floor(pn)), ix = 0;
    bool found = false;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      const double v = binom_pmf(mid, n, p);
      if (v < target) {
        lo = mid + 1;
      } else if (v > target) {
        hi = mid - 1;
      } else {
        ix = mid;
        found = true;
        break;
      }
    }
    if (!found) ix = binom_pmf(lo, n, p) <= target ? lo : lo - 1;
    const int64_t y = ix + 1;
    pval = binom_cdf(y - 1, n, p) + binom_sf(k - 1, n, p);
  }
  return std::min(1.0, pval);
}

// ---- array drivers ----------------------------------------------------------------------

void norm_cdf_array(const double* x, int64_t N, double* out) {
  parallel_for(N, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = norm_cdf(x[i]);
  });
}

void norm_ppf_array(const double* p, int64_t N, double* out) {
  parallel_for(N, 2048, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = norm_ppf(p[i]);
  });
}

void certified_radius_array(const double* p, int64_t N, double sigma, double* out) {
  parallel_for(N, 2048, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = p[i] > 0.5 ? sigma * norm_ppf(p[i]) : 0.0;
  });
}

namespace {

// z = norm_ppf(alpha) for one-sided, norm_ppf(alpha / 2) for two-sided.
inline void cp_solve(int64_t k, int64_t n, double alpha, double z, Side side, double* o) {
  switch (side) {
    case kLower:
      o[0] = cp_lower_impl(k, n, alpha, z);
      break;
    case kUpper:
      o[0] = cp_upper_impl(k, n, alpha, z);
      break;
    default:
      o[0] = cp_lower_impl(k, n, 0.5 * alpha, z);
      o[1] = cp_upper_impl(k, n, 0.5 * alpha, z);
      break;
  }
}

struct Pair {
  int64_t n, k, idx;
};

}  // namespace

int64_t clopper_pearson_array(const int64_t* k, const int64_t* n, int64_t N, bool n_scalar,
                              double alpha, Side side, double* out, int64_t* distinct) {
  const int ncol = side == kTwoSided ? 2 : 1;
  const double z = norm_ppf(side == kTwoSided ? 0.5 * alpha : alpha);
  // Validate.
  int64_t bad = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t ni = n_scalar ? n[0] : n[i];
    bad += (ni < 1 || k[i] < 0 || k[i] > ni) ? 1 : 0;
  }
  if (bad) return bad;
  if (N == 0) {
    if (distinct) *distinct = 0;
    return 0;
  }
  bool shared_n = n_scalar;
  if (!shared_n) {
    shared_n = true;
    for (int64_t i = 1; i < N && shared_n; ++i) shared_n = n[i] == n[0];
  }
  constexpr int64_t kGrain = 16;
  if (shared_n) {
    const int64_t nn = n[0];
    std::vector<int64_t> ks;
    if (uint64_t(nn) + 1 <= 4 * uint64_t(N)) {  // bitmap over [0, n]
      std::vector<uint8_t> mark(size_t(nn) + 1, 0);
      for (int64_t i = 0; i < N; ++i) mark[size_t(k[i])] = 1;
      for (int64_t j = 0; j <= nn; ++j)
        if (mark[size_t(j)]) ks.push_back(j);
      std::vector<int64_t> slot(size_t(nn) + 1, -1);
      for (size_t j = 0; j < ks.size(); ++j) slot[size_t(ks[j])] = int64_t(j);
      std::vector<double> vals(ks.size() * ncol);
      parallel_for(int64_t(ks.size()), kGrain, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) cp_solve(ks[size_t(j)], nn, alpha, z, side, &vals[size_t(j * ncol)]);
      });
      parallel_for(N, 8192, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const double* v = &vals[size_t(slot[size_t(k[i])] * ncol)];
          for (int c = 0; c < ncol; ++c) out[i * ncol + c] = v[c];
        }
      });
    } else {  // sort-unique
      ks.assign(k, k + N);
      std::sort(ks.begin(), ks.end());
      ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
      std::vector<double> vals(ks.size() * ncol);
      parallel_for(int64_t(ks.size()), kGrain, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) cp_solve(ks[size_t(j)], nn, alpha, z, side, &vals[size_t(j * ncol)]);
      });
      parallel_for(N, 4096, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const size_t j = size_t(std::lower_bound(ks.begin(), ks.end(), k[i]) - ks.begin());
          for (int c = 0; c < ncol; ++c) out[i * ncol + c] = vals[j * ncol + c];
        }
      });
    }
    if (distinct) *distinct = int64_t(ks.size());
    return 0;
  }
  // Mixed n: sort the pairs, solve each distinct pair once.
  std::vector<Pair> pairs(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) pairs[size_t(i)] = Pair{n[i], k[i], i};
  std::sort(pairs.begin(), pairs.end(), [](const Pair& x, const Pair& y) {
    return x.n != y.n ? x.n < y.n : x.k < y.k;
  });
  std::vector<int64_t> starts;
  for (int64_t i = 0; i < N; ++i)
    if (i == 0 || pairs[size_t(i)].n != pairs[size_t(i - 1)].n || pairs[size_t(i)].k != pairs[size_t(i - 1)].k)
      starts.push_back(i);
  starts.push_back(N);
  const int64_t G = int64_t(starts.size()) - 1;
  parallel_for(G, kGrain, [&](int64_t b, int64_t e) {
    double v[2];
    for (int64_t g = b; g < e; ++g) {
      const Pair& first = pairs[size_t(starts[size_t(g)])];
      cp_solve(first.k, first.n, alpha, z, side, v);
      for (int64_t i = starts[size_t(g)]; i < starts[size_t(g + 1)]; ++i)
        for (int c = 0; c < ncol; ++c) out[pairs[size_t(i)].idx * ncol + c] = v[c];
    }
  });
  if (distinct) *distinct = G;
  return 0;
}

int64_t binom_test_array(const int64_t* k, const int64_t* n, int64_t N, bool n_scalar, double p,
                         double* out) {
  int64_t bad = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t ni = n_scalar ? n[0] : n[i];
    bad += (ni < 1 || k[i] < 0 || k[i] > ni) ? 1 : 0;
  }
  if (bad) return bad;
  parallel_for(N, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = binom_test_two_sided(k[i], n_scalar ? n[0] : n[i], p);
  });
  return 0;
}

}  // namespace CERTKIT_ISA
}  // namespace stats
}  // namespace certkit
