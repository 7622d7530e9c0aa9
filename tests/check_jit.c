/* check_jit.c: compiled == eager, bit for bit. Every op of the table (tests/opspec.c)
 * compiled, forward and gradient, over broadcasting and odd sizes; small matmuls generated
 * inline, with transposed operands read in place, vector tails and batches; whole training steps
 * over 100 steps (an MLP with Adam and MSE, an MLP with softmax cross-entropy and
 * dropout, a GAN-shaped step with two tapes); retracing, state, constants, the eager
 * fallback and check mode. */
#include "opspec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void setup(void) { tj_scope_begin(); tj_clear_error(); }
static void teardown(void) { tj_set_mode(TJ_MODE_JIT); tj_scope_end(); tj_clear_error(); }
#ifdef TJ_HAVE_JIT

static bool same_bits(tj_tensor *a, tj_tensor *b) {
    if (tj_tensor_dtype(a) != tj_tensor_dtype(b) || tj_tensor_numel(a) != tj_tensor_numel(b)) return false;
    size_t es = tj_tensor_dtype(a) == TJ_F64 ? 8 : 4;
    return memcmp(tj_tensor_data(a), tj_tensor_data(b), es * (size_t)tj_tensor_numel(a)) == 0;
}

/* ---- every op, forward and gradient ---------------------------------------------------- */

typedef struct { const opspec *sp; int c; bool grad; } op_job;

/* out[0] = op(in); with grad, also d sum(op(in) * w) / d in[k] for every float input k */
static int op_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    const op_job *j = user;
    (void)n_in;
    tj_tape *tape = j->grad ? tj_tape_begin(0) : NULL;
    for (int k = 0; tape && k < j->sp->nin; k++)
        if (!j->sp->index_input[k]) tj_tape_watch(tape, in[k]);
    out[0] = j->sp->apply(j->c, in);
    if (tape) {
        tj_tensor *w = in[j->sp->nin];
        tj_tensor *loss = tj_sum(tj_mul(out[0], w), 0, NULL, false);
        tj_tensor *src[SPEC_MAXIN];
        int ns = 0;
        for (int k = 0; k < j->sp->nin; k++)
            if (!j->sp->index_input[k]) src[ns++] = in[k];
        int rc = tj_tape_gradient(tape, loss, ns, src, out + 1);
        tj_tape_free(tape);
        if (rc) return rc;
        (void)n_out;
    }
    return out[0] ? 0 : tj_error_code();
}

static void compare_op(const opspec *sp, int c, tj_dtype dt, bool grad) {
    tj_scope_begin();
    tj_tensor *in[SPEC_MAXIN + 1];
    ref_t rin[SPEC_MAXIN];
    spec_inputs(sp, c, dt, 500u + (unsigned)sp->op * 7u + (unsigned)c, in, rin);
    for (int k = 0; k < sp->nin; k++) ref_free(&rin[k]);
    op_job job = {sp, c, grad};
    int n_in = sp->nin, n_out = 1;
    if (grad) {
        tj_set_mode(TJ_MODE_EAGER);
        tj_tensor *probe = sp->apply(c, in);
        if (!probe || tj_tensor_dtype(probe) == TJ_I32) { tj_scope_end(); tj_clear_error(); return; }
        tj_seed(9);
        in[n_in++] = tj_rand_normal(tj_tensor_shape(probe), 0, 1);
        if (dt == TJ_F64) in[n_in - 1] = tj_cast(in[n_in - 1], TJ_F64);
        if (tj_tensor_dtype(probe) != dt) in[n_in - 1] = tj_cast(in[n_in - 1], tj_tensor_dtype(probe));
        for (int k = 0; k < sp->nin; k++) n_out += !sp->index_input[k];
    }
    tj_tensor *eager[SPEC_MAXIN + 1], *traced[SPEC_MAXIN + 1], *compiled[SPEC_MAXIN + 1];
    tj_set_mode(TJ_MODE_EAGER);
    tj_rng_set_state(77, 0);
    ck_assert_msg(op_step(&job, n_in, in, n_out, eager) == 0, "%s: %s", tj_ops[sp->op]->name, tj_last_error());
    tj_set_mode(TJ_MODE_JIT);
    tj_function *f = tj_function_new(tj_ops[sp->op]->name, op_step, &job);
    tj_rng_set_state(77, 0);
    ck_assert_int_eq(tj_function_call(f, n_in, in, n_out, traced), 0);
    ck_assert_str_eq(tj_function_last_path(f), "traced");
    tj_rng_set_state(77, 0);
    ck_assert_msg(tj_function_call(f, n_in, in, n_out, compiled) == 0, "%s: %s", tj_ops[sp->op]->name, tj_last_error());
    ck_assert_msg(!strcmp(tj_function_last_path(f), "compiled"), "%s case %d %s: ran %s: %s", tj_ops[sp->op]->name, c,
                  tj_dtype_name(dt), tj_function_last_path(f), tj_last_error());
    for (int i = 0; i < n_out; i++) {
        ck_assert(same_bits(eager[i], traced[i]));
        ck_assert_msg(same_bits(eager[i], compiled[i]), "%s case %d %s%s output %d: compiled differs from eager",
                      tj_ops[sp->op]->name, c, tj_dtype_name(dt), grad ? " (gradient)" : "", i);
    }
    tj_function_free(f);
    tj_scope_end();
    ck_assert_msg(tj_error_code() == 0, "%s", tj_last_error());
}

START_TEST(test_op_compiled_equals_eager) {
    const opspec *sp = &tj_specs[_i];
    for (int c = 0; c < sp->ncases; c++) {
        compare_op(sp, c, TJ_F32, false);
        if (sp->nin == 0) continue;
        compare_op(sp, c, TJ_F64, false);
        if (sp->int32_ok) compare_op(sp, c, TJ_I32, false);
        if (sp->differentiable) {
            compare_op(sp, c, TJ_F32, true);
            compare_op(sp, c, TJ_F64, true);
        }
    }
}
END_TEST

/* exp, log, tanh, sigmoid over many values and every length 1..40 (vector body + tail) */
static int math_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_exp(in[0]);
    out[1] = tj_log(in[0]);
    out[2] = tj_tanh(in[0]);
    out[3] = tj_sigmoid(in[0]);
    return 0;
}

START_TEST(test_math_bits_all_lengths) {
    tj_function *f = tj_function_new("math", math_step, NULL);
    tj_function_set_retrace_limit(f, 1000);
    for (int dt = 0; dt < 2; dt++) {
        for (int64_t n = 1; n <= 40; n++) {
            tj_seed((uint64_t)n);
            tj_tensor *x = tj_mul(tj_rand_normal(TJ_SHAPE(n), 0, 1), tj_scalar(30.0));
            if (dt) x = tj_cast(x, TJ_F64);
            tj_tensor *e[4], *c[4];
            tj_set_mode(TJ_MODE_EAGER);
            math_step(NULL, 1, &x, 4, e);
            tj_set_mode(TJ_MODE_JIT);
            ck_assert_int_eq(tj_function_call(f, 1, &x, 4, c), 0);
            ck_assert_int_eq(tj_function_call(f, 1, &x, 4, c), 0);
            ck_assert_str_eq(tj_function_last_path(f), "compiled");
            for (int k = 0; k < 4; k++) ck_assert_msg(same_bits(e[k], c[k]), "fn %d length %lld", k, (long long)n);
        }
    }
    /* specials */
    float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-40f, 88.8f, -103.9f, 1e30f, -1e30f, 3.4e38f};
    tj_tensor *x = tj_tensor_from(TJ_F32, TJ_SHAPE(12), sp), *e[4], *c[4];
    tj_set_mode(TJ_MODE_EAGER);
    math_step(NULL, 1, &x, 4, e);
    tj_set_mode(TJ_MODE_JIT);
    tj_function_call(f, 1, &x, 4, c);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 4, c), 0);
    for (int k = 0; k < 4; k++) ck_assert_msg(same_bits(e[k], c[k]), "specials, fn %d", k);
    tj_function_free(f);
}
END_TEST

static int cast_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_cast(in[0], TJ_I32);
    out[1] = tj_cast(in[0], tj_tensor_dtype(in[0]) == TJ_F32 ? TJ_F64 : TJ_F32);
    out[2] = tj_cast(out[0], TJ_F32);
    return 0;
}

/* casts at the edges: NaN -> 0, saturation, truncation toward zero, f64 -> f32 rounding */
START_TEST(test_cast_specials_compiled) {
    double v[] = {NAN, INFINITY, -INFINITY, 3e9, -3e9, 2147483647.0, -2147483648.0, 2147483646.5, -2.5, 2.5, -0.0,
                  1e-45, 16777217.0, 1.0000001, -7.9999999, 1e300, 33.7, -1e-320, 5.5, 6.5, -6.5};
    int n = (int)(sizeof v / sizeof v[0]);
    float fv[32];
    for (int i = 0; i < n; i++) fv[i] = (float)v[i];
    tj_tensor *xs[2] = {tj_tensor_from(TJ_F64, TJ_SHAPE(n), v), tj_tensor_from(TJ_F32, TJ_SHAPE(n), fv)};
    tj_function *f = tj_function_new("casts", cast_step, NULL);
    for (int k = 0; k < 2; k++) {
        tj_tensor *e[3], *c[3];
        tj_set_mode(TJ_MODE_EAGER);
        cast_step(NULL, 1, &xs[k], 3, e);
        tj_set_mode(TJ_MODE_JIT);
        ck_assert_int_eq(tj_function_call(f, 1, &xs[k], 3, c), 0);
        ck_assert_int_eq(tj_function_call(f, 1, &xs[k], 3, c), 0);
        ck_assert_str_eq(tj_function_last_path(f), "compiled");
        for (int i = 0; i < 3; i++) ck_assert_msg(same_bits(e[i], c[i]), "input %d output %d", k, i);
    }
    tj_function_free(f);
}
END_TEST

/* ---- small matmuls inline (ops/matmul_small.h, jit/lower_matmul.c) ------------------------ */

/* out[0] = A @ B where A is in[0] or its transpose (last two axes: ta), B likewise (tb);
 * share 1: out[1] = -A^T or -B^T (the transpose has another reader and must be computed);
 * share 2: out[1] = the transpose itself (an output). */
typedef struct { bool ta, tb; int share; } mm_job;

static tj_tensor *swap_last2(tj_tensor *t) {
    int r = tj_tensor_shape(t).ndim, perm[TJ_MAX_DIMS];
    for (int d = 0; d < r; d++) perm[d] = d;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return tj_transpose(t, perm);
}

static int mm_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    const mm_job *j = user;
    (void)n_in; (void)n_out;
    tj_tensor *a = j->ta ? swap_last2(in[0]) : in[0], *b = j->tb ? swap_last2(in[1]) : in[1];
    out[0] = tj_matmul(a, b);
    if (j->share) {
        tj_tensor *t = j->ta ? a : b;
        out[1] = j->share == 1 ? tj_neg(t) : t;
    }
    return out[0] ? 0 : tj_error_code();
}

/* Compiles j on (in[0], in[1]), checks compiled == eager bit for bit; returns the kernels. */
static int mm_compare(const mm_job *j, tj_tensor *a, tj_tensor *b, const char *what) {
    tj_tensor *in[2] = {a, b}, *e[2], *c[2];
    int n_out = j->share ? 2 : 1;
    tj_set_mode(TJ_MODE_EAGER);
    ck_assert_msg(mm_step((void *)j, 2, in, n_out, e) == 0, "%s: %s", what, tj_last_error());
    tj_set_mode(TJ_MODE_JIT);
    tj_function *f = tj_function_new("mm", mm_step, (void *)j);
    ck_assert_int_eq(tj_function_call(f, 2, in, n_out, c), 0);
    ck_assert_msg(tj_function_call(f, 2, in, n_out, c) == 0, "%s: %s", what, tj_last_error());
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    for (int i = 0; i < n_out; i++) ck_assert_msg(same_bits(e[i], c[i]), "%s: output %d: compiled differs from eager", what, i);
    tj_compile_stats st;
    ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
    tj_function_free(f);
    return st.kernels;
}

static tj_tensor *normal_dt(tj_dtype dt, tj_shape s) {
    tj_tensor *x = tj_rand_normal(s, 0, 1);
    return dt == TJ_F64 ? tj_cast(x, TJ_F64) : x;
}

/* shape (batch..., r, c) for batch variant v: none; (3); (2, 1) for the first operand and
 * (3) for the second (broadcast to (2, 3)); (2, 3) */
static tj_shape mat_shape(int v, bool second, int64_t r, int64_t c) {
    if (v == 1) return TJ_SHAPE(3, r, c);
    if (v == 2) return second ? TJ_SHAPE(3, r, c) : TJ_SHAPE(2, 1, r, c);
    if (v == 3) return TJ_SHAPE(2, 3, r, c);
    return TJ_SHAPE(r, c);
}

/* n below, at and above the vector widths (16 f32 lanes, 8 f64 on AVX-512; 8/4 on AVX2)
 * with every tail, n = 1, k = 1, m not a multiple of the 4-row tiles, the rule's edge */
START_TEST(test_small_matmul_compiled_equals_eager) {
    static const int64_t sizes[][3] = {   /* m, n, k */
        {10, 32, 3}, {10, 1, 32}, {10, 32, 1}, {32, 1, 10}, {3, 32, 10}, {1, 1, 1}, {5, 17, 7}, {4, 15, 6},
        {9, 33, 2}, {6, 8, 5}, {2, 31, 9}, {7, 3, 1}, {1, 47, 3}, {8, 16, 16}, {8, 16, 17},
    };
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++)
        for (int d = 0; d < 2; d++)
            for (int t = 0; t < 4; t++)
                for (int v = 0; v < 3; v++) {
                    int64_t m = sizes[c][0], n = sizes[c][1], k = sizes[c][2];
                    tj_dtype dt = d ? TJ_F64 : TJ_F32;
                    mm_job j = {.ta = t & 1, .tb = t & 2};
                    char what[96];
                    snprintf(what, sizeof what, "%s (%lld,%lld,%lld) transposes %d batches %d", tj_dtype_name(dt),
                             (long long)m, (long long)n, (long long)k, t, v);
                    tj_scope_begin();
                    tj_seed(c * 31 + (uint64_t)(d * 8 + t * 2 + v));
                    tj_tensor *a = normal_dt(dt, j.ta ? mat_shape(v, false, k, m) : mat_shape(v, false, m, k));
                    tj_tensor *b = normal_dt(dt, j.tb ? mat_shape(v, true, n, k) : mat_shape(v, true, k, n));
                    mm_compare(&j, a, b, what);
                    tj_scope_end();
                }
}
END_TEST

/* A transpose read only by small matmuls has no kernel; one read by anything else, or an
 * output, is still computed (and the results still agree); before a bigger matmul (BLAS)
 * it keeps its kernel. Check mode agrees with folded transposes too. */
START_TEST(test_small_matmul_folds_transposes) {
    tj_seed(3);
    tj_tensor *x = tj_rand_normal(TJ_SHAPE(10, 3), 0, 1), *g = tj_rand_normal(TJ_SHAPE(10, 32), 0, 1);
    tj_tensor *w = tj_rand_normal(TJ_SHAPE(1, 32), 0, 1), *h = tj_rand_normal(TJ_SHAPE(1, 10), 0, 1);
    mm_job at = {.ta = true}, bt = {.tb = true}, both = {.ta = true, .tb = true};
    ck_assert_int_eq(mm_compare(&at, x, g, "x^T @ g"), 1);                 /* (3,10) @ (10,32) */
    ck_assert_int_eq(mm_compare(&bt, g, w, "g @ w^T"), 1);                 /* (10,32) @ (32,1) */
    ck_assert_int_eq(mm_compare(&both, g, h, "g^T @ h^T"), 1);             /* (32,10) @ (10,1) */
    mm_job shared = {.ta = true, .share = 1}, output = {.ta = true, .share = 2};
    ck_assert_int_eq(mm_compare(&shared, x, g, "x^T @ g, -x^T"), 3);       /* transpose, matmul, neg */
    ck_assert_int_eq(mm_compare(&output, x, g, "x^T @ g, x^T"), 2);        /* transpose, matmul */
    tj_tensor *big = tj_rand_normal(TJ_SHAPE(40, 30), 0, 1), *big2 = tj_rand_normal(TJ_SHAPE(40, 20), 0, 1);
    ck_assert_int_eq(mm_compare(&at, big, big2, "big^T @ big2 (BLAS)"), 2);
    /* check mode compares every stored node: a folded transpose has no value to compare */
    tj_set_mode(TJ_MODE_CHECK);
    tj_function *f = tj_function_new("mm_check", mm_step, &at);
    tj_tensor *in[2] = {x, g}, *out;
    for (int i = 0; i < 3; i++) ck_assert_msg(tj_function_call(f, 2, in, 1, &out) == 0, "%s", tj_last_error());
    ck_assert_str_eq(tj_function_last_path(f), "checked");
    tj_function_free(f);
}
END_TEST

/* ---- elementwise ops after a small matmul run as its epilogue, on each tile ------------- */

/* t = A @ B (A = in[0] or its transpose: ta; B likewise: tb), h = t + in[2] (bias (n,));
 * in[3]: a value of t's shape, in[4]: a column (m, 1), read broadcast along n.
 * variant 0: h; 1: relu(h); 2: a chain of 15 ops, some reading t, in[3], in[4] again, through
 * the other float dtype and back; 3: relu(h), and h read by later kernels (so stored);
 * 4: relu(h), and t an output (so stored). */
typedef struct { bool ta, tb; int variant; } epi_job;

static int epi_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    const epi_job *j = user;
    (void)n_in; (void)n_out;
    tj_tensor *t = tj_matmul(j->ta ? swap_last2(in[0]) : in[0], j->tb ? swap_last2(in[1]) : in[1]);
    tj_tensor *h = tj_add(t, in[2]), *col = in[4];
    tj_dtype dt = tj_tensor_dtype(t), other = dt == TJ_F32 ? TJ_F64 : TJ_F32;
    switch (j->variant) {
    case 0: out[0] = h; break;
    case 1: out[0] = tj_relu(h); break;
    case 2: {
        tj_tensor *v = tj_mul(tj_sigmoid(tj_tanh(tj_mul(h, t))), in[3]);
        tj_tensor *w = tj_maximum(tj_where(tj_greater(t, col), v, tj_neg(t)), col);
        tj_tensor *x = tj_sub(w, tj_exp(tj_abs(t)));
        out[0] = tj_cast(tj_add(tj_cast(x, other), tj_cast(h, other)), dt);
        break;
    }
    case 3:
        out[0] = tj_relu(h);
        out[1] = tj_mul(h, tj_sum(h, 0, NULL, false));
        break;
    case 4:
        out[0] = tj_relu(h);
        out[1] = t;
        break;
    }
    return out[0] ? 0 : tj_error_code();
}

static const int epi_nout[5] = {1, 1, 1, 2, 2};

/* fn(user) on in[0..n_in), called twice compiled (traced, then compiled), gives eager's
 * bits for its n_out <= 2 outputs; stats in *st; with dump_dir, the fusion dump goes there. */
static void compiled_equals_eager(tj_fn fn, void *user, int n_in, tj_tensor *const *in, int n_out, const char *what,
                                  const char *dump_dir, tj_compile_stats *st) {
    tj_tensor *e[2], *c[2];
    tj_set_mode(TJ_MODE_EAGER);
    ck_assert_msg(fn(user, n_in, in, n_out, e) == 0, "%s: %s", what, tj_last_error());
    tj_set_mode(TJ_MODE_JIT);
    tj_function *f = tj_function_new("step", fn, user);
    if (dump_dir) ck_assert_int_eq(tj_function_dump(f, dump_dir, "fusion"), 0);
    ck_assert_int_eq(tj_function_call(f, n_in, in, n_out, c), 0);
    ck_assert_msg(tj_function_call(f, n_in, in, n_out, c) == 0, "%s: %s", what, tj_last_error());
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    for (int i = 0; i < n_out; i++) {
        int64_t n = tj_tensor_numel(e[i]), at = 0;
        while (at < n && tu_get(e[i], at) == tu_get(c[i], at)) at++;
        ck_assert_msg(same_bits(e[i], c[i]), "%s: output %d differs: element %lld compiled %.17g, eager %.17g", what, i,
                      (long long)at, at < n ? tu_get(c[i], at) : 0.0, at < n ? tu_get(e[i], at) : 0.0);
    }
    ck_assert_int_eq(tj_function_compile_stats(f, st), 0);
    tj_function_free(f);
}

/* Compiles j on in[0..5), checks compiled == eager bit for bit; stats in *st. */
static void epi_compare(const epi_job *j, tj_tensor *const *in, const char *what, tj_compile_stats *st) {
    compiled_equals_eager(epi_step, (void *)j, 5, in, epi_nout[j->variant], what, NULL, st);
}

/* epi_step's inputs for the product of sizes m n k with output batch dims bv: none, (3,),
 * (2, 3); for (2, 3) the operands' batch dims are (2, 1) and (3) (broadcast), or with
 * `same` both (2, 3) (a BLAS call takes only those). */
static void epi_inputs(const epi_job *j, tj_dtype dt, int bv, bool same, const int64_t *mnk, tj_tensor **in) {
    int64_t m = mnk[0], n = mnk[1], k = mnk[2];
    int v = same && bv == 2 ? 3 : bv;
    in[0] = normal_dt(dt, j->ta ? mat_shape(v, false, k, m) : mat_shape(v, false, m, k));
    in[1] = normal_dt(dt, j->tb ? mat_shape(v, true, n, k) : mat_shape(v, true, k, n));
    in[2] = normal_dt(dt, TJ_SHAPE(n));
    in[3] = normal_dt(dt, bv == 0 ? TJ_SHAPE(m, n) : bv == 1 ? TJ_SHAPE(3, m, n) : TJ_SHAPE(2, 3, m, n));
    in[4] = normal_dt(dt, TJ_SHAPE(m, 1));
}

/* Variant v over sizes[0..ns), f32 and f64, transposes t = 0, tstep, ... < 4, batch dims
 * bv < nbv, on 1 to `threads` threads: compiled == eager bit for bit. The epilogue is in
 * the matmul's kernel, batched or not: one kernel but for variant 3 (the sum, and the mul
 * reading it), plus the transposes a BLAS call does not read in place. A BLAS call's
 * operands have the output's batch dims (epi_inputs' `same`). */
static void epi_sweep(int v, const int64_t (*sizes)[3], size_t ns, int tstep, int nbv, int threads, bool blas) {
    for (size_t c = 0; c < ns; c++)
        for (int d = 0; d < 2; d++)
            for (int t = 0; t < 4; t += tstep)
                for (int bv = 0; bv < nbv; bv++) {
                    tj_dtype dt = d ? TJ_F64 : TJ_F32;
                    epi_job j = {.ta = t & 1, .tb = t & 2, .variant = v};
                    char what[112];
                    snprintf(what, sizeof what, "variant %d %s (%lld,%lld,%lld) transposes %d batches %d", v, tj_dtype_name(dt),
                             (long long)sizes[c][0], (long long)sizes[c][1], (long long)sizes[c][2], t, bv);
                    tj_scope_begin();
                    tj_seed(c * 131 + (uint64_t)(d * 16 + t * 4 + bv));
                    tj_tensor *in[5];
                    epi_inputs(&j, dt, bv, blas, sizes[c], in);
                    for (int th = 1; th <= threads; th++) {
                        ck_assert_int_eq(tj_set_threads(th), 0);
                        tj_compile_stats st;
                        epi_compare(&j, in, what, &st);
                        int want = (v == 3 ? 3 : 1) + (blas ? j.ta + j.tb : 0);
                        ck_assert_msg(st.kernels == want, "%s: %d kernels", what, st.kernels);
                    }
                    ck_assert_int_eq(tj_set_threads(1), 0);
                    tj_scope_end();
                }
}

/* The small matmul sizes: every vector tail, n = 1, m not a multiple of the tiles. */
START_TEST(test_small_matmul_epilogue_compiled_equals_eager) {
    static const int64_t sizes[][3] = {{10, 32, 3}, {10, 1, 32}, {5, 17, 7}, {9, 33, 2}, {7, 3, 1}, {3, 32, 10}, {2, 31, 9}};
    epi_sweep(_i, sizes, sizeof sizes / sizeof sizes[0], 1, 3, 1, false);
}
END_TEST

/* The fused matmul stores only what is read outside its kernel: relu(x @ w + b) stores its
 * output, and with x @ w an output too, that as well; both go straight into the tensors
 * the call returns, so the arena holds nothing (its slack only). */
START_TEST(test_small_matmul_epilogue_stores_only_what_is_read) {
    tj_seed(7);
    tj_tensor *in[5] = {tj_rand_normal(TJ_SHAPE(10, 3), 0, 1), tj_rand_normal(TJ_SHAPE(3, 32), 0, 1),
                        tj_rand_normal(TJ_SHAPE(32), 0, 1), tj_rand_normal(TJ_SHAPE(10, 32), 0, 1),
                        tj_rand_normal(TJ_SHAPE(10, 1), 0, 1)};
    size_t align = 64;                                  /* the arena's slack */
    tj_compile_stats st;
    epi_compare(&(epi_job){.variant = 1}, in, "relu(x @ w + b)", &st);
    ck_assert_int_eq(st.kernels, 1);
    ck_assert_uint_eq(st.arena_bytes, align);
    epi_compare(&(epi_job){.variant = 4}, in, "relu(x @ w + b), x @ w", &st);
    ck_assert_int_eq(st.kernels, 1);
    ck_assert_uint_eq(st.arena_bytes, align);
    /* check mode compares every stored value, none of those kept in registers */
    tj_set_mode(TJ_MODE_CHECK);
    epi_job j = {.variant = 2};
    tj_function *f = tj_function_new("epi_check", epi_step, &j);
    tj_tensor *out;
    for (int i = 0; i < 3; i++) ck_assert_msg(tj_function_call(f, 5, in, 1, &out) == 0, "%s", tj_last_error());
    ck_assert_str_eq(tj_function_last_path(f), "checked");
    tj_function_free(f);
}
END_TEST

/* A variable updated by a matmul's epilogue: v <- x @ v + v must not be written in place
 * (the matmul reads all of v while its tiles or pieces are written), v <- v - x @ w may
 * be. */
typedef struct { tj_tensor *v; bool reads_v; } epi_state;

static int epi_state_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    const epi_state *s = user;
    (void)n_in; (void)n_out;
    tj_tensor *nv = s->reads_v ? tj_add(tj_matmul(in[0], s->v), s->v) : tj_sub(s->v, tj_matmul(in[0], in[1]));
    tj_assign(s->v, nv);
    out[0] = tj_sum(nv, 0, NULL, false);
    return 0;
}

START_TEST(test_matmul_epilogue_writes_state) {
    for (int big = 0; big < 2; big++)     /* small: inline; big: BLAS in two pieces of rows */
    for (int reads_v = 0; reads_v < 2; reads_v++) {
        int64_t m = big ? 512 : 8, n = big ? 64 : 8;
        tj_seed(11);
        tj_tensor *init = tj_rand_normal(TJ_SHAPE(m, n), 0, 0.3);
        tj_tensor *in[2] = {tj_rand_normal(TJ_SHAPE(m, m), 0, big ? 0.05 : 0.3), tj_rand_normal(TJ_SHAPE(m, n), 0, 1)}, *oe, *oc;
        epi_state se = {tj_variable(init, "v"), reads_v}, sc = {tj_variable(init, "v"), reads_v};
        tj_set_mode(TJ_MODE_EAGER);
        for (int i = 0; i < 3; i++) ck_assert_int_eq(epi_state_step(&se, 2, in, 1, &oe), 0);
        tj_set_mode(TJ_MODE_JIT);
        tj_function *f = tj_function_new("epi_state", epi_state_step, &sc);
        for (int i = 0; i < 3; i++) ck_assert_msg(tj_function_call(f, 2, in, 1, &oc) == 0, "%s", tj_last_error());
        ck_assert_str_eq(tj_function_last_path(f), "compiled");
        ck_assert_msg(same_bits(se.v, sc.v), "reads_v %d: the variable differs from eager", reads_v);
        ck_assert(same_bits(oe, oc));
        tj_compile_stats st;
        ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
        ck_assert_int_eq(st.kernels, 2);                         /* the matmul with its epilogue, the sum */
        /* the new value's buffer when not in place; BLAS also writes its product to one */
        ck_assert_msg((st.arena_bytes >= (size_t)((1 + big) * m * n * 4)) == (bool)reads_v, "big %d reads_v %d: arena %zu bytes",
                      big, reads_v, st.arena_bytes);
        tj_function_free(f);
        tj_variable_free(se.v);
        tj_variable_free(sc.v);
    }
}
END_TEST

/* The epilogue of a BLAS call runs on each of its pieces: products cut into rows, into
 * columns (equal pieces and a shorter last one) or not at all, of one batch, of (3) and of
 * (2, 3), on 1 and 2 threads. */
START_TEST(test_blas_epilogue_compiled_equals_eager) {
    static const int64_t sizes[][3] = {{600, 40, 70}, {128, 600, 30}, {40, 1100, 20}, {64, 64, 64}, {513, 7, 9}};
    epi_sweep(_i, sizes, sizeof sizes / sizeof sizes[0], 3, 3, 2, true);
}
END_TEST

/* y = relu(x @ w + bias) * c with batches: bias (3, 1, n) differs per batch along the last
 * batch dim (only the batch indices find its row), c (m, n) is the same for every batch.
 * Outputs y and h = x @ w + bias (stored by the epilogue at its flat index). */
static int batched_epi_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    tj_tensor *h = tj_add(tj_matmul(in[0], in[1]), in[2]);
    out[0] = tj_mul(tj_relu(h), in[3]);
    out[1] = h;
    return out[0] ? 0 : tj_error_code();
}

/* A batched BLAS matmul takes the elementwise ops after it as its epilogue: one kernel,
 * eager's bits on 1 and 2 threads, batch dims (3) and (2, 3), pieces of rows, of columns
 * or one per batch. */
START_TEST(test_blas_batched_epilogue) {
    static const int64_t sizes[][3] = {{600, 40, 20}, {40, 600, 20}, {64, 48, 40}};   /* m, n, k */
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++)
        for (int d = 0; d < 2; d++)
            for (int bv = 1; bv <= 3; bv += 2) {
                int64_t m = sizes[c][0], n = sizes[c][1], k = sizes[c][2];
                tj_dtype dt = d ? TJ_F64 : TJ_F32;
                char what[96];
                snprintf(what, sizeof what, "batched BLAS epilogue %s (%lld,%lld,%lld) batches %d", tj_dtype_name(dt),
                         (long long)m, (long long)n, (long long)k, bv);
                tj_scope_begin();
                tj_seed(c * 17 + (uint64_t)(d * 4 + bv));
                tj_tensor *in[4] = {normal_dt(dt, mat_shape(bv, false, m, k)), normal_dt(dt, mat_shape(bv, false, k, n)),
                                    normal_dt(dt, TJ_SHAPE(3, 1, n)), normal_dt(dt, TJ_SHAPE(m, n))};
                for (int th = 1; th <= 2; th++) {
                    ck_assert_int_eq(tj_set_threads(th), 0);
                    tj_compile_stats st;
                    compiled_equals_eager(batched_epi_step, NULL, 4, in, 2, what, NULL, &st);
                    ck_assert_msg(st.kernels == 1, "%s: %d kernels", what, st.kernels);
                }
                ck_assert_int_eq(tj_set_threads(1), 0);
                tj_scope_end();
            }
}
END_TEST

/* ---- whole training steps, 100 steps, eager vs compiled ---------------------------------- */

typedef struct {
    tj_tensor *w1, *b1, *w2, *b2;                 /* variables */
    tj_tensor *m[4], *v[4];                        /* Adam slots */
    tj_tensor *t;                                  /* Adam step count */
    int kind;                                      /* 0: MSE + Adam, 1: softmax CE + dropout */
} mlp;

static void mlp_init(mlp *m, int kind, int nin, int hidden, int nout) {
    tj_seed(1234);
    m->kind = kind;
    tj_shape shapes[4] = {TJ_SHAPE(nin, hidden), TJ_SHAPE(hidden), TJ_SHAPE(hidden, nout), TJ_SHAPE(nout)};
    tj_tensor **vars[4] = {&m->w1, &m->b1, &m->w2, &m->b2};
    for (int i = 0; i < 4; i++) {
        *vars[i] = tj_variable(i % 2 ? tj_zeros(TJ_F32, shapes[i]) : tj_rand_uniform(shapes[i], -0.3, 0.3), NULL);
        m->m[i] = tj_variable(tj_zeros(TJ_F32, shapes[i]), NULL);
        m->v[i] = tj_variable(tj_zeros(TJ_F32, shapes[i]), NULL);
    }
    m->t = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE()), NULL);
}

static void mlp_free(mlp *m) {
    tj_tensor *all[13] = {m->w1, m->b1, m->w2, m->b2, m->m[0], m->m[1], m->m[2], m->m[3],
                          m->v[0], m->v[1], m->v[2], m->v[3], m->t};
    for (int i = 0; i < 13; i++) tj_variable_free(all[i]);
}

/* Adam (lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8), written with ops */
static void adam(mlp *m, tj_tensor *const *params, tj_tensor *const *grads) {
    tj_tensor *t = tj_add(m->t, tj_scalar(1));
    tj_assign(m->t, t);
    tj_tensor *c1 = tj_sub(tj_scalar(1), tj_pow(tj_scalar(0.9), t));
    tj_tensor *c2 = tj_sub(tj_scalar(1), tj_pow(tj_scalar(0.999), t));
    for (int i = 0; i < 4; i++) {
        tj_tensor *mi = tj_add(tj_mul(m->m[i], tj_scalar(0.9)), tj_mul(grads[i], tj_scalar(0.1)));
        tj_tensor *vi = tj_add(tj_mul(m->v[i], tj_scalar(0.999)), tj_mul(tj_mul(grads[i], grads[i]), tj_scalar(0.001)));
        tj_assign(m->m[i], mi);
        tj_assign(m->v[i], vi);
        tj_tensor *step = tj_div(tj_div(mi, c1), tj_add(tj_sqrt(tj_div(vi, c2)), tj_scalar(1e-8)));
        tj_assign(params[i], tj_sub(params[i], tj_mul(step, tj_scalar(1e-3))));
    }
}

static int mlp_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    mlp *m = user;
    (void)n_in; (void)n_out;
    tj_tape *tape = tj_tape_begin(0);
    tj_tensor *h = tj_relu(tj_add(tj_matmul(in[0], m->w1), m->b1));
    if (m->kind == 1) h = tj_dropout(h, 0.3, true);
    tj_tensor *y = tj_add(tj_matmul(h, m->w2), m->b2), *loss;
    if (m->kind == 0) {
        tj_tensor *d = tj_sub(y, in[1]);
        loss = tj_mean(tj_mul(d, d), 0, NULL, false);
    } else {   /* softmax cross-entropy on integer labels: -mean(gather of log_softmax) */
        tj_tensor *lp = tj_log_softmax(y, 1);
        int64_t b = tj_tensor_shape(in[0]).dim[0];
        tj_tensor *classes = tj_tensor_from(TJ_I32, TJ_SHAPE(1, 4), (int32_t[]){0, 1, 2, 3});
        tj_tensor *onehot = tj_cast(tj_equal(tj_reshape(in[1], TJ_SHAPE(b, 1)), classes), TJ_F32);
        loss = tj_neg(tj_mean(tj_sum(tj_mul(onehot, lp), 1, (int[]){1}, false), 0, NULL, false));
    }
    tj_tensor *params[4] = {m->w1, m->b1, m->w2, m->b2}, *grads[4];
    int rc = tj_tape_gradient(tape, loss, 4, params, grads);
    tj_tape_free(tape);
    if (rc) return rc;
    adam(m, params, grads);
    out[0] = loss;
    return tj_error_code();
}

/* 100 steps in a mode; returns the final weights (kept in the caller's scope) */
static void train(int kind, tj_mode mode, tj_tensor **final, double *last_loss) {
    mlp m;
    mlp_init(&m, kind, 5, 16, kind ? 4 : 3);
    tj_seed(99);
    tj_tensor *x = tj_rand_normal(TJ_SHAPE(8, 5), 0, 1), *y;
    if (kind == 0) y = tj_rand_normal(TJ_SHAPE(8, 3), 0, 1);
    else y = tj_tensor_from(TJ_I32, TJ_SHAPE(8), (int32_t[]){0, 1, 2, 3, 3, 2, 1, 0});
    tj_set_mode(mode);
    tj_function *f = tj_function_new("train_step", mlp_step, &m);
    tj_seed(5);
    for (int s = 0; s < 100; s++) {
        tj_scope_begin();
        tj_tensor *in[2] = {x, y}, *loss;
        ck_assert_msg(tj_function_call(f, 2, in, 1, &loss) == 0, "step %d: %s", s, tj_last_error());
        *last_loss = tj_item(loss);
        tj_scope_end();
    }
    if (mode == TJ_MODE_JIT) ck_assert_str_eq(tj_function_last_path(f), "compiled");
    tj_function_free(f);
    tj_tensor *vars[4] = {m.w1, m.b1, m.w2, m.b2};
    for (int i = 0; i < 4; i++) final[i] = tj_mul(vars[i], tj_scalar(1));   /* a copy */
    mlp_free(&m);
}

static void train_both(int kind) {
    tj_tensor *we[4], *wj[4];
    double le, lj;
    train(kind, TJ_MODE_EAGER, we, &le);
    train(kind, TJ_MODE_JIT, wj, &lj);
    for (int i = 0; i < 4; i++) ck_assert_msg(same_bits(we[i], wj[i]), "kind %d: parameter %d differs after 100 steps", kind, i);
    ck_assert(memcmp(&le, &lj, sizeof le) == 0);
    ck_assert_msg(isfinite(le), "loss %g", le);
}

START_TEST(test_mlp_adam_mse_100_steps) { train_both(0); }
END_TEST

START_TEST(test_mlp_softmax_dropout_100_steps) { train_both(1); }
END_TEST

/* a GAN-shaped step: two tapes, two losses, two updates */
typedef struct { tj_tensor *g, *d; } gan;

static int gan_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    gan *m = user;
    (void)n_in; (void)n_out;
    tj_tape *gt = tj_tape_begin(0), *dt = tj_tape_begin(0);
    tj_tensor *fake = tj_tanh(tj_matmul(in[0], m->g));
    tj_tensor *real_logit = tj_matmul(in[1], m->d), *fake_logit = tj_matmul(fake, m->d);
    tj_tensor *d_loss = tj_mean(tj_sub(tj_sigmoid(fake_logit), tj_sigmoid(real_logit)), 0, NULL, false);
    tj_tensor *g_loss = tj_neg(tj_mean(tj_log(tj_sigmoid(fake_logit)), 0, NULL, false));
    tj_tensor *gg, *gd;
    if (tj_tape_gradient(gt, g_loss, 1, &m->g, &gg) || tj_tape_gradient(dt, d_loss, 1, &m->d, &gd)) return tj_error_code();
    tj_tape_free(gt);
    tj_tape_free(dt);
    tj_assign(m->g, tj_sub(m->g, tj_mul(gg, tj_scalar(0.05))));
    tj_assign(m->d, tj_sub(m->d, tj_mul(gd, tj_scalar(0.05))));
    out[0] = g_loss;
    out[1] = d_loss;
    return 0;
}

static void gan_train(tj_mode mode, tj_tensor **final) {
    tj_seed(42);
    gan m = {tj_variable(tj_rand_normal(TJ_SHAPE(4, 6), 0, 0.5), "g"), tj_variable(tj_rand_normal(TJ_SHAPE(6, 1), 0, 0.5), "d")};
    tj_tensor *z = tj_rand_normal(TJ_SHAPE(16, 4), 0, 1), *real = tj_rand_normal(TJ_SHAPE(16, 6), 1, 1);
    tj_set_mode(mode);
    tj_function *f = tj_function_new("gan_step", gan_step, &m);
    for (int s = 0; s < 100; s++) {
        tj_scope_begin();
        tj_tensor *in[2] = {z, real}, *out[2];
        ck_assert_msg(tj_function_call(f, 2, in, 2, out) == 0, "%s", tj_last_error());
        tj_scope_end();
    }
    tj_function_free(f);
    final[0] = tj_mul(m.g, tj_scalar(1));
    final[1] = tj_mul(m.d, tj_scalar(1));
    tj_variable_free(m.g);
    tj_variable_free(m.d);
}

START_TEST(test_gan_two_tapes_100_steps) {
    tj_tensor *e[2], *j[2];
    gan_train(TJ_MODE_EAGER, e);
    gan_train(TJ_MODE_JIT, j);
    ck_assert(same_bits(e[0], j[0]));
    ck_assert(same_bits(e[1], j[1]));
}
END_TEST

/* ---- retracing, state, constants, fallback, check mode ------------------------------------------ */

static int scale_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)n_in; (void)n_out;
    tj_tensor *v = user;
    tj_assign(v, tj_add(v, tj_sum(in[0], 0, NULL, false)));   /* state: v += sum(x) */
    out[0] = tj_mul(in[0], v);
    return 0;
}

START_TEST(test_state_updates_seen_by_next_call) {
    tj_tensor *v = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE()), "v");
    tj_function *f = tj_function_new("scale", scale_step, v);
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(3)), *y;
    for (int i = 1; i <= 5; i++) {
        ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);
        ck_assert_double_eq(tj_item(v), 3.0 * i);
        ck_assert_double_eq(tu_get(y, 2), 3.0 * i);
    }
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    ck_assert_int_eq(tj_function_traces(f), 1);
    tj_function_free(f);
    tj_variable_free(v);
}
END_TEST

/* Runs call with stderr going to a buffer; returns what it printed. */
static const char *stderr_of(void (*call)(void *), void *arg) {
    static char buf[4096];
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    call(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
    return buf;
}

typedef struct { tj_function *f; tj_tensor *x, *y; int rc; } call_args;
static void do_call(void *p) {
    call_args *a = p;
    a->rc = tj_function_call(a->f, 1, &a->x, 1, &a->y);
}

START_TEST(test_retrace_and_limit) {
    tj_tensor *v = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE()), "v");
    tj_function *f = tj_function_new("scale", scale_step, v);
    ck_assert_int_eq(tj_function_set_retrace_limit(f, 2), 0);
    tj_tensor *y;
    tj_tensor *a = tj_ones(TJ_F32, TJ_SHAPE(10, 3)), *b = tj_ones(TJ_F32, TJ_SHAPE(6, 3)), *c = tj_ones(TJ_F32, TJ_SHAPE(2));
    ck_assert_int_eq(tj_function_call(f, 1, &a, 1, &y), 0);
    call_args ca = {f, b, NULL, -1};
    const char *msg = stderr_of(do_call, &ca);
    ck_assert_int_eq(ca.rc, 0);
    ck_assert_msg(strstr(msg, "scale: retracing: input 0 shape (10, 3) -> (6, 3)"), "stderr: %s", msg);
    ck_assert_int_eq(tj_function_traces(f), 2);
    ca.x = c;
    msg = stderr_of(do_call, &ca);                              /* beyond the limit: eager */
    ck_assert_int_eq(ca.rc, 0);
    ck_assert_msg(strstr(msg, "traced 2 signatures (the limit); new signatures run eagerly"), "stderr: %s", msg);
    ck_assert_str_eq(tj_function_last_path(f), "eager");
    ck_assert_int_eq(tj_function_traces(f), 2);
    ck_assert_int_eq(tj_function_call(f, 1, &a, 1, &y), 0);   /* a known signature: compiled */
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    ck_assert_double_eq(tj_item(v), 30 + 18 + 2 + 30);
    ck_assert_int_eq(tj_function_set_retrace_limit(f, -1), TJ_ERR_ARG);
    tj_clear_error();
    tj_function_free(f);
    tj_variable_free(v);
}
END_TEST

/* dropout only when the call's flags say training */
static int flagged_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_dropout(in[0], 0.5, tj_function_flags() & TJ_FLAG_TRAINING);
    return 0;
}

START_TEST(test_flags_are_part_of_the_signature) {
    tj_function *f = tj_function_new("flagged", flagged_step, NULL);
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(64)), *train[2], *eval[2];
    ck_assert_int_eq(tj_function_flags(), 0);
    tj_seed(1);
    ck_assert_int_eq(tj_function_call_flags(f, TJ_FLAG_TRAINING, 1, &x, 1, &train[0]), 0);   /* traced */
    ck_assert_int_eq(tj_function_call_flags(f, TJ_FLAG_TRAINING, 1, &x, 1, &train[1]), 0);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    call_args ca = {f, x, NULL, -1};
    const char *msg = stderr_of(do_call, &ca);        /* flags 0: a new signature */
    ck_assert_int_eq(ca.rc, 0);
    ck_assert_msg(strstr(msg, "flagged: retracing: flags 0x1 -> 0x0"), "stderr: %s", msg);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &eval[1]), 0);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    ck_assert_int_eq(tj_function_traces(f), 2);
    ck_assert(same_bits(ca.y, x) && same_bits(eval[1], x));            /* eval: identity */
    int zeros = 0;
    for (int i = 0; i < 64; i++) zeros += tu_get(train[1], i) == 0;
    ck_assert(zeros > 5 && zeros < 59);                                 /* training: a mask */
    ck_assert_int_eq(tj_function_flags(), 0);
    tj_function_free(f);
}
END_TEST

/* a captured tensor is a constant: its value at trace time stays in the compiled step */
static float host_value[2] = {1, 2};

static int const_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_add(in[0], tj_tensor_from(TJ_F32, TJ_SHAPE(2), host_value));
    return 0;
}

START_TEST(test_constants_are_frozen_and_check_mode_names_the_node) {
    tj_function *f = tj_function_new("consts", const_step, NULL);
    tj_tensor *x = tj_zeros(TJ_F32, TJ_SHAPE(2)), *y;
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);
    host_value[0] = 10;
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);
    ck_assert_double_eq(tu_get(y, 0), 1.0);     /* compiled: the trace-time constant */
    tj_set_mode(TJ_MODE_CHECK);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), TJ_ERR_CHECK);
    ck_assert_error(TJ_ERR_CHECK, "node");
    ck_assert_double_eq(tu_get(y, 0), 10.0);    /* check mode keeps the eager result */
    host_value[0] = 1;
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);   /* same again: no difference */
    ck_assert_str_eq(tj_function_last_path(f), "checked");
    tj_function_free(f);
}
END_TEST

static int branchy_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_item(tj_sum(in[0], 0, NULL, false)) > 0 ? tj_exp(in[0]) : tj_neg(in[0]);
    return 0;
}

START_TEST(test_check_mode_catches_frozen_control_flow) {
    tj_function *f = tj_function_new("branchy", branchy_step, NULL);
    tj_tensor *pos = tj_ones(TJ_F32, TJ_SHAPE(3)), *neg = tj_full(TJ_F32, TJ_SHAPE(3), -1), *y;
    ck_assert_int_eq(tj_function_call(f, 1, &pos, 1, &y), 0);   /* traced (warns: item) */
    tj_set_mode(TJ_MODE_CHECK);
    ck_assert_int_eq(tj_function_call(f, 1, &pos, 1, &y), 0);
    ck_assert_int_eq(tj_function_call(f, 1, &neg, 1, &y), TJ_ERR_CHECK);
    ck_assert_error(TJ_ERR_CHECK, "traced differently");
    tj_function_free(f);
}
END_TEST

START_TEST(test_eager_mode_and_errors) {
    tj_set_mode(TJ_MODE_EAGER);
    ck_assert_int_eq(tj_get_mode(), TJ_MODE_EAGER);
    tj_function *f = tj_function_new(NULL, const_step, NULL);
    tj_tensor *x = tj_zeros(TJ_F32, TJ_SHAPE(2)), *y;
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);
    ck_assert_str_eq(tj_function_last_path(f), "eager");
    ck_assert_int_eq(tj_function_traces(f), 0);
    ck_assert_int_eq(tj_function_call(NULL, 1, &x, 1, &y), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "f is NULL");
    ck_assert_ptr_null(tj_function_new("x", NULL, NULL));
    ck_assert_error(TJ_ERR_ARG, "fn is NULL");
    tj_set_mode((tj_mode)7);
    ck_assert_error(TJ_ERR_ARG, "not a mode");
    tj_function_free(f);
    tj_function_free(NULL);
}
END_TEST

/* an error inside the step during tracing is the call's error; nothing is cached */
static int failing_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_matmul(in[0], in[0]);
    return out[0] ? 0 : tj_error_code();
}

static int gather_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_gather(in[0], in[1], 0);
    return out[0] ? 0 : tj_error_code();
}

/* values change between calls: a compiled gather checks its indices every call */
START_TEST(test_compiled_gather_checks_indices) {
    tj_function *f = tj_function_new("lookup", gather_step, NULL);
    tj_tensor *table = tj_ones(TJ_F32, TJ_SHAPE(4, 2)), *y;
    tj_tensor *ok[2] = {table, tj_tensor_from(TJ_I32, TJ_SHAPE(2), (int32_t[]){0, 3})};
    tj_tensor *bad[2] = {table, tj_tensor_from(TJ_I32, TJ_SHAPE(2), (int32_t[]){1, 400000})};
    ck_assert_int_eq(tj_function_call(f, 2, ok, 1, &y), 0);
    ck_assert_int_eq(tj_function_call(f, 2, ok, 1, &y), 0);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    ck_assert_int_eq(tj_function_call(f, 2, bad, 1, &y), TJ_ERR_VALUE);
    ck_assert_error(TJ_ERR_VALUE, "index 400000");
    tj_function_free(f);
}
END_TEST

START_TEST(test_error_while_tracing) {
    tj_function *f = tj_function_new("bad", failing_step, NULL);
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(2, 3)), *y;
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), TJ_ERR_SHAPE);
    ck_assert_error(TJ_ERR_SHAPE, "inner dimensions differ");
    tj_tensor *sq = tj_ones(TJ_F32, TJ_SHAPE(2, 2));
    ck_assert_int_eq(tj_function_call(f, 1, &sq, 1, &y), 0);
    ck_assert_int_eq(tj_function_call(f, 1, &sq, 1, &y), 0);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    ck_assert_double_eq(tu_get(y, 0), 2.0);
    tj_function_free(f);
}
END_TEST

/* W3's chain: y = sum(tanh(x*a + b) * sigmoid(x) + x*x) and its gradients */
static int chain_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    tj_tape *tape = tj_tape_begin(0);
    for (int i = 0; i < 3; i++) tj_tape_watch(tape, in[i]);
    tj_tensor *x = in[0], *a = in[1], *b = in[2];
    out[0] = tj_sum(tj_add(tj_mul(tj_tanh(tj_add(tj_mul(x, a), b)), tj_sigmoid(x)), tj_mul(x, x)), 0, NULL, false);
    int rc = tj_tape_gradient(tape, out[0], 3, in, out + 1);
    tj_tape_free(tape);
    return rc;
}

/* fn (n_out <= 4 outputs) compiled on 1 and on 2 threads gives eager's bits; its kernels. */
static int same_bits_any_threads(tj_fn fn, int n_in, tj_tensor *const *in, int n_out, const char *what) {
    tj_tensor *e[4], *one[4], *two[4];
    tj_set_mode(TJ_MODE_EAGER);
    ck_assert_int_eq(fn(NULL, n_in, in, n_out, e), 0);
    tj_set_mode(TJ_MODE_JIT);
    tj_function *f = tj_function_new("threads", fn, NULL);
    ck_assert_int_eq(tj_set_threads(1), 0);
    ck_assert_int_eq(tj_function_call(f, n_in, in, n_out, one), 0);
    ck_assert_int_eq(tj_function_call(f, n_in, in, n_out, one), 0);
    ck_assert_int_eq(tj_set_threads(2), 0);
    ck_assert_int_eq(tj_function_call(f, n_in, in, n_out, two), 0);
    tj_set_threads(1);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    for (int i = 0; i < n_out; i++) {
        ck_assert_msg(same_bits(e[i], one[i]), "%s output %d: 1 thread differs from eager", what, i);
        ck_assert_msg(same_bits(one[i], two[i]), "%s output %d: 2 threads differ from 1", what, i);
    }
    tj_compile_stats st;
    ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
    tj_function_free(f);
    return st.kernels;
}

/* Big fused loops run in pieces on the pool: the same bits with 1 and 2 threads, and as eager */
START_TEST(test_compiled_loops_split_over_threads) {
    tj_seed(3);
    tj_tensor *in[3];
    for (int i = 0; i < 3; i++) in[i] = tj_rand_normal(TJ_SHAPE(300001), 0, 1);   /* pieces + a tail */
    same_bits_any_threads(chain_step, 3, in, 4, "chain");
}
END_TEST

/* Full sums and maxes of a fused loop's values are computed in the loop, block by block:
 * compiled equals eager at every size around a group (16), a block (4096) and a piece
 * (16384), with 1 and 2 threads, f32 and f64, with a NaN for max; the reduced values are
 * never stored (the arena holds block values, sigmoid(x) and the op that reads a reduction). */
/* Bits equal, or both NaN: which of two NaN operands an add passes on is the compiler's
 * choice in C (it may swap them), so a NaN's sign and payload can differ; its NaN-ness not. */
static bool same_or_both_nan(tj_tensor *a, tj_tensor *b) {
    if (tj_tensor_numel(a) != tj_tensor_numel(b)) return false;
    for (int64_t i = 0; i < tj_tensor_numel(a); i++) {
        double x = tu_get(a, i), y = tu_get(b, i);
        if (!(isnan(x) && isnan(y)) && memcmp(&x, &y, sizeof x)) return false;
    }
    return true;
}

static int reduce_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    tj_tensor *x = in[0];
    out[0] = tj_sum(tj_mul(tj_tanh(x), x), 0, NULL, false);
    out[1] = tj_max(tj_add(tj_mul(x, tj_scalar(2)), tj_scalar(-0.0)), 0, NULL, false);
    out[2] = tj_mul(tj_sigmoid(x), out[0]);    /* reads a reduction: after the loop */
    return 0;
}

START_TEST(test_loop_computes_full_reduction) {
    const int64_t sizes[] = {1, 15, 16, 17, 4095, 4096, 4097, 16384, 16399, 100003};
    for (int dt = 0; dt < 2; dt++)
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            tj_seed(k);
            tj_tensor *x = tj_cast(tj_rand_normal(TJ_SHAPE(sizes[k]), 0, 1), dt ? TJ_F64 : TJ_F32);
            if (k == 6)   /* NaNs where x > 2.5 */
                x = tj_where(tj_greater(x, tj_cast(tj_scalar(2.5f), tj_tensor_dtype(x))), tj_cast(tj_scalar(NAN), tj_tensor_dtype(x)), x);
            tj_tensor *e[3], *one[3], *two[3];
            tj_set_mode(TJ_MODE_EAGER);
            ck_assert_int_eq(reduce_step(NULL, 1, &x, 3, e), 0);
            tj_set_mode(TJ_MODE_JIT);
            tj_function *f = tj_function_new("reduce", reduce_step, NULL);
            for (int c = 0; c < 3; c++) {      /* traced, compiled on 1 thread, on 2 */
                ck_assert_int_eq(tj_set_threads(c == 2 ? 2 : 1), 0);
                ck_assert_msg(tj_function_call(f, 1, &x, 3, c == 2 ? two : one) == 0, "n=%lld call %d: %s",
                              (long long)sizes[k], c, tj_last_error());
            }
            tj_set_threads(1);
            ck_assert_str_eq(tj_function_last_path(f), "compiled");
            for (int i = 0; i < 3; i++) {
                ck_assert_msg(same_or_both_nan(e[i], one[i]), "n=%lld %s output %d differs: element 0 compiled %.17g, eager %.17g",
                              (long long)sizes[k], dt ? "f64" : "f32", i, tu_get(one[i], 0), tu_get(e[i], 0));
                ck_assert_msg(same_bits(one[i], two[i]), "n=%lld output %d: 2 threads differ", (long long)sizes[k], i);
            }
            tj_compile_stats st;
            ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
            size_t es = dt ? 8 : 4, one_value = ((size_t)sizes[k] * es + 63) / 64 * 64;
            ck_assert_msg(sizes[k] < 64 || st.arena_bytes < 3 * one_value, "n=%lld: arena %zu bytes: a reduced value was stored",
                          (long long)sizes[k], st.arena_bytes);
            ck_assert_int_eq(st.kernels, 4);    /* the loop, two reductions' ends, the op reading one */
            tj_function_free(f);
        }
}
END_TEST

/* Several threads compile and run their own functions at the same time. */
#include <pthread.h>

static void *thread_main(void *arg) {
    int *ok = arg;
    tj_set_mode(TJ_MODE_JIT);
    tj_scope_begin();
    tj_tensor *v = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE()), "v");
    tj_function *f = tj_function_new("scale", scale_step, v);
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(64)), *y;
    *ok = 1;
    for (int i = 1; i <= 20 && *ok; i++) {
        tj_scope_begin();
        *ok = tj_function_call(f, 1, &x, 1, &y) == 0 && tj_item(v) == 64.0 * i && tu_get(y, 63) == 64.0 * i;
        tj_scope_end();
    }
    *ok = *ok && !strcmp(tj_function_last_path(f), "compiled");
    tj_function_free(f);
    tj_variable_free(v);
    tj_scope_end();
    return NULL;
}

START_TEST(test_threads_compile_and_run_concurrently) {
    pthread_t th[4];
    int ok[4] = {0};
    for (int i = 0; i < 4; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &ok[i]), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) ck_assert_msg(ok[i], "thread %d", i);
}
END_TEST

#endif

#ifndef TJ_HAVE_JIT
static int plus_one(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_add(in[0], tj_scalar(1));
    return 0;
}

/* built with TJ_JIT=OFF: jit mode runs eagerly (a warning says why), results unchanged */
START_TEST(test_without_jit_runs_eagerly) {
    tj_function *f = tj_function_new("plus_one", plus_one, NULL);
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(3)), *y;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);
        ck_assert_double_eq(tu_get(y, 2), 2.0);
    }
    ck_assert_str_eq(tj_function_last_path(f), "eager");
    tj_function_free(f);
}
END_TEST
#endif

#ifdef TJ_HAVE_JIT
/* ---- fusion through views (reshape, stop_gradient) ---------------------------------------- */
/* A run of elementwise ops with views between them is one loop when the loop can run flat
 * (every op of one numel; every value read from outside of that numel or a scalar): its
 * values stay in registers unless something outside the loop reads them (directly or
 * through a view). A view of a loop value in a loop that broadcasts a non-scalar ends the
 * loop, and the fusion dump says why. Compiled == eager, bit for bit, f32 and f64. */

/* in[0] = x (4, 6), in[1] = b (4, 6), in[2] = c (6, 4), in[3] = s (), in[4] = bias (6,).
 * variant 0: reshape(exp(x), 24) * 2 + 1
 *         1: reshape(x * b, (6, 4)) + c
 *         2: tanh(reshape(stop_gradient(x * b), (2, 12))) - reshape(x, (2, 12))
 *         3: reshape(exp(x) * s, 24) - s (s an input: a scalar broadcast)
 *         4: t = exp(x) * 2; out0 = reshape(t, 24) (returned), out1 = out0 + 1
 *         5: t = exp(x) (returned); out0 = reshape(t, 24) * 2 + 1, out1 = t
 *         6: reshape(exp(x) + bias, 24) * 2: the bias is broadcast, the loop cannot run
 *            flat: the reshape ends it
 *         7: t = exp(x), r = reshape(t, (6, 4)); out0 = reshape(t, 24) * 2 + 1, out1 =
 *            sum(r, axis 1): the loop goes on past r and computes the 6 row sums itself
 *         8: reshape(exp(x), (6, 4)) + reshape(bias, (6, 1)): the reshape of exp(x) does not
 *            end the loop, but the add reads a column broadcast over a loop that would be flat,
 *            so it starts another */
typedef struct { int variant; } view_job;
enum { VIEW_VARIANTS = 9 };
static const int view_nout[VIEW_VARIANTS] = {1, 1, 1, 1, 2, 2, 1, 2, 1};

static int view_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    const view_job *j = user;
    (void)n_in; (void)n_out;
    tj_tensor *x = in[0], *two = tj_scalar(2), *one = tj_scalar(1);
    switch (j->variant) {
    case 0: out[0] = tj_add(tj_mul(tj_reshape(tj_exp(x), TJ_SHAPE(24)), two), one); break;
    case 1: out[0] = tj_add(tj_reshape(tj_mul(x, in[1]), TJ_SHAPE(6, 4)), in[2]); break;
    case 2:
        out[0] = tj_sub(tj_tanh(tj_reshape(tj_stop_gradient(tj_mul(x, in[1])), TJ_SHAPE(2, 12))),
                        tj_reshape(x, TJ_SHAPE(2, 12)));
        break;
    case 3: out[0] = tj_sub(tj_reshape(tj_mul(tj_exp(x), in[3]), TJ_SHAPE(24)), in[3]); break;
    case 4:
        out[0] = tj_reshape(tj_mul(tj_exp(x), two), TJ_SHAPE(24));
        out[1] = tj_add(out[0], one);
        break;
    case 5:
        out[1] = tj_exp(x);
        out[0] = tj_add(tj_mul(tj_reshape(out[1], TJ_SHAPE(24)), two), one);
        break;
    case 6: out[0] = tj_mul(tj_reshape(tj_add(tj_exp(x), in[4]), TJ_SHAPE(24)), two); break;
    case 7: {
        tj_tensor *t = tj_exp(x), *r = tj_reshape(t, TJ_SHAPE(6, 4));
        out[0] = tj_add(tj_mul(tj_reshape(t, TJ_SHAPE(24)), two), one);
        out[1] = tj_sum(r, 1, (int[]){1}, false);
        break;
    }
    case 8: out[0] = tj_add(tj_reshape(tj_exp(x), TJ_SHAPE(6, 4)), tj_reshape(in[4], TJ_SHAPE(6, 1))); break;
    }
    return out[0] ? 0 : tj_error_code();
}

/* The text of dir/step/0.fusion.txt (malloc'd); removes it and the directories. */
static char *take_fusion_dump(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/step/0.fusion.txt", dir);
    char *text = tu_slurp(path, NULL);
    ck_assert_msg(text != NULL, "no fusion dump at %s", path);
    remove(path);
    snprintf(path, sizeof path, "%s/step", dir);
    rmdir(path);
    rmdir(dir);
    return text;
}

/* Compiles j on in[0..5), checks compiled == eager bit for bit; stats in *st; returns the
 * fusion dump's text (free it). */
static char *view_compare(const view_job *j, tj_tensor *const *in, const char *what, tj_compile_stats *st) {
    char dir[64];                              /* tj_function_dump makes it */
    snprintf(dir, sizeof dir, "/tmp/tj_check_jit_views_%ld", (long)getpid());
    compiled_equals_eager(view_step, (void *)j, 5, in, view_nout[j->variant], what, dir, st);
    return take_fusion_dump(dir);
}

static void view_inputs(tj_dtype dt, tj_tensor **in) {
    tj_seed(11);
    in[0] = normal_dt(dt, TJ_SHAPE(4, 6));
    in[1] = normal_dt(dt, TJ_SHAPE(4, 6));
    in[2] = normal_dt(dt, TJ_SHAPE(6, 4));
    in[3] = normal_dt(dt, TJ_SHAPE());
    in[4] = normal_dt(dt, TJ_SHAPE(6));
}

/* Variants 0-5 are one flat loop, 7 one and the reduction's end; what they keep in registers
 * is not stored: the arena holds nothing but its slack, except in variant 4, whose returned
 * reshape shares the buffer of exp(x) * 2 (stored: 24 values), and in variant 7, where it
 * holds the 6 row sums' block values (64 bytes). Variants 6 and 8 are two loops, the first
 * ending with its reason. */
START_TEST(test_loops_fuse_through_views) {
    static const int kernels[VIEW_VARIANTS] = {1, 1, 1, 1, 1, 1, 2, 2, 2};
    for (int d = 0; d < 2; d++)
        for (int v = 0; v < VIEW_VARIANTS; v++) {
            tj_dtype dt = d ? TJ_F64 : TJ_F32;
            size_t slack = 64, stored = v == 4 ? (24 * (d ? 8 : 4) + 63) / 64 * 64 : v == 7 ? 64 : 0;
            char what[64];
            snprintf(what, sizeof what, "variant %d %s", v, tj_dtype_name(dt));
            tj_scope_begin();
            tj_tensor *in[5];
            view_inputs(dt, in);
            tj_compile_stats st;
            char *fusion = view_compare(&(view_job){v}, in, what, &st);
            ck_assert_msg(st.kernels == kernels[v], "%s: %d kernels\n%s", what, st.kernels, fusion);
            if (v == 6) {
                ck_assert_msg(strstr(fusion, "ends     a reshape of a loop value follows and the loop broadcasts (it cannot "
                                             "run flat)"), "%s: no reason\n%s", what, fusion);
            } else if (v == 8) {
                ck_assert_msg(strstr(fusion, "ends     the loop would run flat (its ops have several shapes) but the next "
                                             "op broadcasts a value"), "%s: no reason\n%s", what, fusion);
            } else {
                ck_assert_msg(strstr(fusion, "(flat, from (4, 6))"), "%s: not flat\n%s", what, fusion);
                ck_assert_msg(strstr(fusion, "\n  views    %"), "%s: the loop lists no views\n%s", what, fusion);
            }
            if (v < 6 || v == 7)
                ck_assert_msg(st.arena_bytes == slack + stored, "%s: arena %zu bytes\n%s", what, st.arena_bytes, fusion);
            free(fusion);
            tj_scope_end();
        }
}
END_TEST

/* fn on in[0..n_in) compiled with a fusion dump: compiled == eager bit for bit, on 1 and 2
 * threads too; returns the dump (free it), *kernels its kernels, *in_loops the reductions
 * computed in loops. */
static char *fusion_of(tj_fn fn, int n_in, tj_tensor *const *in, int n_out, const char *what, int *kernels, int *in_loops) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/tj_check_jit_fusion_%ld", (long)getpid());
    tj_compile_stats st;
    compiled_equals_eager(fn, NULL, n_in, in, n_out, what, dir, &st);
    char *fusion = take_fusion_dump(dir);
    *kernels = st.kernels;
    *in_loops = 0;
    for (const char *p = fusion; (p = strstr(p, "; also the block values of")); p++) ++*in_loops;
    same_bits_any_threads(fn, n_in, in, n_out, what);
    return fusion;
}

/* "f32 (3, 4, 0) over 1 axes" */
static void shape_what(char *what, size_t n, tj_dtype dt, const int64_t *shape, int naxes) {
    snprintf(what, n, "%s (%lld, %lld, %lld) over %d axes", tj_dtype_name(dt), (long long)shape[0], (long long)shape[1],
             (long long)shape[2], naxes);
}

/* Reductions over trailing axes are computed in the loop that makes their input, row by
 * row: x (R, K...) reduced over its last naxes axes;
 *   out1 = sum(tanh(x) * x)  and  m = max(x * 2): both in the first loop (tanh(x) * x is
 *          never stored);
 *   out0 = softmax(x * 2) = e / sum(e), e = exp(x * 2 - m): the sum in the second loop, a
 *          loop over rows of K (m is broadcast along them); the division reads it, after. */
static int rows_naxes;

static int rows_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    tj_tensor *x = in[0];
    int r = tj_tensor_shape(x).ndim, axes[2] = {r - 2, r - 1};
    const int *ax = axes + 2 - rows_naxes;
    tj_tensor *t = tj_mul(tj_tanh(x), x), *z = tj_mul(x, tj_cast(tj_scalar(2), tj_tensor_dtype(x)));
    out[1] = tj_sum(t, rows_naxes, ax, false);
    tj_tensor *e = tj_exp(tj_sub(z, tj_max(z, rows_naxes, ax, true)));
    out[0] = tj_div(e, tj_sum(e, rows_naxes, ax, true));
    return out[0] && out[1] ? 0 : tj_error_code();
}

/* Every row length around a group (16), a block (4096) and two blocks, f32 and f64, 1 and 2
 * threads: compiled == eager bit for bit, and the fusion dump shows the three reductions
 * computed in their loops (six kernels: two loops, the division, three combining ends). */
START_TEST(test_loop_computes_row_reductions) {
    static const int64_t shapes[][3] = {{5, 1, 0}, {3, 15, 0}, {4, 16, 0}, {2, 17, 0}, {3, 4095, 0}, {2, 4096, 0},
                                        {2, 4097, 0}, {3, 9000, 0}, {1, 300, 0}, {4, 3, 7}, {2, 65, 33}};
    for (int d = 0; d < 2; d++)
        for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
            tj_dtype dt = d ? TJ_F64 : TJ_F32;
            bool three = shapes[c][2] > 0;
            rows_naxes = three ? 2 : 1;
            char what[96];
            shape_what(what, sizeof what, dt, shapes[c], rows_naxes);
            tj_scope_begin();
            tj_seed(c);
            tj_tensor *x = normal_dt(dt, three ? TJ_SHAPE(shapes[c][0], shapes[c][1], shapes[c][2])
                                               : TJ_SHAPE(shapes[c][0], shapes[c][1]));
            int kernels, in_loops;
            char *fusion = fusion_of(rows_step, 1, &x, 2, what, &kernels, &in_loops);
            ck_assert_msg(in_loops == 3 && kernels == 6, "%s: %d reductions in loops, %d kernels\n%s", what, in_loops, kernels,
                          fusion);
            ck_assert_msg(strstr(fusion, "\n  again    %") != NULL, "%s: x * 2 stored, not computed again\n%s", what, fusion);
            free(fusion);
            tj_scope_end();
        }
    rows_naxes = 1;
}
END_TEST

/* Reductions over leading axes (a bias gradient's column sums) are computed in the loop
 * that makes their input, in pieces of columns: x and h (K..., n) or (outer, K, n), bias
 * (n,), reduced over all but the last axis, or over the middle one:
 *   out0 = sum(where(h > 0, x, 0) * bias)  and  out1 = max(x * 2): both in one loop over
 *   rows of n (the bias is broadcast along them). Past a block of rows (4096) a reduction
 *   is a call of its kernel, reading its stored input, and ends the loop (four kernels). */
static int cols_naxes, cols_first;   /* the reduced axes: [first, first + naxes) */

static int cols_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    tj_tensor *x = in[0], *h = in[1];
    int axes[2] = {cols_first, cols_first + 1};
    tj_tensor *zero = tj_cast(tj_scalar(0), tj_tensor_dtype(x)), *two = tj_cast(tj_scalar(2), tj_tensor_dtype(x));
    out[0] = tj_sum(tj_mul(tj_where(tj_greater(h, zero), x, zero), in[2]), cols_naxes, axes, false);
    out[1] = tj_max(tj_mul(x, two), cols_naxes, axes, false);
    return out[0] && out[1] ? 0 : tj_error_code();
}

/* Row counts around a group (16) and a block (4096), column counts around the vector widths
 * and the 256-column pieces, reduced axes first or in the middle (then each outer index has
 * its own columns), f32 and f64, 1 and 2 threads: compiled == eager bit for bit; the fusion
 * dump shows both reductions in the loop (three kernels: the loop, two ends). */
START_TEST(test_loop_computes_column_reductions) {
    static const struct { int64_t dim[3]; int first, naxes; } cases[] = {
        {{1, 2, 0}, 0, 1},    {{15, 16, 0}, 0, 1}, {{16, 17, 0}, 0, 1},  {{17, 64, 0}, 0, 1},  {{128, 512, 0}, 0, 1},
        {{33, 65, 0}, 0, 1},  {{4096, 3, 0}, 0, 1}, {{4097, 5, 0}, 0, 1}, {{3, 1000, 0}, 0, 1}, {{2, 3, 70}, 0, 2},
        {{40, 129, 0}, 0, 1}, {{3, 5, 20}, 1, 1},  {{2, 17, 300}, 1, 1}, {{4, 33, 16}, 1, 1}, {{5, 1, 7}, 1, 1}};
    for (int d = 0; d < 2; d++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            tj_dtype dt = d ? TJ_F64 : TJ_F32;
            const int64_t *dim = cases[c].dim;
            bool three = dim[2] > 0;
            cols_first = cases[c].first;
            cols_naxes = cases[c].naxes;
            int64_t K = dim[cols_first] * (cols_naxes == 2 ? dim[cols_first + 1] : 1), n = three ? dim[2] : dim[1];
            char what[112];
            shape_what(what, sizeof what, dt, dim, cols_naxes);
            snprintf(what + strlen(what), sizeof what - strlen(what), " from axis %d", cols_first);
            tj_scope_begin();
            tj_seed(c + 40);
            tj_shape xs = three ? TJ_SHAPE(dim[0], dim[1], dim[2]) : TJ_SHAPE(dim[0], dim[1]);
            tj_tensor *in[3] = {normal_dt(dt, xs), normal_dt(dt, xs), normal_dt(dt, TJ_SHAPE(n))};
            int kernels, in_loops;
            char *fusion = fusion_of(cols_step, 3, in, 2, what, &kernels, &in_loops);
            ck_assert_msg(in_loops == (K <= 4096 ? 2 : 0) && kernels == (K <= 4096 ? 3 : 4),
                          "%s: %d reductions in the loop, %d kernels\n%s", what, in_loops, kernels, fusion);
            free(fusion);
            tj_scope_end();
        }
    cols_naxes = 1;
    cols_first = 0;
}
END_TEST

/* A value two loops need is computed again by the second when that is cheaper than storing
 * it: t, then s = sum(t * y) in t's loop, and out0 = exp(t - s), a loop after that sum.
 *   variant 0: t = x * 3 + 1: two cheap ops from x, which the second loop reads instead of
 *              t (as many bytes): computed again, and t is never stored;
 *           1: t = exp(x): not cheap: stored;
 *           2: t = x * y: the second loop would read x and y, twice t's bytes: stored (but
 *              computed again when x and y are one value each);
 *           3: t = x * 3 + 1 is also an output: stored (then loaded, not computed again);
 *           4: t = x * 3 + 1 and out0 = exp(t - s) * (x * 3): the second loop needs two values,
 *              one of them part of the other's cone: it computes each op once. */
static int again_variant;

static int again_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in;
    tj_tensor *x = in[0], *y = in[1], *t, *x3 = tj_mul(x, tj_cast(tj_scalar(3), tj_tensor_dtype(x)));
    switch (again_variant) {
    case 1: t = tj_exp(x); break;
    case 2: t = tj_mul(x, y); break;
    default: t = tj_add(x3, tj_cast(tj_scalar(1), tj_tensor_dtype(x))); break;
    }
    tj_tensor *s = tj_sum(tj_mul(t, y), 0, NULL, false);
    out[0] = tj_exp(tj_sub(t, s));
    if (again_variant == 4) out[0] = tj_mul(out[0], x3);
    if (n_out > 1) out[1] = t;
    return out[0] ? 0 : tj_error_code();
}

START_TEST(test_cheap_values_computed_again) {
    static const int64_t sizes[] = {1, 17, 1000, 40000};
    for (int d = 0; d < 2; d++)
        for (int v = 0; v < 5; v++)
            for (size_t c = 0; c < sizeof sizes / sizeof *sizes; c++) {
                tj_dtype dt = d ? TJ_F64 : TJ_F32;
                char what[64];
                snprintf(what, sizeof what, "variant %d %s n=%lld", v, tj_dtype_name(dt), (long long)sizes[c]);
                tj_scope_begin();
                tj_seed(c + 7);
                tj_tensor *in[2] = {normal_dt(dt, TJ_SHAPE(sizes[c])), normal_dt(dt, TJ_SHAPE(sizes[c]))};
                again_variant = v;
                int kernels, in_loops;
                char *fusion = fusion_of(again_step, 2, in, v == 3 ? 2 : 1, what, &kernels, &in_loops);
                bool again = strstr(fusion, "\n  again    %") != NULL;
                bool want = v == 0 || v == 4 || (v == 2 && sizes[c] == 1);     /* loads of one value do not count */
                ck_assert_msg(again == want, "%s: t %s\n%s", what, again ? "computed again" : "stored", fusion);
                if (v == 0 || v == 4)
                    ck_assert_msg(strstr(fusion, "output   block values only"), "%s: the first loop stores\n%s", what, fusion);
                if (v == 4) {      /* x * 3 and t, once each */
                    const char *line = strstr(fusion, "\n  again    %");
                    ck_assert_msg(line && strstr(line, " mul, %") && strstr(line, " add of ") &&
                                  strstr(line, " add of ") - line < 40, "%s: computed again: %.80s", what, line);
                }
                free(fusion);
                tj_scope_end();
            }
    again_variant = 0;
}
END_TEST

/* Check mode agrees with loops through views: a view of a value kept in registers has no
 * value to compare, one of a stored value shares it. */
/* The DOT dump draws a view whose value stays in a loop's registers inside that loop's
 * cluster (variant 0: reshape(exp(x), 24) * 2 + 1, one loop). */
START_TEST(test_dot_draws_views_in_their_loop) {
    tj_tensor *in[5], *out;
    view_inputs(TJ_F32, in);
    view_job j = {0};
    tj_function *f = tj_function_new("dot", view_step, &j);
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/tj_check_jit_dot_%ld", (long)getpid());
    ck_assert_int_eq(tj_function_dump(f, dir, "dot"), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(tj_function_call(f, 5, in, 1, &out), 0);
    tj_function_free(f);
    snprintf(path, sizeof path, "%s/dot/0.dot", dir);
    char *dot = tu_slurp(path, NULL);
    ck_assert_msg(dot != NULL, "no dot dump at %s", path);
    const char *cluster = strstr(dot, "subgraph cluster_"), *end = cluster ? strstr(cluster, "\n  }\n") : NULL;
    const char *view = strstr(dot, "reshape");
    ck_assert_msg(cluster && end && view && view > cluster && view < end, "the reshape is not in the loop's cluster:\n%s", dot);
    free(dot);
    remove(path);
    snprintf(path, sizeof path, "%s/dot", dir);
    rmdir(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_check_mode_through_views) {
    tj_tensor *in[5];
    view_inputs(TJ_F32, in);
    tj_set_mode(TJ_MODE_CHECK);
    for (int v = 0; v < VIEW_VARIANTS; v++) {
        view_job j = {v};
        tj_function *f = tj_function_new("views_check", view_step, &j);
        tj_tensor *out[2];
        for (int i = 0; i < 3; i++)
            ck_assert_msg(tj_function_call(f, 5, in, view_nout[v], out) == 0, "variant %d: %s", v, tj_last_error());
        ck_assert_str_eq(tj_function_last_path(f), "checked");
        tj_function_free(f);
    }
}
END_TEST

/* loss = sum(reshape(tanh(x * x), 24) * w + reshape(stop_gradient(x) * x, 24)), x (4, 6),
 * w (24,); out = loss, d loss / d x, d loss / d w */
static int view_grad_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    tj_tape *tape = tj_tape_begin(0);
    tj_tape_watch(tape, in[0]);
    tj_tape_watch(tape, in[1]);
    tj_tensor *x = in[0];
    tj_tensor *a = tj_mul(tj_reshape(tj_tanh(tj_mul(x, x)), TJ_SHAPE(24)), in[1]);
    out[0] = tj_sum(tj_add(a, tj_reshape(tj_mul(tj_stop_gradient(x), x), TJ_SHAPE(24))), 0, NULL, false);
    int rc = tj_tape_gradient(tape, out[0], 2, in, out + 1);
    tj_tape_free(tape);
    return rc;
}

/* Forward and backward through reshapes and stop_gradient: the same bits as eager, f32
 * and f64; the whole step is one flat loop (it also computes the loss's block value) and
 * the loss's end. */
START_TEST(test_gradients_through_reshape) {
    for (int d = 0; d < 2; d++) {
        tj_dtype dt = d ? TJ_F64 : TJ_F32;
        tj_seed(5);
        tj_tensor *in[2] = {normal_dt(dt, TJ_SHAPE(4, 6)), normal_dt(dt, TJ_SHAPE(24))}, *e[3], *c[3];
        tj_set_mode(TJ_MODE_EAGER);
        ck_assert_int_eq(view_grad_step(NULL, 2, in, 3, e), 0);
        tj_set_mode(TJ_MODE_JIT);
        tj_function *f = tj_function_new("view_grad", view_grad_step, NULL);
        ck_assert_int_eq(tj_function_call(f, 2, in, 3, c), 0);
        ck_assert_msg(tj_function_call(f, 2, in, 3, c) == 0, "%s", tj_last_error());
        ck_assert_str_eq(tj_function_last_path(f), "compiled");
        for (int i = 0; i < 3; i++) ck_assert_msg(same_bits(e[i], c[i]), "%s output %d differs", tj_dtype_name(dt), i);
        tj_compile_stats st;
        ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
        ck_assert_int_eq(st.kernels, 2);
        tj_function_free(f);
    }
}
END_TEST

/* t = tanh(x) * x, x (300, 1001); u = reshape(t, (1001, 300)); out = u * s + 1, sum(u) */
static int big_view_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    tj_tensor *u = tj_reshape(tj_mul(tj_tanh(in[0]), in[0]), TJ_SHAPE(1001, 300));
    out[0] = tj_add(tj_mul(u, in[1]), tj_scalar(1));
    out[1] = tj_sum(u, 0, NULL, false);
    return 0;
}

/* A big flat loop through a reshape runs in pieces: the same bits with 1 and 2 threads and
 * as eager, f32 and f64; one loop and the sum's end. */
START_TEST(test_flat_loop_split_over_threads) {
    for (int d = 0; d < 2; d++) {
        tj_dtype dt = d ? TJ_F64 : TJ_F32;
        tj_seed(8);
        tj_tensor *in[2] = {normal_dt(dt, TJ_SHAPE(300, 1001)), normal_dt(dt, TJ_SHAPE())};
        ck_assert_int_eq(same_bits_any_threads(big_view_step, 2, in, 2, tj_dtype_name(dt)), 2);
    }
}
END_TEST
#endif

Suite *jit_suite(void) {
    Suite *s = suite_create("jit");
#ifndef TJ_HAVE_JIT
    TCase *tc = tcase_create("nojit");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_without_jit_runs_eagerly);
    suite_add_tcase(s, tc);
    return s;
#else
    TCase *ops = tcase_create("ops");
    tcase_add_checked_fixture(ops, setup, teardown);
    tcase_set_timeout(ops, 300);
    tcase_add_loop_test(ops, test_op_compiled_equals_eager, 0, tj_nspecs);
    tcase_add_test(ops, test_math_bits_all_lengths);
    tcase_add_test(ops, test_cast_specials_compiled);
    suite_add_tcase(s, ops);
    TCase *mm = tcase_create("small_matmul");
    tcase_add_checked_fixture(mm, setup, teardown);
    tcase_set_timeout(mm, 300);
    tcase_add_test(mm, test_small_matmul_compiled_equals_eager);
    tcase_add_test(mm, test_small_matmul_folds_transposes);
    tcase_add_loop_test(mm, test_small_matmul_epilogue_compiled_equals_eager, 0, 5);
    tcase_add_test(mm, test_small_matmul_epilogue_stores_only_what_is_read);
    tcase_add_test(mm, test_matmul_epilogue_writes_state);
    tcase_add_loop_test(mm, test_blas_epilogue_compiled_equals_eager, 0, 5);
    tcase_add_test(mm, test_blas_batched_epilogue);
    suite_add_tcase(s, mm);
    TCase *steps = tcase_create("steps");
    tcase_add_checked_fixture(steps, setup, teardown);
    tcase_set_timeout(steps, 300);
    tcase_add_test(steps, test_mlp_adam_mse_100_steps);
    tcase_add_test(steps, test_mlp_softmax_dropout_100_steps);
    tcase_add_test(steps, test_gan_two_tapes_100_steps);
    suite_add_tcase(s, steps);
    TCase *fn = tcase_create("function");
    tcase_add_checked_fixture(fn, setup, teardown);
    tcase_add_test(fn, test_state_updates_seen_by_next_call);
    tcase_add_test(fn, test_retrace_and_limit);
    tcase_add_test(fn, test_flags_are_part_of_the_signature);
    tcase_add_test(fn, test_constants_are_frozen_and_check_mode_names_the_node);
    tcase_add_test(fn, test_check_mode_catches_frozen_control_flow);
    tcase_add_test(fn, test_eager_mode_and_errors);
    tcase_add_test(fn, test_error_while_tracing);
    tcase_add_test(fn, test_compiled_gather_checks_indices);
    tcase_add_test(fn, test_threads_compile_and_run_concurrently);
    tcase_add_test(fn, test_compiled_loops_split_over_threads);
    tcase_add_test(fn, test_loop_computes_full_reduction);
    tcase_add_test(fn, test_loop_computes_row_reductions);
    tcase_add_test(fn, test_loop_computes_column_reductions);
    tcase_add_test(fn, test_cheap_values_computed_again);
    suite_add_tcase(s, fn);
    TCase *views = tcase_create("fuse_views");
    tcase_add_checked_fixture(views, setup, teardown);
    tcase_set_timeout(views, 300);
    tcase_add_test(views, test_loops_fuse_through_views);
    tcase_add_test(views, test_check_mode_through_views);
    tcase_add_test(views, test_dot_draws_views_in_their_loop);
    tcase_add_test(views, test_gradients_through_reshape);
    tcase_add_test(views, test_flat_loop_split_over_threads);
    suite_add_tcase(s, views);
    return s;
#endif
}
