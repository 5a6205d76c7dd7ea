// Host/device qualifiers so one implementation body serves the CPU and CUDA builds.
#pragma once
#if defined(__CUDACC__)
#define CK_HD __host__ __device__ __forceinline__
#else
#define CK_HD inline
#endif
