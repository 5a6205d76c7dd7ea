// CPU kernels for certkit.core.bounds (see bounds.h). Derivations follow the torch layer
// (certkit/core/bounds/ops.py): CROWN backward pass (Zhang et al. 2018, arXiv:1811.00866)
// with the adaptive lower ReLU slope, lower bounds only (upper = -lower(-C)).
#include "bounds/bounds.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/parallel.h"

namespace certkit {
namespace bounds {
namespace {

template <class T>
using Vec = std::vector<T>;

inline bool in_parallel() {
#if defined(_OPENMP)
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// out (R, n_in) = A (R, n_out) @ W (n_out, n_in); bias (R) += A @ b.
template <class T>
void dense_backward(const Layer<T>& L, const T* A, int64_t R, T* out, T* bias) {
  const int64_t no = L.n_out, ni = L.n_in;
  auto block = [&](int64_t rb, int64_t re) {
    for (int64_t r0 = rb; r0 < re; r0 += 4) {
      const int64_t nr = std::min<int64_t>(4, re - r0);
      T* o0 = out + r0 * ni;
      std::memset(o0, 0, sizeof(T) * nr * ni);
      if (nr == 4) {
        T* o1 = o0 + ni; T* o2 = o1 + ni; T* o3 = o2 + ni;
        const T* a0 = A + r0 * no; const T* a1 = a0 + no; const T* a2 = a1 + no; const T* a3 = a2 + no;
        for (int64_t i = 0; i < no; ++i) {
          const T c0 = a0[i], c1 = a1[i], c2 = a2[i], c3 = a3[i];
          if (c0 == 0 && c1 == 0 && c2 == 0 && c3 == 0) continue;
          const T* w = L.W + i * ni;
#pragma omp simd
          for (int64_t j = 0; j < ni; ++j) {
            const T wj = w[j];
            o0[j] += c0 * wj; o1[j] += c1 * wj; o2[j] += c2 * wj; o3[j] += c3 * wj;
          }
        }
      } else {
        for (int64_t r = 0; r < nr; ++r) {
          const T* a = A + (r0 + r) * no;
          T* o = o0 + r * ni;
          for (int64_t i = 0; i < no; ++i) {
            const T c = a[i];
            if (c == 0) continue;
            const T* w = L.W + i * ni;
#pragma omp simd
            for (int64_t j = 0; j < ni; ++j) o[j] += c * w[j];
          }
        }
      }
      if (L.b) {
        for (int64_t r = 0; r < nr; ++r) {
          const T* a = A + (r0 + r) * no;
          T s = 0;
          for (int64_t i = 0; i < no; ++i) s += a[i] * L.b[i];
          bias[r0 + r] += s;
        }
      }
    }
  };
  if (!in_parallel() && R >= 8) {
    const int64_t nb = (R + 3) / 4;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nb; ++k) block(k * 4, std::min(R, k * 4 + 4));
  } else {
    block(0, R);
  }
}

template <class T>
void conv_backward(const Layer<T>& L, const T* A, int64_t R, T* out, T* bias) {
  const int64_t no = L.n_out, ni = L.n_in, khw = L.kh * L.kw;
  auto row = [&](int64_t r) {
    const T* a = A + r * no;
    T* o = out + r * ni;
    std::fill(o, o + ni, T(0));
    T bs = 0;
    for (int64_t co = 0; co < L.Co; ++co) {
      T csum = 0;
      for (int64_t oy = 0; oy < L.Ho; ++oy) {
        for (int64_t ox = 0; ox < L.Wo; ++ox) {
          const T c = a[(co * L.Ho + oy) * L.Wo + ox];
          if (c == 0) continue;
          csum += c;
          for (int64_t ci = 0; ci < L.Ci; ++ci) {
            const T* w = L.W + (co * L.Ci + ci) * khw;
            T* oc = o + ci * L.Hi * L.Wi;
            for (int64_t ky = 0; ky < L.kh; ++ky) {
              const int64_t iy = oy * L.sh - L.ph + ky;
              if (iy < 0 || iy >= L.Hi) continue;
              for (int64_t kx = 0; kx < L.kw; ++kx) {
                const int64_t ix = ox * L.sw - L.pw + kx;
                if (ix < 0 || ix >= L.Wi) continue;
                oc[iy * L.Wi + ix] += c * w[ky * L.kw + kx];
              }
            }
          }
        }
      }
      if (L.b) bs += csum * L.b[co];
    }
    bias[r] += bs;
  };
  if (!in_parallel() && R >= 2) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r) row(r);
  } else {
    for (int64_t r = 0; r < R; ++r) row(r);
  }
}

// ReLU backward for lower bounds: A (R, n) in place; pre-activation bounds l, u.
template <class T>
void relu_backward(const T* l, const T* u, int64_t n, T* A, int64_t R, T* bias) {
  Vec<T> ud(n), ubv(n), ld(n);
  for (int64_t j = 0; j < n; ++j) {
    const T lr = std::min(l[j], T(0));
    T ur = std::max(u[j], T(0));
    ur = std::max(ur, lr + T(1e-8));
    ud[j] = ur / (ur - lr);
    ubv[j] = -lr * ud[j];
    ld[j] = ud[j] > T(0.5) ? T(1) : T(0);
  }
  for (int64_t r = 0; r < R; ++r) {
    T* a = A + r * n;
    T s = 0;
    for (int64_t j = 0; j < n; ++j) {
      const T c = a[j];
      if (c >= 0) {
        a[j] = c * ld[j];
      } else {
        a[j] = c * ud[j];
        s += c * ubv[j];
      }
    }
    bias[r] += s;
  }
}

template <class T>
void ibp_layer(const Layer<T>& L, const T* lo, const T* hi, T* olo, T* ohi) {
  if (L.kind == kReLU) {
    for (int64_t j = 0; j < L.n_in; ++j) {
      olo[j] = std::max(lo[j], T(0));
      ohi[j] = std::max(hi[j], T(0));
    }
    return;
  }
  Vec<T> mid(L.n_in), rad(L.n_in);
  for (int64_t j = 0; j < L.n_in; ++j) {
    mid[j] = (hi[j] + lo[j]) / 2;
    rad[j] = (hi[j] - lo[j]) / 2;
  }
  if (L.kind == kDense) {
    for (int64_t i = 0; i < L.n_out; ++i) {
      const T* w = L.W + i * L.n_in;
      T c = 0, d = 0;
#pragma omp simd reduction(+ : c, d)
      for (int64_t j = 0; j < L.n_in; ++j) {
        c += w[j] * mid[j];
        d += std::abs(w[j]) * rad[j];
      }
      if (L.b) c += L.b[i];
      olo[i] = c - d;
      ohi[i] = c + d;
    }
    return;
  }
  const int64_t khw = L.kh * L.kw;
  for (int64_t co = 0; co < L.Co; ++co) {
    for (int64_t oy = 0; oy < L.Ho; ++oy) {
      for (int64_t ox = 0; ox < L.Wo; ++ox) {
        T c = 0, d = 0;
        for (int64_t ci = 0; ci < L.Ci; ++ci) {
          const T* w = L.W + (co * L.Ci + ci) * khw;
          const T* m = mid.data() + ci * L.Hi * L.Wi;
          const T* rr = rad.data() + ci * L.Hi * L.Wi;
          for (int64_t ky = 0; ky < L.kh; ++ky) {
            const int64_t iy = oy * L.sh - L.ph + ky;
            if (iy < 0 || iy >= L.Hi) continue;
            for (int64_t kx = 0; kx < L.kw; ++kx) {
              const int64_t ix = ox * L.sw - L.pw + kx;
              if (ix < 0 || ix >= L.Wi) continue;
              const T wv = w[ky * L.kw + kx];
              c += wv * m[iy * L.Wi + ix];
              d += std::abs(wv) * rr[iy * L.Wi + ix];
            }
          }
        }
        if (L.b) c += L.b[co];
        const int64_t o = (co * L.Ho + oy) * L.Wo + ox;
        olo[o] = c - d;
        ohi[o] = c + d;
      }
    }
  }
}

// Lower bound of A (R, n_out of layer t) · output(t) over the input box. bnd[k] holds
// (lo, hi) of the input of layer k (bnd[0] = the input box).
template <class T>
void crown_backward(const std::vector<Layer<T>>& layers, const Vec<Vec<T>>& blo, const Vec<Vec<T>>& bhi,
                    int64_t t, Vec<T> A, int64_t R, T* result) {
  Vec<T> bias(R, T(0)), next;
  for (int64_t k = t; k >= 0; --k) {
    const Layer<T>& L = layers[k];
    if (L.kind == kReLU) {
      relu_backward(blo[k].data(), bhi[k].data(), L.n_in, A.data(), R, bias.data());
      continue;
    }
    next.assign(R * L.n_in, T(0));
    if (L.kind == kDense) dense_backward(L, A.data(), R, next.data(), bias.data());
    else conv_backward(L, A.data(), R, next.data(), bias.data());
    A.swap(next);
  }
  const int64_t n0 = layers[0].n_in;
  const T* lo = blo[0].data();
  const T* hi = bhi[0].data();
  for (int64_t r = 0; r < R; ++r) {
    const T* a = A.data() + r * n0;
    T c = 0, d = 0;
#pragma omp simd reduction(+ : c, d)
    for (int64_t j = 0; j < n0; ++j) {
      c += a[j] * ((hi[j] + lo[j]) / 2);
      d += std::abs(a[j]) * ((hi[j] - lo[j]) / 2);
    }
    result[r] = bias[r] + c - d;
  }
}

template <class T>
void one_example(const std::vector<Layer<T>>& layers, const T* lo, const T* hi, const T* C, int64_t S,
                 int method, T* out_lo, T* out_hi) {
  const int64_t nl = static_cast<int64_t>(layers.size());
  const int64_t K = layers.back().n_out;
  Vec<Vec<T>> blo(nl + 1), bhi(nl + 1);
  blo[0].assign(lo, lo + layers[0].n_in);
  bhi[0].assign(hi, hi + layers[0].n_in);
  const bool merge_last = method == 0 && layers.back().kind == kDense;
  const int64_t upto = merge_last ? nl - 1 : nl;
  for (int64_t k = 0; k < upto; ++k) {
    const Layer<T>& L = layers[k];
    blo[k + 1].resize(L.n_out);
    bhi[k + 1].resize(L.n_out);
    ibp_layer(L, blo[k].data(), bhi[k].data(), blo[k + 1].data(), bhi[k + 1].data());
    // CROWN intermediate bounds: an affine layer (not the first) feeding a ReLU
    if (method == 1 && k >= 1 && L.kind != kReLU && k + 1 < nl && layers[k + 1].kind == kReLU) {
      std::vector<int64_t> rows;
      for (int64_t j = 0; j < L.n_out; ++j)
        if (blo[k + 1][j] < 0 && bhi[k + 1][j] > 0) rows.push_back(j);
      const int64_t m = static_cast<int64_t>(rows.size());
      if (m > 0) {
        Vec<T> A(2 * m * L.n_out, T(0));
        for (int64_t r = 0; r < m; ++r) {
          A[r * L.n_out + rows[r]] = T(1);
          A[(m + r) * L.n_out + rows[r]] = T(-1);
        }
        Vec<T> res(2 * m);
        crown_backward(layers, blo, bhi, k, std::move(A), 2 * m, res.data());
        for (int64_t r = 0; r < m; ++r) {
          const int64_t j = rows[r];
          blo[k + 1][j] = std::max(blo[k + 1][j], res[r]);
          bhi[k + 1][j] = std::min(bhi[k + 1][j], -res[m + r]);
        }
      }
    }
  }
  if (method == 0) {
    if (merge_last) {
      const Layer<T>& L = layers.back();
      const T* l = blo[nl - 1].data();
      const T* h = bhi[nl - 1].data();
      const int64_t ni = L.n_in;
      Vec<T> w(ni), mid(ni), rad(ni);
      for (int64_t j = 0; j < ni; ++j) {
        mid[j] = (h[j] + l[j]) / 2;
        rad[j] = (h[j] - l[j]) / 2;
      }
      for (int64_t s = 0; s < S; ++s) {
        std::fill(w.begin(), w.end(), T(0));
        T bb = 0;
        for (int64_t i = 0; i < K; ++i) {
          const T c = C[s * K + i];
          if (c == 0) continue;
          const T* wr = L.W + i * ni;
          for (int64_t j = 0; j < ni; ++j) w[j] += c * wr[j];
          if (L.b) bb += c * L.b[i];
        }
        T c = 0, d = 0;
        for (int64_t j = 0; j < ni; ++j) {
          c += w[j] * mid[j];
          d += std::abs(w[j]) * rad[j];
        }
        out_lo[s] = bb + c - d;
        out_hi[s] = bb + c + d;
      }
    } else {
      const T* l = blo[nl].data();
      const T* h = bhi[nl].data();
      for (int64_t s = 0; s < S; ++s) {
        T a = 0, b = 0;
        for (int64_t i = 0; i < K; ++i) {
          const T c = C[s * K + i];
          a += c >= 0 ? c * l[i] : c * h[i];
          b += c >= 0 ? c * h[i] : c * l[i];
        }
        out_lo[s] = a;
        out_hi[s] = b;
      }
    }
    return;
  }
  Vec<T> A(2 * S * K);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = 0; i < K; ++i) {
      A[s * K + i] = C[s * K + i];
      A[(S + s) * K + i] = -C[s * K + i];
    }
  Vec<T> res(2 * S);
  crown_backward(layers, blo, bhi, nl - 1, std::move(A), 2 * S, res.data());
  for (int64_t s = 0; s < S; ++s) {
    out_lo[s] = res[s];
    out_hi[s] = -res[S + s];
  }
}

}  // namespace

template <class T>
void compute(const std::vector<Layer<T>>& layers, const T* lo, const T* hi, const T* C, int64_t B,
             int64_t S, int method, T* out_lo, T* out_hi) {
  const int64_t n0 = layers.front().n_in, K = layers.back().n_out;
  const bool outer = B >= 2 && B >= max_threads();
#pragma omp parallel for schedule(dynamic) if (outer)
  for (int64_t b = 0; b < B; ++b) {
    one_example(layers, lo + b * n0, hi + b * n0, C + b * S * K, S, method, out_lo + b * S, out_hi + b * S);
  }
}

template void compute<float>(const std::vector<Layer<float>>&, const float*, const float*, const float*,
                             int64_t, int64_t, int, float*, float*);
template void compute<double>(const std::vector<Layer<double>>&, const double*, const double*,
                              const double*, int64_t, int64_t, int, double*, double*);

}  // namespace bounds
}  // namespace certkit
