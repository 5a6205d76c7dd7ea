// Point-cloud utilities: farthest-point sampling and normalisation to the unit sphere.
#pragma once
#include <cstdint>

namespace certkit {
namespace pcops {

// points (N, 3) row-major doubles. Greedy farthest-point sampling (Eldar et al. 1997):
// out (m) int64 indices, out[0] = start, then repeatedly the point whose distance to the
// chosen set is largest (ties: smallest index). Requires 1 <= m <= N.
void farthest_point_sample(const double* points, int64_t N, int64_t m, int64_t start, int64_t* out);

// In place: subtract the centroid, divide by the largest distance to it (no scaling when
// all points coincide). centroid (3), scale (1) are written.
void normalize_unit_sphere(double* points, int64_t N, double* centroid, double* scale);

}  // namespace pcops
}  // namespace certkit
