// k-d tree for exact k-nearest-neighbour queries in 3-D (internal header; knn() is public,
// in spectral.h). Friedman, Bentley & Finkel 1977, with incremental distance pruning
// (Arya & Mount 1993).
#pragma once
#include "common/dispatch.h"
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

struct KdNode {
  int64_t begin, end;
  int32_t left, right, axis;
  double split;
};

// Median-split tree over the points (leaves of <= 12), built once; query() is thread-safe.
struct KdTree {
  int64_t n;
  std::vector<int64_t> perm;  // tree order -> original index
  std::vector<double> xyz;    // points in tree order (leaves are contiguous runs)
  std::vector<KdNode> nodes;

  KdTree(const double* pts, int64_t N);
  int32_t build(const double* p, int64_t b, int64_t e);

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

  void query(const double* q, Best& best) const;
  // rd: squared distance from q to the node's cell, as a sum over axes of the squared
  // offsets in off[] (incremental distance: Arya & Mount 1993), a lower bound that prunes
  // far cells better than the splitting plane alone.
  void search(int32_t id, const double* q, Best& best, double rd, double* off) const;
};

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
