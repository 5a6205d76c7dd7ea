// Explicit instantiations of the patch kernels declared in certkit/bounds.h for one scalar
// type T: the dispatcher (namespace certkit::bounds) and every SIMD variant (namespace
// certkit::bounds::<isa>, relu_rule.cpp) instantiate the same signatures.
#ifndef CERTKIT_SRC_BOUNDS_PATCH_KERNELS_INST_H_
#define CERTKIT_SRC_BOUNDS_PATCH_KERNELS_INST_H_

#define CERTKIT_PATCH_KERNELS(T)                                                                            \
  template void relu_patches<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t, int64_t,   \
                                const int64_t*, const int64_t*, const int64_t*, int64_t, int64_t, int64_t,  \
                                int64_t, int64_t, T*, T*, int);                                             \
  template void box_patches<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t, int64_t,    \
                               const int64_t*, const int64_t*, const int64_t*, int64_t, int64_t, int64_t,   \
                               int64_t, int64_t, T*, int);

#endif  // CERTKIT_SRC_BOUNDS_PATCH_KERNELS_INST_H_
