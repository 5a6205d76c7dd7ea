// numpy buffer checks for the bindings. The Python face validates user input first and
// raises errors that name the argument; these checks are the last line of defence so a
// bad buffer becomes a Python ValueError, never a crash.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

namespace certkit {
namespace py = pybind11;

inline void require_c_contiguous(const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  }
}

inline void require_ndim(const py::array& a, py::ssize_t ndim, const char* name) {
  if (a.ndim() != ndim) {
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) +
                          " dimensions, got " + std::to_string(a.ndim()));
  }
}

inline void require_same_size(const py::array& a, py::ssize_t n, const char* name) {
  if (a.size() != n) {
    throw py::value_error(std::string(name) + ": expected " + std::to_string(n) +
                          " elements, got " + std::to_string(a.size()));
  }
}

}  // namespace certkit
