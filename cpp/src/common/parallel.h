// Thread helpers shared by every op. OpenMP when compiled in, serial otherwise.
#pragma once
#include <cstdint>
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace certkit {

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Calls fn(begin, end) on disjoint chunks covering [0, n); chunks of at least `grain`.
template <class Fn>
inline void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t nchunks = (n + grain - 1) / grain;
#if defined(_OPENMP)
  if (nchunks > 1 && max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; ++c) {
      const int64_t b = c * grain;
      const int64_t e = b + grain < n ? b + grain : n;
      fn(b, e);
    }
    return;
  }
#endif
  (void)nchunks;
  fn(int64_t{0}, n);
}

}  // namespace certkit
