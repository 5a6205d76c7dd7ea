// Run-time SIMD dispatch (the numpy / faiss scheme). The hot kernels of an op (the sources
// of cpp/src/<op>/ other than bind.cpp when the op has a dispatch.cpp) are compiled once
// per variant, each into its own namespace certkit::<op>::<variant>, with
//   baseline  -march=$CERTKIT_ARCH (x86-64-v2 by default: SSE4.2, POPCNT; any x86-64 since 2009)
//   avx2      -march=x86-64-v3     (AVX2, FMA, BMI2: Haswell 2013 and later)
//   avx512    -march=x86-64-v4     (AVX-512 F/BW/CD/DQ/VL: Skylake-Server 2017 and later)
// and <op>/dispatch.cpp defines the public functions of <op>.h, which forward to the
// variant chosen here: the best variant compiled in and supported by the CPU (and OS), or
// the one the environment variable CERTKIT_SIMD=baseline|avx2|avx512 asks for (read once,
// at load; a variant the CPU cannot run is refused and the best runnable one used).
//
// The variants link baseline objects first, so a function the compiler emits out of line
// in several variants (an inline function or a template) resolves to the least demanding
// copy; a copy only the avx512 objects emit is called only from avx512 code.
#pragma once

#ifndef CERTKIT_ISA
#define CERTKIT_ISA baseline  // namespace of the variant being compiled
#endif

// Marks a function whose auto-vectorised loops should use at most 256-bit vectors even in the
// avx512 variant (as -march=native's tuning does on AVX-512 Intel CPUs), where 512-bit code
// measured slower than a native build: the sampler's float64 Philox tile (the scalar libm
// that follows ran slower after 512-bit multiplies) and the CROWN backward pass (0.93 of
// native with 512-bit, 0.98 with 256-bit). Code generation only: no value changes where the
// function's arithmetic is order-independent or, as in the sampler, exact. A no-op in the
// baseline and avx2 variants and with other compilers.
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define CERTKIT_PREFER_256 __attribute__((target("prefer-vector-width=256")))
#else
#define CERTKIT_PREFER_256
#endif

namespace certkit {
namespace simd {

enum Isa : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2, kNumIsa = 3 };

// The variant the dispatched kernels run (an atomic load).
Isa active();
// Makes `isa` the running variant; false (and nothing changes) when it is not compiled in or
// the CPU cannot run it. Process-wide; for tests and benchmarks.
bool set_active(Isa isa);
// Compiled into this library / runnable on this CPU.
bool compiled(Isa isa);
bool supported(Isa isa);
// "baseline", "avx2", "avx512"; parse returns -1 for anything else.
const char* name(Isa isa);
int parse(const char* s);
// What CERTKIT_SIMD asked for at load ("" when unset) and whether it was honoured.
const char* requested();
bool request_honoured();
// The instruction set (an Isa value) the running variant's code was compiled for, reported
// by that code itself (rng/dispatch.cpp). Equals active() unless the dispatch is broken;
// a -march=native build reports what native enabled.
int probe();

}  // namespace simd
}  // namespace certkit

// Body of a dispatched function: `CERTKIT_DISPATCH(fn, args...)` returns fn(args...) of the
// running variant. Variants not compiled in fall through to baseline.
#if defined(CERTKIT_HAVE_AVX512)
#define CERTKIT_DISPATCH_AVX512_(fn, ...) \
  case ::certkit::simd::kAvx512:          \
    return avx512::fn(__VA_ARGS__);
#else
#define CERTKIT_DISPATCH_AVX512_(fn, ...)
#endif
#if defined(CERTKIT_HAVE_AVX2)
#define CERTKIT_DISPATCH_AVX2_(fn, ...) \
  case ::certkit::simd::kAvx2:          \
    return avx2::fn(__VA_ARGS__);
#else
#define CERTKIT_DISPATCH_AVX2_(fn, ...)
#endif
#define CERTKIT_DISPATCH(fn, ...)              \
  switch (::certkit::simd::active()) {         \
    CERTKIT_DISPATCH_AVX512_(fn, __VA_ARGS__)  \
    CERTKIT_DISPATCH_AVX2_(fn, __VA_ARGS__)    \
    default:                                   \
      return baseline::fn(__VA_ARGS__);        \
  }

// Declares the given declarations once per compiled variant namespace (for dispatch.cpp).
#define CERTKIT_DECLARE_BASELINE_(...) namespace baseline { __VA_ARGS__ }
#if defined(CERTKIT_HAVE_AVX2)
#define CERTKIT_DECLARE_AVX2_(...) namespace avx2 { __VA_ARGS__ }
#else
#define CERTKIT_DECLARE_AVX2_(...)
#endif
#if defined(CERTKIT_HAVE_AVX512)
#define CERTKIT_DECLARE_AVX512_(...) namespace avx512 { __VA_ARGS__ }
#else
#define CERTKIT_DECLARE_AVX512_(...)
#endif
#define CERTKIT_DECLARE_VARIANTS(...)                                          \
  CERTKIT_DECLARE_BASELINE_(__VA_ARGS__) CERTKIT_DECLARE_AVX2_(__VA_ARGS__) \
  CERTKIT_DECLARE_AVX512_(__VA_ARGS__)

// Expands to its arguments only when the variant is compiled in.
#if defined(CERTKIT_HAVE_AVX2)
#define CERTKIT_IF_AVX2_(...) __VA_ARGS__
#else
#define CERTKIT_IF_AVX2_(...)
#endif
#if defined(CERTKIT_HAVE_AVX512)
#define CERTKIT_IF_AVX512_(...) __VA_ARGS__
#else
#define CERTKIT_IF_AVX512_(...)
#endif
