/* blas.h: matrix products through OpenBLAS, loaded at run time with its kernels chosen
 * safely (see blas.c), or through plain C loops when no OpenBLAS can be loaded.
 * The first call of any function here loads the library (once per process). */
#ifndef TJ_BLAS_H
#define TJ_BLAS_H

#include <stdint.h>

/* C(m,n) = op(A) @ op(B), row-major, contiguous, beta 0: cblas_sgemm(RowMajor, ...) on
 * fixed pieces of rows or columns run on the pool (blas.c). trans is a set of TJ_BLAS_TA
 * (A is stored (k, m) and read transposed, else it is (m, k)) and TJ_BLAS_TB (B is stored
 * (n, k), else (k, n)): a matmul by a transpose, without the transposed copy.
 * C is only written (it may hold garbage or NaN); k == 0 gives zeros; m or n == 0 writes
 * nothing. Sizes above INT_MAX are computed by the C loops. */
enum { TJ_BLAS_TA = 1, TJ_BLAS_TB = 2 };
void tj_blas_sgemm(int trans, int64_t m, int64_t n, int64_t k, const float *A, const float *B, float *C);
void tj_blas_dgemm(int trans, int64_t m, int64_t n, int64_t k, const double *A, const double *B, double *C);

/* How those products are cut: returns the number of pieces (0 when m or n is 0), each of
 * *pm rows by *pn columns (the last one shorter); only one of the two is below m or n.
 * Piece t covers rows [t pm, ...) when *pm < m, else columns [t pn, ...). */
int64_t tj_blas_pieces(int64_t m, int64_t n, int64_t *pm, int64_t *pn);
/* Piece t of tj_blas_?gemm(m, n, k, A, B, C), on the calling thread: the same bits as the
 * whole product has there. */
void tj_blas_sgemm_piece(int trans, int64_t m, int64_t n, int64_t k, const float *A, const float *B, float *C, int64_t t);
void tj_blas_dgemm_piece(int trans, int64_t m, int64_t n, int64_t k, const double *A, const double *B, double *C,
                         int64_t t);

/* The same products by the C fallback (i-p-j loops over rows of B, accumulating in the
 * element type); exposed so tests can check the path used when OpenBLAS is missing. */
void tj_blas_sgemm_naive(int trans, int64_t m, int64_t n, int64_t k, const float *A, const float *B, float *C);
void tj_blas_dgemm_naive(int trans, int64_t m, int64_t n, int64_t k, const double *A, const double *B, double *C);


#endif
