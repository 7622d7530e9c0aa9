/* optimizer.c: SGD (momentum, Nesterov), Adam, RMSprop and Adagrad, op for op as Keras 3
 * writes its update_step (formulas above each update below). Every update is a tj_assign,
 * and the step, the base learning rate and every slot are variables, so a tj_function
 * whose step calls tj_optimizer_apply captures the whole update and replays it with
 * eager's bits. Nothing here reads a value (tj_item): that would freeze a trace. Slots are
 * created on a variable's first apply (or tj_optimizer_build), keyed by the variable's id,
 * which is never reused; arguments are all checked before anything changes, and updates
 * run with every tape paused (tj_no_grad), in a scope of their own. */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- construction and hyperparameters ------------------------------------------------- */

static int check_lr(const char *op, double lr) {
    if (!(lr > 0) || !isfinite(lr) || !((float)lr > 0) || !isfinite((float)lr))
        return tj_err(TJ_ERR_ARG, "%s: learning rate %g must be positive and finite (in float32)", op, lr);
    return 0;
}

/* v in [lo, hi), or [lo, hi] when closed */
static int check_range(const char *op, const char *what, double v, double lo, double hi, bool closed) {
    if (v >= lo && (closed ? v <= hi : v < hi)) return 0;
    return tj_err(TJ_ERR_ARG, "%s: %s %g is outside [%g, %g%c", op, what, v, lo, hi, closed ? ']' : ')');
}

static int check_nonneg(const char *op, const char *what, double v) {
    if (v >= 0 && isfinite(v)) return 0;
    return tj_err(TJ_ERR_ARG, "%s: %s %g must be >= 0 and finite", op, what, v);
}

/* The object with its step (0) and base learning rate variables; NULL on OOM. */
static tj_optimizer *opt_new(tj_opt_kind kind, const char *name, double lr) {
    tj_optimizer *o = tj_mem_calloc(sizeof *o);
    if (!o) return NULL;
    o->kind = kind;
    o->name = name;
    o->lr = lr;
    tj_scope_begin();                       /* the initial values die here; variables copy */
    o->step = tj_variable(tj_scalar(0), "step");
    o->lr_var = o->step ? tj_variable(tj_scalar(lr), "learning_rate") : NULL;
    tj_scope_end();
    if (!o->lr_var) {
        tj_variable_free(o->step);
        tj_mem_free(o, sizeof *o);
        return NULL;
    }
    return o;
}

static void add_slot(tj_optimizer *o, const char *name, double init) {
    o->slot_name[o->nslots] = name;
    o->slot_init[o->nslots++] = init;
}

/* Keras SGD: lr > 0, momentum in [0, 1]; with momentum 0 nesterov changes nothing. */
tj_optimizer *tj_sgd(double lr, double momentum, bool nesterov) {
    if (check_lr("sgd", lr) || check_range("sgd", "momentum", momentum, 0, 1, true)) return NULL;
    tj_optimizer *o = opt_new(TJ_OPT_SGD, "sgd", lr);
    if (!o) return NULL;
    o->momentum = momentum;
    o->nesterov = nesterov;
    if (momentum != 0) add_slot(o, "momentum", 0);
    return o;
}

tj_optimizer *tj_adam(double lr, double beta1, double beta2, double epsilon) {
    if (check_lr("adam", lr) || check_range("adam", "beta1", beta1, 0, 1, false) ||
        check_range("adam", "beta2", beta2, 0, 1, false) || check_nonneg("adam", "epsilon", epsilon))
        return NULL;
    tj_optimizer *o = opt_new(TJ_OPT_ADAM, "adam", lr);
    if (!o) return NULL;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->epsilon = epsilon;
    add_slot(o, "m", 0);
    add_slot(o, "v", 0);
    return o;
}

tj_optimizer *tj_rmsprop(double lr, double rho, double momentum, double epsilon) {
    if (check_lr("rmsprop", lr) || check_range("rmsprop", "rho", rho, 0, 1, false) ||
        check_range("rmsprop", "momentum", momentum, 0, 1, true) ||
        check_nonneg("rmsprop", "epsilon", epsilon))
        return NULL;
    tj_optimizer *o = opt_new(TJ_OPT_RMSPROP, "rmsprop", lr);
    if (!o) return NULL;
    o->rho = rho;
    o->momentum = momentum;
    o->epsilon = epsilon;
    add_slot(o, "rms", 0);
    if (momentum != 0) add_slot(o, "momentum", 0);
    return o;
}

tj_optimizer *tj_adagrad(double lr, double initial_accumulator, double epsilon) {
    if (check_lr("adagrad", lr) || check_nonneg("adagrad", "initial_accumulator", initial_accumulator) ||
        check_nonneg("adagrad", "epsilon", epsilon))
        return NULL;
    tj_optimizer *o = opt_new(TJ_OPT_ADAGRAD, "adagrad", lr);
    if (!o) return NULL;
    o->initial_accumulator = initial_accumulator;
    o->epsilon = epsilon;
    add_slot(o, "accumulator", initial_accumulator);
    return o;
}

void tj_optimizer_free(tj_optimizer *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++)
        for (int s = 0; s < o->nslots; s++) tj_variable_free(o->entries[i].slot[s]);
    tj_mem_free(o->entries, sizeof(tj_opt_entry) * (size_t)o->cap);
    tj_variable_free(o->step);
    tj_variable_free(o->lr_var);
    tj_mem_free(o, sizeof *o);
}

/* ---- slots ------------------------------------------------------------------------------ */

/* "<slot>/<variable name>"; an unnamed variable is "#<k>", k its position in entries. */
static tj_tensor *slot_new(const tj_optimizer *o, int s, tensor *v, int k) {
    char num[24];
    const char *vname = v->name && v->name[0] ? v->name : (snprintf(num, sizeof num, "#%d", k), num);
    size_t len = strlen(o->slot_name[s]) + 1 + strlen(vname) + 1;
    char *name = tj_mem_alloc(len);
    if (!name) return NULL;
    snprintf(name, len, "%s/%s", o->slot_name[s], vname);
    tj_scope_begin();
    tj_tensor *slot = tj_variable(tj_handle(tj_t_full(v->dtype, &v->shape, o->slot_init[s])), name);
    tj_scope_end();
    tj_mem_free(name, len);
    return slot;
}

/* The entry of v, created (with its slots) if v is new; -1 on OOM. `hint` is where v
 * usually is (its position in the caller's list), so steady state needs no search. */
static int entry_of(tj_optimizer *o, tensor *v, int hint) {
    if (hint < o->n && o->entries[hint].var_id == v->id) return hint;
    for (int i = 0; i < o->n; i++)
        if (o->entries[i].var_id == v->id) return i;
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 8;
        tj_opt_entry *e = tj_mem_realloc(o->entries, sizeof(tj_opt_entry) * (size_t)o->cap,
                                         sizeof(tj_opt_entry) * (size_t)cap);
        if (!e) return -1;
        o->entries = e;
        o->cap = cap;
    }
    tj_opt_entry *e = &o->entries[o->n];
    memset(e, 0, sizeof *e);
    e->var_id = v->id;
    for (int s = 0; s < o->nslots; s++) {
        if (!(e->slot[s] = slot_new(o, s, v, o->n))) {
            while (s-- > 0) tj_variable_free(e->slot[s]);
            return -1;
        }
    }
    return o->n++;
}

/* ---- arguments ---------------------------------------------------------------------------- */

static const char *vname(const tensor *v) { return v->name ? v->name : ""; }

/* Resolves and checks vars (and grads, unless NULL) into vs and gs: float variables, no
 * repeats; gradients present, of the variable's dtype and shape. Changes nothing. */
static int check_args(const tj_optimizer *o, const char *what, int n, tj_tensor *const *grads,
                      tj_tensor *const *vars, bool with_grads, tensor **vs, tensor **gs) {
    char op[48], sg[TJ_SHAPE_STR_MAX], sv[TJ_SHAPE_STR_MAX];
    snprintf(op, sizeof op, "%s: %s", o->name, what);
    for (int i = 0; i < n; i++) {
        tensor *v = vs[i] = tj_resolve(vars[i], op, i + 1);
        if (!v) return tj_error_code();
        if (!tj_is_variable(v))
            return tj_err(TJ_ERR_ARG, "%s: vars[%d] is not a variable (create it with tj_variable)", op, i);
        if (!tj_dtype_is_float(v->dtype))
            return tj_err(TJ_ERR_DTYPE, "%s: variable '%s' is %s; only float32 and float64 variables "
                          "can be trained", op, vname(v), tj_dtype_name(v->dtype));
        for (int j = 0; j < i; j++)
            if (vs[j] == v)
                return tj_err(TJ_ERR_ARG, "%s: variable '%s' is given twice (vars[%d] and vars[%d])",
                              op, vname(v), j, i);
        if (!with_grads) continue;
        if (!grads[i])
            return tj_err(TJ_ERR_ARG, "%s: the gradient of variable '%s' (grads[%d]) is NULL", op, vname(v), i);
        tensor *g = gs[i] = tj_resolve(grads[i], op, i + 1);
        if (!g) return tj_error_code();
        if (g->dtype != v->dtype)
            return tj_err(TJ_ERR_DTYPE, "%s: the gradient of variable '%s' is %s, the variable %s",
                          op, vname(v), tj_dtype_name(g->dtype), tj_dtype_name(v->dtype));
        if (!tj_shape_equal(&g->shape, &v->shape))
            return tj_err(TJ_ERR_SHAPE, "%s: the gradient of variable '%s' has shape %s, the variable %s",
                          op, vname(v), tj_shape_str(&g->shape, sg, sizeof sg),
                          tj_shape_str(&v->shape, sv, sizeof sv));
    }
    return 0;
}

/* Checks the arguments, creates missing slots, and gives each variable's entry in idx.
 * buf holds 2n tensor pointers and n ints, allocated here; the caller frees it. */
typedef struct { tensor **vs, **gs; int *idx; size_t bytes; } resolved;

static int prepare(tj_optimizer *o, const char *what, int n, tj_tensor *const *grads,
                   tj_tensor *const *vars, bool with_grads, resolved *r) {
    memset(r, 0, sizeof *r);
    if (!o) return tj_err(TJ_ERR_ARG, "optimizer_%s: the optimizer is NULL", what);
    if (n <= 0) return tj_err(TJ_ERR_ARG, "%s: %s: n is %d; give at least one variable", o->name, what, n);
    if (!vars) return tj_err(TJ_ERR_ARG, "%s: %s: vars is NULL", o->name, what);
    if (with_grads && !grads) return tj_err(TJ_ERR_ARG, "%s: %s: grads is NULL", o->name, what);
    r->bytes = (size_t)n * (2 * sizeof(tensor *) + sizeof(int));
    if (!(r->vs = tj_mem_alloc(r->bytes))) return TJ_ERR_OOM;
    r->gs = r->vs + n;
    r->idx = (int *)(r->gs + n);
    int rc = check_args(o, what, n, grads, vars, with_grads, r->vs, r->gs);
    for (int i = 0; !rc && i < n; i++)
        if ((r->idx[i] = entry_of(o, r->vs[i], i)) < 0) rc = TJ_ERR_OOM;
    return rc;
}

static void release(resolved *r) { tj_mem_free(r->vs, r->bytes); }

int tj_optimizer_build(tj_optimizer *o, int n, tj_tensor *const *vars) {
    resolved r;
    int rc = prepare(o, "build", n, NULL, vars, false, &r);
    release(&r);
    return rc;
}

/* ---- updates ------------------------------------------------------------------------------ */

/* An op gave NULL: its error (OOM) is the first one kept. */
static int failed(void) { return tj_error_code() ? tj_error_code() : TJ_ERR_OOM; }

static int assign(tensor *var, tensor *value) {
    return value ? tj_assign(tj_handle(var), tj_handle(value)) : failed();
}

/* ---- Adam in one pass, when nothing traces ----------------------------------------------
 * The same operations on every element, in the same order, as the ops of update() below
 * (so the same bits: the 100-step training tests compare eager with compiled, which runs
 * the ops), in one pass that updates w, m and v in place, instead of ten ops each writing
 * a new tensor and three copies into the variables. A trace needs the ops, so it gets them. */
typedef struct adam_job {
    int64_t n;
    void *w, *m, *v;
    const void *g;
    double k1, k2, eps, lr;     /* 1 - beta1, 1 - beta2, epsilon, lr_t: rounded to T in use */
} adam_job;

#define ADAM_CHUNK 16384
#define ADAM_PASS(name, T, SQRT)                                                              \
    static void name(void *ctx, int64_t c) {                                                  \
        const adam_job *j = ctx;                                                              \
        T *w = j->w, *m = j->m, *v = j->v;                                                    \
        const T *g = j->g;                                                                    \
        const T k1 = (T)j->k1, k2 = (T)j->k2, eps = (T)j->eps, lr = (T)j->lr;                 \
        int64_t i1 = (c + 1) * ADAM_CHUNK < j->n ? (c + 1) * ADAM_CHUNK : j->n;               \
        for (int64_t i = c * ADAM_CHUNK; i < i1; i++) {                                       \
            T mi = m[i] + (g[i] - m[i]) * k1;                                                 \
            T vi = v[i] + (g[i] * g[i] - v[i]) * k2;                                          \
            m[i] = mi;                                                                        \
            v[i] = vi;                                                                        \
            w[i] = w[i] - mi * lr / (SQRT(vi) + eps);                                         \
        }                                                                                     \
    }
ADAM_PASS(adam_f32, float, sqrtf)
ADAM_PASS(adam_f64, double, sqrt)

static int adam_fused(const tj_optimizer *o, tensor *w, tensor *g, tensor *const *s, tensor *lr) {
    int rc;
    if (!lr) return failed();
    /* storage of their own, values kept (a tape's snapshot or a view keeps the old one) */
    if ((rc = tj_variable_write_prepare(w, true)) || (rc = tj_variable_write_prepare(s[0], true)) ||
        (rc = tj_variable_write_prepare(s[1], true)))
        return rc;
    bool f32 = w->dtype == TJ_F32;
    adam_job j = {w->numel, w->data, s[0]->data, s[1]->data, g->data, 1 - o->beta1, 1 - o->beta2, o->epsilon,
                  f32 ? *(const float *)lr->data : *(const double *)lr->data};
    tj_parallel_for((w->numel + ADAM_CHUNK - 1) / ADAM_CHUNK, f32 ? adam_f32 : adam_f64, &j);
    return 0;
}

/* One variable w with gradient g and slots s[], lr the step size in w's dtype (rank 0). */
static int update(const tj_optimizer *o, tensor *w, tensor *g, tensor *const *s, tensor *lr) {
    tj_dtype dt = w->dtype;
#define K(x) tj_t_scalar(dt, (x))
    int rc = 0;
    switch (o->kind) {
    case TJ_OPT_SGD: {
        /* plain: w -= g lr.  momentum: m = m mu - g lr; w += m, or with Nesterov
         * w += m mu - g lr (with the new m) */
        tensor *glr = T_MUL(g, lr);
        if (o->momentum == 0) return assign(w, T_SUB(w, glr));
        tensor *m = T_SUB(T_MUL(s[0], K(o->momentum)), glr);
        tensor *step = o->nesterov ? T_SUB(T_MUL(m, K(o->momentum)), glr) : m;
        tensor *nw = T_ADD(w, step);
        if (!nw) return failed();
        if ((rc = assign(s[0], m))) return rc;
        return assign(w, nw);
    }
    case TJ_OPT_ADAM: {
        if (!tj_thread_state()->trace) return adam_fused(o, w, g, s, lr);   /* g has w's shape: check_args */
        /* m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= m lr_t / (sqrt(v) + eps), where
         * the caller folded the bias correction into lr: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) */
        tensor *m = T_ADD(s[0], T_MUL(T_SUB(g, s[0]), K(1 - o->beta1)));
        tensor *v = T_ADD(s[1], T_MUL(T_SUB(T_MUL(g, g), s[1]), K(1 - o->beta2)));
        tensor *den = T_ADD(tj_t_ew1(TJ_OP_SQRT, v), K(o->epsilon));
        tensor *nw = T_SUB(w, T_DIV(T_MUL(m, lr), den));
        if (!nw) return failed();
        if ((rc = assign(s[0], m)) || (rc = assign(s[1], v))) return rc;
        return assign(w, nw);
    }
    case TJ_OPT_RMSPROP: {
        /* r = rho r + (1 - rho) g^2; inc = lr g / sqrt(r + eps);
         * momentum: p = mu p + inc, w -= p; else w -= inc */
        tensor *r = T_ADD(T_MUL(K(o->rho), s[0]), T_MUL(K(1 - o->rho), T_MUL(g, g)));
        tensor *inc = T_DIV(T_MUL(lr, g), tj_t_ew1(TJ_OP_SQRT, T_ADD(r, K(o->epsilon))));
        tensor *p = o->momentum != 0 ? T_ADD(T_MUL(K(o->momentum), s[1]), inc) : inc;
        tensor *nw = T_SUB(w, p);
        if (!nw) return failed();
        if ((rc = assign(s[0], r)) || (o->momentum != 0 && (rc = assign(s[1], p)))) return rc;
        return assign(w, nw);
    }
    case TJ_OPT_ADAGRAD: {
        /* a += g^2; w -= lr g / sqrt(a + eps) */
        tensor *a = T_ADD(s[0], T_MUL(g, g));
        tensor *nw = T_SUB(w, T_DIV(T_MUL(lr, g), tj_t_ew1(TJ_OP_SQRT, T_ADD(a, K(o->epsilon)))));
        if (!nw) return failed();
        if ((rc = assign(s[0], a))) return rc;
        return assign(w, nw);
    }
    }
#undef K
    return rc;
}

/* The rate of this apply, f64 rank 0. Eagerly with a constant schedule it is computed in
 * C, with the same operations in the same order as the ops below (a trace needs those):
 * one tensor instead of about fifteen, a tenth of W1's eager step. */
static tensor *apply_lr(tj_optimizer *o, tensor *step) {
    tensor *base = tj_resolve(o->lr_var, "optimizer: learning_rate variable", 1);
    if (!base) return NULL;
    if (!tj_thread_state()->trace && o->sched.kind == TJ_SCHED_CONSTANT) {
        double lr = *(const float *)base->data;
        if (o->kind == TJ_OPT_ADAM) {
            double t1 = (double)*(const float *)step->data + 1.0;
            double c1 = 1.0 - pow(o->beta1, t1), c2 = 1.0 - pow(o->beta2, t1);
            lr = lr * sqrt(c2) / c1;
        }
        return tj_t_scalar(TJ_F64, lr);
    }
    tensor *t = tj_t_cast(step, TJ_F64);       /* applies so far: the schedule's t (Keras) */
    tensor *lr = tj_optim_lr(o, t);
    if (o->kind == TJ_OPT_ADAM) {
        /* Adam's bias correction uses t + 1, the number of this apply (Keras local_step) */
        tensor *t1 = T_ADD(t, tj_t_scalar(TJ_F64, 1));
        tensor *one = tj_t_scalar(TJ_F64, 1);
        tensor *c1 = T_SUB(one, tj_t_ew2(TJ_OP_POW, tj_t_scalar(TJ_F64, o->beta1), t1));
        tensor *c2 = T_SUB(one, tj_t_ew2(TJ_OP_POW, tj_t_scalar(TJ_F64, o->beta2), t1));
        lr = T_DIV(T_MUL(lr, tj_t_ew1(TJ_OP_SQRT, c2)), c1);
    }
    return lr;
}

/* The whole update, in the caller's scope: schedule, each variable, then the step. */
static int apply_all(tj_optimizer *o, int n, const resolved *r) {
    /* the optimizer's own variables (stale only if freed behind its back): fixed names,
     * no formatting per apply */
    tensor *step = tj_resolve(o->step, "optimizer: step variable", 1);
    if (!step) return tj_error_code();
    tensor *lr = apply_lr(o, step);
    if (!lr) return failed();
    for (int i = 0; i < n; i++) {
        const tj_opt_entry *e = &o->entries[r->idx[i]];
        tensor *s[TJ_OPT_MAX_SLOTS] = {NULL};
        for (int k = 0; k < o->nslots; k++)
            if (!(s[k] = tj_resolve(e->slot[k], "optimizer: slot", k + 1))) return tj_error_code();
        tj_scope_begin();                     /* this variable's temporaries */
        tj_thread_state()->updating = r->vs[i];   /* traces label these ops (dumps) */
        int rc = update(o, r->vs[i], r->gs[i], s, tj_t_cast(lr, r->vs[i]->dtype));
        tj_thread_state()->updating = NULL;
        int rc2 = tj_scope_end();
        if (rc || rc2) return rc ? rc : rc2;
    }
    /* float32 counts exactly to 2^24 = 16,777,216 applies; past that the step stops */
    return assign(step, T_ADD(step, tj_t_scalar(TJ_F32, 1)));
}

int tj_optimizer_apply(tj_optimizer *o, int n, tj_tensor *const *grads, tj_tensor *const *vars) {
    resolved r;
    int rc = prepare(o, "apply", n, grads, vars, true, &r);
    if (!rc) {
        tj_no_grad_begin();                   /* updates are not part of any gradient */
        tj_scope_begin();
        rc = apply_all(o, n, &r);
        int rc2 = tj_scope_end();
        tj_no_grad_end();
        if (!rc) rc = rc2;
    }
    release(&r);
    return rc;
}

/* ---- the optimizer's own variables ------------------------------------------------------- */

tj_tensor *tj_optimizer_step(const tj_optimizer *o) {
    if (!o) return tj_err(TJ_ERR_ARG, "optimizer_step: the optimizer is NULL"), NULL;
    return o->step;
}

/* "step", "learning_rate", then per tracked variable in first-seen order its slots */
int tj_optimizer_variables(const tj_optimizer *o, int cap, tj_tensor **vars) {
    if (!o) return tj_err(TJ_ERR_ARG, "optimizer_variables: the optimizer is NULL"), -1;
    if (cap < 0) return tj_err(TJ_ERR_ARG, "optimizer_variables: cap %d is negative", cap), -1;
    int count = 0;
#define PUT(v) do { if (vars && count < cap) vars[count] = (v); count++; } while (0)
    PUT(o->step);
    PUT(o->lr_var);
    for (int i = 0; i < o->n; i++)
        for (int s = 0; s < o->nslots; s++) PUT(o->entries[i].slot[s]);
#undef PUT
    return count;
}
