/* argmax: int32 index of the largest value along one axis; the first of ties, and the
 * first NaN if there is one (as numpy). Not differentiable. */
#include "op.h"

#define SCAN(T)                                                                   \
    do {                                                                          \
        const T *x = t->data;                                                     \
        for (int64_t o = 0; o < outer; o++)                                       \
            for (int64_t i = 0; i < inner; i++) {                                 \
                const T *p = x + o * len * inner + i;                             \
                int32_t best = 0;                                                 \
                for (int64_t k = 1; k < len; k++) {                               \
                    T v = p[k * inner], b = p[best * inner];                      \
                    if (b != b) break;                                            \
                    if (v > b || v != v) best = (int32_t)k;                       \
                }                                                                 \
                y[o * inner + i] = best;                                          \
            }                                                                     \
    } while (0)

static int argmax_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)nin;
    const tensor *t = in[0];
    int axis = attr->axis;
    int64_t len = t->shape.dim[axis], outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= t->shape.dim[d];
    for (int d = axis + 1; d < t->shape.ndim; d++) inner *= t->shape.dim[d];
    int32_t *y = out->data;
    switch (t->dtype) {
    case TJ_F32: SCAN(float); break;
    case TJ_F64: SCAN(double); break;
    case TJ_I32: SCAN(int32_t); break;
    }
    return 0;
}

tensor *tj_t_argmax(tensor *t, int axis_) {
    if (!t) return NULL;
    int axis;
    if (tj_axis(axis_, t->shape.ndim, "argmax", &axis)) return NULL;
    int64_t len = t->shape.dim[axis];
    if (len == 0)
        return tj_err(TJ_ERR_SHAPE, "argmax: axis %d is empty", axis_), NULL;
    if (len > INT32_MAX)
        return tj_err(TJ_ERR_SHAPE, "argmax: axis %d has %lld elements, more than int32 holds", axis_,
                      (long long)len), NULL;
    tj_shape os = {0};
    for (int d = 0; d < t->shape.ndim; d++)
        if (d != axis) os.dim[os.ndim++] = t->shape.dim[d];
    tensor *out = tj_tensor_new(TJ_I32, &os);
    tj_attr attr = {.axis = axis};
    if (!out || argmax_exec(&attr, 1, &t, out)) return NULL;
    if (tj_record(TJ_OP_ARGMAX, 1, &t, out, &attr)) return NULL;
    return out;
}

const tj_op_info tj_op_argmax = {.name = "argmax", .kind = TJ_KIND_OTHER, .exec = argmax_exec};

tj_tensor *tj_argmax(tj_tensor *h, int axis) {
    tensor *t = tj_resolve(h, "argmax", 1);
    return t ? tj_handle(tj_t_argmax(t, axis)) : NULL;
}
