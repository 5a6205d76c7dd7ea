// certkit.core._cuda: the optional CUDA extension module (built with -DCERTKIT_CUDA=ON).
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include "registry.inc"

namespace py = pybind11;

#define CERTKIT_DECLARE(op) void certkit_cuda_bind_##op(py::module_& m);
CERTKIT_FOR_EACH_OP(CERTKIT_DECLARE)
#undef CERTKIT_DECLARE

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "certkit compiled core (CUDA kernels)";
  m.def("_build_info", []() {
    py::dict d;
    d["cuda_archs"] = CERTKIT_CUDA_ARCHS;
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    d["cuda_runtime"] = rt;
    int n = 0;
    d["device_count"] = (cudaGetDeviceCount(&n) == cudaSuccess) ? n : 0;
    py::list ops;
#define CERTKIT_NAME(op) ops.append(#op);
    CERTKIT_FOR_EACH_OP(CERTKIT_NAME)
#undef CERTKIT_NAME
    d["ops"] = ops;
    return d;
  });
#define CERTKIT_CALL(op) certkit_cuda_bind_##op(m);
  CERTKIT_FOR_EACH_OP(CERTKIT_CALL)
#undef CERTKIT_CALL
}
