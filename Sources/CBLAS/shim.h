// OpenBLAS's CBLAS interface and its extensions (thread count, detected core).
// Debian installs it under the multiarch include directory; pkg-config adds the flavour's path.
#include <cblas.h>

// LAPACK's symmetric eigensolver, which Debian's OpenBLAS exports (Fortran calling convention,
// with gfortran's hidden lengths of the two character arguments at the end; Debian ships no
// LAPACKE for OpenBLAS).
#include <stddef.h>
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_length, size_t uplo_length);

// LAPACK's general solver A X = B (LU with partial pivoting), for matrix inverses.
void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b, const int *ldb, int *info);
void sgesv_(const int *n, const int *nrhs, float *a, const int *lda, int *ipiv, float *b, const int *ldb, int *info);
