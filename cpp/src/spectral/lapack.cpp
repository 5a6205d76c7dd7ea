// Optional LAPACK for the spectral ops: found at run time (common/blas.h), on first use.
#include "common/dispatch.h"
#include "spectral/lapack.h"

#include "common/blas.h"
#include "spectral/spectral.h"

#include <atomic>
#include <string>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// ------------------------------------------------ optional LAPACK (run-time loaded) ----
// The library is found at run time by common/blas.h (scipy-openblas32's OpenBLAS when that
// wheel is installed, else the system's OpenBLAS or reference LAPACK; CERTKIT_BLAS names
// one; nothing is baked in at build time). It is dlopen()ed on first use, so importing the
// core never loads BLAS and OPENBLAS_CORETYPE can be set before OpenBLAS initialises (the
// DYNAMIC_ARCH OpenBLAS 0.3.21 of Debian 12 does not recognise recent Xeons). OpenBLAS is
// set to one thread: the ops thread over clouds themselves. CERTKIT_LAPACK=0 disables it.
namespace {
std::atomic<bool> g_lapack_enabled{true};
}  // namespace

const Lapack* lapack() {
  if (!g_lapack_enabled.load(std::memory_order_relaxed)) return nullptr;
  const Lapack& L = blas::lib();
  return L.ok ? &L : nullptr;
}
bool has_lapack() { return blas::lib().ok; }
void set_lapack_enabled(bool on) { g_lapack_enabled.store(on); }
std::string lapack_info() { return blas::info(); }

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
