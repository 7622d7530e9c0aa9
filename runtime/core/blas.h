/* blas.h: matrix products through OpenBLAS, loaded at run time with its kernels chosen
 * safely (see blas.c), or through plain C loops when no OpenBLAS can be loaded.
 * The first call of any function here loads the library (once per process). */
#ifndef TJ_BLAS_H
#define TJ_BLAS_H

#include <stdint.h>

/* C(m,n) = A(m,k) @ B(k,n), row-major, contiguous, beta 0: cblas_sgemm(RowMajor, NoTrans,
 * NoTrans, ...) on fixed pieces of rows or columns run on the pool (blas.c).
 * C is only written (it may hold garbage or NaN); k == 0 gives zeros; m or n == 0 writes
 * nothing. Sizes above INT_MAX are computed by the C loops. */
void tj_blas_sgemm(int64_t m, int64_t n, int64_t k, const float *A, const float *B, float *C);
void tj_blas_dgemm(int64_t m, int64_t n, int64_t k, const double *A, const double *B,
                   double *C);

/* The same products by the C fallback (i-p-j loops over rows of B, accumulating in the
 * element type); exposed so tests can check the path used when OpenBLAS is missing. */
void tj_blas_sgemm_naive(int64_t m, int64_t n, int64_t k, const float *A, const float *B,
                         float *C);
void tj_blas_dgemm_naive(int64_t m, int64_t n, int64_t k, const double *A, const double *B,
                         double *C);


#endif
