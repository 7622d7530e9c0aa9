/* cast: converts values to another dtype. Floats to int32 truncate toward zero and
 * saturate at the int32 range; NaN becomes 0 (C leaves these undefined; we define them). */
#include "op.h"

#define CONVERT(TO, FROM, EXPR)                                                   \
    do {                                                                          \
        const FROM *x = t->data;                                                  \
        TO *y = out->data;                                                        \
        for (int64_t i = 0; i < t->numel; i++) y[i] = (EXPR);                     \
    } while (0)

static int cast_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)attr; (void)nin;
    const tensor *t = in[0];
    switch (t->dtype) {
    case TJ_F32:
        if (out->dtype == TJ_F64) CONVERT(double, float, (double)x[i]);
        else if (out->dtype == TJ_I32) CONVERT(int32_t, float, tj_f2i(x[i]));
        else CONVERT(float, float, x[i]);
        break;
    case TJ_F64:
        if (out->dtype == TJ_F32) CONVERT(float, double, (float)x[i]);
        else if (out->dtype == TJ_I32) CONVERT(int32_t, double, tj_f2i(x[i]));
        else CONVERT(double, double, x[i]);
        break;
    case TJ_I32:
        if (out->dtype == TJ_F32) CONVERT(float, int32_t, (float)x[i]);
        else if (out->dtype == TJ_F64) CONVERT(double, int32_t, (double)x[i]);
        else CONVERT(int32_t, int32_t, x[i]);
        break;
    }
    return 0;
}

tensor *tj_t_cast(tensor *t, tj_dtype dt) {
    if (!t) return NULL;
    if (!tj_dtype_valid(dt)) return tj_err(TJ_ERR_DTYPE, "cast: %d is not a dtype", (int)dt), NULL;
    if (t->dtype == dt) return t;   /* as TensorFlow: the same tensor */
    tensor *out = tj_tensor_new(dt, &t->shape);
    if (!out || cast_exec(NULL, 1, &t, out)) return NULL;
    tj_attr attr = {.dtype = dt};
    if (tj_record(TJ_OP_CAST, 1, &t, out, &attr)) return NULL;
    return out;
}

/* d cast(a)/da = cast(g) back to a's dtype (none through int32) */
static int cast_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = tj_dtype_is_float(n->in[0]->dtype) ? tj_t_cast(g, n->in[0]->dtype) : NULL;
    return 0;
}

const tj_op_info tj_op_cast = {.name = "cast", .kind = TJ_KIND_OTHER, .grad = cast_grad, .exec = cast_exec};

tj_tensor *tj_cast(tj_tensor *h, tj_dtype dt) {
    tensor *t = tj_resolve(h, "cast", 1);
    return t ? tj_handle(tj_t_cast(t, dt)) : NULL;
}
