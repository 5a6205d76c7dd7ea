// build_info(): what libcertkit_core was compiled with, and which SIMD variant runs.
#pragma once

namespace certkit {
namespace build {

const char* version();     // e.g. "0.1.0"
const char* compiler();    // e.g. "GNU 12.2.0"
const char* flags();       // optimisation flags of the baseline build
const char* build_type();  // CMake build type
bool openmp();             // compiled with OpenMP
bool native();             // built with -march=native (no run-time dispatch)
const char* variants();    // compiled SIMD variants, e.g. "baseline,avx2,avx512"
const char* marchs();      // their -march, e.g. "baseline=x86-64-v2,avx2=x86-64-v3,..."
const char* simd();        // the running variant ("native" for a native build)
int max_threads();         // OpenMP threads the kernels use
void set_num_threads(int n);

}  // namespace build
}  // namespace certkit
