#include "cgemm.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define DML_X86 1
#endif

enum { MR = 6, KC = 128 };

int dml_sgemm_available(void) {
#if DML_X86
  static int cached = -1;
  int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (value < 0) {
    __builtin_cpu_init();
    value = __builtin_cpu_supports("avx512f") ? 1 : 0;
    __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
  }
  return value;
#else
  return 0;
#endif
}

int dml_sgemm_optimized(void) {
#if defined(__OPTIMIZE__)
  return 1;
#else
  return 0;
#endif
}

// Per-thread buffers that only grow: [0] a transposed operand, [1] a transposed product.
static _Thread_local float *buffers[2] = {NULL, NULL};
static _Thread_local size_t capacities[2] = {0, 0};

static float *thread_buffer(int which, size_t count) {
  if (count > capacities[which]) {
    float *grown = (float *)realloc(buffers[which], count * sizeof(float));
    if (!grown) return NULL;
    buffers[which] = grown;
    capacities[which] = count;
  }
  return buffers[which];
}

#if DML_X86
// One tile: rows i < mr of C, 16 * nv columns, over kc values of p. The accumulators start from
// C (load) or zero.
#define DML_TILE(MRV, NV)                                                                              \
  __attribute__((target("avx512f"))) static void tile_##MRV##_##NV(                                  \
      ptrdiff_t kc, const float *a, ptrdiff_t rs, ptrdiff_t cs, const float *b, ptrdiff_t ldb,       \
      float *c, ptrdiff_t ldc, int load) {                                                           \
    __m512 acc[MRV][NV];                                                                             \
    for (int i = 0; i < MRV; i++)                                                                    \
      for (int v = 0; v < NV; v++)                                                                   \
        acc[i][v] = load ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();              \
    for (ptrdiff_t p = 0; p < kc; p++) {                                                             \
      __m512 bv[NV];                                                                                 \
      for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + p * ldb + 16 * v);                    \
      for (int i = 0; i < MRV; i++) {                                                                \
        __m512 x = _mm512_set1_ps(a[i * rs + p * cs]);                                               \
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(x, bv[v], acc[i][v]);               \
      }                                                                                              \
    }                                                                                                \
    for (int i = 0; i < MRV; i++)                                                                    \
      for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);                \
  }
#define DML_TILES(MRV) DML_TILE(MRV, 1) DML_TILE(MRV, 2) DML_TILE(MRV, 3) DML_TILE(MRV, 4)
DML_TILES(1)
DML_TILES(2)
DML_TILES(3)
DML_TILES(4)
DML_TILES(5)
DML_TILES(6)

typedef void (*tile_fn)(ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t,
                        float *, ptrdiff_t, int);
#define DML_ROW(MRV) {tile_##MRV##_1, tile_##MRV##_2, tile_##MRV##_3, tile_##MRV##_4}
static const tile_fn tiles[MR][4] = {DML_ROW(1), DML_ROW(2), DML_ROW(3), DML_ROW(4), DML_ROW(5), DML_ROW(6)};

static void sgemm_avx512(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t rs,
                         ptrdiff_t cs, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                         int accumulate) {
  for (ptrdiff_t p0 = 0; p0 < k; p0 += KC) {
    ptrdiff_t kc = k - p0 < KC ? k - p0 : KC;
    int load = accumulate || p0 > 0;
    for (ptrdiff_t j = 0; j < n; j += 64) {
      int nv = (int)((n - j) / 16 < 4 ? (n - j) / 16 : 4);
      for (ptrdiff_t i = 0; i < m; i += MR) {
        int mr = (int)(m - i < MR ? m - i : MR);
        tiles[mr - 1][nv - 1](kc, a + i * rs + p0 * cs, rs, cs, b + p0 * ldb + j, ldb,
                              c + i * ldc + j, ldc, load);
      }
    }
  }
}

// One tile of C = A Bᵀ with both operands' rows contiguous along p: rows i < MRV of A against
// rows j < NRV of B, each value a 16-lane partial sum over p (the tail masked), then its lanes
// added. Nothing is copied, which suits a small batch against a large weight matrix.
#define DML_DOT(MRV, NRV)                                                                              \
  __attribute__((target("avx512f"))) static void dot_##MRV##_##NRV(                                  \
      ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, float *c,           \
      ptrdiff_t ldc, int accumulate) {                                                               \
    __m512 acc[MRV][NRV];                                                                            \
    for (int i = 0; i < MRV; i++)                                                                    \
      for (int j = 0; j < NRV; j++) acc[i][j] = _mm512_setzero_ps();                                 \
    ptrdiff_t p = 0;                                                                                 \
    for (; p + 16 <= k; p += 16) {                                                                   \
      __m512 av[MRV], bv[NRV];                                                                       \
      for (int i = 0; i < MRV; i++) av[i] = _mm512_loadu_ps(a + i * lda + p);                        \
      for (int j = 0; j < NRV; j++) bv[j] = _mm512_loadu_ps(b + j * ldb + p);                        \
      for (int i = 0; i < MRV; i++)                                                                  \
        for (int j = 0; j < NRV; j++) acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);          \
    }                                                                                                \
    if (p < k) {                                                                                     \
      __mmask16 mask = (__mmask16)((1u << (k - p)) - 1);                                             \
      __m512 av[MRV], bv[NRV];                                                                       \
      for (int i = 0; i < MRV; i++) av[i] = _mm512_maskz_loadu_ps(mask, a + i * lda + p);            \
      for (int j = 0; j < NRV; j++) bv[j] = _mm512_maskz_loadu_ps(mask, b + j * ldb + p);            \
      for (int i = 0; i < MRV; i++)                                                                  \
        for (int j = 0; j < NRV; j++) acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);          \
    }                                                                                                \
    for (int i = 0; i < MRV; i++)                                                                    \
      for (int j = 0; j < NRV; j++) {                                                                \
        float s = _mm512_reduce_add_ps(acc[i][j]);                                                   \
        c[i * ldc + j] = accumulate ? c[i * ldc + j] + s : s;                                        \
      }                                                                                              \
  }
#define DML_DOTS(MRV) DML_DOT(MRV, 1) DML_DOT(MRV, 2) DML_DOT(MRV, 3) DML_DOT(MRV, 4)
DML_DOTS(1)
DML_DOTS(2)
DML_DOTS(3)
DML_DOTS(4)

typedef void (*dot_fn)(ptrdiff_t, const float *, ptrdiff_t, const float *, ptrdiff_t, float *,
                       ptrdiff_t, int);
#define DML_DOT_ROW(MRV) {dot_##MRV##_1, dot_##MRV##_2, dot_##MRV##_3, dot_##MRV##_4}
static const dot_fn dots[4][4] = {DML_DOT_ROW(1), DML_DOT_ROW(2), DML_DOT_ROW(3), DML_DOT_ROW(4)};

// C (+)= A Bᵀ, A rows contiguous (lda), B rows contiguous (ldb): 4 x 4 tiles, 4 rows of A against
// every row of B, so the rows of A stay in L1 while B streams.
static void sgemm_dot_avx512(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                             const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate) {
  for (ptrdiff_t i = 0; i < m; i += 4) {
    int mr = (int)(m - i < 4 ? m - i : 4);
    for (ptrdiff_t j = 0; j < n; j += 4) {
      int nr = (int)(n - j < 4 ? n - j : 4);
      dots[mr - 1][nr - 1](k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, accumulate);
    }
  }
}
#endif

// The same products without vectors: each value of C a sum over p in order, with separate
// multiplies and adds.
static void sgemm_portable(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t rs,
                           ptrdiff_t cs, const float *b, ptrdiff_t ldb, int b_transposed, float *c,
                           ptrdiff_t ldc, int accumulate) {
  ptrdiff_t b_row = b_transposed ? 1 : ldb, b_column = b_transposed ? ldb : 1;
  for (ptrdiff_t i = 0; i < m; i++)
    for (ptrdiff_t j = 0; j < n; j++) {
      float total = 0;
      for (ptrdiff_t p = 0; p < k; p++) total += a[i * rs + p * cs] * b[p * b_row + j * b_column];
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + total : total;
    }
}

int dml_sgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t a_row_stride,
              ptrdiff_t a_column_stride, const float *b, ptrdiff_t ldb, int b_transposed, float *c,
              ptrdiff_t ldc, int accumulate) {
  if (m < 0 || n < 0 || k < 0) return -1;
  if (m == 0 || n == 0) return 0;
  if (k == 0) {
    if (!accumulate)
      for (ptrdiff_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
    return 0;
  }
#if DML_X86
  if (dml_sgemm_available()) {
    // A Bᵀ with m a multiple of 16: (A Bᵀ)ᵀ = B Aᵀ, with Aᵀ copied (k x m, small next to B for a
    // batch's rows against a weight matrix) and the product transposed onto C after.
    int swapped = b_transposed && m % 16 == 0;
    float *at = NULL, *product = NULL;
    if (swapped) {
      at = thread_buffer(0, (size_t)k * (size_t)m);
      product = thread_buffer(1, (size_t)n * (size_t)m);
      if (!at || !product) return -1;
      for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t p = 0; p < k; p++) at[p * m + i] = a[i * a_row_stride + p * a_column_stride];
    } else if (!(b_transposed && a_column_stride == 1)) {
      if (n % 16 != 0) return -1;
      if (b_transposed) {
        float *t = thread_buffer(0, (size_t)k * (size_t)n);
        if (!t) return -1;
        for (ptrdiff_t j = 0; j < n; j++)
          for (ptrdiff_t p = 0; p < k; p++) t[p * n + j] = b[j * ldb + p];
        b = t;
        ldb = n;
        b_transposed = 0;
      }
    }
    // Subnormal operands and results are taken as zero while the kernels run (the MXCSR's
    // flush-to-zero and denormals-are-zero bits, restored after): a multiply-add that meets one
    // otherwise takes a microcode assist, about 250 times slower, and a training step's
    // gradients hold some.
    unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);
    if (swapped) {
      sgemm_avx512(n, m, k, b, ldb, 1, at, m, product, m, 0);
      for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++)
          c[i * ldc + j] = accumulate ? c[i * ldc + j] + product[j * m + i] : product[j * m + i];
    } else if (b_transposed) {
      sgemm_dot_avx512(m, n, k, a, a_row_stride, b, ldb, c, ldc, accumulate);
    } else {
      sgemm_avx512(m, n, k, a, a_row_stride, a_column_stride, b, ldb, c, ldc, accumulate);
    }
    _mm_setcsr(saved);
    return 0;
  }
#endif
  sgemm_portable(m, n, k, a, a_row_stride, a_column_stride, b, ldb, b_transposed, c, ldc,
                 accumulate);
  return 0;
}
