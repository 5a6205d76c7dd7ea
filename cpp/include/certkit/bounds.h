// Bound propagation (IBP and CROWN) for chains of Linear / Conv2d / ReLU layers on plain
// buffers (one example at a time, examples in parallel). Mirrors certkit.core.bounds
// (the torch layer) so that both give the same bounds up to float rounding.
//
// Shapes: a layer maps a flat input of n_in values to n_out values (C-contiguous CHW for
// convolutions). Dense: W (n_out, n_in), b (n_out). Conv2d: W (Co, Ci, kh, kw), b (Co),
// input (Ci, Hi, Wi), output (Co, Ho, Wo), zero padding, groups = 1, dilation = 1.
// ReLU: n_in = n_out.
#pragma once
#include <cstdint>
#include <vector>

namespace certkit {
namespace bounds {

enum Kind : int { kDense = 0, kConv2d = 1, kReLU = 2 };

template <class T>
struct Layer {
  int kind = kDense;
  const T* W = nullptr;
  const T* b = nullptr;  // may be null
  // optional cached IBP operands (ceil(N/16), K + 1, 16) with K = n_in (dense) or
  // Ci*kh*kw (conv), N = n_out (dense) or Co: panel p, row k < K holds W^T[k][16p..16p+16),
  // row K the bias [16p..16p+16); zero past N. Null: built per call.
  const T* ibp = nullptr;
  int64_t n_in = 0, n_out = 0;
  // conv2d geometry
  int64_t Ci = 0, Hi = 0, Wi = 0, Co = 0, Ho = 0, Wo = 0, kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0;
};

// lo, hi: (B, n0) input box. C: (B, S, K) specification on the output (K = last n_out).
// method: 0 = IBP, 1 = CROWN (CROWN∩IBP intermediate bounds on IBP-unstable neurons),
// 2 = CROWN-IBP (IBP intermediate bounds, CROWN at the output).
// out_lo, out_hi: (B, S). For IBP the spec is merged into the last dense layer.
template <class T>
void compute(const std::vector<Layer<T>>& layers, const T* lo, const T* hi, const T* C, int64_t B,
             int64_t S, int method, T* out_lo, T* out_hi);

// CROWN's ReLU backward rule in one pass (cpp/src/bounds/relu_rule.cpp): a coefficient a
// becomes a·ld where a > 0 and a·ud where a < 0, and its row's bias gains min(a, 0)·ub.
// Patches: P (R, Kh, Kw, C) channels last, row r of example ex[r] at window position r % k
// (hr, wr: (k,)) covering node rows hr·Sh - Ph + [0, Kh) and columns wr·Sw - Pw + [0, Kw);
// rel (E, 3, H, W, C): the lower slopes, upper slopes, upper intercepts, channels last;
// entries outside the node give 0. Out: A (R, Kh, Kw, C), bias (R,). nthreads: OpenMP team.
// (Dense rows are one window covering the node: Kh = Kw = H = W = 1, C = the row length.)
template <class T>
void relu_patches(const T* P, int64_t R, int64_t Kh, int64_t Kw, int64_t C, const T* rel, int64_t H,
                  int64_t W, const int64_t* ex, const int64_t* hr, const int64_t* wr, int64_t k, int64_t Sh,
                  int64_t Sw, int64_t Ph, int64_t Pw, T* A, T* bias, int nthreads);
// The ℓ∞ concretisation of patches (geometry as relu_patches): bias[r] = Σ P·mid − |P|·rad
// over row r's window entries inside the node; box (E, 2, H, W, C): centre and radius.
template <class T>
void box_patches(const T* P, int64_t R, int64_t Kh, int64_t Kw, int64_t C, const T* box, int64_t H,
                 int64_t W, const int64_t* ex, const int64_t* hr, const int64_t* wr, int64_t k, int64_t Sh,
                 int64_t Sw, int64_t Ph, int64_t Pw, T* bias, int nthreads);

}  // namespace bounds
}  // namespace certkit
