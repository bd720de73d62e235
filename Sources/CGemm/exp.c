#include "cgemm.h"

#include <stdint.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

// The same operations as the Swift `exp4` in Kernels+SIMD.swift (Cephes' polynomial on a range
// reduced by n·ln 2), in the same order and without fused multiply-adds, so both give the same
// bits; 16 lanes at a time.
__attribute__((target("avx512f"))) static inline __mmask16 sign_mask(__m512 v) {
  return _mm512_cmplt_epi32_mask(_mm512_castps_si512(v), _mm512_setzero_si512());
}

__attribute__((target("avx512f"))) static void exp_f32_avx512(float *p, ptrdiff_t count) {
  const __m512 magic = _mm512_set1_ps(12582912.0f), low = _mm512_set1_ps(-87.33654f),
               high = _mm512_set1_ps(88.0f), overflow = _mm512_set1_ps(88.72283f);
  const __m512 zero = _mm512_setzero_ps(), infinity = _mm512_set1_ps(__builtin_inff()), one = _mm512_set1_ps(1.0f);
  for (ptrdiff_t j = 0; j < count; j += 16) {
    __mmask16 lanes = count - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - j)) - 1);
    __m512 x0 = _mm512_maskz_loadu_ps(lanes, p + j);
    // Masks from the differences' sign bits, as the Swift version takes them.
    __mmask16 below = sign_mask(_mm512_sub_ps(x0, low));
    __mmask16 above = sign_mask(_mm512_sub_ps(high, x0));
    __m512 x = _mm512_mask_mov_ps(_mm512_mask_mov_ps(x0, below, low), above, high);
    __m512 t = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), magic);
    __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_add_ps(_mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f))),
                             _mm512_mul_ps(n, _mm512_set1_ps(2.1219444e-4f)));
    __m512 y = _mm512_set1_ps(1.98756915e-4f);
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(y, _mm512_mul_ps(r, r)), r), one);
    __m512i bits = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(magic));
    __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(127)), 23));
    __m512 result = _mm512_mask_mov_ps(_mm512_mul_ps(y, scale), below, zero);
    result = _mm512_mask_mov_ps(result, sign_mask(_mm512_sub_ps(overflow, x0)), infinity);
    // NaN lanes keep their input.
    __mmask16 nan = _mm512_cmp_ps_mask(x0, x0, _CMP_UNORD_Q);
    _mm512_mask_storeu_ps(p + j, lanes, _mm512_mask_mov_ps(result, nan, x0));
  }
}

// IEEE square root, 16 lanes at a time (correctly rounded, so the same values as any other way).
__attribute__((target("avx512f"))) static void sqrt_f32_avx512(float *p, ptrdiff_t count) {
  for (ptrdiff_t j = 0; j < count; j += 16) {
    __mmask16 lanes = count - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - j)) - 1);
    _mm512_mask_storeu_ps(p + j, lanes, _mm512_sqrt_ps(_mm512_maskz_loadu_ps(lanes, p + j)));
  }
}
#endif

int dml_sqrt_f32_wide(float *p, ptrdiff_t count) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
  if (dml_sgemm_available()) {
    sqrt_f32_avx512(p, count);
    return 1;
  }
#endif
  (void)p, (void)count;
  return 0;
}

int dml_exp_f32(float *p, ptrdiff_t count) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
  if (dml_sgemm_available()) {
    exp_f32_avx512(p, count);
    return 1;
  }
#endif
  (void)p, (void)count;
  return 0;
}
