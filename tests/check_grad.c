/* check_grad.c: every differentiable op of the table, gradients against central finite
 * differences in f64 (PyTorch gradcheck tolerances: eps 1e-6, atol 1e-5, rtol 1e-3), and
 * second-order gradients (a tape watching a tape) for elementwise ops and matmul. */
#include "opspec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-6
#define ATOL 1e-5
#define RTOL 1e-3
#define MAX_CHECKED 48          /* elements perturbed per input (evenly spread) */

typedef struct {
    const opspec *sp;
    int c;
    tj_tensor *in[SPEC_MAXIN];  /* current inputs (f64; indices i32) */
    tj_tensor *w;               /* loss weights, shape of the output */
} problem;

static bool is_float_input(const opspec *sp, int k) { return !sp->index_input[k]; }

/* loss = sum(op(in) * w) */
static tj_tensor *loss_of(problem *p, tj_tensor *const *in) {
    return tj_sum(tj_mul(p->sp->apply(p->c, in), p->w), 0, NULL, false);
}

/* A copy of input k with element i moved by delta. */
static tj_tensor *perturbed(tj_tensor *t, int64_t i, double delta) {
    int64_t n = tj_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    memcpy(v, tj_tensor_data(t), sizeof(double) * (size_t)n);
    v[i] += delta;
    tj_tensor *r = tj_tensor_from(TJ_F64, tj_tensor_shape(t), v);
    free(v);
    return r;
}

/* d f / d in[k][i] by central differences, f a scalar function of the inputs */
static double numeric(problem *p, int k, int64_t i, double (*f)(problem *, tj_tensor *const *)) {
    double r[2];
    for (int s = 0; s < 2; s++) {
        tj_scope_begin();
        tj_tensor *in[SPEC_MAXIN];
        memcpy(in, p->in, sizeof in);
        in[k] = perturbed(p->in[k], i, s ? -EPS : EPS);
        r[s] = f(p, in);
        tj_scope_end();
    }
    return (r[0] - r[1]) / (2 * EPS);
}

static double f_loss(problem *p, tj_tensor *const *in) { return tj_item(loss_of(p, in)); }

static void compare(const char *what, problem *p, int k, tj_tensor *g, double (*f)(problem *, tj_tensor *const *)) {
    int64_t n = tj_tensor_numel(p->in[k]);
    int64_t step = n > MAX_CHECKED ? n / MAX_CHECKED : 1;
    for (int64_t i = 0; i < n; i += step) {
        double want = numeric(p, k, i, f), got = tu_get(g, i);
        ck_assert_msg(fabs(got - want) <= ATOL + RTOL * fabs(want),
                      "%s %s case %d input %d element %lld: analytic %.10g, numeric %.10g",
                      what, tj_ops[p->sp->op]->name, p->c, k, (long long)i, got, want);
    }
}

static bool setup(problem *p, const opspec *sp, int c) {
    memset(p, 0, sizeof *p);
    p->sp = sp;
    p->c = c;
    ref_t rin[SPEC_MAXIN];
    spec_inputs(sp, c, TJ_F64, 77u * (unsigned)sp->op + (unsigned)c, p->in, rin);
    for (int k = 0; k < sp->nin; k++) ref_free(&rin[k]);
    tj_seed(11 + (uint64_t)c);
    tj_tensor *out = sp->apply(c, p->in);
    ck_assert_msg(out != NULL, "%s: %s", tj_ops[sp->op]->name, tj_last_error());
    p->w = tj_cast(tj_rand_normal(tj_tensor_shape(out), 0, 1), tj_tensor_dtype(out));
    return tj_tensor_dtype(out) == TJ_F64;   /* finite differences need f64 (cast to f32 or int32: no) */
}

START_TEST(test_gradcheck) {
    const opspec *sp = &tj_specs[_i];
    if (!sp->differentiable) return;
    for (int c = 0; c < sp->ncases; c++) {
        tj_scope_begin();
        problem p;
        if (!setup(&p, sp, c)) { tj_scope_end(); continue; }
        for (int k = 0; k < sp->nin; k++) {
            if (!is_float_input(sp, k)) continue;
            tj_tape *tape = tj_tape_begin(0);
            tj_tape_watch(tape, p.in[k]);
            tj_tensor *g;
            ck_assert_int_eq(tj_tape_gradient(tape, loss_of(&p, p.in), 1, &p.in[k], &g), 0);
            tj_tape_free(tape);
            tj_shape gs = tj_tensor_shape(g), is = tj_tensor_shape(p.in[k]);
            ck_assert_int_eq(gs.ndim, is.ndim);
            compare("gradient", &p, k, g, f_loss);
        }
        tj_scope_end();
        ck_assert_int_eq(tj_error_code(), 0);
    }
}
END_TEST

/* h = sum_k sum(d loss / d in[k] * v[k]): its gradient needs the backward ops recorded */
static tj_tensor *vees[SPEC_MAXIN];

static tj_tensor *h_of(problem *p, tj_tensor *const *in) {
    tj_tape *tape = tj_tape_begin(TJ_TAPE_PERSISTENT);
    for (int k = 0; k < p->sp->nin; k++)
        if (is_float_input(p->sp, k)) tj_tape_watch(tape, in[k]);
    tj_tensor *loss = loss_of(p, in), *h = tj_zeros(TJ_F64, TJ_SHAPE());
    for (int k = 0; k < p->sp->nin; k++) {
        if (!is_float_input(p->sp, k)) continue;
        tj_tensor *g, *src = in[k];
        ck_assert_int_eq(tj_tape_gradient(tape, loss, 1, &src, &g), 0);
        h = tj_add(h, tj_sum(tj_mul(g, vees[k]), 0, NULL, false));
    }
    tj_tape_free(tape);
    return h;
}

static double f_h(problem *p, tj_tensor *const *in) { return tj_item(h_of(p, in)); }

static bool second_order_op(const opspec *sp) {
    tj_kind k = tj_ops[sp->op]->kind;
    return sp->differentiable &&
           (k == TJ_KIND_UNARY || k == TJ_KIND_BINARY || k == TJ_KIND_TERNARY || sp->op == TJ_OP_MATMUL);
}

START_TEST(test_second_order) {
    const opspec *sp = &tj_specs[_i];
    if (!second_order_op(sp)) return;
    for (int c = 0; c < sp->ncases; c++) {
        tj_scope_begin();
        problem p;
        if (!setup(&p, sp, c)) { tj_scope_end(); continue; }
        for (int k = 0; k < sp->nin; k++)
            vees[k] = is_float_input(sp, k) ? tj_cast(tj_rand_normal(tj_tensor_shape(p.in[k]), 0, 1), TJ_F64) : NULL;
        for (int k = 0; k < sp->nin; k++) {
            if (!is_float_input(sp, k)) continue;
            tj_tape *outer = tj_tape_begin(0);
            tj_tape_watch(outer, p.in[k]);
            tj_tensor *h = h_of(&p, p.in), *g;
            ck_assert_int_eq(tj_tape_gradient(outer, h, 1, &p.in[k], &g), 0);
            tj_tape_free(outer);
            compare("second-order", &p, k, g, f_h);
        }
        tj_scope_end();
        ck_assert_int_eq(tj_error_code(), 0);
    }
}
END_TEST

Suite *grad_suite(void) {
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("gradcheck");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_gradcheck, 0, tj_nspecs);
    tcase_add_loop_test(tc, test_second_order, 0, tj_nspecs);
    suite_add_tcase(s, tc);
    return s;
}
