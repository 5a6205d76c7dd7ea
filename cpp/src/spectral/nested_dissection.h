// Nested dissection ordering (George 1973; separators from BFS level structures as in
// George & Liu 1978) for the supernodal factor (internal header).
#pragma once
#include "common/dispatch.h"
#include <cstdint>
#include <vector>

#include "spectral/sparse.h"

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// Nested dissection order (new -> old) of a graph given by the pattern of A. A part larger
// than `leaf` vertices is split by the smallest balanced level of a BFS level structure
// rooted at a pseudo-peripheral vertex (only level vertices with a neighbour on the far
// side are kept in the separator); the parts are ordered first, the separator last. A
// leaf is ordered by reverse BFS (RCM-like, so its elimination tree is nearly a chain).
std::vector<int64_t> nested_dissection_order(const SubCsr& A, int64_t leaf);

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
