/* slice: the box begin[d] .. begin[d] + size[d] of each dim (size -1: to the end). */
#include "op.h"

#include <string.h>

/* Rows of out's last dim copied from the box at attr->slice.begin. */
static int slice_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)nin;
    const tensor *t = in[0];
    int r = t->shape.ndim;
    int64_t st[TJ_MAX_DIMS], idx[TJ_MAX_DIMS] = {0}, es = (int64_t)tj_dtype_size(t->dtype);
    tj_strides(&t->shape, st);
    int64_t inner = r ? out->shape.dim[r - 1] : 1, off = 0;
    for (int d = 0; d < r; d++) off += attr->slice.begin[d] * st[d];
    for (int64_t row = 0; out->numel && row < out->numel / inner; row++) {
        memcpy((char *)out->data + row * inner * es, (const char *)t->data + off * es, (size_t)(inner * es));
        for (int d = r - 2; d >= 0; d--) {
            off += st[d];
            if (++idx[d] < out->shape.dim[d]) break;
            off -= idx[d] * st[d];
            idx[d] = 0;
        }
    }
    return 0;
}

tensor *tj_t_slice(tensor *t, const int64_t *begin, const int64_t *size) {
    if (!t) return NULL;
    int r = t->shape.ndim;
    if (r > 0 && (!begin || !size)) return tj_err(TJ_ERR_ARG, "slice: begin or size is NULL"), NULL;
    tj_shape os = {.ndim = r};
    for (int d = 0; d < r; d++) {
        int64_t b = begin[d], s = size[d] == -1 ? t->shape.dim[d] - b : size[d];
        if (b < 0 || s < 0 || b > t->shape.dim[d] || s > t->shape.dim[d] - b)
            return tj_err(TJ_ERR_ARG, "slice: dim %d: begin %lld size %lld is outside 0..%lld", d,
                          (long long)begin[d], (long long)size[d], (long long)t->shape.dim[d]), NULL;
        os.dim[d] = s;
    }
    tensor *out = tj_tensor_new(t->dtype, &os);
    tj_attr attr = {0};
    for (int d = 0; d < r; d++) attr.slice.begin[d] = begin[d];
    if (!out || slice_exec(&attr, 1, &t, out)) return NULL;
    if (tj_record(TJ_OP_SLICE, 1, &t, out, &attr)) return NULL;
    return out;
}

/* d slice(a)/da = g placed in zeros of a's shape: per dim, concat zeros before/after */
static int slice_grad(const tj_node *n, tensor *g, tensor **gin) {
    const tj_shape *is = &n->in[0]->shape;
    tensor *r = g;
    for (int d = 0; d < is->ndim && r; d++) {
        int64_t before = n->attr.slice.begin[d], after = is->dim[d] - before - r->shape.dim[d];
        if (!before && !after) continue;
        tensor *parts[3];
        int np = 0;
        tj_shape zs = r->shape;
        if (before) { zs.dim[d] = before; parts[np++] = tj_t_full(g->dtype, &zs, 0); }
        parts[np++] = r;
        if (after) { zs.dim[d] = after; parts[np++] = tj_t_full(g->dtype, &zs, 0); }
        r = tj_t_concat(np, parts, d);
    }
    gin[0] = r;
    return r ? 0 : -1;
}

const tj_op_info tj_op_slice = {.name = "slice", .kind = TJ_KIND_OTHER, .grad = slice_grad, .exec = slice_exec};

tj_tensor *tj_slice(tj_tensor *h, const int64_t *begin, const int64_t *size) {
    tensor *t = tj_resolve(h, "slice", 1);
    return t ? tj_handle(tj_t_slice(t, begin, size)) : NULL;
}
