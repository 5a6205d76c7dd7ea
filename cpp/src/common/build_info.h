// build_info(): what this extension was compiled with.
#pragma once
#include <string>

namespace certkit {
// The SIMD level the compiler targeted for this translation unit set, e.g. "avx512f",
// "avx2+fma", "sse4.2", "neon" or "scalar".
inline std::string simd_level() {
#if defined(__AVX512F__)
  return "avx512f";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2+fma";
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__AVX__)
  return "avx";
#elif defined(__SSE4_2__)
  return "sse4.2";
#elif defined(__SSE2__)
  return "sse2";
#elif defined(__ARM_NEON)
  return "neon";
#else
  return "scalar";
#endif
}
}  // namespace certkit
