/* matmul_small.h: which f32/f64 matmuls are "small" and how a small one is computed. Eager
 * (matmul.c) and compiled (jit/lower_matmul.c) both ask tj_matmul_small and both compute
 * every output element in this order, so their bits agree:
 *     acc = +0; for p = 0 .. k-1: acc = acc + a[i,p] * b[p,j]; y[i,j] = acc
 * (a multiply, then an add: no FMA, build with -ffp-contract=off). Larger products call BLAS,
 * whose order is its own. Plain C over core.h; no LLVM. */
#ifndef TJ_MATMUL_SMALL_H
#define TJ_MATMUL_SMALL_H

#include "core/core.h"

/* m*n*k at most this: computed here, else by BLAS. Measured on one core of an AMD EPYC with
 * AVX-512 (OpenBLAS 0.3.21, Haswell kernels), 40 random shapes of sides <= 64 per power-of-two
 * bin of m*n*k, BLAS time / these loops' time: f32 median 1.2 at 512-1024, 1.1 at 1024-2048,
 * 0.87 at 2048-4096; f64 1.6, 1.2, 0.95 at 1024-2048, 2048-4096, 4096-8192. One bound for
 * both dtypes and both modes, where f32 breaks even. */
#define TJ_MATMUL_SMALL_MAX 2048

static inline bool tj_matmul_small(int64_t m, int64_t n, int64_t k) {
    if (m <= 0 || n <= 0 || k <= 0) return true;             /* nothing, or zeros */
    if (m > TJ_MATMUL_SMALL_MAX || n > TJ_MATMUL_SMALL_MAX || k > TJ_MATMUL_SMALL_MAX) return false;
    return m * n * k <= TJ_MATMUL_SMALL_MAX;                 /* < 2^33: no overflow */
}

/* How the loops below are blocked does not change a bit (each element's order is fixed);
 * it only lets gcc keep accumulators in vector registers: row by row, blocks of 128, 64,
 * 32 and 16 bytes of columns; the last columns (< 16 bytes) in blocks of ROWS rows. */
#define TJ_MATMUL_SMALL_ROWS 8

/* Columns [j, j + W) of row i, while they fit: W accumulators. */
#define TJ_MATMUL_SMALL_COLS(T, W)                                                            \
    for (; j + (W) <= n; j += (W)) {                                                          \
        T acc[W];                                                                             \
        for (int l = 0; l < (W); l++) acc[l] = 0;                                             \
        for (int64_t p = 0; p < k; p++) {                                                     \
            const T av = ai[p * acs], *bp = b + p * brs + j * bcs;                            \
            for (int l = 0; l < (W); l++) acc[l] = acc[l] + av * bp[l * bcs];                 \
        }                                                                                     \
        for (int l = 0; l < (W); l++) yi[j + l] = acc[l];                                     \
    }

/* y(m, n) = a(m, k) @ b(k, n), y contiguous; a[i,p] is a[i*ars + p*acs], b[p,j] is
 * b[p*brs + j*bcs] (a transposed operand is read in place: swap its strides). */
#define TJ_MATMUL_SMALL_FN(fname, T)                                                          \
    static inline void fname(int64_t m, int64_t n, int64_t k, const T *a, int64_t ars,       \
                             int64_t acs, const T *b, int64_t brs, int64_t bcs, T *y) {       \
        enum { W = 128 / sizeof(T), R = TJ_MATMUL_SMALL_ROWS };                               \
        int64_t nb = n - n % (W / 8), mb = m - m % R;                                         \
        for (int64_t i = 0; i < m; i++) {                                                     \
            const T *ai = a + i * ars;                                                        \
            T *yi = y + i * n;                                                                \
            int64_t j = 0;                                                                    \
            TJ_MATMUL_SMALL_COLS(T, W)                                                        \
            TJ_MATMUL_SMALL_COLS(T, W / 2)                                                    \
            TJ_MATMUL_SMALL_COLS(T, W / 4)                                                    \
            TJ_MATMUL_SMALL_COLS(T, W / 8)                                                    \
        }                                                                                     \
        for (int64_t j = nb; j < n; j++) {                                                    \
            int64_t i = 0;                                                                    \
            for (; i < mb; i += R) {                                                          \
                T acc[R];                                                                     \
                for (int r = 0; r < R; r++) acc[r] = 0;                                       \
                for (int64_t p = 0; p < k; p++) {                                             \
                    const T bv = b[p * brs + j * bcs], *ap = a + i * ars + p * acs;           \
                    for (int r = 0; r < R; r++) acc[r] = acc[r] + ap[r * ars] * bv;           \
                }                                                                             \
                for (int r = 0; r < R; r++) y[(i + r) * n + j] = acc[r];                      \
            }                                                                                 \
            for (; i < m; i++) {                                                              \
                T acc = 0;                                                                    \
                for (int64_t p = 0; p < k; p++) acc = acc + a[i * ars + p * acs] * b[p * brs + j * bcs]; \
                y[i * n + j] = acc;                                                           \
            }                                                                                 \
        }                                                                                     \
    }
TJ_MATMUL_SMALL_FN(tj_matmul_small_f32, float)
TJ_MATMUL_SMALL_FN(tj_matmul_small_f64, double)

/* The element stride of each batch dim of operand shape t (batch dims right-aligned to
 * bs, the output's batch shape), 0 where t broadcasts along it. */
static inline void tj_matmul_batch_strides(const tj_shape *t, const tj_shape *bs, int64_t *st) {
    int tb = t->ndim - 2, nb = bs->ndim;
    int64_t s = t->dim[tb] * t->dim[tb + 1];
    for (int d = nb - 1; d >= 0; d--) {
        int dt = d - (nb - tb);
        st[d] = dt >= 0 && t->dim[dt] == bs->dim[d] && bs->dim[d] != 1 ? s : 0;
        if (dt >= 0) s *= t->dim[dt];
    }
}

#endif
