// certkit.core._core: the CPU extension module over libcertkit_core. Each op under
// cpp/src/<op>/ contributes a submodule through certkit_bind_<op>(); the list is generated
// by CMake (registry.inc).
#include <pybind11/pybind11.h>

#include <string>

#include "common/blas.h"
#include "common/build_info.h"
#include "common/dispatch.h"
#include "registry.inc"

namespace py = pybind11;

#define CERTKIT_DECLARE(op) void certkit_bind_##op(py::module_& m);
CERTKIT_FOR_EACH_OP(CERTKIT_DECLARE)
#undef CERTKIT_DECLARE

namespace {
py::list split(const std::string& s) {
  py::list out;
  std::string cur;
  for (char c : s + ",") {
    if (c == ',') {
      if (!cur.empty()) out.append(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}
}  // namespace

PYBIND11_MODULE(_core, m) {
  namespace b = certkit::build;
  namespace simd = certkit::simd;
  m.doc() = "certkit compiled core (CPU). Use the Python face in certkit.core.";
  m.def("_build_info", []() {
    py::dict d;
    d["version"] = b::version();
    d["compiler"] = b::compiler();
    d["flags"] = b::flags();
    d["build_type"] = b::build_type();
    d["openmp"] = b::openmp();
    d["openmp_threads"] = b::max_threads();
    d["simd"] = b::simd();
    d["simd_variants"] = split(b::variants());
    py::dict march;
    for (auto item : split(b::marchs())) {
      const std::string kv = py::str(item);
      const auto eq = kv.find('=');
      march[py::str(kv.substr(0, eq))] = kv.substr(eq + 1);
    }
    d["simd_march"] = march;
    py::list cpu;
    for (int i = simd::kBaseline; i < simd::kNumIsa; ++i)
      if (simd::supported(simd::Isa(i))) cpu.append(simd::name(simd::Isa(i)));
    d["simd_cpu"] = cpu;
    d["simd_requested"] = simd::requested();
    d["simd_request_honoured"] = simd::request_honoured();
    py::list ops;
#define CERTKIT_NAME(op) ops.append(#op);
    CERTKIT_FOR_EACH_OP(CERTKIT_NAME)
#undef CERTKIT_NAME
    d["ops"] = ops;
    return d;
  });
  m.def("_set_num_threads", [](int n) { b::set_num_threads(n); });
  // For tests and benchmarks: run `name`'s kernels from now on (False when not compiled in or
  // not supported by this CPU; nothing changes then).
  m.def("_set_simd", [](const std::string& name) {
    const int isa = simd::parse(name.c_str());
    if (isa < 0) throw py::value_error("simd: expected 'baseline', 'avx2' or 'avx512', got '" + name + "'");
    return simd::set_active(simd::Isa(isa));
  });
  m.def("_blas_preferred", [](const std::string& path) { certkit::blas::set_preferred(path); },
        "Registers the preferred BLAS / LAPACK library (used if it loads; before first use only)");
  m.def("_blas_info", []() { return certkit::blas::info(); },
        "'yes (library, OpenBLAS core)' or 'no (reason)'; loads the library");
  m.def("_simd_probe", []() { return simd::name(simd::Isa(simd::probe())); },
        "the instruction set the running kernels were compiled for (see common/dispatch.h)");
#define CERTKIT_CALL(op) certkit_bind_##op(m);
  CERTKIT_FOR_EACH_OP(CERTKIT_CALL)
#undef CERTKIT_CALL
}
