// Symmetric kNN graph Laplacian in CSR (declared in spectral.h).
#include "common/dispatch.h"
#include "spectral/spectral.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>
#include <numeric>
#include <utility>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

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

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
