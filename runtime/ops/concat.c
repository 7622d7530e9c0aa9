/* concat: joins tensors of one dtype along an axis; other dims must agree. */
#include "op.h"

#include <string.h>

static int concat_exec(const tj_attr *attr, int n, tensor *const *ts, tensor *out) {
    int axis = attr->axis;
    int64_t outer = 1, inner = (int64_t)tj_dtype_size(out->dtype);
    for (int d = 0; d < axis; d++) outer *= out->shape.dim[d];
    for (int d = axis + 1; d < out->shape.ndim; d++) inner *= out->shape.dim[d];
    char *y = out->data;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < n; i++) {
            int64_t bytes = ts[i]->shape.dim[axis] * inner;
            memcpy(y, (const char *)ts[i]->data + o * bytes, (size_t)bytes);
            y += bytes;
        }
    return 0;
}

tensor *tj_t_concat(int n, tensor *const *ts, int axis_) {
    if (n < 1 || n > 4096) return tj_err(TJ_ERR_ARG, "concat: %d tensors given, need 1 to 4096", n), NULL;
    for (int i = 0; i < n; i++)
        if (!ts[i]) return NULL;
    const tensor *t0 = ts[0];
    int axis;
    if (tj_axis(axis_, t0->shape.ndim, "concat", &axis)) return NULL;
    tj_shape os = t0->shape;
    os.dim[axis] = 0;
    char a[TJ_SHAPE_STR_MAX], b[TJ_SHAPE_STR_MAX];
    for (int i = 0; i < n; i++) {
        const tensor *t = ts[i];
        if (t->dtype != t0->dtype)
            return tj_err(TJ_ERR_DTYPE, "concat: tensor %d is %s, tensor 0 is %s", i,
                          tj_dtype_name(t->dtype), tj_dtype_name(t0->dtype)), NULL;
        bool ok = t->shape.ndim == t0->shape.ndim;
        for (int d = 0; ok && d < t0->shape.ndim; d++) ok = d == axis || t->shape.dim[d] == t0->shape.dim[d];
        if (!ok)
            return tj_err(TJ_ERR_SHAPE, "concat: tensor %d has shape %s, tensor 0 has %s (only axis %d may differ)",
                          i, tj_shape_str(&t->shape, a, sizeof a), tj_shape_str(&t0->shape, b, sizeof b),
                          axis_), NULL;
        os.dim[axis] += t->shape.dim[axis];
    }
    tensor *out = tj_tensor_new(t0->dtype, &os);
    tj_attr attr = {.axis = axis};
    if (!out || concat_exec(&attr, n, ts, out)) return NULL;
    if (tj_record(TJ_OP_CONCAT, n, ts, out, &attr)) return NULL;
    return out;
}

/* d concat/d ts[i] = the slice of g where ts[i] went */
static int concat_grad(const tj_node *n, tensor *g, tensor **gin) {
    int64_t begin[TJ_MAX_DIMS] = {0}, size[TJ_MAX_DIMS];
    int axis = n->attr.axis;
    for (int i = 0; i < n->nin; i++) {
        for (int d = 0; d < g->shape.ndim; d++) size[d] = n->in[i]->shape.dim[d];
        gin[i] = tj_t_slice(g, begin, size);
        if (!gin[i]) return -1;
        begin[axis] += size[axis];
    }
    return 0;
}

const tj_op_info tj_op_concat = {.name = "concat", .kind = TJ_KIND_OTHER, .grad = concat_grad, .exec = concat_exec};

tj_tensor *tj_concat(int n, tj_tensor *const *hs, int axis) {
    if (!hs) return tj_err(TJ_ERR_ARG, "concat: the array of tensors is NULL"), NULL;
    if (n < 1 || n > 4096) return tj_err(TJ_ERR_ARG, "concat: %d tensors given, need 1 to 4096", n), NULL;
    tensor *ts[4096];
    if (!tj_resolve_args("concat", n, hs, ts)) return NULL;
    return tj_handle(tj_t_concat(n, ts, axis));
}
