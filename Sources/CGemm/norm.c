// Batch normalisation over NHWC rows, channel by channel: the loops of BatchNorm's forward and
// backward passes with the channels innermost, so that each channel's sums run over the rows in
// order (the same values as a per-channel loop) while the channels fill the vector lanes. Without
// `restrict` and with Swift's checked index arithmetic the same loops stay scalar.
#include "cgemm.h"

#include <math.h>

// The sums stay separate multiplies and adds, as in the Swift code this replaces, so that the
// values do not depend on whether the CPU has fused multiply-adds.
#pragma clang fp contract(off)

#define DML_BN_FORWARD(NAME, T, ATTR)                                                               \
  ATTR static void NAME(const T *restrict x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t lo, ptrdiff_t hi,  \
                        int training, T eps, T momentum, T *restrict mean, T *restrict inv,         \
                        T *restrict running_mean, T *restrict running_var, const T *restrict gamma, \
                        const T *restrict beta, T *restrict y) {                                    \
    if (training) {                                                                                 \
      for (ptrdiff_t ch = lo; ch < hi; ch++) mean[ch] = 0, inv[ch] = 0;                             \
      for (ptrdiff_t r = 0; r < n; r++) {                                                           \
        const T *restrict xr = x + r * c;                                                           \
        for (ptrdiff_t ch = lo; ch < hi; ch++) mean[ch] += xr[ch];                                  \
      }                                                                                             \
      for (ptrdiff_t ch = lo; ch < hi; ch++) mean[ch] /= (T)n;                                      \
      for (ptrdiff_t r = 0; r < n; r++) {                                                           \
        const T *restrict xr = x + r * c;                                                           \
        for (ptrdiff_t ch = lo; ch < hi; ch++) {                                                    \
          T d = xr[ch] - mean[ch];                                                                  \
          inv[ch] += d * d;                                                                         \
        }                                                                                           \
      }                                                                                             \
      for (ptrdiff_t ch = lo; ch < hi; ch++) {                                                      \
        T v = inv[ch];                                                                              \
        inv[ch] = (T)1 / (T)sqrt(v / (T)n + eps);                                                   \
        running_mean[ch] = ((T)1 - momentum) * running_mean[ch] + momentum * mean[ch];              \
        running_var[ch] = ((T)1 - momentum) * running_var[ch] + momentum * v / (T)(n - 1);          \
      }                                                                                             \
    } else {                                                                                        \
      for (ptrdiff_t ch = lo; ch < hi; ch++) {                                                      \
        mean[ch] = running_mean[ch];                                                                \
        inv[ch] = (T)1 / (T)sqrt(running_var[ch] + eps);                                            \
      }                                                                                             \
    }                                                                                               \
    for (ptrdiff_t r = 0; r < n; r++) {                                                             \
      const T *restrict xr = x + r * c;                                                             \
      T *restrict yr = y + r * c;                                                                   \
      for (ptrdiff_t ch = lo; ch < hi; ch++) yr[ch] = gamma[ch] * ((xr[ch] - mean[ch]) * inv[ch]) + beta[ch]; \
    }                                                                                               \
  }

#define DML_BN_BACKWARD(NAME, T, ATTR)                                                              \
  ATTR static void NAME(const T *restrict g, const T *restrict x, ptrdiff_t n, ptrdiff_t c,         \
                        ptrdiff_t lo, ptrdiff_t hi, const T *restrict mean, const T *restrict inv,  \
                        const T *restrict gamma, int training, T *restrict dgamma,                  \
                        T *restrict dbeta, T *restrict k1, T *restrict k2, T *restrict k3,          \
                        T *restrict gx) {                                                           \
    for (ptrdiff_t ch = lo; ch < hi; ch++) dgamma[ch] = 0, dbeta[ch] = 0;                           \
    for (ptrdiff_t r = 0; r < n; r++) {                                                             \
      const T *restrict gr = g + r * c, *restrict xr = x + r * c;                                   \
      for (ptrdiff_t ch = lo; ch < hi; ch++) {                                                      \
        T xh = (xr[ch] - mean[ch]) * inv[ch];                                                       \
        dbeta[ch] += gr[ch];                                                                        \
        dgamma[ch] += gr[ch] * xh;                                                                  \
      }                                                                                             \
    }                                                                                               \
    if (!gx) return;                                                                                \
    for (ptrdiff_t ch = lo; ch < hi; ch++) {                                                        \
      k1[ch] = gamma[ch] * inv[ch];                                                                 \
      k2[ch] = training ? dbeta[ch] / (T)n : 0;                                                     \
      k3[ch] = training ? dgamma[ch] / (T)n : 0;                                                    \
    }                                                                                               \
    for (ptrdiff_t r = 0; r < n; r++) {                                                             \
      const T *restrict gr = g + r * c, *restrict xr = x + r * c;                                   \
      T *restrict gxr = gx + r * c;                                                                 \
      for (ptrdiff_t ch = lo; ch < hi; ch++) {                                                      \
        T xh = (xr[ch] - mean[ch]) * inv[ch];                                                       \
        gxr[ch] = k1[ch] * (gr[ch] - k2[ch] - xh * k3[ch]);                                         \
      }                                                                                             \
    }                                                                                               \
  }

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define DML_AVX512 __attribute__((target("avx512f")))
DML_BN_FORWARD(forward_f32_avx512, float, DML_AVX512)
DML_BN_FORWARD(forward_f64_avx512, double, DML_AVX512)
DML_BN_BACKWARD(backward_f32_avx512, float, DML_AVX512)
DML_BN_BACKWARD(backward_f64_avx512, double, DML_AVX512)
#define DML_HAS_AVX512 dml_sgemm_available()
#else
#define DML_HAS_AVX512 0
#define forward_f32_avx512 forward_f32
#define forward_f64_avx512 forward_f64
#define backward_f32_avx512 backward_f32
#define backward_f64_avx512 backward_f64
#endif
DML_BN_FORWARD(forward_f32, float, )
DML_BN_FORWARD(forward_f64, double, )
DML_BN_BACKWARD(backward_f32, float, )
DML_BN_BACKWARD(backward_f64, double, )

void dml_batchnorm_forward_f32(const float *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t lo, ptrdiff_t hi,
                               int training, float eps, float momentum, float *mean, float *inv,
                               float *running_mean, float *running_var, const float *gamma,
                               const float *beta, float *y) {
  (DML_HAS_AVX512 ? forward_f32_avx512 : forward_f32)(x, n, c, lo, hi, training, eps, momentum, mean, inv,
                                                      running_mean, running_var, gamma, beta, y);
}

void dml_batchnorm_forward_f64(const double *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t lo, ptrdiff_t hi,
                               int training, double eps, double momentum, double *mean, double *inv,
                               double *running_mean, double *running_var, const double *gamma,
                               const double *beta, double *y) {
  (DML_HAS_AVX512 ? forward_f64_avx512 : forward_f64)(x, n, c, lo, hi, training, eps, momentum, mean, inv,
                                                      running_mean, running_var, gamma, beta, y);
}

void dml_batchnorm_backward_f32(const float *g, const float *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t lo,
                                ptrdiff_t hi, const float *mean, const float *inv, const float *gamma,
                                int training, float *dgamma, float *dbeta, float *scratch, float *gx) {
  (DML_HAS_AVX512 ? backward_f32_avx512 : backward_f32)(g, x, n, c, lo, hi, mean, inv, gamma, training, dgamma,
                                                        dbeta, scratch, scratch + c, scratch + 2 * c, gx);
}

void dml_batchnorm_backward_f64(const double *g, const double *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t lo,
                                ptrdiff_t hi, const double *mean, const double *inv, const double *gamma,
                                int training, double *dgamma, double *dbeta, double *scratch, double *gx) {
  (DML_HAS_AVX512 ? backward_f64_avx512 : backward_f64)(g, x, n, c, lo, hi, mean, inv, gamma, training, dgamma,
                                                        dbeta, scratch, scratch + c, scratch + 2 * c, gx);
}
