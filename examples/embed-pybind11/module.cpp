// A downstream extension on certkit's C++ API: Gaussian noise and Clopper-Pearson bounds
// computed in C++ (for example inside a custom smoothing loop), returned to Python.
// The values equal certkit.core's bit for bit (packages/core/tests/test_embed.py).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <certkit/rng.h>
#include <certkit/stats.h>
#include <certkit/version.h>

#include <cstdint>

namespace py = pybind11;

PYBIND11_MODULE(certkit_embed_example, m) {
  m.attr("certkit_version") = CERTKIT_VERSION_STRING;
  // (n,) float32: elements [offset, offset + n) of stream (seed, stream), N(0, sigma^2)
  m.def(
      "gaussian",
      [](int64_t n, float sigma, uint64_t seed, uint64_t stream, uint64_t offset) {
        if (n < 0) throw py::value_error("n: expected n >= 0");
        py::array_t<float> out(n);
        float* p = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          certkit::rng::fill_f32(p, 1, n, seed, &stream, &offset, certkit::rng::Dist::Normal, 0.0f, sigma);
        }
        return out;
      },
      py::arg("n"), py::arg("sigma"), py::arg("seed"), py::arg("stream") = 0, py::arg("offset") = 0);
  // lower Clopper-Pearson bound of k successes in n trials at level alpha
  m.def(
      "cp_lower",
      [](int64_t k, int64_t n, double alpha) {
        if (n < 1 || k < 0 || k > n) throw py::value_error("k, n: expected 0 <= k <= n, n >= 1");
        return certkit::stats::cp_lower(k, n, alpha);
      },
      py::arg("k"), py::arg("n"), py::arg("alpha"));
}
