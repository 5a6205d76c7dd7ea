#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "common/buffers.h"
#include "certkit/votes.h"

namespace py = pybind11;

void certkit_bind_votes(py::module_& m) {
  auto sm = m.def_submodule("votes", "vote counting");
  sm.def(
      "top_two_counts",
      [](py::array_t<int64_t, py::array::c_style> labels, int64_t C) {
        certkit::require_ndim(labels, 2, "labels");
        if (C < 2) throw py::value_error("num_classes: expected >= 2");
        const int64_t B = labels.shape(0), N = labels.shape(1);
        py::array_t<int64_t> counts({B, int64_t(2)}), classes({B, int64_t(2)});
        const int64_t* l = labels.data();
        int64_t* c = counts.mutable_data();
        int64_t* k = classes.mutable_data();
        int64_t bad;
        {
          py::gil_scoped_release nogil;
          bad = certkit::votes::top_two_counts(l, B, N, C, c, k);
        }
        if (bad) throw py::value_error("labels: " + std::to_string(bad) + " values outside [0, num_classes)");
        return py::make_tuple(counts, classes);
      },
      py::arg("labels"), py::arg("num_classes"));
  sm.def(
      "top_two_from_hist",
      [](py::array_t<int64_t, py::array::c_style> hist) {
        certkit::require_ndim(hist, 2, "counts");
        const int64_t B = hist.shape(0), C = hist.shape(1);
        if (C < 2) throw py::value_error("counts: expected at least 2 classes");
        py::array_t<int64_t> counts({B, int64_t(2)}), classes({B, int64_t(2)});
        const int64_t* h = hist.data();
        int64_t* c = counts.mutable_data();
        int64_t* k = classes.mutable_data();
        {
          py::gil_scoped_release nogil;
          certkit::votes::top_two_from_hist(h, B, C, c, k);
        }
        return py::make_tuple(counts, classes);
      },
      py::arg("counts"));
}
