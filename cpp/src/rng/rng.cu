// CUDA fills for the Philox sampler: one thread per Philox block, the same CK_HD body as
// the CPU build (philox.h), so float32 output is bit-identical to the CPU fill (the CUDA
// module is compiled with -fmad=false).
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "rng/philox.h"
#include "rng/rng_cuda.h"

namespace certkit {
namespace rng {
namespace {

__global__ void fill_f32_kernel(float* out, int64_t B, int64_t M, uint64_t seed,
                                const uint64_t* streams, const uint64_t* offsets, int dist,
                                float a, float b, int64_t blocks_per_row) {
  const int64_t gid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (gid >= B * blocks_per_row) return;
  const int64_t r = gid / blocks_per_row;
  const int64_t k = gid % blocks_per_row;
  const uint64_t off = offsets[r];
  const uint64_t blk = off / 4 + uint64_t(k);
  uint32_t c0 = uint32_t(blk), c1 = uint32_t(blk >> 32);
  uint32_t c2 = uint32_t(streams[r]), c3 = uint32_t(streams[r] >> 32);
  philox4x32_10(c0, c1, c2, c3, uint32_t(seed), uint32_t(seed >> 32));
  float v[4];
  if (dist == 0) {
    normal4f(c0, c1, c2, c3, v[0], v[1], v[2], v[3]);
    for (int j = 0; j < 4; ++j) v[j] = a + b * v[j];
  } else if (dist == 1) {
    const uint32_t w[4] = {c0, c1, c2, c3};
    for (int j = 0; j < 4; ++j) v[j] = a + (b - a) * u32_to_open01f(w[j]);
  } else {
    const uint32_t w[4] = {c0, c1, c2, c3};
    for (int j = 0; j < 4; ++j) v[j] = a + b * laplace_std(w[j]);
  }
  for (int j = 0; j < 4; ++j) {
    const uint64_t e = blk * 4 + uint64_t(j);  // stream element index
    if (e >= off && e < off + uint64_t(M)) out[r * M + int64_t(e - off)] = v[j];
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace

void fill_f32_device(float* out, int64_t B, int64_t M, uint64_t seed, const uint64_t* streams,
                     const uint64_t* offsets, int dist, float a, float b) {
  if (B <= 0 || M <= 0) return;
  // host copies of the per-row stream/offset tables
  uint64_t* d_tab = nullptr;
  check(cudaMalloc(&d_tab, sizeof(uint64_t) * 2 * size_t(B)), "cudaMalloc");
  check(cudaMemcpy(d_tab, streams, sizeof(uint64_t) * size_t(B), cudaMemcpyHostToDevice), "copy streams");
  check(cudaMemcpy(d_tab + B, offsets, sizeof(uint64_t) * size_t(B), cudaMemcpyHostToDevice), "copy offsets");
  uint64_t max_span = 0;
  for (int64_t r = 0; r < B; ++r) {
    const uint64_t span = (offsets[r] + uint64_t(M) - 1) / 4 - offsets[r] / 4 + 1;
    max_span = span > max_span ? span : max_span;
  }
  const int64_t total = B * int64_t(max_span);
  const int threads = 256;
  const int64_t grid = (total + threads - 1) / threads;
  fill_f32_kernel<<<unsigned(grid), threads>>>(out, B, M, seed, d_tab, d_tab + B, dist, a, b,
                                               int64_t(max_span));
  const cudaError_t launch = cudaGetLastError();
  const cudaError_t sync = cudaDeviceSynchronize();
  cudaFree(d_tab);
  check(launch, "fill kernel launch");
  check(sync, "fill kernel");
}

}  // namespace rng
}  // namespace certkit
