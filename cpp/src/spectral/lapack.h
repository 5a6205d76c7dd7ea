// Optional BLAS / LAPACK for the spectral ops, loaded at run time (internal header; the
// public switches has_lapack / lapack_info / set_lapack_enabled are in spectral.h).
#pragma once
#include "common/dispatch.h"
#include <string>

#include "common/blas.h"

namespace certkit {
namespace spectral {
namespace CERTKIT_ISA {  // one copy per SIMD variant (common/dispatch.h)

// Fortran BLAS / LAPACK entry points (reference interface, 32-bit integers), found at run
// time by common/blas.h.
using Lapack = blas::Lib;

// The loaded library, or nullptr when none was found or set_lapack_enabled(false) is in force.
const Lapack* lapack();

}  // namespace CERTKIT_ISA
}  // namespace spectral
}  // namespace certkit
