/* composite.c: public ops built from primitives (no row in ops.def): mean, softmax,
 * log_softmax, dropout. Their gradients come from the primitives'. */
#include "op.h"

/* mean = sum / count; int32 divides with truncation, as TensorFlow's reduce_mean */
tj_tensor *tj_mean(tj_tensor *h, int naxes, const int *axes, bool keepdims) {
    tensor *t = tj_resolve(h, "mean", 1);
    bool mask[TJ_MAX_DIMS];
    if (!t || tj_reduce_axes("mean", t, naxes, axes, mask)) return NULL;
    tensor *s = tj_t_reduce(TJ_OP_SUM, t, naxes, axes, keepdims);
    if (!s) return NULL;
    int64_t count = s->numel ? t->numel / s->numel : 0;
    if (t->dtype == TJ_I32 && count == 0)
        return tj_err(TJ_ERR_SHAPE, "mean: int32 mean over an empty axis"), NULL;
    return tj_handle(T_DIV(s, tj_t_scalar(t->dtype, (double)count)));
}

static tensor *shifted(tensor *t, int axis) {
    /* x - max(x): the max is held constant, which changes no gradient (softmax is
     * invariant to the shift) and keeps exp from overflowing */
    tensor *m = tj_t_reduce(TJ_OP_MAX, t, 1, &axis, true);
    return T_SUB(t, tj_t_stop_gradient(m));
}

static tensor *softmax_arg(tj_tensor *h, const char *op, int *axis) {
    tensor *t = tj_resolve(h, op, 1);
    if (!t) return NULL;
    if (!tj_dtype_is_float(t->dtype))
        return tj_err(TJ_ERR_DTYPE, "%s: dtype %s is not supported (cast to float32 first)", op,
                      tj_dtype_name(t->dtype)), NULL;
    if (tj_axis(*axis, t->shape.ndim, op, axis)) return NULL;
    return t;
}

/* softmax over an empty axis is empty, as numpy's (there is no max to shift by) */
static bool empty_axis(const tensor *t, int axis) { return t->shape.dim[axis] == 0; }

/* softmax(x) = exp(x - m) / sum(exp(x - m)) */
tj_tensor *tj_softmax(tj_tensor *h, int axis) {
    tensor *t = softmax_arg(h, "softmax", &axis);
    if (!t) return NULL;
    if (empty_axis(t, axis)) return tj_handle(tj_t_full(t->dtype, &t->shape, 0));
    tensor *e = tj_t_ew1(TJ_OP_EXP, shifted(t, axis));
    return tj_handle(T_DIV(e, tj_t_reduce(TJ_OP_SUM, e, 1, &axis, true)));
}

/* log_softmax(x) = (x - m) - log(sum(exp(x - m))) */
tj_tensor *tj_log_softmax(tj_tensor *h, int axis) {
    tensor *t = softmax_arg(h, "log_softmax", &axis);
    if (!t) return NULL;
    if (empty_axis(t, axis)) return tj_handle(tj_t_full(t->dtype, &t->shape, 0));
    tensor *z = shifted(t, axis);
    tensor *lse = tj_t_ew1(TJ_OP_LOG, tj_t_reduce(TJ_OP_SUM, tj_t_ew1(TJ_OP_EXP, z), 1, &axis, true));
    return tj_handle(T_SUB(z, lse));
}

/* dropout(x) = x * (keep * 1/(1-rate)), keep = (u > rate), u ~ U[0,1) */
tj_tensor *tj_dropout(tj_tensor *h, double rate, bool training) {
    tensor *t = tj_resolve(h, "dropout", 1);
    if (!t) return NULL;
    if (!(rate >= 0 && rate < 1))
        return tj_err(TJ_ERR_ARG, "dropout: rate %g is outside [0, 1)", rate), NULL;
    if (!tj_dtype_is_float(t->dtype))
        return tj_err(TJ_ERR_DTYPE, "dropout: dtype %s is not supported", tj_dtype_name(t->dtype)), NULL;
    if (!training || rate == 0) return h;
    tensor *u = tj_t_rand(TJ_OP_RAND_UNIFORM, &t->shape, 0.0, 1.0);
    tensor *keep = tj_t_cast(tj_t_ew2(TJ_OP_GREATER, u, tj_t_scalar(TJ_F32, rate)), t->dtype);
    tensor *scale = tj_t_scalar(t->dtype, 1.0 / (1.0 - rate));
    return tj_handle(T_MUL(t, T_MUL(keep, scale)));
}
