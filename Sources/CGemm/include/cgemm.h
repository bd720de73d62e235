// Single-precision GEMM kernels for AVX-512 CPUs, chosen at run time.
//
// Debian's OpenBLAS 0.3.21 runs its SSE3 kernels on recent AVX-512 CPUs unless
// OPENBLAS_CORETYPE is set before the process starts, and even its AVX-512 kernels reach only
// about a third of the core's peak on the narrow products of a training step (a 392 x 288 block
// of convolution patches times 64 filters). These kernels keep a 6-row by 64-column tile of C in
// registers and stream A and B through it.
#ifndef DML_CGEMM_H
#define DML_CGEMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when this CPU runs the AVX-512 kernels (AVX-512F), else 0.
int dml_sgemm_available(void);

/// 1 when this file was compiled with optimisation (the kernels run at about 2 GFLOP/s
/// without it), else 0.
int dml_sgemm_optimized(void);

/// C = A B (accumulate == 0) or C += A B (accumulate != 0), row-major C (m x n, row stride ldc),
/// where A(i, p) = a[i * a_row_stride + p * a_column_stride] (m x k), so that either layout of A
/// needs no copy, and B is row-major (k x n, row stride ldb) when b_transposed == 0, or its
/// transpose is (n x k, row stride ldb) when b_transposed != 0.
///
/// With AVX-512: when B is transposed and m is a multiple of 16, A is copied transposed into a
/// per-thread buffer, B Aᵀ is computed as below into another, and its transpose is written (or
/// added) to C. When B is transposed and A's rows are contiguous (a_column_stride == 1), each
/// value of C is a 16-lane dot product of a row of A and a row of B, its lanes then added; else n
/// must be a multiple of 16 (a transposed B is first copied into a per-thread buffer that only
/// grows), and each value of C is a sum over p in order, in blocks of 128 added onto C, with
/// fused multiply-adds. Without AVX-512, a portable loop sums over p in order. Returns 0, or -1
/// when n is not a multiple of 16 where that is needed, a size is negative, or the buffer cannot
/// be allocated (C is then untouched).
int dml_sgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t a_row_stride,
              ptrdiff_t a_column_stride, const float *b, ptrdiff_t ldb, int b_transposed, float *c,
              ptrdiff_t ldc, int accumulate);

/// Max-pooling after ReLU for one window over `count` channels, in 16-lane AVX-512 vectors:
/// window position r holds its values at base + offsets[r]; y[c] = max(0, max_r value_r[c]),
/// and routes[c] is the first r holding that maximum, or 255 when it is not positive. The same
/// values as the Swift vector code (`Float.reluPoolWindow`), which runs when this returns 0
/// (no AVX-512, or positions outside 1...255); returns 1 when done.
int dml_relu_pool_window(const float *base, const ptrdiff_t *offsets, ptrdiff_t positions, float *y,
                         uint8_t *routes, ptrdiff_t count);

/// Pooling's gradient along its routes, for one window over `count` channels: row[offsets[r] + c]
/// += g[c] where routes[c] == r (255, no route, matches no position), in 16-lane AVX-512 vectors.
/// Returns 1 when done, 0 when the caller must do it (no AVX-512, or positions outside 1...255).
int dml_route_gradient(const float *g, const uint8_t *routes, const ptrdiff_t *offsets,
                       ptrdiff_t positions, float *row, ptrdiff_t count);

/// p[j] = exp(p[j]) for j < count, in 16-lane AVX-512 vectors: the same values as the Swift
/// vector code (`Float.exp8`), which runs when this returns 0 (no AVX-512); returns 1 when done.
int dml_exp_f32(float *p, ptrdiff_t count);

/// p[j] = sqrt(p[j]) for j < count, in 16-lane AVX-512 vectors (IEEE square root, so the same
/// values as `dml_sqrt_f32`'s 4 lanes, which run when this returns 0: no AVX-512); 1 when done.
int dml_sqrt_f32_wide(float *p, ptrdiff_t count);

/// Batch normalisation's forward pass over channels lo..<hi of n rows of c channels (row-major,
/// NHWC), each channel's sums over the rows in order. Training (training != 0): the batch's mean
/// and inverse standard deviation 1/sqrt(biased variance + eps) (two passes) into mean and inv,
/// and the running estimates moved by momentum (the running variance unbiased); else mean and
/// inv from the running estimates. y = gamma * ((x - mean) * inv) + beta. The same values
/// with or without AVX-512 (no fused multiply-adds).
void dml_batchnorm_forward_f32(const float *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t lo, ptrdiff_t hi,
                               int training, float eps, float momentum, float *mean, float *inv,
                               float *running_mean, float *running_var, const float *gamma,
                               const float *beta, float *y);
/// `dml_batchnorm_forward_f32` in double precision.
void dml_batchnorm_forward_f64(const double *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t lo, ptrdiff_t hi,
                               int training, double eps, double momentum, double *mean, double *inv,
                               double *running_mean, double *running_var, const double *gamma,
                               const double *beta, double *y);
/// Batch normalisation's backward pass over channels lo..<hi, from the forward pass's input x,
/// mean and inv (the normalised values are recomputed, as the forward pass computed them):
/// dgamma = sum g * xhat, dbeta = sum g, and, when gx is not NULL, the input gradient
/// gamma * inv * (g - dbeta / n - xhat * dgamma / n) (training) or gamma * inv * g (running
/// statistics). scratch holds 3c values.
void dml_batchnorm_backward_f32(const float *g, const float *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t lo,
                                ptrdiff_t hi, const float *mean, const float *inv, const float *gamma,
                                int training, float *dgamma, float *dbeta, float *scratch, float *gx);
/// `dml_batchnorm_backward_f32` in double precision.
void dml_batchnorm_backward_f64(const double *g, const double *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t lo,
                                ptrdiff_t hi, const double *mean, const double *inv, const double *gamma,
                                int training, double *dgamma, double *dbeta, double *scratch, double *gx);

#ifdef __cplusplus
}
#endif

#endif
