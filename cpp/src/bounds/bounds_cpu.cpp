// CPU kernels for certkit.core.bounds (see bounds.h). Derivations follow the torch layer
// (certkit/core/bounds/ops.py): CROWN backward pass (Zhang et al. 2018, arXiv:1811.00866)
// with the adaptive lower ReLU slope, lower bounds only (upper = -lower(-C)).
#include "certkit/bounds.h"
#include "common/dispatch.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/blas.h"
#include "common/parallel.h"

namespace certkit {
namespace bounds {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)
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

// 64-byte vectors (GCC/Clang vector extension): 16 floats or 8 doubles. Forced width, so
// AVX-512 machines use zmm registers whatever the compiler's preferred width; elsewhere
// the compiler splits them into narrower ops.
template <class T>
struct Vec64;
template <>
struct Vec64<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct Vec64<double> {
  typedef double type __attribute__((vector_size(64)));
};

template <class T>
inline typename Vec64<T>::type loadu64(const T* p) {
  typename Vec64<T>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <class T>
inline void storeu64(T* p, const typename Vec64<T>::type& v) {
  std::memcpy(p, &v, sizeof(v));
}

// Register tile of dense_backward: 8 rows (a[r], rows >= nr repeat the last one and are
// not stored) x 2 vectors of columns from j0, accumulated over the non-zero coefficient
// columns nz (ReLU-inactive neurons give zero coefficients, skipped). 16 accumulators.
template <class T>
inline void dense_tile8(const T* W, int64_t ni, const T* const* a, int nr, const std::vector<int64_t>& nz,
                        int64_t j0, T* const* o) {
  typedef typename Vec64<T>::type V;
  constexpr int L = static_cast<int>(sizeof(V) / sizeof(T));
  V acc[8][2];
  for (int r = 0; r < 8; ++r) acc[r][0] = acc[r][1] = V{};
  for (const int64_t i : nz) {
    const T* w = W + i * ni + j0;
    const V w0 = loadu64(w), w1 = loadu64(w + L);
    for (int r = 0; r < 8; ++r) {
      const T c = a[r][i];
      acc[r][0] += c * w0;
      acc[r][1] += c * w1;
    }
  }
  for (int r = 0; r < nr; ++r) {
    storeu64(o[r] + j0, acc[r][0]);
    storeu64(o[r] + j0 + L, acc[r][1]);
  }
}

// ---- optional BLAS GEMM (run-time loaded, shared with the spectral ops: common/blas.h) --
// CERTKIT_BOUNDS_BLAS=0 (read per call) forces our own micro-kernel; without a BLAS the
// micro-kernel is used.
inline bool blas_enabled() {
  const char* v = std::getenv("CERTKIT_BOUNDS_BLAS");
  return v == nullptr || std::string(v) != "0";
}

// Column-major GEMM C (m, n) = A (m, k) @ B (k, n) through BLAS; false when unavailable.
inline bool gemm_cm(int m, int n, int k, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
  const blas::Lib& b = blas::lib();
  if (b.sgemm == nullptr) return false;
  const float one = 1, zero = 0;
  b.sgemm("N", "N", &m, &n, &k, &one, A, &lda, B, &ldb, &zero, C, &ldc);
  return true;
}
inline bool gemm_cm(int m, int n, int k, const double* A, int lda, const double* B, int ldb, double* C, int ldc) {
  const blas::Lib& b = blas::lib();
  if (b.dgemm == nullptr) return false;
  const double one = 1, zero = 0;
  b.dgemm("N", "N", &m, &n, &k, &one, A, &lda, B, &ldb, &zero, C, &ldc);
  return true;
}

// out (R, n_in) = A (R, n_out) @ W (n_out, n_in) by BLAS over the columns of A that are
// non-zero in some row (ReLU-inactive neurons are skipped by packing A and W). Row-major
// out^T = W^T A^T is column-major out = W_cm @ A_cm. False when BLAS is unavailable.
template <class T>
bool dense_backward_blas(const Layer<T>& L, const T* A, int64_t R, T* out) {
  const int64_t no = L.n_out, ni = L.n_in;
  if (!blas_enabled() || R < 16 || ni < 32 || R * no > (int64_t(1) << 30) || no * ni > (int64_t(1) << 30)) return false;
  std::vector<int64_t> nz;
  nz.reserve(no);
  for (int64_t i = 0; i < no; ++i) {
    bool any = false;
    for (int64_t r = 0; r < R && !any; ++r) any = A[r * no + i] != 0;
    if (any) nz.push_back(i);
  }
  const int64_t k = static_cast<int64_t>(nz.size());
  if (k == 0) {
    std::fill(out, out + R * ni, T(0));
    return true;
  }
  if (k * 4 >= no * 3) {  // dense enough: no packing
    return gemm_cm(static_cast<int>(ni), static_cast<int>(R), static_cast<int>(no), L.W, static_cast<int>(ni), A,
                   static_cast<int>(no), out, static_cast<int>(ni));
  }
  std::vector<T> Wp(k * ni), Ap(R * k);
  for (int64_t c = 0; c < k; ++c) std::memcpy(Wp.data() + c * ni, L.W + nz[c] * ni, sizeof(T) * ni);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < k; ++c) Ap[r * k + c] = A[r * no + nz[c]];
  return gemm_cm(static_cast<int>(ni), static_cast<int>(R), static_cast<int>(k), Wp.data(), static_cast<int>(ni),
                 Ap.data(), static_cast<int>(k), out, static_cast<int>(ni));
}

// out (R, n_in) = A (R, n_out) @ W (n_out, n_in); bias (R) += A @ b. Blocks of 8 rows: a
// register-tiled GEMM micro-kernel over the non-zero columns of A, scalar column tail.
template <class T>
void dense_backward(const Layer<T>& L, const T* A, int64_t R, T* out, T* bias) {
  const int64_t no = L.n_out, ni = L.n_in;
  constexpr int64_t JB = 2 * static_cast<int64_t>(sizeof(typename Vec64<T>::type) / sizeof(T));
  auto block = [&](int64_t rb, int64_t re) {
    std::vector<int64_t> nz;
    nz.reserve(no);
    for (int64_t r0 = rb; r0 < re; r0 += 8) {
      const int nr = static_cast<int>(std::min<int64_t>(8, re - r0));
      const T* a[8];
      T* o[8];
      for (int r = 0; r < 8; ++r) {
        const int64_t rr = r0 + std::min(r, nr - 1);
        a[r] = A + rr * no;
        o[r] = out + rr * ni;
      }
      nz.clear();
      for (int64_t i = 0; i < no; ++i) {
        bool any = false;
        for (int r = 0; r < nr; ++r) any = any || a[r][i] != 0;
        if (any) nz.push_back(i);
      }
      int64_t j0 = 0;
      for (; j0 + JB <= ni; j0 += JB) dense_tile8<T>(L.W, ni, a, nr, nz, j0, o);
      if (j0 < ni) {
        for (int r = 0; r < nr; ++r) {
          T* orow = o[r];
          for (int64_t j = j0; j < ni; ++j) orow[j] = 0;
          for (const int64_t i : nz) {
            const T c = a[r][i];
            const T* w = L.W + i * ni;
            for (int64_t j = j0; j < ni; ++j) orow[j] += c * w[j];
          }
        }
      }
      if (L.b) {
        for (int r = 0; r < nr; ++r) {
          T s = 0;
          for (const int64_t i : nz) s += a[r][i] * L.b[i];
          bias[r0 + r] += s;
        }
      }
    }
  };
  if (dense_backward_blas(L, A, R, out)) {
    if (L.b) {
      for (int64_t r = 0; r < R; ++r) {
        const T* a = A + r * no;
        T s = 0;
        for (int64_t i = 0; i < no; ++i) s += a[i] * L.b[i];
        bias[r] += s;
      }
    }
    return;
  }
  if (!in_parallel() && R >= 16) {
    const int64_t nb = (R + 7) / 8;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nb; ++k) block(k * 8, std::min(R, k * 8 + 8));
  } else {
    block(0, R);
  }
}

// Transposed convolution of one coefficient row, sparse form: a (Co, Ho, Wo) with few
// non-zeros (e.g. a unit vector pushed back through one conv): scatter each non-zero.
template <class T>
T conv_backward_sparse_row(const Layer<T>& L, const T* a, T* o) {
  const int64_t khw = L.kh * L.kw;
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
  return bs;
}

// Transposed convolution of one coefficient row, dense form (im2col-style GEMM + col2im):
// cols (K, Pp) = W^T (K, Co) @ a (Co, Pp) with K = Ci*kh*kw, P = Ho*Wo padded to Pp (a
// multiple of 16; the row is copied into apad (Co, Pp) with zeros after P), register-
// blocked as 8 k-rows x 16 columns accumulated over Co; then cols is scattered (col2im)
// into o (Ci, Hi, Wi). Scratch: apad (Co*Pp), cols (K*Pp).
template <class T>
T conv_backward_dense_row(const Layer<T>& L, const T* a, T* o, T* apad, T* cols) {
  constexpr int KB = 8, PB = 16;
  const int64_t K = L.Ci * L.kh * L.kw, P = L.Ho * L.Wo, Co = L.Co;
  const int64_t Pp = (P + PB - 1) / PB * PB;
  const T* W = L.W;  // (Co, K)
  T bs = 0;
  for (int64_t co = 0; co < Co; ++co) {
    const T* ar = a + co * P;
    T* pr = apad + co * Pp;
    T s = 0;
    for (int64_t p = 0; p < P; ++p) {
      pr[p] = ar[p];
      s += ar[p];
    }
    for (int64_t p = P; p < Pp; ++p) pr[p] = 0;
    if (L.b) bs += s * L.b[co];
  }
  int64_t k0 = 0;
  for (; k0 + KB <= K; k0 += KB) {
    for (int64_t p0 = 0; p0 < Pp; p0 += PB) {
      T acc[KB][PB] = {};
      for (int64_t co = 0; co < Co; ++co) {
        const T* ar = apad + co * Pp + p0;
        const T* wr = W + co * K + k0;
        for (int i = 0; i < KB; ++i) {
          const T w = wr[i];
#pragma omp simd
          for (int p = 0; p < PB; ++p) acc[i][p] += w * ar[p];
        }
      }
      for (int i = 0; i < KB; ++i)
        for (int p = 0; p < PB; ++p) cols[(k0 + i) * Pp + p0 + p] = acc[i][p];
    }
  }
  for (; k0 < K; ++k0) {
    T* cr = cols + k0 * Pp;
    std::fill(cr, cr + Pp, T(0));
    for (int64_t co = 0; co < Co; ++co) {
      const T w = W[co * K + k0];
      const T* ar = apad + co * Pp;
#pragma omp simd
      for (int64_t p = 0; p < Pp; ++p) cr[p] += w * ar[p];
    }
  }
  // col2im: o[ci, oy*sh - ph + ky, ox*sw - pw + kx] += cols[(ci, ky, kx), (oy, ox)]
  for (int64_t ci = 0; ci < L.Ci; ++ci) {
    T* oc = o + ci * L.Hi * L.Wi;
    for (int64_t ky = 0; ky < L.kh; ++ky) {
      for (int64_t kx = 0; kx < L.kw; ++kx) {
        const T* cr = cols + ((ci * L.kh + ky) * L.kw + kx) * Pp;
        // valid ox: 0 <= ox*sw - pw + kx < Wi
        int64_t ox_lo = 0;
        while (ox_lo < L.Wo && ox_lo * L.sw - L.pw + kx < 0) ++ox_lo;
        int64_t ox_hi = L.Wo;
        while (ox_hi > ox_lo && (ox_hi - 1) * L.sw - L.pw + kx >= L.Wi) --ox_hi;
        for (int64_t oy = 0; oy < L.Ho; ++oy) {
          const int64_t iy = oy * L.sh - L.ph + ky;
          if (iy < 0 || iy >= L.Hi) continue;
          T* orow = oc + iy * L.Wi - L.pw + kx;
          const T* crow = cr + oy * L.Wo;
          for (int64_t ox = ox_lo; ox < ox_hi; ++ox) orow[ox * L.sw] += crow[ox];
        }
      }
    }
  }
  return bs;
}

// Spatial window [y0, y1) x [x0, x1) (all channels) outside which a coefficient row of a
// CHW layer is known to be zero. Rows that start as a unit vector on a conv output (CROWN
// intermediate bounds) stay local through conv/ReLU layers, like auto_LiRPA's "patches"
// mode: every stage then costs O(window) instead of O(layer width).
struct Win {
  int64_t y0, y1, x0, x1;
};

// Windowed scatter form of the transposed conv; returns the bias term and the input window.
template <class T>
T conv_backward_window_row(const Layer<T>& L, const T* a, T* o, const Win& w, Win* win_in) {
  const int64_t khw = L.kh * L.kw;
  T bs = 0;
  for (int64_t co = 0; co < L.Co; ++co) {
    T csum = 0;
    for (int64_t oy = w.y0; oy < w.y1; ++oy) {
      for (int64_t ox = w.x0; ox < w.x1; ++ox) {
        const T c = a[(co * L.Ho + oy) * L.Wo + ox];
        if (c == 0) continue;
        csum += c;
        for (int64_t ci = 0; ci < L.Ci; ++ci) {
          const T* wk = L.W + (co * L.Ci + ci) * khw;
          T* oc = o + ci * L.Hi * L.Wi;
          for (int64_t ky = 0; ky < L.kh; ++ky) {
            const int64_t iy = oy * L.sh - L.ph + ky;
            if (iy < 0 || iy >= L.Hi) continue;
            for (int64_t kx = 0; kx < L.kw; ++kx) {
              const int64_t ix = ox * L.sw - L.pw + kx;
              if (ix < 0 || ix >= L.Wi) continue;
              oc[iy * L.Wi + ix] += c * wk[ky * L.kw + kx];
            }
          }
        }
      }
    }
    if (L.b) bs += csum * L.b[co];
  }
  win_in->y0 = std::max<int64_t>(0, w.y0 * L.sh - L.ph);
  win_in->y1 = std::min<int64_t>(L.Hi, (w.y1 - 1) * L.sh - L.ph + L.kh);
  win_in->x0 = std::max<int64_t>(0, w.x0 * L.sw - L.pw);
  win_in->x1 = std::min<int64_t>(L.Wi, (w.x1 - 1) * L.sw - L.pw + L.kw);
  if (win_in->y1 < win_in->y0) win_in->y1 = win_in->y0;
  if (win_in->x1 < win_in->x0) win_in->x1 = win_in->x0;
  return bs;
}

// out (R, n_in) = A (R, n_out) pushed back through the conv (a transposed convolution);
// bias (R) += the conv bias term. Rows with few non-zeros take the scatter form, dense
// rows the GEMM form. out must be zero on entry.
template <class T>
void conv_backward(const Layer<T>& L, const T* A, int64_t R, T* out, T* bias, std::vector<Win>* win = nullptr) {
  const int64_t no = L.n_out, ni = L.n_in, K = L.Ci * L.kh * L.kw;
  const int64_t Pp = (L.Ho * L.Wo + 15) / 16 * 16;
  auto rows = [&](int64_t rb, int64_t re) {
    Vec<T> cols, apad;
    for (int64_t r = rb; r < re; ++r) {
      const T* a = A + r * no;
      T* o = out + r * ni;
      if (win != nullptr) {
        Win& w = (*win)[r];
        if ((w.y1 - w.y0) * (w.x1 - w.x0) * 4 < L.Ho * L.Wo) {
          Win wi;
          bias[r] += conv_backward_window_row(L, a, o, w, &wi);
          w = wi;
          continue;
        }
        w = Win{0, L.Hi, 0, L.Wi};
      }
      int64_t nnz = 0;
      for (int64_t j = 0; j < no; ++j) nnz += a[j] != 0;
      if (nnz * 4 < no) {
        bias[r] += conv_backward_sparse_row(L, a, o);
      } else {
        if (cols.empty()) {
          cols.resize(K * Pp);
          apad.resize(L.Co * Pp);
        }
        bias[r] += conv_backward_dense_row(L, a, o, apad.data(), cols.data());
      }
    }
  };
  if (!in_parallel() && R >= 2) {
    const int nt = max_threads();
    const int64_t per = (R + nt - 1) / nt;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; ++t) rows(std::min(R, t * per), std::min(R, (t + 1) * per));
  } else {
    rows(0, R);
  }
}

// ReLU backward for lower bounds: A (R, n) in place; pre-activation bounds l, u. With
// windows (CHW map of C x H x W), only the window of each row is touched.
template <class T>
void relu_backward(const T* l, const T* u, int64_t n, T* A, int64_t R, T* bias,
                   const std::vector<Win>* win = nullptr, int64_t C = 0, int64_t H = 0, int64_t W = 0) {
  Vec<T> ud(n), ubv(n), ld(n);
  for (int64_t j = 0; j < n; ++j) {
    const T lr = std::min(l[j], T(0));
    T ur = std::max(u[j], T(0));
    ur = std::max(ur, lr + T(1e-8));
    ud[j] = ur / (ur - lr);
    ubv[j] = -lr * ud[j];
    ld[j] = ud[j] > T(0.5) ? T(1) : T(0);
  }
  auto span = [&](T* a, int64_t j0, int64_t j1, T& s) {
    for (int64_t j = j0; j < j1; ++j) {
      const T c = a[j];
      if (c >= 0) {
        a[j] = c * ld[j];
      } else {
        a[j] = c * ud[j];
        s += c * ubv[j];
      }
    }
  };
  for (int64_t r = 0; r < R; ++r) {
    T* a = A + r * n;
    T s = 0;
    if (win != nullptr && C * H * W == n) {
      const Win& w = (*win)[r];
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = w.y0; y < w.y1; ++y) span(a, (c * H + y) * W + w.x0, (c * H + y) * W + w.x1, s);
    } else {
      span(a, 0, n, s);
    }
    bias[r] += s;
  }
}

// ---- IBP of Linear / Conv2d layers in centre/radius form ----------------------------
// out = W·mid + b ± |W|·rad (mid = (hi+lo)/2, rad = (hi-lo)/2), summed in double for
// float32 inputs (float32 sums of hundreds of terms drift by several ulps; double keeps the
// float32 result within ~1 ulp of the exact interval, i.e. within 1e-5 of auto_LiRPA).
// Both layer kinds are one GEMM-shaped product: rows (R, K) of mid / rad against
// Wt (K, N) = W^T and |Wt| (taken in registers) (dense: K = n_in, N = n_out, one row per example; conv: im2col rows,
// K = Ci·kh·kw, N = Co, one row per output position). The register tile below holds
// 4 rows x 16 columns and sums every output element over k = 0..K-1 sequentially, the
// same for every row whatever the tile, batch, batch split or thread count: example i's
// bounds are bit-identical whether it comes alone or as row i of a batch (tests check it).
// A double GEMM from BLAS would be as fast but does not fix the summation order per row.
template <class T>
struct IbpPrep {
  int64_t K = 0, N = 0, Np = 0;  // Np: N padded to a multiple of 16 (zero columns)
  // panels (Np / 16, K + 1, 16) in T: panel p, row k < K = W^T[k][16p..16p+16), row K =
  // bias[16p..16p+16) (see Layer::ibp); converted to double in registers
  const T* pan = nullptr;
  Vec<T> own;  // storage when the caller passed no Layer::ibp
  // conv: im2col source of each packed element, in packed order (tile t, k, lane e) of
  // the 6-row tiles of output positions; -1 = zero (padding, or a row past Ho·Wo)
  std::vector<int32_t> gather;
};

template <class T>
IbpPrep<T> ibp_prep(const Layer<T>& L) {
  IbpPrep<T> p;
  if (L.kind == kReLU) return p;
  p.K = L.kind == kDense ? L.n_in : L.Ci * L.kh * L.kw;
  p.N = L.kind == kDense ? L.n_out : L.Co;
  p.Np = (p.N + 15) / 16 * 16;
  if (L.kind == kConv2d) {
    constexpr int E = 6;  // kIbpRows
    const int64_t HW = L.Ho * L.Wo, nt = (HW + E - 1) / E;
    p.gather.assign(nt * p.K * E, -1);
    for (int64_t q = 0; q < HW; ++q) {
      const int64_t oy = q / L.Wo, ox = q % L.Wo;
      for (int64_t ci = 0; ci < L.Ci; ++ci)
        for (int64_t ky = 0; ky < L.kh; ++ky)
          for (int64_t kx = 0; kx < L.kw; ++kx) {
            const int64_t iy = oy * L.sh - L.ph + ky, ix = ox * L.sw - L.pw + kx;
            if (iy < 0 || iy >= L.Hi || ix < 0 || ix >= L.Wi) continue;
            const int64_t k = (ci * L.kh + ky) * L.kw + kx;
            p.gather[((q / E) * p.K + k) * E + q % E] = static_cast<int32_t>((ci * L.Hi + iy) * L.Wi + ix);
          }
    }
  }
  if (L.ibp != nullptr) {
    p.pan = L.ibp;
    return p;
  }
  p.own.assign(p.Np / 16 * (p.K + 1) * 16, T(0));
  for (int64_t n = 0; n < p.N; ++n) {  // dense W (n_out, n_in) and conv W (Co, Ci·kh·kw): both (N, K)
    T* o = p.own.data() + (n / 16) * (p.K + 1) * 16 + n % 16;
    const T* w = L.W + n * p.K;
    for (int64_t k = 0; k < p.K; ++k) o[k * 16] = w[k];
    if (L.b) o[p.K * 16] = L.b[n];
  }
  p.pan = p.own.data();
  return p;
}

// 16 weights of a panel row as two vectors of 8 doubles (exact conversion).
inline void load_w16(const double* w, Vec64<double>::type& w0, Vec64<double>::type& w1) {
  w0 = loadu64(w);
  w1 = loadu64(w + 8);
}
inline void load_w16(const float* w, Vec64<double>::type& w0, Vec64<double>::type& w1) {
  typedef float F8 __attribute__((vector_size(32)));
  F8 a, b;
  std::memcpy(&a, w, sizeof(a));
  std::memcpy(&b, w + 8, sizeof(b));
  w0 = __builtin_convertvector(a, Vec64<double>::type);
  w1 = __builtin_convertvector(b, Vec64<double>::type);
}

// One register tile: 6 rows x 16 columns, k in [0, kn) of a k block. rp: the rows packed
// as rp[k][0..6) = mid, rp[k][6..12) = rad; wp: a k block of a column panel in double,
// wp[k][0..16) = W^T, wp[k][16..32) = |W^T|. c[e], d[e] (16 each) hold the partial sums of the earlier k
// blocks: c += sum_k mid·W, d += sum_k rad·|W|, k ascending (one accumulator per output
// element, so the order is k = 0, 1, ..., K-1 whatever the blocking).
// E = 1 (fewer than 6 rows, e.g. one example through a Linear layer) runs the same
// per-element operations, so its results are bit-identical to E = 6 (tests check it).
constexpr int kIbpRows = 6;
template <int E>
inline void ibp_tile(const double* rp, const double* wp, int64_t kn, double* c, double* d) {
#if !defined(__AVX512F__)
  // Narrower registers (the AVX2 and baseline builds of the dispatched core): 6 rows x 16
  // columns of 64-byte accumulators would need 48 (AVX2) or 96 (SSE) registers of 16 and
  // spill on every step (IBP at batch 32 ran 28x slower than the AVX-512 build). Here the
  // 16 columns go in groups of one native vector, each group with its own pass over k:
  // 2E accumulators + 2 weight vectors fit the 16 registers. Each output element still sums
  // k = 0, 1, ..., kn-1 in order, with the same operations.
#if defined(__AVX__)
  constexpr int kBytes = 32;
#else
  constexpr int kBytes = 16;
#endif
  typedef double VN __attribute__((vector_size(kBytes)));
  constexpr int LN = kBytes / static_cast<int>(sizeof(double));
  for (int g = 0; g < 16; g += LN) {
    VN ac[E], ad[E];
    for (int e = 0; e < E; ++e) {
      std::memcpy(&ac[e], c + e * 16 + g, sizeof(VN));
      std::memcpy(&ad[e], d + e * 16 + g, sizeof(VN));
    }
    const double* r = rp;
    const double* w = wp;
    for (int64_t k = 0; k < kn; ++k, r += 2 * E, w += 32) {
      VN w0, a0;
      std::memcpy(&w0, w + g, sizeof(VN));
      std::memcpy(&a0, w + 16 + g, sizeof(VN));
      for (int e = 0; e < E; ++e) {
        ac[e] += r[e] * w0;
        ad[e] += r[E + e] * a0;
      }
    }
    for (int e = 0; e < E; ++e) {
      std::memcpy(c + e * 16 + g, &ac[e], sizeof(VN));
      std::memcpy(d + e * 16 + g, &ad[e], sizeof(VN));
    }
  }
#else
  typedef Vec64<double>::type V;
  constexpr int L = static_cast<int>(sizeof(V) / sizeof(double));
  static_assert(2 * L == 16, "tile width");
  V ac[E][2], ad[E][2];
  for (int e = 0; e < E; ++e) {
    ac[e][0] = loadu64(c + e * 16);
    ac[e][1] = loadu64(c + e * 16 + L);
    ad[e][0] = loadu64(d + e * 16);
    ad[e][1] = loadu64(d + e * 16 + L);
  }
  for (int64_t k = 0; k < kn; ++k, rp += 2 * E, wp += 32) {
    const V w0 = loadu64(wp), w1 = loadu64(wp + L), a0 = loadu64(wp + 16), a1 = loadu64(wp + 16 + L);
    for (int e = 0; e < E; ++e) {
      const double me = rp[e], re = rp[E + e];
      ac[e][0] += me * w0;
      ac[e][1] += me * w1;
      ad[e][0] += re * a0;
      ad[e][1] += re * a1;
    }
  }
  for (int e = 0; e < E; ++e) {
    storeu64(c + e * 16, ac[e][0]);
    storeu64(c + e * 16 + L, ac[e][1]);
    storeu64(d + e * 16, ad[e][0]);
    storeu64(d + e * 16 + L, ad[e][1]);
  }
#endif
}

// R rows packed in 6-row tiles, rp[(t·K + k)·12 + e] = mid, [.. + 6 + e] = rad of row
// 6t + e (rows past R: anything finite, not stored): output (r, n) = W·mid + b ∓ |W|·rad
// written to lo/hi[r * rs + n * cs]. Row blocks of 36 (in L2) run against every column
// panel, with their partial sums in L1 while k runs in blocks of 32. Serial (callers
// parallelise over rows or examples).
template <int E, class T>
void ibp_rows(const IbpPrep<T>& P, const double* rp, int64_t R, T* lo, T* hi, int64_t rs, int64_t cs) {
  constexpr int64_t TB = 36 / E, RB = TB * E, KB = 32;  // tiles per row block, rows per block, k block
  const int64_t K = P.K, nt = (R + E - 1) / E;
  double cbuf[RB * 16], dbuf[RB * 16], wd[KB * 32];
  for (int64_t t0 = 0; t0 < nt; t0 += TB) {
    const int64_t t1 = std::min(nt, t0 + TB);
    const int64_t r0 = t0 * E, r1 = std::min(R, t1 * E);
    for (int64_t n0 = 0; n0 < P.Np; n0 += 16) {
      const int64_t nn = std::min<int64_t>(16, P.N - n0);
      const T* wp = P.pan + (n0 / 16) * (K + 1) * 16;
      std::fill(cbuf, cbuf + RB * 16, 0.0);
      std::fill(dbuf, dbuf + RB * 16, 0.0);
      for (int64_t k0 = 0; k0 < K; k0 += KB) {
        const int64_t kn = std::min(KB, K - k0);
        // the k block of the panel in double with |W| (exact), shared by the row block's tiles
        typedef Vec64<double>::type V;
        typedef long long VI __attribute__((vector_size(64)));
        const VI absmask = VI{} + 0x7fffffffffffffffLL;
        for (int64_t k = 0; k < kn; ++k) {
          V w0, w1;
          load_w16(wp + (k0 + k) * 16, w0, w1);
          storeu64(wd + k * 32, w0);
          storeu64(wd + k * 32 + 8, w1);
          storeu64(wd + k * 32 + 16, (V)((VI)w0 & absmask));
          storeu64(wd + k * 32 + 24, (V)((VI)w1 & absmask));
        }
        for (int64_t t = t0; t < t1; ++t)
          ibp_tile<E>(rp + (t * K + k0) * 2 * E, wd, kn, cbuf + (t - t0) * E * 16, dbuf + (t - t0) * E * 16);
      }
      const T* bias = wp + K * 16;
      for (int64_t r = r0; r < r1; ++r) {
        const double* c = cbuf + (r - r0) * 16;
        const double* d = dbuf + (r - r0) * 16;
        T* l = lo + r * rs + n0 * cs;
        T* h = hi + r * rs + n0 * cs;
        for (int64_t j = 0; j < nn; ++j) {
          const double cv = c[j] + static_cast<double>(bias[j]);
          l[j * cs] = static_cast<T>(cv - d[j]);
          h[j * cs] = static_cast<T>(cv + d[j]);
        }
      }
    }
  }
}

// Packs rows [0, R) of bounds lo/hi (row r at lo + r * n, K = n values) as mid / rad in
// double into 6-row tiles (see ibp_rows); rows past R of the last tile are zero.
template <int E, class T>
void pack_rows(const T* lo, const T* hi, int64_t R, int64_t n, double* rp) {
  const int64_t nt = (R + E - 1) / E;
  for (int64_t t = 0; t < nt; ++t) {
    double* o = rp + t * n * 2 * E;
    for (int e = 0; e < E; ++e) {
      const int64_t r = t * E + e;
      if (r >= R) {
        for (int64_t k = 0; k < n; ++k) o[k * 2 * E + e] = o[k * 2 * E + E + e] = 0.0;
        continue;
      }
      const T* l = lo + r * n;
      const T* h = hi + r * n;
      for (int64_t k = 0; k < n; ++k) {
        const double lv = l[k], hv = h[k];
        o[k * 2 * E + e] = (hv + lv) / 2;
        o[k * 2 * E + E + e] = (hv - lv) / 2;
      }
    }
  }
}

// mid / rad of n bounds in double (exact for float32 bounds of similar magnitude).
template <class T>
inline void mid_rad(const T* lo, const T* hi, int64_t n, double* m, double* r) {
  for (int64_t j = 0; j < n; ++j) {
    const double l = lo[j], h = hi[j];
    m[j] = (h + l) / 2;
    r[j] = (h - l) / 2;
  }
}

// IBP of one example through one layer. sm: scratch for the packed rows, reused.
template <class T>
void ibp_layer(const Layer<T>& L, const IbpPrep<T>& P, const T* lo, const T* hi, T* olo, T* ohi, Vec<double>& sm) {
  if (L.kind == kReLU) {
    for (int64_t j = 0; j < L.n_in; ++j) {
      olo[j] = std::max(lo[j], T(0));
      ohi[j] = std::max(hi[j], T(0));
    }
    return;
  }
  constexpr int E = kIbpRows;
  if (L.kind == kDense) {
    sm.resize(P.K * 2);
    pack_rows<1>(lo, hi, 1, P.K, sm.data());
    ibp_rows<1>(P, sm.data(), 1, olo, ohi, 0, 1);
    return;
  }
  // conv: im2col rows (one per output position p = oy·Wo + ox; k = (ci, ky, kx)) of
  // mid / rad, packed in tiles, zero outside the input (padding): the input's mid / rad
  // once per value, then one sequential pass over the packed buffer through the layer's
  // gather table (built once per call in ibp_prep).
  const int64_t HW = L.Ho * L.Wo, K = P.K, nt = (HW + E - 1) / E;
  sm.resize(nt * K * 2 * E + 2 * L.n_in);
  double* in_m = sm.data() + nt * K * 2 * E;
  double* in_r = in_m + L.n_in;
  mid_rad(lo, hi, L.n_in, in_m, in_r);
  static_assert(kIbpRows == 6, "gather table layout (ibp_prep)");
  double* pk = sm.data();
  const int32_t* g = P.gather.data();
  for (int64_t t = 0; t < nt * K; ++t, pk += 2 * E, g += E) {
    for (int e = 0; e < E; ++e) {
      const int32_t src = g[e];
      pk[e] = src >= 0 ? in_m[src] : 0.0;
      pk[E + e] = src >= 0 ? in_r[src] : 0.0;
    }
  }
  // output (co, p) at co * HW + p: row stride 1, column stride HW
  ibp_rows<E>(P, sm.data(), HW, olo, ohi, 1, HW);
}

// Lower bound of A (R, n_out of layer t) · output(t) over the input box. bnd[k] holds
// (lo, hi) of the input of layer k (bnd[0] = the input box). win: optional per-row windows
// on layer t's CHW output (t a conv layer), moved along through conv / ReLU layers.
template <class T>
CERTKIT_PREFER_256 void crown_backward(const std::vector<Layer<T>>& layers, const Vec<Vec<T>>& blo, const Vec<Vec<T>>& bhi,
                    int64_t t, Vec<T> A, int64_t R, T* result, std::vector<Win>* win = nullptr) {
  Vec<T> bias(R, T(0)), next;
  for (int64_t k = t; k >= 0; --k) {
    const Layer<T>& L = layers[k];
    if (L.kind == kReLU) {
      const Layer<T>* P = k > 0 ? &layers[k - 1] : nullptr;
      if (win != nullptr && P != nullptr && P->kind == kConv2d)
        relu_backward(blo[k].data(), bhi[k].data(), L.n_in, A.data(), R, bias.data(), win, P->Co, P->Ho, P->Wo);
      else
        relu_backward(blo[k].data(), bhi[k].data(), L.n_in, A.data(), R, bias.data());
      continue;
    }
    if (L.kind == kConv2d && win != nullptr) {
      // windowed rows write (and are later read) only inside their new input window when
      // it stays small (the same test conv_backward applies one layer down): zero just
      // that region instead of the whole (Ci, Hi, Wi) map of every row
      next.resize(R * L.n_in);
      const int64_t hw = L.Hi * L.Wi;
      for (int64_t r = 0; r < R; ++r) {
        T* o = next.data() + r * L.n_in;
        const Win& w = (*win)[r];
        bool full = (w.y1 - w.y0) * (w.x1 - w.x0) * 4 >= L.Ho * L.Wo;
        Win wi{};
        if (!full) {
          wi.y0 = std::max<int64_t>(0, w.y0 * L.sh - L.ph);
          wi.y1 = std::max(wi.y0, std::min<int64_t>(L.Hi, (w.y1 - 1) * L.sh - L.ph + L.kh));
          wi.x0 = std::max<int64_t>(0, w.x0 * L.sw - L.pw);
          wi.x1 = std::max(wi.x0, std::min<int64_t>(L.Wi, (w.x1 - 1) * L.sw - L.pw + L.kw));
          full = (wi.y1 - wi.y0) * (wi.x1 - wi.x0) * 4 >= hw;
        }
        if (full) {
          std::fill(o, o + L.n_in, T(0));
        } else {
          for (int64_t c = 0; c < L.Ci; ++c)
            for (int64_t y = wi.y0; y < wi.y1; ++y)
              std::fill(o + c * hw + y * L.Wi + wi.x0, o + c * hw + y * L.Wi + wi.x1, T(0));
        }
      }
    } else {
      next.assign(R * L.n_in, T(0));
    }
    if (L.kind == kDense) {
      dense_backward(L, A.data(), R, next.data(), bias.data());
      win = nullptr;  // dense rows are not local
    } else {
      conv_backward(L, A.data(), R, next.data(), bias.data(), win);
    }
    A.swap(next);
  }
  const int64_t n0 = layers[0].n_in;
  const T* lo = blo[0].data();
  const T* hi = bhi[0].data();
  const Layer<T>& F = layers[0];
  for (int64_t r = 0; r < R; ++r) {
    const T* a = A.data() + r * n0;
    T c = 0, d = 0;
    auto span = [&](int64_t j0, int64_t j1) {
#pragma omp simd reduction(+ : c, d)
      for (int64_t j = j0; j < j1; ++j) {
        c += a[j] * ((hi[j] + lo[j]) / 2);
        d += std::abs(a[j]) * ((hi[j] - lo[j]) / 2);
      }
    };
    if (win != nullptr && F.kind == kConv2d) {
      const Win& w = (*win)[r];
      for (int64_t ch = 0; ch < F.Ci; ++ch)
        for (int64_t y = w.y0; y < w.y1; ++y) span((ch * F.Hi + y) * F.Wi + w.x0, (ch * F.Hi + y) * F.Wi + w.x1);
    } else {
      span(0, n0);
    }
    result[r] = bias[r] + c - d;
  }
}

// Output of IBP for one example: C (S, K) applied to the last layer. A last Linear layer
// is merged with the spec (rows C·W, sums in double); lo / hi are the bounds on its input.
// Otherwise lo / hi are the bounds on the network output.
template <class T>
void ibp_output(const std::vector<Layer<T>>& layers, const T* lo, const T* hi, const T* C, int64_t S, T* out_lo,
                T* out_hi) {
  const int64_t K = layers.back().n_out;
  const bool merge_last = layers.back().kind == kDense;
  if (merge_last) {
    const Layer<T>& L = layers.back();
    const T* l = lo;
    const T* h = hi;
    const int64_t ni = L.n_in;
    Vec<double> mid(ni), rad(ni);
    Vec<double> w(ni);  // the merged row C·W and the sums in double (see ibp_layer)
    mid_rad(l, h, ni, mid.data(), rad.data());
    for (int64_t s = 0; s < S; ++s) {
      std::fill(w.begin(), w.end(), 0.0);
      double bb = 0;
      for (int64_t i = 0; i < K; ++i) {
        const double c = C[s * K + i];
        if (c == 0) continue;
        const T* wr = L.W + i * ni;
        for (int64_t j = 0; j < ni; ++j) w[j] += c * wr[j];
        if (L.b) bb += c * L.b[i];
      }
      // 8 fixed lanes (j mod 8 for j < ni rounded down to 8), a fixed-order lane sum, then
      // the tail: the order depends only on ni, not on the batch
      typedef Vec64<double>::type V;
      typedef long long VI __attribute__((vector_size(64)));
      const VI absmask = VI{} + 0x7fffffffffffffffLL;
      V vc{}, vd{};
      int64_t j = 0;
      for (; j + 8 <= ni; j += 8) {
        const V wv = loadu64(w.data() + j);
        vc += wv * loadu64(mid.data() + j);
        vd += (V)((VI)wv & absmask) * loadu64(rad.data() + j);
      }
      double c = 0, d = 0;
      for (int q = 0; q < 8; ++q) {
        c += vc[q];
        d += vd[q];
      }
      for (; j < ni; ++j) {
        c += w[j] * mid[j];
        d += std::abs(w[j]) * rad[j];
      }
      out_lo[s] = static_cast<T>(bb + c - d);
      out_hi[s] = static_cast<T>(bb + c + d);
    }
  } else {
    const T* l = lo;
    const T* h = hi;
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
}

template <class T>
void one_example(const std::vector<Layer<T>>& layers, const std::vector<IbpPrep<T>>& preps, const T* lo, const T* hi,
                 const T* C, int64_t S, int method, T* out_lo, T* out_hi) {
  const int64_t nl = static_cast<int64_t>(layers.size());
  const int64_t K = layers.back().n_out;
  Vec<Vec<T>> blo(nl + 1), bhi(nl + 1);
  blo[0].assign(lo, lo + layers[0].n_in);
  bhi[0].assign(hi, hi + layers[0].n_in);
  Vec<double> sm;
  for (int64_t k = 0; k < nl; ++k) {
    const Layer<T>& L = layers[k];
    blo[k + 1].resize(L.n_out);
    bhi[k + 1].resize(L.n_out);
    ibp_layer(L, preps[k], blo[k].data(), bhi[k].data(), blo[k + 1].data(), bhi[k + 1].data(), sm);
    // CROWN intermediate bounds: an affine layer (not the first) feeding a ReLU
    if (method == 1 && k >= 1 && L.kind != kReLU && k + 1 < nl && layers[k + 1].kind == kReLU) {
      std::vector<int64_t> rows;
      for (int64_t j = 0; j < L.n_out; ++j)
        if (blo[k + 1][j] < 0 && bhi[k + 1][j] > 0) rows.push_back(j);
      const int64_t m = static_cast<int64_t>(rows.size());
      // rows in chunks (lower and upper row of each neuron together) so the coefficient
      // buffers stay cache-sized instead of (2m, n) for every layer
      int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(m, 32768 / std::max<int64_t>(1, L.n_out) + 16));
      const bool par = !in_parallel() && max_threads() > 1 && m >= 32;
      if (par) chunk = std::min<int64_t>(chunk, (m + 2 * max_threads() - 1) / (2 * max_threads()));
      const int64_t nchunks = (m + chunk - 1) / chunk;
      // chunks are independent (each writes its own neurons of layer k + 1 and reads only
      // bounds of layers <= k): one parallel region over them instead of one per layer
#pragma omp parallel for schedule(dynamic) if (par)
      for (int64_t ci = 0; ci < nchunks; ++ci) {
        const int64_t c0 = ci * chunk;
        const int64_t mc = std::min(chunk, m - c0);
        Vec<T> A(2 * mc * L.n_out, T(0));
        for (int64_t r = 0; r < mc; ++r) {
          A[r * L.n_out + rows[c0 + r]] = T(1);
          A[(mc + r) * L.n_out + rows[c0 + r]] = T(-1);
        }
        Vec<T> res(2 * mc, T(0));
        if (L.kind == kConv2d) {
          std::vector<Win> win(2 * mc);
          for (int64_t r = 0; r < mc; ++r) {
            const int64_t j = rows[c0 + r] % (L.Ho * L.Wo), y = j / L.Wo, x = j % L.Wo;
            win[r] = win[mc + r] = Win{y, y + 1, x, x + 1};
          }
          crown_backward(layers, blo, bhi, k, std::move(A), 2 * mc, res.data(), &win);
        } else {
          crown_backward(layers, blo, bhi, k, std::move(A), 2 * mc, res.data());
        }
        for (int64_t r = 0; r < mc; ++r) {
          const int64_t j = rows[c0 + r];
          blo[k + 1][j] = std::max(blo[k + 1][j], res[r]);
          bhi[k + 1][j] = std::min(bhi[k + 1][j], -res[mc + r]);
        }
      }
    }
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

// IBP over the whole batch, layer by layer: a Linear layer is one GEMM-shaped pass over
// all B rows (threads over row chunks of 36), a Conv2d layer an im2col product per
// example (threads over examples). Per-element sums do not depend on the split (see
// ibp_tile), so the result is the same for any B and thread count.
template <class T>
void ibp_batched(const std::vector<Layer<T>>& layers, const std::vector<IbpPrep<T>>& preps, const T* lo, const T* hi,
                 const T* C, int64_t B, int64_t S, T* out_lo, T* out_hi) {
  const int64_t nl = static_cast<int64_t>(layers.size());
  const int64_t K = layers.back().n_out;
  const int64_t upto = layers.back().kind == kDense ? nl - 1 : nl;  // a last Linear is merged with C
  const int64_t n0 = layers[0].n_in;
  // layer buffers kept per thread between calls (fresh multi-MB buffers every call cost
  // page faults comparable to the arithmetic at B = 256); released when over 64 MiB
  static thread_local Vec<T> keep[4];
  Vec<T>& cl = keep[0];
  Vec<T>& ch = keep[1];
  Vec<T>& nlo = keep[2];
  Vec<T>& nhi = keep[3];
  cl.assign(lo, lo + B * n0);
  ch.assign(hi, hi + B * n0);
  struct Release {
    Vec<T>* v;
    ~Release() {
      for (int i = 0; i < 4; ++i)
        if (v[i].capacity() * sizeof(T) > (size_t(64) << 20)) Vec<T>().swap(v[i]);
    }
  } release{keep};
  const bool par = !in_parallel() && max_threads() > 1;
  for (int64_t k = 0; k < upto; ++k) {
    const Layer<T>& L = layers[k];
    const IbpPrep<T>& P = preps[k];
    const int64_t ni = L.n_in, no = L.n_out;
    nlo.resize(B * no);
    nhi.resize(B * no);
    if (L.kind == kReLU) {
      for (int64_t j = 0; j < B * no; ++j) {
        nlo[j] = std::max(cl[j], T(0));
        nhi[j] = std::max(ch[j], T(0));
      }
    } else if (L.kind == kDense) {
      // rows in chunks of 36 (whole tiles): chunk q packs its rows and runs them
      constexpr int64_t RC = 6 * kIbpRows;
      const int64_t nblk = (B + RC - 1) / RC;
#pragma omp parallel if (par && nblk > 1)
      {
        Vec<double> rp(RC * ni * 2);
#pragma omp for schedule(dynamic)
        for (int64_t q = 0; q < nblk; ++q) {
          const int64_t r0 = q * RC, nr = std::min(RC, B - r0);
          // whole 6-row tiles, then single rows (a batch of one, or the tail): same results
          const int64_t n6 = nr / kIbpRows * kIbpRows;
          if (n6 > 0) {
            pack_rows<kIbpRows>(cl.data() + r0 * ni, ch.data() + r0 * ni, n6, ni, rp.data());
            ibp_rows<kIbpRows>(P, rp.data(), n6, nlo.data() + r0 * no, nhi.data() + r0 * no, no, 1);
          }
          if (nr > n6) {
            const int64_t r1 = r0 + n6;
            pack_rows<1>(cl.data() + r1 * ni, ch.data() + r1 * ni, nr - n6, ni, rp.data());
            ibp_rows<1>(P, rp.data(), nr - n6, nlo.data() + r1 * no, nhi.data() + r1 * no, no, 1);
          }
        }
      }
    } else {
#pragma omp parallel if (par && B > 1)
      {
        Vec<double> sm;
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < B; ++b)
          ibp_layer(L, P, cl.data() + b * ni, ch.data() + b * ni, nlo.data() + b * no, nhi.data() + b * no, sm);
      }
    }
    cl.swap(nlo);
    ch.swap(nhi);
  }
  const int64_t nk = upto < nl ? layers.back().n_in : K;
#pragma omp parallel for schedule(static) if (par && B > 1)
  for (int64_t b = 0; b < B; ++b)
    ibp_output(layers, cl.data() + b * nk, ch.data() + b * nk, C + b * S * K, S, out_lo + b * S, out_hi + b * S);
}

}  // namespace

template <class T>
void compute(const std::vector<Layer<T>>& layers, const T* lo, const T* hi, const T* C, int64_t B,
             int64_t S, int method, T* out_lo, T* out_hi) {
  const int64_t n0 = layers.front().n_in, K = layers.back().n_out;
  std::vector<IbpPrep<T>> preps;
  preps.reserve(layers.size());
  for (const Layer<T>& L : layers) preps.push_back(ibp_prep(L));
  if (method == 0) {
    ibp_batched(layers, preps, lo, hi, C, B, S, out_lo, out_hi);
    return;
  }
  const bool outer = B >= 2 && B >= max_threads();
#pragma omp parallel for schedule(dynamic) if (outer)
  for (int64_t b = 0; b < B; ++b) {
    one_example(layers, preps, lo + b * n0, hi + b * n0, C + b * S * K, S, method, out_lo + b * S, out_hi + b * S);
  }
}

template void compute<float>(const std::vector<Layer<float>>&, const float*, const float*, const float*,
                             int64_t, int64_t, int, float*, float*);
template void compute<double>(const std::vector<Layer<double>>&, const double*, const double*,
                              const double*, int64_t, int64_t, int, double*, double*);

}  // namespace CERTKIT_ISA
}  // namespace bounds
}  // namespace certkit
