/* gather: out = t indexed along axis by int32 indices (numpy take): out's shape is
 * t.shape[:axis] + indices.shape + t.shape[axis+1:]. An index outside [0, dim) is an
 * error naming it. */
#include "op.h"

#include <string.h>

/* Shared with scatter_add: checks indices against dim; returns 0 or an error. */
int tj_check_indices(const char *op, const tensor *idx, int64_t dim, int axis) {
    if (idx->dtype != TJ_I32)
        return tj_err(TJ_ERR_DTYPE, "%s: indices must be int32, got %s", op, tj_dtype_name(idx->dtype));
    const int32_t *ix = idx->data;
    for (int64_t i = 0; i < idx->numel; i++)
        if (ix[i] < 0 || ix[i] >= dim)
            return tj_err(TJ_ERR_VALUE, "%s: index %d (element %lld of indices) is out of range [0, %lld) for axis %d",
                          op, ix[i], (long long)i, (long long)dim, axis);
    return 0;
}

static int gather_check(const tj_attr *attr, tensor *const *in, const tensor *out) {
    (void)out;
    return tj_check_indices("gather", in[1], in[0]->shape.dim[attr->axis], attr->axis);
}

static int gather_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)nin;
    const tensor *t = in[0], *idx = in[1];
    int axis = attr->axis;
    int64_t outer = 1, inner = (int64_t)tj_dtype_size(t->dtype), len = t->shape.dim[axis];
    for (int d = 0; d < axis; d++) outer *= t->shape.dim[d];
    for (int d = axis + 1; d < t->shape.ndim; d++) inner *= t->shape.dim[d];
    const int32_t *ix = idx->data;
    char *y = out->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < idx->numel; i++, y += inner)
            memcpy(y, (const char *)t->data + (o * len + ix[i]) * inner, (size_t)inner);
    return 0;
}

tensor *tj_t_gather(tensor *t, tensor *idx, int axis_) {
    if (!t || !idx) return NULL;
    int axis;
    if (tj_axis(axis_, t->shape.ndim, "gather", &axis)) return NULL;
    if (tj_check_indices("gather", idx, t->shape.dim[axis], axis_)) return NULL;
    if (t->shape.ndim - 1 + idx->shape.ndim > TJ_MAX_DIMS)
        return tj_err(TJ_ERR_SHAPE, "gather: result would have rank %d > %d",
                      t->shape.ndim - 1 + idx->shape.ndim, TJ_MAX_DIMS), NULL;
    tj_shape os = {0};
    for (int d = 0; d < axis; d++) os.dim[os.ndim++] = t->shape.dim[d];
    for (int d = 0; d < idx->shape.ndim; d++) os.dim[os.ndim++] = idx->shape.dim[d];
    for (int d = axis + 1; d < t->shape.ndim; d++) os.dim[os.ndim++] = t->shape.dim[d];
    tensor *out = tj_tensor_new(t->dtype, &os);
    tensor *in[2] = {t, idx};
    tj_attr attr = {.axis = axis};
    if (!out || gather_exec(&attr, 2, in, out)) return NULL;
    if (tj_record(TJ_OP_GATHER, 2, in, out, &attr)) return NULL;
    return out;
}

/* d gather(t, i)/dt = scatter_add of g into zeros of t's shape at i; indices get none */
static int gather_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = tj_t_scatter_add(g, n->in[1], n->attr.axis, &n->in[0]->shape);
    gin[1] = NULL;
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_gather = {.name = "gather", .kind = TJ_KIND_OTHER, .check = gather_check, .grad = gather_grad, .exec = gather_exec};

tj_tensor *tj_gather(tj_tensor *h, tj_tensor *indices, int axis) {
    tj_tensor *hs[2] = {h, indices};
    tensor *t[2];
    if (!tj_resolve_args("gather", 2, hs, t)) return NULL;
    return tj_handle(tj_t_gather(t[0], t[1], axis));
}
