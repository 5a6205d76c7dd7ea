// The public bound-propagation entry points (bounds.h): forward to the SIMD variant that
// runs (common/dispatch.h). Variants agree to float rounding (FMA contraction, summation
// order of the vector kernels).
#include "certkit/bounds.h"
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

}  // namespace bounds
}  // namespace certkit
