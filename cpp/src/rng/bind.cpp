// Python bindings of the Philox sampler (submodule _core.rng). Argument checking for
// users lives in certkit/core/rng.py; these checks only guard the buffers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "common/buffers.h"
#include "certkit/rng.h"

namespace py = pybind11;
using certkit::rng::Dist;

namespace {
constexpr auto kIn = py::array::c_style | py::array::forcecast;

void check_rows(const py::array& out, const py::array_t<uint64_t, kIn>& streams,
                const py::array_t<uint64_t, kIn>& offsets, int64_t& B, int64_t& M) {
  if (!(out.flags() & py::array::c_style)) throw py::value_error("out: expected a C-contiguous array");
  if (!out.writeable()) throw py::value_error("out: array is read-only");
  if (out.ndim() != 2) throw py::value_error("out: expected a 2-D (B, M) array");
  B = out.shape(0);
  M = out.shape(1);
  certkit::require_same_size(streams, B, "streams");
  certkit::require_same_size(offsets, B, "offsets");
}
}  // namespace

void certkit_bind_rng(py::module_& m) {
  auto sm = m.def_submodule("rng", "Philox4x32-10 counter-based sampling");
  sm.def(
      "fill",
      [](py::array out, uint64_t seed, py::array_t<uint64_t, kIn> streams,
         py::array_t<uint64_t, kIn> offsets, int dist, double a, double b) {
        int64_t B, M;
        check_rows(out, streams, offsets, B, M);
        if (dist < 0 || dist > 2) throw py::value_error("dist: expected 0, 1 or 2");
        const auto* s = streams.data();
        const auto* o = offsets.data();
        if (py::isinstance<py::array_t<float>>(out) && out.dtype().is(py::dtype::of<float>())) {
          auto* p = static_cast<float*>(out.mutable_data());
          py::gil_scoped_release nogil;
          certkit::rng::fill_f32(p, B, M, seed, s, o, Dist(dist), float(a), float(b));
        } else if (out.dtype().is(py::dtype::of<double>())) {
          auto* p = static_cast<double*>(out.mutable_data());
          py::gil_scoped_release nogil;
          certkit::rng::fill_f64(p, B, M, seed, s, o, Dist(dist), a, b);
        } else {
          throw py::type_error("out: expected float32 or float64");
        }
      },
      py::arg("out"), py::arg("seed"), py::arg("streams"), py::arg("offsets"), py::arg("dist"),
      py::arg("a"), py::arg("b"));
  sm.def(
      "fill_bits",
      [](py::array out, uint64_t seed, py::array_t<uint64_t, kIn> streams,
         py::array_t<uint64_t, kIn> offsets) {
        int64_t B, M;
        check_rows(out, streams, offsets, B, M);
        if (!out.dtype().is(py::dtype::of<uint32_t>())) throw py::type_error("out: expected uint32");
        auto* p = static_cast<uint32_t*>(out.mutable_data());
        const auto* s = streams.data();
        const auto* o = offsets.data();
        py::gil_scoped_release nogil;
        certkit::rng::fill_bits(p, B, M, seed, s, o);
      },
      py::arg("out"), py::arg("seed"), py::arg("streams"), py::arg("offsets"));
}
