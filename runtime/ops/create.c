/* create.c: tensors made from values: tj_tensor_from, zeros, ones, full, scalar.
 * Constants are not ops: nothing records them, and they have no gradient. */
#include "op.h"

#include <string.h>

tj_tensor *tj_tensor_from(tj_dtype dt, tj_shape shape, const void *data) {
    if (!tj_dtype_valid(dt)) return tj_err(TJ_ERR_DTYPE, "tensor_from: %d is not a dtype", (int)dt), NULL;
    if (tj_shape_check(&shape, "tensor_from")) return NULL;
    int64_t n = tj_shape_numel(&shape);
    if (!data && n > 0) return tj_err(TJ_ERR_ARG, "tensor_from: data is NULL"), NULL;
    tensor *t = tj_tensor_new(dt, &shape);
    if (!t) return NULL;
    if (n > 0) memcpy(t->data, data, (size_t)n * tj_dtype_size(dt));
    return tj_handle(t);
}

static tj_tensor *filled(const char *op, tj_dtype dt, const tj_shape *shape, double value) {
    if (!tj_dtype_valid(dt)) return tj_err(TJ_ERR_DTYPE, "%s: %d is not a dtype", op, (int)dt), NULL;
    if (tj_shape_check(shape, op)) return NULL;
    return tj_handle(tj_t_full(dt, shape, value));
}

tj_tensor *tj_full(tj_dtype dt, tj_shape shape, double value) { return filled("full", dt, &shape, value); }
tj_tensor *tj_zeros(tj_dtype dt, tj_shape shape) { return filled("zeros", dt, &shape, 0.0); }
tj_tensor *tj_ones(tj_dtype dt, tj_shape shape) { return filled("ones", dt, &shape, 1.0); }
tj_tensor *tj_scalar(double value) { return tj_handle(tj_t_scalar(TJ_F32, value)); }
