/* reshape: the same values with another shape of the same size (a view: no copy).
 * One dimension may be -1 and is inferred. */
#include "op.h"

#include <string.h>

/* Reshape is a view in eager; as a kernel it is a copy. */
static int reshape_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)attr; (void)nin;
    memcpy(out->data, in[0]->data, (size_t)out->numel * tj_dtype_size(out->dtype));
    return 0;
}

tensor *tj_t_reshape(tensor *t, const tj_shape *shape_) {
    if (!t) return NULL;
    tj_shape s = *shape_;
    char a[TJ_SHAPE_STR_MAX], b[TJ_SHAPE_STR_MAX];
    if (s.ndim < 0 || s.ndim > TJ_MAX_DIMS)
        return tj_err(TJ_ERR_SHAPE, "reshape: rank %d is out of range [0, %d]", s.ndim, TJ_MAX_DIMS), NULL;
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < s.ndim; d++) {
        if (s.dim[d] == -1 && infer < 0) { infer = d; continue; }
        if (s.dim[d] < 0)
            return tj_err(TJ_ERR_SHAPE, "reshape: bad target shape %s (one -1 at most, others >= 0)",
                          tj_shape_str(&s, a, sizeof a)), NULL;
        if (s.dim[d] && known > TJ_MAX_NUMEL / s.dim[d])
            return tj_err(TJ_ERR_SHAPE, "reshape: target shape %s has too many elements",
                          tj_shape_str(&s, a, sizeof a)), NULL;
        known *= s.dim[d];
    }
    if (infer >= 0) {
        if (known == 0 || t->numel % known)
            return tj_err(TJ_ERR_SHAPE, "reshape: cannot reshape %s (%lld elements) into %s",
                          tj_shape_str(&t->shape, a, sizeof a), (long long)t->numel,
                          tj_shape_str(&s, b, sizeof b)), NULL;
        s.dim[infer] = t->numel / known;
        known *= s.dim[infer];
    }
    if (known != t->numel)
        return tj_err(TJ_ERR_SHAPE, "reshape: cannot reshape %s (%lld elements) into %s (%lld elements)",
                      tj_shape_str(&t->shape, a, sizeof a), (long long)t->numel,
                      tj_shape_str(&s, b, sizeof b), (long long)known), NULL;
    tensor *out = tj_tensor_view(t, &s);
    if (!out) return NULL;
    if (tj_record(TJ_OP_RESHAPE, 1, &t, out, NULL)) return NULL;
    return out;
}

/* d reshape(a)/da = reshape(g) back to a's shape */
static int reshape_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = tj_t_reshape(g, &n->in[0]->shape);
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_reshape = {.name = "reshape", .kind = TJ_KIND_OTHER, .grad = reshape_grad, .exec = reshape_exec};

tj_tensor *tj_reshape(tj_tensor *h, tj_shape shape) {
    tensor *t = tj_resolve(h, "reshape", 1);
    return t ? tj_handle(tj_t_reshape(t, &shape)) : NULL;
}
