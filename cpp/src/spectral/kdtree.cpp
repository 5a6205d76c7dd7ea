// k-d tree kNN (see kdtree.h): Friedman, Bentley, Finkel 1977; incremental distance
// pruning, Arya & Mount 1993.
#include "common/dispatch.h"
#include "spectral/kdtree.h"

#include "common/parallel.h"
#include "spectral/spectral.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

KdTree::KdTree(const double* pts, int64_t N) : n(N), perm(N) {
  std::iota(perm.begin(), perm.end(), int64_t{0});
  nodes.reserve(static_cast<size_t>(2 * N / 8 + 4));
  build(pts, 0, N);
  xyz.resize(static_cast<size_t>(3 * N));
  for (int64_t i = 0; i < N; ++i)
    for (int d = 0; d < 3; ++d) xyz[3 * i + d] = pts[3 * perm[i] + d];
}

int32_t KdTree::build(const double* p, int64_t b, int64_t e) {
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

void KdTree::query(const double* q, Best& best) const {
  double off[3] = {0, 0, 0};
  search(0, q, best, 0.0, off);
}

void KdTree::search(int32_t id, const double* q, Best& best, double rd, double* off) const {
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

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
