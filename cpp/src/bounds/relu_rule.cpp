// CROWN's ReLU backward rule fused into one pass over the coefficients (the inference path
// of certkit.core.bounds.patches._relu and ops.ReLU.backward; see certkit/bounds.h). One
// copy per SIMD variant (common/dispatch.h); compiled with -fno-trapping-math (CMakeLists)
// so that GCC turns the selects into blends.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "certkit/bounds.h"
#include "bounds/patch_kernels_inst.h"
#include "common/dispatch.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace certkit {
namespace bounds {
namespace CERTKIT_ISA {  // one copy per SIMD variant
namespace {

// One run of n coefficients p with their neurons' slopes: a = p·(p > 0 ? ld : ud) (both
// products formed, then selected: branch-free, so it vectorises), acc += min(p, 0)·ub.
template <class T>
inline void rule_row(const T* __restrict p, const T* __restrict ld, const T* __restrict ud,
                     const T* __restrict ub, T* __restrict a, T* __restrict acc, int64_t n) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) {
    const T v = p[c];
    const T x = v * ld[c];
    const T y = v * ud[c];
    a[c] = v > T(0) ? x : y;
    acc[c] += (v < T(0) ? v : T(0)) * ub[c];
  }
}

// One run of n coefficients p against the box's centre m and radius (m + plane):
// acc += p·mid − |p|·rad.
template <class T>
inline void window_box(const T* __restrict p, const T* __restrict m, int64_t plane, T* __restrict acc, int64_t n) {
  const T* __restrict d = m + plane;
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) {
    const T v = p[c];
    acc[c] += v * m[c] - (v < T(0) ? -v : v) * d[c];
  }
}


// Patches: P (R, Kh, Kw, C) channels last; row r of example ex[r] at window position
// pos = r % k (hr[pos], wr[pos]) covers node rows hr·Sh - Ph + [0, Kh) and columns
// wr·Sw - Pw + [0, Kw). rel (E, 3, H, W, C): the lower slopes, upper slopes and upper
// intercepts, each channels last, so that one window row's slopes are one contiguous run
// of (columns inside the node)·C values. Entries outside [0, H) x [0, W) give 0 (the
// window stands for nothing there). Out: A (R, Kh, Kw, C), bias (R,).
// The rows' common frame: row r (example ex[r], window position r % k) sits at node row
// h0 = hr·Sh - Ph and column w0 = wr·Sw - Pw; columns [x0, x1) of its window lie inside
// the node's W columns. fn(r, h0, w0, x0, x1, acc) accumulates the row's bias terms into
// acc (Kw·C values, zeroed here), whose sum becomes bias[r]. Rows in parallel (OpenMP).
template <class T, class F>
void each_row(int64_t R, int64_t Kw, int64_t C, int64_t W, const int64_t* hr, const int64_t* wr, int64_t k,
              int64_t Sh, int64_t Sw, int64_t Ph, int64_t Pw, int64_t work, T* bias, int nthreads, F&& fn) {
  (void)nthreads;
  (void)work;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads > 0 ? nthreads : 1) if (nthreads > 1 && work > (1 << 16))
#endif
  {
    std::vector<T> acc(static_cast<size_t>(Kw * C));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t r = 0; r < R; ++r) {
      const int64_t pos = r % k;
      const int64_t h0 = hr[pos] * Sh - Ph, w0 = wr[pos] * Sw - Pw;
      const int64_t x0 = w0 < 0 ? -w0 : 0;                                // first column inside
      const int64_t x1 = W - w0 < Kw ? (W - w0 > x0 ? W - w0 : x0) : Kw;  // one past the last
      T* ac = acc.data();
      for (int64_t c = 0; c < Kw * C; ++c) ac[c] = T(0);
      fn(r, h0, w0, x0, x1, ac);
      T b = T(0);
      for (int64_t c = 0; c < Kw * C; ++c) b += ac[c];
      bias[r] = b;
    }
  }
}

}  // namespace

// Patches: P (R, Kh, Kw, C) channels last; row r of example ex[r] at window position
// pos = r % k (hr[pos], wr[pos]) covers node rows hr·Sh - Ph + [0, Kh) and columns
// wr·Sw - Pw + [0, Kw). rel (E, 3, H, W, C): the lower slopes, upper slopes and upper
// intercepts, each channels last, so that one window row's slopes are one contiguous run
// of (columns inside the node)·C values. Entries outside [0, H) x [0, W) give 0 (the
// window stands for nothing there). Out: A (R, Kh, Kw, C), bias (R,).
template <class T>
void relu_patches(const T* P, int64_t R, int64_t Kh, int64_t Kw, int64_t C, const T* rel, int64_t H,
                  int64_t W, const int64_t* ex, const int64_t* hr, const int64_t* wr, int64_t k, int64_t Sh,
                  int64_t Sw, int64_t Ph, int64_t Pw, T* A, T* bias, int nthreads) {
  const int64_t row = Kh * Kw * C, plane = H * W * C;
  each_row<T>(R, Kw, C, W, hr, wr, k, Sh, Sw, Ph, Pw, R * row, bias, nthreads,
              [&](int64_t r, int64_t h0, int64_t w0, int64_t x0, int64_t x1, T* ac) {
                const T* node = rel + ex[r] * 3 * plane;
                const T* p = P + r * row;
                T* a = A + r * row;
                for (int64_t dy = 0; dy < Kh; ++dy) {
                  const int64_t h = h0 + dy;
                  T* aa = a + dy * Kw * C;
                  if (h < 0 || h >= H || x1 <= x0) {
                    for (int64_t c = 0; c < Kw * C; ++c) aa[c] = T(0);
                    continue;
                  }
                  for (int64_t c = 0; c < x0 * C; ++c) aa[c] = T(0);
                  for (int64_t c = x1 * C; c < Kw * C; ++c) aa[c] = T(0);
                  const T* sl = node + (h * W + w0 + x0) * C;
                  rule_row(p + dy * Kw * C + x0 * C, sl, sl + plane, sl + 2 * plane, aa + x0 * C, ac, (x1 - x0) * C);
                }
              });
}

// The ℓ∞ concretisation of patches: bias[r] = Σ P·mid − |P|·rad over row r's window
// entries inside the node (the window is zero outside), with box (E, 2, H, W, C): the
// centre and the radius of the input box, each channels last. Geometry as relu_patches.
template <class T>
void box_patches(const T* P, int64_t R, int64_t Kh, int64_t Kw, int64_t C, const T* box, int64_t H,
                 int64_t W, const int64_t* ex, const int64_t* hr, const int64_t* wr, int64_t k, int64_t Sh,
                 int64_t Sw, int64_t Ph, int64_t Pw, T* bias, int nthreads) {
  const int64_t row = Kh * Kw * C, plane = H * W * C;
  each_row<T>(R, Kw, C, W, hr, wr, k, Sh, Sw, Ph, Pw, R * row, bias, nthreads,
              [&](int64_t r, int64_t h0, int64_t w0, int64_t x0, int64_t x1, T* ac) {
                const T* node = box + ex[r] * 2 * plane;
                const T* p = P + r * row;
                for (int64_t dy = 0; dy < Kh && x1 > x0; ++dy) {
                  const int64_t h = h0 + dy;
                  if (h < 0 || h >= H) continue;
                  window_box(p + dy * Kw * C + x0 * C, node + (h * W + w0 + x0) * C, plane, ac, (x1 - x0) * C);
                }
              });
}

CERTKIT_PATCH_KERNELS(float)
CERTKIT_PATCH_KERNELS(double)

}  // namespace CERTKIT_ISA
}  // namespace bounds
}  // namespace certkit
