// CUDA bindings of the sampler (submodule _cuda.rng). Takes a raw device pointer (e.g. a
// torch CUDA tensor's data_ptr()), so no libtorch is linked.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "rng/rng_cuda.h"

namespace py = pybind11;

void certkit_cuda_bind_rng(py::module_& m) {
  auto sm = m.def_submodule("rng", "Philox4x32-10 sampling on the GPU");
  sm.def(
      "fill_f32",
      [](uintptr_t ptr, int64_t B, int64_t M, uint64_t seed,
         py::array_t<uint64_t, py::array::c_style | py::array::forcecast> streams,
         py::array_t<uint64_t, py::array::c_style | py::array::forcecast> offsets, int dist,
         double a, double b) {
        if (streams.size() != B || offsets.size() != B)
          throw py::value_error("streams/offsets: expected B entries each");
        if (dist < 0 || dist > 2) throw py::value_error("dist: expected 0, 1 or 2");
        const uint64_t* s = streams.data();
        const uint64_t* o = offsets.data();
        py::gil_scoped_release nogil;
        certkit::rng::fill_f32_device(reinterpret_cast<float*>(ptr), B, M, seed, s, o, dist,
                                      float(a), float(b));
      },
      py::arg("ptr"), py::arg("B"), py::arg("M"), py::arg("seed"), py::arg("streams"),
      py::arg("offsets"), py::arg("dist"), py::arg("a"), py::arg("b"));
}
