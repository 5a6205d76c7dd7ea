// Python bindings of the certificate statistics (submodule _core.stats). User-facing argument
// checks live in certkit/core/stats.py; these checks only guard the buffers. Every kernel
// runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "common/buffers.h"
#include "certkit/stats.h"

namespace py = pybind11;
namespace cs = certkit::stats;

namespace {
constexpr auto kIn = py::array::c_style | py::array::forcecast;
using F64 = py::array_t<double, kIn>;
using I64 = py::array_t<int64_t, kIn>;

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// n must hold one element (shared by every k) or exactly as many as k.
bool n_is_scalar(const I64& k, const I64& n) {
  if (n.size() == 1) return true;
  if (n.size() != k.size()) {
    throw py::value_error("n: expected one value or as many values as k (" +
                          std::to_string(k.size()) + "), got " + std::to_string(n.size()));
  }
  return false;
}

template <class Fn>
F64 map_f64(const F64& in, Fn&& fn) {
  F64 out(shape_of(in));
  const double* src = in.data();
  double* dst = out.mutable_data();
  const int64_t N = in.size();
  {
    py::gil_scoped_release nogil;
    fn(src, N, dst);
  }
  return out;
}
}  // namespace

void certkit_bind_stats(py::module_& m) {
  auto sm = m.def_submodule("stats", "certificate statistics (normal, incomplete beta, Clopper-Pearson, binomial test)");
  sm.def(
      "norm_cdf", [](F64 x) { return map_f64(x, cs::norm_cdf_array); }, py::arg("x"));
  sm.def(
      "norm_ppf", [](F64 p) { return map_f64(p, cs::norm_ppf_array); }, py::arg("p"));
  sm.def(
      "certified_radius",
      [](F64 p, double sigma) {
        return map_f64(p, [sigma](const double* s, int64_t N, double* d) {
          cs::certified_radius_array(s, N, sigma, d);
        });
      },
      py::arg("p_lower"), py::arg("sigma"));
  sm.def(
      "clopper_pearson",
      [](I64 k, I64 n, double alpha, int side) {
        if (side < 0 || side > 2) throw py::value_error("side: expected 0 (lower), 1 (upper) or 2 (two-sided)");
        if (!(alpha > 0.0 && alpha < 1.0)) throw py::value_error("alpha: expected a value in (0, 1)");
        const bool scalar = n_is_scalar(k, n);
        auto shape = shape_of(k);
        if (side == 2) shape.push_back(2);
        F64 out(shape);
        const int64_t* kp = k.data();
        const int64_t* np_ = n.data();
        double* o = out.mutable_data();
        const int64_t N = k.size();
        int64_t bad;
        {
          py::gil_scoped_release nogil;
          bad = cs::clopper_pearson_array(kp, np_, N, scalar, alpha, cs::Side(side), o);
        }
        if (bad) throw py::value_error("k, n: " + std::to_string(bad) + " pairs outside 0 <= k <= n, n >= 1");
        return out;
      },
      py::arg("k"), py::arg("n"), py::arg("alpha"), py::arg("side"));
  sm.def(
      "binom_test_two_sided",
      [](I64 k, I64 n, double p) {
        if (!(p >= 0.0 && p <= 1.0)) throw py::value_error("p: expected a value in [0, 1]");
        const bool scalar = n_is_scalar(k, n);
        F64 out(shape_of(k));
        const int64_t* kp = k.data();
        const int64_t* np_ = n.data();
        double* o = out.mutable_data();
        const int64_t N = k.size();
        int64_t bad;
        {
          py::gil_scoped_release nogil;
          bad = cs::binom_test_array(kp, np_, N, scalar, p, o);
        }
        if (bad) throw py::value_error("k, n: " + std::to_string(bad) + " pairs outside 0 <= k <= n, n >= 1");
        return out;
      },
      py::arg("k"), py::arg("n"), py::arg("p"));

  // ---- internals exposed for tests and benchmarks (1-D arrays of equal length) ----------
  sm.def(
      "_ibeta",
      [](F64 a, F64 b, F64 x) {
        const int64_t N = a.size();
        certkit::require_same_size(b, N, "b");
        certkit::require_same_size(x, N, "x");
        F64 lo(N), up(N);
        py::array_t<int32_t> it(N);
        const double *pa = a.data(), *pb = b.data(), *px = x.data();
        double *pl = lo.mutable_data(), *pu = up.mutable_data();
        int32_t* pi = it.mutable_data();
        for (int64_t i = 0; i < N; ++i) {
          if (!(pa[i] >= 1.0 && pb[i] >= 1.0 && px[i] >= 0.0 && px[i] <= 1.0))
            throw py::value_error("_ibeta: expected a, b >= 1 and 0 <= x <= 1");
        }
        {
          py::gil_scoped_release nogil;
          for (int64_t i = 0; i < N; ++i) pi[i] = cs::ibeta(pa[i], pb[i], px[i], 1.0 - px[i], &pl[i], &pu[i]);
        }
        return py::make_tuple(lo, up, it);
      },
      py::arg("a"), py::arg("b"), py::arg("x"));
  sm.def(
      "_log_beta_prefactor",
      [](F64 a, F64 b, F64 x) {
        const int64_t N = a.size();
        certkit::require_same_size(b, N, "b");
        certkit::require_same_size(x, N, "x");
        F64 out(N);
        for (int64_t i = 0; i < N; ++i)
          out.mutable_data()[i] = cs::log_beta_prefactor(a.data()[i], b.data()[i], x.data()[i], 1.0 - x.data()[i]);
        return out;
      },
      py::arg("a"), py::arg("b"), py::arg("x"));
  sm.def(
      "_beta_quantile",
      [](F64 a, F64 b, F64 P, F64 Q) {
        const int64_t N = a.size();
        certkit::require_same_size(b, N, "b");
        certkit::require_same_size(P, N, "P");
        certkit::require_same_size(Q, N, "Q");
        F64 out(N);
        py::array_t<int32_t> ev(N);
        for (int64_t i = 0; i < N; ++i) {
          if (!(a.data()[i] >= 1.0 && b.data()[i] >= 1.0 && P.data()[i] > 0.0 && Q.data()[i] > 0.0))
            throw py::value_error("_beta_quantile: expected a, b >= 1 and P, Q > 0");
        }
        for (int64_t i = 0; i < N; ++i) {
          int e = 0;
          out.mutable_data()[i] = cs::beta_quantile(a.data()[i], b.data()[i], P.data()[i], Q.data()[i], &e);
          ev.mutable_data()[i] = e;
        }
        return py::make_tuple(out, ev);
      },
      py::arg("a"), py::arg("b"), py::arg("P"), py::arg("Q"));
  sm.def(
      "_binom",
      [](I64 k, I64 n, double p) {
        const int64_t N = k.size();
        certkit::require_same_size(n, N, "n");
        F64 pmf(N), cdf(N), sf(N);
        for (int64_t i = 0; i < N; ++i) {
          pmf.mutable_data()[i] = cs::binom_pmf(k.data()[i], n.data()[i], p);
          cdf.mutable_data()[i] = cs::binom_cdf(k.data()[i], n.data()[i], p);
          sf.mutable_data()[i] = cs::binom_sf(k.data()[i], n.data()[i], p);
        }
        return py::make_tuple(pmf, cdf, sf);
      },
      py::arg("k"), py::arg("n"), py::arg("p"));
}
