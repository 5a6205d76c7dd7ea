// CSR matrix of one connected component, as the factors and the Lanczos solver take it
// (internal header).
#pragma once
#include <cstdint>
#include <vector>

namespace certkit {
namespace spectral {

struct SubCsr {
  int64_t n;
  std::vector<int64_t> indptr, indices;
  std::vector<double> data;
};

}  // namespace spectral
}  // namespace certkit
