#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "certkit/bounds.h"
#include "common/buffers.h"

namespace py = pybind11;

namespace {

template <class T>
py::tuple run(const py::list& spec, const py::array& lo_a, const py::array& hi_a, const py::array& C_a,
              int method) {
  using Arr = py::array_t<T, py::array::c_style>;
  std::vector<Arr> keep;
  std::vector<Arr> keep_ibp;
  std::vector<certkit::bounds::Layer<T>> layers;
  int64_t n = -1;
  for (const auto& item : spec) {
    py::tuple t = py::reinterpret_borrow<py::tuple>(item);
    if (t.size() != 4 && t.size() != 5)
      throw py::value_error("layers: each layer is (kind, W, b, meta[, ibp])");
    certkit::bounds::Layer<T> L;
    L.kind = t[0].cast<int>();
    auto meta = t[3].cast<py::array_t<int64_t, py::array::c_style | py::array::forcecast>>();
    if (meta.size() != 14) throw py::value_error("layers: meta must hold 14 integers");
    const int64_t* m = meta.data();
    L.n_in = m[0]; L.n_out = m[1];
    L.Ci = m[2]; L.Hi = m[3]; L.Wi = m[4]; L.Co = m[5]; L.Ho = m[6]; L.Wo = m[7];
    L.kh = m[8]; L.kw = m[9]; L.sh = m[10]; L.sw = m[11]; L.ph = m[12]; L.pw = m[13];
    if (L.n_in <= 0 || L.n_out <= 0) throw py::value_error("layers: sizes must be positive");
    if (n >= 0 && L.n_in != n) throw py::value_error("layers: consecutive sizes do not match");
    n = L.n_out;
    if (L.kind == certkit::bounds::kDense || L.kind == certkit::bounds::kConv2d) {
      Arr W = t[1].cast<Arr>();
      const int64_t expect = L.kind == certkit::bounds::kDense ? L.n_in * L.n_out : L.Co * L.Ci * L.kh * L.kw;
      certkit::require_same_size(W, expect, "layers: W");
      if (L.kind == certkit::bounds::kConv2d &&
          (L.Ci * L.Hi * L.Wi != L.n_in || L.Co * L.Ho * L.Wo != L.n_out))
        throw py::value_error("layers: conv geometry does not match sizes");
      keep.push_back(W);
      L.W = keep.back().data();
      if (!t[2].is_none()) {
        Arr b = t[2].cast<Arr>();
        certkit::require_same_size(b, L.kind == certkit::bounds::kDense ? L.n_out : L.Co, "layers: b");
        keep.push_back(b);
        L.b = keep.back().data();
      }
      if (t.size() == 5 && !t[4].is_none()) {
        Arr P = t[4].cast<Arr>();
        const int64_t K = L.kind == certkit::bounds::kDense ? L.n_in : L.Ci * L.kh * L.kw;
        const int64_t N = L.kind == certkit::bounds::kDense ? L.n_out : L.Co;
        if (P.ndim() != 3 || P.shape(0) != (N + 15) / 16 || P.shape(1) != K + 1 || P.shape(2) != 16)
          throw py::value_error("layers: ibp must be (ceil(N/16), K+1, 16)");
        keep_ibp.push_back(P);
        L.ibp = keep_ibp.back().data();
      }
    } else if (L.kind == certkit::bounds::kReLU) {
      if (L.n_in != L.n_out) throw py::value_error("layers: ReLU sizes differ");
    } else {
      throw py::value_error("layers: unknown kind " + std::to_string(L.kind));
    }
    layers.push_back(L);
  }
  if (layers.empty()) throw py::value_error("layers: empty");
  Arr lo = lo_a.cast<Arr>(), hi = hi_a.cast<Arr>(), C = C_a.cast<Arr>();
  certkit::require_ndim(lo, 2, "x_L");
  certkit::require_ndim(hi, 2, "x_U");
  certkit::require_ndim(C, 3, "C");
  const int64_t B = lo.shape(0), S = C.shape(1);
  if (lo.shape(1) != layers.front().n_in || hi.shape(0) != B || hi.shape(1) != lo.shape(1))
    throw py::value_error("x_L, x_U: shape does not match the first layer");
  if (C.shape(0) != B || C.shape(2) != layers.back().n_out)
    throw py::value_error("C: expected (B, S, K)");
  if (method < 0 || method > 2) throw py::value_error("method: expected 0, 1 or 2");
  Arr out_lo({B, S}), out_hi({B, S});
  const T* plo = lo.data();
  const T* phi = hi.data();
  const T* pC = C.data();
  T* ol = out_lo.mutable_data();
  T* oh = out_hi.mutable_data();
  {
    py::gil_scoped_release nogil;
    certkit::bounds::compute<T>(layers, plo, phi, pC, B, S, method, ol, oh);
  }
  return py::make_tuple(out_lo, out_hi);
}

// The fused ReLU rule (relu_rule.cpp) on arrays the caller allocated (torch tensors' numpy
// views): every array must already have the dtype and C order (no silent copy of an output).
template <class T>
const T* ro(const py::array& a, int64_t size, const char* name) {
  if (!a.dtype().is(py::dtype::of<T>()) || !(a.flags() & py::array::c_style) || a.size() != size)
    throw py::value_error(std::string(name) + ": expected a C-contiguous array of " + std::to_string(size) +
                          " elements of the rows' dtype");
  return static_cast<const T*>(a.data());
}

template <class T>
T* rw(py::array& a, int64_t size, const char* name) {
  ro<T>(a, size, name);
  if (!a.writeable()) throw py::value_error(std::string(name) + ": not writeable");
  return static_cast<T*>(a.mutable_data());
}

const int64_t* idx(const py::array& a, int64_t size, const char* name) {
  if (!a.dtype().is(py::dtype::of<int64_t>()) || !(a.flags() & py::array::c_style) || a.size() != size)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(size) + " contiguous int64");
  return static_cast<const int64_t*>(a.data());
}

template <class T>
void relu_patches_t(const py::array& P, const py::array& rel, const py::array& ex, const py::array& hr,
                    const py::array& wr, py::array& A, py::array& bias, int64_t H, int64_t W, int64_t Sh,
                    int64_t Sw, int64_t Ph, int64_t Pw, int nthreads) {
  if (P.ndim() != 4 || rel.ndim() != 5) throw py::value_error("P, rel: expected (R, Kh, Kw, C) and (E, 3, H, W, C)");
  const int64_t R = P.shape(0), Kh = P.shape(1), Kw = P.shape(2), C = P.shape(3), E = rel.shape(0);
  const int64_t k = hr.size();
  if (rel.shape(1) != 3 || rel.shape(2) != H || rel.shape(3) != W || rel.shape(4) != C || k <= 0 || R % k)
    throw py::value_error("rel, hr: shapes do not match the rows");
  const int64_t* e = idx(ex, R, "ex");
  for (int64_t r = 0; r < R; ++r)
    if (e[r] < 0 || e[r] >= E) throw py::value_error("ex: example index out of range");
  const T* pp = ro<T>(P, R * Kh * Kw * C, "P");
  const T* pr = ro<T>(rel, E * H * W * 3 * C, "rel");
  const int64_t* ph = idx(hr, k, "hr");
  const int64_t* pw = idx(wr, k, "wr");
  T* pa = rw<T>(A, R * Kh * Kw * C, "A");
  T* pb = rw<T>(bias, R, "bias");
  py::gil_scoped_release nogil;
  certkit::bounds::relu_patches<T>(pp, R, Kh, Kw, C, pr, H, W, e, ph, pw, k, Sh, Sw, Ph, Pw, pa, pb, nthreads);
}

template <class T>
void box_patches_t(const py::array& P, const py::array& box, const py::array& ex, const py::array& hr,
                   const py::array& wr, py::array& bias, int64_t Sh, int64_t Sw, int64_t Ph, int64_t Pw,
                   int nthreads) {
  if (P.ndim() != 4 || box.ndim() != 5) throw py::value_error("P, box: expected (R, Kh, Kw, C) and (E, 2, H, W, C)");
  const int64_t R = P.shape(0), Kh = P.shape(1), Kw = P.shape(2), C = P.shape(3), E = box.shape(0);
  const int64_t H = box.shape(2), W = box.shape(3), k = hr.size();
  if (box.shape(1) != 2 || box.shape(4) != C || k <= 0 || R % k)
    throw py::value_error("box, hr: shapes do not match the rows");
  const int64_t* e = idx(ex, R, "ex");
  for (int64_t r = 0; r < R; ++r)
    if (e[r] < 0 || e[r] >= E) throw py::value_error("ex: example index out of range");
  const T* pp = ro<T>(P, R * Kh * Kw * C, "P");
  const T* pbx = ro<T>(box, E * 2 * H * W * C, "box");
  const int64_t* ph = idx(hr, k, "hr");
  const int64_t* pw = idx(wr, k, "wr");
  T* pb = rw<T>(bias, R, "bias");
  py::gil_scoped_release nogil;
  certkit::bounds::box_patches<T>(pp, R, Kh, Kw, C, pbx, H, W, e, ph, pw, k, Sh, Sw, Ph, Pw, pb, nthreads);
}

}  // namespace

void certkit_bind_bounds(py::module_& m) {
  auto sm = m.def_submodule("bounds", "IBP / CROWN on Linear-Conv2d-ReLU chains");
  sm.def(
      "compute",
      [](const py::list& layers, const py::array& lo, const py::array& hi, const py::array& C, int method) {
        if (lo.dtype().is(py::dtype::of<float>())) return run<float>(layers, lo, hi, C, method);
        if (lo.dtype().is(py::dtype::of<double>())) return run<double>(layers, lo, hi, C, method);
        throw py::type_error("x_L: expected float32 or float64");
      },
      py::arg("layers"), py::arg("lo"), py::arg("hi"), py::arg("C"), py::arg("method"),
      "layers: list of (kind 0=dense 1=conv2d 2=relu, W, b|None, meta int64[14] = n_in, n_out, "
      "Ci, Hi, Wi, Co, Ho, Wo, kh, kw, sh, sw, ph, pw[, ibp]) with the optional cached IBP operands "
      "ibp (ceil(N/16), K+1, 16), same dtype: column panels of W^T plus a bias row "
      "(K = n_in or Ci*kh*kw, N = n_out or Co, zero padding; see bounds.h); lo, hi: (B, n0); C: (B, S, K); "
      "method 0=IBP 1=CROWN 2=CROWN-IBP. Returns (lower, upper), each (B, S).");
  sm.def(
      "relu_patches",
      [](const py::array& P, const py::array& rel, const py::array& ex, const py::array& hr, const py::array& wr,
         py::array& A, py::array& bias, int64_t H, int64_t W, int64_t Sh, int64_t Sw, int64_t Ph, int64_t Pw,
         int nthreads) {
        if (P.dtype().is(py::dtype::of<float>()))
          return relu_patches_t<float>(P, rel, ex, hr, wr, A, bias, H, W, Sh, Sw, Ph, Pw, nthreads);
        if (P.dtype().is(py::dtype::of<double>()))
          return relu_patches_t<double>(P, rel, ex, hr, wr, A, bias, H, W, Sh, Sw, Ph, Pw, nthreads);
        throw py::type_error("P: expected float32 or float64");
      },
      "CROWN ReLU rule on patches P (R, Kh, Kw, C) with the node relaxation rel (E, 3, H, W, C) "
      "(lower slope, upper slope, upper intercept), row examples ex (R,), window positions hr, wr (k,) "
      "(row r at r % k), stride (Sh, Sw), offset (Ph, Pw); writes A (R, Kh, Kw, C) and bias (R,).");
  sm.def(
      "box_patches",
      [](const py::array& P, const py::array& box, const py::array& ex, const py::array& hr, const py::array& wr,
         py::array& bias, int64_t Sh, int64_t Sw, int64_t Ph, int64_t Pw, int nthreads) {
        if (P.dtype().is(py::dtype::of<float>()))
          return box_patches_t<float>(P, box, ex, hr, wr, bias, Sh, Sw, Ph, Pw, nthreads);
        if (P.dtype().is(py::dtype::of<double>()))
          return box_patches_t<double>(P, box, ex, hr, wr, bias, Sh, Sw, Ph, Pw, nthreads);
        throw py::type_error("P: expected float32 or float64");
      },
      "l-inf concretisation of patches P (R, Kh, Kw, C) over the box (E, 2, H, W, C) (centre, radius), "
      "geometry as relu_patches; writes bias (R,) = sum P*mid - |P|*rad over the window inside the node.");
}
