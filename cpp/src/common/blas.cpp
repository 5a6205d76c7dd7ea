// Run-time BLAS / LAPACK loading (see blas.h).
#include "common/blas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "common/openblas_env.h"

namespace certkit {
namespace blas {
namespace {

std::mutex g_mutex;
std::string g_preferred;

// Tries one candidate (its libraries, in order); fills L when all entry points are found.
bool try_candidate(const std::vector<std::string>& libs, Lib& L) {
  std::vector<void*> handles;
  for (const auto& name : libs) {
    if (void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL)) handles.push_back(h);
  }
  if (handles.empty()) return false;
  auto sym = [&](const char* name) -> void* {
    for (const char* prefix : {"", "scipy_"}) {
      const std::string full = std::string(prefix) + name;
      for (void* h : handles)
        if (void* p = dlsym(h, full.c_str())) return p;
    }
    return nullptr;
  };
  Lib out;
  out.sgemm = reinterpret_cast<Lib::Sgemm>(sym("sgemm_"));
  out.dgemm = reinterpret_cast<Lib::Dgemm>(sym("dgemm_"));
  out.dgemv = reinterpret_cast<Lib::Dgemv>(sym("dgemv_"));
  out.dsyevd = reinterpret_cast<Lib::Dsyevd>(sym("dsyevd_"));
  out.dsyevr = reinterpret_cast<Lib::Dsyevr>(sym("dsyevr_"));
  out.set_threads = reinterpret_cast<void (*)(int)>(sym("openblas_set_num_threads"));
  out.corename = reinterpret_cast<const char* (*)()>(sym("openblas_get_corename"));
  if (!(out.sgemm && out.dgemm && out.dgemv && out.dsyevd && out.dsyevr)) {
    for (void* h : handles) dlclose(h);
    return false;
  }
  out.ok = true;
  for (const auto& name : libs) out.where += (out.where.empty() ? "" : ":") + name;
  if (out.set_threads) out.set_threads(1);
  L = out;
  return true;
}

Lib load() {
  Lib L;
  const char* off = std::getenv("CERTKIT_LAPACK");
  if (off != nullptr && std::string(off) == "0") {
    L.where = "disabled by CERTKIT_LAPACK=0";
    return L;
  }
  std::vector<std::vector<std::string>> candidates;
  if (const char* env = std::getenv("CERTKIT_BLAS"); env != nullptr && *env != '\0') {
    candidates.push_back({env});
  }
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_preferred.empty()) candidates.push_back({g_preferred});
  }
  candidates.push_back({"libopenblas.so.0"});
  candidates.push_back({"liblapack.so.3", "libblas.so.3"});
  const bool set_core = certkit::set_openblas_coretype();
  for (const auto& libs : candidates) {
    if (try_candidate(libs, L)) break;
  }
  if (set_core) unsetenv("OPENBLAS_CORETYPE");
  if (!L.ok) L.where = "not found at run time";
  return L;
}

}  // namespace

const Lib& lib() {
  static const Lib L = load();
  return L;
}

void set_preferred(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_preferred = path;
}

std::string info() {
  const Lib& L = lib();
  std::string s = (L.ok ? "yes (" : "no (") + L.where;
  if (L.ok && L.corename) s += std::string(", OpenBLAS core ") + L.corename();
  return s + ")";
}

}  // namespace blas
}  // namespace certkit
