// CSR matrix of one connected component, as the factors and the Lanczos solver take it
// (internal header).
#pragma once
#include "common/dispatch.h"
#include <cstdint>
#include <vector>

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

struct SubCsr {
  int64_t n;
  std::vector<int64_t> indptr, indices;
  std::vector<double> data;
};

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
