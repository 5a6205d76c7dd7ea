// RCM ordering and envelope LDL^T (see envelope_ldl.h).
#include "common/dispatch.h"
#include "spectral/envelope_ldl.h"

#include "spectral/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

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

EnvLdl::EnvLdl(const SubCsr& A, const std::vector<int64_t>& perm, double shift)
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

void EnvLdl::solve(double* x) const {
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

int64_t envelope_entries(const SubCsr& A, const std::vector<int64_t>& perm) {
  const std::vector<int64_t> first = envelope_first(A, perm);
  int64_t total = 0;
  for (int64_t i = 0; i < A.n; ++i) total += i - first[i] + 1;
  return total;
}

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
