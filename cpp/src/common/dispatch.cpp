// Run-time SIMD dispatch: CPU detection and the CERTKIT_SIMD override (see dispatch.h).
#include "common/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace certkit {
namespace simd {
namespace {

bool cpu_has(Isa isa) {
  if (isa == kBaseline) return true;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // libgcc's cpuid checks include the OS's XSAVE support of the AVX / AVX-512 state.
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                  __builtin_cpu_supports("f16c") && __builtin_cpu_supports("movbe") &&
                  __builtin_cpu_supports("lzcnt");
  if (isa == kAvx2) return v3;
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl");
  return isa == kAvx512 && v4;
#else
  return false;
#endif
}

constexpr bool kCompiled[kNumIsa] = {
    true,
#if defined(CERTKIT_HAVE_AVX2)
    true,
#else
    false,
#endif
#if defined(CERTKIT_HAVE_AVX512)
    true,
#else
    false,
#endif
};

struct State {
  std::atomic<int> active{kBaseline};
  std::string requested;
  bool honoured = true;
  State() {
    int best = kBaseline;
    for (int i = kBaseline; i < kNumIsa; ++i)
      if (kCompiled[i] && cpu_has(Isa(i))) best = i;
    const char* env = std::getenv("CERTKIT_SIMD");
    if (env != nullptr && *env != '\0') {
      requested = env;
      const int want = parse(env);
      honoured = want >= 0 && kCompiled[want] && cpu_has(Isa(want));
      if (honoured) best = want;
    }
    active.store(best);
  }
};

State& state() {
  static State s;
  return s;
}

}  // namespace

Isa active() { return Isa(state().active.load(std::memory_order_relaxed)); }

bool compiled(Isa isa) { return isa >= kBaseline && isa < kNumIsa && kCompiled[isa]; }
bool supported(Isa isa) { return isa >= kBaseline && isa < kNumIsa && cpu_has(isa); }

bool set_active(Isa isa) {
  if (!compiled(isa) || !supported(isa)) return false;
  state().active.store(isa);
  return true;
}

const char* name(Isa isa) {
  switch (isa) {
    case kAvx2:
      return "avx2";
    case kAvx512:
      return "avx512";
    default:
      return "baseline";
  }
}

int parse(const char* s) {
  if (s == nullptr) return -1;
  for (int i = kBaseline; i < kNumIsa; ++i)
    if (std::strcmp(s, name(Isa(i))) == 0) return i;
  return -1;
}

const char* requested() { return state().requested.c_str(); }
bool request_honoured() { return state().honoured; }

}  // namespace simd
}  // namespace certkit
