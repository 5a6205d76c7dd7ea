// OpenBLAS run-time loading helper shared by the ops that dlopen() BLAS/LAPACK.
#pragma once
#include <cstdlib>

namespace certkit {

// Debian's OpenBLAS 0.3.21 DYNAMIC_ARCH build does not recognise recent Xeons and falls
// back to slow generic kernels. Before dlopen(), set OPENBLAS_CORETYPE from cpuid unless
// the user set it. Returns true when it set the variable: the caller unsets it after
// loading, so the process environment is left as it was.
inline bool set_openblas_coretype() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return false;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512cd")) {
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
    return true;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    setenv("OPENBLAS_CORETYPE", "Haswell", 0);
    return true;
  }
#endif
  return false;
}

}  // namespace certkit
