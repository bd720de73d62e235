#include "cgemm.h"

#include <stdint.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void relu_pool_window_avx512(
    const float *base, const ptrdiff_t *offsets, ptrdiff_t positions, float *y, uint8_t *routes,
    ptrdiff_t count) {
  const __m512 zero = _mm512_setzero_ps();
  for (ptrdiff_t c = 0; c < count; c += 16) {
    __mmask16 lanes = count - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - c)) - 1);
    __m512 best = _mm512_maskz_loadu_ps(lanes, base + offsets[0] + c);
    __m128i index = _mm_setzero_si128();
    for (ptrdiff_t r = 1; r < positions; r++) {
      __m512 v = _mm512_maskz_loadu_ps(lanes, base + offsets[r] + c);
      __mmask16 greater = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
      best = _mm512_mask_mov_ps(best, greater, v);
      index = _mm_mask_mov_epi8(index, greater, _mm_set1_epi8((char)r));
    }
    __mmask16 positive = _mm512_cmp_ps_mask(best, zero, _CMP_GT_OQ);
    _mm512_mask_storeu_ps(y + c, lanes, _mm512_maskz_mov_ps(positive, best));
    _mm_mask_storeu_epi8(routes + c, lanes, _mm_mask_mov_epi8(_mm_set1_epi8((char)255), positive, index));
  }
}
#endif

int dml_relu_pool_window(const float *base, const ptrdiff_t *offsets, ptrdiff_t positions, float *y,
                         uint8_t *routes, ptrdiff_t count) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
  if (positions >= 1 && positions <= 255 && dml_sgemm_available()) {
    relu_pool_window_avx512(base, offsets, positions, y, routes, count);
    return 1;
  }
#endif
  (void)base, (void)offsets, (void)positions, (void)y, (void)routes, (void)count;
  return 0;
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void route_gradient_avx512(
    const float *g, const uint8_t *routes, const ptrdiff_t *offsets, ptrdiff_t positions, float *row,
    ptrdiff_t count) {
  for (ptrdiff_t c = 0; c < count; c += 16) {
    __mmask16 lanes = count - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - c)) - 1);
    __m512 gradient = _mm512_maskz_loadu_ps(lanes, g + c);
    __m128i route = _mm_maskz_loadu_epi8(lanes, routes + c);
    for (ptrdiff_t r = 0; r < positions; r++) {
      __mmask16 here = _mm_mask_cmpeq_epi8_mask(lanes, route, _mm_set1_epi8((char)r));
      if (!here) continue;
      float *at = row + offsets[r] + c;
      _mm512_mask_storeu_ps(at, here, _mm512_add_ps(_mm512_maskz_loadu_ps(here, at), gradient));
    }
  }
}
#endif

int dml_route_gradient(const float *g, const uint8_t *routes, const ptrdiff_t *offsets,
                       ptrdiff_t positions, float *row, ptrdiff_t count) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
  if (positions >= 1 && positions <= 255 && dml_sgemm_available()) {
    route_gradient_avx512(g, routes, offsets, positions, row, count);
    return 1;
  }
#endif
  (void)g, (void)routes, (void)offsets, (void)positions, (void)row, (void)count;
  return 0;
}
