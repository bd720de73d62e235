// Header-only vector kernels that Swift cannot express on a baseline x86-64 target: the
// standard library's SIMD `squareRoot()` becomes one `sqrtss` per lane with a branch to libm's
// `sqrtf` for negative lanes (errno), where SSE2 has a 4-lane `sqrtps`. Inline, so there is no
// library to link. Other targets fall back to the compiler's square root.
#ifndef DML_CSIMD_H
#define DML_CSIMD_H

#include <stddef.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/// p[j] = sqrt(p[j]) for j < count (negative lanes give NaN, as IEEE square root does).
static inline void dml_sqrt_f32(float *p, ptrdiff_t count) {
  ptrdiff_t j = 0;
#if defined(__SSE2__)
  for (; j + 4 <= count; j += 4) _mm_storeu_ps(p + j, _mm_sqrt_ps(_mm_loadu_ps(p + j)));
  for (; j < count; j++) _mm_store_ss(p + j, _mm_sqrt_ss(_mm_load_ss(p + j)));
#else
  for (; j < count; j++) p[j] = __builtin_sqrtf(p[j]);
#endif
}

/// p[j] = sqrt(p[j]) for j < count, in double precision.
static inline void dml_sqrt_f64(double *p, ptrdiff_t count) {
  ptrdiff_t j = 0;
#if defined(__SSE2__)
  for (; j + 2 <= count; j += 2) _mm_storeu_pd(p + j, _mm_sqrt_pd(_mm_loadu_pd(p + j)));
  for (; j < count; j++) {
    __m128d v = _mm_load_sd(p + j);
    _mm_store_sd(p + j, _mm_sqrt_sd(v, v));
  }
#else
  for (; j < count; j++) p[j] = __builtin_sqrt(p[j]);
#endif
}

#endif
