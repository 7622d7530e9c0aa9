/* losses.c: MSE, softmax cross-entropy (one-hot and sparse int32 labels) and binary
 * cross-entropy with logits, composed from ops so tapes and traces see them. Shapes must
 * match exactly (no silent broadcasting); labels are checked against the class count when
 * the loss runs eagerly (a compiled replay does not re-check them: a label out of range
 * there selects no class). Mean reduces over all elements (MSE, BCE) or the batch (CE). */
#include "nn/nn.h"
#include "ops/op.h"

static int check_reduction(const char *op, tj_reduction r) {
    if (r == TJ_REDUCTION_MEAN || r == TJ_REDUCTION_SUM) return 0;
    return tj_err(TJ_ERR_ARG, "%s: reduction %d is not TJ_REDUCTION_MEAN or TJ_REDUCTION_SUM", op, (int)r);
}

/* a and b: one float dtype, the same shape */
static int check_pair(const char *op, const char *an, const tensor *a, const char *bn, const tensor *b) {
    char sa[TJ_SHAPE_STR_MAX], sb[TJ_SHAPE_STR_MAX];
    if (!tj_dtype_is_float(a->dtype))
        return tj_err(TJ_ERR_DTYPE, "%s: %s dtype %s is not supported (float32 or float64)", op, an,
                      tj_dtype_name(a->dtype));
    if (a->dtype != b->dtype)
        return tj_err(TJ_ERR_DTYPE, "%s: %s is %s, %s is %s", op, an, tj_dtype_name(a->dtype), bn,
                      tj_dtype_name(b->dtype));
    if (!tj_shape_equal(&a->shape, &b->shape))
        return tj_err(TJ_ERR_SHAPE, "%s: %s %s and %s %s differ", op, an, tj_shape_str(&a->shape, sa, sizeof sa),
                      bn, tj_shape_str(&b->shape, sb, sizeof sb));
    return 0;
}

static int check_logits(const char *op, const tensor *logits) {
    char s[TJ_SHAPE_STR_MAX];
    if (logits->shape.ndim != 2)
        return tj_err(TJ_ERR_SHAPE, "%s: logits must be (batch, classes), got %s", op,
                      tj_shape_str(&logits->shape, s, sizeof s));
    if (!tj_dtype_is_float(logits->dtype))
        return tj_err(TJ_ERR_DTYPE, "%s: logits dtype %s is not supported (float32 or float64)", op,
                      tj_dtype_name(logits->dtype));
    return 0;
}

/* sum(per) or sum(per) / count */
static tj_tensor *reduced(tensor *per, tj_reduction r, int64_t count) {
    tensor *s = tj_t_reduce(TJ_OP_SUM, per, 0, NULL, false);
    if (s && r == TJ_REDUCTION_MEAN) s = T_DIV(s, tj_t_scalar(s->dtype, (double)count));
    return tj_handle(s);
}

/* mse = reduce((pred - target)^2) */
tj_tensor *tj_loss_mse(tj_tensor *pred_h, tj_tensor *target_h, tj_reduction r) {
    static const char op[] = "loss_mse";
    tj_tensor *hs[2] = {pred_h, target_h};
    tensor *t[2];
    if (!tj_resolve_args(op, 2, hs, t) || check_pair(op, "pred", t[0], "target", t[1]) || check_reduction(op, r))
        return NULL;
    tensor *d = T_SUB(t[0], t[1]);
    return reduced(T_MUL(d, d), r, t[0]->numel);
}

/* ce = -sum_ij onehot_ij * log_softmax(logits)_ij, / batch for the mean. log_softmax
 * shifts by the row max, so logits of 1000 stay finite. */
static tj_tensor *ce(const char *op, tensor *logits, tensor *onehot, tj_reduction r) {
    tensor *lp = tj_resolve(tj_log_softmax(tj_handle(logits), 1), op, 1);
    if (!lp) return NULL;
    tensor *s = tj_t_reduce(TJ_OP_SUM, T_MUL(onehot, lp), 0, NULL, false);
    return reduced(tj_t_ew1(TJ_OP_NEG, s), r, logits->shape.dim[0]);
}

tj_tensor *tj_loss_softmax_ce(tj_tensor *logits_h, tj_tensor *onehot_h, tj_reduction r) {
    static const char op[] = "loss_softmax_ce";
    tj_tensor *hs[2] = {logits_h, onehot_h};
    tensor *t[2];
    if (!tj_resolve_args(op, 2, hs, t) || check_logits(op, t[0]) || check_pair(op, "logits", t[0], "onehot", t[1]) ||
        check_reduction(op, r))
        return NULL;
    return ce(op, t[0], t[1], r);
}

/* sparse: the one-hot rows are (labels[:, None] == [0, classes)) */
tj_tensor *tj_loss_sparse_softmax_ce(tj_tensor *logits_h, tj_tensor *labels_h, tj_reduction r) {
    static const char op[] = "loss_sparse_softmax_ce";
    tj_tensor *hs[2] = {logits_h, labels_h};
    tensor *t[2];
    if (!tj_resolve_args(op, 2, hs, t) || check_logits(op, t[0]) || check_reduction(op, r)) return NULL;
    tensor *logits = t[0], *labels = t[1];
    int64_t batch = logits->shape.dim[0], classes = logits->shape.dim[1];
    char sa[TJ_SHAPE_STR_MAX], sb[TJ_SHAPE_STR_MAX];
    if (labels->dtype != TJ_I32)
        return tj_err(TJ_ERR_DTYPE, "%s: labels must be int32, got %s", op, tj_dtype_name(labels->dtype)), NULL;
    if (labels->shape.ndim != 1 || labels->shape.dim[0] != batch)
        return tj_err(TJ_ERR_SHAPE, "%s: labels %s do not fit logits %s: expected (%lld,)", op,
                      tj_shape_str(&labels->shape, sa, sizeof sa), tj_shape_str(&logits->shape, sb, sizeof sb),
                      (long long)batch), NULL;
    const int32_t *lab = labels->data;      /* (batch,) */
    for (int64_t i = 0; i < batch; i++)
        if (lab[i] < 0 || lab[i] >= classes)
            return tj_err(TJ_ERR_VALUE, "%s: label %d (element %lld of labels) is out of range [0, %lld)", op,
                          lab[i], (long long)i, (long long)classes), NULL;
    tensor *iota = tj_tensor_new(TJ_I32, &(tj_shape){2, {1, classes}});   /* (1, classes) */
    if (!iota) return NULL;
    for (int64_t j = 0; j < classes; j++) ((int32_t *)iota->data)[j] = (int32_t)j;
    tensor *col = tj_t_reshape(labels, &(tj_shape){2, {batch, 1}});
    tensor *onehot = tj_t_cast(tj_t_ew2(TJ_OP_EQUAL, col, iota), logits->dtype);   /* (batch, classes) */
    return onehot ? ce(op, logits, onehot, r) : NULL;
}

/* bce = max(x, 0) - x*z + log(1 + exp(-|x|)), TensorFlow's stable form: exp never sees a
 * positive argument, so logits of +-100 give finite values and gradients. */
tj_tensor *tj_loss_bce_logits(tj_tensor *logits_h, tj_tensor *target_h, tj_reduction r) {
    static const char op[] = "loss_bce_logits";
    tj_tensor *hs[2] = {logits_h, target_h};
    tensor *t[2];
    if (!tj_resolve_args(op, 2, hs, t) || check_pair(op, "logits", t[0], "target", t[1]) || check_reduction(op, r))
        return NULL;
    tensor *x = t[0], *z = t[1];
    tensor *e = tj_t_ew1(TJ_OP_EXP, tj_t_ew1(TJ_OP_NEG, tj_t_ew1(TJ_OP_ABS, x)));
    tensor *soft = tj_t_ew1(TJ_OP_LOG, T_ADD(tj_t_scalar(x->dtype, 1.0), e));
    tensor *per = T_ADD(T_SUB(tj_t_ew1(TJ_OP_RELU, x), T_MUL(x, z)), soft);
    return reduced(per, r, x->numel);
}
