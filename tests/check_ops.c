/* check_ops.c: every op of the table, forward, against a naive double-precision
 * reference (opspec.c), in f32, f64 and int32 where the op takes it, over broadcasting,
 * size-1, odd sizes and rank 0; plus the canonical reduction order, bit for bit, and
 * reductions that do not depend on the thread count; small matmuls (ops/matmul_small.h)
 * in their documented order, bit for bit, and on both sides of the size rule. */
#include "opspec.h"
#include "math/reduce.h"
#include "matmul_small.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_every_op_has_a_spec) {
    for (int op = 0; op < TJ_OP_COUNT; op++) {
        const opspec *sp = spec_for((tj_op)op);
        ck_assert_msg(sp && sp->ncases > 0, "op %s has no test spec in tests/opspec.c", tj_ops[op]->name);
        ck_assert_msg(!sp->differentiable == !tj_ops[op]->grad,
                      "op %s: spec and table disagree on differentiability", tj_ops[op]->name);
        ck_assert_msg(tj_ops[op]->kind != TJ_KIND_OTHER || tj_ops[op]->exec,
                      "op %s has no exec kernel", tj_ops[op]->name);
    }
}
END_TEST

static bool uses_sums(tj_op op) { return op == TJ_OP_SUM || op == TJ_OP_MATMUL; }

static void check_case(const opspec *sp, int c, tj_dtype dt) {
    tj_scope_begin();
    tj_tensor *in[SPEC_MAXIN];
    ref_t rin[SPEC_MAXIN], ref;
    spec_inputs(sp, c, dt, 1000u * (unsigned)sp->op + (unsigned)c, in, rin);
    spec_rng_state(sp, c);
    tj_tensor *out = sp->apply(c, in);
    ck_assert_msg(out, "%s case %d %s: %s", tj_ops[sp->op]->name, c, tj_dtype_name(dt), tj_last_error());
    spec_reference(sp, c, rin, &ref);
    tj_shape s = tj_tensor_shape(out);
    ck_assert_int_eq(s.ndim, ref.s.ndim);
    for (int d = 0; d < s.ndim; d++) ck_assert_int_eq(s.dim[d], ref.s.dim[d]);
    tj_dtype odt = tj_tensor_dtype(out);
    double rtol = odt == TJ_F32 ? 4e-6 : odt == TJ_F64 ? 1e-12 : 0;
    double atol = odt == TJ_F32 ? (uses_sums(sp->op) ? 2e-5 * 64 : 1e-6) : odt == TJ_F64 ? 1e-12 : 0;
    for (int64_t i = 0; i < tj_tensor_numel(out); i++) {
        double got = tu_get(out, i), want = ref.v[i];
        ck_assert_msg(fabs(got - want) <= atol + rtol * fabs(want) || (isnan(got) && isnan(want)),
                      "%s case %d %s: element %lld is %.9g, reference %.9g", tj_ops[sp->op]->name, c,
                      tj_dtype_name(dt), (long long)i, got, want);
    }
    for (int k = 0; k < sp->nin; k++) ref_free(&rin[k]);
    ref_free(&ref);
    tj_scope_end();
    ck_assert_int_eq(tj_error_code(), 0);
}

START_TEST(test_forward) {
    const opspec *sp = &tj_specs[_i];
    for (int c = 0; c < sp->ncases; c++) {
        if (sp->nin == 0) { check_case(sp, c, TJ_F32); continue; }
        check_case(sp, c, TJ_F32);
        check_case(sp, c, TJ_F64);
        if (sp->int32_ok) check_case(sp, c, TJ_I32);
    }
}
END_TEST

/* The documented order (math/reduce.h), re-derived here: lanes, tree, blocks, recursion. */
static float canonical_sum(const float *x, int64_t n) {
    if (n <= TJ_REDUCE_BLOCK) {
        float acc[TJ_REDUCE_LANES] = {0};
        for (int64_t i = 0; i < n; i++) acc[i % TJ_REDUCE_LANES] += x[i];
        for (int w = TJ_REDUCE_LANES / 2; w >= 1; w /= 2)
            for (int l = 0; l < w; l++) acc[l] += acc[l + w];
        return acc[0];
    }
    int64_t nb = (n + TJ_REDUCE_BLOCK - 1) / TJ_REDUCE_BLOCK;
    float *part = malloc(sizeof(float) * (size_t)nb);
    for (int64_t b = 0; b < nb; b++) {
        int64_t len = b + 1 < nb ? TJ_REDUCE_BLOCK : n - b * TJ_REDUCE_BLOCK;
        part[b] = canonical_sum(x + b * TJ_REDUCE_BLOCK, len);
    }
    float r = canonical_sum(part, nb);
    free(part);
    return r;
}

START_TEST(test_sum_is_canonical_order) {
    const int64_t sizes[] = {1, 15, 16, 17, 4095, 4096, 4097, 100003, (1 << 20) + 7};
    tj_scope_begin();
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        tj_seed(k);
        tj_tensor *x = tj_rand_normal(TJ_SHAPE(sizes[k]), 0, 1);
        float got = (float)tj_item(tj_sum(x, 0, NULL, false));
        float want = canonical_sum(tj_tensor_data(x), sizes[k]);
        ck_assert_msg(memcmp(&got, &want, 4) == 0, "n=%lld: sum %.9g, canonical %.9g", (long long)sizes[k], got, want);
    }
    /* a non-contiguous reduction follows the same order over its sequence */
    tj_tensor *x = tj_rand_normal(TJ_SHAPE(5000, 3), 0, 1);
    int ax0 = 0;
    tj_tensor *s = tj_sum(x, 1, &ax0, false);
    const float *xv = tj_tensor_data(x);
    float *col = malloc(sizeof(float) * 5000);
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < 5000; i++) col[i] = xv[i * 3 + j];
        float want = canonical_sum(col, 5000), got = ((const float *)tj_tensor_data(s))[j];
        ck_assert_msg(memcmp(&got, &want, 4) == 0, "column %d: %.9g vs %.9g", j, got, want);
    }
    free(col);
    tj_scope_end();
}
END_TEST

/* Reduced axes in the middle (x as (outer, K, inner)) reduce all columns at once: each
 * output must have the bits of its sequence reduced alone, which a transposed copy gives
 * through the contiguous path. Columns past one piece (256), K past one block, -0 and NaN. */
START_TEST(test_column_reductions_match_one_at_a_time) {
    const int64_t shapes[][3] = {{2, 37, 300}, {1, 5000, 3}, {3, 17, 2}, {4, 1, 5}};
    const tj_dtype dts[] = {TJ_F32, TJ_F64, TJ_I32};
    tj_scope_begin();
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (size_t d = 0; d < 3; d++) {
            tj_seed(k);
            tj_tensor *x = tj_cast(tj_mul(tj_rand_normal(TJ_SHAPE(shapes[k][0], shapes[k][1], shapes[k][2]), 0, 1),
                                          tj_scalar(d == 2 ? 1000 : 1)), dts[d]);
            if (dts[d] != TJ_I32) {      /* a column of -0 (sum: +0 from the identity lanes), a NaN */
                size_t es = dts[d] == TJ_F64 ? 8 : 4, bytes = es * (size_t)tj_tensor_numel(x);
                char *xv = malloc(bytes);
                memcpy(xv, tj_tensor_data(x), bytes);
                for (int64_t i = 0; i < shapes[k][1]; i++) {
                    if (es == 4) ((float *)xv)[i * shapes[k][2]] = -0.0f;
                    else ((double *)xv)[i * shapes[k][2]] = -0.0;
                }
                if (shapes[k][2] > 1) {
                    if (es == 4) ((float *)xv)[1] = NAN;
                    else ((double *)xv)[1] = NAN;
                }
                x = tj_tensor_from(dts[d], tj_tensor_shape(x), xv);
                free(xv);
            }
            int mid = 1, last = 2, perm[3] = {0, 2, 1};
            tj_tensor *xt = tj_transpose(x, perm);
            tj_tensor *got[2] = {tj_sum(x, 1, &mid, false), tj_max(x, 1, &mid, false)};
            tj_tensor *want[2] = {tj_sum(xt, 1, &last, false), tj_max(xt, 1, &last, false)};
            for (int r = 0; r < 2; r++)
                ck_assert_msg(memcmp(tj_tensor_data(got[r]), tj_tensor_data(want[r]),
                                     (dts[d] == TJ_F64 ? 8 : 4) * (size_t)tj_tensor_numel(got[r])) == 0,
                              "%s over the middle of (%lld, %lld, %lld) %s differs from one at a time", r ? "max" : "sum",
                              (long long)shapes[k][0], (long long)shapes[k][1], (long long)shapes[k][2],
                              tj_dtype_name(dts[d]));
        }
    tj_scope_end();
}
END_TEST

/* Swapping the last two axes (the tiled copy) against the definition, across tile edges. */
START_TEST(test_transpose_last_two_tiled) {
    tj_scope_begin();
    const tj_dtype dts[] = {TJ_F32, TJ_F64, TJ_I32};
    const int64_t shapes[3][3] = {{3, 70, 45}, {2, 64, 128}, {1, 7, 9}};   /* edges, whole blocks, no block */
    for (size_t d = 0; d < 3; d++)
        for (int k = 0; k < 3; k++) {
            int64_t B = shapes[k][0], R = shapes[k][1], C = shapes[k][2];
            tj_tensor *x = tj_cast(tj_mul(tj_rand_normal(TJ_SHAPE(B, R, C), 0, 1), tj_scalar(100)), dts[d]);
            int perm[3] = {0, 2, 1};
            tj_tensor *y = tj_transpose(x, perm);
            ck_assert_int_eq(tj_tensor_shape(y).dim[1], C);
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < R; i++)
                    for (int64_t j = 0; j < C; j++)
                        ck_assert_double_eq(tu_get(y, (b * C + j) * R + i), tu_get(x, (b * R + i) * C + j));
        }
    tj_scope_end();
}
END_TEST

START_TEST(test_reductions_same_bits_any_thread_count) {
    int axes_sets[3][2] = {{0, 0}, {1, 0}, {0, 2}};
    int naxes[3] = {0, 1, 2};
    tj_scope_begin();
    tj_seed(7);
    tj_tensor *x = tj_rand_normal(TJ_SHAPE(64, 129, 257), 0, 1);
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(tj_set_threads(1), 0);
        tj_tensor *s1 = tj_sum(x, naxes[k], axes_sets[k], false), *m1 = tj_max(x, naxes[k], axes_sets[k], true);
        ck_assert_int_eq(tj_set_threads(2), 0);
        tj_tensor *s2 = tj_sum(x, naxes[k], axes_sets[k], false), *m2 = tj_max(x, naxes[k], axes_sets[k], true);
        ck_assert(memcmp(tj_tensor_data(s1), tj_tensor_data(s2), 4 * (size_t)tj_tensor_numel(s1)) == 0);
        ck_assert(memcmp(tj_tensor_data(m1), tj_tensor_data(m2), 4 * (size_t)tj_tensor_numel(m1)) == 0);
    }
    /* elementwise ops split into pieces too: same bits */
    tj_set_threads(1);
    tj_tensor *e1 = tj_tanh(tj_mul(x, x));
    tj_set_threads(2);
    tj_tensor *e2 = tj_tanh(tj_mul(x, x));
    ck_assert(memcmp(tj_tensor_data(e1), tj_tensor_data(e2), 4 * (size_t)tj_tensor_numel(e1)) == 0);
    tj_set_threads(1);
    tj_scope_end();
}
END_TEST

/* ---- small matmuls ----------------------------------------------------------------------------
 * Sizes on both sides of TJ_MATMUL_SMALL_MAX (2048): n below, at and above every block
 * width of the C loops (16/32 columns) with tails, n = 1, k = 1, k = 0, m = 1. */
static const int64_t mm_sizes[][3] = {   /* m, n, k */
    {10, 32, 3}, {10, 1, 32}, {10, 32, 1}, {32, 1, 10}, {3, 32, 10}, {1, 1, 1}, {7, 17, 5}, {4, 15, 6},
    {9, 33, 2}, {2, 67, 15}, {6, 3, 1}, {5, 40, 9}, {8, 16, 16}, {3, 4, 0},
    {8, 16, 17}, {16, 16, 16}, {33, 20, 7}, {1, 300, 9},   /* these call BLAS */
};

/* y[t] = a[t] @ b[t] (row-major, contiguous) computed in the documented order, in T */
#define ORDER_REF(name, T)                                                                         \
    static void name(int64_t nb, int64_t m, int64_t n, int64_t k, const T *a, int64_t sa, const T *b, \
                     int64_t sb, T *y) {                                                           \
        for (int64_t t = 0; t < nb; t++)                                                           \
            for (int64_t i = 0; i < m; i++)                                                        \
                for (int64_t j = 0; j < n; j++) {                                                  \
                    T acc = 0;                                                                     \
                    for (int64_t p = 0; p < k; p++) acc = acc + a[t * sa + i * k + p] * b[t * sb + p * n + j]; \
                    y[(t * m + i) * n + j] = acc;                                                  \
                }                                                                                  \
    }
ORDER_REF(order_ref_f32, float)
ORDER_REF(order_ref_f64, double)

/* a: (nb, m, k) or, with sa == 0, (m, k) broadcast; b likewise. Checks y = a @ b against
 * double (|error| <= k * eps * sum |a||b|) and, for small products, against the order. */
static void check_matmul(tj_tensor *a, tj_tensor *b, int64_t nb, int64_t sa, int64_t sb, int64_t m, int64_t n,
                         int64_t k) {
    tj_dtype dt = tj_tensor_dtype(a);
    tj_tensor *y = tj_matmul(a, b);
    ck_assert_msg(y != NULL, "%s", tj_last_error());
    ck_assert_int_eq(tj_tensor_numel(y), nb * m * n);
    double eps = dt == TJ_F32 ? 0x1p-24 : 0x1p-53;
    for (int64_t t = 0; t < nb; t++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double want = 0, mag = 0;
                for (int64_t p = 0; p < k; p++) {
                    double x = tu_get(a, t * sa + i * k + p) * tu_get(b, t * sb + p * n + j);
                    want += x;
                    mag += fabs(x);
                }
                double got = tu_get(y, (t * m + i) * n + j);
                ck_assert_msg(fabs(got - want) <= (double)(k + 1) * eps * mag, "%s (%lld,%lld,%lld) batch %lld: y[%lld,%lld] "
                              "is %.17g, reference %.17g", tj_dtype_name(dt), (long long)m, (long long)n, (long long)k,
                              (long long)t, (long long)i, (long long)j, got, want);
            }
    if (!tj_matmul_small(m, n, k)) return;
    size_t es = dt == TJ_F32 ? 4 : 8, bytes = es * (size_t)(nb * m * n);
    void *ref = malloc(bytes ? bytes : 1);
    if (dt == TJ_F32) order_ref_f32(nb, m, n, k, tj_tensor_data(a), sa, tj_tensor_data(b), sb, ref);
    else order_ref_f64(nb, m, n, k, tj_tensor_data(a), sa, tj_tensor_data(b), sb, ref);
    ck_assert_msg(memcmp(ref, tj_tensor_data(y), bytes) == 0, "%s (%lld,%lld,%lld): not the documented order",
                  tj_dtype_name(dt), (long long)m, (long long)n, (long long)k);
    free(ref);
}

static tj_tensor *normal(tj_dtype dt, tj_shape s) {
    tj_tensor *x = tj_rand_normal(s, 0, 1);
    return dt == TJ_F64 ? tj_cast(x, TJ_F64) : x;
}

START_TEST(test_small_matmul_rule) {
    ck_assert(tj_matmul_small(8, 16, 16));                  /* 2048 */
    ck_assert(!tj_matmul_small(8, 16, 17));
    ck_assert(tj_matmul_small(0, 5000, 5000) && tj_matmul_small(3, 4, 0));
    ck_assert(!tj_matmul_small(1, 1, 1 << 20) && !tj_matmul_small(INT64_C(1) << 40, INT64_C(1) << 40, 1));
}
END_TEST

START_TEST(test_small_matmul_eager) {
    tj_scope_begin();
    for (int d = 0; d < 2; d++) {
        tj_dtype dt = d ? TJ_F64 : TJ_F32;
        for (size_t c = 0; c < sizeof mm_sizes / sizeof mm_sizes[0]; c++) {
            int64_t m = mm_sizes[c][0], n = mm_sizes[c][1], k = mm_sizes[c][2];
            tj_seed(40 + c);
            check_matmul(normal(dt, TJ_SHAPE(m, k)), normal(dt, TJ_SHAPE(k, n)), 1, 0, 0, m, n, k);
            /* batched: (3, m, k) @ (3, k, n); broadcast: (3, m, k) @ (k, n), (m, k) @ (1, 3, k, n) */
            check_matmul(normal(dt, TJ_SHAPE(3, m, k)), normal(dt, TJ_SHAPE(3, k, n)), 3, m * k, k * n, m, n, k);
            check_matmul(normal(dt, TJ_SHAPE(3, m, k)), normal(dt, TJ_SHAPE(k, n)), 3, m * k, 0, m, n, k);
            check_matmul(normal(dt, TJ_SHAPE(m, k)), normal(dt, TJ_SHAPE(1, 3, k, n)), 3, 0, k * n, m, n, k);
        }
    }
    tj_scope_end();
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* +0 start: a product of -0 is +0 (as in the order); NaN and infinities propagate */
START_TEST(test_small_matmul_specials) {
    tj_scope_begin();
    float a[4] = {-0.0f, 1.0f, INFINITY, NAN}, b[4] = {1.0f, 2.0f, 0.0f, 3.0f};
    tj_tensor *y = tj_matmul(tj_tensor_from(TJ_F32, TJ_SHAPE(4, 1), a), tj_tensor_from(TJ_F32, TJ_SHAPE(1, 4), b));
    const float *v = tj_tensor_data(y);
    ck_assert(v[0] == 0.0f && !signbit(v[0]));             /* +0 + (-0 * 1) */
    ck_assert(v[2] == 0.0f && !signbit(v[2]));             /* +0 + (-0 * 0) */
    ck_assert(v[5] == 2.0f);
    ck_assert(isinf(v[8]) && isnan(v[10]) && isnan(v[12]));
    tj_scope_end();
}
END_TEST

START_TEST(test_composites_forward) {
    /* mean, softmax, log_softmax, dropout against hand computations in double */
    tj_scope_begin();
    const double v[6] = {1, 2, 3, -1, 0, 4};
    tj_tensor *x = tj_tensor_from(TJ_F64, TJ_SHAPE(2, 3), v);
    int ax1 = 1;
    tj_tensor *m = tj_mean(x, 1, &ax1, false);
    ck_assert_double_eq_tol(tu_get(m, 0), 2.0, 1e-15);
    ck_assert_double_eq_tol(tu_get(m, 1), 1.0, 1e-15);
    tj_tensor *sm = tj_softmax(x, -1), *lsm = tj_log_softmax(x, 1);
    for (int r = 0; r < 2; r++) {
        double z = 0;
        for (int j = 0; j < 3; j++) z += exp(v[r * 3 + j]);
        for (int j = 0; j < 3; j++) {
            ck_assert_double_eq_tol(tu_get(sm, r * 3 + j), exp(v[r * 3 + j]) / z, 1e-14);
            ck_assert_double_eq_tol(tu_get(lsm, r * 3 + j), v[r * 3 + j] - log(z), 1e-14);
        }
    }
    /* softmax of large logits does not overflow */
    tj_tensor *big = tj_softmax(tj_tensor_from(TJ_F32, TJ_SHAPE(2), (float[]){1000.f, 1000.f}), 0);
    ck_assert_double_eq_tol(tu_get(big, 0), 0.5, 1e-7);
    /* dropout: kept values are scaled by 1/(1-rate), about rate of them are zero */
    tj_seed(3);
    tj_tensor *ones = tj_ones(TJ_F32, TJ_SHAPE(100000));
    tj_tensor *d = tj_dropout(ones, 0.25, true);
    int64_t zeros = 0;
    for (int64_t i = 0; i < 100000; i++) {
        double y = tu_get(d, i);
        ck_assert(y == 0 || fabs(y - 1 / 0.75) < 1e-6);
        zeros += y == 0;
    }
    ck_assert_msg(labs(zeros - 25000) < 700, "dropped %lld of 100000 at rate 0.25", (long long)zeros);
    ck_assert(tj_dropout(ones, 0.5, false) == ones);
    /* the same seed gives the same mask */
    tj_seed(3);
    tj_tensor *d2 = tj_dropout(ones, 0.25, true);
    ck_assert(memcmp(tj_tensor_data(d), tj_tensor_data(d2), 4 * 100000) == 0);
    tj_scope_end();
}
END_TEST

/* ---- eager shortcuts: x * 1 is a view of x; a constant is read as one value ------------- */

/* x * 1 and 1 * x give x's bits (NaN payloads, -0, subnormals, infinities), with the one as
 * a scalar, a constant or a broadcast; the product of a variable keeps the value it had
 * when the variable is assigned again. */
START_TEST(test_times_one_is_the_operand) {
    const uint32_t fb[8] = {0x7fc12345u, 0xffa00001u, 0x80000000u, 0x00000001u, 0x7f800000u, 0xff800000u,
                            0x3f800001u, 0xc2f6e979u};
    const uint64_t db[8] = {0x7ff8000000012345u, 0xfff4000000000001u, 0x8000000000000000u, 1u,
                            0x7ff0000000000000u, 0xfff0000000000000u, 0x3ff0000000000001u, 0xc05edd2f1a9fbe77u};
    for (int k = 0; k < 2; k++) {
        tj_dtype dt = k ? TJ_F64 : TJ_F32;
        size_t bytes = k ? sizeof db : sizeof fb;
        tj_scope_begin();
        tj_tensor *x = tj_tensor_from(dt, TJ_SHAPE(2, 4), k ? (const void *)db : (const void *)fb);
        tj_tensor *ones[3] = {tj_scalar(1), tj_ones(dt, TJ_SHAPE(2, 4)),
                              tj_broadcast_to(tj_full(dt, TJ_SHAPE(4), 1), TJ_SHAPE(2, 4))};
        for (int i = 0; i < 3; i++) {
            tj_tensor *p[2] = {tj_mul(x, ones[i]), tj_mul(ones[i], x)};
            for (int j = 0; j < 2; j++) {
                ck_assert_int_eq(tj_tensor_dtype(p[j]), dt);
                ck_assert_int_eq(tj_tensor_numel(p[j]), 8);
                ck_assert_msg(memcmp(tj_tensor_data(p[j]), tj_tensor_data(x), bytes) == 0,
                              "%s: x * one %d (operand %d) changed bits", tj_dtype_name(dt), i, j);
            }
        }
        /* the broadcast (4,) of ones is a (2, 4) product, not a view of the (4,) operand */
        tj_tensor *row = tj_full(dt, TJ_SHAPE(4), 1), *col = tj_ones(dt, TJ_SHAPE(2, 1));
        ck_assert_int_eq(tj_tensor_shape(tj_mul(row, col)).dim[0], 2);
        ck_assert_double_eq(tu_get(tj_mul(row, col), 7), 1);
        tj_tensor *v = tj_variable(x, "v");
        tj_tensor *pv = tj_mul(v, tj_ones(dt, TJ_SHAPE(2, 4)));
        ck_assert_int_eq(tj_assign(v, tj_zeros(dt, TJ_SHAPE(2, 4))), 0);
        ck_assert_msg(memcmp(tj_tensor_data(pv), k ? (const void *)db : (const void *)fb, bytes) == 0,
                      "%s: assigning the variable changed an earlier product", tj_dtype_name(dt));
        ck_assert_double_eq(tu_get(v, 0), 0);
        tj_variable_free(v);
        tj_scope_end();
    }
}
END_TEST

/* Constants and broadcasts of one value, read as that value, in every elementwise shape
 * path: small and large (split into pieces), with and without other broadcasting. */
START_TEST(test_uniform_operands) {
    const int64_t rows[2] = {3, 300};
    for (int r = 0; r < 2; r++) {
        tj_scope_begin();
        int64_t R = rows[r], C = 100;
        double *xv = malloc(sizeof(double) * (size_t)(R * C)), bv[100];
        for (int64_t i = 0; i < R * C; i++) xv[i] = sin(0.37 * (double)i) * 10;
        for (int i = 0; i < C; i++) bv[i] = cos(0.5 * i);
        tj_tensor *x = tj_tensor_from(TJ_F64, TJ_SHAPE(R, C), xv);
        tj_tensor *b = tj_tensor_from(TJ_F64, TJ_SHAPE(C), bv);
        tj_tensor *three = tj_full(TJ_F64, TJ_SHAPE(R, C), 3);
        tj_tensor *two = tj_broadcast_to(tj_tensor_from(TJ_F64, TJ_SHAPE(1), (double[]){2}), TJ_SHAPE(R, C));
        tj_tensor *d = tj_sub(three, x), *q = tj_div(two, tj_add(three, b)), *w = tj_where(tj_greater(x, b), two, x);
        for (int64_t i = 0; i < R * C; i++) {
            double bi = bv[i % C];
            ck_assert_double_eq(tu_get(d, i), 3 - xv[i]);
            ck_assert_double_eq(tu_get(q, i), 2 / (3 + bi));
            ck_assert_double_eq(tu_get(w, i), xv[i] > bi ? 2 : xv[i]);
        }
        free(xv);
        tj_scope_end();
    }
}
END_TEST

Suite *ops_suite(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("forward");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_op_has_a_spec);
    tcase_add_loop_test(tc, test_forward, 0, tj_nspecs);
    tcase_add_test(tc, test_composites_forward);
    suite_add_tcase(s, tc);
    TCase *mm = tcase_create("small_matmul");
    tcase_set_timeout(mm, 120);
    tcase_add_test(mm, test_small_matmul_rule);
    tcase_add_test(mm, test_small_matmul_eager);
    tcase_add_test(mm, test_small_matmul_specials);
    suite_add_tcase(s, mm);
    TCase *order = tcase_create("order");
    tcase_set_timeout(order, 120);
    tcase_add_test(order, test_sum_is_canonical_order);
    tcase_add_test(order, test_reductions_same_bits_any_thread_count);
    tcase_add_test(order, test_column_reductions_match_one_at_a_time);
    tcase_add_test(order, test_transpose_last_two_tiled);
    suite_add_tcase(s, order);
    TCase *shortcut = tcase_create("shortcuts");
    tcase_add_test(shortcut, test_times_one_is_the_operand);
    tcase_add_test(shortcut, test_uniform_operands);
    suite_add_tcase(s, shortcut);
    return s;
}
