/* scatter_add: zeros of `shape` with upd's slices added at int32 indices along axis;
 * the gradient of gather (internal: no public function). Repeated indices add up, in
 * index order, so the result is deterministic. */
#include "op.h"

#include <string.h>


#define ACCUMULATE(T)                                                             \
    do {                                                                          \
        const T *u = upd->data;                                                   \
        T *y = out->data;                                                         \
        for (int64_t o = 0; o < outer; o++)                                       \
            for (int64_t i = 0; i < idx->numel; i++, u += inner) {                \
                T *dst = y + (o * len + ix[i]) * inner;                           \
                for (int64_t j = 0; j < inner; j++) dst[j] += u[j];               \
            }                                                                     \
    } while (0)

static int scatter_add_check(const tj_attr *attr, tensor *const *in, const tensor *out) {
    return tj_check_indices("scatter_add", in[1], out->shape.dim[attr->axis], attr->axis);
}

static int scatter_add_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)nin;
    const tensor *upd = in[0], *idx = in[1];
    const tj_shape *shape = &out->shape;
    int axis = attr->axis;
    int64_t outer = 1, inner = 1, len = shape->dim[axis];
    for (int d = 0; d < axis; d++) outer *= shape->dim[d];
    for (int d = axis + 1; d < shape->ndim; d++) inner *= shape->dim[d];
    memset(out->data, 0, (size_t)out->numel * tj_dtype_size(out->dtype));
    const int32_t *ix = idx->data;
    if (upd->dtype == TJ_F32) ACCUMULATE(float);
    else ACCUMULATE(double);
    return 0;
}

tensor *tj_t_scatter_add(tensor *upd, tensor *idx, int axis, const tj_shape *shape) {
    if (!upd || !idx) return NULL;
    if (tj_check_indices("scatter_add", idx, shape->dim[axis], axis)) return NULL;
    if (!tj_dtype_is_float(upd->dtype))
        return tj_err(TJ_ERR_DTYPE, "scatter_add: dtype %s is not supported", tj_dtype_name(upd->dtype)), NULL;
    tensor *out = tj_tensor_new(upd->dtype, shape);
    tensor *in[2] = {upd, idx};
    tj_attr attr = {.axis = axis};
    if (!out || scatter_add_exec(&attr, 2, in, out)) return NULL;
    if (tj_record(TJ_OP_SCATTER_ADD, 2, in, out, &attr)) return NULL;
    return out;
}

/* d scatter_add(u, i)/du = gather(g, i) */
static int scatter_add_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = tj_t_gather(g, n->in[1], n->attr.axis);
    gin[1] = NULL;
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_scatter_add = {
    .name = "scatter_add",
    .kind = TJ_KIND_OTHER,
    .check = scatter_add_check,
    .grad = scatter_add_grad,
    .exec = scatter_add_exec,
};
