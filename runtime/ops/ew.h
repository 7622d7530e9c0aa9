/* ew.h: macros that write an elementwise op's kernels and public function, so an op
 * file holds only its math. EXPR reads x0 (and x1, x2) of type T. Strides are 0 or 1
 * (see dispatch.c); the common cases get their own loops so the compiler vectorizes. */
#ifndef TJ_EW_H
#define TJ_EW_H

#include "op.h"
#include "math/tj_math.h"

#define TJ_EW1(fname, T, EXPR)                                                          \
    static void fname(int64_t n, const void *const *in, const int64_t *s, void *out) {  \
        const T *a = in[0];                                                             \
        T *y = out;                                                                     \
        if (s[0]) {                                                                     \
            for (int64_t i = 0; i < n; i++) { T x0 = a[i]; y[i] = (EXPR); }             \
        } else {                                                                        \
            T x0 = a[0], v = (EXPR);                                                    \
            for (int64_t i = 0; i < n; i++) y[i] = v;                                   \
        }                                                                               \
    }

#define TJ_EW2(fname, T, EXPR)                                                          \
    static void fname(int64_t n, const void *const *in, const int64_t *s, void *out) {  \
        const T *a = in[0], *b = in[1];                                                 \
        T *y = out;                                                                     \
        if (s[0] && s[1]) {                                                             \
            for (int64_t i = 0; i < n; i++) { T x0 = a[i], x1 = b[i]; y[i] = (EXPR); }  \
        } else if (s[0]) {                                                              \
            T x1 = b[0];                                                                \
            for (int64_t i = 0; i < n; i++) { T x0 = a[i]; y[i] = (EXPR); }             \
        } else if (s[1]) {                                                              \
            T x0 = a[0];                                                                \
            for (int64_t i = 0; i < n; i++) { T x1 = b[i]; y[i] = (EXPR); }             \
        } else {                                                                        \
            T x0 = a[0], x1 = b[0], v = (EXPR);                                         \
            for (int64_t i = 0; i < n; i++) y[i] = v;                                   \
        }                                                                               \
    }

/* int32 arithmetic wraps, as two's complement (no undefined overflow). */
#define TJ_WRAP(op, x, y) ((int32_t)(uint32_t)((uint32_t)(x) op (uint32_t)(y)))

#define TJ_API1(name, E)                                                                \
    tj_tensor *tj_##name(tj_tensor *a) {                                                \
        tensor *t;                                                                      \
        if (!tj_resolve_args(#name, 1, &a, &t)) return NULL;                            \
        return tj_handle(tj_t_ew1(TJ_OP_##E, t));                                       \
    }

#define TJ_API2(name, E)                                                                \
    tj_tensor *tj_##name(tj_tensor *a, tj_tensor *b) {                                  \
        tj_tensor *h[2] = {a, b};                                                       \
        tensor *t[2];                                                                   \
        if (!tj_resolve_args(#name, 2, h, t)) return NULL;                              \
        return tj_handle(tj_t_ew2(TJ_OP_##E, t[0], t[1]));                              \
    }

static inline tensor *tj_t_zero_like(const tensor *t) { return tj_t_scalar(t->dtype, 0.0); }
static inline tensor *tj_t_one_like(const tensor *t) { return tj_t_scalar(t->dtype, 1.0); }

#endif
