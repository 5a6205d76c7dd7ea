// Optional LAPACK for the spectral ops: found by CMake, dlopen()ed on first use.
#include "spectral/lapack.h"

#include "common/openblas_env.h"
#include "spectral/spectral.h"

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#if CERTKIT_HAS_LAPACK
#include <dlfcn.h>
#endif

namespace certkit {
namespace spectral {

// ------------------------------------------------ optional LAPACK (run-time loaded) ----
// CMake records the LAPACK found at configure time (CERTKIT_LAPACK_LIBS, ':'-separated);
// it is dlopen()ed on first use rather than linked, for two reasons: importing the core
// never loads BLAS, and OPENBLAS_CORETYPE can be set before OpenBLAS initialises (the
// DYNAMIC_ARCH OpenBLAS 0.3.21 of Debian 12 does not recognise recent Xeons and falls back
// to its SSE3 "Prescott" kernels; we pick SkylakeX / Haswell from cpuid unless the user set
// the variable). OpenBLAS is set to one thread: the ops thread over clouds themselves.
// Set CERTKIT_LAPACK=0 to disable it.
#if CERTKIT_HAS_LAPACK
namespace {
std::atomic<bool> g_lapack_enabled{true};

Lapack load_lapack() {
  Lapack L;
  const char* off = std::getenv("CERTKIT_LAPACK");
  if (off && std::string(off) == "0") {
    L.where = "disabled by CERTKIT_LAPACK=0";
    return L;
  }
  std::vector<std::vector<std::string>> candidates;
  {
    std::vector<std::string> cfg;
    std::string s = CERTKIT_LAPACK_LIBS, cur;
    for (char ch : s + ":") {
      if (ch == ':') {
        if (!cur.empty()) cfg.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    candidates.push_back(cfg);
  }
  candidates.push_back({"libopenblas.so.0"});
  candidates.push_back({"liblapack.so.3", "libblas.so.3"});
  const bool set_core = certkit::set_openblas_coretype();
  for (const auto& libs : candidates) {
    std::vector<void*> handles;
    for (const auto& lib : libs) {
      void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) handles.push_back(h);
    }
    if (handles.empty()) continue;
    auto sym = [&](const char* name) -> void* {
      for (void* h : handles)
        if (void* p = dlsym(h, name)) return p;
      return nullptr;
    };
    L.dgemv = reinterpret_cast<Lapack::Dgemv>(sym("dgemv_"));
    L.dgemm = reinterpret_cast<Lapack::Dgemm>(sym("dgemm_"));
    L.dsyevd = reinterpret_cast<Lapack::Dsyevd>(sym("dsyevd_"));
    L.dsyevr = reinterpret_cast<Lapack::Dsyevr>(sym("dsyevr_"));
    L.set_threads = reinterpret_cast<void (*)(int)>(sym("openblas_set_num_threads"));
    L.corename = reinterpret_cast<const char* (*)()>(sym("openblas_get_corename"));
    if (L.dgemv && L.dgemm && L.dsyevd && L.dsyevr) {
      L.ok = true;
      // Our calls are small (Krylov gemv) or already threaded over clouds: BLAS threads
      // would only add fork/join cost (seconds for a 150-point basis on a loaded machine).
      if (L.set_threads) L.set_threads(1);
      for (const auto& lib : libs) L.where += (L.where.empty() ? "" : ":") + lib;
      break;
    }
    L = Lapack();
  }
  if (set_core) unsetenv("OPENBLAS_CORETYPE");
  if (!L.ok) L.where = "not found at run time";
  return L;
}

const Lapack& lapack_state() {
  static const Lapack L = load_lapack();
  return L;
}
}  // namespace

const Lapack* lapack() {
  if (!g_lapack_enabled.load(std::memory_order_relaxed)) return nullptr;
  const Lapack& L = lapack_state();
  return L.ok ? &L : nullptr;
}
bool has_lapack() { return lapack_state().ok; }
void set_lapack_enabled(bool on) { g_lapack_enabled.store(on); }
std::string lapack_info() {
  const Lapack& L = lapack_state();
  std::string s = L.ok ? "yes (" + L.where : "no (" + L.where;
  if (L.ok && L.corename) s += std::string(", OpenBLAS core ") + L.corename();
  return s + ")";
}
#else
const Lapack* lapack() { return nullptr; }
bool has_lapack() { return false; }
void set_lapack_enabled(bool) {}
std::string lapack_info() { return "no (not found when the core was built)"; }
#endif

}  // namespace spectral
}  // namespace certkit
