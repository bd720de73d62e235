// OpenBLAS's CBLAS interface and its extensions (thread count, detected core).
// Debian installs it under the multiarch include directory; pkg-config adds the flavour's path.
#include <cblas.h>

// LAPACK's symmetric eigensolver, which Debian's OpenBLAS exports (Fortran calling convention).
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info);
