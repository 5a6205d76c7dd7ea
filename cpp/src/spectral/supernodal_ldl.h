// Supernodal multifrontal LDL^T (Duff & Reid 1983; elimination trees, Liu 1986; relaxed
// supernodes, Ashcraft & Grimes 1989) on a nested dissection order (internal header).
#pragma once
#include "common/dispatch.h"
#include <cstdint>
#include <limits>
#include <vector>

#include "spectral/sparse.h"

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// For large kNN graphs the RCM envelope factor outgrows the core's L2 cache (at 2048
// surface points it holds ~190k entries, 1.5 MB), and every shift-invert solve then
// streams it from L3 twice; its row-by-row substitutions also chain every entry to the
// previous ones. Nested dissection (George 1973; separators from BFS level structures as
// in George & Liu 1978) gives a factor of ~83k nonzeros there (~117k stored, with the
// relaxed supernodes' explicit zeros). It is computed and stored by supernodes (columns
// with a common row structure, relaxed as in Ashcraft & Grimes 1989) with the
// multifrontal method (Duff & Reid 1983): dense frontal matrices, dense kernels, and
// solves that touch each stored entry once per sweep.
// lanczos_component picks this factor when the envelope would exceed kEnvelopeCacheEntries.

// Symbolic supernodal analysis of P A P^T (perm[new] = old): elimination tree and column
// counts (row subtrees, Liu 1986), supernodes = runs of columns along etree chains whose
// merged trapezoid adds few explicit zeros (relaxed: at most kRelaxZeros, or a quarter of
// its entries; width at most kMaxWidth), each supernode's rows below it (the structure of
// its last column), the supernodal tree in postorder, and storage offsets.
struct SnSymbolic {
  static constexpr int64_t kRelaxZeros = 32, kMaxWidth = 64;
  int64_t n = 0, ns = 0, maxfront = 0, maxstack = 0;
  std::vector<int64_t> perm, inv;
  std::vector<int64_t> sfirst;      // (ns + 1) supernode s = columns [sfirst[s], sfirst[s + 1])
  std::vector<int64_t> rptr, rows;  // rows below supernode s: rows[rptr[s] .. rptr[s + 1]), ascending
  std::vector<int64_t> lptr;        // factor storage offsets (ns + 1)
  std::vector<int64_t> post;        // supernodes in postorder of the supernodal tree
  std::vector<int64_t> nchild;      // children per supernode

  SnSymbolic(const SubCsr& A, std::vector<int64_t> p);
};

// Multifrontal LDL^T without pivoting of P (A + shift I) P^T on the structure `S`
// (same contract as EnvLdl: pivots below eps ||A||_1 nudged, `neg`, `min_pivot`, `max_l`).
// Per supernode s (columns J, rows R below): the frontal matrix F ((w + r) square, dense,
// column-major lower) gathers A's columns J and the children's update matrices
// (extend-add), its first w columns are factored (right-looking), and
// U = F_RR - L_RJ D_J L_RJ^T goes on the stack for the parent. Stored per supernode:
// G = [L_JJ^{-1}; -L_RJ L_JJ^{-1}] ((w + r) x w, column-major) and the inverse pivots.
struct SnLdl {
  const SnSymbolic& S;
  std::vector<double> Lx, inv_d;
  int64_t neg = 0;
  double min_pivot = std::numeric_limits<double>::infinity(), max_l = 0;

  // counts_only: the inertia alone (neg, min_pivot, max_l without G): nothing is stored.
  SnLdl(const SubCsr& A, const SnSymbolic& sym, double shift, bool counts_only = false);

  // x <- (P (A + shift I) P^T)^{-1} x in the permuted order: L y = x, D z = y, L^T x = z.
  // Forward, per supernode: u = G x_J, then x_J = u_J and x_R += u_R. Backward:
  // x_J = G^T [x_J; x_R]. G (nf x w) is read four columns at a time.
  void solve(double* x) const;

 private:
  mutable std::vector<double> tbuf;
};

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
