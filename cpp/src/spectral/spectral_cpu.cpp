// Graph spectral ops (see spectral.h). Algorithms written from their published
// descriptions: k-d tree (Friedman, Bentley, Finkel 1977), Householder tridiagonalisation
// and implicit QL with Wilkinson shifts (Golub & Van Loan, Matrix Computations, 8.3),
// inverse iteration on tridiagonals with partial pivoting (as in LAPACK dstein/dlagtf),
// reverse Cuthill-McKee ordering with an envelope LDL^T factor (George & Liu 1981), Lanczos
// with full reorthogonalisation and shift-invert (Ericsson & Ruhe 1980), incremental
// distance pruning in the k-d tree search (Arya & Mount 1993), nested dissection (George
// 1973) with a supernodal multifrontal LDL^T (Duff & Reid 1983; elimination trees, Liu
// 1986; relaxed supernodes, Ashcraft & Grimes 1989).
#include "spectral/spectral.h"

#include "common/openblas_env.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <queue>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/parallel.h"

#if CERTKIT_HAS_LAPACK
#include <dlfcn.h>
#endif

namespace certkit {
namespace spectral {

// Fortran BLAS / LAPACK entry points (reference interface, 32-bit integers).
struct Lapack {
  using Dgemv = void (*)(const char*, const int*, const int*, const double*, const double*, const int*,
                         const double*, const int*, const double*, double*, const int*);
  using Dgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const double*,
                         const double*, const int*, const double*, const int*, const double*, double*,
                         const int*);
  using Dsyevd = void (*)(const char*, const char*, const int*, double*, const int*, double*, double*,
                          const int*, int*, const int*, int*);
  using Dsyevr = void (*)(const char*, const char*, const char*, const int*, double*, const int*,
                          const double*, const double*, const int*, const int*, const double*, int*,
                          double*, double*, const int*, int*, double*, const int*, int*, const int*, int*);
  Dgemv dgemv = nullptr;
  Dgemm dgemm = nullptr;
  Dsyevd dsyevd = nullptr;
  Dsyevr dsyevr = nullptr;
  void (*set_threads)(int) = nullptr;
  const char* (*corename)() = nullptr;
  bool ok = false;
  std::string where;
};

// ------------------------------------------------ optional LAPACK (run-time loaded) ----
// CMake records the LAPACK found at configure time (CERTKIT_LAPACK_LIBS, ':'-separated);
// it is dlopen()ed on first use rather than linked, for two reasons: importing the core
// never loads BLAS, and OPENBLAS_CORETYPE can be set before OpenBLAS initialises (the
// DYNAMIC_ARCH OpenBLAS 0.3.21 of Debian 12 does not recognise recent Xeons and falls back
// to its SSE3 "Prescott" kernels; we pick SkylakeX / Haswell from cpuid unless the user set
// the variable). OpenBLAS is set to one thread: the ops thread over clouds themselves.
// Set CERTKIT_LAPACK=0 to disable it.
#if CERTKIT_HAS_LAPACK
namespace {
std::atomic<bool> g_lapack_enabled{true};

Lapack load_lapack() {
  Lapack L;
  const char* off = std::getenv("CERTKIT_LAPACK");
  if (off && std::string(off) == "0") {
    L.where = "disabled by CERTKIT_LAPACK=0";
    return L;
  }
  std::vector<std::vector<std::string>> candidates;
  {
    std::vector<std::string> cfg;
    std::string s = CERTKIT_LAPACK_LIBS, cur;
    for (char ch : s + ":") {
      if (ch == ':') {
        if (!cur.empty()) cfg.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    candidates.push_back(cfg);
  }
  candidates.push_back({"libopenblas.so.0"});
  candidates.push_back({"liblapack.so.3", "libblas.so.3"});
  const bool set_core = certkit::set_openblas_coretype();
  for (const auto& libs : candidates) {
    std::vector<void*> handles;
    for (const auto& lib : libs) {
      void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) handles.push_back(h);
    }
    if (handles.empty()) continue;
    auto sym = [&](const char* name) -> void* {
      for (void* h : handles)
        if (void* p = dlsym(h, name)) return p;
      return nullptr;
    };
    L.dgemv = reinterpret_cast<Lapack::Dgemv>(sym("dgemv_"));
    L.dgemm = reinterpret_cast<Lapack::Dgemm>(sym("dgemm_"));
    L.dsyevd = reinterpret_cast<Lapack::Dsyevd>(sym("dsyevd_"));
    L.dsyevr = reinterpret_cast<Lapack::Dsyevr>(sym("dsyevr_"));
    L.set_threads = reinterpret_cast<void (*)(int)>(sym("openblas_set_num_threads"));
    L.corename = reinterpret_cast<const char* (*)()>(sym("openblas_get_corename"));
    if (L.dgemv && L.dgemm && L.dsyevd && L.dsyevr) {
      L.ok = true;
      // Our calls are small (Krylov gemv) or already threaded over clouds: BLAS threads
      // would only add fork/join cost (seconds for a 150-point basis on a loaded machine).
      if (L.set_threads) L.set_threads(1);
      for (const auto& lib : libs) L.where += (L.where.empty() ? "" : ":") + lib;
      break;
    }
    L = Lapack();
  }
  if (set_core) unsetenv("OPENBLAS_CORETYPE");
  if (!L.ok) L.where = "not found at run time";
  return L;
}

const Lapack& lapack_state() {
  static const Lapack L = load_lapack();
  return L;
}
}  // namespace

const Lapack* lapack() {
  if (!g_lapack_enabled.load(std::memory_order_relaxed)) return nullptr;
  const Lapack& L = lapack_state();
  return L.ok ? &L : nullptr;
}
bool has_lapack() { return lapack_state().ok; }
void set_lapack_enabled(bool on) { g_lapack_enabled.store(on); }
std::string lapack_info() {
  const Lapack& L = lapack_state();
  std::string s = L.ok ? "yes (" + L.where : "no (" + L.where;
  if (L.ok && L.corename) s += std::string(", OpenBLAS core ") + L.corename();
  return s + ")";
}
#else
const Lapack* lapack() { return nullptr; }
bool has_lapack() { return false; }
void set_lapack_enabled(bool) {}
std::string lapack_info() { return "no (not found when the core was built)"; }
#endif

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();

// sqrt(a^2 + b^2) without the cost of std::hypot on well-scaled input.
bool fits_int(int64_t v) { return v >= 0 && v < (int64_t{1} << 31); }

inline double fast_hypot(double a, double b) {
  const double m = std::max(std::fabs(a), std::fabs(b));
  if (m > 1e-150 && m < 1e150) return std::sqrt(a * a + b * b);
  return std::hypot(a, b);
}

// Dot product with four independent accumulators: the triangular solves chain one dot per
// row, so its latency (not its throughput) sets the speed.
inline double dot4(const double* a, const double* b, int64_t len) {
  typedef double v4 __attribute__((vector_size(32)));
  v4 s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
  int64_t t = 0;
  for (; t + 16 <= len; t += 16) {
    v4 a0, a1, a2, a3, b0, b1, b2, b3;
    std::memcpy(&a0, a + t, 32);
    std::memcpy(&a1, a + t + 4, 32);
    std::memcpy(&a2, a + t + 8, 32);
    std::memcpy(&a3, a + t + 12, 32);
    std::memcpy(&b0, b + t, 32);
    std::memcpy(&b1, b + t + 4, 32);
    std::memcpy(&b2, b + t + 8, 32);
    std::memcpy(&b3, b + t + 12, 32);
    s0 += a0 * b0;
    s1 += a1 * b1;
    s2 += a2 * b2;
    s3 += a3 * b3;
  }
  for (; t + 4 <= len; t += 4) {
    v4 a0, b0;
    std::memcpy(&a0, a + t, 32);
    std::memcpy(&b0, b + t, 32);
    s0 += a0 * b0;
  }
  const v4 s = (s0 + s1) + (s2 + s3);
  double r = (s[0] + s[1]) + (s[2] + s[3]);
  for (; t < len; ++t) r += a[t] * b[t];
  return r;
}

// ---------------------------------------------------- Krylov basis kernels -----------
// Q holds nq rows of length n (row-major). h[j] = Q[j] . x
// Own kernel (four rows per pass over x); also the supernodal backward solve's G^T u.
void qdots_own(const double* Q, int64_t nq, int64_t n, const double* x, double* h) {
  int64_t j = 0;
  for (; j + 4 <= nq; j += 4) {
    const double* a = Q + j * n;
    const double* b = a + n;
    const double* c = b + n;
    const double* d = c + n;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t i = 0; i < n; ++i) {
      const double xi = x[i];
      s0 += a[i] * xi;
      s1 += b[i] * xi;
      s2 += c[i] * xi;
      s3 += d[i] * xi;
    }
    h[j] = s0;
    h[j + 1] = s1;
    h[j + 2] = s2;
    h[j + 3] = s3;
  }
  for (; j < nq; ++j) {
    const double* a = Q + j * n;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += a[i] * x[i];
    h[j] = s;
  }
}

void qdots(const double* Q, int64_t nq, int64_t n, const double* x, double* h) {
  if (const Lapack* lp = lapack(); lp && nq >= 8 && fits_int(n) && fits_int(nq)) {
    const int nn = static_cast<int>(n), mq = static_cast<int>(nq), one = 1;
    const double a1 = 1.0, b0 = 0.0;
    lp->dgemv("T", &nn, &mq, &a1, Q, &nn, x, &one, &b0, h, &one);
    return;
  }
  qdots_own(Q, nq, n, x, h);
}

// x -= sum_j h[j] Q[j]
void qaxpy(const double* Q, int64_t nq, int64_t n, const double* h, double* x) {
  if (const Lapack* lp = lapack(); lp && nq >= 8 && fits_int(n) && fits_int(nq)) {
    const int nn = static_cast<int>(n), mq = static_cast<int>(nq), one = 1;
    const double am = -1.0, b1 = 1.0;
    lp->dgemv("N", &nn, &mq, &am, Q, &nn, h, &one, &b1, x, &one);
    return;
  }
  int64_t j = 0;
  for (; j + 4 <= nq; j += 4) {
    const double* a = Q + j * n;
    const double* b = a + n;
    const double* c = b + n;
    const double* d = c + n;
    const double h0 = h[j], h1 = h[j + 1], h2 = h[j + 2], h3 = h[j + 3];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] -= (h0 * a[i] + h1 * b[i]) + (h2 * c[i] + h3 * d[i]);
  }
  for (; j < nq; ++j) {
    const double* a = Q + j * n;
    const double s = h[j];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] -= s * a[i];
  }
}

// Yt (n, r) = Q^T Z^T with Z (r, p) and Q (p, n) row-major: the Ritz vectors as columns.
void ritz_vectors_t(const double* Z, int64_t r, int64_t p, const double* Q, int64_t n, double* Yt) {
  if (const Lapack* lp = lapack(); lp && fits_int(n) && fits_int(p) && fits_int(r)) {
    // Column-major view: Yt is (r, n) with leading dimension r, = Z (r, p) Q (p, n).
    const int nn = static_cast<int>(n), rr = static_cast<int>(r), pp = static_cast<int>(p);
    const double a1 = 1.0, b0 = 0.0;
    lp->dgemm("T", "T", &rr, &nn, &pp, &a1, Z, &pp, Q, &nn, &b0, Yt, &rr);
    return;
  }
  std::vector<double> Zt(static_cast<size_t>(p) * r);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < p; ++j) Zt[j * r + i] = Z[i * p + j];
  std::fill(Yt, Yt + n * r, 0.0);
  for (int64_t t = 0; t < n; ++t) {
    double* y = Yt + t * r;
    for (int64_t j = 0; j < p; ++j) {
      const double q = Q[j * n + t];
      const double* z = Zt.data() + j * r;
#pragma omp simd
      for (int64_t i = 0; i < r; ++i) y[i] += q * z[i];
    }
  }
}

// G (m, m) = Y^T Y for Y (n, m) row-major.
void gram_rows(const double* Y, int64_t n, int64_t m, double* G) {
  if (const Lapack* lp = lapack(); lp && fits_int(n) && fits_int(m)) {
    // Column-major view: Y is (m, n) with leading dimension m; G = Y Y^T.
    const int nn = static_cast<int>(n), mm = static_cast<int>(m);
    const double a1 = 1.0, b0 = 0.0;
    lp->dgemm("N", "T", &mm, &mm, &nn, &a1, Y, &mm, Y, &mm, &b0, G, &mm);
    return;
  }
  std::fill(G, G + m * m, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    const double* y = Y + r * m;
    for (int64_t i = 0; i < m; ++i) {
      const double yi = y[i];
      double* g = G + i * m;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) g[j] += yi * y[j];
    }
  }
}

// T (n, m) = Y B for Y (n, m) and B (m, m) row-major.
void rows_times(const double* Y, int64_t n, int64_t m, const double* B, double* T) {
  if (const Lapack* lp = lapack(); lp && fits_int(n) && fits_int(m)) {
    // Column-major: T^T (m, n) = B^T (m, m) Y^T (m, n), i.e. "N", "N" on the row-major data.
    const int nn = static_cast<int>(n), mm = static_cast<int>(m);
    const double a1 = 1.0, b0 = 0.0;
    lp->dgemm("N", "N", &mm, &nn, &mm, &a1, B, &mm, Y, &mm, &b0, T, &mm);
    return;
  }
  for (int64_t r = 0; r < n; ++r) {
    const double* y = Y + r * m;
    double* t = T + r * m;
    std::fill(t, t + m, 0.0);
    for (int64_t i = 0; i < m; ++i) {
      const double yi = y[i];
      const double* b = B + i * m;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) t[j] += yi * b[j];
    }
  }
}

// ---------------------------------------------------------------- k-d tree -----------
struct KdNode {
  int64_t begin, end;
  int32_t left, right, axis;
  double split;
};

struct KdTree {
  int64_t n;
  std::vector<int64_t> perm;  // tree order -> original index
  std::vector<double> xyz;    // points in tree order (leaves are contiguous runs)
  std::vector<KdNode> nodes;

  KdTree(const double* pts, int64_t N) : n(N), perm(N) {
    std::iota(perm.begin(), perm.end(), int64_t{0});
    nodes.reserve(static_cast<size_t>(2 * N / 8 + 4));
    build(pts, 0, N);
    xyz.resize(static_cast<size_t>(3 * N));
    for (int64_t i = 0; i < N; ++i)
      for (int d = 0; d < 3; ++d) xyz[3 * i + d] = pts[3 * perm[i] + d];
  }

  int32_t build(const double* p, int64_t b, int64_t e) {
    const int32_t id = static_cast<int32_t>(nodes.size());
    nodes.push_back({b, e, -1, -1, 0, 0.0});
    if (e - b <= 12) return id;
    double lo[3] = {1e300, 1e300, 1e300}, hi[3] = {-1e300, -1e300, -1e300};
    for (int64_t i = b; i < e; ++i)
      for (int d = 0; d < 3; ++d) {
        const double v = p[3 * perm[i] + d];
        lo[d] = std::min(lo[d], v);
        hi[d] = std::max(hi[d], v);
      }
    int axis = 0;
    for (int d = 1; d < 3; ++d)
      if (hi[d] - lo[d] > hi[axis] - lo[axis]) axis = d;
    if (hi[axis] - lo[axis] <= 0) return id;  // all duplicates: leaf
    const int64_t mid = (b + e) / 2;
    std::nth_element(perm.begin() + b, perm.begin() + mid, perm.begin() + e,
                     [&](int64_t x, int64_t y) { return p[3 * x + axis] < p[3 * y + axis]; });
    const double split = p[3 * perm[mid] + axis];
    const int32_t l = build(p, b, mid);
    const int32_t r = build(p, mid, e);
    nodes[id].left = l;
    nodes[id].right = r;
    nodes[id].axis = axis;
    nodes[id].split = split;
    return id;
  }

  // The k best candidates by (d2, original index), kept sorted ascending in best[0..cnt).
  struct Best {
    std::vector<std::pair<double, int64_t>> v;
    int64_t cnt = 0, k = 0;
    void reset(int64_t kk) {
      k = kk;
      cnt = 0;
      v.resize(static_cast<size_t>(kk));
    }
    bool full() const { return cnt == k; }
    double worst() const { return v[cnt - 1].first; }
    void offer(const std::pair<double, int64_t>& c) {
      if (cnt == k) {
        if (!(c < v[k - 1])) return;
        --cnt;
      }
      int64_t t = cnt++;
      while (t > 0 && c < v[t - 1]) {
        v[t] = v[t - 1];
        --t;
      }
      v[t] = c;
    }
  };

  void query(const double* q, Best& best) const {
    double off[3] = {0, 0, 0};
    search(0, q, best, 0.0, off);
  }

  // rd: squared distance from q to the node's cell, as a sum over axes of the squared
  // offsets in off[] (incremental distance: Arya & Mount 1993), a lower bound that prunes
  // far cells better than the splitting plane alone.
  void search(int32_t id, const double* q, Best& best, double rd, double* off) const {
    const KdNode& nd = nodes[id];
    if (nd.left < 0) {
      const double* x = xyz.data() + 3 * nd.begin;
      for (int64_t i = nd.begin; i < nd.end; ++i, x += 3) {
        const double dx = x[0] - q[0], dy = x[1] - q[1], dz = x[2] - q[2];
        const double d = dx * dx + dy * dy + dz * dz;
        if (!best.full() || d <= best.worst()) best.offer({d, perm[i]});
      }
      return;
    }
    const double diff = q[nd.axis] - nd.split;
    const int32_t near = diff < 0 ? nd.left : nd.right;
    const int32_t far = diff < 0 ? nd.right : nd.left;
    search(near, q, best, rd, off);
    const double old = off[nd.axis];
    const double rd_far = rd - old * old + diff * diff;
    if (!best.full() || rd_far <= best.worst()) {
      off[nd.axis] = diff;
      search(far, q, best, rd_far, off);
      off[nd.axis] = old;
    }
  }
};

// ------------------------------------------------------ tridiagonal eigensolvers ------
// Implicit QL with Wilkinson shifts on d (n), e (n, e[i] couples i and i+1, e[n-1] unused).
// If Zt is given (n rows of length ld), rotations are applied to its rows i, i+1.
void tql(double* d, double* e, int64_t n, double* Zt, int64_t ld) {
  if (n <= 1) return;
  e[n - 1] = 0.0;
  for (int64_t l = 0; l < n; ++l) {
    int iter = 0;
    int64_t m;
    do {
      for (m = l; m < n - 1; ++m) {
        const double dd = std::fabs(d[m]) + std::fabs(d[m + 1]);
        if (std::fabs(e[m]) <= kEps * dd) break;
      }
      if (m != l) {
        if (iter++ == 100) throw std::runtime_error("eigh: QL iteration did not converge");
        double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
        double r = fast_hypot(g, 1.0);
        g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));
        double s = 1.0, c = 1.0, p = 0.0;
        int64_t i;
        bool underflow = false;
        for (i = m - 1; i >= l; --i) {
          const double f = s * e[i], b = c * e[i];
          r = fast_hypot(f, g);
          e[i + 1] = r;
          if (r == 0.0) {
            d[i + 1] -= p;
            e[m] = 0.0;
            underflow = true;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2.0 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
          if (Zt) {
            double* a = Zt + i * ld;
            double* bb = Zt + (i + 1) * ld;
#pragma omp simd
            for (int64_t t = 0; t < ld; ++t) {
              const double x = a[t], y = bb[t];
              bb[t] = s * x + c * y;
              a[t] = c * x - s * y;
            }
          }
        }
        if (underflow) continue;
        d[l] -= p;
        e[l] = g;
        e[m] = 0.0;
      }
    } while (m != l);
  }
}


// The k-th largest eigenvalue (k = 0: the largest) of the symmetric tridiagonal (a, b) of
// order p, by multisection on Sturm counts (bisection, Golub & Van Loan 8.4.1, with 15
// points per pass: the counts at all of them share one pass over T, whose cost is the
// chain of divisions, so a pass gives 4 bits instead of 1). Stops when the bracket is
// below rel_tol relative (2 eps: to rounding); returns its midpoint. O(15 p) per pass.
double tridiag_kth_largest(const double* a, const double* b, int64_t p, int64_t k, double rel_tol = 2 * kEps) {
  double lo = a[0], hi = a[0];
  for (int64_t i = 0; i < p; ++i) {
    const double r = (i > 0 ? std::fabs(b[i - 1]) : 0.0) + (i + 1 < p ? std::fabs(b[i]) : 0.0);
    lo = std::min(lo, a[i] - r);
    hi = std::max(hi, a[i] + r);
  }
  const double scale = std::max(std::fabs(lo), std::fabs(hi));
  const double pivmin = std::numeric_limits<double>::min() / kEps + kEps * kEps * scale * scale;
  const int64_t target = p - 1 - k;  // ascending index: want count(x) <= target < count(hi)
  constexpr int kPts = 16;           // lanes; lane kPts - 1 repeats a point (padding)
  for (int it = 0; it < 100 && hi - lo > rel_tol * std::max(std::fabs(lo), std::fabs(hi)) + pivmin; ++it) {
    double x[kPts], d[kPts];
    int64_t c[kPts];
    const double step = (hi - lo) / kPts;
    for (int q = 0; q < kPts; ++q) {
      x[q] = lo + step * std::min(q + 1, kPts - 1);
      d[q] = 1.0;
      c[q] = 0;
    }
    for (int64_t i = 0; i < p; ++i) {
      const double bb = i > 0 ? b[i - 1] * b[i - 1] : 0.0;
      const double ai = a[i];
#pragma omp simd
      for (int q = 0; q < kPts; ++q) {
        double dq = (ai - x[q]) - bb / d[q];
        dq = std::fabs(dq) < pivmin ? -pivmin : dq;
        c[q] += dq < 0;
        d[q] = dq;
      }
    }
    // counts are nondecreasing in x: the bracket shrinks to [x_q, x_{q+1}]
    double nlo = lo, nhi = hi;
    for (int q = 0; q < kPts - 1; ++q) {
      if (c[q] > target) {
        nhi = x[q];
        break;
      }
      nlo = x[q];
    }
    lo = nlo;
    hi = nhi;
  }
  return 0.5 * (lo + hi);
}

// Inverse iteration: eigenvectors of the tridiagonal (a, b) for eigenvalues theta[0..m)
// (any order). Z (m, p) row-major. Vectors for eigenvalues closer than `ortol` are
// reorthogonalised against each other (modified Gram-Schmidt).
void tridiag_inverse_iteration(const double* a, const double* b, int64_t p, const double* theta,
                               int64_t m, double* Z) {
  double tnorm = 0;
  for (int64_t i = 0; i < p; ++i)
    tnorm = std::max(tnorm, std::fabs(a[i]) + (i > 0 ? std::fabs(b[i - 1]) : 0) + (i + 1 < p ? std::fabs(b[i]) : 0));
  if (tnorm == 0) tnorm = 1;
  const double ortol = 1e-7 * tnorm;  // only (nearly) repeated eigenvalues are reorthogonalised
  const double tiny = kEps * tnorm;
  std::vector<double> U0(p), U1(p), U2(p), mult(p), y(p);
  std::vector<char> swp(p);
  std::vector<int64_t> order(m);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t yy) { return theta[x] > theta[yy]; });
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (int64_t oi = 0; oi < m; ++oi) {
    const int64_t idx = order[oi];
    const double th = theta[idx];
    // Factor T - th I = P L U with partial pivoting.
    double cd = a[0] - th, cu = p > 1 ? b[0] : 0.0;
    for (int64_t r = 0; r + 1 < p; ++r) {
      const double lr = b[r];
      const double dn = a[r + 1] - th, un = (r + 2 < p) ? b[r + 1] : 0.0;
      if (std::fabs(lr) > std::fabs(cd)) {
        swp[r] = 1;
        U0[r] = lr;
        U1[r] = dn;
        U2[r] = un;
        mult[r] = cd / lr;
        const double ncd = cu - mult[r] * dn, ncu = -mult[r] * un;
        cd = ncd;
        cu = ncu;
      } else {
        swp[r] = 0;
        if (cd == 0) cd = tiny;
        U0[r] = cd;
        U1[r] = cu;
        U2[r] = 0.0;
        mult[r] = lr / cd;
        cd = dn - mult[r] * cu;
        cu = un;
      }
    }
    U0[p - 1] = (cd == 0) ? tiny : cd;
    for (int64_t r = 0; r < p; ++r) {
      if (U0[r] == 0 || std::fabs(U0[r]) < tiny) U0[r] = std::copysign(tiny, U0[r] == 0 ? 1.0 : U0[r]);
      U0[r] = 1.0 / U0[r];  // stored inverted: the back substitution multiplies (its chain
                            // of divisions was most of the time here)
    }
    // Start vector: deterministic pseudo-random.
    for (int64_t i = 0; i < p; ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      y[i] = 0.5 + static_cast<double>(state >> 11) * (1.0 / 9007199254740992.0);
    }
    double* z = Z + idx * p;
    for (int it = 0; it < 3; ++it) {
      for (int64_t r = 0; r + 1 < p; ++r) {
        if (swp[r]) std::swap(y[r], y[r + 1]);
        y[r + 1] -= mult[r] * y[r];
      }
      for (int64_t r = p - 1; r >= 0; --r) {
        double v = y[r];
        if (r + 1 < p) v -= U1[r] * y[r + 1];
        if (r + 2 < p) v -= U2[r] * y[r + 2];
        y[r] = v * U0[r];
      }
      // Reorthogonalise against earlier vectors of the cluster.
      for (int64_t oj = oi - 1; oj >= 0; --oj) {
        const int64_t jdx = order[oj];
        if (std::fabs(theta[jdx] - th) > ortol) break;
        const double* zj = Z + jdx * p;
        double dot = 0;
        for (int64_t i = 0; i < p; ++i) dot += zj[i] * y[i];
        for (int64_t i = 0; i < p; ++i) y[i] -= dot * zj[i];
      }
      double nrm = 0;
      for (int64_t i = 0; i < p; ++i) nrm += y[i] * y[i];
      nrm = std::sqrt(nrm);
      if (!(nrm > 0) || !std::isfinite(nrm)) {
        for (int64_t i = 0; i < p; ++i) y[i] = (i == oi % p) ? 1.0 : 0.0;
        nrm = 1.0;
      }
      for (int64_t i = 0; i < p; ++i) y[i] /= nrm;
    }
    std::memcpy(z, y.data(), sizeof(double) * p);
  }
}

// ------------------------------------------------------------------- dense ------------

// LAPACK dsyevd (divide and conquer) on a full symmetric (n, n) matrix, overwritten by the
// eigenvectors as rows (a symmetric row-major matrix is its own column-major transpose).
// Returns false when LAPACK is unavailable or fails; A is then unspecified.
bool lapack_eigh_rows(double* A, int64_t n, double* w) {
  const Lapack* lp = lapack();
  if (!lp || !fits_int(n) || n * n >= (int64_t{1} << 31)) return false;
  const int nn = static_cast<int>(n);
  int info = 0, lwork = -1, liwork = -1, iq = 0;
  double wq = 0;
  lp->dsyevd("V", "L", &nn, A, &nn, w, &wq, &lwork, &iq, &liwork, &info);
  if (info != 0) return false;
  lwork = static_cast<int>(wq) + 1;
  liwork = iq;
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
  lp->dsyevd("V", "L", &nn, A, &nn, w, work.data(), &lwork, iwork.data(), &liwork, &info);
  return info == 0;
}

// A: full symmetric (n, n) row-major, overwritten. Outputs w ascending and Vt (n, n) with
// eigenvectors as rows.
void eigh_dense_rows(double* A, int64_t n, double* w, double* Vt) {
  std::vector<double> d(n), e(n, 0.0), beta(n, 0.0), v(n), pv(n);
  std::vector<double> H(n > 2 ? (n - 2) * n : 1);  // Householder vectors, row k holds v_k (length n-k-1)
  for (int64_t k = 0; k + 2 < n; ++k) {
    const int64_t m = n - k - 1;
    double* x = A + k * n + (k + 1);  // row k, cols k+1.. (== column k by symmetry)
    double tail = 0;
    for (int64_t i = 1; i < m; ++i) tail += x[i] * x[i];
    d[k] = A[k * n + k];
    double* hv = H.data() + k * n;
    if (tail == 0.0) {
      e[k] = x[0];
      beta[k] = 0.0;
      continue;
    }
    const double nrm = std::sqrt(x[0] * x[0] + tail);
    const double alpha = x[0] > 0 ? -nrm : nrm;
    for (int64_t i = 0; i < m; ++i) hv[i] = x[i];
    hv[0] -= alpha;
    const double vv = hv[0] * hv[0] + tail;
    const double bt = 2.0 / vv;
    beta[k] = bt;
    e[k] = alpha;
    // p = bt * A22 v
    double* A22 = A + (k + 1) * n + (k + 1);
    double pv_dot = 0;
    for (int64_t i = 0; i < m; ++i) {
      const double* row = A22 + i * n;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < m; ++j) s += row[j] * hv[j];
      pv[i] = bt * s;
      pv_dot += pv[i] * hv[i];
    }
    const double K = 0.5 * bt * pv_dot;
    for (int64_t i = 0; i < m; ++i) pv[i] -= K * hv[i];  // w
    for (int64_t i = 0; i < m; ++i) {
      double* row = A22 + i * n;
      const double vi = hv[i], wi = pv[i];
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) row[j] -= vi * pv[j] + wi * hv[j];
    }
  }
  if (n >= 2) {
    d[n - 2] = A[(n - 2) * n + (n - 2)];
    e[n - 2] = A[(n - 1) * n + (n - 2)];
  }
  d[n - 1] = A[(n - 1) * n + (n - 1)];
  // Vt starts as Q^T, accumulated backwards: Qt[k+1:, k+1:] <- Qt[k+1:, k+1:] H_k.
  std::fill(Vt, Vt + n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) Vt[i * n + i] = 1.0;
  for (int64_t k = n - 3; k >= 0; --k) {
    if (beta[k] == 0.0) continue;
    const int64_t m = n - k - 1;
    const double* hv = H.data() + k * n;
    const double bt = beta[k];
    for (int64_t r = k + 1; r < n; ++r) {
      double* row = Vt + r * n + (k + 1);
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < m; ++j) s += row[j] * hv[j];
      s *= bt;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) row[j] -= s * hv[j];
    }
  }
  tql(d.data(), e.data(), n, Vt, n);
  // Sort ascending (stable, rows follow).
  std::vector<int64_t> ord(n);
  std::iota(ord.begin(), ord.end(), int64_t{0});
  std::stable_sort(ord.begin(), ord.end(), [&](int64_t x, int64_t y) { return d[x] < d[y]; });
  std::vector<double> tmp(static_cast<size_t>(n) * n);
  for (int64_t i = 0; i < n; ++i) {
    w[i] = d[ord[i]];
    std::memcpy(tmp.data() + i * n, Vt + ord[i] * n, sizeof(double) * n);
  }
  std::memcpy(Vt, tmp.data(), sizeof(double) * n * n);
}

void fix_sign_row(double* v, int64_t n) {
  double mx = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, std::fabs(v[i]));
  if (mx == 0) return;
  for (int64_t i = 0; i < n; ++i) {
    if (std::fabs(v[i]) >= mx * (1.0 - 1e-9)) {
      if (v[i] < 0)
        for (int64_t j = 0; j < n; ++j) v[j] = -v[j];
      return;
    }
  }
}

// ---------------------------------------------------- sparse: RCM + envelope LDL^T -----
struct SubCsr {
  int64_t n;
  std::vector<int64_t> indptr, indices;
  std::vector<double> data;
};

std::vector<int64_t> rcm_order(const SubCsr& A) {
  const int64_t n = A.n;
  std::vector<int64_t> deg(n);
  for (int64_t i = 0; i < n; ++i) deg[i] = A.indptr[i + 1] - A.indptr[i];
  auto bfs = [&](int64_t start, std::vector<int64_t>& order, std::vector<int64_t>& level) {
    order.clear();
    level.assign(n, -1);
    level[start] = 0;
    order.push_back(start);
    std::vector<int64_t> nb;
    for (size_t h = 0; h < order.size(); ++h) {
      const int64_t u = order[h];
      nb.clear();
      for (int64_t t = A.indptr[u]; t < A.indptr[u + 1]; ++t) {
        const int64_t v = A.indices[t];
        if (level[v] < 0) {
          level[v] = level[u] + 1;
          nb.push_back(v);
        }
      }
      std::sort(nb.begin(), nb.end(), [&](int64_t x, int64_t y) { return deg[x] != deg[y] ? deg[x] < deg[y] : x < y; });
      order.insert(order.end(), nb.begin(), nb.end());
    }
  };
  int64_t start = 0;
  for (int64_t i = 1; i < n; ++i)
    if (deg[i] < deg[start]) start = i;
  std::vector<int64_t> order, level;
  for (int rep = 0; rep < 3; ++rep) {  // pseudo-peripheral node
    bfs(start, order, level);
    const int64_t last = order.back();
    if (level[last] <= level[start] + 0 && rep > 0) break;
    int64_t best = last;
    for (int64_t u : order)
      if (level[u] == level[last] && deg[u] < deg[best]) best = u;
    if (best == start) break;
    start = best;
  }
  bfs(start, order, level);
  if (static_cast<int64_t>(order.size()) != n) throw std::runtime_error("rcm: graph is not connected");
  std::reverse(order.begin(), order.end());
  return order;
}

// First column of each row's envelope in P A P^T (perm[new] = old).
std::vector<int64_t> envelope_first(const SubCsr& A, const std::vector<int64_t>& perm) {
  const int64_t n = A.n;
  std::vector<int64_t> inv(n), first(n);
  for (int64_t i = 0; i < n; ++i) inv[perm[i]] = i;
  for (int64_t i = 0; i < n; ++i) {
    int64_t f = i;
    const int64_t o = perm[i];
    for (int64_t t = A.indptr[o]; t < A.indptr[o + 1]; ++t) f = std::min(f, inv[A.indices[t]]);
    first[i] = f;
  }
  return first;
}

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
  EnvLdl(const SubCsr& A, const std::vector<int64_t>& perm, double shift)
      : n(A.n), first(envelope_first(A, perm)), start(A.n + 1), inv_d(A.n) {
    std::vector<int64_t> inv(n);
    for (int64_t i = 0; i < n; ++i) inv[perm[i]] = i;
    double anorm = 0;
    for (int64_t i = 0; i < n; ++i) {
      double rs = 0;
      for (int64_t t = A.indptr[i]; t < A.indptr[i + 1]; ++t) rs += std::fabs(A.data[t]);
      anorm = std::max(anorm, rs);
    }
    start[0] = 0;
    for (int64_t i = 0; i < n; ++i) start[i + 1] = start[i] + (i - first[i] + 1);
    env.assign(static_cast<size_t>(start[n]), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t o = perm[i];
      for (int64_t t = A.indptr[o]; t < A.indptr[o + 1]; ++t) {
        const int64_t j = inv[A.indices[t]];
        if (j <= i) env[start[i] + (j - first[i])] += A.data[t];
      }
      env[start[i] + (i - first[i])] += shift;
    }
    const double tiny = kEps * std::max(anorm, std::fabs(shift)) + std::numeric_limits<double>::min();
    std::vector<double> t(n);  // row i of L D (unscaled), by column
    for (int64_t i = 0; i < n; ++i) {
      double* Li = env.data() + start[i];
      const int64_t fi = first[i];
      // t_j = a_ij - sum_k t_k L_jk ; L_ij = t_j / d_j
      for (int64_t j = fi; j < i; ++j) {
        const double* Lj = env.data() + start[j];
        const int64_t fj = first[j];
        const int64_t k0 = std::max(fi, fj);
        t[j] = Li[j - fi] - dot4(t.data() + k0, Lj + (k0 - fj), j - k0);
        Li[j - fi] = t[j] * inv_d[j];
        max_l = std::max(max_l, std::fabs(Li[j - fi]));
      }
      double d = Li[i - fi] - dot4(t.data() + fi, Li, i - fi);
      if (std::fabs(d) < tiny) d = d < 0 ? -tiny : tiny;
      if (d < 0) ++neg;
      min_pivot = std::min(min_pivot, std::fabs(d));
      Li[i - fi] = d;
      inv_d[i] = 1.0 / d;
    }
  }
  // x <- M^{-1} x in permuted order: L y = x, D z = y, L^T x = z.
  void solve(double* x) const {
    for (int64_t i = 0; i < n; ++i) {
      const double* Li = env.data() + start[i];
      const int64_t fi = first[i];
      x[i] -= dot4(Li, x + fi, i - fi);
    }
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] *= inv_d[i];
    for (int64_t i = n - 1; i >= 0; --i) {
      const double* Li = env.data() + start[i];
      const int64_t fi = first[i];
      const int64_t len = i - fi;
      const double xi = x[i];
      double* xx = x + fi;
#pragma omp simd
      for (int64_t t = 0; t < len; ++t) xx[t] -= Li[t] * xi;
    }
  }
};

// ------------------------------------------- nested dissection + supernodal LDL^T -------
// For large kNN graphs the RCM envelope factor outgrows the core's L2 cache (at 2048
// surface points it holds ~190k entries, 1.5 MB), and every shift-invert solve then
// streams it from L3 twice; its row-by-row substitutions also chain every entry to the
// previous ones. Nested dissection (George 1973; separators from BFS level structures as
// in George & Liu 1978) gives a factor of ~83k nonzeros there (~117k stored, with the
// relaxed supernodes' explicit zeros). It is computed and stored by supernodes (columns
// with a common row structure, relaxed as in Ashcraft & Grimes 1989) with the
// multifrontal method (Duff & Reid 1983): dense frontal matrices, dense kernels, and
// solves that touch each stored entry once per sweep.
// lanczos_component picks this factor when the envelope would exceed kEnvelopeCacheEntries.

// Nested dissection order (new -> old) of a graph given by the pattern of A. A part larger
// than `leaf` vertices is split by the smallest balanced level of a BFS level structure
// rooted at a pseudo-peripheral vertex (only level vertices with a neighbour on the far
// side are kept in the separator); the parts are ordered first, the separator last. A
// leaf is ordered by reverse BFS (RCM-like, so its elimination tree is nearly a chain).
class NdOrderer {
 public:
  NdOrderer(const SubCsr& A, int64_t leaf)
      : ip_(A.indptr.data()), ix_(A.indices.data()), n_(A.n), leaf_(leaf), mark_(A.n, -1), level_(A.n, 0),
        queue_(A.n + 1) {}  // + 1: the BFS writes one slot past the last vertex queued
  std::vector<int64_t> run() {
    order_.reserve(static_cast<size_t>(n_));
    std::vector<int64_t> all(static_cast<size_t>(n_));
    std::iota(all.begin(), all.end(), int64_t{0});
    split(all, 0);
    return std::move(order_);
  }

 private:
  const int64_t* ip_;
  const int64_t* ix_;
  int64_t n_, leaf_, next_id_ = 0, qn_ = 0;
  std::vector<int64_t> mark_, level_, queue_, order_;

  // BFS over the vertices marked `id`, from s: queue_[0..qn_) in visit order, level_ set.
  // Returns the largest level. Visited vertices are marked kVisited meanwhile (one random
  // access per edge), then marked `id` again.
  static constexpr int64_t kVisited = std::numeric_limits<int64_t>::min();
  int64_t bfs(int64_t s, int64_t id) {
    int64_t* q = queue_.data();
    int64_t* lv = level_.data();
    int64_t* mk = mark_.data();
    int64_t qn = 0;
    q[qn++] = s;
    mk[s] = kVisited;
    lv[s] = 0;
    // Branch-free inner loop: whether a neighbour is new is a coin flip to the branch
    // predictor.
    for (int64_t h = 0; h < qn; ++h) {
      const int64_t u = q[h];
      const int64_t lu = lv[u] + 1;
      for (int64_t t = ip_[u]; t < ip_[u + 1]; ++t) {
        const int64_t v = ix_[t];
        const bool fresh = mk[v] == id;
        mk[v] = fresh ? kVisited : mk[v];
        lv[v] = fresh ? lu : lv[v];
        q[qn] = v;
        qn += fresh;
      }
    }
    for (int64_t h = 0; h < qn; ++h) mk[q[h]] = id;
    qn_ = qn;
    return lv[q[qn - 1]];
  }

  // A balanced split leaves at most 4/5 of a part on either side, so the depth stays
  // logarithmic on kNN graphs; kMaxDepth bounds it (and the C++ stack) on any graph by
  // ordering a part that deep as a leaf.
  static constexpr int kMaxDepth = 200;
  void split(const std::vector<int64_t>& S, int depth) {
    const int64_t id = next_id_++;
    const int64_t N = static_cast<int64_t>(S.size());
    for (int64_t v : S) mark_[v] = id;
    bfs(S[0], id);
    if (qn_ < N) {  // not connected: each component on its own
      std::vector<std::vector<int64_t>> comps;
      const int64_t done = -2 - id;
      comps.emplace_back(queue_.begin(), queue_.begin() + qn_);
      for (int64_t v : comps.back()) mark_[v] = done;
      for (int64_t v : S) {
        if (mark_[v] != id) continue;
        bfs(v, id);
        comps.emplace_back(queue_.begin(), queue_.begin() + qn_);
        for (int64_t u : comps.back()) mark_[u] = done;
      }
      for (int64_t v : S) mark_[v] = -1;
      for (const auto& c : comps) split(c, depth + 1);
      return;
    }
    // Root: the last vertex the first BFS reached (a pseudo-peripheral vertex after one
    // restart; more restarts did not shrink the factor of kNN graphs).
    const int64_t ml = bfs(queue_[qn_ - 1], id);
    if (N <= leaf_ || ml < 2 || depth >= kMaxDepth) {
      for (int64_t h = qn_ - 1; h >= 0; --h) order_.push_back(queue_[h]);
      for (int64_t v : S) mark_[v] = -1;
      return;
    }
    std::vector<int64_t> cnt(static_cast<size_t>(ml + 1), 0);
    for (int64_t h = 0; h < qn_; ++h) cnt[level_[queue_[h]]]++;
    // The separator level: smallest count (weighted by imbalance) with >= 1/5 of the
    // vertices on each side; else the median level.
    int64_t best = -1, below = 0;
    double bestc = std::numeric_limits<double>::infinity();
    for (int64_t l = 1; l < ml; ++l) {
      below += cnt[l - 1];
      const int64_t above = N - below - cnt[l];
      if (below < N / 5 || above < N / 5) continue;
      const double c = cnt[l] * (1.0 + 0.5 * std::fabs(static_cast<double>(below - above)) / N);
      if (c < bestc) {
        bestc = c;
        best = l;
      }
    }
    if (best < 0) {
      int64_t acc = 0;
      best = 0;
      while (best < ml && acc + cnt[best] < N / 2) acc += cnt[best++];
      best = std::min(std::max<int64_t>(best, 1), ml - 1);
    }
    std::vector<int64_t> lo, hi, sep;
    for (int64_t h = 0; h < qn_; ++h) {
      const int64_t v = queue_[h];
      const int64_t l = level_[v];
      if (l < best) {
        lo.push_back(v);
      } else if (l > best) {
        hi.push_back(v);
      } else {
        bool far = false;
        for (int64_t t = ip_[v]; t < ip_[v + 1] && !far; ++t) {
          const int64_t u = ix_[t];
          far = mark_[u] == id && level_[u] > best;
        }
        (far ? sep : lo).push_back(v);
      }
    }
    for (int64_t v : S) mark_[v] = -1;
    if (!lo.empty()) split(lo, depth + 1);
    if (!hi.empty()) split(hi, depth + 1);
    order_.insert(order_.end(), sep.begin(), sep.end());
  }
};

// Symbolic supernodal analysis of P A P^T (perm[new] = old): elimination tree and column
// counts (row subtrees, Liu 1986), supernodes = runs of columns along etree chains whose
// merged trapezoid adds few explicit zeros (relaxed: at most kRelaxZeros, or a quarter of
// its entries; width at most kMaxWidth), each supernode's rows below it (the structure of
// its last column), the supernodal tree in postorder, and storage offsets.
struct SnSymbolic {
  static constexpr int64_t kRelaxZeros = 32, kMaxWidth = 64;
  int64_t n = 0, ns = 0, maxfront = 0, maxstack = 0;
  std::vector<int64_t> perm, inv;
  std::vector<int64_t> sfirst;      // (ns + 1) supernode s = columns [sfirst[s], sfirst[s + 1])
  std::vector<int64_t> rptr, rows;  // rows below supernode s: rows[rptr[s] .. rptr[s + 1]), ascending
  std::vector<int64_t> lptr;        // factor storage offsets (ns + 1)
  std::vector<int64_t> post;        // supernodes in postorder of the supernodal tree
  std::vector<int64_t> nchild;      // children per supernode

  SnSymbolic(const SubCsr& A, std::vector<int64_t> p) : n(A.n), perm(std::move(p)), inv(A.n) {
    for (int64_t i = 0; i < n; ++i) inv[perm[i]] = i;
    const int64_t* ip = A.indptr.data();
    const int64_t* ix = A.indices.data();
    // Lower pattern by rows (new indices): row k holds the columns i < k of A's row k.
    std::vector<int64_t> rp(n + 1, 0), ri;
    ri.reserve(static_cast<size_t>(ip[n]) / 2 + 1);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t o = perm[k];
      for (int64_t t = ip[o]; t < ip[o + 1]; ++t) {
        const int64_t i = inv[ix[t]];
        if (i < k) ri.push_back(i);
      }
      rp[k + 1] = static_cast<int64_t>(ri.size());
    }
    std::vector<int64_t> parent(n, -1), flag(n, -1), cnt(n, 0);
    for (int64_t k = 0; k < n; ++k) {
      flag[k] = k;
      for (int64_t t = rp[k]; t < rp[k + 1]; ++t) {
        for (int64_t i = ri[t]; flag[i] != k; i = parent[i]) {
          if (parent[i] < 0) parent[i] = k;
          ++cnt[i];
          flag[i] = k;
        }
      }
    }
    sfirst.push_back(0);
    for (int64_t j = 1, j0 = 0; j <= n; ++j) {
      bool merge = false;
      if (j < n && parent[j - 1] == j && j - j0 < kMaxWidth) {
        if (cnt[j - 1] == cnt[j] + 1) {
          merge = true;  // same structure: a fundamental supernode
        } else {
          int64_t zeros = 0, total = 0;
          for (int64_t c = j0; c <= j; ++c) {
            zeros += (j - c) + cnt[j] - cnt[c];
            total += (j - c) + cnt[j];
          }
          merge = zeros <= kRelaxZeros || 4 * zeros <= total;
        }
      }
      if (!merge) {
        sfirst.push_back(j);
        j0 = j;
      }
    }
    ns = static_cast<int64_t>(sfirst.size()) - 1;
    std::vector<int64_t> sup(n);
    for (int64_t s = 0; s < ns; ++s)
      for (int64_t c = sfirst[s]; c < sfirst[s + 1]; ++c) sup[c] = s;
    // Along an etree chain struct(c) is inside {c+1, ...} and struct(c + 1), so the rows
    // below a supernode are exactly the structure of its last column.
    rptr.assign(ns + 1, 0);
    for (int64_t s = 0; s < ns; ++s) rptr[s + 1] = rptr[s] + cnt[sfirst[s + 1] - 1];
    rows.resize(static_cast<size_t>(rptr[ns]));
    std::vector<int64_t> fill(rptr.begin(), rptr.end() - 1);
    std::fill(flag.begin(), flag.end(), -1);
    for (int64_t k = 0; k < n; ++k) {
      flag[k] = k;
      for (int64_t t = rp[k]; t < rp[k + 1]; ++t) {
        for (int64_t i = ri[t]; flag[i] != k; i = parent[i]) {
          flag[i] = k;
          const int64_t s = sup[i];
          if (i == sfirst[s + 1] - 1) rows[fill[s]++] = k;
        }
      }
    }
    lptr.assign(ns + 1, 0);
    nchild.assign(ns, 0);
    std::vector<int64_t> sparent(ns, -1);
    for (int64_t s = 0; s < ns; ++s) {
      const int64_t w = sfirst[s + 1] - sfirst[s], r = rptr[s + 1] - rptr[s];
      lptr[s + 1] = lptr[s] + w * (w + r);  // G = [L_JJ^-1; -L_RJ L_JJ^-1], (w + r) x w
      maxfront = std::max(maxfront, w + r);
      if (r > 0) {
        sparent[s] = sup[rows[rptr[s]]];
        ++nchild[sparent[s]];
      }
    }
    // Postorder of the supernodal forest (children before parents, each subtree
    // contiguous), so the update matrices can live on a stack.
    std::vector<int64_t> cptr(ns + 1, 0), kids(ns > 0 ? ns : 1);
    for (int64_t s = 0; s < ns; ++s) cptr[s + 1] = cptr[s] + nchild[s];
    std::vector<int64_t> cf(cptr.begin(), cptr.end() - 1);
    for (int64_t s = 0; s < ns; ++s)
      if (sparent[s] >= 0) kids[cf[sparent[s]]++] = s;
    post.reserve(static_cast<size_t>(ns));
    std::vector<std::pair<int64_t, int64_t>> stack;
    for (int64_t root = 0; root < ns; ++root) {
      if (sparent[root] >= 0) continue;
      stack.emplace_back(root, cptr[root]);
      while (!stack.empty()) {
        auto& [s, next] = stack.back();
        if (next < cptr[s + 1]) {
          const int64_t c = kids[next++];
          stack.emplace_back(c, cptr[c]);
        } else {
          post.push_back(s);
          stack.pop_back();
        }
      }
    }
    // Peak size of the stack of pending update matrices along the postorder: a
    // supernode's children sit on top of the stack when it is assembled; they are popped
    // and its own update matrix pushed.
    std::vector<int64_t> sizes;
    int64_t cur = 0;
    for (int64_t s : post) {
      for (int64_t c = 0; c < nchild[s]; ++c) {
        cur -= sizes.back();
        sizes.pop_back();
      }
      const int64_t r = rptr[s + 1] - rptr[s];
      sizes.push_back(r * r);
      cur += r * r;
      maxstack = std::max(maxstack, cur);
    }
  }
};

// Multifrontal LDL^T without pivoting of P (A + shift I) P^T on the structure `S`
// (same contract as EnvLdl: pivots below eps ||A||_1 nudged, `neg`, `min_pivot`, `max_l`).
// Per supernode s (columns J, rows R below): the frontal matrix F ((w + r) square, dense,
// column-major lower) gathers A's columns J and the children's update matrices
// (extend-add), its first w columns are factored (right-looking), and
// U = F_RR - L_RJ D_J L_RJ^T goes on the stack for the parent. Stored per supernode:
// G = [L_JJ^{-1}; -L_RJ L_JJ^{-1}] ((w + r) x w, column-major) and the inverse pivots.
struct SnLdl {
  const SnSymbolic& S;
  std::vector<double> Lx, inv_d;
  int64_t neg = 0;
  double min_pivot = std::numeric_limits<double>::infinity(), max_l = 0;

  // counts_only: the inertia alone (neg, min_pivot, max_l without G): nothing is stored.
  SnLdl(const SubCsr& A, const SnSymbolic& sym, double shift, bool counts_only = false)
      : S(sym), Lx(counts_only ? 0 : static_cast<size_t>(sym.lptr[sym.ns])), inv_d(sym.n), tbuf(sym.maxfront) {
    const int64_t n = S.n;
    const int64_t* ip = A.indptr.data();
    const int64_t* ix = A.indices.data();
    const double* ax = A.data.data();
    double anorm = 0;
    for (int64_t i = 0; i < n; ++i) {
      double rs = 0;
      for (int64_t t = ip[i]; t < ip[i + 1]; ++t) rs += std::fabs(ax[t]);
      anorm = std::max(anorm, rs);
    }
    const double tiny = kEps * std::max(anorm, std::fabs(shift)) + std::numeric_limits<double>::min();
    // Scratch kept per thread between factorisations (fresh pages cost a fault each);
    // given back after a call that needed over 32 MiB, as the Krylov buffer is.
    thread_local std::vector<double> F, ustack, TD;  // front, stacked updates, L_RJ D_J
    thread_local std::vector<int64_t> pos;
    struct Giveback {
      ~Giveback() {
        if (F.capacity() + ustack.capacity() + TD.capacity() + pos.capacity() > (size_t{1} << 22)) {
          std::vector<double>().swap(F);
          std::vector<double>().swap(ustack);
          std::vector<double>().swap(TD);
          std::vector<int64_t>().swap(pos);
        }
      }
    } giveback;
    F.resize(static_cast<size_t>(S.maxfront * S.maxfront));
    ustack.resize(static_cast<size_t>(S.maxstack));
    pos.resize(static_cast<size_t>(n));
    std::vector<int64_t> ustack_sn;  // supernode of each stacked update matrix, bottom first
    std::vector<int64_t> ustack_at;  // its offset in ustack
    double maxl = 0, minp = std::numeric_limits<double>::infinity();
    int64_t nneg = 0, top = 0;
    for (const int64_t s : S.post) {
      const int64_t f = S.sfirst[s], w = S.sfirst[s + 1] - f, r = S.rptr[s + 1] - S.rptr[s], nf = w + r;
      const int64_t* R = S.rows.data() + S.rptr[s];
      for (int64_t c = 0; c < w; ++c) pos[f + c] = c;
      for (int64_t a = 0; a < r; ++a) pos[R[a]] = w + a;
      double* Fm = F.data();
      for (int64_t c = 0; c < nf; ++c) std::fill(Fm + c * nf + c, Fm + (c + 1) * nf, 0.0);
      for (int64_t c = 0; c < w; ++c) {
        const int64_t o = S.perm[f + c];
        double* Fc = Fm + c * nf;
        for (int64_t t = ip[o]; t < ip[o + 1]; ++t) {
          const int64_t i = S.inv[ix[t]];
          if (i >= f + c) Fc[pos[i]] += ax[t];
        }
        Fc[c] += shift;
      }
      // extend-add the children's update matrices (the top S.nchild[s] of the stack)
      const int64_t nc = S.nchild[s];
      const size_t first_child = ustack_sn.size() - static_cast<size_t>(nc);
      for (size_t q = first_child; q < ustack_sn.size(); ++q) {
        const int64_t ch = ustack_sn[q];
        const int64_t rc = S.rptr[ch + 1] - S.rptr[ch];
        const int64_t* Rc = S.rows.data() + S.rptr[ch];
        const double* Uc = ustack.data() + ustack_at[q];
        for (int64_t b = 0; b < rc; ++b) {
          double* Fb = Fm + pos[Rc[b]] * nf;
          const double* Ub = Uc + b * rc;
          for (int64_t a = b; a < rc; ++a) Fb[pos[Rc[a]]] += Ub[a];
        }
      }
      if (nc > 0) {
        top = ustack_at[first_child];
        ustack_sn.resize(first_child);
        ustack_at.resize(first_child);
      }
      // partial factorisation of the first w columns
      for (int64_t j = 0; j < w; ++j) {
        double* Fj = Fm + j * nf;
        double d = Fj[j];
        if (std::fabs(d) < tiny) d = d < 0 ? -tiny : tiny;
        nneg += d < 0;
        minp = std::min(minp, std::fabs(d));
        const double id = 1.0 / d;
        inv_d[f + j] = id;
        Fj[j] = d;
        for (int64_t k = j + 1; k < w; ++k) {
          const double lkj = Fj[k] * id;
          double* __restrict Fk = Fm + k * nf;
          const double* __restrict Fjc = Fj;
#pragma omp simd
          for (int64_t i = k; i < nf; ++i) Fk[i] -= Fjc[i] * lkj;
        }
        double ml = 0;
#pragma omp simd reduction(max : ml)
        for (int64_t i = j + 1; i < nf; ++i) {
          Fj[i] *= id;
          ml = std::max(ml, std::fabs(Fj[i]));
        }
        maxl = std::max(maxl, ml);
      }
      if (r > 0) {
        // U = F_RR - (L_RJ D_J) L_RJ^T, lower triangle, pushed on the stack
        double* U = ustack.data() + top;
        for (int64_t b = 0; b < r; ++b)
          std::memcpy(U + b * r + b, Fm + (w + b) * nf + w + b, sizeof(double) * static_cast<size_t>(r - b));
        TD.resize(static_cast<size_t>(r * w));
        for (int64_t j = 0; j < w; ++j) {
          const double dj = Fm[j * nf + j];
          const double* Lj = Fm + j * nf + w;
          double* Dj = TD.data() + j * r;
#pragma omp simd
          for (int64_t a = 0; a < r; ++a) Dj[a] = Lj[a] * dj;
        }
        const Lapack* lp = lapack();
        if (lp && r * w >= 256 && fits_int(r) && fits_int(w) && fits_int(nf)) {
          const int rr = static_cast<int>(r), ww = static_cast<int>(w), ldf = static_cast<int>(nf);
          const double am = -1.0, b1 = 1.0;
          lp->dgemm("N", "T", &rr, &rr, &ww, &am, TD.data(), &rr, Fm + w, &ldf, &b1, U, &rr);
        } else {
          for (int64_t b = 0; b < r; ++b) {
            double* __restrict Ub = U + b * r;
            for (int64_t j = 0; j < w; ++j) {
              const double lbj = Fm[j * nf + w + b];
              const double* __restrict Dj = TD.data() + j * r;
#pragma omp simd
              for (int64_t a = b; a < r; ++a) Ub[a] -= Dj[a] * lbj;
            }
          }
        }
        ustack_sn.push_back(s);
        ustack_at.push_back(top);
        top += r * r;
      }
      if (counts_only) continue;
      // G = [I; -L_RJ] L_JJ^{-1}, by columns from the last: G_j = Y_j - sum_{k>j} G_k L_kj.
      // With it each solve sweep is one dense product per supernode, without the
      // dependency chain of a triangular substitution. Its largest entry joins max_l (an
      // exploding inverse makes the caller fall back like a large L entry does).
      double* G = Lx.data() + S.lptr[s];
      double mg = 0;
      for (int64_t j = w - 1; j >= 0; --j) {
        double* __restrict Gj = G + j * nf;
        const double* Fj = Fm + j * nf;
        for (int64_t i = 0; i < w; ++i) Gj[i] = i == j ? 1.0 : 0.0;
        for (int64_t a = w; a < nf; ++a) Gj[a] = -Fj[a];
        for (int64_t k = j + 1; k < w; ++k) {
          const double lkj = Fj[k];
          const double* __restrict Gk = G + k * nf;
#pragma omp simd
          for (int64_t i = k; i < nf; ++i) Gj[i] -= Gk[i] * lkj;
        }
#pragma omp simd reduction(max : mg)
        for (int64_t i = j + 1; i < nf; ++i) mg = std::max(mg, std::fabs(Gj[i]));
      }
      maxl = std::max(maxl, mg);
    }
    neg = nneg;
    min_pivot = minp;
    max_l = maxl;
  }

  // x <- (P (A + shift I) P^T)^{-1} x in the permuted order: L y = x, D z = y, L^T x = z.
  // Forward, per supernode: u = G x_J, then x_J = u_J and x_R += u_R. Backward:
  // x_J = G^T [x_J; x_R]. G (nf x w) is read four columns at a time.
  void solve(double* x) const {
    double* __restrict u = tbuf.data();
    for (int64_t s = 0; s < S.ns; ++s) {
      const int64_t f = S.sfirst[s], w = S.sfirst[s + 1] - f, r = S.rptr[s + 1] - S.rptr[s], nf = w + r;
      const double* G = Lx.data() + S.lptr[s];
      double* __restrict xs = x + f;
      int64_t j = 0;
      std::fill(u, u + nf, 0.0);
      for (; j + 4 <= w; j += 4) {
        const double x0 = xs[j], x1 = xs[j + 1], x2 = xs[j + 2], x3 = xs[j + 3];
        const double* __restrict g0 = G + j * nf;
        const double* __restrict g1 = g0 + nf;
        const double* __restrict g2 = g1 + nf;
        const double* __restrict g3 = g2 + nf;
#pragma omp simd
        for (int64_t a = 0; a < nf; ++a) u[a] += (g0[a] * x0 + g1[a] * x1) + (g2[a] * x2 + g3[a] * x3);
      }
      for (; j < w; ++j) {
        const double x0 = xs[j];
        const double* __restrict g0 = G + j * nf;
#pragma omp simd
        for (int64_t a = 0; a < nf; ++a) u[a] += g0[a] * x0;
      }
      std::memcpy(xs, u, sizeof(double) * static_cast<size_t>(w));
      const int64_t* R = S.rows.data() + S.rptr[s];
      for (int64_t a = 0; a < r; ++a) x[R[a]] += u[w + a];
    }
    const double* __restrict id = inv_d.data();
#pragma omp simd
    for (int64_t i = 0; i < S.n; ++i) x[i] *= id[i];
    for (int64_t s = S.ns - 1; s >= 0; --s) {
      const int64_t f = S.sfirst[s], w = S.sfirst[s + 1] - f, r = S.rptr[s + 1] - S.rptr[s], nf = w + r;
      const double* G = Lx.data() + S.lptr[s];
      double* __restrict xs = x + f;
      const int64_t* R = S.rows.data() + S.rptr[s];
      std::memcpy(u, xs, sizeof(double) * static_cast<size_t>(w));
      for (int64_t a = 0; a < r; ++a) u[w + a] = x[R[a]];
      qdots_own(G, w, nf, u, xs);  // x_J = G^T u: G's w columns are contiguous rows here
    }
  }

 private:
  mutable std::vector<double> tbuf;
};

// Entries of the envelope (profile) of P A P^T, perm[new] = old: sum over rows of
// (i - first column in row i + 1).
int64_t envelope_entries(const SubCsr& A, const std::vector<int64_t>& perm) {
  const std::vector<int64_t> first = envelope_first(A, perm);
  int64_t total = 0;
  for (int64_t i = 0; i < A.n; ++i) total += i - first[i] + 1;
  return total;
}

// Above this many envelope entries (384 KiB of doubles) the supernodal factor is used.
// Measured (CPU time of the whole truncated solve, m = 100, best of 7 interleaved runs,
// supernodal / envelope) on kNN Laplacians (k = 10) of the embedded shapes: 2048 points
// (RCM envelopes of 142k-226k entries, 25 Laplacians) 0.67-0.95, mean 0.81; 1024 points
// (49k-76k, 9) 0.88-1.03, mean 0.94; 512 and 768 points (26k-39k, 16) 0.93-1.10, mean
// 1.02: there the orderings and the symbolic analysis cost what the faster solves save.
constexpr int64_t kEnvelopeCacheEntries = int64_t{3} << 14;
std::atomic<int> g_factor_mode{0};  // 0 by size, 1 envelope, 2 supernodal (tests)

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

double rand01(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return static_cast<double>(s >> 11) * (1.0 / 9007199254740992.0);
}

// Number of eigenvalues of A below mu (Sylvester's law of inertia): the negative pivots of
// the LDL^T of P (A - mu I) P^T.
int64_t inertia_below(const SubCsr& A, const std::vector<int64_t>& perm, const SnSymbolic* sym, double mu) {
  return ShiftFactor(A, perm, sym, -mu, true).neg;
}

// First m eigenpairs of a connected component (smallest eigenvalues). Outputs w (m) ascending
// and Yt (n, m) row-major, eigenvectors as columns. Returns Lanczos steps, -1 when the Lanczos run could
// not certify the m pairs (the caller then uses the dense solver), or -2 when a step run
// without full reorthogonalisation (allow_skip) left a loss of orthogonality above 1e-8
// (the caller reruns with allow_skip = false).
//
// Lanczos on M^{-1} = (A - sigma I)^{-1} with full reorthogonalisation (classical
// Gram-Schmidt, a second pass only when the first removed more than 1 - 1/sqrt(2) of the
// norm: Daniel, Gragg, Kaufman, Stewart 1976). Stopping: the m wanted Ritz pairs have
// residual |beta_p z_p| below 1e-10 relative, and Sylvester's inertia of A - mu I, mu between
// the m-th and (m+1)-th Ritz values, counts exactly m eigenvalues below mu: so no eigenvalue
// was skipped (e.g. one that the start vector barely touches, or a repeated one). Finally
// every returned pair's true residual ||A y - lambda y|| is checked against 1e-8 ||A||_1.
//
// The shift (Ericsson & Ruhe 1980: inside the wanted part of the spectrum): for m >= 24,
// sigma is placed near lambda_{0.6 m}, so the wanted eigenvalues map to both ends of the
// spectrum of M^{-1} and converge in ~30 % fewer steps than with sigma just below 0
// (measured 162 / 156 against 200 / 220 steps for m = 100 at 1024 / 2048 points). The first
// guess is the Weyl-law rate of a kNN Laplacian of a surface, lambda_j ~ (tr A / n) d j /
// (2.6 n) with d the mean off-diagonal count per row; the LDL^T factor of A - sigma I
// gives the exact count below sigma, and sigma is rescaled until that count is within
// [0.45 m, 0.75 m] (at most three factorisations), else, or when the indefinite factor
// shows a tiny pivot or growth, the positive-definite shift sigma = -1e-3 tr A / n is used.
// interior = false forces the latter. (Constant and window measured on 34 kNN Laplacians of
// 8 shapes, binary, normalised and Gaussian, 1024 and 2048 points, m = 100: 4 % fewer
// steps and 9 % less reorthogonalisation than 2.8 and [0.35 m, 0.85 m], whose counts
// landed at 0.51-0.55 m for binary weights and 0.70 m for Gaussian ones; the optimum is
// near 0.6 m. 2.4 did 2 % better on average but, on the benchmark's 2048-point cloud, put
// sigma where the every-other-step saving stopped early: how many steps skip depends on
// where sigma falls between two eigenvalues, which no first guess controls.)
int64_t lanczos_component(const SubCsr& A, int64_t m, double* w, double* Yt, bool allow_skip,
                          bool interior) {
  const int64_t n = A.n;
  double trace = 0, anorm = 0;
  for (int64_t i = 0; i < n; ++i) {
    double rs = 0;
    for (int64_t t = A.indptr[i]; t < A.indptr[i + 1]; ++t) {
      if (A.indices[t] == i) trace += A.data[t];
      rs += std::fabs(A.data[t]);
    }
    anorm = std::max(anorm, rs);
  }
  // Ordering and factor: RCM + envelope, or nested dissection + supernodes when the
  // envelope would not stay in cache (see kEnvelopeCacheEntries).
  std::vector<int64_t> perm = rcm_order(A);
  std::unique_ptr<SnSymbolic> symbolic;
  const int mode = g_factor_mode.load(std::memory_order_relaxed);
  if (mode == 2 || (mode == 0 && envelope_entries(A, perm) > kEnvelopeCacheEntries)) {
    symbolic = std::make_unique<SnSymbolic>(A, NdOrderer(A, 32).run());
    perm = symbolic->perm;
  }
  const SnSymbolic* sym = symbolic.get();
  double sigma = 0;
  std::unique_ptr<ShiftFactor> fac;
  if (interior && m >= 24 && trace > 0) {
    const double dbar = std::max(1.0, static_cast<double>(A.indptr[n]) / n - 1.0);
    sigma = (trace / n) * dbar * (0.6 * m) / (2.6 * n);
    for (int attempt = 0; attempt < 3 && sigma > 0; ++attempt) {
      auto f = std::make_unique<ShiftFactor>(A, perm, sym, -sigma);
      const bool stable = f->min_pivot > 1e-10 * anorm && f->max_l < 1e6;
      const double nu = static_cast<double>(f->neg);
      if (stable && nu >= 0.45 * m && nu <= 0.75 * m) {
        fac = std::move(f);
        break;
      }
      // Weyl's law in two dimensions: the count grows linearly with sigma.
      sigma *= stable ? (0.6 * m) / std::max(nu, 0.15 * m) : 1.0137;
    }
  }
  if (!fac) {
    sigma = -std::max(1e-3 * trace / n, 1e-12);
    fac = std::make_unique<ShiftFactor>(A, perm, sym, -sigma);
    if (fac->neg > 0) throw std::runtime_error("eigh_truncated: matrix is not positive semi-definite");
  }
  const ShiftFactor& chol = *fac;
  const int64_t nbelow = chol.neg;  // eigenvalues of A below sigma: the wanted negative Ritz values
  const int64_t pmax = std::min(n, 4 * m + 64);
  // Rows: Lanczos vectors (permuted order). The buffer is kept per thread between calls
  // (up to 32 MiB): a fresh one costs a page fault per 4 KiB on first touch, ~5 % of a
  // 2048-point solve.
  thread_local std::vector<double> qbuf;
  std::vector<double>& Q = qbuf;
  Q.clear();
  Q.reserve(static_cast<size_t>(std::min(pmax, 3 * m + 64)) * n);
  struct Release {
    std::vector<double>& v;
    ~Release() {
      if (v.capacity() > (size_t{1} << 22)) std::vector<double>().swap(v);
    }
  } release{Q};
  std::vector<double> alpha, betav;
  uint64_t seed = 0x2545F4914F6CDD1Dull ^ static_cast<uint64_t>(n);
  std::vector<double> q(n), wv(n), h(pmax + 1);
  auto norm = [&](const std::vector<double>& x) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
    return std::sqrt(s);
  };
  // Orthogonalise x against the nq rows of Q; returns the coefficient on row nq - 1. With
  // probe >= 1, also returns in *loss the largest |Q[j] . Q[probe]| over j < probe - 1,
  // computed while each chunk of Q is in cache (the orthogonality that a skipped step left).
  std::vector<double> hprobe(pmax + 1);
  auto orth = [&](std::vector<double>& x, int64_t nq, double before, int64_t probe = -1,
                  double* loss = nullptr) -> double {
    double last = 0;
    // Block Gram-Schmidt over chunks of rows small enough to stay in cache between the
    // two products (one pass over Q from memory instead of two).
    const int64_t chunk = std::max<int64_t>(16, (int64_t{1} << 17) / std::max<int64_t>(n, 1));
    for (int pass = 0; pass < 3 && nq > 0; ++pass) {
      for (int64_t j0 = 0; j0 < nq; j0 += chunk) {
        const int64_t len = std::min(chunk, nq - j0);
        qdots(Q.data() + j0 * n, len, n, x.data(), h.data() + j0);
        if (pass == 0 && probe >= 1 && j0 < probe - 1) {
          const int64_t lp = std::min(len, probe - 1 - j0);
          qdots(Q.data() + j0 * n, lp, n, Q.data() + probe * n, hprobe.data() + j0);
          for (int64_t t = 0; t < lp; ++t) *loss = std::max(*loss, std::fabs(hprobe[j0 + t]));
        }
        qaxpy(Q.data() + j0 * n, len, n, h.data() + j0, x.data());
      }
      last += h[nq - 1];
      const double after = norm(x);
      if (after > 0.7071067811865476 * before) break;
      before = after;
    }
    return last;
  };
  auto random_unit = [&](int64_t nq) -> bool {
    for (int attempt = 0; attempt < 4; ++attempt) {
      for (int64_t i = 0; i < n; ++i) q[i] = rand01(seed) - 0.5;
      orth(q, nq, norm(q));
      const double nr = norm(q);
      if (nr > 1e-8) {
        for (int64_t i = 0; i < n; ++i) q[i] /= nr;
        return true;
      }
    }
    return false;
  };
  random_unit(0);
  Q.insert(Q.end(), q.begin(), q.end());
  constexpr double kSkipLoss = 1e-9, kSkipFail = 1e-8;
  bool may_skip = allow_skip, prev_skipped = false;
  const int64_t want = std::min(m + 1, n);  // the (m+1)-th eigenvalue places mu
  int64_t target = std::min(pmax, m + std::max<int64_t>(m / 2, 24));
  // Convergence is tested every few steps: the first test (the two innermost wanted pairs
  // alone, O(p)) is cheap next to a step, and a fine stride stops within ~2 steps of convergence.
  const int64_t stride = std::max<int64_t>(m / 32, 3);
  std::vector<double> dd, ee, theta, Z;
  int64_t p = 0;
  double last_beta = 0;
  bool exhausted = false, certified = false;
  while (true) {
    while (p < target) {
      // w = M^{-1} q_p - beta_{p-1} q_{p-1} - alpha_p q_p, then full reorthogonalisation.
      std::memcpy(wv.data(), Q.data() + p * n, sizeof(double) * n);
      chol.solve(wv.data());
      const double solved_norm = norm(wv);
      const double* qp = Q.data() + p * n;
      if (p > 0) {
        const double* qm = Q.data() + (p - 1) * n;
        const double bp = betav[p - 1];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) wv[i] -= bp * qm[i];
      }
      double a = 0;
#pragma omp simd reduction(+ : a)
      for (int64_t i = 0; i < n; ++i) a += wv[i] * qp[i];
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) wv[i] -= a * qp[i];
      const double before = norm(wv);
      // Full reorthogonalisation every other step (Parlett & Scott's observation that
      // orthogonality is lost gradually, here with an exact check instead of an estimate):
      // a skipped step leaves q_{p+1} only locally orthogonal; the next step measures its
      // overlap with the older vectors exactly, in the same pass over Q, and skipping stops
      // for the rest of the run once that overlap exceeds kSkipLoss (1e-9; above kSkipFail,
      // 1e-8, below sqrt(eps), the run is repeated on the safe path). So the basis stays
      // semi-orthogonal, which keeps the Ritz values exact to rounding (Simon 1984), while
      // Q is read from memory about half as often; the Ritz vectors are re-orthonormalised
      // at the end (V^T V = I to ~1e-15). Measured on 34 Laplacians (m = 100): 2570 of 5298
      // steps skipped, against 2183 with a 1e-10 threshold.
      // A step whose local orthogonalisation cancelled most of M^{-1} q_p is never skipped:
      // its rounding errors are amplified by the cancellation.
      const bool skip = may_skip && !prev_skipped && p >= 2 && before >= 0.05 * solved_norm;
      if (!skip) {
        double loss = 0;
        a += orth(wv, p + 1, before, prev_skipped ? p : -1, &loss);
        if (loss > kSkipLoss) may_skip = false;
        if (loss > kSkipFail) return -2;  // the caller reruns with reorthogonalisation every step
      }
      prev_skipped = skip;
      const double b = norm(wv);
      alpha.push_back(a);
      ++p;
      if (p == n) {
        last_beta = 0;
        break;
      }
      if (b <= 1e-10 * std::fabs(a) || b == 0) {  // invariant subspace: restart
        if (!random_unit(p)) {
          last_beta = 0;
          exhausted = true;
          break;
        }
        betav.push_back(0.0);
        Q.insert(Q.end(), q.begin(), q.end());
      } else {
        betav.push_back(b);
        const double ib = 1.0 / b;
        for (int64_t i = 0; i < n; ++i) wv[i] *= ib;
        Q.insert(Q.end(), wv.begin(), wv.end());
      }
      last_beta = betav.back();
    }
    // Wanted Ritz values of M^{-1}: the npos largest (eigenvalues above sigma) and the
    // nbelow most negative (eigenvalues below sigma; none for a shift below the spectrum).
    const int64_t npos = m - nbelow;
    bool ok = want > m ? p >= want : p >= m;
    std::vector<double> bsub(betav.begin(), betav.begin() + (p > 0 ? p - 1 : 0));
    double thmax = 0;
    if (ok) {
      // The innermost wanted pairs converge last: above sigma the npos-th largest Ritz value
      // (lambda_m), below it the nbelow-th smallest (lambda_1, the farthest from sigma).
      // Test them alone (bisection + inverse iteration, O(p)) before computing all Ritz
      // values and vectors (O(m p)).
      // thmax only scales the tolerance: 1 % is enough.
      thmax = std::max(tridiag_kth_largest(alpha.data(), bsub.data(), p, 0, 1e-2),
                       -tridiag_kth_largest(alpha.data(), bsub.data(), p, p - 1, 1e-2));
      const double thm = tridiag_kth_largest(alpha.data(), bsub.data(), p, npos - 1);
      Z.assign(static_cast<size_t>(p), 0.0);
      tridiag_inverse_iteration(alpha.data(), bsub.data(), p, &thm, 1, Z.data());
      if (!(thm > 0) || std::fabs(last_beta * Z[p - 1]) > 1e-12 * thmax + 1e-10 * thm) ok = false;
      if (ok && nbelow > 0) {
        const double thl = tridiag_kth_largest(alpha.data(), bsub.data(), p, p - nbelow);
        tridiag_inverse_iteration(alpha.data(), bsub.data(), p, &thl, 1, Z.data());
        if (!(thl < 0) || std::fabs(last_beta * Z[p - 1]) > 1e-12 * thmax + 1e-10 * std::fabs(thl)) ok = false;
      }
    }
    if (ok) {
      // Ritz values: all eigenvalues of T_p, the largest first.
      dd.assign(alpha.begin(), alpha.begin() + p);
      ee.assign(p, 0.0);
      for (int64_t i = 0; i + 1 < p; ++i) ee[i] = betav[i];
      tql(dd.data(), ee.data(), p, nullptr, 0);
      std::sort(dd.begin(), dd.end(), std::greater<double>());
      theta.assign(dd.begin(), dd.begin() + npos);
      theta.insert(theta.end(), dd.begin() + (p - nbelow), dd.end());
      for (int64_t i = 0; i < m && ok; ++i) ok = i < npos ? theta[i] > 0 : theta[i] < 0;
      if (ok) {
        Z.assign(static_cast<size_t>(m) * p, 0.0);
        tridiag_inverse_iteration(alpha.data(), bsub.data(), p, theta.data(), m, Z.data());
      }
      for (int64_t i = 0; i < m && ok; ++i) {
        const double res = std::fabs(last_beta * Z[i * p + p - 1]);
        if (res > 1e-12 * thmax + 1e-10 * std::fabs(theta[i])) ok = false;
      }
      if (ok && want > m) {
        // Ritz values of M^{-1} are lower bounds of its largest eigenvalues (Cauchy
        // interlacing), so the (npos+1)-th largest maps to an upper bound of lambda_{m+1}.
        const double th1 = dd[npos];
        const double lm = sigma + 1.0 / theta[npos - 1];
        const double lm1 = th1 > 0 ? sigma + 1.0 / th1 : lm;
        const double mu = lm + 0.5 * (lm1 - lm);
        ok = lm1 > lm && inertia_below(A, perm, sym, mu) == m;
      }
    }
    if (ok) {
      certified = true;
      break;
    }
    if (p >= pmax || exhausted) break;
    target = std::min(pmax, p + stride);
  }
  if (!certified) return -1;
  // Ritz vectors, (n, m) with one vector per column: Yt = Q^T Z^T (permuted order), rows
  // moved back to the original order, columns normalised; then A Yt in one sparse-dense
  // product (rows of length m), Rayleigh quotients and residuals per column.
  // Per-thread like Q (and, like Q, given back after a call that needed over 32 MiB each).
  thread_local std::vector<double> ybuf, obuf, abuf;
  Release rel_y{ybuf}, rel_o{obuf}, rel_a{abuf};
  ybuf.resize(static_cast<size_t>(n) * m);
  obuf.resize(static_cast<size_t>(n) * m);
  abuf.resize(static_cast<size_t>(n) * m);
  ritz_vectors_t(Z.data(), m, p, Q.data(), n, ybuf.data());
  double* Yo = obuf.data();
  double* AY = abuf.data();
  for (int64_t t = 0; t < n; ++t) std::memcpy(Yo + perm[t] * m, ybuf.data() + t * m, sizeof(double) * m);
  std::vector<double> nrm(m, 0.0), rq(m, 0.0), res(m, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    const double* y = Yo + r * m;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) nrm[j] += y[j] * y[j];
  }
  for (int64_t j = 0; j < m; ++j) nrm[j] = 1.0 / std::sqrt(nrm[j]);
  for (int64_t r = 0; r < n; ++r) {
    double* y = Yo + r * m;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) y[j] *= nrm[j];
  }
  // The Krylov basis is orthonormal only to the loss that skipped steps leave (up to
  // kSkipFail), and each Ritz vector combines up to p such errors. So their Gram
  // matrix G = Yo^T Yo = I + E is formed (n m^2) and, when E is above 1e-13, one first-order
  // Lowdin step Yo <- Yo (I - E / 2) leaves an error of O(|E|^2): V^T V = I to rounding
  // (~1e-15) on every path. An E above 1e-6 means the basis was not semi-orthogonal: rerun.
  {
    std::vector<double> G(static_cast<size_t>(m) * m);
    gram_rows(Yo, n, m, G.data());
    double e = 0;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < m; ++j) {
        G[i * m + j] = (i == j ? 1.0 : 0.0) - G[i * m + j];  // -E
        e = std::max(e, std::fabs(G[i * m + j]));
      }
    if (!(e <= 1e-6)) return allow_skip || interior ? -2 : -1;
    if (e > 1e-13) {
      for (double& g : G) g *= 0.5;
      double* T = ybuf.data();  // free again: Yo holds the vectors
      rows_times(Yo, n, m, G.data(), T);
      for (int64_t t = 0; t < n * m; ++t) Yo[t] += T[t];
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    double* ay = AY + r * m;
    std::fill(ay, ay + m, 0.0);
    for (int64_t t = A.indptr[r]; t < A.indptr[r + 1]; ++t) {
      const double a = A.data[t];
      const double* y = Yo + A.indices[t] * m;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) ay[j] += a * y[j];
    }
    const double* y = Yo + r * m;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) rq[j] += y[j] * ay[j];
  }
  for (int64_t r = 0; r < n; ++r) {
    const double* y = Yo + r * m;
    const double* ay = AY + r * m;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) res[j] += (ay[j] - rq[j] * y[j]) * (ay[j] - rq[j] * y[j]);
  }
  std::vector<std::pair<double, int64_t>> lam(m);
  for (int64_t j = 0; j < m; ++j) {
    if (!(std::sqrt(res[j]) <= 1e-8 * anorm)) return allow_skip || interior ? -2 : -1;
    lam[j] = {rq[j], j};
  }
  std::stable_sort(lam.begin(), lam.end());
  for (int64_t j = 0; j < m; ++j) w[j] = lam[j].first;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < m; ++j) Yt[r * m + j] = Yo[r * m + lam[j].second];
  return p;
}

// Dense fallback for a component: w (m) ascending, Yt (n, m) eigenvectors as columns.
void dense_component(const SubCsr& A, int64_t m, double* w, double* Yt) {
  const int64_t n = A.n;
  std::vector<double> D(static_cast<size_t>(n) * n, 0.0), ww(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = A.indptr[i]; t < A.indptr[i + 1]; ++t) D[i * n + A.indices[t]] = A.data[t];
  std::vector<double> Dc(D);
  const double* rows = Dc.data();  // eigenvectors as rows
  std::vector<double> Vt;
  if (!lapack_eigh_rows(Dc.data(), n, ww.data())) {
    Vt.resize(static_cast<size_t>(n) * n);
    eigh_dense_rows(D.data(), n, ww.data(), Vt.data());
    rows = Vt.data();
  }
  std::memcpy(w, ww.data(), sizeof(double) * m);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < n; ++r) Yt[r * m + i] = rows[i * n + r];
}

}  // namespace

// ------------------------------------------------------------------ public --------------
namespace {
std::atomic<bool> g_lanczos_fast{true};
bool lanczos_fast_enabled() { return g_lanczos_fast.load(std::memory_order_relaxed); }
}  // namespace
void set_lanczos_safe_mode(bool on) { g_lanczos_fast.store(!on); }

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
    sym = std::make_unique<SnSymbolic>(A, NdOrderer(A, 32).run());
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

void knn(const double* points, int64_t N, int64_t k, int64_t* idx, double* d2) {
  if (k < 1 || k >= N) throw std::invalid_argument("k: expected 1 <= k < number of points");
  const KdTree tree(points, N);
  // Queries in tree order: consecutive queries visit the same leaves.
  parallel_for(N, 8192, [&](int64_t b, int64_t e) {
    KdTree::Best best;
    for (int64_t s = b; s < e; ++s) {
      const int64_t i = tree.perm[s];
      best.reset(k + 1);
      tree.query(tree.xyz.data() + 3 * s, best);
      int64_t w = 0;
      bool dropped = false;
      for (int64_t t = 0; t < best.cnt; ++t) {
        const auto& c = best.v[t];
        if (!dropped && c.second == i) {
          dropped = true;
          continue;
        }
        if (w == k) break;
        idx[i * k + w] = c.second;
        d2[i * k + w] = c.first;
        ++w;
      }
    }
  });
}

Csr laplacian(const int64_t* idx, const double* d2, int64_t N, int64_t k, int weight, double sigma,
              bool normalized) {
  if (weight == 1 && !(sigma > 0)) {
    double s = 0;
    for (int64_t i = 0; i < N * k; ++i) s += std::sqrt(d2[i]);
    sigma = s / static_cast<double>(N * k);
    if (!(sigma > 0)) sigma = 1.0;
  }
  // Directed kNN edges in both directions, bucketed by row (counting sort), then each row
  // sorted by column with duplicates merged by max (the union of the relation).
  std::vector<int64_t> cnt(N + 1, 0);
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t t = 0; t < k; ++t) {
      const int64_t j = idx[i * k + t];
      if (j < 0 || j >= N) throw std::invalid_argument("idx: neighbour index out of range");
      if (j == i) continue;
      ++cnt[i + 1];
      ++cnt[j + 1];
    }
  }
  for (int64_t i = 0; i < N; ++i) cnt[i + 1] += cnt[i];
  std::vector<std::pair<int64_t, double>> edges(static_cast<size_t>(cnt[N]));
  {
    std::vector<int64_t> pos(cnt.begin(), cnt.end() - 1);
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t t = 0; t < k; ++t) {
        const int64_t j = idx[i * k + t];
        if (j == i) continue;
        const double wgt = weight == 1 ? std::exp(-d2[i * k + t] / (2.0 * sigma * sigma)) : 1.0;
        edges[pos[i]++] = {j, wgt};
        edges[pos[j]++] = {i, wgt};
      }
    }
  }
  std::vector<int64_t> rb(N), re(N);
  std::vector<double> deg(N, 0.0);
  for (int64_t i = 0; i < N; ++i) {
    auto* r = edges.data() + cnt[i];
    const int64_t len = cnt[i + 1] - cnt[i];
    if (len <= 48) {  // rows hold ~2k entries: insertion sort beats std::sort there
      for (int64_t t = 1; t < len; ++t) {
        const auto c = r[t];
        int64_t u = t;
        while (u > 0 && c < r[u - 1]) {
          r[u] = r[u - 1];
          --u;
        }
        r[u] = c;
      }
    } else {
      std::sort(r, r + len);
    }
    int64_t o = 0;
    for (int64_t t = 0; t < len; ++t) {
      if (o > 0 && r[o - 1].first == r[t].first) {
        r[o - 1].second = std::max(r[o - 1].second, r[t].second);
      } else {
        r[o++] = r[t];
      }
    }
    rb[i] = cnt[i];
    re[i] = cnt[i] + o;
    for (int64_t t = 0; t < o; ++t) deg[i] += r[t].second;
  }
  Csr L;
  L.n = N;
  L.indptr.assign(N + 1, 0);
  int64_t nnz = N;
  for (int64_t i = 0; i < N; ++i) nnz += re[i] - rb[i];
  L.indices.reserve(static_cast<size_t>(nnz));
  L.data.reserve(static_cast<size_t>(nnz));
  for (int64_t i = 0; i < N; ++i) {
    const auto r_begin = edges.begin() + rb[i], r_end = edges.begin() + re[i];
    bool diag_done = false;
    auto put_diag = [&]() {
      L.indices.push_back(i);
      L.data.push_back(normalized ? (deg[i] > 0 ? 1.0 : 0.0) : deg[i]);
      diag_done = true;
    };
    for (auto it = r_begin; it != r_end; ++it) {
      const auto& c = *it;
      if (!diag_done && c.first > i) put_diag();
      L.indices.push_back(c.first);
      const double v = normalized ? -c.second / std::sqrt(deg[i] * deg[c.first]) : -c.second;
      L.data.push_back(v);
    }
    if (!diag_done) put_diag();
    L.indptr[i + 1] = static_cast<int64_t>(L.indices.size());
  }
  return L;
}

void eigh_dense(const double* A, int64_t n, double* w, double* V) {
  std::vector<double> M(static_cast<size_t>(n) * n), Vt(static_cast<size_t>(n) * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) M[i * n + j] = M[j * n + i] = A[i * n + j];
  if (lapack_eigh_rows(M.data(), n, w)) {
    std::swap(M, Vt);
  } else {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) M[i * n + j] = M[j * n + i] = A[i * n + j];
    eigh_dense_rows(M.data(), n, w, Vt.data());
  }
  for (int64_t i = 0; i < n; ++i) fix_sign_row(Vt.data() + i * n, n);
  constexpr int64_t kT = 32;  // blocked transpose (a strided one costs ~1% at n = 2048)
  for (int64_t i0 = 0; i0 < n; i0 += kT)
    for (int64_t j0 = 0; j0 < n; j0 += kT)
      for (int64_t i = i0; i < std::min(n, i0 + kT); ++i)
        for (int64_t j = j0; j < std::min(n, j0 + kT); ++j) V[j * n + i] = Vt[i * n + j];
}

int64_t eigh_truncated(const Csr& L, int64_t m, double* w, double* V) {
  const int64_t n = L.n;
  if (m < 1 || m > n) throw std::invalid_argument("m: expected 1 <= m <= number of points");
  // Connected components.
  std::vector<int64_t> comp(n, -1);
  int64_t nc = 0;
  std::vector<int64_t> stack;
  for (int64_t s = 0; s < n; ++s) {
    if (comp[s] >= 0) continue;
    comp[s] = nc;
    stack.push_back(s);
    while (!stack.empty()) {
      const int64_t u = stack.back();
      stack.pop_back();
      for (int64_t t = L.indptr[u]; t < L.indptr[u + 1]; ++t) {
        const int64_t v = L.indices[t];
        if (comp[v] < 0) {
          comp[v] = nc;
          stack.push_back(v);
        }
      }
    }
    ++nc;
  }
  std::vector<std::vector<int64_t>> members(nc);
  for (int64_t i = 0; i < n; ++i) members[comp[i]].push_back(i);
  std::vector<int64_t> local(n);
  for (int64_t c = 0; c < nc; ++c)
    for (size_t t = 0; t < members[c].size(); ++t) local[members[c][t]] = static_cast<int64_t>(t);
  struct Pair {
    double lam;
    int64_t comp, row;
  };
  std::vector<Pair> all;
  std::vector<std::vector<double>> Ys(nc);
  int64_t steps = 0;
  for (int64_t c = 0; c < nc; ++c) {
    SubCsr S;
    S.n = static_cast<int64_t>(members[c].size());
    S.indptr.push_back(0);
    for (int64_t u : members[c]) {
      for (int64_t t = L.indptr[u]; t < L.indptr[u + 1]; ++t) {
        S.indices.push_back(local[L.indices[t]]);
        S.data.push_back(L.data[t]);
      }
      S.indptr.push_back(static_cast<int64_t>(S.indices.size()));
    }
    const int64_t mc = std::min(m, S.n);
    std::vector<double> wc(mc);
    Ys[c].assign(static_cast<size_t>(mc) * S.n, 0.0);
    if (S.n <= std::max<int64_t>(96, 3 * mc)) {
      dense_component(S, mc, wc.data(), Ys[c].data());
    } else {
      const bool fast = lanczos_fast_enabled();
      int64_t st = lanczos_component(S, mc, wc.data(), Ys[c].data(), fast, fast);
      if (st == -2) st = lanczos_component(S, mc, wc.data(), Ys[c].data(), false, false);
      if (st < 0) {
        dense_component(S, mc, wc.data(), Ys[c].data());  // could not certify: exact fallback
      } else {
        steps += st;
      }
    }
    for (int64_t i = 0; i < mc; ++i) all.push_back({wc[i], c, i});
  }
  std::stable_sort(all.begin(), all.end(), [](const Pair& a, const Pair& b) { return a.lam < b.lam; });
  // V (n, m): column i is pair all[i] (component rows elsewhere zero).
  std::vector<int64_t> colc(m), colr(m);
  for (int64_t i = 0; i < m; ++i) {
    w[i] = all[i].lam;
    colc[i] = all[i].comp;
    colr[i] = all[i].row;
  }
  for (int64_t r = 0; r < n; ++r) {
    const int64_t c = comp[r];
    const int64_t mc = static_cast<int64_t>(Ys[c].size()) / static_cast<int64_t>(members[c].size());
    const double* yrow = Ys[c].data() + local[r] * mc;
    double* vrow = V + r * m;
    for (int64_t i = 0; i < m; ++i) vrow[i] = colc[i] == c ? yrow[colr[i]] : 0.0;
  }
  fix_signs(V, n, m);
  return steps;
}

void fix_signs(double* V, int64_t n, int64_t m) {
  // fix_sign_row on every column, in three row-wise sweeps (columns are strided in V):
  // the largest magnitude per column, the first entry within 1e-9 of it, the flips.
  std::vector<double> thr(m, 0.0), sgn(m, 1.0);
  std::vector<char> found(m, 0);
  for (int64_t r = 0; r < n; ++r) {
    const double* v = V + r * m;
    for (int64_t j = 0; j < m; ++j) thr[j] = std::max(thr[j], std::fabs(v[j]));
  }
  int64_t left = 0;
  for (int64_t j = 0; j < m; ++j) {
    found[j] = thr[j] == 0;  // a zero column keeps its signs
    left += !found[j];
    thr[j] *= 1.0 - 1e-9;
  }
  for (int64_t r = 0; r < n && left > 0; ++r) {
    const double* v = V + r * m;
    for (int64_t j = 0; j < m; ++j) {
      if (!found[j] && std::fabs(v[j]) >= thr[j]) {
        found[j] = 1;
        --left;
        sgn[j] = v[j] < 0 ? -1.0 : 1.0;
      }
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    double* v = V + r * m;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) v[j] *= sgn[j];
  }
}

}  // namespace spectral
}  // namespace certkit
