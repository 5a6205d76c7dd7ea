#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

#include "common/parallel.h"
#include "certkit/pcops.h"

namespace py = pybind11;

namespace {
using Arr = py::array_t<double, py::array::c_style | py::array::forcecast>;
void check_cloud(const Arr& a) {
  if (a.ndim() != 3 || a.shape(2) != 3) throw py::value_error("points: expected shape (B, N, 3)");
  if (a.shape(1) < 1) throw py::value_error("points: expected at least one point");
  const double* p = a.data();
  for (py::ssize_t i = 0; i < a.size(); ++i)
    if (!std::isfinite(p[i])) throw py::value_error("points: contains NaN or inf");
}
}  // namespace

void certkit_bind_pcops(py::module_& m) {
  auto sm = m.def_submodule("pcops", "point-cloud utilities: farthest-point sampling, normalisation");
  sm.def(
      "farthest_point_sample",
      [](Arr points, int64_t mm, int64_t start) {
        check_cloud(points);
        const int64_t B = points.shape(0), N = points.shape(1);
        if (mm < 1 || mm > N) throw py::value_error("m: expected 1 <= m <= number of points");
        if (start < 0 || start >= N) throw py::value_error("start: expected 0 <= start < number of points");
        py::array_t<int64_t> out({B, mm});
        const double* p = points.data();
        int64_t* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          certkit::parallel_for(B, 1, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) certkit::pcops::farthest_point_sample(p + i * N * 3, N, mm, start, o + i * mm);
          });
        }
        return out;
      },
      py::arg("points"), py::arg("m"), py::arg("start") = 0);
  sm.def(
      "normalize_unit_sphere",
      [](Arr points) {
        check_cloud(points);
        const int64_t B = points.shape(0), N = points.shape(1);
        py::array_t<double> out({B, N, int64_t(3)}), cen({B, int64_t(3)}), sc(B);
        std::copy(points.data(), points.data() + points.size(), out.mutable_data());
        double* o = out.mutable_data();
        double* c = cen.mutable_data();
        double* s = sc.mutable_data();
        {
          py::gil_scoped_release nogil;
          certkit::parallel_for(B, 8, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) certkit::pcops::normalize_unit_sphere(o + i * N * 3, N, c + 3 * i, s + i);
          });
        }
        return py::make_tuple(out, cen, sc);
      },
      py::arg("points"));
}
