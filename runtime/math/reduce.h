/* reduce.h: the canonical order of every reduction, shared by eager kernels and the
 * compiled path. The reduced values of one output form a sequence x[0..n) in row-major
 * order of the reduced axes. A block of at most TJ_REDUCE_BLOCK values is reduced by
 * TJ_REDUCE_LANES accumulators: acc[l] takes x[i] for i % LANES == l, in order, starting
 * from the identity; then acc[l] op= acc[l + w] for w = 8, 4, 2, 1 (l < w); the block's
 * value is acc[0]. A longer sequence is cut into blocks from the start; the sequence of
 * block values is reduced by the same rule, recursively. Nothing depends on threads. */
#ifndef TJ_REDUCE_H
#define TJ_REDUCE_H

#include <stdint.h>

#define TJ_REDUCE_LANES 16
#define TJ_REDUCE_BLOCK 4096

#define TJ_REDUCE_BLOCK_FN(fname, T, IDENTITY, COMBINE)                           \
    static inline T fname(const T *x, int64_t n) {                                \
        T acc[TJ_REDUCE_LANES];                                                   \
        for (int l = 0; l < TJ_REDUCE_LANES; l++) acc[l] = (IDENTITY);            \
        int64_t i = 0;                                                            \
        for (; i + TJ_REDUCE_LANES <= n; i += TJ_REDUCE_LANES)                    \
            for (int l = 0; l < TJ_REDUCE_LANES; l++) {                           \
                T a = acc[l], v = x[i + l];                                       \
                acc[l] = (COMBINE);                                               \
            }                                                                     \
        for (int l = 0; i + l < n; l++) {                                         \
            T a = acc[l], v = x[i + l];                                           \
            acc[l] = (COMBINE);                                                   \
        }                                                                         \
        for (int w = TJ_REDUCE_LANES / 2; w >= 1; w /= 2)                         \
            for (int l = 0; l < w; l++) {                                         \
                T a = acc[l], v = acc[l + w];                                     \
                acc[l] = (COMBINE);                                               \
            }                                                                     \
        return acc[0];                                                            \
    }

/* The same order for n sequences at once, stored as the columns of K <= TJ_REDUCE_BLOCK
 * rows (row k at x + k * stride): column j's sequence is x[0][j], x[1][j], ... Each column
 * is reduced exactly as above (every lane, the identity ones too), into y[j]; acc is
 * scratch for LANES * n values. The inner loops run along rows, so they vectorize. */
#define TJ_REDUCE_COLS_FN(fname, T, IDENTITY, COMBINE)                                   \
    static inline void fname(const T *x, int64_t K, int64_t stride, int64_t n, T *acc, T *y) { \
        for (int64_t j = 0; j < TJ_REDUCE_LANES * n; j++) acc[j] = (IDENTITY);           \
        for (int64_t k = 0; k < K; k++) {                                                \
            T *r = acc + (k % TJ_REDUCE_LANES) * n;                                      \
            const T *xr = x + k * stride;                                                \
            for (int64_t j = 0; j < n; j++) {                                            \
                T a = r[j], v = xr[j];                                                   \
                r[j] = (COMBINE);                                                        \
            }                                                                            \
        }                                                                                \
        for (int w = TJ_REDUCE_LANES / 2; w >= 1; w /= 2)                                \
            for (int l = 0; l < w; l++)                                                  \
                for (int64_t j = 0; j < n; j++) {                                        \
                    T a = acc[l * n + j], v = acc[(l + w) * n + j];                      \
                    acc[l * n + j] = (COMBINE);                                          \
                }                                                                        \
        for (int64_t j = 0; j < n; j++) y[j] = acc[j];                                   \
    }

/* One reduction rule per dtype, in both forms (blocks of a run; columns of a matrix) */
#define TJ_REDUCE_FNS(op, sfx, T, IDENTITY, COMBINE)                                         \
    TJ_REDUCE_BLOCK_FN(tj_##op##_block_##sfx, T, IDENTITY, COMBINE)                          \
    TJ_REDUCE_COLS_FN(tj_##op##_cols_##sfx, T, IDENTITY, COMBINE)

/* sum: identity +0; int32 wraps */
TJ_REDUCE_FNS(sum, f32, float, 0.0f, a + v)
TJ_REDUCE_FNS(sum, f64, double, 0.0, a + v)
TJ_REDUCE_FNS(sum, i32, int32_t, 0, (int32_t)((uint32_t)a + (uint32_t)v))
/* max: identity -inf (INT32_MIN); a NaN, once met, stays */
TJ_REDUCE_FNS(max, f32, float, -__builtin_inff(), (v > a || v != v) ? v : a)
TJ_REDUCE_FNS(max, f64, double, -__builtin_inf(), (v > a || v != v) ? v : a)
TJ_REDUCE_FNS(max, i32, int32_t, INT32_MIN, v > a ? v : a)

#endif
