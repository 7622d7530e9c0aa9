/* check_tape.c: the gradient tape's contract (runtime/autodiff/tape.c), TensorFlow's
 * GradientTape semantics: gradients of expressions against hand-derived formulas in
 * double (f32 and f64, with broadcasting), several tapes at once (a GAN-shaped step),
 * automatic watching of variables, zeros for unconnected sources, persistent and
 * one-shot tapes, higher order (nested tapes, a gradient penalty against central finite
 * differences), stop/no_grad/stop_gradient, records that outlive their scope, errors,
 * the backward pass's lifetimes (its temporaries die as it goes: peak live bytes of a long
 * chain; source gradients join the caller's scope; sources that are not leaves; recording
 * tapes keep what they recorded), and the composites (mean, softmax, log_softmax, dropout). */
#include "tapejit.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *tape_suite(void);

/* ---- helpers ------------------------------------------------------------------------- */

#define MAXN 256

static int64_t numel_of(tj_shape s) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return n;
}

/* A tensor of dtype dt holding v (converted from double). */
static tj_tensor *from_d(tj_dtype dt, tj_shape s, const double *v) {
    int64_t n = numel_of(s);
    ck_assert(n <= MAXN);
    if (dt == TJ_F64) return tj_tensor_from(dt, s, v);
    float f[MAXN];
    for (int64_t i = 0; i < n; i++) f[i] = (float)v[i];
    return tj_tensor_from(dt, s, f);
}

static bool shape_eq(tj_shape a, tj_shape b) {
    if (a.ndim != b.ndim) return false;
    for (int d = 0; d < a.ndim; d++)
        if (a.dim[d] != b.dim[d]) return false;
    return true;
}

/* t has dtype dt, shape s and |t[i] - ref[i]| <= atol + rtol |ref[i]|. */
static void expect_close(tj_tensor *t, tj_dtype dt, tj_shape s, const double *ref, double atol,
                         double rtol, const char *what) {
    ck_assert_msg(t != NULL, "%s: tensor is NULL (error %d: %s)", what, tj_error_code(), tj_last_error());
    ck_assert_msg(tj_tensor_dtype(t) == dt, "%s: dtype %s, expected %s", what,
                  tj_dtype_name(tj_tensor_dtype(t)), tj_dtype_name(dt));
    ck_assert_msg(shape_eq(tj_tensor_shape(t), s), "%s: shape has rank %d, expected rank %d (or dims differ)",
                  what, tj_tensor_shape(t).ndim, s.ndim);
    int64_t n = numel_of(s);
    for (int64_t i = 0; i < n; i++) {
        double got = tu_get(t, i);
        ck_assert_msg(fabs(got - ref[i]) <= atol + rtol * fabs(ref[i]),
                      "%s: element %lld is %.17g, expected %.17g", what, (long long)i, got, ref[i]);
    }
}

static void expect_fill(tj_tensor *t, tj_dtype dt, tj_shape s, double v, const char *what) {
    double ref[MAXN];
    for (int64_t i = 0; i < numel_of(s); i++) ref[i] = v;
    expect_close(t, dt, s, ref, 0, 0, what);
}

static double atol_of(tj_dtype dt) { return dt == TJ_F64 ? 1e-12 : 2e-6; }
static double rtol_of(tj_dtype dt) { return dt == TJ_F64 ? 1e-10 : 2e-5; }

static tj_tensor *sum_all(tj_tensor *t) { return tj_sum(t, 0, NULL, false); }

/* What a test holds is tracked, so that a failed test (which leaves by longjmp when
 * CK_FORK=no) leaves no tape, scope, variable or no_grad region to the next test. */
static tj_tape *held_tapes[40];
static tj_tensor *held_vars[8];
static int held_scopes, held_no_grad;

static tj_tape *tape_new(unsigned flags) {
    tj_tape *t = tj_tape_begin(flags);
    for (int i = 0; t && i < 40; i++)
        if (!held_tapes[i]) { held_tapes[i] = t; break; }
    return t;
}

static void tape_free(tj_tape *t) {
    for (int i = 0; i < 40; i++)
        if (held_tapes[i] == t) held_tapes[i] = NULL;
    tj_tape_free(t);
}

static tj_tensor *var_new(tj_tensor *init, const char *name) {
    tj_tensor *v = tj_variable(init, name);
    for (int i = 0; v && i < 8; i++)
        if (!held_vars[i]) { held_vars[i] = v; break; }
    return v;
}

static void var_free(tj_tensor *v) {
    for (int i = 0; i < 8; i++)
        if (held_vars[i] == v) held_vars[i] = NULL;
    tj_variable_free(v);
}

static void scope_begin(void) { tj_scope_begin(); held_scopes++; }
static int scope_end(void) { held_scopes--; return tj_scope_end(); }
static void no_grad_begin(void) { tj_no_grad_begin(); held_no_grad++; }
static void no_grad_end(void) { held_no_grad--; tj_no_grad_end(); }

static void setup(void) {
    tj_clear_error();
    held_scopes = held_no_grad = 0;
}

static void teardown(void) {
    tj_set_allocator(NULL, NULL);
    for (int i = 0; i < 40; i++)
        if (held_tapes[i]) { tj_tape_free(held_tapes[i]); held_tapes[i] = NULL; }
    for (int i = 0; i < 8; i++)
        if (held_vars[i]) { tj_variable_free(held_vars[i]); held_vars[i] = NULL; }
    for (; held_no_grad > 0; held_no_grad--) tj_no_grad_end();
    for (; held_scopes > 0; held_scopes--) tj_scope_end();
    tj_clear_error();
}

/* Every test starts with no error and a scope, and ends with no error. */
static void begin_test(void) {
    tj_clear_error();
    scope_begin();
}

static void end_test(void) {
    ck_assert_int_eq(scope_end(), 0);
    ck_assert_msg(tj_error_code() == 0, "unexpected error %d: %s", tj_error_code(), tj_last_error());
}

static const tj_dtype float_dtypes[2] = {TJ_F32, TJ_F64};

/* Central differences of f at x (n values) into g, step eps, in double. */
typedef double (*scalar_fn)(const double *x, const void *ctx);
static void central_diff(scalar_fn f, const void *ctx, double *x, int n, double eps, double *g) {
    for (int i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + eps;
        double fp = f(x, ctx);
        x[i] = x0 - eps;
        double fm = f(x, ctx);
        x[i] = x0;
        g[i] = (fp - fm) / (2 * eps);
    }
}

/* ---- first order, against hand-derived formulas ------------------------------------------ */

/* f = sum(a*b + tanh(a)/b): df/da = b + (1 - tanh(a)^2)/b, df/db = a - tanh(a)/b^2 */
START_TEST(gradient_of_expression_matches_formula) {
    const double av[6] = {-1.2, -0.4, 0.0, 0.3, 0.9, 2.1};
    const double bv[6] = {0.5, -1.5, 2.0, 1.25, -0.75, 3.0};
    for (int k = 0; k < 2; k++) {
        tj_dtype dt = float_dtypes[k];
        begin_test();
        tj_shape s = TJ_SHAPE(2, 3);
        tj_tensor *a = from_d(dt, s, av), *b = from_d(dt, s, bv);
        tj_tape *tape = tape_new(0);
        ck_assert_ptr_nonnull(tape);
        tj_tape_watch(tape, a);
        tj_tape_watch(tape, b);
        tj_tensor *f = sum_all(tj_add(tj_mul(a, b), tj_div(tj_tanh(a), b)));
        tj_tensor *src[2] = {a, b}, *g[2];
        ck_assert_int_eq(tj_tape_gradient(tape, f, 2, src, g), 0);
        double ra[6], rb[6], rf = 0;
        for (int i = 0; i < 6; i++) {
            double th = tanh(av[i]);
            ra[i] = bv[i] + (1 - th * th) / bv[i];
            rb[i] = av[i] - th / (bv[i] * bv[i]);
            rf += av[i] * bv[i] + th / bv[i];
        }
        expect_close(f, dt, TJ_SHAPE(), &rf, atol_of(dt) * 10, rtol_of(dt), "f");
        expect_close(g[0], dt, s, ra, atol_of(dt), rtol_of(dt), "df/da");
        expect_close(g[1], dt, s, rb, atol_of(dt), rtol_of(dt), "df/db");
        tape_free(tape);
        end_test();
    }
}
END_TEST

/* d/db sum(a + b) counts how many times each b element is broadcast; d/db sum(a * b) sums
 * a over the broadcast axes. a is (4,3). */
START_TEST(gradient_undoes_broadcasting) {
    double av[12];
    for (int i = 0; i < 12; i++) av[i] = 0.5 * i - 2.0;
    const tj_shape bshapes[4] = {TJ_SHAPE(3), TJ_SHAPE(1, 3), TJ_SHAPE(4, 1), TJ_SHAPE()};
    const double bv[4] = {0.25, -1.5, 2.0, 0.75};
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 4; c++) {
            tj_dtype dt = float_dtypes[k];
            tj_shape bs = bshapes[c];
            begin_test();
            tj_tensor *a = from_d(dt, TJ_SHAPE(4, 3), av), *b = from_d(dt, bs, bv);
            tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);
            tj_tape_watch(tape, a);
            tj_tape_watch(tape, b);
            tj_tensor *fadd = sum_all(tj_add(a, b)), *fmul = sum_all(tj_mul(a, b));
            tj_tensor *src[2] = {a, b}, *g[2];
            ck_assert_int_eq(tj_tape_gradient(tape, fadd, 2, src, g), 0);
            expect_fill(g[0], dt, TJ_SHAPE(4, 3), 1.0, "d sum(a+b)/da");
            /* each b element is used 12 / numel(b) times */
            expect_fill(g[1], dt, bs, 12.0 / (double)numel_of(bs), "d sum(a+b)/db");

            ck_assert_int_eq(tj_tape_gradient(tape, fmul, 2, src, g), 0);
            double ga[12], gb[4] = {0, 0, 0, 0};
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 3; j++) {
                    int bi = c == 0 || c == 1 ? j : c == 2 ? i : 0;
                    ga[i * 3 + j] = bv[bi];
                    gb[bi] += av[i * 3 + j];
                }
            expect_close(g[0], dt, TJ_SHAPE(4, 3), ga, atol_of(dt), rtol_of(dt), "d sum(a*b)/da");
            expect_close(g[1], dt, bs, gb, atol_of(dt), rtol_of(dt), "d sum(a*b)/db");
            tape_free(tape);
            end_test();
        }
}
END_TEST

/* A rank-0 f32 scalar takes the other operand's dtype (an implicit cast); its gradient
 * comes back as f32: d/db sum(a + b) = 12, d/db sum(a * b) = sum(a), a f64 (4,3). */
START_TEST(gradient_of_promoted_scalar_is_f32) {
    begin_test();
    double av[12];
    for (int i = 0; i < 12; i++) av[i] = 0.25 * i;
    tj_tensor *a = from_d(TJ_F64, TJ_SHAPE(4, 3), av), *b = tj_scalar(1.5);
    tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);
    tj_tape_watch(tape, b);
    tj_tensor *fadd = sum_all(tj_add(a, b)), *fmul = sum_all(tj_mul(a, b)), *g;
    ck_assert_int_eq(tj_tensor_dtype(fadd), TJ_F64);
    ck_assert_int_eq(tj_tape_gradient(tape, fadd, 1, &b, &g), 0);
    expect_fill(g, TJ_F32, TJ_SHAPE(), 12.0, "d sum(a+b)/db");
    ck_assert_int_eq(tj_tape_gradient(tape, fmul, 1, &b, &g), 0);
    double sa = 0;
    for (int i = 0; i < 12; i++) sa += av[i];
    expect_close(g, TJ_F32, TJ_SHAPE(), &sa, 0, 1e-6, "d sum(a*b)/db");
    tape_free(tape);
    end_test();
}
END_TEST

/* y = x*x for x (3,): the target is summed first, so dy/dx = 2x (and not a Jacobian). */
START_TEST(nonscalar_target_is_summed) {
    const double xv[3] = {-1.5, 0.5, 4.0}, ref[3] = {-3.0, 1.0, 8.0};
    for (int k = 0; k < 2; k++) {
        tj_dtype dt = float_dtypes[k];
        begin_test();
        tj_tensor *x = from_d(dt, TJ_SHAPE(3), xv), *g;
        tj_tape *tape = tape_new(0);
        tj_tape_watch(tape, x);
        tj_tensor *y = tj_mul(x, x);
        ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g), 0);
        expect_close(g, dt, TJ_SHAPE(3), ref, 0, 0, "d(x*x)/dx");
        tape_free(tape);
        end_test();
    }
}
END_TEST

/* A source the target does not depend on gets zeros of its own shape and dtype; so does
 * an intermediate that only feeds another branch. The intermediate on the path gets its
 * own gradient: z = 3*y, y = x*x: dz/dy = 3. */
START_TEST(unconnected_source_gets_zeros) {
    begin_test();
    const double xv[2] = {1.0, -2.0}, uv[6] = {1, 2, 3, 4, 5, 6};
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(2), xv), *u = from_d(TJ_F64, TJ_SHAPE(2, 3), uv);
    tj_tape *tape = tape_new(0);
    tj_tape_watch(tape, x);
    tj_tape_watch(tape, u);
    tj_tensor *y = tj_mul(x, x);
    tj_tensor *side = tj_exp(u);                       /* recorded, but not in z */
    tj_tensor *z = sum_all(tj_mul(y, tj_scalar(3.0)));
    tj_tensor *src[4] = {u, side, y, x}, *g[4];
    ck_assert_int_eq(tj_tape_gradient(tape, z, 4, src, g), 0);
    expect_fill(g[0], TJ_F64, TJ_SHAPE(2, 3), 0.0, "dz/du");
    expect_fill(g[1], TJ_F64, TJ_SHAPE(2, 3), 0.0, "dz/dside");
    expect_fill(g[2], TJ_F32, TJ_SHAPE(2), 3.0, "dz/dy");
    const double gx[2] = {6.0, -12.0};
    expect_close(g[3], TJ_F32, TJ_SHAPE(2), gx, 0, 0, "dz/dx");
    tape_free(tape);
    end_test();
}
END_TEST

/* Variables need no tj_tape_watch; plain tensors do: y = sum(v * x * p), p watched. */
START_TEST(variables_are_watched_plain_tensors_are_not) {
    begin_test();
    const double vv[3] = {1.0, 2.0, 3.0}, xv[3] = {0.5, -1.0, 2.0}, pv[3] = {4.0, 0.25, -1.0};
    tj_tensor *v = var_new(from_d(TJ_F32, TJ_SHAPE(3), vv), "v");
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(3), xv), *p = from_d(TJ_F32, TJ_SHAPE(3), pv);
    tj_tape *tape = tape_new(0);
    tj_tape_watch(tape, p);
    tj_tensor *y = sum_all(tj_mul(tj_mul(v, x), p));
    tj_tensor *src[3] = {v, x, p}, *g[3];
    ck_assert_int_eq(tj_tape_gradient(tape, y, 3, src, g), 0);
    double gv[3], gp[3];
    for (int i = 0; i < 3; i++) { gv[i] = xv[i] * pv[i]; gp[i] = vv[i] * xv[i]; }
    expect_close(g[0], TJ_F32, TJ_SHAPE(3), gv, 0, 0, "dy/dv (variable, not watched by hand)");
    expect_fill(g[1], TJ_F32, TJ_SHAPE(3), 0.0, "dy/dx (plain tensor, not watched)");
    expect_close(g[2], TJ_F32, TJ_SHAPE(3), gp, 0, 0, "dy/dp (watched)");
    tape_free(tape);
    var_free(v);
    end_test();
}
END_TEST

/* Two tapes, each watching one tensor: each differentiates only through what it watches. */
START_TEST(tapes_record_only_what_they_watch) {
    begin_test();
    const double av[2] = {2.0, -3.0}, bv[2] = {0.5, 5.0};
    tj_tensor *a = from_d(TJ_F64, TJ_SHAPE(2), av), *b = from_d(TJ_F64, TJ_SHAPE(2), bv);
    tj_tape *ta = tape_new(0), *tb = tape_new(0);
    tj_tape_watch(ta, a);
    tj_tape_watch(tb, b);
    tj_tensor *y = sum_all(tj_mul(a, b));
    tj_tensor *src[2] = {a, b}, *g[2];
    ck_assert_int_eq(tj_tape_gradient(ta, y, 2, src, g), 0);
    expect_close(g[0], TJ_F64, TJ_SHAPE(2), bv, 0, 0, "tape a: dy/da");
    expect_fill(g[1], TJ_F64, TJ_SHAPE(2), 0.0, "tape a: dy/db (b not watched by a)");
    ck_assert_int_eq(tj_tape_gradient(tb, y, 2, src, g), 0);
    expect_fill(g[0], TJ_F64, TJ_SHAPE(2), 0.0, "tape b: dy/da (a not watched by b)");
    expect_close(g[1], TJ_F64, TJ_SHAPE(2), av, 0, 0, "tape b: dy/db");
    tape_free(tb);
    tape_free(ta);
    end_test();
}
END_TEST

/* ---- a GAN-shaped step: two tapes, two losses, each tape's gradients for its variables ---- */

enum { GB = 3, GL = 2, GD = 2 };
static const double gan_z[GB * GL] = {0.5, -1.0, 1.5, 0.25, -0.75, 0.8};
static const double gan_real[GB * GD] = {1.0, 0.5, -0.5, 1.2, 0.3, -0.9};
static const double gan_wg[GL * GD] = {0.4, -0.3, 0.2, 0.6}, gan_bg[GD] = {0.1, -0.2};
static const double gan_wd[GD] = {0.7, -0.5}, gan_bd[1] = {0.05};

static double sigm(double l) { return 1.0 / (1.0 + exp(-l)); }

/* Generator fake = tanh(z @ Wg + bg); discriminator logit(x) = x @ Wd + bd;
 * d_loss = -mean(log s(lr)) - mean(log(1 - s(lf))), g_loss = -mean(log s(lf)).
 * By hand: d(-log s(l))/dl = s(l) - 1, d(-log(1 - s(l)))/dl = s(l). */
static void gan_reference(double *dloss, double *gloss, double *dwd, double *dbd, double *dwg, double *dbg) {
    double fake[GB * GD], lr[GB], lf[GB];
    for (int i = 0; i < GB; i++)
        for (int j = 0; j < GD; j++) {
            double a = gan_bg[j];
            for (int l = 0; l < GL; l++) a += gan_z[i * GL + l] * gan_wg[l * GD + j];
            fake[i * GD + j] = tanh(a);
        }
    for (int i = 0; i < GB; i++) {
        lr[i] = gan_bd[0];
        lf[i] = gan_bd[0];
        for (int j = 0; j < GD; j++) {
            lr[i] += gan_real[i * GD + j] * gan_wd[j];
            lf[i] += fake[i * GD + j] * gan_wd[j];
        }
    }
    *dloss = *gloss = 0;
    for (int j = 0; j < GD; j++) dwd[j] = 0;
    for (int j = 0; j < GD * GL; j++) dwg[j] = 0;
    for (int j = 0; j < GD; j++) dbg[j] = 0;
    *dbd = 0;
    for (int i = 0; i < GB; i++) {
        *dloss += (-log(sigm(lr[i])) - log(1 - sigm(lf[i]))) / GB;
        *gloss += -log(sigm(lf[i])) / GB;
        double dlr = (sigm(lr[i]) - 1) / GB, dlf = sigm(lf[i]) / GB;
        for (int j = 0; j < GD; j++) dwd[j] += gan_real[i * GD + j] * dlr + fake[i * GD + j] * dlf;
        *dbd += dlr + dlf;
        double glf = (sigm(lf[i]) - 1) / GB;          /* generator: through the fake logits */
        for (int j = 0; j < GD; j++) {
            double dpre = glf * gan_wd[j] * (1 - fake[i * GD + j] * fake[i * GD + j]);
            dbg[j] += dpre;
            for (int l = 0; l < GL; l++) dwg[l * GD + j] += gan_z[i * GL + l] * dpre;
        }
    }
}

static void gan_step(bool stop_before_gradients) {
    begin_test();
    tj_tensor *wg = var_new(from_d(TJ_F64, TJ_SHAPE(GL, GD), gan_wg), "wg");
    tj_tensor *bg = var_new(from_d(TJ_F64, TJ_SHAPE(GD), gan_bg), "bg");
    tj_tensor *wd = var_new(from_d(TJ_F64, TJ_SHAPE(GD, 1), gan_wd), "wd");
    tj_tensor *bd = var_new(from_d(TJ_F64, TJ_SHAPE(1), gan_bd), "bd");
    tj_tensor *z = from_d(TJ_F64, TJ_SHAPE(GB, GL), gan_z), *real = from_d(TJ_F64, TJ_SHAPE(GB, GD), gan_real);
    tj_tape *gtape = tape_new(0), *dtape = tape_new(0);
    ck_assert_ptr_nonnull(gtape);
    ck_assert_ptr_nonnull(dtape);
    tj_tensor *fake = tj_tanh(tj_add(tj_matmul(z, wg), bg));
    tj_tensor *lr = tj_add(tj_matmul(real, wd), bd), *lf = tj_add(tj_matmul(fake, wd), bd);
    tj_tensor *d_loss = tj_add(tj_neg(tj_mean(tj_log(tj_sigmoid(lr)), 0, NULL, false)),
                               tj_neg(tj_mean(tj_log(tj_sub(tj_scalar(1.0), tj_sigmoid(lf))), 0, NULL, false)));
    tj_tensor *g_loss = tj_neg(tj_mean(tj_log(tj_sigmoid(lf)), 0, NULL, false));
    if (stop_before_gradients) {
        tj_tape_stop(gtape);
        tj_tape_stop(dtape);
    }
    double rd, rg, dwd[GD], dbd, dwg[GL * GD], dbg[GD];
    gan_reference(&rd, &rg, dwd, &dbd, dwg, dbg);
    expect_close(d_loss, TJ_F64, TJ_SHAPE(), &rd, 1e-12, 1e-10, "d_loss");
    expect_close(g_loss, TJ_F64, TJ_SHAPE(), &rg, 1e-12, 1e-10, "g_loss");

    tj_tensor *gsrc[2] = {wg, bg}, *dsrc[2] = {wd, bd}, *gg[2], *dg[2];
    ck_assert_int_eq(tj_tape_gradient(gtape, g_loss, 2, gsrc, gg), 0);
    ck_assert_int_eq(tj_tape_gradient(dtape, d_loss, 2, dsrc, dg), 0);
    expect_close(gg[0], TJ_F64, TJ_SHAPE(GL, GD), dwg, 1e-12, 1e-9, "d g_loss / d wg");
    expect_close(gg[1], TJ_F64, TJ_SHAPE(GD), dbg, 1e-12, 1e-9, "d g_loss / d bg");
    expect_close(dg[0], TJ_F64, TJ_SHAPE(GD, 1), dwd, 1e-12, 1e-9, "d d_loss / d wd");
    expect_close(dg[1], TJ_F64, TJ_SHAPE(1), &dbd, 1e-12, 1e-9, "d d_loss / d bd");
    tape_free(dtape);
    tape_free(gtape);
    var_free(wg);
    var_free(bg);
    var_free(wd);
    var_free(bd);
    end_test();
}

START_TEST(gan_two_tapes_two_losses) { gan_step(false); }
END_TEST

START_TEST(gan_two_tapes_stopped_before_gradients) { gan_step(true); }
END_TEST

/* ---- persistent and one-shot tapes ---------------------------------------------------- */

/* f = sum(exp(x) * w), df/dx = exp(x) * w, three calls, bit-identical; and a second target. */
START_TEST(persistent_tape_repeats_gradients) {
    begin_test();
    const double xv[4] = {-1.0, 0.0, 0.5, 2.0}, wv[4] = {1.0, -2.0, 3.0, 0.5};
    tj_tensor *x = from_d(TJ_F64, TJ_SHAPE(4), xv), *w = from_d(TJ_F64, TJ_SHAPE(4), wv);
    tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);
    tj_tape_watch(tape, x);
    tj_tensor *e = tj_exp(x);
    tj_tensor *f = sum_all(tj_mul(e, w)), *h = sum_all(tj_mul(e, e));
    double ref[4], refh[4];
    for (int i = 0; i < 4; i++) { ref[i] = exp(xv[i]) * wv[i]; refh[i] = 2 * exp(2 * xv[i]); }
    tj_tensor *g[3];
    for (int c = 0; c < 3; c++) {
        ck_assert_int_eq(tj_tape_gradient(tape, f, 1, &x, &g[c]), 0);
        expect_close(g[c], TJ_F64, TJ_SHAPE(4), ref, 1e-14, 1e-14, "df/dx");
    }
    ck_assert_mem_eq(tj_tensor_data(g[0]), tj_tensor_data(g[2]), 4 * sizeof(double));
    tj_tensor *gh;
    ck_assert_int_eq(tj_tape_gradient(tape, h, 1, &x, &gh), 0);
    expect_close(gh, TJ_F64, TJ_SHAPE(4), refh, 1e-14, 1e-13, "dh/dx");
    expect_close(g[0], TJ_F64, TJ_SHAPE(4), ref, 1e-14, 1e-14, "df/dx after more calls");
    tape_free(tape);
    end_test();
}
END_TEST

/* A one-shot tape gives its gradient once; the second call is TJ_ERR_TAPE saying "once",
 * sets the outputs to NULL, and the first result stays valid. */
START_TEST(nonpersistent_tape_second_call_fails) {
    begin_test();
    const double xv[3] = {1.0, 2.0, -3.0};
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(3), xv), *g1, *g2 = (tj_tensor *)1;
    tj_tape *tape = tape_new(0);
    tj_tape_watch(tape, x);
    tj_tensor *y = sum_all(tj_mul(x, x));
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g1), 0);
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g2), TJ_ERR_TAPE);
    ck_assert_ptr_null(g2);
    ck_assert_error(TJ_ERR_TAPE, "once");
    const double ref[3] = {2.0, 4.0, -6.0};
    expect_close(g1, TJ_F32, TJ_SHAPE(3), ref, 0, 0, "first gradient after the failed second");
    tape_free(tape);
    end_test();
}
END_TEST

/* ---- higher order -------------------------------------------------------------------- */

/* d2/dx2 tanh x = -2 tanh x (1 - tanh^2 x), by an outer tape over an inner tape's gradient. */
START_TEST(second_derivative_of_tanh) {
    const double xv[5] = {-1.5, -0.3, 0.0, 0.7, 2.0};
    for (int k = 0; k < 2; k++) {
        tj_dtype dt = float_dtypes[k];
        begin_test();
        tj_tensor *x = from_d(dt, TJ_SHAPE(5), xv), *g, *gg;
        tj_tape *outer = tape_new(0);
        tj_tape_watch(outer, x);
        tj_tape *inner = tape_new(0);
        tj_tape_watch(inner, x);
        tj_tensor *y = tj_tanh(x);
        ck_assert_int_eq(tj_tape_gradient(inner, y, 1, &x, &g), 0);
        ck_assert_int_eq(tj_tape_gradient(outer, g, 1, &x, &gg), 0);
        double r1[5], r2[5];
        for (int i = 0; i < 5; i++) {
            double t = tanh(xv[i]);
            r1[i] = 1 - t * t;
            r2[i] = -2 * t * (1 - t * t);
        }
        expect_close(g, dt, TJ_SHAPE(5), r1, atol_of(dt), rtol_of(dt), "d tanh/dx");
        expect_close(gg, dt, TJ_SHAPE(5), r2, atol_of(dt), rtol_of(dt), "d2 tanh/dx2");
        tape_free(inner);
        tape_free(outer);
        end_test();
    }
}
END_TEST

/* d2/dx2 x^3 = 6x, with x^3 as x*x*x and as pow(x, 3). */
START_TEST(second_derivative_of_cube) {
    const double xv[4] = {-2.0, -0.5, 1.0, 3.0};
    for (int k = 0; k < 2; k++)
        for (int form = 0; form < 2; form++) {
            tj_dtype dt = float_dtypes[k];
            begin_test();
            tj_tensor *x = from_d(dt, TJ_SHAPE(4), xv), *g, *gg;
            tj_tape *outer = tape_new(0);
            tj_tape_watch(outer, x);
            tj_tape *inner = tape_new(0);
            tj_tape_watch(inner, x);
            tj_tensor *y = form == 0 ? tj_mul(tj_mul(x, x), x) : tj_pow(x, tj_scalar(3.0));
            ck_assert_int_eq(tj_tape_gradient(inner, y, 1, &x, &g), 0);
            ck_assert_int_eq(tj_tape_gradient(outer, g, 1, &x, &gg), 0);
            double r1[4], r2[4];
            for (int i = 0; i < 4; i++) { r1[i] = 3 * xv[i] * xv[i]; r2[i] = 6 * xv[i]; }
            expect_close(g, dt, TJ_SHAPE(4), r1, atol_of(dt), rtol_of(dt), form ? "d pow/dx" : "d x*x*x/dx");
            expect_close(gg, dt, TJ_SHAPE(4), r2, atol_of(dt), rtol_of(dt), form ? "d2 pow/dx2" : "d2 x*x*x/dx2");
            tape_free(inner);
            tape_free(outer);
            end_test();
        }
}
END_TEST

/* Gradient penalty: f = sum(tanh(x @ W)), p = sum((df/dx)^2); dp/dW against central
 * differences of p computed in double by hand: df/dx = (1 - tanh^2(xW)) @ W^T. */
enum { PM = 2, PK = 3, PN = 4 };
static const double pen_x[PM * PK] = {0.5, -1.0, 0.25, 1.5, 0.3, -0.7};

static double penalty_ref(const double *w, const void *ctx) {
    (void)ctx;
    double p = 0;
    double d[PM * PN];
    for (int i = 0; i < PM; i++)
        for (int j = 0; j < PN; j++) {
            double a = 0;
            for (int k = 0; k < PK; k++) a += pen_x[i * PK + k] * w[k * PN + j];
            double t = tanh(a);
            d[i * PN + j] = 1 - t * t;
        }
    for (int i = 0; i < PM; i++)
        for (int k = 0; k < PK; k++) {
            double gx = 0;
            for (int j = 0; j < PN; j++) gx += d[i * PN + j] * w[k * PN + j];
            p += gx * gx;
        }
    return p;
}

START_TEST(gradient_penalty_matches_finite_differences) {
    begin_test();
    double wv[PK * PN];
    for (int i = 0; i < PK * PN; i++) wv[i] = 0.3 * sin(1.7 * i + 0.4);
    tj_tensor *w = var_new(from_d(TJ_F64, TJ_SHAPE(PK, PN), wv), "w");
    tj_tensor *x = from_d(TJ_F64, TJ_SHAPE(PM, PK), pen_x), *gx, *gw;
    tj_tape *outer = tape_new(0);
    tj_tape *inner = tape_new(0);
    tj_tape_watch(inner, x);
    tj_tensor *f = sum_all(tj_tanh(tj_matmul(x, w)));
    ck_assert_int_eq(tj_tape_gradient(inner, f, 1, &x, &gx), 0);
    tj_tensor *p = sum_all(tj_mul(gx, gx));
    ck_assert_int_eq(tj_tape_gradient(outer, p, 1, &w, &gw), 0);
    double rp = penalty_ref(wv, NULL), fd[PK * PN];
    expect_close(p, TJ_F64, TJ_SHAPE(), &rp, 1e-12, 1e-10, "penalty");
    central_diff(penalty_ref, NULL, wv, PK * PN, 1e-6, fd);
    expect_close(gw, TJ_F64, TJ_SHAPE(PK, PN), fd, 1e-5, 1e-3, "d penalty / d W");
    tape_free(inner);
    tape_free(outer);
    var_free(w);
    end_test();
}
END_TEST

/* ---- regions that are not recorded ----------------------------------------------------- */

/* After tj_tape_stop nothing is recorded: z = 3y computed after stop has gradient zero,
 * while y = 2x computed before still has dy/dx = 2. */
START_TEST(tape_stop_stops_recording) {
    begin_test();
    const double xv[2] = {1.0, -4.0};
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(2), xv), *g[3];
    tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);
    tj_tape_watch(tape, x);
    tj_tensor *y = tj_mul(x, tj_scalar(2.0));
    tj_tape_stop(tape);
    tj_tensor *z = sum_all(tj_mul(y, tj_scalar(3.0)));
    tj_tensor *yz = sum_all(tj_add(y, tj_mul(x, x)));
    ck_assert_int_eq(tj_tape_gradient(tape, z, 1, &x, &g[0]), 0);
    ck_assert_int_eq(tj_tape_gradient(tape, yz, 1, &x, &g[1]), 0);
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g[2]), 0);
    expect_fill(g[0], TJ_F32, TJ_SHAPE(2), 0.0, "dz/dx, z after stop");
    expect_fill(g[1], TJ_F32, TJ_SHAPE(2), 0.0, "d(y + x*x)/dx, after stop");
    expect_fill(g[2], TJ_F32, TJ_SHAPE(2), 2.0, "dy/dx, y before stop");
    tape_free(tape);
    end_test();
}
END_TEST

/* Ops inside tj_no_grad_begin/end are not recorded; regions nest; an unmatched end is
 * TJ_ERR_STATE. y = x*x + nograd(x*x*x) + x*(nested nograd x) : dy/dx = 2x + 0 + nograd part */
START_TEST(no_grad_regions_nest) {
    begin_test();
    const double xv[3] = {1.0, 2.0, -0.5};
    tj_tensor *x = from_d(TJ_F64, TJ_SHAPE(3), xv), *g;
    tj_tape *tape = tape_new(0);
    tj_tape_watch(tape, x);
    tj_tensor *a = tj_mul(x, x);                        /* recorded: 2x */
    no_grad_begin();
    tj_tensor *b = tj_mul(tj_mul(x, x), x);             /* not recorded */
    no_grad_begin();
    tj_tensor *c = tj_exp(x);                           /* not recorded (depth 2) */
    no_grad_end();
    tj_tensor *d = tj_mul(x, tj_scalar(5.0));           /* not recorded (depth 1 still) */
    no_grad_end();
    tj_tensor *e = tj_mul(x, tj_scalar(7.0));           /* recorded again: 7 */
    tj_tensor *y = sum_all(tj_add(tj_add(tj_add(a, b), tj_add(c, d)), e));
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g), 0);
    double ref[3];
    for (int i = 0; i < 3; i++) ref[i] = 2 * xv[i] + 7;
    expect_close(g, TJ_F64, TJ_SHAPE(3), ref, 0, 0, "dy/dx with no_grad regions");
    tape_free(tape);
    tj_no_grad_end();                                   /* unmatched */
    ck_assert_error(TJ_ERR_STATE, "no_grad_end");
    /* the failed end did not open a region: a new tape records */
    tape = tape_new(0);
    tj_tape_watch(tape, x);
    y = sum_all(tj_mul(x, x));
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g), 0);
    for (int i = 0; i < 3; i++) ref[i] = 2 * xv[i];
    expect_close(g, TJ_F64, TJ_SHAPE(3), ref, 0, 0, "dy/dx after an unmatched no_grad_end");
    tape_free(tape);
    end_test();
}
END_TEST

/* d/dx sum(x * stop_gradient(x)) = x (only the first factor), for a watched tensor and a
 * variable; the value is x^2 as usual. */
START_TEST(stop_gradient_blocks) {
    begin_test();
    const double xv[3] = {1.5, -2.0, 0.25};
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(3), xv), *g[2];
    tj_tensor *v = var_new(x, "v");
    tj_tape *tape = tape_new(0);
    tj_tape_watch(tape, x);
    tj_tensor *yx = tj_mul(x, tj_stop_gradient(x));
    tj_tensor *yv = tj_mul(v, tj_stop_gradient(v));
    tj_tensor *y = sum_all(tj_add(yx, yv));
    double sq[3];
    for (int i = 0; i < 3; i++) sq[i] = xv[i] * xv[i];
    expect_close(yx, TJ_F32, TJ_SHAPE(3), sq, 0, 0, "x * stop_gradient(x)");
    tj_tensor *src[2] = {x, v};
    ck_assert_int_eq(tj_tape_gradient(tape, y, 2, src, g), 0);
    expect_close(g[0], TJ_F32, TJ_SHAPE(3), xv, 0, 0, "d/dx x*sg(x)");
    expect_close(g[1], TJ_F32, TJ_SHAPE(3), xv, 0, 0, "d/dv v*sg(v)");
    tape_free(tape);
    var_free(v);
    end_test();
}
END_TEST

/* ---- lifetimes ------------------------------------------------------------------------- */

/* y = sum(tanh(x*x)) computed in an inner scope that keeps only y: the tape keeps the
 * intermediates, so dy/dx = 2x (1 - tanh^2(x^2)) after the scope ended. */
START_TEST(records_outlive_their_scope) {
    begin_test();
    const double xv[4] = {-1.0, 0.2, 0.6, 1.3};
    tj_tensor *x = from_d(TJ_F64, TJ_SHAPE(4), xv), *g;
    tj_tape *tape = tape_new(0);
    tj_tape_watch(tape, x);
    scope_begin();
    tj_tensor *sq = tj_mul(x, x);
    tj_tensor *y = tj_keep(sum_all(tj_tanh(sq)));
    ck_assert_int_eq(scope_end(), 0);
    ck_assert_int_eq(tj_tensor_numel(sq), -1);      /* the intermediate's handle is gone */
    ck_assert_error(TJ_ERR_STALE, "scope");
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g), 0);
    double ref[4];
    for (int i = 0; i < 4; i++) {
        double t = tanh(xv[i] * xv[i]);
        ref[i] = 2 * xv[i] * (1 - t * t);
    }
    expect_close(g, TJ_F64, TJ_SHAPE(4), ref, 1e-14, 1e-12, "dy/dx after the scope ended");
    tape_free(tape);
    end_test();
}
END_TEST

/* A tape records values, not variables: assigning a variable after the forward pass does
 * not change the gradient of that pass (TensorFlow differentiates the value it read):
 * y = sum(v*v) with v = (1,2,3), then v := 10: dy/dv = 2 * (1,2,3). */
START_TEST(assign_after_forward_keeps_recorded_values) {
    begin_test();
    const double vv[3] = {1.0, 2.0, 3.0}, ref[3] = {2.0, 4.0, 6.0};
    tj_tensor *v = var_new(from_d(TJ_F32, TJ_SHAPE(3), vv), "v"), *g;
    tj_tape *tape = tape_new(0);
    tj_tensor *y = sum_all(tj_mul(v, v));
    ck_assert_int_eq(tj_assign(v, tj_full(TJ_F32, TJ_SHAPE(3), 10.0)), 0);
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &v, &g), 0);
    expect_close(g, TJ_F32, TJ_SHAPE(3), ref, 0, 0, "dy/dv after tj_assign");
    tape_free(tape);
    var_free(v);
    end_test();
}
END_TEST

/* A cast to the tensor's own dtype is the identity, and the gradient flows through it:
 * d/dx sum(cast(x, f32) * x) = 2x. */
START_TEST(gradient_through_identity_cast) {
    begin_test();
    const double xv[3] = {1.0, 2.0, 3.0}, ref[3] = {2.0, 4.0, 6.0};
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(3), xv), *g;
    tj_tape *tape = tape_new(0);
    tj_tape_watch(tape, x);
    tj_tensor *y = sum_all(tj_mul(tj_cast(x, TJ_F32), x));
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g), 0);
    expect_close(g, TJ_F32, TJ_SHAPE(3), ref, 0, 0, "d sum(cast(x)*x)/dx");
    tape_free(tape);
    end_test();
}
END_TEST

/* A freed tape's slot is reused by the next tape, which must not inherit what the old one
 * tracked: x watched by the freed tape is not watched by the new one. */
START_TEST(reused_slot_starts_clean) {
    begin_test();
    const double xv[2] = {3.0, -1.0};
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(2), xv), *g;
    tj_tape *old = tape_new(TJ_TAPE_PERSISTENT);
    tj_tape_watch(old, x);
    tj_tensor *y0 = tj_mul(x, x);
    tape_free(old);
    tj_tape *fresh = tape_new(0);
    tj_tensor *y = sum_all(tj_add(tj_mul(x, tj_scalar(2.0)), y0));
    ck_assert_int_eq(tj_tape_gradient(fresh, y, 1, &x, &g), 0);
    expect_fill(g, TJ_F32, TJ_SHAPE(2), 0.0, "dy/dx on a tape that does not watch x");
    tape_free(fresh);
    end_test();
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------ */

START_TEST(at_most_32_tapes) {
    begin_test();
    tj_tape *tapes[32];
    for (int i = 0; i < 32; i++) {
        tapes[i] = tape_new(0);
        ck_assert_msg(tapes[i] != NULL, "tape %d: %s", i, tj_last_error());
    }
    ck_assert_ptr_null(tape_new(0));
    ck_assert_error(TJ_ERR_TAPE, "32 tapes");
    /* all 32 record: each one's gradient of sum(x*x) is 2x */
    const double xv[2] = {1.0, -2.0}, ref[2] = {2.0, -4.0};
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(2), xv), *g;
    for (int i = 0; i < 32; i++) tj_tape_watch(tapes[i], x);
    tj_tensor *y = sum_all(tj_mul(x, x));
    ck_assert_int_eq(tj_tape_gradient(tapes[31], y, 1, &x, &g), 0);
    expect_close(g, TJ_F32, TJ_SHAPE(2), ref, 0, 0, "tape 31");
    ck_assert_int_eq(tj_tape_gradient(tapes[0], y, 1, &x, &g), 0);
    expect_close(g, TJ_F32, TJ_SHAPE(2), ref, 0, 0, "tape 0");
    tape_free(tapes[7]);
    tapes[7] = tape_new(0);                    /* a freed slot can be taken again */
    ck_assert_ptr_nonnull(tapes[7]);
    for (int i = 0; i < 32; i++) tape_free(tapes[i]);
    end_test();
}
END_TEST

START_TEST(tape_argument_errors) {
    begin_test();
    const int32_t iv[2] = {1, 2};
    const double xv[2] = {1.0, 2.0};
    tj_tensor *xi = tj_tensor_from(TJ_I32, TJ_SHAPE(2), iv), *x = from_d(TJ_F32, TJ_SHAPE(2), xv);
    tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);

    tj_tape_watch(tape, xi);
    ck_assert_error(TJ_ERR_DTYPE, "int32");

    tj_tape_watch(NULL, x);
    ck_assert_error(TJ_ERR_ARG, "NULL");
    tj_tape_stop(NULL);
    ck_assert_error(TJ_ERR_ARG, "NULL");
    tj_tensor *g = (tj_tensor *)1;
    ck_assert_int_eq(tj_tape_gradient(NULL, x, 1, &x, &g), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "NULL");

    tj_tape_watch(tape, x);
    tj_tensor *yi = tj_cast(tj_mul(x, x), TJ_I32);
    g = (tj_tensor *)1;
    ck_assert_int_eq(tj_tape_gradient(tape, yi, 1, &x, &g), TJ_ERR_DTYPE);
    ck_assert_ptr_null(g);
    ck_assert_error(TJ_ERR_DTYPE, "int32");

    /* the errors did not spoil the tape */
    tj_tensor *y = sum_all(tj_mul(x, x));
    const double ref[2] = {2.0, 4.0};
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g), 0);
    expect_close(g, TJ_F32, TJ_SHAPE(2), ref, 0, 0, "dy/dx after the errors");
    tape_free(tape);
    end_test();
}
END_TEST

/* ---- records are released -------------------------------------------------------------- */

/* Counts live bytes through the allocation hook (as lua_Alloc: osize is what was asked). */
static long long live_bytes;
static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    if (ptr) live_bytes -= (long long)osize;
    if (nsize == 0) { free(ptr); return NULL; }
    void *p = realloc(ptr, nsize);
    if (p) live_bytes += (long long)nsize;
    else if (ptr) live_bytes += (long long)osize;
    return p;
}

static void one_iteration(const double *xv, const double *wv) {
    scope_begin();
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(2, 3), xv), *w = var_new(from_d(TJ_F32, TJ_SHAPE(3, 2), wv), "w");
    tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);
    tj_tape_watch(tape, x);
    tj_tensor *y = sum_all(tj_tanh(tj_matmul(x, w)));
    tj_tensor *src[2] = {x, w}, *g[2];
    ck_assert_int_eq(tj_tape_gradient(tape, y, 2, src, g), 0);
    ck_assert_int_eq(tj_tape_gradient(tape, y, 2, src, g), 0);
    tape_free(tape);
    var_free(w);
    ck_assert_int_eq(scope_end(), 0);
}

/* 1000 iterations of scope, tape, ops, gradient, free, scope end leave no live bytes
 * behind (LeakSanitizer checks the same in the sanitizer build). */
START_TEST(freed_tapes_release_their_records) {
    tj_clear_error();
    const double xv[6] = {0.1, 0.2, 0.3, -0.4, 0.5, -0.6}, wv[6] = {1, -1, 0.5, 0.25, -2, 0.75};
    tj_set_allocator(counting_alloc, NULL);
    one_iteration(xv, wv);                 /* warm up: the handle table may grow once */
    long long before = live_bytes;
    for (int i = 0; i < 1000; i++) one_iteration(xv, wv);
    long long after = live_bytes;
    tj_set_allocator(NULL, NULL);
    ck_assert_msg(after == before, "1000 iterations left %lld bytes live", after - before);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- the backward pass's lifetimes ------------------------------------------------------------ */

enum { CHAIN_K = 64, CHAIN_N = 512 };

/* y = sum(tanh^K(x)) for x (N,) f64; its gradient into *g. Returns the peak of the bytes
 * tapejit had live during tj_tape_gradient and those it left live, above those before it. */
static void chain_gradient(tj_tensor *x, tj_tensor **g, long long *peak, long long *left) {
    tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);     /* its records stay: `left` is the pass's */
    tj_tape_watch(tape, x);
    tj_tensor *t = x;
    for (int k = 0; k < CHAIN_K; k++) t = tj_tanh(t);
    tj_tensor *y = sum_all(t);
    int64_t before = tj_memory_in_use();
    tj_memory_reset_peak();
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, g), 0);
    *peak = tj_memory_peak() - before;
    *left = tj_memory_in_use() - before;
    tape_free(tape);
}

/* Each rule's intermediates (3 tensors a tanh) and each gradient once its node has passed it
 * on die during the pass: its peak stays a few tensors (it was all 3K + 1 of them, in the
 * caller's scope), and only the gradient is left. dy/dx = prod_k (1 - t_k^2), t_k = tanh^k x. */
START_TEST(backward_frees_its_temporaries) {
    double xv[CHAIN_N], ref[CHAIN_N];
    for (int i = 0; i < CHAIN_N; i++) {
        xv[i] = -0.5 + (double)i / CHAIN_N;
        double t = xv[i], d = 1;
        for (int k = 0; k < CHAIN_K; k++) {
            t = tanh(t);
            d *= 1 - t * t;
        }
        ref[i] = d;
    }
    long long peak, left;
    for (int warm = 0; warm < 2; warm++) {           /* the first run may grow the handle table */
        begin_test();
        tj_tensor *x = tj_tensor_from(TJ_F64, TJ_SHAPE(CHAIN_N), xv), *g;
        chain_gradient(x, &g, &peak, &left);
        expect_close(g, TJ_F64, TJ_SHAPE(CHAIN_N), ref, 1e-15, 1e-12, "d tanh^K(x)/dx");
        end_test();
    }
    long long tensor_bytes = CHAIN_N * (long long)sizeof(double) + 512;   /* data and headers */
    ck_assert_msg(peak <= 8 * tensor_bytes, "the pass peaked at %lld bytes, %.1f tensors",
                  peak, (double)peak / (double)tensor_bytes);
    ck_assert_msg(left <= 2 * tensor_bytes, "the pass left %lld bytes live, %.1f tensors",
                  left, (double)left / (double)tensor_bytes);
}
END_TEST

/* The gradients join the caller's scope: valid when tj_tape_gradient returns, stale when
 * that scope ends; tj_keep moves one out like any tensor. y = sum(x * x * w): 2xw, x^2. */
START_TEST(gradients_belong_to_the_callers_scope) {
    begin_test();
    const double xv[3] = {1.5, -2.0, 0.5}, wv[3] = {3.0, 0.25, -1.0};
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(3), xv), *w = from_d(TJ_F32, TJ_SHAPE(3), wv), *g[2];
    tj_tape *tape = tape_new(0);
    tj_tape_watch(tape, x);
    tj_tape_watch(tape, w);
    scope_begin();
    tj_tensor *y = sum_all(tj_mul(tj_mul(x, x), w)), *src[2] = {x, w};
    ck_assert_int_eq(tj_tape_gradient(tape, y, 2, src, g), 0);
    double rx[3], rw[3];
    for (int i = 0; i < 3; i++) { rx[i] = 2 * xv[i] * wv[i]; rw[i] = xv[i] * xv[i]; }
    expect_close(g[0], TJ_F32, TJ_SHAPE(3), rx, 0, 0, "dy/dx");
    ck_assert_ptr_eq(tj_keep(g[1]), g[1]);
    ck_assert_int_eq(scope_end(), 0);
    ck_assert_int_eq(tj_tensor_numel(g[0]), -1);
    ck_assert_error(TJ_ERR_STALE, "scope");
    expect_close(g[1], TJ_F32, TJ_SHAPE(3), rw, 0, 0, "dy/dw kept");
    tape_free(tape);
    end_test();
}
END_TEST

/* Sources that are not leaves keep their gradients after their nodes passed them on: the
 * target (ones), an intermediate (twice in the list), and x; twice from a persistent tape,
 * bit for bit. h = tanh(x), y = 3 h h (non-scalar): dy/dh = 6h, dy/dx = 6h (1 - h^2). */
START_TEST(gradients_of_target_and_intermediate_sources) {
    begin_test();
    const double xv[4] = {-1.0, 0.25, 0.5, 2.0};
    tj_tensor *x = from_d(TJ_F64, TJ_SHAPE(4), xv), *g[4], *g2[4];
    tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);
    tj_tape_watch(tape, x);
    tj_tensor *h = tj_tanh(x);
    tj_tensor *y = tj_mul(tj_mul(h, h), tj_scalar(3.0)), *src[4] = {y, h, x, h};
    ck_assert_int_eq(tj_tape_gradient(tape, y, 4, src, g), 0);
    ck_assert_int_eq(tj_tape_gradient(tape, y, 4, src, g2), 0);
    double rh[4], rx[4];
    for (int i = 0; i < 4; i++) {
        double t = tanh(xv[i]);
        rh[i] = 6 * t;
        rx[i] = 6 * t * (1 - t * t);
    }
    for (int c = 0; c < 2; c++) {
        tj_tensor **gc = c ? g2 : g;
        expect_fill(gc[0], TJ_F64, TJ_SHAPE(4), 1.0, "dy/dy");
        expect_close(gc[1], TJ_F64, TJ_SHAPE(4), rh, 1e-14, 1e-13, "dy/dh");
        expect_close(gc[2], TJ_F64, TJ_SHAPE(4), rx, 1e-14, 1e-13, "dy/dx");
        expect_close(gc[3], TJ_F64, TJ_SHAPE(4), rh, 1e-14, 1e-13, "dy/dh, listed again");
    }
    for (int i = 0; i < 4; i++) ck_assert_mem_eq(tj_tensor_data(g[i]), tj_tensor_data(g2[i]), 4 * sizeof(double));
    tape_free(tape);
    end_test();
}
END_TEST

/* Third derivative through three tapes, each recording the passes of the ones inside it;
 * each gradient is taken in a scope that ends (keeping only the gradient) before the next
 * pass, so only the recording tapes' references keep the values a pass made. y = x*x*x*x:
 * 4x^3, d/dx sum(4x^3) = 12x^2, d/dx sum(12x^2) = 24x. */
START_TEST(recording_tapes_keep_what_a_pass_made) {
    begin_test();
    const double xv[4] = {-2.0, -0.5, 1.0, 1.5};
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(4), xv), *g[3];
    tj_tape *tapes[3];
    for (int k = 0; k < 3; k++) {
        tapes[k] = tape_new(0);
        tj_tape_watch(tapes[k], x);
    }
    tj_tensor *target = tj_mul(tj_mul(tj_mul(x, x), x), x);
    for (int k = 2; k >= 0; k--) {                      /* the innermost tape first */
        scope_begin();
        ck_assert_int_eq(tj_tape_gradient(tapes[k], target, 1, &x, &g[2 - k]), 0);
        ck_assert_ptr_nonnull(tj_keep(g[2 - k]));
        ck_assert_int_eq(scope_end(), 0);
        target = g[2 - k];
    }
    double r[3][4];
    for (int i = 0; i < 4; i++) {
        r[0][i] = 4 * xv[i] * xv[i] * xv[i];
        r[1][i] = 12 * xv[i] * xv[i];
        r[2][i] = 24 * xv[i];
    }
    expect_close(g[0], TJ_F32, TJ_SHAPE(4), r[0], 0, 1e-6, "dy/dx");
    expect_close(g[1], TJ_F32, TJ_SHAPE(4), r[1], 0, 1e-6, "d2y/dx2");
    expect_close(g[2], TJ_F32, TJ_SHAPE(4), r[2], 0, 1e-6, "d3y/dx3");
    for (int k = 0; k < 3; k++) tape_free(tapes[k]);
    end_test();
}
END_TEST

/* ---- eager shortcuts: the same bits as the ops, fewer passes ------------------------------- */

/* n values for gradient rules: zero, signs, saturating magnitudes, tiny, huge */
#define NS 12
static const double sv[NS] = {0.0, -0.0, 0.5, -0.75, 3.0, -4.5, 12.0, -30.0, 1e-6, -3e-20, 88.0, -1e3};
static const double sw[NS] = {1.5, -2.0, 0.25, 3.0, -0.125, 7.0, 1e-3, -1.0, 2.0, 5.0, -0.5, 0.75};

static bool same_bits(tj_tensor *a, tj_tensor *b) {
    size_t es = tj_tensor_dtype(a) == TJ_F64 ? 8 : 4;
    return tj_tensor_numel(a) == tj_tensor_numel(b) &&
           memcmp(tj_tensor_data(a), tj_tensor_data(b), es * (size_t)tj_tensor_numel(a)) == 0;
}

/* Whether the profile file at path names an op. */
static bool profile_names(const char *path, const char *op) {
    char *text = tu_slurp(path, NULL), want[64];
    ck_assert_ptr_nonnull(text);
    snprintf(want, sizeof want, "\"name\": \"%s\"", op);
    bool named = strstr(text, want) != NULL;
    free(text);
    return named;
}

/* The gradient of sum(act(x) * w) for x: with nothing recording the pass (tanh and sigmoid
 * backward run as one pass each, named tanh_grad and sigmoid_grad in a profile), and with an
 * outer tape recording it (the rules' ops). Same bits, and the formula in double. */
START_TEST(fused_tanh_and_sigmoid_gradients_are_the_ops_bits) {
    for (int k = 0; k < 2; k++) {
        tj_dtype dt = float_dtypes[k];
        for (int act = 0; act < 2; act++) {
            begin_test();
            tj_tensor *x = from_d(dt, TJ_SHAPE(NS), sv), *w = from_d(dt, TJ_SHAPE(NS), sw), *g[2];
            for (int rec = 0; rec < 2; rec++) {
                char path[64];
                snprintf(path, sizeof path, "/tmp/tj_fused_grad_%d.json", (int)getpid());
                ck_assert_int_eq(tj_profile_start(path), 0);
                tj_tape *outer = rec ? tape_new(TJ_TAPE_PERSISTENT) : NULL;
                if (outer) tj_tape_watch(outer, x);
                tj_tape *tape = tape_new(0);
                tj_tape_watch(tape, x);
                tj_tensor *y = act ? tj_sigmoid(x) : tj_tanh(x);
                ck_assert_int_eq(tj_tape_gradient(tape, sum_all(tj_mul(y, w)), 1, &x, &g[rec]), 0);
                tape_free(tape);
                if (outer) tape_free(outer);
                ck_assert_int_eq(tj_profile_stop(), 0);
                const char *fused = act ? "sigmoid_grad" : "tanh_grad";
                ck_assert_msg(profile_names(path, fused) == !rec, "%s %s a recorded pass", fused, rec ? "ran in" : "missing from");
                remove(path);
            }
            ck_assert_msg(same_bits(g[0], g[1]), "%s %s: the one-pass gradient differs from the ops'",
                          act ? "sigmoid" : "tanh", tj_dtype_name(dt));
            double ref[NS];
            for (int i = 0; i < NS; i++) {
                double t = act ? 1 / (1 + exp(-sv[i])) : tanh(sv[i]);
                ref[i] = sw[i] * (act ? t * (1 - t) : 1 - t * t);
            }
            expect_close(g[0], dt, TJ_SHAPE(NS), ref, atol_of(dt), 1e-5, "d act(x) w / dx");
            end_test();
        }
    }
}
END_TEST

/* Occurrences of op in the profile at path. */
static int profile_count(const char *path, const char *op) {
    char *text = tu_slurp(path, NULL), want[64];
    ck_assert_ptr_nonnull(text);
    snprintf(want, sizeof want, "\"name\": \"%s\"", op);
    int n = 0;
    for (const char *p = strstr(text, want); p; p = strstr(p + 1, want)) n++;
    free(text);
    return n;
}

/* The backward pass of x @ w computes only the gradients a tape takes: with x a plain
 * tensor (a batch), one matmul (w's); with x watched too, two; the values as the formula. */
START_TEST(matmul_gradient_only_for_what_is_taken) {
    const double xv[6] = {1, -2, 0.5, 3, 0.25, -1}, wv[6] = {0.5, -1, 2, 1.5, -0.25, 3};
    for (int watch_x = 0; watch_x < 2; watch_x++) {
        begin_test();
        tj_tensor *x = from_d(TJ_F64, TJ_SHAPE(2, 3), xv), *w = var_new(from_d(TJ_F64, TJ_SHAPE(3, 2), wv), "w");
        tj_tape *tape = tape_new(0);
        if (watch_x) tj_tape_watch(tape, x);
        tj_tensor *loss = sum_all(tj_matmul(x, w)), *src[2] = {w, x}, *g[2];
        char path[64];
        snprintf(path, sizeof path, "/tmp/tj_matmul_grad_%d.json", (int)getpid());
        ck_assert_int_eq(tj_profile_start(path), 0);
        ck_assert_int_eq(tj_tape_gradient(tape, loss, 1 + watch_x, src, g), 0);
        ck_assert_int_eq(tj_profile_stop(), 0);
        ck_assert_int_eq(profile_count(path, "matmul"), 1 + watch_x);
        remove(path);
        double dw[6], dx[6];                      /* d sum(x w)/dw[p,j] = sum_i x[i,p]; dx[i,p] = sum_j w[p,j] */
        for (int p = 0; p < 3; p++)
            for (int j = 0; j < 2; j++) dw[p * 2 + j] = xv[p] + xv[3 + p];
        for (int i = 0; i < 2; i++)
            for (int p = 0; p < 3; p++) dx[i * 3 + p] = wv[p * 2] + wv[p * 2 + 1];
        expect_close(g[0], TJ_F64, TJ_SHAPE(3, 2), dw, 1e-12, 0, "dw");
        if (watch_x) expect_close(g[1], TJ_F64, TJ_SHAPE(2, 3), dx, 1e-12, 0, "dx");
        tape_free(tape);
        var_free(w);
        end_test();
    }
}
END_TEST

/* d sum(x*x*w)/dx = 2xw, as the two equal products g*x added: the rule computes g*x once. */
START_TEST(square_gradient_is_twice_the_product) {
    begin_test();
    tj_tensor *x = from_d(TJ_F32, TJ_SHAPE(NS), sv), *w = from_d(TJ_F32, TJ_SHAPE(NS), sw), *g;
    tj_tape *tape = tape_new(0);
    tj_tape_watch(tape, x);
    ck_assert_int_eq(tj_tape_gradient(tape, sum_all(tj_mul(tj_mul(x, x), w)), 1, &x, &g), 0);
    tape_free(tape);
    const float *gd = tj_tensor_data(g);
    for (int i = 0; i < NS; i++) {
        float p = (float)sw[i] * (float)sv[i];
        ck_assert_msg(gd[i] == p + p, "element %d: %.9g, expected %.9g", i, gd[i], p + p);
    }
    end_test();
}
END_TEST

/* Gradients accumulate in place into buffers only the pass holds: the values are the sum in
 * order of the contributions, a persistent tape gives the same bits again, and a uniform
 * gradient added to in place is read as the new values afterwards. */
START_TEST(accumulation_in_place_keeps_values) {
    double xv[NS];
    for (int i = 0; i < NS; i++) xv[i] = fmax(-30, fmin(30, sv[i]));    /* exp stays finite */
    for (int k = 0; k < 2; k++) {
        tj_dtype dt = float_dtypes[k];
        begin_test();
        tj_tensor *x = from_d(dt, TJ_SHAPE(NS), xv), *w = from_d(dt, TJ_SHAPE(NS), sw), *g[2];
        tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);
        tj_tape_watch(tape, x);
        /* x's contributions in backward order: 1 (the sum of x: a uniform, added to in place
         * next), w, 3w, exp(x) */
        tj_tensor *y = sum_all(tj_exp(x));
        y = tj_add(y, sum_all(tj_mul(tj_mul(x, w), tj_scalar(3))));
        y = tj_add(y, sum_all(tj_mul(x, w)));
        y = tj_add(y, sum_all(x));
        ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g[0]), 0);
        ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g[1]), 0);
        tape_free(tape);
        ck_assert_msg(same_bits(g[0], g[1]), "a second pass of a persistent tape differs");
        double ref[NS], twice[NS];
        for (int i = 0; i < NS; i++) {
            ref[i] = exp(xv[i]) + 3 * sw[i] + 1 + sw[i];
            twice[i] = 2 * ref[i];
        }
        expect_close(g[0], dt, TJ_SHAPE(NS), ref, atol_of(dt), rtol_of(dt), "accumulated gradient");
        expect_close(tj_mul(g[0], tj_scalar(2)), dt, TJ_SHAPE(NS), twice, atol_of(dt), rtol_of(dt),
                     "twice the accumulated gradient");
        end_test();
    }
}
END_TEST

/* ---- composites ---------------------------------------------------------------------------- */

/* mean over axis 1 of (2,3): each input gets 1/3; over everything: 1/6. */
START_TEST(gradient_of_mean) {
    const double xv[6] = {1, 2, 3, 4, 5, 6};
    for (int k = 0; k < 2; k++) {
        tj_dtype dt = float_dtypes[k];
        begin_test();
        tj_tensor *x = from_d(dt, TJ_SHAPE(2, 3), xv), *g[2];
        tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);
        tj_tape_watch(tape, x);
        int axis = 1;
        tj_tensor *m1 = tj_mean(x, 1, &axis, false), *m = tj_mean(x, 0, NULL, false);
        const double rm1[2] = {2.0, 5.0}, rm = 3.5;
        expect_close(m1, dt, TJ_SHAPE(2), rm1, 0, rtol_of(dt), "mean axis 1");
        expect_close(m, dt, TJ_SHAPE(), &rm, 0, rtol_of(dt), "mean");
        ck_assert_int_eq(tj_tape_gradient(tape, m1, 1, &x, &g[0]), 0);
        ck_assert_int_eq(tj_tape_gradient(tape, m, 1, &x, &g[1]), 0);
        double r3[6], r6[6];
        for (int i = 0; i < 6; i++) { r3[i] = 1.0 / 3; r6[i] = 1.0 / 6; }
        expect_close(g[0], dt, TJ_SHAPE(2, 3), r3, 0, rtol_of(dt), "d mean(x, 1)/dx");
        expect_close(g[1], dt, TJ_SHAPE(2, 3), r6, 0, rtol_of(dt), "d mean(x)/dx");
        tape_free(tape);
        end_test();
    }
}
END_TEST

/* softmax and log_softmax (f64, axis 1 and axis 0) under random weights w:
 * f = sum(w * softmax(x)), against central differences of a double reference. */
enum { SR = 3, SC = 4 };
typedef struct { const double *w; int axis; bool log; } smx_ctx;

static double smx_ref(const double *x, const void *ctx_) {
    const smx_ctx *c = ctx_;
    double f = 0;
    int nout = c->axis == 1 ? SR : SC, len = c->axis == 1 ? SC : SR;
    for (int o = 0; o < nout; o++) {
        double m = -INFINITY, s = 0;
        for (int k = 0; k < len; k++) {
            int i = c->axis == 1 ? o * SC + k : k * SC + o;
            m = fmax(m, x[i]);
        }
        for (int k = 0; k < len; k++) {
            int i = c->axis == 1 ? o * SC + k : k * SC + o;
            s += exp(x[i] - m);
        }
        for (int k = 0; k < len; k++) {
            int i = c->axis == 1 ? o * SC + k : k * SC + o;
            double v = c->log ? (x[i] - m) - log(s) : exp(x[i] - m) / s;
            f += c->w[i] * v;
        }
    }
    return f;
}

START_TEST(gradient_of_softmax_and_log_softmax) {
    double xv[SR * SC], wv[SR * SC];
    for (int i = 0; i < SR * SC; i++) {
        xv[i] = 2.0 * sin(0.9 * i + 0.3);
        wv[i] = cos(1.3 * i) + 0.1 * i;
    }
    xv[5] = xv[6];                                   /* a tie for the max */
    for (int lg = 0; lg < 2; lg++)
        for (int axis = 0; axis < 2; axis++) {
            begin_test();
            tj_tensor *x = from_d(TJ_F64, TJ_SHAPE(SR, SC), xv), *w = from_d(TJ_F64, TJ_SHAPE(SR, SC), wv), *g;
            tj_tape *tape = tape_new(0);
            tj_tape_watch(tape, x);
            int ax = axis == 1 ? -1 : 0;               /* a negative axis too */
            tj_tensor *s = lg ? tj_log_softmax(x, ax) : tj_softmax(x, ax);
            tj_tensor *f = sum_all(tj_mul(w, s));
            smx_ctx c = {wv, axis == 1 ? 1 : 0, lg};
            double rf = smx_ref(xv, &c), fd[SR * SC];
            expect_close(f, TJ_F64, TJ_SHAPE(), &rf, 1e-12, 1e-12, lg ? "f(log_softmax)" : "f(softmax)");
            ck_assert_int_eq(tj_tape_gradient(tape, f, 1, &x, &g), 0);
            central_diff(smx_ref, &c, xv, SR * SC, 1e-6, fd);
            expect_close(g, TJ_F64, TJ_SHAPE(SR, SC), fd, 1e-7, 1e-6, lg ? "d log_softmax" : "d softmax");
            tape_free(tape);
            end_test();
        }
}
END_TEST

/* dropout in training: y = x * mask / (1 - rate); the mask is read back from y != 0, and
 * dy/dx = mask / (1 - rate). Not training: y = x and dy/dx = 1. */
START_TEST(gradient_of_dropout) {
    enum { N = 200 };
    const double rate = 0.25;
    double xv[N];
    for (int i = 0; i < N; i++) xv[i] = 0.5 + 0.01 * i;      /* nonzero everywhere */
    for (int k = 0; k < 2; k++) {
        tj_dtype dt = float_dtypes[k];
        begin_test();
        tj_seed(1234);
        tj_tensor *x = from_d(dt, TJ_SHAPE(N), xv), *g, *g_eval;
        tj_tape *tape = tape_new(TJ_TAPE_PERSISTENT);
        tj_tape_watch(tape, x);
        tj_tensor *y = tj_dropout(x, rate, true);
        tj_tensor *ye = tj_dropout(x, rate, false);
        ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &x, &g), 0);
        ck_assert_int_eq(tj_tape_gradient(tape, ye, 1, &x, &g_eval), 0);
        ck_assert_int_eq(tj_tensor_dtype(g), dt);
        int dropped = 0;
        double scale = dt == TJ_F32 ? (double)(float)(1.0 / (1.0 - rate)) : 1.0 / (1.0 - rate);
        for (int i = 0; i < N; i++) {
            double yi = tu_get(y, i), xi = tu_get(x, i);
            double mask = yi != 0 ? 1.0 : 0.0;
            dropped += yi == 0;
            ck_assert_msg(yi == 0 || fabs(yi - xi * scale) <= 1e-6 * fabs(yi), "y[%d] = %g, x = %g", i, yi, xi);
            ck_assert_msg(tu_get(g, i) == mask * scale, "dy/dx[%d] = %.17g, expected %.17g", i,
                          tu_get(g, i), mask * scale);
            ck_assert_msg(tu_get(g_eval, i) == 1.0, "eval dy/dx[%d] = %g", i, tu_get(g_eval, i));
        }
        /* about rate * N = 50 dropped; 5 standard deviations (sqrt(N r (1-r)) = 6.1) */
        ck_assert_msg(dropped > 50 - 31 && dropped < 50 + 31, "%d of %d dropped", dropped, N);
        tape_free(tape);
        end_test();
    }
}
END_TEST

Suite *tape_suite(void) {
    Suite *s = suite_create("tape");
    TCase *c = tcase_create("first_order");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, gradient_of_expression_matches_formula);
    tcase_add_test(c, gradient_undoes_broadcasting);
    tcase_add_test(c, gradient_of_promoted_scalar_is_f32);
    tcase_add_test(c, nonscalar_target_is_summed);
    tcase_add_test(c, unconnected_source_gets_zeros);
    tcase_add_test(c, variables_are_watched_plain_tensors_are_not);
    tcase_add_test(c, tapes_record_only_what_they_watch);
    tcase_add_test(c, gan_two_tapes_two_losses);
    tcase_add_test(c, gan_two_tapes_stopped_before_gradients);
    suite_add_tcase(s, c);

    c = tcase_create("persistence");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, persistent_tape_repeats_gradients);
    tcase_add_test(c, nonpersistent_tape_second_call_fails);
    suite_add_tcase(s, c);

    c = tcase_create("higher_order");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, second_derivative_of_tanh);
    tcase_add_test(c, second_derivative_of_cube);
    tcase_add_test(c, gradient_penalty_matches_finite_differences);
    suite_add_tcase(s, c);

    c = tcase_create("not_recorded");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, tape_stop_stops_recording);
    tcase_add_test(c, no_grad_regions_nest);
    tcase_add_test(c, stop_gradient_blocks);
    suite_add_tcase(s, c);

    c = tcase_create("lifetimes");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, records_outlive_their_scope);
    tcase_add_test(c, assign_after_forward_keeps_recorded_values);
    tcase_add_test(c, gradient_through_identity_cast);
    tcase_add_test(c, reused_slot_starts_clean);
    tcase_add_test(c, freed_tapes_release_their_records);
    suite_add_tcase(s, c);

    c = tcase_create("backward_lifetimes");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, backward_frees_its_temporaries);
    tcase_add_test(c, gradients_belong_to_the_callers_scope);
    tcase_add_test(c, gradients_of_target_and_intermediate_sources);
    tcase_add_test(c, recording_tapes_keep_what_a_pass_made);
    suite_add_tcase(s, c);

    c = tcase_create("eager_shortcuts");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, fused_tanh_and_sigmoid_gradients_are_the_ops_bits);
    tcase_add_test(c, square_gradient_is_twice_the_product);
    tcase_add_test(c, matmul_gradient_only_for_what_is_taken);
    tcase_add_test(c, accumulation_in_place_keeps_values);
    suite_add_tcase(s, c);

    c = tcase_create("errors");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, at_most_32_tapes);
    tcase_add_test(c, tape_argument_errors);
    suite_add_tcase(s, c);

    c = tcase_create("composites");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, gradient_of_mean);
    tcase_add_test(c, gradient_of_softmax_and_log_softmax);
    tcase_add_test(c, gradient_of_dropout);
    suite_add_tcase(s, c);
    return s;
}
