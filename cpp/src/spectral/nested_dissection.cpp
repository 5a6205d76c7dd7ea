// Nested dissection ordering (see nested_dissection.h).
#include "common/dispatch.h"
#include "spectral/nested_dissection.h"

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

namespace {

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

}  // namespace

std::vector<int64_t> nested_dissection_order(const SubCsr& A, int64_t leaf) { return NdOrderer(A, leaf).run(); }

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
