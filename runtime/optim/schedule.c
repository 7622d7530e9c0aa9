/* schedule.c: learning-rate schedules as Keras defines them, computed with ops from the
 * step counter variable, so a compiled step follows the schedule instead of freezing one
 * value. t is the step count before the apply's increment (Keras reads `iterations`, then
 * assign_adds 1): the first apply uses the schedule at t = 0, the initial rate. The math
 * runs in float64 from the float32 step and base rate, and is cast to each variable's
 * dtype by the caller. There is no floor op and no cos op: for t >= 0, floor is a cast to
 * int32 and back, and cos comes from a polynomial (tj_optim_cos_pi). Never reads values. */
#include "optim.h"

#include <math.h>

#define PI 3.14159265358979323846   /* M_PI is not C11 */

static tensor *k64(double v) { return tj_t_scalar(TJ_F64, v); }

/* cos(pi u) = sin(x) with x = pi (1/2 - u), in [-pi/2, pi/2] for u in [0, 1], and sin is
 * its Taylor polynomial through x^19, by Horner in x^2:
 *     sin x ~ x * sum_{k=0..9} (-1)^k x^(2k) / (2k+1)!
 * The series alternates with falling terms on |x| <= pi/2, so the truncation error is at
 * most the first omitted term, (pi/2)^21 / 21! = 2.6e-16; in float64 the total error is
 * a few 1e-16 (check_optim measures it over 10001 points), far below the 1e-6 asked. */
#define COS_TERMS 10
tensor *tj_optim_cos_pi(tensor *u) {
    if (!u) return NULL;
    tj_dtype dt = u->dtype;
    double c[COS_TERMS];
    c[0] = 1;
    for (int k = 1; k < COS_TERMS; k++) c[k] = -c[k - 1] / ((2.0 * k) * (2.0 * k + 1));
    tensor *x = T_MUL(T_SUB(tj_t_scalar(dt, 0.5), u), tj_t_scalar(dt, PI));
    tensor *z = T_MUL(x, x);
    tensor *p = tj_t_scalar(dt, c[COS_TERMS - 1]);
    for (int k = COS_TERMS - 2; k >= 0; k--) p = T_ADD(T_MUL(p, z), tj_t_scalar(dt, c[k]));
    return T_MUL(x, p);
}

tensor *tj_optim_lr(const tj_optimizer *o, tensor *t) {
    tensor *lr = tj_t_cast(tj_resolve(o->lr_var, o->name, 0), TJ_F64);
    if (!t || !lr) return NULL;
    const tj_schedule *s = &o->sched;
    switch (s->kind) {
    case TJ_SCHED_CONSTANT:
        return lr;
    case TJ_SCHED_EXPONENTIAL: {
        /* lr * rate^p, p = t / decay_steps, floored when staircase (t >= 0: truncation) */
        tensor *p = T_DIV(t, k64(s->decay_steps));
        if (s->staircase) p = tj_t_cast(tj_t_cast(p, TJ_I32), TJ_F64);
        return T_MUL(lr, tj_t_ew2(TJ_OP_POW, k64(s->rate), p));
    }
    case TJ_SCHED_COSINE: {
        /* lr * ((1 - alpha) * 0.5 * (1 + cos(pi * u)) + alpha), u = min(t, D) / D */
        tensor *u = T_DIV(tj_t_ew2(TJ_OP_MINIMUM, t, k64(s->decay_steps)), k64(s->decay_steps));
        tensor *cosine = T_MUL(k64(0.5), T_ADD(k64(1), tj_optim_cos_pi(u)));
        return T_MUL(lr, T_ADD(T_MUL(k64(1 - s->alpha), cosine), k64(s->alpha)));
    }
    }
    return NULL;
}

static int check_decay_steps(const char *op, double decay_steps) {
    if (!(decay_steps > 0) || !isfinite(decay_steps))
        return tj_err(TJ_ERR_ARG, "%s: decay_steps %g must be positive and finite", op, decay_steps);
    return 0;
}

int tj_optimizer_exponential_decay(tj_optimizer *o, double decay_steps, double rate, bool staircase) {
    const char *op = "optimizer_exponential_decay";
    if (!o) return tj_err(TJ_ERR_ARG, "%s: the optimizer is NULL", op);
    int rc = check_decay_steps(op, decay_steps);
    if (rc) return rc;
    if (!(rate > 0) || !isfinite(rate))
        return tj_err(TJ_ERR_ARG, "%s: rate %g must be positive and finite", op, rate);
    o->sched = (tj_schedule){.kind = TJ_SCHED_EXPONENTIAL, .decay_steps = decay_steps,
                             .rate = rate, .staircase = staircase};
    return 0;
}

int tj_optimizer_cosine_decay(tj_optimizer *o, double decay_steps, double alpha) {
    const char *op = "optimizer_cosine_decay";
    if (!o) return tj_err(TJ_ERR_ARG, "%s: the optimizer is NULL", op);
    int rc = check_decay_steps(op, decay_steps);
    if (rc) return rc;
    if (!(alpha >= 0 && alpha <= 1))
        return tj_err(TJ_ERR_ARG, "%s: alpha %g is outside [0, 1]", op, alpha);
    o->sched = (tj_schedule){.kind = TJ_SCHED_COSINE, .decay_steps = decay_steps, .alpha = alpha};
    return 0;
}

tj_tensor *tj_optimizer_learning_rate(const tj_optimizer *o) {
    if (!o) return tj_err(TJ_ERR_ARG, "optimizer_learning_rate: the optimizer is NULL"), NULL;
    tj_scope_begin();
    tensor *lr = tj_optim_lr(o, tj_t_cast(tj_resolve(o->step, "optimizer_learning_rate", 1), TJ_F64));
    tj_tensor *h = lr ? tj_keep(tj_handle(lr)) : NULL;
    tj_scope_end();
    return h;
}
