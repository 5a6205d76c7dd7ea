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
bool has_lapack() {
  // Called (GIL held) before every op: re-pin OpenBLAS to one thread, since threadpoolctl or
  // the user may have raised it since load, and a multi-threaded (pthreads) OpenBLAS called
  // from our threads over clouds oversubscribes the cores (batched full basis 2.4x slower
  // under threadpoolctl's limits=2 on 2 cores, far worse under load).
  const Lapack& L = blas::lib();
  if (L.ok && L.set_threads != nullptr) L.set_threads(1);
  return L.ok;
}
void set_lapack_enabled(bool on) { g_lapack_enabled.store(on); }
std::string lapack_info() { return blas::info(); }

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
