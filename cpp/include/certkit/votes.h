// Vote counting for randomized smoothing.
#pragma once
#include <cstdint>

namespace certkit {
namespace votes {

// labels: (B, N) int64 class ids in [0, C). Writes, per row, the two largest counts and
// their classes: counts (B, 2), classes (B, 2). Ties go to the smaller class index; with
// one class present the runner-up is the smallest other class with count 0.
// Returns the number of labels outside [0, C) (0 on success; outputs undefined otherwise).
int64_t top_two_counts(const int64_t* labels, int64_t B, int64_t N, int64_t C, int64_t* counts,
                       int64_t* classes);

// Same, for labels already counted: hist (B, C) int64.
void top_two_from_hist(const int64_t* hist, int64_t B, int64_t C, int64_t* counts,
                       int64_t* classes);

}  // namespace votes
}  // namespace certkit
