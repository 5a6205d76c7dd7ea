#include "certkit/pcops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace certkit {
namespace pcops {

void farthest_point_sample(const double* p, int64_t N, int64_t m, int64_t start, int64_t* out) {
  std::vector<double> dist(N, INFINITY);
  int64_t cur = start;
  for (int64_t s = 0; s < m; ++s) {
    out[s] = cur;
    const double x = p[3 * cur], y = p[3 * cur + 1], z = p[3 * cur + 2];
    int64_t best = 0;
    double bestd = -1.0;
    for (int64_t i = 0; i < N; ++i) {
      const double dx = p[3 * i] - x, dy = p[3 * i + 1] - y, dz = p[3 * i + 2] - z;
      const double d = dx * dx + dy * dy + dz * dz;
      if (d < dist[i]) dist[i] = d;
      if (dist[i] > bestd) {
        bestd = dist[i];
        best = i;
      }
    }
    cur = best;
  }
}

void normalize_unit_sphere(double* p, int64_t N, double* c, double* scale) {
  double cx = 0, cy = 0, cz = 0;
  for (int64_t i = 0; i < N; ++i) {
    cx += p[3 * i];
    cy += p[3 * i + 1];
    cz += p[3 * i + 2];
  }
  cx /= N;
  cy /= N;
  cz /= N;
  double r = 0;
  for (int64_t i = 0; i < N; ++i) {
    p[3 * i] -= cx;
    p[3 * i + 1] -= cy;
    p[3 * i + 2] -= cz;
    r = std::max(r, p[3 * i] * p[3 * i] + p[3 * i + 1] * p[3 * i + 1] + p[3 * i + 2] * p[3 * i + 2]);
  }
  r = std::sqrt(r);
  if (r > 0) {
    for (int64_t i = 0; i < 3 * N; ++i) p[i] /= r;
  } else {
    r = 1.0;
  }
  c[0] = cx;
  c[1] = cy;
  c[2] = cz;
  *scale = r;
}

}  // namespace pcops
}  // namespace certkit
