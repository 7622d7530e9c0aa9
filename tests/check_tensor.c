/* check_tensor.c: tensors, scopes, variables and the error model, through the public header.
 * Creation and accessors for every dtype and rank 0..TJ_MAX_DIMS, casts with exact values,
 * scope lifetimes (stale handles are errors, never crashes; no growth over a scope loop),
 * variables (copy on write), and every error a user can cause in the ops: its code and
 * the text of its message. Every test runs in its own scope (see setup/teardown). */
#include "testutil.h"
#include "core/core.h"          /* tj_shape_check, TJ_SCOPE_INLINE */

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *tensor_suite(void);

/* ---- helpers --------------------------------------------------------------------------- */

static char *shape_str(tj_shape s, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(ndim %d:", s.ndim);
    for (int i = 0; i < s.ndim && i < TJ_MAX_DIMS && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, " %lld", (long long)s.dim[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

static int shape_eq(tj_shape a, tj_shape b) {
    if (a.ndim != b.ndim) return 0;
    for (int i = 0; i < a.ndim && i < TJ_MAX_DIMS; i++)
        if (a.dim[i] != b.dim[i]) return 0;
    return 1;
}

/* Asserts t's shape; ck_shape(t) is rank 0. */
#define ck_shape(t, ...)                                                                  \
    do {                                                                                  \
        tj_shape w_ = TJ_SHAPE(__VA_ARGS__), g_ = tj_tensor_shape(t);                     \
        char ws_[160], gs_[160];                                                          \
        ck_assert_msg(shape_eq(w_, g_), "shape %s, expected %s (error: %s)",              \
                      shape_str(g_, gs_, sizeof gs_), shape_str(w_, ws_, sizeof ws_),     \
                      tj_last_error());                                                   \
    } while (0)

/* Asserts t holds exactly these values (NaN matches NaN). */
static void check_vals(tj_tensor *t, const double *want, int64_t n, int line) {
    ck_assert_msg(t != NULL, "line %d: tensor is NULL (error %d: %s)", line, tj_error_code(),
                  tj_last_error());
    ck_assert_msg(tj_tensor_numel(t) == n, "line %d: numel %lld, expected %lld", line,
                  (long long)tj_tensor_numel(t), (long long)n);
    for (int64_t i = 0; i < n; i++) {
        double g = tu_get(t, i);
        if (isnan(want[i]))
            ck_assert_msg(isnan(g), "line %d: element %lld is %.17g, expected NaN", line,
                          (long long)i, g);
        else
            ck_assert_msg(g == want[i], "line %d: element %lld is %.17g, expected %.17g", line,
                          (long long)i, g, want[i]);
    }
}
#define ck_vals(t, ...)                                                                   \
    check_vals((t), (const double[]){__VA_ARGS__},                                        \
               (int64_t)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)), __LINE__)

#define ck_no_error()                                                                     \
    ck_assert_msg(tj_error_code() == 0, "unexpected error %d: %s", tj_error_code(),        \
                  tj_last_error())

/* Every test starts with no error inside a fresh scope; teardown closes whatever scopes a
 * failing test left open, so one failure never leaks into the next test (CK_FORK=no). */
static void setup(void) {
    tj_clear_error();
    tj_scope_begin();
}

static void teardown(void) {
    tj_set_allocator(NULL, NULL);
    while (tj_scope_end() == 0) {}
    tj_clear_error();
}


/* ---- 1. creation and accessors ---------------------------------------------------------- */

START_TEST(from_copies_data_every_dtype) {
    float f[6] = {1.5f, -2, 3, 4, 5, 6};
    double d[6] = {0.1, -0.2, 1e300, 4, 5, 6};
    int32_t i[6] = {1, -2, INT32_MAX, INT32_MIN, 5, 6};
    tj_tensor *tf = tj_tensor_from(TJ_F32, TJ_SHAPE(2, 3), f);
    tj_tensor *td = tj_tensor_from(TJ_F64, TJ_SHAPE(3, 2), d);
    tj_tensor *ti = tj_tensor_from(TJ_I32, TJ_SHAPE(6), i);
    ck_no_error();
    /* changing the source afterwards does not change the tensors */
    f[0] = 99; d[0] = 99; i[0] = 99;
    ck_vals(tf, 1.5, -2, 3, 4, 5, 6);
    ck_vals(td, 0.1, -0.2, 1e300, 4, 5, 6);
    ck_vals(ti, 1, -2, INT32_MAX, INT32_MIN, 5, 6);
    ck_assert_ptr_ne(tj_tensor_data(tf), f);
    ck_assert_int_eq(tj_tensor_dtype(tf), TJ_F32);
    ck_assert_int_eq(tj_tensor_dtype(td), TJ_F64);
    ck_assert_int_eq(tj_tensor_dtype(ti), TJ_I32);
    ck_shape(tf, 2, 3);
    ck_shape(td, 3, 2);
    ck_shape(ti, 6);
    ck_assert_int_eq(tj_tensor_numel(tf), 6);
    ck_assert_str_eq(tj_dtype_name(TJ_F32), "float32");
    ck_assert_str_eq(tj_dtype_name(TJ_F64), "float64");
    ck_assert_str_eq(tj_dtype_name(TJ_I32), "int32");
    ck_no_error();
}
END_TEST

START_TEST(ranks_0_to_max_every_dtype) {
    const tj_dtype dts[3] = {TJ_F32, TJ_F64, TJ_I32};
    ck_assert_int_eq(TJ_MAX_DIMS, 8);
    for (int k = 0; k < 3; k++)
        for (int r = 0; r <= TJ_MAX_DIMS; r++) {
            tj_shape s = {.ndim = r};
            int64_t n = 1;
            for (int d = 0; d < r; d++) { s.dim[d] = 1 + d % 3; n *= s.dim[d]; }
            double src[512];
            float f[512];
            int32_t i[512];
            for (int64_t e = 0; e < n; e++) {
                src[e] = (double)(e * 3 - 7);
                f[e] = (float)src[e];
                i[e] = (int32_t)src[e];
            }
            const void *data = dts[k] == TJ_F32 ? (const void *)f
                             : dts[k] == TJ_F64 ? (const void *)src : (const void *)i;
            tj_tensor *t = tj_tensor_from(dts[k], s, data);
            ck_assert_msg(t != NULL, "dtype %d rank %d: %s", k, r, tj_last_error());
            tj_shape g = tj_tensor_shape(t);
            ck_assert_msg(shape_eq(g, s), "dtype %d rank %d: shape differs", k, r);
            ck_assert_int_eq(tj_tensor_numel(t), n);
            ck_assert_int_eq(tj_tensor_dtype(t), dts[k]);
            for (int64_t e = 0; e < n; e++) ck_assert(tu_get(t, e) == src[e]);
            /* zeros, ones, full of the same shape */
            tj_tensor *z = tj_zeros(dts[k], s), *o = tj_ones(dts[k], s), *fl = tj_full(dts[k], s, -3);
            ck_assert(z && o && fl);
            ck_assert(shape_eq(tj_tensor_shape(z), s) && shape_eq(tj_tensor_shape(fl), s));
            for (int64_t e = 0; e < n; e++) {
                ck_assert(tu_get(z, e) == 0);
                ck_assert(tu_get(o, e) == 1);
                ck_assert(tu_get(fl, e) == -3);
            }
            /* an all-ones shape of any rank holds one element */
            tj_shape ones = {.ndim = r};
            for (int d = 0; d < r; d++) ones.dim[d] = 1;
            ck_assert(tj_item(tj_full(dts[k], ones, 7)) == 7);
            ck_no_error();
        }
}
END_TEST

START_TEST(zeros_ones_full_scalar_values) {
    ck_vals(tj_zeros(TJ_F32, TJ_SHAPE(2)), 0, 0);
    ck_vals(tj_ones(TJ_F64, TJ_SHAPE(3)), 1, 1, 1);
    ck_vals(tj_ones(TJ_I32, TJ_SHAPE(1, 2)), 1, 1);
    ck_vals(tj_full(TJ_F32, TJ_SHAPE(2), 0.1), (double)0.1f, (double)0.1f);   /* rounded to f32 */
    ck_vals(tj_full(TJ_F64, TJ_SHAPE(2), 0.1), 0.1, 0.1);                     /* exact */
    ck_vals(tj_full(TJ_I32, TJ_SHAPE(3), -3.7), -3, -3, -3);                  /* toward zero */
    ck_vals(tj_full(TJ_I32, TJ_SHAPE(1), 3.7), 3);
    ck_vals(tj_full(TJ_F32, TJ_SHAPE(1), NAN), NAN);
    ck_vals(tj_full(TJ_F32, TJ_SHAPE(1), 1e300), INFINITY);
    tj_tensor *s = tj_scalar(2.5);
    ck_shape(s);
    ck_assert_int_eq(tj_tensor_dtype(s), TJ_F32);
    ck_assert_int_eq(tj_tensor_numel(s), 1);
    ck_assert(tj_item(s) == 2.5);
    ck_assert(tj_item(tj_scalar(0.1)) == (double)0.1f);
    ck_no_error();
}
END_TEST

/* tj_full to int32 should convert as tj_cast does (saturate, NaN -> 0), not with a bare C
 * cast (undefined behaviour out of range; x86 gives INT32_MIN for 3e9). */
START_TEST(full_i32_saturates_like_cast) {
    ck_vals(tj_full(TJ_I32, TJ_SHAPE(1), 3e9), INT32_MAX);
    ck_vals(tj_full(TJ_I32, TJ_SHAPE(1), -3e9), INT32_MIN);
    ck_vals(tj_full(TJ_I32, TJ_SHAPE(1), NAN), 0);
    ck_vals(tj_full(TJ_I32, TJ_SHAPE(1), INFINITY), INT32_MAX);
    ck_no_error();
}
END_TEST

START_TEST(item_one_element_only) {
    ck_assert(tj_item(tj_tensor_from(TJ_F32, TJ_SHAPE(), (float[]){-1.25f})) == -1.25);
    ck_assert(tj_item(tj_tensor_from(TJ_F64, TJ_SHAPE(1, 1, 1), (double[]){1e-300})) == 1e-300);
    ck_assert(tj_item(tj_tensor_from(TJ_I32, TJ_SHAPE(1), (int32_t[]){INT32_MIN})) == INT32_MIN);
    ck_no_error();
    ck_assert(isnan(tj_item(tj_zeros(TJ_F32, TJ_SHAPE(2)))));
    ck_assert_error(TJ_ERR_SHAPE, "item: tensor has shape (2,) (2 elements), expected one element");
    ck_assert(isnan(tj_item(tj_zeros(TJ_I32, TJ_SHAPE(0, 3)))));
    ck_assert_error(TJ_ERR_SHAPE, "(0, 3)");
    ck_assert(isnan(tj_item(tj_zeros(TJ_F64, TJ_SHAPE(2, 3)))));
    ck_assert_error(TJ_ERR_SHAPE, "(2, 3)");
    ck_assert(isnan(tj_item(NULL)));
    ck_assert_error(TJ_ERR_ARG, "item: argument 1 is NULL");
}
END_TEST

START_TEST(shape_macro) {
    tj_shape s0 = TJ_SHAPE();
    ck_assert_int_eq(s0.ndim, 0);
    tj_shape s2 = TJ_SHAPE(2, 3);
    ck_assert_int_eq(s2.ndim, 2);
    ck_assert_int_eq(s2.dim[0], 2);
    ck_assert_int_eq(s2.dim[1], 3);
    tj_shape s8 = TJ_SHAPE(1, 2, 3, 4, 5, 6, 7, 8);
    ck_assert_int_eq(s8.ndim, 8);
    ck_assert_int_eq(s8.dim[7], 8);
    tj_shape big = TJ_SHAPE(INT64_C(1) << 40);
    ck_assert_int_eq(big.ndim, 1);
    ck_assert(big.dim[0] == INT64_C(1) << 40);
}
END_TEST

START_TEST(zero_size_dims) {
    tj_tensor *e = tj_zeros(TJ_F32, TJ_SHAPE(0, 3));
    ck_assert_ptr_nonnull(e);
    ck_shape(e, 0, 3);
    ck_assert_int_eq(tj_tensor_numel(e), 0);
    ck_no_error();
    /* NULL data is fine when there is nothing to copy */
    ck_shape(tj_tensor_from(TJ_I32, TJ_SHAPE(3, 0), NULL), 3, 0);
    ck_no_error();
    tj_tensor *row = tj_ones(TJ_F32, TJ_SHAPE(3));
    ck_shape(tj_add(e, e), 0, 3);
    ck_shape(tj_add(e, row), 0, 3);
    ck_shape(tj_mul(row, e), 0, 3);
    ck_shape(tj_add(e, tj_scalar(1)), 0, 3);
    ck_shape(tj_exp(e), 0, 3);
    ck_shape(tj_where(e, e, row), 0, 3);
    ck_shape(tj_cast(e, TJ_I32), 0, 3);
    ck_shape(tj_transpose(e, NULL), 3, 0);
    ck_shape(tj_reshape(e, TJ_SHAPE(-1, 3)), 0, 3);
    ck_shape(tj_reshape(e, TJ_SHAPE(3, 0, 5)), 3, 0, 5);
    ck_shape(tj_broadcast_to(e, TJ_SHAPE(2, 0, 3)), 2, 0, 3);
    ck_shape(tj_slice(e, (int64_t[]){0, 1}, (int64_t[]){0, -1}), 0, 2);
    ck_no_error();
    /* reductions: sum over the empty axis is 0, over the other axis is empty */
    tj_tensor *s0 = tj_sum(e, 1, (int[]){0}, false);
    ck_shape(s0, 3);
    ck_vals(s0, 0, 0, 0);
    ck_shape(tj_sum(e, 1, (int[]){1}, false), 0);
    ck_shape(tj_sum(e, 1, (int[]){1}, true), 0, 1);
    ck_vals(tj_sum(e, 0, NULL, false), 0);
    ck_shape(tj_max(e, 1, (int[]){1}, false), 0);
    ck_shape(tj_argmax(e, 1), 0);
    ck_shape(tj_mean(e, 1, (int[]){1}, false), 0);
    ck_no_error();
    /* matmul: (0, 3) @ (3, 4) is empty; (2, 0) @ (0, 3) is zeros */
    ck_shape(tj_matmul(e, tj_ones(TJ_F32, TJ_SHAPE(3, 4))), 0, 4);
    tj_tensor *mz = tj_matmul(tj_ones(TJ_F32, TJ_SHAPE(2, 0)), tj_ones(TJ_F32, TJ_SHAPE(0, 3)));
    ck_shape(mz, 2, 3);
    ck_vals(mz, 0, 0, 0, 0, 0, 0);
    ck_vals(tj_matmul(tj_ones(TJ_F64, TJ_SHAPE(1, 0)), tj_ones(TJ_F64, TJ_SHAPE(0, 2))), 0, 0);
    ck_vals(tj_matmul(tj_ones(TJ_I32, TJ_SHAPE(1, 0)), tj_ones(TJ_I32, TJ_SHAPE(0, 2))), 0, 0);
    ck_no_error();
    /* concat with an empty part; gather with empty indices */
    tj_tensor *full = tj_full(TJ_F32, TJ_SHAPE(2, 3), 5);
    tj_tensor *c = tj_concat(2, (tj_tensor *[]){e, full}, 0);
    ck_shape(c, 2, 3);
    ck_vals(c, 5, 5, 5, 5, 5, 5);
    ck_shape(tj_gather(full, tj_zeros(TJ_I32, TJ_SHAPE(0)), 0), 0, 3);
    ck_shape(tj_gather(e, tj_zeros(TJ_I32, TJ_SHAPE(4)), 1), 0, 4);
    ck_shape(tj_softmax(e, 1), 0, 3);
    ck_shape(tj_log_softmax(e, 1), 0, 3);
    ck_no_error();
}
END_TEST

/* softmax over an empty axis is an empty result (numpy, TF), not an error from max */
START_TEST(softmax_over_empty_axis_is_empty) {
    tj_tensor *e = tj_zeros(TJ_F32, TJ_SHAPE(2, 0));
    ck_shape(tj_softmax(e, 1), 2, 0);
    ck_no_error();
    ck_shape(tj_log_softmax(e, -1), 2, 0);
    ck_no_error();
}
END_TEST

/* ---- 2. casts ------------------------------------------------------------------------------ */

START_TEST(cast_all_pairs_exact) {
    const float F2P31 = 2147483648.0f;           /* 2^31 */
    const float fsrc[] = {1.5f, -1.5f, 2.9f, -2.9f, 0.0f, 16777216.0f, 3e9f, -3e9f, NAN,
                          INFINITY, -INFINITY, F2P31, -F2P31, 2147483520.0f, -0.99f};
    const double f_to_i[] = {1, -1, 2, -2, 0, 16777216, INT32_MAX, INT32_MIN, 0,
                             INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 2147483520, 0};
    const int nf = (int)(sizeof fsrc / sizeof fsrc[0]);
    tj_tensor *tf = tj_tensor_from(TJ_F32, TJ_SHAPE(nf), fsrc);
    tj_tensor *fi = tj_cast(tf, TJ_I32), *fd = tj_cast(tf, TJ_F64), *ff = tj_cast(tf, TJ_F32);
    ck_no_error();
    ck_assert_int_eq(tj_tensor_dtype(fi), TJ_I32);
    ck_assert_int_eq(tj_tensor_dtype(fd), TJ_F64);
    check_vals(fi, f_to_i, nf, __LINE__);
    for (int i = 0; i < nf; i++) {
        double want = (double)fsrc[i];                /* f32 -> f64 is exact */
        ck_assert(isnan(want) ? isnan(tu_get(fd, i)) : tu_get(fd, i) == want);
        ck_assert(isnan(want) ? isnan(tu_get(ff, i)) : tu_get(ff, i) == want);
    }

    const double dsrc[] = {0.1, 1e40, -1e40, 1e-50, 16777217.0, 2147483647.0, 2147483647.9,
                           2147483648.0, -2147483648.0, -2147483648.9, -2147483649.0, -0.99,
                           NAN, 1.0 / 3.0, 1e300, -7.5};
    const float d_to_f[] = {0.1f, INFINITY, -INFINITY, 0.0f, 16777216.0f, 2147483648.0f,
                            2147483648.0f, 2147483648.0f, -2147483648.0f, -2147483648.0f,
                            -2147483648.0f, -0.99f, NAN, 0.333333343f, INFINITY, -7.5f};
    const double d_to_i[] = {0, INT32_MAX, INT32_MIN, 0, 16777217, INT32_MAX, INT32_MAX,
                             INT32_MAX, INT32_MIN, INT32_MIN, INT32_MIN, 0, 0, 0, INT32_MAX, -7};
    const int nd = (int)(sizeof dsrc / sizeof dsrc[0]);
    tj_tensor *td = tj_tensor_from(TJ_F64, TJ_SHAPE(nd), dsrc);
    tj_tensor *df = tj_cast(td, TJ_F32), *di = tj_cast(td, TJ_I32), *dd = tj_cast(td, TJ_F64);
    ck_no_error();
    check_vals(di, d_to_i, nd, __LINE__);
    for (int i = 0; i < nd; i++) {
        double g = tu_get(df, i);
        if (isnan(d_to_f[i])) ck_assert(isnan(g));
        else ck_assert_msg(g == (double)d_to_f[i], "f64 %.17g -> f32 %.9g, expected %.9g", dsrc[i], g,
                           (double)d_to_f[i]);
        ck_assert(isnan(dsrc[i]) ? isnan(tu_get(dd, i)) : tu_get(dd, i) == dsrc[i]);
    }

    const int32_t isrc[] = {0, 1, -1, INT32_MAX, INT32_MIN, 16777217, -16777217, 123456789};
    const int ni = (int)(sizeof isrc / sizeof isrc[0]);
    tj_tensor *ti = tj_tensor_from(TJ_I32, TJ_SHAPE(ni), isrc);
    ck_vals(tj_cast(ti, TJ_F32), 0, 1, -1, 2147483648.0, -2147483648.0, 16777216, -16777216, 123456792);
    ck_vals(tj_cast(ti, TJ_F64), 0, 1, -1, INT32_MAX, INT32_MIN, 16777217, -16777217, 123456789);
    ck_vals(tj_cast(ti, TJ_I32), 0, 1, -1, INT32_MAX, INT32_MIN, 16777217, -16777217, 123456789);
    /* shape survives a cast, rank 0 included */
    ck_shape(tj_cast(tj_scalar(3.9), TJ_I32));
    ck_assert(tj_item(tj_cast(tj_scalar(-3.9), TJ_I32)) == -3);
    ck_shape(tj_cast(tj_ones(TJ_I32, TJ_SHAPE(2, 1, 3)), TJ_F64), 2, 1, 3);
    ck_no_error();
}
END_TEST

START_TEST(cast_errors) {
    ck_assert_ptr_null(tj_cast(tj_ones(TJ_F32, TJ_SHAPE(2)), (tj_dtype)7));
    ck_assert_error(TJ_ERR_DTYPE, "cast: 7 is not a dtype");
    ck_assert_ptr_null(tj_cast(NULL, TJ_F32));
    ck_assert_error(TJ_ERR_ARG, "cast: argument 1 is NULL");
}
END_TEST

/* A same-dtype cast is an identity: the gradient through it is 1, as through any other cast. */
START_TEST(cast_same_dtype_keeps_gradient) {
    tj_tensor *x = tj_tensor_from(TJ_F32, TJ_SHAPE(2), (float[]){1, 2});
    tj_tape *tape = tj_tape_begin(TJ_TAPE_PERSISTENT);
    tj_tape_watch(tape, x);
    tj_tensor *y64 = tj_sum(tj_cast(x, TJ_F64), 0, NULL, false);
    tj_tensor *y32 = tj_sum(tj_cast(x, TJ_F32), 0, NULL, false);
    tj_tensor *g[1];
    ck_assert_int_eq(tj_tape_gradient(tape, y64, 1, &x, g), 0);
    ck_vals(g[0], 1, 1);
    ck_assert_int_eq(tj_tape_gradient(tape, y32, 1, &x, g), 0);
    ck_vals(g[0], 1, 1);
    tj_tape_free(tape);
    ck_no_error();
}
END_TEST

/* ---- 3. scopes ------------------------------------------------------------------------------ */

#define EXPECT_STALE(expr, part)                                                          \
    do {                                                                                  \
        ck_assert_msg((expr) == NULL, "%s did not return NULL", #expr);                   \
        ck_assert_error(TJ_ERR_STALE, part);                                              \
    } while (0)

START_TEST(stale_after_scope_end_every_op) {
    tj_tensor *ok = tj_ones(TJ_F32, TJ_SHAPE(2, 2));
    tj_tensor *oki = tj_zeros(TJ_I32, TJ_SHAPE(1));
    tj_tensor *var = tj_variable(ok, "v");
    tj_scope_begin();
    tj_tensor *x = tj_full(TJ_F32, TJ_SHAPE(2, 2), 3);
    tj_tensor *xi = tj_zeros(TJ_I32, TJ_SHAPE(1));
    ck_assert(x && xi);
    ck_assert_int_eq(tj_scope_end(), 0);
    const char *ended = "scope has ended";

    EXPECT_STALE(tj_add(x, ok), "add: argument 1 is a tensor whose scope has ended");
    EXPECT_STALE(tj_add(ok, x), "add: argument 2 is a tensor whose scope has ended");
    EXPECT_STALE(tj_sub(x, ok), ended);
    EXPECT_STALE(tj_mul(ok, x), ended);
    EXPECT_STALE(tj_div(x, ok), ended);
    EXPECT_STALE(tj_pow(x, ok), ended);
    EXPECT_STALE(tj_maximum(x, ok), ended);
    EXPECT_STALE(tj_minimum(x, ok), ended);
    EXPECT_STALE(tj_greater(x, ok), ended);
    EXPECT_STALE(tj_less(x, ok), ended);
    EXPECT_STALE(tj_equal(x, ok), ended);
    EXPECT_STALE(tj_where(x, ok, ok), "where: argument 1");
    EXPECT_STALE(tj_where(ok, ok, x), "where: argument 3");
    EXPECT_STALE(tj_neg(x), "neg: argument 1 is a tensor whose scope has ended");
    EXPECT_STALE(tj_exp(x), ended);
    EXPECT_STALE(tj_log(x), ended);
    EXPECT_STALE(tj_sqrt(x), ended);
    EXPECT_STALE(tj_abs(x), ended);
    EXPECT_STALE(tj_tanh(x), ended);
    EXPECT_STALE(tj_sigmoid(x), ended);
    EXPECT_STALE(tj_relu(x), ended);
    EXPECT_STALE(tj_matmul(ok, x), "matmul: argument 2");
    EXPECT_STALE(tj_sum(x, 0, NULL, false), "sum:");
    EXPECT_STALE(tj_mean(x, 0, NULL, false), "mean:");
    EXPECT_STALE(tj_max(x, 0, NULL, false), "max:");
    EXPECT_STALE(tj_argmax(x, 0), "argmax:");
    EXPECT_STALE(tj_reshape(x, TJ_SHAPE(4)), "reshape:");
    EXPECT_STALE(tj_transpose(x, NULL), "transpose:");
    EXPECT_STALE(tj_broadcast_to(x, TJ_SHAPE(2, 2, 2)), "broadcast_to:");
    EXPECT_STALE(tj_concat(2, (tj_tensor *[]){ok, x}, 0), "concat:");
    EXPECT_STALE(tj_slice(x, (int64_t[]){0, 0}, (int64_t[]){1, 1}), "slice:");
    EXPECT_STALE(tj_gather(x, oki, 0), "gather: argument 1");
    EXPECT_STALE(tj_gather(ok, xi, 0), "gather: argument 2");
    EXPECT_STALE(tj_softmax(x, 0), "softmax:");
    EXPECT_STALE(tj_log_softmax(x, 0), "log_softmax:");
    EXPECT_STALE(tj_dropout(x, 0.5, true), "dropout:");
    EXPECT_STALE(tj_stop_gradient(x), "stop_gradient:");
    EXPECT_STALE(tj_cast(x, TJ_F64), "cast:");
    EXPECT_STALE(tj_keep(x), "keep:");
    EXPECT_STALE(tj_variable(x, "w"), "variable:");
    ck_assert_int_eq(tj_assign(var, x), TJ_ERR_STALE);
    ck_assert_error(TJ_ERR_STALE, "assign: argument 2");

    /* accessors: documented sentinel values, an error, no crash */
    ck_assert_int_eq(tj_tensor_shape(x).ndim, -1);
    ck_assert_error(TJ_ERR_STALE, "tensor_shape: argument 1 is a tensor whose scope has ended");
    ck_assert_ptr_null(tj_tensor_data(x));
    ck_assert_error(TJ_ERR_STALE, ended);
    ck_assert(isnan(tj_item(x)));
    ck_assert_error(TJ_ERR_STALE, ended);
    ck_assert_int_eq(tj_tensor_numel(x), -1);
    ck_assert_error(TJ_ERR_STALE, ended);
    ck_assert_int_eq(tj_tensor_dtype(xi), TJ_F32);
    ck_assert_error(TJ_ERR_STALE, ended);
    char buf[64] = "junk";
    ck_assert_int_eq(tj_snprint(buf, sizeof buf, x), -1);
    ck_assert_str_eq(buf, "");
    ck_assert_error(TJ_ERR_STALE, ended);
    tj_print(x);
    ck_assert_error(TJ_ERR_STALE, ended);
    tj_tape *tape = tj_tape_begin(0);
    tj_tape_watch(tape, x);
    ck_assert_error(TJ_ERR_STALE, ended);
    tj_tape_free(tape);
    tj_variable_free(var);
    ck_no_error();
}
END_TEST

/* A stale handle never reaches a tensor that reused its slot. */
START_TEST(stale_handle_never_aliases_new_tensor) {
    tj_scope_begin();
    tj_tensor *x = tj_full(TJ_F32, TJ_SHAPE(1), 1);
    tj_scope_end();
    tj_tensor *fresh[64];
    for (int i = 0; i < 64; i++) fresh[i] = tj_full(TJ_F32, TJ_SHAPE(1), 100 + i);
    for (int i = 0; i < 64; i++) ck_assert_ptr_ne(fresh[i], x);
    ck_assert(isnan(tj_item(x)));
    ck_assert_error(TJ_ERR_STALE, "scope has ended");
    for (int i = 0; i < 64; i++) ck_assert(tj_item(fresh[i]) == 100 + i);
    ck_no_error();
}
END_TEST

START_TEST(keep_hands_to_enclosing_scope) {
    tj_scope_begin();                            /* outer */
    tj_scope_begin();                            /* inner */
    tj_tensor *k = tj_full(TJ_F32, TJ_SHAPE(2), 4);
    tj_tensor *d = tj_full(TJ_F32, TJ_SHAPE(2), 5);
    ck_assert_ptr_eq(tj_keep(k), k);
    ck_assert_int_eq(tj_scope_end(), 0);         /* inner ends: k lives, d dies */
    ck_vals(k, 4, 4);
    ck_vals(tj_add(k, k), 8, 8);
    ck_assert(isnan(tj_item(d)));
    ck_assert_error(TJ_ERR_STALE, "scope has ended");
    ck_assert_int_eq(tj_scope_end(), 0);         /* outer ends: k dies */
    ck_assert_int_eq(tj_tensor_numel(k), -1);
    ck_assert_error(TJ_ERR_STALE, "scope has ended");

    /* a view kept out of a scope keeps its values after the viewed tensor dies */
    tj_scope_begin();
    tj_tensor *x = tj_tensor_from(TJ_F32, TJ_SHAPE(2, 2), (float[]){1, 2, 3, 4});
    tj_tensor *v = tj_keep(tj_reshape(x, TJ_SHAPE(4)));
    tj_scope_end();
    ck_vals(v, 1, 2, 3, 4);
    ck_assert_ptr_null(tj_tensor_data(x));
    ck_assert_error(TJ_ERR_STALE, "scope has ended");
    ck_assert_ptr_null(tj_keep(NULL));
    ck_assert_error(TJ_ERR_ARG, "keep: argument 1 is NULL");
}
END_TEST

START_TEST(nested_scopes_100_deep) {
    enum { DEPTH = 100 };
    tj_tensor *own[DEPTH], *kept[DEPTH];
    for (int d = 0; d < DEPTH; d++) {
        tj_scope_begin();
        own[d] = tj_full(TJ_I32, TJ_SHAPE(1), d);
        kept[d] = tj_keep(tj_full(TJ_I32, TJ_SHAPE(1), 1000 + d));   /* lives in depth d - 1 */
    }
    ck_no_error();
    for (int d = DEPTH - 1; d >= 0; d--) {
        ck_assert_int_eq(tj_scope_end(), 0);
        ck_assert_msg(isnan(tj_item(own[d])), "depth %d: tensor outlived its scope", d);
        ck_assert_error(TJ_ERR_STALE, "scope has ended");
        if (d + 1 < DEPTH) {                      /* kept at depth d + 1: owned by d, now dead */
            ck_assert(isnan(tj_item(kept[d + 1])));
            ck_assert_error(TJ_ERR_STALE, "scope has ended");
        }
        ck_assert_msg(tj_item(kept[d]) == 1000 + d, "depth %d: kept tensor died early", d);
        for (int e = 0; e < d; e++) ck_assert(tj_item(own[e]) == e);
        ck_no_error();
    }
}
END_TEST

/* A scope holds its first TJ_SCOPE_INLINE tensors in itself and the rest in a list it
 * allocates: tensors on both sides of that line, and past the list's first growth, die with
 * the scope; the kept ones and a variable made in it live on. */
static void spill_scopes(void) {
    enum { N = 3 * TJ_SCOPE_INLINE + 70 };
    tj_tensor *t[N], *v = NULL;
    tj_scope_begin();                          /* the kept tensors' scope */
    tj_scope_begin();
    for (int i = 0; i < N; i++) {
        t[i] = tj_full(TJ_F32, TJ_SHAPE(1), i);
        if (i == TJ_SCOPE_INLINE - 2) v = tj_variable(t[i], "v");
    }
    int kept[] = {1, TJ_SCOPE_INLINE - 1, TJ_SCOPE_INLINE, N - 1};
    for (int k = 0; k < 4; k++) ck_assert_ptr_eq(tj_keep(t[kept[k]]), t[kept[k]]);
    ck_no_error();
    ck_assert_int_eq(tj_scope_end(), 0);
    for (int i = 0; i < N; i++) {
        bool keep = i == kept[0] || i == kept[1] || i == kept[2] || i == kept[3];
        double x = tj_item(t[i]);
        if (keep) {
            ck_assert_msg(x == i, "kept tensor %d is %g", i, x);
        } else {
            ck_assert_msg(isnan(x), "tensor %d outlived its scope", i);
            ck_assert_error(TJ_ERR_STALE, "scope has ended");
        }
    }
    ck_assert(tj_item(v) == TJ_SCOPE_INLINE - 2);
    tj_variable_free(v);

    /* keep into an enclosing scope whose own slots are full: it spills there */
    tj_scope_begin();
    for (int i = 0; i < TJ_SCOPE_INLINE; i++) t[i] = tj_full(TJ_F32, TJ_SHAPE(1), i);
    tj_scope_begin();
    tj_tensor *k = tj_keep(tj_full(TJ_F32, TJ_SHAPE(1), -1));
    ck_assert_int_eq(tj_scope_end(), 0);
    ck_assert(tj_item(k) == -1 && tj_item(t[0]) == 0);
    ck_assert(tj_item(t[TJ_SCOPE_INLINE - 1]) == TJ_SCOPE_INLINE - 1);
    ck_assert_int_eq(tj_scope_end(), 0);
    ck_assert(isnan(tj_item(k)));
    ck_assert_error(TJ_ERR_STALE, "scope has ended");
    ck_assert_int_eq(tj_scope_end(), 0);
    ck_no_error();
}

START_TEST(scope_spills_past_its_inline_slots) {
    spill_scopes();                            /* warm up: the handle table may grow */
    int64_t before = tj_memory_in_use();
    spill_scopes();
    ck_assert_msg(tj_memory_in_use() == before, "%lld bytes left behind",
                  (long long)(tj_memory_in_use() - before));
}
END_TEST

START_TEST(scope_end_without_begin) {
    while (tj_scope_end() == 0) {}               /* close the fixture's scope too */
    tj_clear_error();
    ck_assert_int_eq(tj_scope_end(), TJ_ERR_STATE);
    ck_assert_error(TJ_ERR_STATE, "scope_end: no scope is open");
    ck_assert_int_eq(tj_scope_end(), TJ_ERR_STATE);
    ck_assert_error(TJ_ERR_STATE, "no scope is open");
    tj_scope_begin();
    ck_assert_int_eq(tj_scope_end(), 0);
    ck_no_error();
    tj_scope_begin();                            /* for teardown */
}
END_TEST

START_TEST(not_a_tensor_handle) {
    tj_tensor *bogus = (tj_tensor *)(uintptr_t)0x12345;
    tj_tensor *bogus_gen = (tj_tensor *)(uintptr_t)0x7fffffff00000000ull;   /* slot 0, wild gen */
    tj_tensor *ok = tj_ones(TJ_F32, TJ_SHAPE(2));
    ck_assert_ptr_null(tj_add(bogus, ok));
    ck_assert_error(TJ_ERR_ARG, "add: argument 1 is not a tensor handle");
    ck_assert_ptr_null(tj_exp(bogus_gen));
    ck_assert_error(TJ_ERR_ARG, "exp: argument 1 is not a tensor handle");
    ck_assert_int_eq(tj_tensor_shape(bogus).ndim, -1);
    ck_assert_error(TJ_ERR_ARG, "not a tensor handle");
    ck_assert_ptr_null(tj_tensor_data(bogus));
    ck_assert_error(TJ_ERR_ARG, "not a tensor handle");
    ck_assert(isnan(tj_item(bogus)));
    ck_assert_error(TJ_ERR_ARG, "not a tensor handle");
    ck_assert_ptr_null(tj_keep(bogus));
    ck_assert_error(TJ_ERR_ARG, "not a tensor handle");
    tj_variable_free(bogus);
    ck_assert_error(TJ_ERR_ARG, "not a tensor handle");
    ck_assert_int_eq(tj_assign(bogus, ok), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "not a tensor handle");
    ck_assert_ptr_null(tj_concat(2, (tj_tensor *[]){ok, bogus}, 0));
    ck_assert_error(TJ_ERR_ARG, "not a tensor handle");
}
END_TEST

/* Counts live blocks and bytes; delegates to realloc/free, so blocks made before it was
 * set can be freed through it (the counts then go below their start; we compare deltas). */
typedef struct { long long blocks, bytes, calls; } alloc_counts;
static alloc_counts counts;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    alloc_counts *c = ud;
    c->calls++;
    if (nsize == 0) {
        if (ptr) { c->blocks--; c->bytes -= (long long)osize; }
        free(ptr);
        return NULL;
    }
    void *q = realloc(ptr, nsize);
    if (!q) return NULL;
    if (ptr) c->bytes -= (long long)osize;
    else c->blocks++;
    c->bytes += (long long)nsize;
    return q;
}

static void loop_body(tj_tensor *w, int i) {
    tj_tensor *x = tj_full(TJ_F32, TJ_SHAPE(4, 8), (double)(i % 7));
    tj_tensor *y = tj_matmul(x, w);
    tj_scope_begin();
    tj_tensor *z = tj_keep(tj_exp(tj_mul(y, tj_scalar(0.01f))));
    tj_tensor *junk = tj_reshape(tj_transpose(z, NULL), TJ_SHAPE(-1));
    (void)junk;
    tj_scope_end();
    tj_tensor *s = tj_sum(tj_softmax(z, 1), 1, (int[]){0}, false);
    tj_tensor *v = tj_variable(s, "tmp");
    tj_variable_free(v);
    (void)tj_item(tj_max(s, 0, NULL, false));
}

START_TEST(scope_loop_does_not_grow_memory) {
    memset(&counts, 0, sizeof counts);
    tj_set_allocator(counting_alloc, &counts);
    tj_tensor *w = tj_ones(TJ_F32, TJ_SHAPE(8, 8));
    for (int i = 0; i < 20; i++) {               /* warm up: first-use allocations */
        tj_scope_begin();
        loop_body(w, i);
        tj_scope_end();
    }
    ck_no_error();
    long long blocks0 = counts.blocks, bytes0 = counts.bytes, calls0 = counts.calls;
    long long in_scope_blocks = -1, in_scope_bytes = -1;
    for (int i = 0; i < 10000; i++) {
        tj_scope_begin();
        loop_body(w, i);
        if (in_scope_blocks < 0) { in_scope_blocks = counts.blocks; in_scope_bytes = counts.bytes; }
        ck_assert_msg(counts.blocks == in_scope_blocks && counts.bytes == in_scope_bytes,
                      "iteration %d: %lld blocks / %lld bytes live in the scope, %lld / %lld at first",
                      i, counts.blocks, counts.bytes, in_scope_blocks, in_scope_bytes);
        ck_assert_int_eq(tj_scope_end(), 0);
    }
    ck_no_error();
    ck_assert_msg(counts.calls > calls0, "the allocator was not used");
    ck_assert_msg(counts.blocks == blocks0 && counts.bytes == bytes0,
                  "after 10000 iterations: %lld blocks / %lld bytes live, %lld / %lld before",
                  counts.blocks, counts.bytes, blocks0, bytes0);
    tj_set_allocator(NULL, NULL);
}
END_TEST

/* ---- 4. the error model ------------------------------------------------------------------- */

START_TEST(null_in_null_out) {
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(2));
    ck_assert_ptr_null(tj_add(NULL, x));
    ck_assert_error(TJ_ERR_ARG, "add: argument 1 is NULL");
    ck_assert_ptr_null(tj_add(x, NULL));
    ck_assert_error(TJ_ERR_ARG, "add: argument 2 is NULL");
    ck_assert_ptr_null(tj_exp(NULL));
    ck_assert_error(TJ_ERR_ARG, "exp: argument 1 is NULL");
    ck_assert_ptr_null(tj_matmul(NULL, NULL));
    ck_assert_error(TJ_ERR_ARG, "matmul: argument 1 is NULL");
    ck_assert_ptr_null(tj_sum(NULL, 0, NULL, false));
    ck_assert_error(TJ_ERR_ARG, "sum: argument 1 is NULL");
    ck_assert_ptr_null(tj_reshape(NULL, TJ_SHAPE(2)));
    ck_assert_error(TJ_ERR_ARG, "reshape: argument 1 is NULL");
    ck_assert_ptr_null(tj_concat(2, (tj_tensor *[]){x, NULL}, 0));
    ck_assert_error(TJ_ERR_ARG, "concat: argument 2 is NULL");
    ck_assert_ptr_null(tj_variable(NULL, "v"));
    ck_assert_error(TJ_ERR_ARG, "variable: argument 1 is NULL");
    ck_assert_int_eq(tj_tensor_dtype(NULL), TJ_F32);
    ck_assert_error(TJ_ERR_ARG, "tensor_dtype: argument 1 is NULL");
    ck_assert_int_eq(tj_tensor_numel(NULL), -1);
    ck_assert_error(TJ_ERR_ARG, "argument 1 is NULL");
}
END_TEST

START_TEST(chain_reports_first_error) {
    tj_tensor *a = tj_ones(TJ_F32, TJ_SHAPE(2, 3));
    tj_tensor *bad = tj_ones(TJ_F32, TJ_SHAPE(4, 3));
    tj_tensor *r = tj_exp(tj_add(a, bad));
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(tj_last_error(), "exp") == NULL, "a later error replaced the first: %s",
                  tj_last_error());
    ck_assert_error(TJ_ERR_SHAPE, "add: shapes (2, 3) and (4, 3) cannot be broadcast");
    /* a longer chain of mixed ops */
    r = tj_sum(tj_matmul(tj_transpose(tj_log(tj_cast(a, TJ_I32)), NULL), a), 0, NULL, false);
    ck_assert_ptr_null(r);
    ck_assert_error(TJ_ERR_DTYPE, "log: dtype int32 is not supported");
    /* later successful ops neither clear nor replace the first error */
    ck_assert_ptr_null(tj_add(a, bad));
    ck_assert_ptr_nonnull(tj_add(a, a));
    ck_assert_ptr_null(tj_exp(tj_cast(a, TJ_I32)));
    ck_assert_error(TJ_ERR_SHAPE, "add:");
}
END_TEST

START_TEST(clear_error_resets) {
    ck_assert_int_eq(tj_error_code(), 0);
    ck_assert_str_eq(tj_last_error(), "");
    ck_assert_ptr_null(tj_add(NULL, NULL));
    ck_assert_int_eq(tj_error_code(), TJ_ERR_ARG);
    ck_assert(strlen(tj_last_error()) > 0);
    tj_clear_error();
    ck_assert_int_eq(tj_error_code(), 0);
    ck_assert_str_eq(tj_last_error(), "");
    /* after a clear, the next error is recorded again */
    ck_assert_ptr_null(tj_exp(tj_ones(TJ_I32, TJ_SHAPE(1))));
    ck_assert_error(TJ_ERR_DTYPE, "exp:");
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- 5. variables ----------------------------------------------------------------------- */

START_TEST(variable_basics) {
    tj_tensor *v, *unnamed;
    tj_scope_begin();
    tj_tensor *init = tj_tensor_from(TJ_F32, TJ_SHAPE(2, 2), (float[]){1, 2, 3, 4});
    v = tj_variable(init, "weights");
    unnamed = tj_variable(init, NULL);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_ne(v, init);
    ck_assert_ptr_ne(tj_tensor_data(v), tj_tensor_data(init));    /* a copy */
    tj_scope_end();                              /* init dies, v survives */
    ck_assert_ptr_null(tj_tensor_data(init));
    ck_assert_error(TJ_ERR_STALE, "scope has ended");
    ck_vals(v, 1, 2, 3, 4);
    ck_shape(v, 2, 2);
    ck_assert_int_eq(tj_tensor_dtype(v), TJ_F32);
    ck_assert_str_eq(tj_variable_name(v), "weights");
    ck_assert_str_eq(tj_variable_name(unnamed), "");
    ck_vals(tj_add(v, v), 2, 4, 6, 8);
    ck_assert_ptr_eq(tj_keep(v), v);              /* persistent already */
    ck_no_error();
    /* also survives scopes opened and closed after it */
    tj_scope_begin();
    ck_vals(tj_mul(v, tj_scalar(2)), 2, 4, 6, 8);
    tj_scope_end();
    ck_vals(v, 1, 2, 3, 4);
    tj_variable_free(v);
    tj_variable_free(unnamed);
    ck_no_error();
}
END_TEST

START_TEST(assign_updates_and_copies_on_write) {
    tj_tensor *v = tj_variable(tj_tensor_from(TJ_F64, TJ_SHAPE(2, 2), (double[]){1, 2, 3, 4}), "w");
    tj_tensor *view = tj_reshape(v, TJ_SHAPE(4));
    tj_tensor *sg = tj_stop_gradient(v);
    ck_assert_int_eq(tj_assign(v, tj_tensor_from(TJ_F64, TJ_SHAPE(2, 2), (double[]){5, 6, 7, 8})), 0);
    ck_no_error();
    const double *p = tj_tensor_data(v);
    ck_assert(p[0] == 5 && p[1] == 6 && p[2] == 7 && p[3] == 8);
    ck_vals(view, 1, 2, 3, 4);                   /* views taken before still show the old values */
    ck_vals(sg, 1, 2, 3, 4);
    /* a second assign with no views left writes in place; the value is copied */
    tj_tensor *val = tj_full(TJ_F64, TJ_SHAPE(2, 2), -1);
    ck_assert_int_eq(tj_assign(v, val), 0);
    ck_vals(v, -1, -1, -1, -1);
    ck_assert_int_eq(tj_assign(v, tj_full(TJ_F64, TJ_SHAPE(2, 2), 9)), 0);
    ck_vals(val, -1, -1, -1, -1);
    ck_vals(v, 9, 9, 9, 9);
    /* assigning a variable its own value (or a view of it) is a no-op */
    ck_assert_int_eq(tj_assign(v, v), 0);
    ck_assert_int_eq(tj_assign(v, tj_stop_gradient(v)), 0);
    ck_vals(v, 9, 9, 9, 9);
    ck_no_error();
    tj_variable_free(v);
}
END_TEST

START_TEST(assign_errors) {
    tj_tensor *v = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(2, 3)), "w");
    ck_assert_int_eq(tj_assign(v, tj_zeros(TJ_F32, TJ_SHAPE(3, 2))), TJ_ERR_SHAPE);
    ck_assert_error(TJ_ERR_SHAPE, "assign: variable 'w' has shape (2, 3), value has shape (3, 2)");
    ck_assert_int_eq(tj_assign(v, tj_zeros(TJ_F32, TJ_SHAPE(6))), TJ_ERR_SHAPE);
    ck_assert_error(TJ_ERR_SHAPE, "(6,)");
    ck_assert_int_eq(tj_assign(v, tj_zeros(TJ_I32, TJ_SHAPE(2, 3))), TJ_ERR_DTYPE);
    ck_assert_error(TJ_ERR_DTYPE, "assign: variable 'w' is float32, value is int32");
    ck_assert_int_eq(tj_assign(tj_zeros(TJ_F32, TJ_SHAPE(2, 3)), v), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "assign: argument 1 is not a variable");
    ck_assert_int_eq(tj_assign(NULL, v), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "assign: argument 1 is NULL");
    ck_assert_int_eq(tj_assign(v, NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "assign: argument 2 is NULL");
    ck_vals(v, 0, 0, 0, 0, 0, 0);                /* failed assigns changed nothing */
    /* freeing a tensor that is not a variable is an error and leaves it alone */
    tj_tensor *t = tj_ones(TJ_F32, TJ_SHAPE(1));
    tj_variable_free(t);
    ck_assert_error(TJ_ERR_ARG, "not a variable");
    ck_vals(t, 1);
    /* a freed variable is stale everywhere */
    tj_variable_free(v);
    ck_no_error();
    ck_assert_int_eq(tj_assign(v, tj_zeros(TJ_F32, TJ_SHAPE(2, 3))), TJ_ERR_STALE);
    ck_assert_error(TJ_ERR_STALE, "freed variable");
    ck_assert(isnan(tj_item(v)));
    ck_assert_error(TJ_ERR_STALE, "scope has ended");
    ck_assert_ptr_null(tj_add(v, v));
    ck_assert_error(TJ_ERR_STALE, "add: argument 1");
    ck_assert_str_eq(tj_variable_name(v), "");
    ck_assert_error(TJ_ERR_STALE, "variable_name");
    tj_variable_free(v);                         /* twice: an error, not a double free */
    ck_assert_error(TJ_ERR_STALE, "variable_free");
    tj_variable_free(NULL);                      /* a no-op */
    ck_no_error();
}
END_TEST

/* A view of a variable outlives the variable's handle; no use after free (ASan). */
START_TEST(variable_free_keeps_views_valid) {
    tj_tensor *v = tj_variable(tj_tensor_from(TJ_I32, TJ_SHAPE(2, 2), (int32_t[]){1, 2, 3, 4}), "v");
    tj_tensor *view = tj_reshape(v, TJ_SHAPE(4));
    tj_tensor *t = tj_transpose(v, NULL);
    tj_variable_free(v);
    ck_no_error();
    ck_vals(view, 1, 2, 3, 4);
    ck_vals(t, 1, 3, 2, 4);
    ck_vals(tj_add(view, view), 2, 4, 6, 8);
    ck_assert_ptr_null(tj_tensor_data(v));
    ck_assert_error(TJ_ERR_STALE, "freed variable");
}
END_TEST

/* A failing call's return value is its own error, not an older unrelated one. */
START_TEST(assign_returns_its_own_error_code) {
    tj_tensor *v = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(2)), "w");
    (void)tj_item(tj_zeros(TJ_F32, TJ_SHAPE(3)));    /* an earlier TJ_ERR_SHAPE, not cleared */
    ck_assert_int_eq(tj_error_code(), TJ_ERR_SHAPE);
    ck_assert_int_eq(tj_assign(v, NULL), TJ_ERR_ARG);
    ck_assert_int_eq(tj_assign(NULL, v), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_SHAPE, "item:");
    tj_variable_free(v);
}
END_TEST

/* ---- 6. errors a user can cause in the ops ------------------------------------------------ */

#define EXPECT_ERR(expr, code, part)                                                      \
    do {                                                                                  \
        ck_assert_msg((expr) == NULL, "%s did not fail", #expr);                          \
        ck_assert_error(code, part);                                                      \
    } while (0)

START_TEST(binary_op_errors) {
    tj_tensor *a = tj_ones(TJ_F32, TJ_SHAPE(2, 3)), *b = tj_ones(TJ_F32, TJ_SHAPE(4, 3));
    EXPECT_ERR(tj_add(a, b), TJ_ERR_SHAPE,
               "add: shapes (2, 3) and (4, 3) cannot be broadcast (dimension 0: 2 vs 4)");
    EXPECT_ERR(tj_mul(tj_ones(TJ_F32, TJ_SHAPE(3)), tj_ones(TJ_F32, TJ_SHAPE(4))), TJ_ERR_SHAPE,
               "mul: shapes (3,) and (4,) cannot be broadcast");
    EXPECT_ERR(tj_where(tj_ones(TJ_F32, TJ_SHAPE(2)), a, a), TJ_ERR_SHAPE, "cannot be broadcast");
    tj_tensor *i = tj_ones(TJ_I32, TJ_SHAPE(2, 3));
    EXPECT_ERR(tj_add(a, i), TJ_ERR_DTYPE, "add: operands have different dtypes: float32 and int32");
    EXPECT_ERR(tj_sub(i, a), TJ_ERR_DTYPE, "sub: operands have different dtypes: int32 and float32");
    EXPECT_ERR(tj_add(tj_ones(TJ_F64, TJ_SHAPE(1)), a), TJ_ERR_DTYPE, "float64 and float32");
    /* only a rank-0 f32 takes the other dtype: not a (1,) f32, not a rank-0 f64 */
    EXPECT_ERR(tj_add(i, tj_ones(TJ_F32, TJ_SHAPE(1))), TJ_ERR_DTYPE, "int32 and float32");
    EXPECT_ERR(tj_add(i, tj_tensor_from(TJ_F64, TJ_SHAPE(), (double[]){2})), TJ_ERR_DTYPE,
               "int32 and float64");
    /* the rank-0 f32 scalar rule, either side */
    tj_tensor *r = tj_add(i, tj_scalar(2));
    ck_assert_int_eq(tj_tensor_dtype(r), TJ_I32);
    ck_shape(r, 2, 3);
    ck_vals(r, 3, 3, 3, 3, 3, 3);
    r = tj_sub(tj_scalar(10), i);
    ck_assert_int_eq(tj_tensor_dtype(r), TJ_I32);
    ck_vals(r, 9, 9, 9, 9, 9, 9);
    r = tj_mul(tj_ones(TJ_F64, TJ_SHAPE(2)), tj_scalar(0.5));
    ck_assert_int_eq(tj_tensor_dtype(r), TJ_F64);
    ck_vals(r, 0.5, 0.5);
    ck_assert_int_eq(tj_tensor_dtype(tj_greater(i, tj_scalar(0))), TJ_I32);
    ck_no_error();
}
END_TEST

START_TEST(unary_float_only_ops_reject_int32) {
    tj_tensor *i = tj_ones(TJ_I32, TJ_SHAPE(3));
    EXPECT_ERR(tj_exp(i), TJ_ERR_DTYPE, "exp: dtype int32 is not supported (cast to float32 first)");
    EXPECT_ERR(tj_log(i), TJ_ERR_DTYPE, "log: dtype int32 is not supported");
    EXPECT_ERR(tj_sqrt(i), TJ_ERR_DTYPE, "sqrt: dtype int32 is not supported");
    EXPECT_ERR(tj_tanh(i), TJ_ERR_DTYPE, "tanh: dtype int32 is not supported");
    EXPECT_ERR(tj_sigmoid(i), TJ_ERR_DTYPE, "sigmoid: dtype int32 is not supported");
    EXPECT_ERR(tj_softmax(i, 0), TJ_ERR_DTYPE, "softmax: dtype int32 is not supported");
    EXPECT_ERR(tj_log_softmax(i, 0), TJ_ERR_DTYPE, "log_softmax: dtype int32 is not supported");
    /* ... but these work on int32 */
    ck_vals(tj_neg(i), -1, -1, -1);
    ck_vals(tj_abs(tj_neg(i)), 1, 1, 1);
    ck_vals(tj_relu(tj_neg(i)), 0, 0, 0);
    ck_no_error();
}
END_TEST

START_TEST(int32_division_and_pow_errors) {
    tj_tensor *a = tj_tensor_from(TJ_I32, TJ_SHAPE(3), (int32_t[]){6, 7, 8});
    tj_tensor *z = tj_tensor_from(TJ_I32, TJ_SHAPE(3), (int32_t[]){1, 0, 2});
    EXPECT_ERR(tj_div(a, z), TJ_ERR_VALUE, "div: integer division by zero (divisor element 1 is 0)");
    EXPECT_ERR(tj_div(a, tj_scalar(0)), TJ_ERR_VALUE, "division by zero");
    EXPECT_ERR(tj_div(a, tj_zeros(TJ_I32, TJ_SHAPE(1))), TJ_ERR_VALUE, "division by zero");
    /* floats divide by zero as IEEE does */
    ck_vals(tj_div(tj_ones(TJ_F32, TJ_SHAPE(1)), tj_zeros(TJ_F32, TJ_SHAPE(1))), INFINITY);
    tj_tensor *e = tj_tensor_from(TJ_I32, TJ_SHAPE(3), (int32_t[]){2, -1, 0});
    EXPECT_ERR(tj_pow(a, e), TJ_ERR_VALUE, "pow: int32 to a negative power (exponent element 1 is -1)");
    EXPECT_ERR(tj_pow(a, tj_scalar(-2)), TJ_ERR_VALUE, "negative power");
    ck_vals(tj_pow(a, tj_scalar(2)), 36, 49, 64);
    ck_vals(tj_pow(tj_tensor_from(TJ_I32, TJ_SHAPE(3), (int32_t[]){0, 3, -2}), tj_scalar(0)), 1, 1, 1);
    ck_no_error();
}
END_TEST

START_TEST(matmul_errors) {
    tj_tensor *a = tj_ones(TJ_F32, TJ_SHAPE(10, 3)), *b = tj_ones(TJ_F32, TJ_SHAPE(4, 32));
    EXPECT_ERR(tj_matmul(a, b), TJ_ERR_SHAPE,
               "matmul: inner dimensions differ: a is (10, 3), b is (4, 32)");
    EXPECT_ERR(tj_matmul(tj_ones(TJ_F32, TJ_SHAPE(3)), tj_ones(TJ_F32, TJ_SHAPE(3, 2))), TJ_ERR_SHAPE,
               "matmul: operands need rank >= 2: a is (3,), b is (3, 2)");
    EXPECT_ERR(tj_matmul(tj_ones(TJ_F32, TJ_SHAPE(2, 3)), tj_ones(TJ_F32, TJ_SHAPE(3))), TJ_ERR_SHAPE,
               "rank >= 2");
    EXPECT_ERR(tj_matmul(tj_scalar(1), tj_scalar(1)), TJ_ERR_SHAPE, "rank >= 2");
    EXPECT_ERR(tj_matmul(tj_ones(TJ_F32, TJ_SHAPE(2, 3)), tj_ones(TJ_F64, TJ_SHAPE(3, 2))),
               TJ_ERR_DTYPE,
               "matmul: operands have different dtypes: float32 and float64");
    EXPECT_ERR(tj_matmul(tj_ones(TJ_I32, TJ_SHAPE(2, 3)), tj_ones(TJ_F32, TJ_SHAPE(3, 2))),
               TJ_ERR_DTYPE,
               "int32 and float32");
    EXPECT_ERR(tj_matmul(tj_ones(TJ_F32, TJ_SHAPE(2, 3, 4)), tj_ones(TJ_F32, TJ_SHAPE(5, 4, 2))),
               TJ_ERR_SHAPE, "cannot be broadcast");
    /* batch dims broadcast when they can */
    ck_shape(tj_matmul(tj_ones(TJ_F32, TJ_SHAPE(2, 1, 3, 4)), tj_ones(TJ_F32, TJ_SHAPE(5, 4, 2))),
             2, 5, 3, 2);
    ck_no_error();
}
END_TEST

/* The batch-dims error should name the operands' shapes, as the inner-dims error does. */
START_TEST(matmul_batch_error_names_operand_shapes) {
    EXPECT_ERR(tj_matmul(tj_ones(TJ_F32, TJ_SHAPE(2, 3, 4)), tj_ones(TJ_F32, TJ_SHAPE(5, 4, 2))),
               TJ_ERR_SHAPE, "(2, 3, 4)");
    EXPECT_ERR(tj_matmul(tj_ones(TJ_F32, TJ_SHAPE(2, 3, 4)), tj_ones(TJ_F32, TJ_SHAPE(5, 4, 2))),
               TJ_ERR_SHAPE, "(5, 4, 2)");
}
END_TEST

START_TEST(reduction_errors) {
    tj_tensor *t = tj_ones(TJ_F32, TJ_SHAPE(2, 3));
    EXPECT_ERR(tj_sum(t, 1, (int[]){2}, false), TJ_ERR_ARG, "sum: axis 2 is out of range for rank 2");
    EXPECT_ERR(tj_sum(t, 1, (int[]){-3}, false), TJ_ERR_ARG, "sum: axis -3 is out of range for rank 2");
    EXPECT_ERR(tj_max(t, 1, (int[]){5}, true), TJ_ERR_ARG, "max: axis 5 is out of range for rank 2");
    EXPECT_ERR(tj_mean(t, 1, (int[]){2}, false), TJ_ERR_ARG, "axis 2 is out of range for rank 2");
    EXPECT_ERR(tj_sum(t, 2, (int[]){0, 0}, false), TJ_ERR_ARG, "sum: axis 0 is given twice");
    EXPECT_ERR(tj_max(t, 2, (int[]){1, -1}, false), TJ_ERR_ARG, "max: axis -1 is given twice");
    EXPECT_ERR(tj_mean(t, 2, (int[]){0, 0}, false), TJ_ERR_ARG, "given twice");
    EXPECT_ERR(tj_sum(t, 1, NULL, false), TJ_ERR_ARG, "sum: naxes is 1 but axes is NULL");
    EXPECT_ERR(tj_max(t, 2, NULL, false), TJ_ERR_ARG, "max: naxes is 2 but axes is NULL");
    EXPECT_ERR(tj_mean(t, 1, NULL, false), TJ_ERR_ARG, "axes is NULL");
    EXPECT_ERR(tj_sum(t, -1, (int[]){0}, false), TJ_ERR_ARG, "naxes is -1");
    EXPECT_ERR(tj_sum(tj_scalar(1), 1, (int[]){0}, false), TJ_ERR_ARG, "out of range for rank 0");
    /* max over an empty axis has no value */
    tj_tensor *e = tj_zeros(TJ_F32, TJ_SHAPE(0, 3));
    EXPECT_ERR(tj_max(e, 1, (int[]){0}, false), TJ_ERR_SHAPE,
               "max: reduction over an empty axis of a tensor of shape (0, 3)");
    EXPECT_ERR(tj_max(e, 0, NULL, false), TJ_ERR_SHAPE, "empty axis");
    /* argmax */
    EXPECT_ERR(tj_argmax(e, 0), TJ_ERR_SHAPE, "argmax: axis 0 is empty");
    EXPECT_ERR(tj_argmax(t, 2), TJ_ERR_ARG, "argmax: axis 2 is out of range for rank 2");
    EXPECT_ERR(tj_argmax(t, -3), TJ_ERR_ARG, "argmax: axis -3 is out of range");
    ck_vals(tj_argmax(tj_tensor_from(TJ_F32, TJ_SHAPE(2, 3), (float[]){1, 5, 5, 7, 0, 7}), -1), 1, 0);
    ck_no_error();
}
END_TEST

/* mean's errors should name mean, the function the user called, not the sum inside it. */
START_TEST(mean_errors_name_mean) {
    tj_tensor *t = tj_ones(TJ_F32, TJ_SHAPE(2, 3));
    EXPECT_ERR(tj_mean(t, 1, (int[]){2}, false), TJ_ERR_ARG, "mean: axis 2 is out of range for rank 2");
    EXPECT_ERR(tj_mean(t, 2, (int[]){1, 1}, false), TJ_ERR_ARG, "mean: axis 1 is given twice");
    EXPECT_ERR(tj_mean(t, 1, NULL, false), TJ_ERR_ARG, "mean: naxes is 1 but axes is NULL");
}
END_TEST

START_TEST(shape_op_errors) {
    tj_tensor *t = tj_ones(TJ_F32, TJ_SHAPE(2, 3));
    EXPECT_ERR(tj_reshape(t, TJ_SHAPE(4)), TJ_ERR_SHAPE,
               "reshape: cannot reshape (2, 3) (6 elements) into (4,) (4 elements)");
    EXPECT_ERR(tj_reshape(t, TJ_SHAPE(-1, 4)), TJ_ERR_SHAPE,
               "reshape: cannot reshape (2, 3) (6 elements) into (-1, 4)");
    EXPECT_ERR(tj_reshape(t, TJ_SHAPE(-1, -1)), TJ_ERR_SHAPE, "reshape: bad target shape (-1, -1)");
    EXPECT_ERR(tj_reshape(t, TJ_SHAPE(-2, 3)), TJ_ERR_SHAPE, "bad target shape (-2, 3)");
    tj_shape r9 = {.ndim = 9};
    EXPECT_ERR(tj_reshape(t, r9), TJ_ERR_SHAPE, "reshape: rank 9 is out of range [0, 8]");
    ck_shape(tj_reshape(t, TJ_SHAPE(3, -1)), 3, 2);
    EXPECT_ERR(tj_transpose(t, (int[]){0, 0}), TJ_ERR_ARG, "transpose: perm repeats axis 0");
    EXPECT_ERR(tj_transpose(t, (int[]){1, -1}), TJ_ERR_ARG, "transpose: perm repeats axis 1");
    EXPECT_ERR(tj_transpose(t, (int[]){0, 2}), TJ_ERR_ARG,
               "transpose: perm[1] = 2 is out of range for rank 2");
    EXPECT_ERR(tj_transpose(t, (int[]){-3, 0}), TJ_ERR_ARG, "perm[0] = -3 is out of range");
    EXPECT_ERR(tj_broadcast_to(t, TJ_SHAPE(3, 3)), TJ_ERR_SHAPE,
               "broadcast_to: cannot broadcast (2, 3) to (3, 3)");
    EXPECT_ERR(tj_broadcast_to(t, TJ_SHAPE(3)), TJ_ERR_SHAPE, "cannot broadcast (2, 3) to (3,)");
    EXPECT_ERR(tj_broadcast_to(t, TJ_SHAPE(2, -3)), TJ_ERR_SHAPE, "broadcast_to: dimension 1 is -3");
    tj_tensor *col = tj_tensor_from(TJ_F32, TJ_SHAPE(2, 1), (float[]){1, 2});
    ck_vals(tj_broadcast_to(col, TJ_SHAPE(2, 2)), 1, 1, 2, 2);
    ck_no_error();
}
END_TEST

START_TEST(concat_slice_gather_errors) {
    tj_tensor *a = tj_ones(TJ_F32, TJ_SHAPE(2, 3));
    EXPECT_ERR(tj_concat(2, (tj_tensor *[]){a, tj_ones(TJ_I32, TJ_SHAPE(2, 3))}, 0), TJ_ERR_DTYPE,
               "concat: tensor 1 is int32, tensor 0 is float32");
    EXPECT_ERR(tj_concat(2, (tj_tensor *[]){a, tj_ones(TJ_F32, TJ_SHAPE(2, 4))}, 0), TJ_ERR_SHAPE,
               "concat: tensor 1 has shape (2, 4), tensor 0 has (2, 3) (only axis 0 may differ)");
    EXPECT_ERR(tj_concat(2, (tj_tensor *[]){a, tj_ones(TJ_F32, TJ_SHAPE(6))}, 0), TJ_ERR_SHAPE, "(6,)");
    EXPECT_ERR(tj_concat(0, (tj_tensor *[]){a}, 0), TJ_ERR_ARG, "concat: 0 tensors given");
    EXPECT_ERR(tj_concat(-1, (tj_tensor *[]){a}, 0), TJ_ERR_ARG, "concat: -1 tensors given");
    EXPECT_ERR(tj_concat(1, (tj_tensor *[]){a}, 2), TJ_ERR_ARG,
               "concat: axis 2 is out of range for rank 2");
    ck_shape(tj_concat(2, (tj_tensor *[]){a, tj_ones(TJ_F32, TJ_SHAPE(2, 4))}, -1), 2, 7);

    EXPECT_ERR(tj_slice(a, (int64_t[]){-1, 0}, (int64_t[]){1, 1}), TJ_ERR_ARG,
               "slice: dim 0: begin -1 size 1 is outside 0..2");
    EXPECT_ERR(tj_slice(a, (int64_t[]){0, 2}, (int64_t[]){1, 2}), TJ_ERR_ARG,
               "slice: dim 1: begin 2 size 2 is outside 0..3");
    EXPECT_ERR(tj_slice(a, (int64_t[]){3, 0}, (int64_t[]){-1, 1}), TJ_ERR_ARG,
               "dim 0: begin 3 size -1");
    EXPECT_ERR(tj_slice(a, (int64_t[]){0, 0}, (int64_t[]){1, -2}), TJ_ERR_ARG, "size -2");
    EXPECT_ERR(tj_slice(a, (int64_t[]){0, INT64_MAX}, (int64_t[]){1, INT64_MAX}), TJ_ERR_ARG, "dim 1");
    EXPECT_ERR(tj_slice(a, NULL, NULL), TJ_ERR_ARG, "slice: begin or size is NULL");
    ck_shape(tj_slice(a, (int64_t[]){1, 1}, (int64_t[]){-1, -1}), 1, 2);

    tj_tensor *t = tj_tensor_from(TJ_F32, TJ_SHAPE(3, 2), (float[]){0, 1, 2, 3, 4, 5});
    EXPECT_ERR(tj_gather(t, tj_tensor_from(TJ_I32, TJ_SHAPE(2), (int32_t[]){0, 5}), 0), TJ_ERR_VALUE,
               "gather: index 5 (element 1 of indices) is out of range [0, 3) for axis 0");
    EXPECT_ERR(tj_gather(t, tj_tensor_from(TJ_I32, TJ_SHAPE(1), (int32_t[]){-1}), 1), TJ_ERR_VALUE,
               "gather: index -1 (element 0 of indices) is out of range [0, 2) for axis 1");
    EXPECT_ERR(tj_gather(t, tj_ones(TJ_F32, TJ_SHAPE(2)), 0), TJ_ERR_DTYPE,
               "gather: indices must be int32, got float32");
    EXPECT_ERR(tj_gather(t, tj_zeros(TJ_I32, TJ_SHAPE(1)), 2), TJ_ERR_ARG,
               "gather: axis 2 is out of range for rank 2");
    ck_vals(tj_gather(t, tj_tensor_from(TJ_I32, TJ_SHAPE(2), (int32_t[]){2, 0}), 0), 4, 5, 0, 1);
    ck_no_error();
}
END_TEST

/* With a NULL array, the message should say so, not that n tensors were given. */
START_TEST(concat_null_array_message) {
    EXPECT_ERR(tj_concat(2, NULL, 0), TJ_ERR_ARG, "NULL");
}
END_TEST

START_TEST(softmax_dropout_rand_errors) {
    tj_tensor *t = tj_ones(TJ_F32, TJ_SHAPE(2, 3));
    EXPECT_ERR(tj_softmax(t, 2), TJ_ERR_ARG, "softmax: axis 2 is out of range for rank 2");
    EXPECT_ERR(tj_log_softmax(t, -3), TJ_ERR_ARG, "log_softmax: axis -3 is out of range");
    EXPECT_ERR(tj_dropout(t, 1.0, true), TJ_ERR_ARG, "dropout: rate 1 is outside [0, 1)");
    EXPECT_ERR(tj_dropout(t, -0.1, true), TJ_ERR_ARG, "dropout: rate -0.1 is outside [0, 1)");
    EXPECT_ERR(tj_dropout(t, 1.0, false), TJ_ERR_ARG, "rate 1 is outside");
    EXPECT_ERR(tj_dropout(t, NAN, true), TJ_ERR_ARG, "dropout: rate nan");
    EXPECT_ERR(tj_dropout(tj_ones(TJ_I32, TJ_SHAPE(2)), 0.5, true), TJ_ERR_DTYPE,
               "dropout: dtype int32");
    ck_assert_ptr_eq(tj_dropout(t, 0.5, false), t);
    ck_assert_ptr_eq(tj_dropout(t, 0.0, true), t);
    EXPECT_ERR(tj_rand_uniform(TJ_SHAPE(2), 2, 1), TJ_ERR_ARG, "rand_uniform: bad range lo 2, hi 1");
    EXPECT_ERR(tj_rand_uniform(TJ_SHAPE(2), NAN, 1), TJ_ERR_ARG, "rand_uniform: bad range lo nan");
    EXPECT_ERR(tj_rand_uniform(TJ_SHAPE(2), 0, NAN), TJ_ERR_ARG, "hi nan");
    EXPECT_ERR(tj_rand_uniform(TJ_SHAPE(2), 0, INFINITY), TJ_ERR_ARG, "bad range");
    EXPECT_ERR(tj_rand_uniform(TJ_SHAPE(2), -1e39, 0), TJ_ERR_ARG, "bad range");   /* not a float32 */
    EXPECT_ERR(tj_rand_uniform(TJ_SHAPE(-1), 0, 1), TJ_ERR_SHAPE, "rand_uniform: dimension 0 is -1");
    EXPECT_ERR(tj_rand_normal(TJ_SHAPE(2), 0, -1), TJ_ERR_ARG, "rand_normal: bad mean 0 or stddev -1");
    EXPECT_ERR(tj_rand_normal(TJ_SHAPE(2), NAN, 1), TJ_ERR_ARG, "rand_normal: bad mean nan");
    ck_shape(tj_rand_uniform(TJ_SHAPE(2, 2), -1, 1), 2, 2);
    ck_no_error();
}
END_TEST

START_TEST(tensor_from_errors) {
    float data[4] = {0};
    EXPECT_ERR(tj_tensor_from(TJ_F32, TJ_SHAPE(2), NULL), TJ_ERR_ARG, "tensor_from: data is NULL");
    EXPECT_ERR(tj_tensor_from(TJ_F32, TJ_SHAPE(), NULL), TJ_ERR_ARG, "tensor_from: data is NULL");
    EXPECT_ERR(tj_tensor_from((tj_dtype)7, TJ_SHAPE(2), data), TJ_ERR_DTYPE,
               "tensor_from: 7 is not a dtype");
    EXPECT_ERR(tj_tensor_from((tj_dtype)-1, TJ_SHAPE(2), data), TJ_ERR_DTYPE, "-1 is not a dtype");
    EXPECT_ERR(tj_tensor_from(TJ_F32, TJ_SHAPE(2, -3), data), TJ_ERR_SHAPE,
               "tensor_from: dimension 1 is -3, must be >= 0");
    tj_shape r9 = {.ndim = 9};
    EXPECT_ERR(tj_tensor_from(TJ_F32, r9, data), TJ_ERR_SHAPE,
               "tensor_from: rank 9 is out of range [0, 8]");
    tj_shape rneg = {.ndim = -1};
    EXPECT_ERR(tj_tensor_from(TJ_F32, rneg, data), TJ_ERR_SHAPE, "rank -1 is out of range");
    EXPECT_ERR(tj_tensor_from(TJ_F32, TJ_SHAPE(INT64_C(1) << 40, INT64_C(1) << 40), data), TJ_ERR_SHAPE,
               "has too many elements");
    EXPECT_ERR(tj_full((tj_dtype)7, TJ_SHAPE(2), 1), TJ_ERR_DTYPE, "full: 7 is not a dtype");
    EXPECT_ERR(tj_full(TJ_F32, r9, 1), TJ_ERR_SHAPE, "full: rank 9");
    EXPECT_ERR(tj_zeros(TJ_F32, TJ_SHAPE(-1)), TJ_ERR_SHAPE, "dimension 0 is -1");
    EXPECT_ERR(tj_ones((tj_dtype)3, TJ_SHAPE(1)), TJ_ERR_DTYPE, "3 is not a dtype");
}
END_TEST

/* zeros and ones should name themselves in their errors, not "full". */
START_TEST(zeros_ones_errors_name_the_function) {
    EXPECT_ERR(tj_zeros(TJ_F32, TJ_SHAPE(-1)), TJ_ERR_SHAPE, "zeros: dimension 0 is -1");
    EXPECT_ERR(tj_ones((tj_dtype)3, TJ_SHAPE(1)), TJ_ERR_DTYPE, "ones: 3 is not a dtype");
}
END_TEST

START_TEST(set_threads_errors) {
    int before = tj_threads();
    ck_assert_int_eq(tj_set_threads(0), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "set_threads: n is 0, expected 1 to");
    ck_assert_int_eq(tj_set_threads(1000), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "set_threads: n is 1000");
    ck_assert_int_eq(tj_set_threads(-5), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "n is -5");
    ck_assert_int_eq(tj_threads(), before);
}
END_TEST

/* ---- shapes whose element count would overflow int64/size_t ---------------------------
 * A zero dim must not hide huge other dims, and reshape must not wrap its product:
 * both are errors, never out-of-bounds accesses. */

/* Broadcast runs: rows advance like an odometer over several dims, long rows split into
 * fixed pieces; every value checked against its index arithmetic. */
START_TEST(broadcast_rows_and_pieces) {
    float a[2 * 3 * 4], b[3], c[2 * 4];
    for (int i = 0; i < 24; i++) a[i] = (float)i;
    for (int i = 0; i < 3; i++) b[i] = (float)(100 * i);
    for (int i = 0; i < 8; i++) c[i] = (float)(1000 * i);
    tj_tensor *ta = tj_tensor_from(TJ_F32, TJ_SHAPE(2, 3, 4), a);
    tj_tensor *tb = tj_tensor_from(TJ_F32, TJ_SHAPE(3, 1), b);
    tj_tensor *tc = tj_tensor_from(TJ_F32, TJ_SHAPE(2, 1, 4), c);
    tj_tensor *y = tj_add(tj_add(ta, tb), tj_mul(tc, tj_scalar(2)));   /* (2, 3, 4) */
    tj_tensor *z = tj_add(tb, tc);                                     /* (2, 3, 4) from two broadcasts */
    ck_no_error();
    ck_shape(y, 2, 3, 4);
    ck_shape(z, 2, 3, 4);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) {
                int e = (i * 3 + j) * 4 + k;
                float ck = c[i * 4 + k];
                ck_assert_msg(tu_get(y, e) == a[e] + b[j] + 2 * ck, "y[%d,%d,%d] = %g", i, j, k, tu_get(y, e));
                ck_assert_msg(tu_get(z, e) == b[j] + ck, "z[%d,%d,%d] = %g", i, j, k, tu_get(z, e));
            }
    enum { L = 3 * 16384 + 5 };                 /* rows longer than a piece */
    static float r[L];
    for (int i = 0; i < L; i++) r[i] = (float)i;
    tj_tensor *row = tj_tensor_from(TJ_F32, TJ_SHAPE(1, L), r);
    tj_tensor *col = tj_tensor_from(TJ_F32, TJ_SHAPE(2, 1), (float[]){0.5f, 0.25f});
    tj_tensor *w = tj_sub(row, col);            /* (2, L) */
    tj_tensor *u = tj_add(tj_reshape(row, TJ_SHAPE(L)), tj_ones(TJ_F32, TJ_SHAPE(1)));
    ck_no_error();
    const float *wv = tj_tensor_data(w), *uv = tj_tensor_data(u);
    for (int i = 0; i < L; i++) {
        ck_assert_msg(wv[i] == r[i] - 0.5f && wv[L + i] == r[i] - 0.25f, "w[:, %d] = %g, %g", i, wv[i], wv[L + i]);
        ck_assert_msg(uv[i] == r[i] + 1, "u[%d] = %g", i, uv[i]);
    }
}
END_TEST

/* The size check at its bounds: a product of 2^59 elements passes, one more fails, also
 * when the product overflows int64 or a zero dim hides a huge one. */
START_TEST(shape_check_bounds) {
    int64_t p29 = INT64_C(1) << 29, p30 = INT64_C(1) << 30, p59 = INT64_C(1) << 59;
    ck_assert_int_eq(tj_shape_check(&TJ_SHAPE(p30, p29), "t"), 0);
    ck_assert_int_eq(tj_shape_check(&TJ_SHAPE(0, p59), "t"), 0);
    ck_assert_int_eq(tj_shape_check(&TJ_SHAPE(p59, 1, 1), "t"), 0);
    ck_assert_int_eq(tj_shape_check(&TJ_SHAPE(), "t"), 0);
    ck_no_error();
    ck_assert_int_eq(tj_shape_check(&TJ_SHAPE(p30, p29 + 1), "t"), TJ_ERR_SHAPE);
    ck_assert_error(TJ_ERR_SHAPE, "t: shape (1073741824, 536870913) has too many elements (more than 2^59)");
    ck_assert_int_eq(tj_shape_check(&TJ_SHAPE(0, p59 + 1), "t"), TJ_ERR_SHAPE);
    ck_assert_error(TJ_ERR_SHAPE, "too many elements");
    ck_assert_int_eq(tj_shape_check(&TJ_SHAPE(3, INT64_C(1) << 62), "t"), TJ_ERR_SHAPE);   /* 3 * 2^62 wraps */
    ck_assert_error(TJ_ERR_SHAPE, "too many elements");
    ck_assert_int_eq(tj_shape_check(&TJ_SHAPE(p59, 0, p59), "t"), TJ_ERR_SHAPE);
    ck_assert_error(TJ_ERR_SHAPE, "too many elements");
    ck_assert_int_eq(tj_shape_check(&TJ_SHAPE(2, 3, -4), "t"), TJ_ERR_SHAPE);
    ck_assert_error(TJ_ERR_SHAPE, "t: dimension 2 is -4, must be >= 0");
    ck_assert_int_eq(tj_shape_check(&(tj_shape){.ndim = TJ_MAX_DIMS + 1}, "t"), TJ_ERR_SHAPE);
    ck_assert_error(TJ_ERR_SHAPE, "t: rank 9 is out of range [0, 8]");
}
END_TEST

START_TEST(reshape_rejects_wrapping_shape) {
    tj_tensor *t = tj_tensor_from(TJ_F32, TJ_SHAPE(2), (float[]){1, 2});
    /* 3 * 6148914691236517206 = 2^64 + 2: wraps to exactly 2 elements */
    tj_tensor *r = tj_reshape(t, TJ_SHAPE(3, INT64_C(6148914691236517206)));
    ck_assert_msg(r == NULL, "reshape accepted a shape of 1.8e19 elements for 2 values");
    ck_assert_int_eq(tj_error_code(), TJ_ERR_SHAPE);
    tj_clear_error();
    r = tj_reshape(t, TJ_SHAPE(-1, INT64_C(1) << 62, 4));
    ck_assert_ptr_null(r);
    ck_assert_int_eq(tj_error_code(), TJ_ERR_SHAPE);
}
END_TEST

START_TEST(reduction_of_huge_empty_tensor_fails_cleanly) {
    tj_tensor *e = tj_zeros(TJ_F32, TJ_SHAPE(0, INT64_C(1) << 62));
    if (e) {   /* allowed; then summing away the 0 dim would need 2^62 floats: an error */
        tj_tensor *s = tj_sum(e, 1, (int[]){0}, false);
        ck_assert_msg(s == NULL, "sum made a (2^62,) tensor");
        ck_assert_msg(tj_error_code() == TJ_ERR_SHAPE || tj_error_code() == TJ_ERR_OOM,
                      "error %d: %s", tj_error_code(), tj_last_error());
    } else {
        ck_assert_int_eq(tj_error_code(), TJ_ERR_SHAPE);
    }
}
END_TEST

/* ---- 7. int32 arithmetic wraps, division truncates ---------------------------------------- */

START_TEST(int32_wraps_and_truncates) {
    tj_tensor *mx = tj_tensor_from(TJ_I32, TJ_SHAPE(1), (int32_t[]){INT32_MAX});
    tj_tensor *mn = tj_tensor_from(TJ_I32, TJ_SHAPE(1), (int32_t[]){INT32_MIN});
    tj_tensor *one = tj_ones(TJ_I32, TJ_SHAPE(1));
    tj_tensor *m1 = tj_full(TJ_I32, TJ_SHAPE(1), -1);
    ck_vals(tj_add(mx, one), INT32_MIN);
    ck_vals(tj_sub(mn, one), INT32_MAX);
    ck_vals(tj_mul(mx, tj_full(TJ_I32, TJ_SHAPE(1), 2)), -2);
    ck_vals(tj_mul(tj_full(TJ_I32, TJ_SHAPE(1), 65536), tj_full(TJ_I32, TJ_SHAPE(1), 65536)), 0);
    ck_vals(tj_div(mn, m1), INT32_MIN);
    ck_vals(tj_mul(mn, m1), INT32_MIN);
    ck_vals(tj_neg(mn), INT32_MIN);
    ck_vals(tj_abs(mn), INT32_MIN);
    ck_vals(tj_add(mx, tj_scalar(1)), INT32_MIN);               /* through the scalar rule */
    ck_vals(tj_pow(tj_full(TJ_I32, TJ_SHAPE(1), 2), tj_full(TJ_I32, TJ_SHAPE(1), 31)), INT32_MIN);
    /* 3^21 = 10460353203 = 2 * 2^32 + 1870418611 */
    ck_vals(tj_pow(tj_full(TJ_I32, TJ_SHAPE(1), 3), tj_full(TJ_I32, TJ_SHAPE(1), 21)), 1870418611);
    /* reductions and matmul wrap too */
    tj_tensor *mx1 = tj_tensor_from(TJ_I32, TJ_SHAPE(2), (int32_t[]){INT32_MAX, 1});
    ck_vals(tj_sum(mx1, 0, NULL, false), INT32_MIN);
    ck_vals(tj_matmul(tj_reshape(mx1, TJ_SHAPE(1, 2)), tj_ones(TJ_I32, TJ_SHAPE(2, 1))), INT32_MIN);
    /* division truncates toward zero */
    tj_tensor *num = tj_tensor_from(TJ_I32, TJ_SHAPE(6), (int32_t[]){-7, 7, -7, 7, -1, 1});
    tj_tensor *den = tj_tensor_from(TJ_I32, TJ_SHAPE(6), (int32_t[]){2, -2, -2, 2, 2, -2});
    ck_vals(tj_div(num, den), -3, -3, 3, 3, 0, 0);
    ck_vals(tj_div(num, tj_scalar(2)), -3, 3, -3, 3, 0, 0);
    ck_vals(tj_div(num, tj_scalar(-1)), 7, -7, 7, -7, 1, -1);
    ck_vals(tj_mean(tj_tensor_from(TJ_I32, TJ_SHAPE(2), (int32_t[]){-7, 0}), 0, NULL, false), -3);
    ck_assert_int_eq(tj_tensor_dtype(tj_mean(num, 0, NULL, false)), TJ_I32);
    ck_no_error();
}
END_TEST

/* ---- the suite ------------------------------------------------------------------------------ */

static TCase *tcase(Suite *s, const char *name) {
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    suite_add_tcase(s, tc);
    return tc;
}

/* The default allocator reuses a freed large block for a request of the same size (eager
 * steps allocate the same big buffers every iteration); other sizes get other blocks; a
 * user allocator empties the cache (its blocks belong to the default one). */
static size_t user_calls;
static void *user_alloc(void *ud, void *p, size_t o, size_t n) {
    (void)ud; (void)o;
    user_calls++;
    if (n == 0) { free(p); return NULL; }
    return realloc(p, n);
}

START_TEST(large_blocks_are_reused) {
    tj_set_allocator(NULL, NULL);                 /* an empty cache, whatever ran before */
    tj_scope_begin();
    const void *first = tj_tensor_data(tj_zeros(TJ_F32, TJ_SHAPE(1 << 20)));
    tj_scope_end();
    tj_scope_begin();
    tj_tensor *other = tj_zeros(TJ_F32, TJ_SHAPE(3 << 18));                   /* another size */
    ck_assert_ptr_ne(tj_tensor_data(other), first);
    tj_tensor *again = tj_ones(TJ_F32, TJ_SHAPE(1 << 20));
    ck_assert_ptr_eq(tj_tensor_data(again), first);
    ck_assert_double_eq(tu_get(again, (1 << 20) - 1), 1.0);                  /* filled anew */
    tj_scope_end();
    tj_set_allocator(user_alloc, NULL);                                       /* flushes */
    tj_scope_begin();
    user_calls = 0;
    tj_tensor *viauser = tj_zeros(TJ_F32, TJ_SHAPE(1 << 20));
    ck_assert(viauser && user_calls > 0);
    tj_scope_end();
    tj_set_allocator(NULL, NULL);
}
END_TEST

Suite *tensor_suite(void) {
    Suite *s = suite_create("tensor");
    TCase *tc = tcase(s, "create");
    tcase_add_test(tc, from_copies_data_every_dtype);
    tcase_add_test(tc, ranks_0_to_max_every_dtype);
    tcase_add_test(tc, zeros_ones_full_scalar_values);
    tcase_add_test(tc, full_i32_saturates_like_cast);
    tcase_add_test(tc, item_one_element_only);
    tcase_add_test(tc, shape_macro);
    tcase_add_test(tc, zero_size_dims);
    tcase_add_test(tc, broadcast_rows_and_pieces);
    tcase_add_test(tc, softmax_over_empty_axis_is_empty);
    tcase_add_test(tc, large_blocks_are_reused);

    tc = tcase(s, "cast");
    tcase_add_test(tc, cast_all_pairs_exact);
    tcase_add_test(tc, cast_errors);
    tcase_add_test(tc, cast_same_dtype_keeps_gradient);

    tc = tcase(s, "scopes");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, stale_after_scope_end_every_op);
    tcase_add_test(tc, stale_handle_never_aliases_new_tensor);
    tcase_add_test(tc, keep_hands_to_enclosing_scope);
    tcase_add_test(tc, nested_scopes_100_deep);
    tcase_add_test(tc, scope_spills_past_its_inline_slots);
    tcase_add_test(tc, scope_end_without_begin);
    tcase_add_test(tc, not_a_tensor_handle);
    tcase_add_test(tc, scope_loop_does_not_grow_memory);

    tc = tcase(s, "errors");
    tcase_add_test(tc, null_in_null_out);
    tcase_add_test(tc, chain_reports_first_error);
    tcase_add_test(tc, clear_error_resets);

    tc = tcase(s, "variables");
    tcase_add_test(tc, variable_basics);
    tcase_add_test(tc, assign_updates_and_copies_on_write);
    tcase_add_test(tc, assign_errors);
    tcase_add_test(tc, variable_free_keeps_views_valid);
    tcase_add_test(tc, assign_returns_its_own_error_code);

    tc = tcase(s, "op_errors");
    tcase_add_test(tc, binary_op_errors);
    tcase_add_test(tc, unary_float_only_ops_reject_int32);
    tcase_add_test(tc, int32_division_and_pow_errors);
    tcase_add_test(tc, matmul_errors);
    tcase_add_test(tc, matmul_batch_error_names_operand_shapes);
    tcase_add_test(tc, reduction_errors);
    tcase_add_test(tc, mean_errors_name_mean);
    tcase_add_test(tc, shape_op_errors);
    tcase_add_test(tc, concat_slice_gather_errors);
    tcase_add_test(tc, concat_null_array_message);
    tcase_add_test(tc, softmax_dropout_rand_errors);
    tcase_add_test(tc, tensor_from_errors);
    tcase_add_test(tc, zeros_ones_errors_name_the_function);
    tcase_add_test(tc, set_threads_errors);

    tc = tcase(s, "overflow");
    tcase_add_test(tc, shape_check_bounds);
    tcase_add_test(tc, reshape_rejects_wrapping_shape);
    tcase_add_test(tc, reduction_of_huge_empty_tensor_fails_cleanly);

    tc = tcase(s, "int32");
    tcase_add_test(tc, int32_wraps_and_truncates);
    return s;
}
