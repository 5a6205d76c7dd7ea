// build_info() of libcertkit_core (see build_info.h); the strings come from CMake.
#include "common/build_info.h"

#include "common/dispatch.h"
#include "common/parallel.h"

namespace certkit {
namespace build {

const char* version() { return CERTKIT_VERSION; }
const char* compiler() { return CERTKIT_COMPILER; }
const char* flags() { return CERTKIT_FLAGS; }
const char* build_type() { return CERTKIT_BUILD_TYPE; }
bool openmp() { return CERTKIT_HAS_OPENMP != 0; }
bool native() { return CERTKIT_NATIVE_BUILD != 0; }
const char* variants() { return CERTKIT_VARIANTS_STR; }
const char* marchs() { return CERTKIT_MARCHS_STR; }
const char* simd() { return native() ? "native" : simd::name(simd::active()); }
int max_threads() { return certkit::max_threads(); }
void set_num_threads(int n) {
#if defined(_OPENMP)
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

}  // namespace build
}  // namespace certkit
