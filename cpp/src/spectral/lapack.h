// Optional BLAS / LAPACK for the spectral ops, loaded at run time (internal header; the
// public switches has_lapack / lapack_info / set_lapack_enabled are in spectral.h).
#pragma once
#include <string>

namespace certkit {
namespace spectral {

// Fortran BLAS / LAPACK entry points (reference interface, 32-bit integers).
struct Lapack {
  using Dgemv = void (*)(const char*, const int*, const int*, const double*, const double*, const int*,
                         const double*, const int*, const double*, double*, const int*);
  using Dgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const double*,
                         const double*, const int*, const double*, const int*, const double*, double*,
                         const int*);
  using Dsyevd = void (*)(const char*, const char*, const int*, double*, const int*, double*, double*,
                          const int*, int*, const int*, int*);
  using Dsyevr = void (*)(const char*, const char*, const char*, const int*, double*, const int*,
                          const double*, const double*, const int*, const int*, const double*, int*,
                          double*, double*, const int*, int*, double*, const int*, int*, const int*, int*);
  Dgemv dgemv = nullptr;
  Dgemm dgemm = nullptr;
  Dsyevd dsyevd = nullptr;
  Dsyevr dsyevr = nullptr;
  void (*set_threads)(int) = nullptr;
  const char* (*corename)() = nullptr;
  bool ok = false;
  std::string where;
};

// The loaded library, or nullptr when none was found or set_lapack_enabled(false) is in force.
const Lapack* lapack();

}  // namespace spectral
}  // namespace certkit
