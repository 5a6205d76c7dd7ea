#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/buffers.h"
#include "common/parallel.h"
#include "spectral/spectral.h"

namespace py = pybind11;
using certkit::spectral::Csr;

namespace {

using Arr = py::array_t<double, py::array::c_style | py::array::forcecast>;
using IArr = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

void check_finite(const double* p, int64_t n, const char* name) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) throw py::value_error(std::string(name) + ": contains NaN or inf");
}

int weight_code(const std::string& w) {
  if (w == "binary") return 0;
  if (w == "gaussian") return 1;
  throw py::value_error("weight: expected 'binary' or 'gaussian', got '" + w + "'");
}

Csr csr_from(const IArr& indptr, const IArr& indices, const Arr& data) {
  certkit::require_ndim(indptr, 1, "indptr");
  certkit::require_ndim(indices, 1, "indices");
  certkit::require_ndim(data, 1, "data");
  Csr L;
  L.n = indptr.shape(0) - 1;
  if (L.n < 1) throw py::value_error("indptr: expected at least 2 entries");
  L.indptr.assign(indptr.data(), indptr.data() + indptr.shape(0));
  L.indices.assign(indices.data(), indices.data() + indices.shape(0));
  L.data.assign(data.data(), data.data() + data.shape(0));
  if (L.indices.size() != L.data.size()) throw py::value_error("indices/data: lengths differ");
  if (L.indptr[0] != 0 || L.indptr[L.n] != static_cast<int64_t>(L.indices.size()))
    throw py::value_error("indptr: inconsistent with indices");
  for (int64_t i = 0; i < L.n; ++i)
    if (L.indptr[i + 1] < L.indptr[i]) throw py::value_error("indptr: not non-decreasing");
  for (int64_t j : L.indices)
    if (j < 0 || j >= L.n) throw py::value_error("indices: out of range");
  check_finite(L.data.data(), static_cast<int64_t>(L.data.size()), "data");
  return L;
}

py::tuple csr_out(const Csr& L) {
  py::array_t<int64_t> ip(L.indptr.size()), ix(L.indices.size());
  py::array_t<double> dt(L.data.size());
  std::copy(L.indptr.begin(), L.indptr.end(), ip.mutable_data());
  std::copy(L.indices.begin(), L.indices.end(), ix.mutable_data());
  std::copy(L.data.begin(), L.data.end(), dt.mutable_data());
  return py::make_tuple(ip, ix, dt);
}

}  // namespace

void certkit_bind_spectral(py::module_& m) {
  auto sm = m.def_submodule("spectral", "graph spectral ops: kNN, Laplacians, eigenbases");
  sm.def("has_lapack", &certkit::spectral::has_lapack,
         "True when a LAPACK was found at build time and loads at run time (loads it on first call)");
  sm.def("lapack_info", &certkit::spectral::lapack_info, "'yes (library, OpenBLAS core)' or 'no (reason)'");
  sm.def("_set_lanczos_safe_mode", &certkit::spectral::set_lanczos_safe_mode, py::arg("on"),
         "testing switch: True forces the truncated solver's safe path (shift below the spectrum, "
         "full reorthogonalisation at every Lanczos step)");
  sm.def(
      "_set_factor_mode",
      [](const std::string& mode) {
        if (mode == "auto")
          certkit::spectral::set_factor_mode(0);
        else if (mode == "envelope")
          certkit::spectral::set_factor_mode(1);
        else if (mode == "supernodal")
          certkit::spectral::set_factor_mode(2);
        else
          throw py::value_error("mode: expected 'auto', 'envelope' or 'supernodal'");
      },
      py::arg("mode"),
      "testing switch: the truncated solver's factor ('auto' picks by envelope size)");
  sm.def(
      "_shift_factor_solve",
      [](IArr indptr, IArr indices, Arr data, double shift, Arr b, const std::string& mode) {
        Csr L = csr_from(indptr, indices, data);
        if (b.ndim() != 1 || b.shape(0) != L.n) throw py::value_error("b: expected shape (n,)");
        const int md = mode == "envelope" ? 1 : mode == "supernodal" ? 2 : 0;
        if (md == 0) throw py::value_error("mode: expected 'envelope' or 'supernodal'");
        py::array_t<double> x(L.n);
        std::memcpy(x.mutable_data(), b.data(), sizeof(double) * static_cast<size_t>(L.n));
        const int64_t neg = certkit::spectral::shift_factor_solve(L, shift, md, x.mutable_data());
        return py::make_tuple(x, neg);
      },
      py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("shift"), py::arg("b"), py::arg("mode"),
      "testing hook: (A + shift I)^{-1} b through the truncated solver's factor, and its "
      "count of negative pivots");
  sm.def("_set_lapack_enabled", &certkit::spectral::set_lapack_enabled, py::arg("on"),
         "testing switch: False forces the own dense / Krylov kernels");
  sm.def(
      "knn",
      [](Arr points, int64_t k) {
        if (points.ndim() != 3 || points.shape(2) != 3) throw py::value_error("points: expected shape (B, N, 3)");
        const int64_t B = points.shape(0), N = points.shape(1);
        if (k < 1 || k >= N) throw py::value_error("k: expected 1 <= k < number of points");
        check_finite(points.data(), points.size(), "points");
        py::array_t<int64_t> idx({B, N, k});
        py::array_t<double> d2({B, N, k});
        const double* p = points.data();
        int64_t* ip = idx.mutable_data();
        double* dp = d2.mutable_data();
        {
          py::gil_scoped_release nogil;
          if (B == 1) {
            certkit::spectral::knn(p, N, k, ip, dp);
          } else {
            certkit::parallel_for(B, 1, [&](int64_t b, int64_t e) {
              for (int64_t i = b; i < e; ++i)
                certkit::spectral::knn(p + i * N * 3, N, k, ip + i * N * k, dp + i * N * k);
            });
          }
        }
        return py::make_tuple(idx, d2);
      },
      py::arg("points"), py::arg("k"), "kNN (excluding self) for (B, N, 3) points -> idx (B,N,k), d2 (B,N,k)");
  sm.def(
      "laplacian",
      [](IArr idx, Arr d2, const std::string& weight, double sigma, bool normalized) {
        certkit::require_ndim(idx, 2, "idx");
        certkit::require_ndim(d2, 2, "d2");
        if (idx.shape(0) != d2.shape(0) || idx.shape(1) != d2.shape(1)) throw py::value_error("d2: shape differs from idx");
        const int64_t N = idx.shape(0), k = idx.shape(1);
        check_finite(d2.data(), d2.size(), "d2");
        const int wc = weight_code(weight);
        Csr L;
        {
          py::gil_scoped_release nogil;
          L = certkit::spectral::laplacian(idx.data(), d2.data(), N, k, wc, sigma, normalized);
        }
        return csr_out(L);
      },
      py::arg("idx"), py::arg("d2"), py::arg("weight") = "binary", py::arg("sigma") = 0.0,
      py::arg("normalized") = false);
  sm.def(
      "eigh_dense",
      [](Arr A) {
        if (A.ndim() != 2 || A.shape(0) != A.shape(1)) throw py::value_error("a: expected a square (n, n) matrix");
        const int64_t n = A.shape(0);
        if (n < 1) throw py::value_error("a: empty matrix");
        check_finite(A.data(), A.size(), "a");
        py::array_t<double> w(n), V({n, n});
        const double* a = A.data();
        double* wp = w.mutable_data();
        double* vp = V.mutable_data();
        certkit::spectral::has_lapack();  // first call loads LAPACK, with the GIL held
        {
          py::gil_scoped_release nogil;
          certkit::spectral::eigh_dense(a, n, wp, vp);
        }
        return py::make_tuple(w, V);
      },
      py::arg("a"));
  sm.def(
      "eigh_truncated",
      [](IArr indptr, IArr indices, Arr data, int64_t mm) {
        Csr L = csr_from(indptr, indices, data);
        if (mm < 1 || mm > L.n) throw py::value_error("m: expected 1 <= m <= n");
        py::array_t<double> w(mm), V({L.n, mm});
        double* wp = w.mutable_data();
        double* vp = V.mutable_data();
        int64_t steps;
        certkit::spectral::has_lapack();
        {
          py::gil_scoped_release nogil;
          steps = certkit::spectral::eigh_truncated(L, mm, wp, vp);
        }
        return py::make_tuple(w, V, steps);
      },
      py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("m"));
  sm.def(
      "basis",
      [](Arr points, int64_t k, int64_t mm, const std::string& weight, double sigma, bool normalized) {
        if (points.ndim() != 3 || points.shape(2) != 3) throw py::value_error("points: expected shape (B, N, 3)");
        const int64_t B = points.shape(0), N = points.shape(1);
        if (k < 1 || k >= N) throw py::value_error("k: expected 1 <= k < number of points");
        if (mm < 1 || mm > N) throw py::value_error("m: expected 1 <= m <= number of points");
        check_finite(points.data(), points.size(), "points");
        const int wc = weight_code(weight);
        py::array_t<double> w({B, mm}), V({B, N, mm});
        const double* p = points.data();
        double* wp = w.mutable_data();
        double* vp = V.mutable_data();
        std::vector<std::string> errs(B);
        certkit::spectral::has_lapack();
        {
          py::gil_scoped_release nogil;
          certkit::parallel_for(B, 1, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
              try {
                std::vector<int64_t> idx(N * k);
                std::vector<double> d2(N * k);
                certkit::spectral::knn(p + i * N * 3, N, k, idx.data(), d2.data());
                const Csr L = certkit::spectral::laplacian(idx.data(), d2.data(), N, k, wc, sigma, normalized);
                if (mm == N) {
                  std::vector<double> D(static_cast<size_t>(N) * N, 0.0);
                  for (int64_t r = 0; r < N; ++r)
                    for (int64_t t = L.indptr[r]; t < L.indptr[r + 1]; ++t) D[r * N + L.indices[t]] = L.data[t];
                  certkit::spectral::eigh_dense(D.data(), N, wp + i * mm, vp + i * N * mm);
                } else {
                  certkit::spectral::eigh_truncated(L, mm, wp + i * mm, vp + i * N * mm);
                }
              } catch (const std::exception& ex) {
                errs[i] = ex.what();
              }
            }
          });
        }
        for (int64_t i = 0; i < B; ++i)
          if (!errs[i].empty()) throw py::value_error("points[" + std::to_string(i) + "]: " + errs[i]);
        return py::make_tuple(w, V);
      },
      py::arg("points"), py::arg("k"), py::arg("m"), py::arg("weight") = "binary", py::arg("sigma") = 0.0,
      py::arg("normalized") = false);
}
