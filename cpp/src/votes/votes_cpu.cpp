#include <algorithm>
#include <atomic>
#include <vector>

#include "common/parallel.h"
#include "certkit/votes.h"

namespace certkit {
namespace votes {

namespace {
inline void top_two_row(const int64_t* h, int64_t C, int64_t* counts, int64_t* classes) {
  int64_t c1 = -1, i1 = -1, c2 = -1, i2 = -1;
  for (int64_t c = 0; c < C; ++c) {
    const int64_t v = h[c];
    if (v > c1) {
      c2 = c1; i2 = i1; c1 = v; i1 = c;
    } else if (v > c2) {
      c2 = v; i2 = c;
    }
  }
  counts[0] = c1 < 0 ? 0 : c1;
  classes[0] = i1;
  counts[1] = c2 < 0 ? 0 : c2;
  classes[1] = i2;
}
}  // namespace

int64_t top_two_counts(const int64_t* labels, int64_t B, int64_t N, int64_t C, int64_t* counts,
                       int64_t* classes) {
  std::atomic<int64_t> bad{0};
  parallel_for(B, 1, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> h(size_t(C > 0 ? C : 1));
    int64_t local_bad = 0;
    for (int64_t r = lo; r < hi; ++r) {
      std::fill(h.begin(), h.end(), 0);
      const int64_t* row = labels + r * N;
      for (int64_t j = 0; j < N; ++j) {
        const int64_t v = row[j];
        if (v >= 0 && v < C) ++h[size_t(v)]; else ++local_bad;
      }
      top_two_row(h.data(), C, counts + 2 * r, classes + 2 * r);
    }
    bad += local_bad;
  });
  return bad.load();
}

void top_two_from_hist(const int64_t* hist, int64_t B, int64_t C, int64_t* counts,
                       int64_t* classes) {
  parallel_for(B, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) top_two_row(hist + r * C, C, counts + 2 * r, classes + 2 * r);
  });
}

}  // namespace votes
}  // namespace certkit
