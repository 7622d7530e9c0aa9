/* check_optim.c: the optimizers against double-precision references written here from the
 * Keras formulas (float64 variables to 1e-12, float32 to f32 tolerance), single steps whose
 * results are derived by hand (Keras's own test values), the schedules and the cosine
 * polynomial's error, compiled == eager bit for bit over 50 training steps (variables and
 * every slot), slots for a variable seen later, resuming from copied optimizer variables,
 * every error a user can cause, and a failing allocation at every point of a program. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *optim_suite(void);

#define PI 3.14159265358979323846   /* M_PI is not C11 */

static void setup(void) { tj_scope_begin(); tj_clear_error(); }
static void teardown(void) { tj_set_mode(TJ_MODE_JIT); tj_scope_end(); tj_clear_error(); }

/* ---- configurations and the double reference ------------------------------------------ */

enum { SGD, ADAM, RMSPROP, ADAGRAD };
enum { CONSTANT, EXPONENTIAL, COSINE };

typedef struct {
    const char *what;
    int kind;
    double lr, a, b, c;       /* sgd: momentum; adam: b1 b2 eps; rmsprop: rho momentum eps; adagrad: init eps */
    bool nesterov;
    int sched;
    double decay_steps, rate_or_alpha;
    bool staircase;
} cfg;

static tj_optimizer *make(const cfg *c) {
    tj_optimizer *o = NULL;
    switch (c->kind) {
    case SGD: o = tj_sgd(c->lr, c->a, c->nesterov); break;
    case ADAM: o = tj_adam(c->lr, c->a, c->b, c->c); break;
    case RMSPROP: o = tj_rmsprop(c->lr, c->a, c->b, c->c); break;
    case ADAGRAD: o = tj_adagrad(c->lr, c->a, c->b); break;
    }
    ck_assert_msg(o != NULL, "%s: %s", c->what, tj_last_error());
    if (c->sched == EXPONENTIAL)
        ck_assert_int_eq(tj_optimizer_exponential_decay(o, c->decay_steps, c->rate_or_alpha, c->staircase), 0);
    if (c->sched == COSINE) ck_assert_int_eq(tj_optimizer_cosine_decay(o, c->decay_steps, c->rate_or_alpha), 0);
    return o;
}

/* The base rate as the optimizer holds it: a float32 variable. */
static double lr32(double lr) { return (double)(float)lr; }

/* The schedule at step count t (applies before this one), as Keras's schedules. */
static double ref_lr(const cfg *c, double t) {
    double lr = lr32(c->lr);
    if (c->sched == EXPONENTIAL) {
        double p = t / c->decay_steps;
        return lr * pow(c->rate_or_alpha, c->staircase ? floor(p) : p);
    }
    if (c->sched == COSINE) {
        double u = fmin(t, c->decay_steps) / c->decay_steps, alpha = c->rate_or_alpha;
        return lr * ((1 - alpha) * 0.5 * (1 + cos(PI * u)) + alpha);
    }
    return lr;
}

#define MAXN 8
typedef struct { double w[MAXN], s0[MAXN], s1[MAXN]; int t; } ref_state;

static void ref_init(const cfg *c, ref_state *r, const double *w0, int n) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < n; i++) {
        r->w[i] = w0[i];
        if (c->kind == ADAGRAD) r->s0[i] = c->a;
    }
}

/* One update in the textbook forms (Kingma-Ba Adam with the bias correction folded into
 * the rate, as TF1's AdamOptimizer; Keras SGD, RMSprop, Adagrad). */
static void ref_step(const cfg *c, ref_state *r, const double *g, int n) {
    double lr = ref_lr(c, r->t);
    r->t++;
    for (int i = 0; i < n; i++) {
        double *w = &r->w[i], *s0 = &r->s0[i], *s1 = &r->s1[i];
        switch (c->kind) {
        case SGD:
            if (c->a == 0) { *w -= lr * g[i]; break; }
            *s0 = c->a * *s0 - lr * g[i];
            *w += c->nesterov ? c->a * *s0 - lr * g[i] : *s0;
            break;
        case ADAM: {
            *s0 = c->a * *s0 + (1 - c->a) * g[i];
            *s1 = c->b * *s1 + (1 - c->b) * g[i] * g[i];
            double lrt = lr * sqrt(1 - pow(c->b, r->t)) / (1 - pow(c->a, r->t));
            *w -= lrt * *s0 / (sqrt(*s1) + c->c);
            break;
        }
        case RMSPROP: {
            *s0 = c->a * *s0 + (1 - c->a) * g[i] * g[i];
            double inc = lr * g[i] / sqrt(*s0 + c->c);
            if (c->b != 0) { *s1 = c->b * *s1 + inc; *w -= *s1; }
            else *w -= inc;
            break;
        }
        case ADAGRAD:
            *s0 += g[i] * g[i];
            *w -= lr * g[i] / sqrt(*s0 + c->b);
            break;
        }
    }
}

static const cfg configs[] = {
    {"sgd", SGD, 0.1, 0, 0, 0, false, CONSTANT, 0, 0, false},
    {"sgd momentum", SGD, 0.1, 0.9, 0, 0, false, CONSTANT, 0, 0, false},
    {"sgd nesterov", SGD, 0.1, 0.9, 0, 0, true, CONSTANT, 0, 0, false},
    {"adam (TF1 defaults but lr)", ADAM, 0.1, 0.9, 0.999, 1e-8, false, CONSTANT, 0, 0, false},
    {"adam (large epsilon)", ADAM, 0.05, 0.8, 0.95, 0.1, false, CONSTANT, 0, 0, false},
    {"rmsprop", RMSPROP, 0.01, 0.9, 0, 1e-7, false, CONSTANT, 0, 0, false},
    {"rmsprop momentum", RMSPROP, 0.01, 0.8, 0.5, 0.1, false, CONSTANT, 0, 0, false},
    {"adagrad", ADAGRAD, 0.1, 0.1, 1e-7, 0, false, CONSTANT, 0, 0, false},
    {"adagrad (large epsilon)", ADAGRAD, 0.1, 0.5, 0.2, 0, false, CONSTANT, 0, 0, false},
    {"adam, exponential staircase", ADAM, 0.1, 0.9, 0.999, 1e-8, false, EXPONENTIAL, 2, 0.5, true},
    {"sgd momentum, exponential", SGD, 0.1, 0.9, 0, 0, false, EXPONENTIAL, 3, 0.7, false},
    {"rmsprop momentum, cosine", RMSPROP, 0.01, 0.9, 0.5, 1e-7, false, COSINE, 4, 0.2, false},
    {"sgd nesterov, cosine", SGD, 0.1, 0.9, 0, 0, true, COSINE, 3, 0.1, false},
};
#define NCONFIGS ((int)(sizeof configs / sizeof configs[0]))

static tj_tensor *tensor_of(tj_dtype dt, tj_shape s, const double *v, int n) {
    float f[MAXN];
    for (int i = 0; i < n; i++) f[i] = (float)v[i];
    return tj_tensor_from(dt, s, dt == TJ_F32 ? (const void *)f : (const void *)v);
}

/* ---- 5 steps on a small problem against the reference ---------------------------------- */

/* loss = sum(c * (w - target)^2), w (2, 3); dloss/dw = 2 c (w - target) */
static const double q_c[6] = {0.5, 1.0, 2.0, 0.25, 3.0, 1.5};
static const double q_target[6] = {1.0, -2.0, 0.5, 3.0, -1.0, 0.25};
static const double q_w0[6] = {0.3, 0.7, -1.2, 2.0, 0.1, -0.4};

static void five_steps(const cfg *c, tj_dtype dt, double tol) {
    tj_scope_begin();
    tj_tensor *w = tj_variable(tensor_of(dt, TJ_SHAPE(2, 3), q_w0, 6), "w");
    tj_tensor *cc = tensor_of(dt, TJ_SHAPE(2, 3), q_c, 6), *target = tensor_of(dt, TJ_SHAPE(2, 3), q_target, 6);
    tj_optimizer *o = make(c);
    ref_state r;
    ref_init(c, &r, q_w0, 6);
    for (int s = 0; s < 5; s++) {
        tj_scope_begin();
        tj_tape *tape = tj_tape_begin(0);
        tj_tensor *d = tj_sub(w, target);
        tj_tensor *loss = tj_sum(tj_mul(cc, tj_mul(d, d)), 0, NULL, false), *g;
        ck_assert_int_eq(tj_tape_gradient(tape, loss, 1, &w, &g), 0);
        tj_tape_free(tape);
        ck_assert_msg(tj_optimizer_apply(o, 1, &g, &w) == 0, "%s: %s", c->what, tj_last_error());
        double rg[6];
        for (int i = 0; i < 6; i++) rg[i] = 2 * q_c[i] * (r.w[i] - q_target[i]);
        ref_step(c, &r, rg, 6);
        for (int i = 0; i < 6; i++)
            ck_assert_msg(fabs(tu_get(w, i) - r.w[i]) <= tol * (1 + fabs(r.w[i])),
                          "%s, %s, step %d: w[%d] = %.17g, reference %.17g", c->what, tj_dtype_name(dt),
                          s + 1, i, tu_get(w, i), r.w[i]);
        tj_scope_end();
    }
    /* the slots too: named after the variable, in the reference's values */
    tj_tensor *vars[4];
    int nv = tj_optimizer_variables(o, 4, vars);
    ck_assert_int_eq((int)tj_item(vars[0]), 5);
    for (int k = 2; k < nv; k++) {
        const double *ref = k == 2 ? r.s0 : r.s1;
        for (int i = 0; i < 6; i++)
            ck_assert_msg(fabs(tu_get(vars[k], i) - ref[i]) <= tol * (1 + fabs(ref[i])),
                          "%s: slot %s[%d] = %.17g, reference %.17g", c->what, tj_variable_name(vars[k]), i,
                          tu_get(vars[k], i), ref[i]);
    }
    tj_optimizer_free(o);
    tj_variable_free(w);
    tj_scope_end();
    ck_assert_int_eq(tj_error_code(), 0);
}

START_TEST(test_five_steps_float64) { five_steps(&configs[_i], TJ_F64, 1e-12); }
END_TEST

START_TEST(test_five_steps_float32) { five_steps(&configs[_i], TJ_F32, 3e-6); }
END_TEST

/* ---- single steps derived by hand (Keras's own test: x = [1,2,3,4], g = [1,6,7,2], lr 0.5) -- */

static const double hx[4] = {1, 2, 3, 4}, hg[4] = {1, 6, 7, 2};

/* applies o `steps` times with the constant gradient hg to a fresh x; x stays in scope */
static tj_tensor *hand_run(tj_optimizer *o, int steps) {
    tj_tensor *x = tj_variable(tensor_of(TJ_F32, TJ_SHAPE(4), hx, 4), "x");
    tj_tensor *g = tensor_of(TJ_F32, TJ_SHAPE(4), hg, 4);
    for (int s = 0; s < steps; s++) ck_assert_int_eq(tj_optimizer_apply(o, 1, &g, &x), 0);
    tj_tensor *copy = tj_tensor_from(TJ_F32, TJ_SHAPE(4), tj_tensor_data(x));
    tj_variable_free(x);
    tj_optimizer_free(o);
    return copy;
}

static void expect4(tj_tensor *x, const double *want, double tol, const char *what) {
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fabs(tu_get(x, i) - want[i]) <= tol, "%s: x[%d] = %.9g, expected %.9g", what, i,
                      tu_get(x, i), want[i]);
}

START_TEST(test_known_single_steps) {
    /* SGD: x - 0.5 g, exact */
    expect4(hand_run(tj_sgd(0.5, 0, false), 1), (double[]){0.5, -1, -0.5, 3}, 0, "sgd");
    /* momentum 0.9, constant g: v1 = -lr g, v2 = -1.9 lr g, so x2 = x - 2.9 lr g; Nesterov:
     * x1 = x + 0.9 v1 - lr g = x - 1.9 lr g, x2 = x1 + 0.9 v2 - lr g = x - 4.61 lr g */
    double mom[4], nes[4];
    for (int i = 0; i < 4; i++) { mom[i] = hx[i] - 2.9 * 0.5 * hg[i]; nes[i] = hx[i] - 4.61 * 0.5 * hg[i]; }
    expect4(hand_run(tj_sgd(0.5, 0.9, false), 2), mom, 2e-6, "sgd momentum, 2 steps");
    expect4(hand_run(tj_sgd(0.5, 0.9, true), 2), nes, 4e-6, "sgd nesterov, 2 steps");
    /* Adam, constant g: m_t = (1 - b1^t) g, v_t = (1 - b2^t) g^2, so each step moves
     * lr g / (|g| + eps / sqrt(1 - b2^t)), about lr: Keras expects [0.5, 1.5, 2.5, 3.5] */
    double adam1[4], adam3[4];
    for (int i = 0; i < 4; i++) {
        adam1[i] = hx[i] - 0.5 * hg[i] / (fabs(hg[i]) + 1e-7 / sqrt(1 - 0.999));
        adam3[i] = hx[i];
        for (int t = 1; t <= 3; t++) adam3[i] -= 0.5 * hg[i] / (fabs(hg[i]) + 1e-7 / sqrt(1 - pow(0.999, t)));
    }
    tj_tensor *a1 = hand_run(tj_adam(0.5, 0.9, 0.999, 1e-7), 1);
    expect4(a1, adam1, 1e-6, "adam");
    expect4(a1, (double[]){0.5, 1.5, 2.5, 3.5}, 1e-5, "adam (Keras)");
    expect4(hand_run(tj_adam(0.5, 0.9, 0.999, 1e-7), 3), adam3, 2e-6, "adam, 3 steps");
    /* RMSprop: r = 0.1 g^2, x - lr g / sqrt(0.1 g^2 + eps) ~ x - 1.5811 sign(g) */
    double rms[4], ada[4];
    for (int i = 0; i < 4; i++) {
        rms[i] = hx[i] - 0.5 * hg[i] / sqrt(0.1 * hg[i] * hg[i] + 1e-7);
        ada[i] = hx[i] - 0.5 * hg[i] / sqrt(0.1 + hg[i] * hg[i] + 1e-7);
    }
    tj_tensor *r1 = hand_run(tj_rmsprop(0.5, 0.9, 0, 1e-7), 1);
    expect4(r1, rms, 1e-6, "rmsprop");
    expect4(r1, (double[]){-0.5811, 0.4189, 1.4189, 2.4189}, 1e-4, "rmsprop (Keras)");
    /* Adagrad: a = 0.1 + g^2, x - lr g / sqrt(a + eps) */
    tj_tensor *d1 = hand_run(tj_adagrad(0.5, 0.1, 1e-7), 1);
    expect4(d1, ada, 1e-6, "adagrad");
    expect4(d1, (double[]){0.5233, 1.5007, 2.5005, 3.5061}, 1e-4, "adagrad (Keras)");
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- schedules ---------------------------------------------------------------------------- */

static double lr_at(tj_optimizer *o, double t) {
    ck_assert_int_eq(tj_assign(tj_optimizer_step(o), tj_scalar(t)), 0);
    tj_tensor *lr = tj_optimizer_learning_rate(o);
    ck_assert_msg(lr != NULL, "%s", tj_last_error());
    ck_assert_int_eq(tj_tensor_dtype(lr), TJ_F64);
    return tj_item(lr);
}

static void check_schedule(const cfg *c, const double *ts, int n) {
    tj_optimizer *o = make(c);
    for (int i = 0; i < n; i++) {
        double got = lr_at(o, ts[i]), want = ref_lr(c, ts[i]);
        ck_assert_msg(fabs(got - want) <= 1e-15 * want, "%s: lr at step %g is %.17g, expected %.17g", c->what,
                      ts[i], got, want);
    }
    tj_optimizer_free(o);
}

START_TEST(test_schedules) {
    const double ts[] = {0, 1, 10, 100, 9, 15, 49, 50, 51, 150, 1e6};
    int n = (int)(sizeof ts / sizeof ts[0]);
    check_schedule(&(cfg){"constant", SGD, 0.1, 0, 0, 0, false, CONSTANT, 0, 0, false}, ts, n);
    check_schedule(&(cfg){"exponential", SGD, 0.1, 0, 0, 0, false, EXPONENTIAL, 10, 0.5, false}, ts, n);
    check_schedule(&(cfg){"staircase", SGD, 0.1, 0, 0, 0, false, EXPONENTIAL, 10, 0.5, true}, ts, n);
    check_schedule(&(cfg){"cosine", SGD, 0.1, 0, 0, 0, false, COSINE, 100, 0.1, false}, ts, n);
    /* spot values computed by hand */
    tj_optimizer *o = tj_sgd(0.5, 0, false);
    ck_assert_int_eq(tj_optimizer_exponential_decay(o, 10, 0.5, true), 0);
    ck_assert(lr_at(o, 0) == 0.5 && lr_at(o, 9) == 0.5 && lr_at(o, 10) == 0.25 && lr_at(o, 29) == 0.125);
    ck_assert_int_eq(tj_optimizer_cosine_decay(o, 100, 0.2), 0);    /* replaces the schedule */
    ck_assert(fabs(lr_at(o, 50) - 0.5 * (0.8 * 0.5 + 0.2)) < 1e-15);
    ck_assert(fabs(lr_at(o, 100) - 0.5 * 0.2) < 1e-15 && fabs(lr_at(o, 1000) - 0.1) < 1e-15);
    tj_optimizer_free(o);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* the rate an apply uses is the schedule at the step count before it (Keras): x' = x - lr_t */
START_TEST(test_apply_uses_the_step_before_its_increment) {
    tj_optimizer *o = tj_sgd(1.0, 0, false);
    ck_assert_int_eq(tj_optimizer_exponential_decay(o, 1, 0.5, false), 0);
    tj_tensor *x = tj_variable(tj_scalar(0), "x"), *g = tj_scalar(1);
    for (int s = 0; s < 3; s++) ck_assert_int_eq(tj_optimizer_apply(o, 1, &g, &x), 0);
    ck_assert(tj_item(x) == -1.75);                     /* 1 + 0.5 + 0.25 */
    ck_assert(tj_item(tj_optimizer_step(o)) == 3);
    ck_assert(tj_item(tj_optimizer_learning_rate(o)) == 0.125);
    tj_variable_free(x);
    tj_optimizer_free(o);
}
END_TEST

/* cos(pi u) = 2 lr(t) / lr - 1 with alpha 0: its error over 10001 points of [0, 1] */
START_TEST(test_cosine_polynomial_error) {
    const int D = 10000;
    tj_optimizer *o = tj_sgd(1.0, 0, false);
    ck_assert_int_eq(tj_optimizer_cosine_decay(o, D, 0), 0);
    double worst = 0;
    int at = 0;
    for (int t = 0; t <= D; t++) {
        tj_scope_begin();
        double err = fabs((2 * lr_at(o, t) - 1) - cos(PI * t / D));
        if (err > worst) { worst = err; at = t; }
        tj_scope_end();
    }
    tj_optimizer_free(o);
    /* the polynomial's truncation bound is 2.6e-16; doubled by 2 lr - 1, plus rounding */
    ck_assert_msg(worst < 1e-6, "cos error %.3g at t = %d", worst, at);
    ck_assert_msg(worst < 2e-15, "cos error %.3g at t = %d", worst, at);
}
END_TEST

/* ---- compiled == eager ------------------------------------------------------------------ */

typedef struct { tj_tensor *w, *b; tj_optimizer *o; } model;

/* loss = mean((x @ w + b - y)^2); tape gradient; the optimizer's update */
static int train_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    model *m = user;
    (void)n_in; (void)n_out;
    tj_tape *tape = tj_tape_begin(0);
    tj_tensor *d = tj_sub(tj_add(tj_matmul(in[0], m->w), m->b), in[1]);
    tj_tensor *loss = tj_mean(tj_mul(d, d), 0, NULL, false);
    tj_tensor *params[2] = {m->w, m->b}, *grads[2];
    int rc = tj_tape_gradient(tape, loss, 2, params, grads);
    tj_tape_free(tape);
    if (rc) return rc;
    out[0] = loss;
    return tj_optimizer_apply(m->o, 2, grads, params);
}

#define MAXV 8
typedef struct { int n; char name[MAXV][48]; tj_tensor *val[MAXV]; } snapshot;

/* copies of the model's and the optimizer's variables, in the caller's scope */
static void take(snapshot *s, const model *m) {
    tj_tensor *v[MAXV];
    int n = tj_optimizer_variables(m->o, MAXV - 2, v);
    ck_assert_int_le(n, MAXV - 2);
    v[n++] = m->w;
    v[n++] = m->b;
    s->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(s->name[i], sizeof s->name[i], "%s", tj_variable_name(v[i]));
        s->val[i] = tj_tensor_from(tj_tensor_dtype(v[i]), tj_tensor_shape(v[i]), tj_tensor_data(v[i]));
    }
}

static void model_init(model *m, const cfg *c) {
    float w0[6], b0[2];
    for (int i = 0; i < 6; i++) w0[i] = (float)(0.1 * (i - 2.5));
    b0[0] = 0.05f;
    b0[1] = -0.1f;
    m->w = tj_variable(tj_tensor_from(TJ_F32, TJ_SHAPE(3, 2), w0), "dense/kernel");
    m->b = tj_variable(tj_tensor_from(TJ_F32, TJ_SHAPE(2), b0), "dense/bias");
    m->o = make(c);
}

static void model_free(model *m) {
    tj_optimizer_free(m->o);
    tj_variable_free(m->w);
    tj_variable_free(m->b);
}

static void train(const cfg *c, tj_mode mode, int steps, snapshot *s) {
    float x[24], y[16];
    for (int i = 0; i < 24; i++) x[i] = (float)sin(0.7 * i + 0.3);
    for (int i = 0; i < 16; i++) y[i] = (float)cos(1.3 * i) * 0.5f;
    tj_tensor *in[2] = {tj_tensor_from(TJ_F32, TJ_SHAPE(8, 3), x), tj_tensor_from(TJ_F32, TJ_SHAPE(8, 2), y)};
    model m;
    model_init(&m, c);
    tj_set_mode(mode);
    tj_function *f = tj_function_new("optim_step", train_step, &m);
    for (int k = 0; k < steps; k++) {
        tj_scope_begin();
        tj_tensor *loss;
        ck_assert_msg(tj_function_call(f, 2, in, 1, &loss) == 0, "%s, mode %d, step %d: %s", c->what, (int)mode,
                      k, tj_last_error());
        ck_assert(isfinite(tj_item(loss)));
        tj_scope_end();
    }
#ifdef TJ_HAVE_JIT
    if (mode == TJ_MODE_JIT) ck_assert_str_eq(tj_function_last_path(f), "compiled");
#endif
    tj_function_free(f);
    tj_set_mode(TJ_MODE_EAGER);
    take(s, &m);
    model_free(&m);
}

static bool same_bits(tj_tensor *a, tj_tensor *b) {
    if (tj_tensor_dtype(a) != tj_tensor_dtype(b) || tj_tensor_numel(a) != tj_tensor_numel(b)) return false;
    size_t es = tj_tensor_dtype(a) == TJ_F64 ? 8 : 4;
    return memcmp(tj_tensor_data(a), tj_tensor_data(b), es * (size_t)tj_tensor_numel(a)) == 0;
}

START_TEST(test_compiled_equals_eager) {
    const cfg *c = &configs[_i];
    snapshot e, j, k;
    train(c, TJ_MODE_EAGER, 50, &e);
    train(c, TJ_MODE_JIT, 50, &j);
    ck_assert_int_eq(e.n, j.n);
    for (int i = 0; i < e.n; i++) {
        ck_assert_str_eq(e.name[i], j.name[i]);
        ck_assert_msg(same_bits(e.val[i], j.val[i]), "%s: %s differs after 50 steps", c->what, e.name[i]);
    }
    ck_assert(tj_item(e.val[0]) == 50);
    ck_assert(tu_get(e.val[e.n - 2], 0) != (float)(0.1 * -2.5));    /* training moved the model */
    train(c, TJ_MODE_CHECK, 5, &k);       /* check mode compares every state update itself */
}
END_TEST

/* ---- slots, names, resuming ------------------------------------------------------------- */

START_TEST(test_slots_for_a_variable_seen_later) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8, lr = 0.1;
    tj_optimizer *o = tj_adam(lr, b1, b2, eps);
    tj_tensor *w = tj_variable(tj_full(TJ_F32, TJ_SHAPE(3), 1), "w");
    tj_tensor *b = tj_variable(tj_full(TJ_F64, TJ_SHAPE(2), 2), "b");
    tj_tensor *gw = tj_full(TJ_F32, TJ_SHAPE(3), 0.5);
    tj_tensor *gb = tj_tensor_from(TJ_F64, TJ_SHAPE(2), (double[]){0.25, -4});
    ck_assert_int_eq(tj_optimizer_variables(o, 0, NULL), 2);
    ck_assert_int_eq(tj_optimizer_apply(o, 1, &gw, &w), 0);
    ck_assert_int_eq(tj_optimizer_apply(o, 1, &gw, &w), 0);
    ck_assert_int_eq(tj_optimizer_variables(o, 0, NULL), 4);
    tj_tensor *g2[2] = {gb, gw}, *v2[2] = {b, w};       /* b first: order of first use decides */
    ck_assert_int_eq(tj_optimizer_apply(o, 2, g2, v2), 0);
    tj_tensor *vars[8];
    const char *names[6] = {"step", "learning_rate", "m/w", "v/w", "m/b", "v/b"};
    ck_assert_int_eq(tj_optimizer_variables(o, 8, vars), 6);
    for (int i = 0; i < 6; i++) ck_assert_str_eq(tj_variable_name(vars[i]), names[i]);
    ck_assert(tj_item(vars[0]) == 3);
    ck_assert(tj_item(vars[1]) == (float)lr);
    ck_assert_int_eq(tj_tensor_dtype(vars[4]), TJ_F64);
    ck_assert_int_eq(tj_tensor_shape(vars[5]).dim[0], 2);
    /* b's first update uses the global step t = 3 for its bias correction */
    double lrt = lr32(lr) * sqrt(1 - pow(b2, 3)) / (1 - pow(b1, 3));
    for (int i = 0; i < 2; i++) {
        double g = tu_get(gb, i), m = (1 - b1) * g, v = (1 - b2) * g * g;
        double want = 2 - lrt * m / (sqrt(v) + eps);
        ck_assert_msg(fabs(tu_get(b, i) - want) < 1e-14, "b[%d] = %.17g, expected %.17g", i, tu_get(b, i), want);
        ck_assert(fabs(tu_get(vars[4], i) - m) < 1e-16 && fabs(tu_get(vars[5], i) - v) < 1e-16);
    }
    /* only prefixes of the list with cap */
    tj_tensor *two[2];
    ck_assert_int_eq(tj_optimizer_variables(o, 2, two), 6);
    ck_assert_ptr_eq(two[1], vars[1]);
    ck_assert_ptr_eq(tj_optimizer_step(o), vars[0]);
    tj_optimizer_free(o);
    /* plain SGD has no slots; RMSprop with momentum and Adagrad name theirs; unnamed
     * variables get their position */
    tj_tensor *u = tj_variable(tj_full(TJ_F32, TJ_SHAPE(1), 1), NULL);
    tj_tensor *gu = tj_full(TJ_F32, TJ_SHAPE(1), 1);
    tj_tensor *vs[2] = {w, u}, *gs[2] = {gw, gu};
    struct { tj_optimizer *o; int n; const char *names[4]; } cases[] = {
        {tj_sgd(0.1, 0, true), 2, {NULL}},
        {tj_sgd(0.1, 0.5, false), 4, {"momentum/w", "momentum/#1"}},
        {tj_rmsprop(0.1, 0.9, 0.5, 1e-7), 6, {"rms/w", "momentum/w", "rms/#1", "momentum/#1"}},
        {tj_rmsprop(0.1, 0.9, 0, 1e-7), 4, {"rms/w", "rms/#1"}},
        {tj_adagrad(0.1, 0.1, 1e-7), 4, {"accumulator/w", "accumulator/#1"}},
    };
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(tj_optimizer_apply(cases[k].o, 2, gs, vs), 0);
        ck_assert_int_eq(tj_optimizer_variables(cases[k].o, 8, vars), cases[k].n);
        for (int i = 2; i < cases[k].n; i++) ck_assert_str_eq(tj_variable_name(vars[i]), cases[k].names[i - 2]);
        tj_optimizer_free(cases[k].o);
    }
    /* Adagrad's accumulator starts at initial_accumulator */
    tj_optimizer *ag = tj_adagrad(0.1, 0.3, 1e-7);
    ck_assert_int_eq(tj_optimizer_build(ag, 1, &w), 0);
    ck_assert_int_eq(tj_optimizer_build(ag, 1, &w), 0);          /* idempotent */
    ck_assert_int_eq(tj_optimizer_variables(ag, 8, vars), 3);
    ck_assert(tu_get(vars[2], 0) == (float)0.3 && tj_item(vars[0]) == 0);
    tj_optimizer_free(ag);
    tj_variable_free(u);
    tj_variable_free(w);
    tj_variable_free(b);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* eager steps of train_step without a tj_function */
static void eager_steps(model *m, int steps) {
    float x[24], y[16];
    for (int i = 0; i < 24; i++) x[i] = (float)sin(0.7 * i + 0.3);
    for (int i = 0; i < 16; i++) y[i] = (float)cos(1.3 * i) * 0.5f;
    tj_scope_begin();
    tj_tensor *in[2] = {tj_tensor_from(TJ_F32, TJ_SHAPE(8, 3), x), tj_tensor_from(TJ_F32, TJ_SHAPE(8, 2), y)};
    for (int k = 0; k < steps; k++) {
        tj_scope_begin();
        tj_tensor *loss;
        ck_assert_msg(train_step(m, 2, in, 1, &loss) == 0, "%s", tj_last_error());
        tj_scope_end();
    }
    tj_scope_end();
}

/* A fresh optimizer, built and given the saved variables by name (as a checkpoint restore
 * does), continues exactly as the original. */
START_TEST(test_resume_from_saved_variables) {
    const cfg *c = &configs[_i];
    model a, b;
    model_init(&a, c);
    eager_steps(&a, 6);
    snapshot saved;
    take(&saved, &a);
    model_init(&b, c);
    tj_tensor *params[2] = {b.w, b.b};
    ck_assert_int_eq(tj_optimizer_build(b.o, 2, params), 0);
    tj_tensor *vars[MAXV];
    int n = tj_optimizer_variables(b.o, MAXV - 2, vars);
    vars[n++] = b.w;
    vars[n++] = b.b;
    ck_assert_int_eq(n, saved.n);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(tj_variable_name(vars[i]), saved.name[i]);
        ck_assert_int_eq(tj_assign(vars[i], saved.val[i]), 0);
    }
    eager_steps(&a, 4);
    eager_steps(&b, 4);
    snapshot sa, sb;
    take(&sa, &a);
    take(&sb, &b);
    for (int i = 0; i < sa.n; i++)
        ck_assert_msg(same_bits(sa.val[i], sb.val[i]), "%s: %s differs after resuming", c->what, sa.name[i]);
    ck_assert(tj_item(sa.val[0]) == 10);
    model_free(&a);
    model_free(&b);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------------- */

START_TEST(test_bad_hyperparameters) {
    ck_assert_ptr_null(tj_sgd(0, 0, false));
    ck_assert_error(TJ_ERR_ARG, "sgd: learning rate 0 must be positive and finite");
    ck_assert_ptr_null(tj_sgd(NAN, 0, false));
    ck_assert_error(TJ_ERR_ARG, "sgd: learning rate nan");
    ck_assert_ptr_null(tj_adam(INFINITY, 0.9, 0.999, 1e-8));
    ck_assert_error(TJ_ERR_ARG, "adam: learning rate inf");
    ck_assert_ptr_null(tj_adam(1e-60, 0.9, 0.999, 1e-8));         /* 0 in float32 */
    ck_assert_error(TJ_ERR_ARG, "adam: learning rate 1e-60 must be positive and finite (in float32)");
    ck_assert_ptr_null(tj_sgd(0.1, -0.1, false));
    ck_assert_error(TJ_ERR_ARG, "sgd: momentum -0.1 is outside [0, 1]");
    ck_assert_ptr_null(tj_sgd(0.1, 1.5, true));
    ck_assert_error(TJ_ERR_ARG, "sgd: momentum 1.5 is outside [0, 1]");
    ck_assert_ptr_null(tj_adam(0.1, 1, 0.999, 1e-8));
    ck_assert_error(TJ_ERR_ARG, "adam: beta1 1 is outside [0, 1)");
    ck_assert_ptr_null(tj_adam(0.1, 0.9, -0.5, 1e-8));
    ck_assert_error(TJ_ERR_ARG, "adam: beta2 -0.5 is outside [0, 1)");
    ck_assert_ptr_null(tj_adam(0.1, 0.9, NAN, 1e-8));
    ck_assert_error(TJ_ERR_ARG, "adam: beta2 nan is outside [0, 1)");
    ck_assert_ptr_null(tj_adam(0.1, 0.9, 0.999, -1e-8));
    ck_assert_error(TJ_ERR_ARG, "adam: epsilon -1e-08 must be >= 0 and finite");
    ck_assert_ptr_null(tj_rmsprop(0.1, 1, 0, 1e-7));
    ck_assert_error(TJ_ERR_ARG, "rmsprop: rho 1 is outside [0, 1)");
    ck_assert_ptr_null(tj_rmsprop(0.1, 0.9, 2, 1e-7));
    ck_assert_error(TJ_ERR_ARG, "rmsprop: momentum 2 is outside [0, 1]");
    ck_assert_ptr_null(tj_rmsprop(0.1, 0.9, 0, INFINITY));
    ck_assert_error(TJ_ERR_ARG, "rmsprop: epsilon inf must be >= 0 and finite");
    ck_assert_ptr_null(tj_adagrad(0.1, -1, 1e-7));
    ck_assert_error(TJ_ERR_ARG, "adagrad: initial_accumulator -1 must be >= 0 and finite");
    ck_assert_ptr_null(tj_adagrad(-2, 0.1, 1e-7));
    ck_assert_error(TJ_ERR_ARG, "adagrad: learning rate -2");
    /* the edges that are allowed */
    tj_optimizer *ok[4] = {tj_sgd(0.1, 1, true), tj_adam(0.1, 0, 0, 0), tj_rmsprop(1e-3, 0, 1, 0),
                           tj_adagrad(0.1, 0, 0)};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(ok[i] != NULL, "%d: %s", i, tj_last_error());
        tj_optimizer_free(ok[i]);
    }
    /* schedules */
    tj_optimizer *o = tj_sgd(0.1, 0, false);
    ck_assert_int_eq(tj_optimizer_exponential_decay(o, 0, 0.5, false), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "optimizer_exponential_decay: decay_steps 0 must be positive and finite");
    ck_assert_int_eq(tj_optimizer_exponential_decay(o, 10, 0, false), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "optimizer_exponential_decay: rate 0 must be positive and finite");
    ck_assert_int_eq(tj_optimizer_cosine_decay(o, INFINITY, 0), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "optimizer_cosine_decay: decay_steps inf must be positive");
    ck_assert_int_eq(tj_optimizer_cosine_decay(o, 10, 1.5), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "optimizer_cosine_decay: alpha 1.5 is outside [0, 1]");
    ck_assert_int_eq(tj_optimizer_cosine_decay(NULL, 10, 0.5), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "optimizer_cosine_decay: the optimizer is NULL");
    ck_assert_int_eq(tj_optimizer_exponential_decay(NULL, 10, 0.5, false), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "optimizer_exponential_decay: the optimizer is NULL");
    ck_assert(tj_item(tj_optimizer_learning_rate(o)) == (float)0.1);   /* failures changed nothing */
    tj_optimizer_free(o);
    tj_optimizer_free(NULL);
}
END_TEST

START_TEST(test_apply_errors) {
    tj_optimizer *o = tj_adam(0.1, 0.9, 0.999, 1e-8);
    tj_tensor *w = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(3, 2)), "dense/kernel");
    tj_tensor *b = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(2)), "dense/bias");
    tj_tensor *gw = tj_ones(TJ_F32, TJ_SHAPE(3, 2)), *gb = tj_ones(TJ_F32, TJ_SHAPE(2));
    tj_tensor *vars[2] = {w, b}, *grads[2] = {gw, gb};
    ck_assert_int_eq(tj_optimizer_apply(o, 0, grads, vars), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "adam: apply: n is 0; give at least one variable");
    ck_assert_int_eq(tj_optimizer_apply(o, -1, grads, vars), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "adam: apply: n is -1");
    ck_assert_int_eq(tj_optimizer_apply(NULL, 2, grads, vars), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "optimizer_apply: the optimizer is NULL");
    ck_assert_int_eq(tj_optimizer_apply(o, 2, NULL, vars), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "adam: apply: grads is NULL");
    ck_assert_int_eq(tj_optimizer_apply(o, 2, grads, NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "adam: apply: vars is NULL");
    /* a NULL gradient: the variable is named */
    ck_assert_int_eq(tj_optimizer_apply(o, 2, (tj_tensor *[]){gw, NULL}, vars), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "adam: apply: the gradient of variable 'dense/bias' (grads[1]) is NULL");
    /* shapes and dtypes */
    tj_tensor *gt = tj_ones(TJ_F32, TJ_SHAPE(2, 3));
    ck_assert_int_eq(tj_optimizer_apply(o, 2, (tj_tensor *[]){gt, gb}, vars), TJ_ERR_SHAPE);
    ck_assert_error(TJ_ERR_SHAPE, "adam: apply: the gradient of variable 'dense/kernel' has shape (2, 3), "
                                  "the variable (3, 2)");
    ck_assert_int_eq(tj_optimizer_apply(o, 2, (tj_tensor *[]){gw, tj_ones(TJ_F64, TJ_SHAPE(2))}, vars),
                     TJ_ERR_DTYPE);
    ck_assert_error(TJ_ERR_DTYPE, "adam: apply: the gradient of variable 'dense/bias' is float64, the variable float32");
    /* not variables, repeats, int32 */
    ck_assert_int_eq(tj_optimizer_apply(o, 2, grads, (tj_tensor *[]){w, gb}), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "adam: apply: vars[1] is not a variable");
    ck_assert_int_eq(tj_optimizer_apply(o, 2, (tj_tensor *[]){gw, gw}, (tj_tensor *[]){w, w}), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "adam: apply: variable 'dense/kernel' is given twice (vars[0] and vars[1])");
    tj_tensor *iv = tj_variable(tj_zeros(TJ_I32, TJ_SHAPE(2)), "counts");
    ck_assert_int_eq(tj_optimizer_apply(o, 1, (tj_tensor *[]){tj_zeros(TJ_I32, TJ_SHAPE(2))}, &iv), TJ_ERR_DTYPE);
    ck_assert_error(TJ_ERR_DTYPE, "adam: apply: variable 'counts' is int32; only float32 and float64");
    ck_assert_int_eq(tj_optimizer_build(o, 1, &iv), TJ_ERR_DTYPE);
    ck_assert_error(TJ_ERR_DTYPE, "adam: build: variable 'counts' is int32");
    ck_assert_int_eq(tj_optimizer_build(o, 0, vars), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "adam: build: n is 0");
    ck_assert_int_eq(tj_optimizer_build(NULL, 1, vars), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "optimizer_build: the optimizer is NULL");
    /* a stale gradient */
    tj_scope_begin();
    tj_tensor *gone = tj_ones(TJ_F32, TJ_SHAPE(2));
    tj_scope_end();
    ck_assert_int_eq(tj_optimizer_apply(o, 2, (tj_tensor *[]){gw, gone}, vars), TJ_ERR_STALE);
    ck_assert_error(TJ_ERR_STALE, "adam: apply: argument 2");
    /* failed calls changed nothing: no step, no slots, same values */
    ck_assert(tj_item(tj_optimizer_step(o)) == 0);
    ck_assert_int_eq(tj_optimizer_variables(o, 0, NULL), 2);
    ck_assert(tj_item(tj_sum(w, 0, NULL, false)) == 0);
    /* the rest */
    ck_assert_int_eq(tj_optimizer_variables(NULL, 0, NULL), -1);
    ck_assert_error(TJ_ERR_ARG, "optimizer_variables: the optimizer is NULL");
    ck_assert_int_eq(tj_optimizer_variables(o, -1, NULL), -1);
    ck_assert_error(TJ_ERR_ARG, "optimizer_variables: cap -1 is negative");
    ck_assert_ptr_null(tj_optimizer_step(NULL));
    ck_assert_error(TJ_ERR_ARG, "optimizer_step: the optimizer is NULL");
    ck_assert_ptr_null(tj_optimizer_learning_rate(NULL));
    ck_assert_error(TJ_ERR_ARG, "optimizer_learning_rate: the optimizer is NULL");
    ck_assert_int_eq(tj_optimizer_apply(o, 2, grads, vars), 0);   /* and it still works */
    ck_assert_int_eq(tj_optimizer_variables(o, 0, NULL), 6);
    tj_variable_free(iv);
    tj_variable_free(w);
    tj_variable_free(b);
    tj_optimizer_free(o);
}
END_TEST

/* an apply while a persistent tape records: the tape's gradients still see the forward
 * values (snapshots), and the update happened */
START_TEST(test_apply_inside_a_recording_tape) {
    tj_tensor *w = tj_variable(tj_full(TJ_F32, TJ_SHAPE(2), 1), "w");
    tj_optimizer *o = tj_sgd(0.5, 0.9, false);
    tj_tape *tape = tj_tape_begin(TJ_TAPE_PERSISTENT);
    tj_tensor *loss = tj_sum(tj_mul(w, w), 0, NULL, false), *g, *g2;
    ck_assert_int_eq(tj_tape_gradient(tape, loss, 1, &w, &g), 0);
    ck_assert_int_eq(tj_optimizer_apply(o, 1, &g, &w), 0);
    /* the gradient of loss still sees the forward value w = 1 (the tape's snapshot) */
    ck_assert_int_eq(tj_tape_gradient(tape, loss, 1, &w, &g2), 0);
    ck_assert(tu_get(g2, 0) == 2 && tj_item(tj_sum(w, 0, NULL, false)) == 0);   /* w = 1 - 0.5 * 2 */
    tj_tape_free(tape);
    tj_optimizer_free(o);
    tj_variable_free(w);
}
END_TEST

/* ---- allocation failures: every allocation of a program fails in turn ---------------------- */

#define TAB (1u << 14)
static struct { void *p; size_t n; } blocks[TAB];
static struct { long long live; long count, fail_at, failed; } A;

static size_t slot_of(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 50) & (TAB - 1);
}

static long find(const void *p) {
    for (size_t i = slot_of(p), k = 0; k < TAB; i = (i + 1) & (TAB - 1), k++) {
        if (blocks[i].p == p) return (long)i;
        if (!blocks[i].p) return -1;
    }
    return -1;
}

static void forget(long at) {         /* deletion with backward shift */
    size_t i = (size_t)at;
    for (size_t j = i;;) {
        j = (j + 1) & (TAB - 1);
        if (!blocks[j].p) break;
        size_t k = slot_of(blocks[j].p);
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
        blocks[i] = blocks[j];
        i = j;
    }
    blocks[i].p = NULL;
}

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud; (void)osize;
    long at = ptr ? find(ptr) : -1;
    if (nsize == 0) {
        if (at >= 0) { A.live -= (long long)blocks[at].n; forget(at); }
        free(ptr);
        return NULL;
    }
    if ((!ptr || nsize > osize) && ++A.count == A.fail_at) { A.failed++; return NULL; }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    if (at >= 0) { A.live -= (long long)blocks[at].n; forget(at); }
    size_t i = slot_of(p);
    while (blocks[i].p) i = (i + 1) & (TAB - 1);
    blocks[i].p = p;
    blocks[i].n = nsize;
    A.live += (long long)nsize;
    return p;
}

/* The program: variables, Adam with a cosine schedule, two applies (the second sees a new
 * variable), the learning rate, the variables list, then everything freed. Returns true if
 * it ran to the end; a failing call must report TJ_ERR_OOM. */
static bool oom_program(void) {
    bool done = false;
    tj_optimizer *o = NULL;
    tj_tensor *w = NULL, *b = NULL;
    tj_scope_begin();
    if (!(w = tj_variable(tj_full(TJ_F32, TJ_SHAPE(3, 2), 0.5), "w"))) goto out;
    if (!(b = tj_variable(tj_full(TJ_F32, TJ_SHAPE(40), 0.5), "b"))) goto out;
    if (!(o = tj_adam(0.1, 0.9, 0.999, 1e-8))) goto out;
    if (tj_optimizer_cosine_decay(o, 10, 0.1)) goto out;
    tj_tensor *gw = tj_full(TJ_F32, TJ_SHAPE(3, 2), 1), *gb = tj_full(TJ_F32, TJ_SHAPE(40), 2);
    if (tj_optimizer_apply(o, 1, &gw, &w)) goto out;
    if (tj_optimizer_apply(o, 2, (tj_tensor *[]){gw, gb}, (tj_tensor *[]){w, b})) goto out;
    if (!tj_optimizer_learning_rate(o)) goto out;
    tj_tensor *vars[6];
    done = tj_optimizer_variables(o, 6, vars) == 6;
out:
    tj_optimizer_free(o);
    tj_variable_free(b);
    tj_variable_free(w);
    tj_scope_end();
    return done;
}

START_TEST(test_every_allocation_fails_in_turn) {
    tj_clear_error();
    ck_assert(oom_program());                 /* grows what stays for the process */
    memset(blocks, 0, sizeof blocks);
    memset(&A, 0, sizeof A);
    tj_set_allocator(counting_alloc, NULL);
    bool ok = oom_program();
    long total = A.count;
    long long base = A.live;
    ck_assert(ok && tj_error_code() == 0);
    ck_assert_msg(total > 50, "only %ld allocations: is the hook used?", total);
    long n;
    for (n = 1; n <= total + 1; n++) {
        tj_clear_error();
        A.count = 0;
        A.failed = 0;
        A.fail_at = n;
        ok = oom_program();
        if (A.failed) {
            ck_assert_msg(!ok, "allocation %ld failed but the program ran to its end", n);
            ck_assert_msg(tj_error_code() == TJ_ERR_OOM, "allocation %ld: error %d (%s)", n, tj_error_code(),
                          tj_last_error());
        } else {
            ck_assert_msg(ok && tj_error_code() == 0, "allocation %ld: %s", n, tj_last_error());
        }
        ck_assert_msg(A.live == base, "allocation %ld failed: %lld bytes live after cleanup, %lld expected", n,
                      A.live, base);
        if (!A.failed) break;
    }
    tj_set_allocator(NULL, NULL);
    tj_clear_error();
    ck_assert_int_eq(n, total + 1);
}
END_TEST

Suite *optim_suite(void) {
    Suite *s = suite_create("optim");
    TCase *ref = tcase_create("reference");
    tcase_add_checked_fixture(ref, setup, teardown);
    tcase_add_loop_test(ref, test_five_steps_float64, 0, NCONFIGS);
    tcase_add_loop_test(ref, test_five_steps_float32, 0, NCONFIGS);
    tcase_add_test(ref, test_known_single_steps);
    suite_add_tcase(s, ref);
    TCase *sch = tcase_create("schedules");
    tcase_add_checked_fixture(sch, setup, teardown);
    tcase_add_test(sch, test_schedules);
    tcase_add_test(sch, test_apply_uses_the_step_before_its_increment);
    tcase_add_test(sch, test_cosine_polynomial_error);
    suite_add_tcase(s, sch);
    TCase *jit = tcase_create("compiled");
    tcase_add_checked_fixture(jit, setup, teardown);
    tcase_set_timeout(jit, 120);
    tcase_add_loop_test(jit, test_compiled_equals_eager, 0, NCONFIGS);
    suite_add_tcase(s, jit);
    TCase *st = tcase_create("state");
    tcase_add_checked_fixture(st, setup, teardown);
    tcase_add_test(st, test_slots_for_a_variable_seen_later);
    tcase_add_loop_test(st, test_resume_from_saved_variables, 0, NCONFIGS);
    tcase_add_test(st, test_apply_inside_a_recording_tape);
    suite_add_tcase(s, st);
    TCase *err = tcase_create("errors");
    tcase_add_checked_fixture(err, setup, teardown);
    tcase_add_test(err, test_bad_hyperparameters);
    tcase_add_test(err, test_apply_errors);
    tcase_add_test(err, test_every_allocation_fails_in_turn);
    suite_add_tcase(s, err);
    return s;
}
