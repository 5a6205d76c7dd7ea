// Supernodal multifrontal LDL^T (see supernodal_ldl.h).
#include "common/dispatch.h"
#include "spectral/supernodal_ldl.h"

#include "spectral/kernels.h"
#include "spectral/lapack.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>
#include <utility>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

SnSymbolic::SnSymbolic(const SubCsr& A, std::vector<int64_t> p) : n(A.n), perm(std::move(p)), inv(A.n) {
  for (int64_t i = 0; i < n; ++i) inv[perm[i]] = i;
  const int64_t* ip = A.indptr.data();
  const int64_t* ix = A.indices.data();
  // Lower pattern by rows (new indices): row k holds the columns i < k of A's row k.
  std::vector<int64_t> rp(n + 1, 0), ri;
  ri.reserve(static_cast<size_t>(ip[n]) / 2 + 1);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t o = perm[k];
    for (int64_t t = ip[o]; t < ip[o + 1]; ++t) {
      const int64_t i = inv[ix[t]];
      if (i < k) ri.push_back(i);
    }
    rp[k + 1] = static_cast<int64_t>(ri.size());
  }
  std::vector<int64_t> parent(n, -1), flag(n, -1), cnt(n, 0);
  for (int64_t k = 0; k < n; ++k) {
    flag[k] = k;
    for (int64_t t = rp[k]; t < rp[k + 1]; ++t) {
      for (int64_t i = ri[t]; flag[i] != k; i = parent[i]) {
        if (parent[i] < 0) parent[i] = k;
        ++cnt[i];
        flag[i] = k;
      }
    }
  }
  sfirst.push_back(0);
  for (int64_t j = 1, j0 = 0; j <= n; ++j) {
    bool merge = false;
    if (j < n && parent[j - 1] == j && j - j0 < kMaxWidth) {
      if (cnt[j - 1] == cnt[j] + 1) {
        merge = true;  // same structure: a fundamental supernode
      } else {
        int64_t zeros = 0, total = 0;
        for (int64_t c = j0; c <= j; ++c) {
          zeros += (j - c) + cnt[j] - cnt[c];
          total += (j - c) + cnt[j];
        }
        merge = zeros <= kRelaxZeros || 4 * zeros <= total;
      }
    }
    if (!merge) {
      sfirst.push_back(j);
      j0 = j;
    }
  }
  ns = static_cast<int64_t>(sfirst.size()) - 1;
  std::vector<int64_t> sup(n);
  for (int64_t s = 0; s < ns; ++s)
    for (int64_t c = sfirst[s]; c < sfirst[s + 1]; ++c) sup[c] = s;
  // Along an etree chain struct(c) is inside {c+1, ...} and struct(c + 1), so the rows
  // below a supernode are exactly the structure of its last column.
  rptr.assign(ns + 1, 0);
  for (int64_t s = 0; s < ns; ++s) rptr[s + 1] = rptr[s] + cnt[sfirst[s + 1] - 1];
  rows.resize(static_cast<size_t>(rptr[ns]));
  std::vector<int64_t> fill(rptr.begin(), rptr.end() - 1);
  std::fill(flag.begin(), flag.end(), -1);
  for (int64_t k = 0; k < n; ++k) {
    flag[k] = k;
    for (int64_t t = rp[k]; t < rp[k + 1]; ++t) {
      for (int64_t i = ri[t]; flag[i] != k; i = parent[i]) {
        flag[i] = k;
        const int64_t s = sup[i];
        if (i == sfirst[s + 1] - 1) rows[fill[s]++] = k;
      }
    }
  }
  lptr.assign(ns + 1, 0);
  nchild.assign(ns, 0);
  std::vector<int64_t> sparent(ns, -1);
  for (int64_t s = 0; s < ns; ++s) {
    const int64_t w = sfirst[s + 1] - sfirst[s], r = rptr[s + 1] - rptr[s];
    lptr[s + 1] = lptr[s] + w * (w + r);  // G = [L_JJ^-1; -L_RJ L_JJ^-1], (w + r) x w
    maxfront = std::max(maxfront, w + r);
    if (r > 0) {
      sparent[s] = sup[rows[rptr[s]]];
      ++nchild[sparent[s]];
    }
  }
  // Postorder of the supernodal forest (children before parents, each subtree
  // contiguous), so the update matrices can live on a stack.
  std::vector<int64_t> cptr(ns + 1, 0), kids(ns > 0 ? ns : 1);
  for (int64_t s = 0; s < ns; ++s) cptr[s + 1] = cptr[s] + nchild[s];
  std::vector<int64_t> cf(cptr.begin(), cptr.end() - 1);
  for (int64_t s = 0; s < ns; ++s)
    if (sparent[s] >= 0) kids[cf[sparent[s]]++] = s;
  post.reserve(static_cast<size_t>(ns));
  std::vector<std::pair<int64_t, int64_t>> stack;
  for (int64_t root = 0; root < ns; ++root) {
    if (sparent[root] >= 0) continue;
    stack.emplace_back(root, cptr[root]);
    while (!stack.empty()) {
      auto& [s, next] = stack.back();
      if (next < cptr[s + 1]) {
        const int64_t c = kids[next++];
        stack.emplace_back(c, cptr[c]);
      } else {
        post.push_back(s);
        stack.pop_back();
      }
    }
  }
  // Peak size of the stack of pending update matrices along the postorder: a
  // supernode's children sit on top of the stack when it is assembled; they are popped
  // and its own update matrix pushed.
  std::vector<int64_t> sizes;
  int64_t cur = 0;
  for (int64_t s : post) {
    for (int64_t c = 0; c < nchild[s]; ++c) {
      cur -= sizes.back();
      sizes.pop_back();
    }
    const int64_t r = rptr[s + 1] - rptr[s];
    sizes.push_back(r * r);
    cur += r * r;
    maxstack = std::max(maxstack, cur);
  }
}

SnLdl::SnLdl(const SubCsr& A, const SnSymbolic& sym, double shift, bool counts_only)
    : S(sym), Lx(counts_only ? 0 : static_cast<size_t>(sym.lptr[sym.ns])), inv_d(sym.n), tbuf(sym.maxfront) {
  const int64_t n = S.n;
  const int64_t* ip = A.indptr.data();
  const int64_t* ix = A.indices.data();
  const double* ax = A.data.data();
  double anorm = 0;
  for (int64_t i = 0; i < n; ++i) {
    double rs = 0;
    for (int64_t t = ip[i]; t < ip[i + 1]; ++t) rs += std::fabs(ax[t]);
    anorm = std::max(anorm, rs);
  }
  const double tiny = kEps * std::max(anorm, std::fabs(shift)) + std::numeric_limits<double>::min();
  // Scratch kept per thread between factorisations (fresh pages cost a fault each);
  // given back after a call that needed over 32 MiB, as the Krylov buffer is.
  thread_local std::vector<double> F, ustack, TD;  // front, stacked updates, L_RJ D_J
  thread_local std::vector<int64_t> pos;
  struct Giveback {
    ~Giveback() {
      if (F.capacity() + ustack.capacity() + TD.capacity() + pos.capacity() > (size_t{1} << 22)) {
        std::vector<double>().swap(F);
        std::vector<double>().swap(ustack);
        std::vector<double>().swap(TD);
        std::vector<int64_t>().swap(pos);
      }
    }
  } giveback;
  F.resize(static_cast<size_t>(S.maxfront * S.maxfront));
  ustack.resize(static_cast<size_t>(S.maxstack));
  pos.resize(static_cast<size_t>(n));
  std::vector<int64_t> ustack_sn;  // supernode of each stacked update matrix, bottom first
  std::vector<int64_t> ustack_at;  // its offset in ustack
  double maxl = 0, minp = std::numeric_limits<double>::infinity();
  int64_t nneg = 0, top = 0;
  for (const int64_t s : S.post) {
    const int64_t f = S.sfirst[s], w = S.sfirst[s + 1] - f, r = S.rptr[s + 1] - S.rptr[s], nf = w + r;
    const int64_t* R = S.rows.data() + S.rptr[s];
    for (int64_t c = 0; c < w; ++c) pos[f + c] = c;
    for (int64_t a = 0; a < r; ++a) pos[R[a]] = w + a;
    double* Fm = F.data();
    for (int64_t c = 0; c < nf; ++c) std::fill(Fm + c * nf + c, Fm + (c + 1) * nf, 0.0);
    for (int64_t c = 0; c < w; ++c) {
      const int64_t o = S.perm[f + c];
      double* Fc = Fm + c * nf;
      for (int64_t t = ip[o]; t < ip[o + 1]; ++t) {
        const int64_t i = S.inv[ix[t]];
        if (i >= f + c) Fc[pos[i]] += ax[t];
      }
      Fc[c] += shift;
    }
    // extend-add the children's update matrices (the top S.nchild[s] of the stack)
    const int64_t nc = S.nchild[s];
    const size_t first_child = ustack_sn.size() - static_cast<size_t>(nc);
    for (size_t q = first_child; q < ustack_sn.size(); ++q) {
      const int64_t ch = ustack_sn[q];
      const int64_t rc = S.rptr[ch + 1] - S.rptr[ch];
      const int64_t* Rc = S.rows.data() + S.rptr[ch];
      const double* Uc = ustack.data() + ustack_at[q];
      for (int64_t b = 0; b < rc; ++b) {
        double* Fb = Fm + pos[Rc[b]] * nf;
        const double* Ub = Uc + b * rc;
        for (int64_t a = b; a < rc; ++a) Fb[pos[Rc[a]]] += Ub[a];
      }
    }
    if (nc > 0) {
      top = ustack_at[first_child];
      ustack_sn.resize(first_child);
      ustack_at.resize(first_child);
    }
    // partial factorisation of the first w columns
    for (int64_t j = 0; j < w; ++j) {
      double* Fj = Fm + j * nf;
      double d = Fj[j];
      if (std::fabs(d) < tiny) d = d < 0 ? -tiny : tiny;
      nneg += d < 0;
      minp = std::min(minp, std::fabs(d));
      const double id = 1.0 / d;
      inv_d[f + j] = id;
      Fj[j] = d;
      for (int64_t k = j + 1; k < w; ++k) {
        const double lkj = Fj[k] * id;
        double* __restrict Fk = Fm + k * nf;
        const double* __restrict Fjc = Fj;
#pragma omp simd
        for (int64_t i = k; i < nf; ++i) Fk[i] -= Fjc[i] * lkj;
      }
      double ml = 0;
#pragma omp simd reduction(max : ml)
      for (int64_t i = j + 1; i < nf; ++i) {
        Fj[i] *= id;
        ml = std::max(ml, std::fabs(Fj[i]));
      }
      maxl = std::max(maxl, ml);
    }
    if (r > 0) {
      // U = F_RR - (L_RJ D_J) L_RJ^T, lower triangle, pushed on the stack
      double* U = ustack.data() + top;
      for (int64_t b = 0; b < r; ++b)
        std::memcpy(U + b * r + b, Fm + (w + b) * nf + w + b, sizeof(double) * static_cast<size_t>(r - b));
      TD.resize(static_cast<size_t>(r * w));
      for (int64_t j = 0; j < w; ++j) {
        const double dj = Fm[j * nf + j];
        const double* Lj = Fm + j * nf + w;
        double* Dj = TD.data() + j * r;
#pragma omp simd
        for (int64_t a = 0; a < r; ++a) Dj[a] = Lj[a] * dj;
      }
      const Lapack* lp = lapack();
      if (lp && r * w >= 256 && fits_int(r) && fits_int(w) && fits_int(nf)) {
        const int rr = static_cast<int>(r), ww = static_cast<int>(w), ldf = static_cast<int>(nf);
        const double am = -1.0, b1 = 1.0;
        lp->dgemm("N", "T", &rr, &rr, &ww, &am, TD.data(), &rr, Fm + w, &ldf, &b1, U, &rr);
      } else {
        for (int64_t b = 0; b < r; ++b) {
          double* __restrict Ub = U + b * r;
          for (int64_t j = 0; j < w; ++j) {
            const double lbj = Fm[j * nf + w + b];
            const double* __restrict Dj = TD.data() + j * r;
#pragma omp simd
            for (int64_t a = b; a < r; ++a) Ub[a] -= Dj[a] * lbj;
          }
        }
      }
      ustack_sn.push_back(s);
      ustack_at.push_back(top);
      top += r * r;
    }
    if (counts_only) continue;
    // G = [I; -L_RJ] L_JJ^{-1}, by columns from the last: G_j = Y_j - sum_{k>j} G_k L_kj.
    // With it each solve sweep is one dense product per supernode, without the
    // dependency chain of a triangular substitution. Its largest entry joins max_l (an
    // exploding inverse makes the caller fall back like a large L entry does).
    double* G = Lx.data() + S.lptr[s];
    double mg = 0;
    for (int64_t j = w - 1; j >= 0; --j) {
      double* __restrict Gj = G + j * nf;
      const double* Fj = Fm + j * nf;
      for (int64_t i = 0; i < w; ++i) Gj[i] = i == j ? 1.0 : 0.0;
      for (int64_t a = w; a < nf; ++a) Gj[a] = -Fj[a];
      for (int64_t k = j + 1; k < w; ++k) {
        const double lkj = Fj[k];
        const double* __restrict Gk = G + k * nf;
#pragma omp simd
        for (int64_t i = k; i < nf; ++i) Gj[i] -= Gk[i] * lkj;
      }
#pragma omp simd reduction(max : mg)
      for (int64_t i = j + 1; i < nf; ++i) mg = std::max(mg, std::fabs(Gj[i]));
    }
    maxl = std::max(maxl, mg);
  }
  neg = nneg;
  min_pivot = minp;
  max_l = maxl;
}

void SnLdl::solve(double* x) const {
  double* __restrict u = tbuf.data();
  for (int64_t s = 0; s < S.ns; ++s) {
    const int64_t f = S.sfirst[s], w = S.sfirst[s + 1] - f, r = S.rptr[s + 1] - S.rptr[s], nf = w + r;
    const double* G = Lx.data() + S.lptr[s];
    double* __restrict xs = x + f;
    int64_t j = 0;
    std::fill(u, u + nf, 0.0);
    for (; j + 4 <= w; j += 4) {
      const double x0 = xs[j], x1 = xs[j + 1], x2 = xs[j + 2], x3 = xs[j + 3];
      const double* __restrict g0 = G + j * nf;
      const double* __restrict g1 = g0 + nf;
      const double* __restrict g2 = g1 + nf;
      const double* __restrict g3 = g2 + nf;
#pragma omp simd
      for (int64_t a = 0; a < nf; ++a) u[a] += (g0[a] * x0 + g1[a] * x1) + (g2[a] * x2 + g3[a] * x3);
    }
    for (; j < w; ++j) {
      const double x0 = xs[j];
      const double* __restrict g0 = G + j * nf;
#pragma omp simd
      for (int64_t a = 0; a < nf; ++a) u[a] += g0[a] * x0;
    }
    std::memcpy(xs, u, sizeof(double) * static_cast<size_t>(w));
    const int64_t* R = S.rows.data() + S.rptr[s];
    for (int64_t a = 0; a < r; ++a) x[R[a]] += u[w + a];
  }
  const double* __restrict id = inv_d.data();
#pragma omp simd
  for (int64_t i = 0; i < S.n; ++i) x[i] *= id[i];
  for (int64_t s = S.ns - 1; s >= 0; --s) {
    const int64_t f = S.sfirst[s], w = S.sfirst[s + 1] - f, r = S.rptr[s + 1] - S.rptr[s], nf = w + r;
    const double* G = Lx.data() + S.lptr[s];
    double* __restrict xs = x + f;
    const int64_t* R = S.rows.data() + S.rptr[s];
    std::memcpy(u, xs, sizeof(double) * static_cast<size_t>(w));
    for (int64_t a = 0; a < r; ++a) u[w + a] = x[R[a]];
    qdots_own(G, w, nf, u, xs);  // x_J = G^T u: G's w columns are contiguous rows here
  }
}

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
