// BLAS / LAPACK found at run time (never a path baked in at build time), shared by the ops
// that use it (bound kernels: GEMM; spectral ops: GEMV, GEMM, dsyevd, dsyevr).
//
// Loaded with dlopen() on first use, so importing the core never loads BLAS and
// OPENBLAS_CORETYPE can be set first (see openblas_env.h). Candidates, first usable wins:
//   1. $CERTKIT_BLAS: a library path or soname (a file with the scipy_ symbol prefix works)
//   2. the library registered with set_preferred(): certkit.core registers the one of the
//      scipy-openblas32 wheel (the OpenBLAS numpy and scipy ship; symbols scipy_dgemm_ ...)
//   3. the system's OpenBLAS, libopenblas.so.0
//   4. the system's reference LAPACK + BLAS, liblapack.so.3 + libblas.so.3
// CERTKIT_LAPACK=0 disables BLAS / LAPACK (the ops use their own kernels).
// 32-bit integer (LP64) Fortran interface. OpenBLAS is set to one thread: the ops thread
// over examples / clouds themselves.
#pragma once
#include <string>

namespace certkit {
namespace blas {

struct Lib {
  using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                         const float*, const int*, const float*, const int*, const float*, float*,
                         const int*);
  using Dgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const double*,
                         const double*, const int*, const double*, const int*, const double*, double*,
                         const int*);
  using Dgemv = void (*)(const char*, const int*, const int*, const double*, const double*, const int*,
                         const double*, const int*, const double*, double*, const int*);
  using Dsyevd = void (*)(const char*, const char*, const int*, double*, const int*, double*, double*,
                          const int*, int*, const int*, int*);
  using Dsyevr = void (*)(const char*, const char*, const char*, const int*, double*, const int*,
                          const double*, const double*, const int*, const int*, const double*, int*,
                          double*, double*, const int*, int*, double*, const int*, int*, const int*,
                          int*);
  Sgemm sgemm = nullptr;
  Dgemm dgemm = nullptr;
  Dgemv dgemv = nullptr;
  Dsyevd dsyevd = nullptr;
  Dsyevr dsyevr = nullptr;
  void (*set_threads)(int) = nullptr;
  const char* (*corename)() = nullptr;
  bool ok = false;    // every entry point above but set_threads / corename was found
  std::string where;  // the library loaded, or why none was
};

// The library (loaded on the first call; thread-safe).
const Lib& lib();
// Registers a preferred library (candidate 2). Effective only before the first lib().
void set_preferred(const std::string& path);
// "yes (<library>, OpenBLAS core <name>)" or "no (<reason>)"; loads the library.
std::string info();

}  // namespace blas
}  // namespace certkit
