// <immintrin.h> for the SIMD kernel files.
// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves (_mm512_undefined_ps),
// which -Wall reports as uninitialised uses wherever such an intrinsic is inlined (GCC bug 105593,
// fixed in 12.3). The diagnostics point into the header, so they are silenced for its lines only.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
