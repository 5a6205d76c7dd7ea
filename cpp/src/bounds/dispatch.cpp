// The public bound-propagation entry points (bounds.h): forward to the SIMD variant that
// runs (common/dispatch.h). Variants agree to float rounding (FMA contraction, summation
// order of the vector kernels).
#include "certkit/bounds.h"
#include "bounds/patch_kernels_inst.h"
#include "common/dispatch.h"

namespace certkit {
namespace bounds {

CERTKIT_DECLARE_VARIANTS(
    template <class T>
    void compute(const std::vector<Layer<T>>& layers, const T* lo, const T* hi, const T* C,
                 int64_t B, int64_t S, int method, T* out_lo, T* out_hi);)

template <class T>
void compute(const std::vector<Layer<T>>& layers, const T* lo, const T* hi, const T* C, int64_t B,
             int64_t S, int method, T* out_lo, T* out_hi) {
  CERTKIT_DISPATCH(compute<T>, layers, lo, hi, C, B, S, method, out_lo, out_hi)
}

template void compute<float>(const std::vector<Layer<float>>&, const float*, const float*,
                             const float*, int64_t, int64_t, int, float*, float*);
template void compute<double>(const std::vector<Layer<double>>&, const double*, const double*,
                              const double*, int64_t, int64_t, int, double*, double*);

CERTKIT_DECLARE_VARIANTS(
    template <class T>
    void relu_patches(const T* P, int64_t R, int64_t Kh, int64_t Kw, int64_t C, const T* rel, int64_t H,
                      int64_t W, const int64_t* ex, const int64_t* hr, const int64_t* wr, int64_t k,
                      int64_t Sh, int64_t Sw, int64_t Ph, int64_t Pw, T* A, T* bias, int nthreads);
    template <class T>
    void box_patches(const T* P, int64_t R, int64_t Kh, int64_t Kw, int64_t C, const T* box, int64_t H,
                     int64_t W, const int64_t* ex, const int64_t* hr, const int64_t* wr, int64_t k,
                     int64_t Sh, int64_t Sw, int64_t Ph, int64_t Pw, T* bias, int nthreads);)

template <class T>
void relu_patches(const T* P, int64_t R, int64_t Kh, int64_t Kw, int64_t C, const T* rel, int64_t H, int64_t W,
                  const int64_t* ex, const int64_t* hr, const int64_t* wr, int64_t k, int64_t Sh, int64_t Sw,
                  int64_t Ph, int64_t Pw, T* A, T* bias, int nthreads) {
  CERTKIT_DISPATCH(relu_patches<T>, P, R, Kh, Kw, C, rel, H, W, ex, hr, wr, k, Sh, Sw, Ph, Pw, A, bias, nthreads)
}

template <class T>
void box_patches(const T* P, int64_t R, int64_t Kh, int64_t Kw, int64_t C, const T* box, int64_t H, int64_t W,
                 const int64_t* ex, const int64_t* hr, const int64_t* wr, int64_t k, int64_t Sh, int64_t Sw,
                 int64_t Ph, int64_t Pw, T* bias, int nthreads) {
  CERTKIT_DISPATCH(box_patches<T>, P, R, Kh, Kw, C, box, H, W, ex, hr, wr, k, Sh, Sw, Ph, Pw, bias, nthreads)
}

CERTKIT_PATCH_KERNELS(float)
CERTKIT_PATCH_KERNELS(double)

}  // namespace bounds
}  // namespace certkit
