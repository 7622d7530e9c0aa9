/* broadcast: tj_broadcast_to, numpy rules (a copy). Also tj_t_sum_to, its inverse for
 * gradients: the one place the backward pass undoes broadcasting. */
#include "op.h"

#include <string.h>

/* A row: a copy of n values (stride 1) or n copies of one (stride 0). */
#define COPY_ROW(fname, T)                                                              \
    static void fname(int64_t n, const void *const *in, const int64_t *s, void *out) {  \
        if (s[0]) { memcpy(out, in[0], (size_t)n * sizeof(T)); return; }               \
        T v, *y = out;                                                                  \
        memcpy(&v, in[0], sizeof v);                                                    \
        for (int64_t i = 0; i < n; i++) y[i] = v;                                       \
    }
COPY_ROW(copy_f32, uint32_t)
COPY_ROW(copy_f64, uint64_t)

/* Rows of out's last dim, each copied from t with stride 0 where t has size 1. */
static int broadcast_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)attr; (void)nin;
    const tensor *t = in[0];
    const tj_shape *shape = &out->shape;
    int64_t ist[TJ_MAX_DIMS], idx[TJ_MAX_DIMS] = {0}, st[TJ_MAX_DIMS];
    tj_strides(&t->shape, ist);
    int off_d = shape->ndim - t->shape.ndim;
    for (int d = 0; d < shape->ndim; d++) {
        int dt = d - off_d;
        st[d] = dt >= 0 && t->shape.dim[dt] != 1 ? ist[dt] : 0;
    }
    size_t es = tj_dtype_size(t->dtype);
    int r = shape->ndim;
    int64_t inner = r ? shape->dim[r - 1] : 1, sin = r ? st[r - 1] : 0, off = 0;
    for (int64_t row = 0; out->numel && row < out->numel / inner; row++) {
        const void *src[1] = {(const char *)t->data + off * (int64_t)es};
        (es == 8 ? copy_f64 : copy_f32)(inner, src, &sin, (char *)out->data + row * inner * (int64_t)es);
        for (int d = r - 2; d >= 0; d--) {
            off += st[d];
            if (++idx[d] < shape->dim[d]) break;
            off -= idx[d] * st[d];
            idx[d] = 0;
        }
    }
    return 0;
}

tensor *tj_t_broadcast(tensor *t, const tj_shape *shape) {
    if (!t) return NULL;
    char a[TJ_SHAPE_STR_MAX], b[TJ_SHAPE_STR_MAX];
    if (tj_shape_check(shape, "broadcast_to")) return NULL;
    bool ok = t->shape.ndim <= shape->ndim;
    for (int d = 0; ok && d < t->shape.ndim; d++) {
        int64_t from = t->shape.dim[d], to = shape->dim[d + shape->ndim - t->shape.ndim];
        ok = from == to || from == 1;
    }
    if (!ok)
        return tj_err(TJ_ERR_SHAPE, "broadcast_to: cannot broadcast %s to %s",
                      tj_shape_str(&t->shape, a, sizeof a), tj_shape_str(shape, b, sizeof b)), NULL;
    tensor *out = tj_tensor_new(t->dtype, shape);
    if (!out || broadcast_exec(NULL, 1, &t, out)) return NULL;
    if (t->numel == 1 || (t->flags & TJ_T_UNIFORM)) out->flags |= TJ_T_UNIFORM;
    if (tj_record(TJ_OP_BROADCAST, 1, &t, out, NULL)) return NULL;
    return out;
}

tensor *tj_t_sum_to(tensor *g, const tj_shape *shape) {
    if (!g || tj_shape_equal(&g->shape, shape)) return g;
    int axes[TJ_MAX_DIMS], n = 0, lead = g->shape.ndim - shape->ndim;
    for (int d = 0; d < g->shape.ndim; d++)
        if (d < lead || (shape->dim[d - lead] == 1 && g->shape.dim[d] != 1)) axes[n++] = d;
    tensor *s = n ? tj_t_reduce(TJ_OP_SUM, g, n, axes, false) : g;
    return tj_t_reshape(s, shape);
}

/* d broadcast(a)/da = g summed back to a's shape */
static int broadcast_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = tj_t_sum_to(g, &n->in[0]->shape);
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_broadcast = {
    .name = "broadcast_to",
    .kind = TJ_KIND_OTHER,
    .grad = broadcast_grad,
    .exec = broadcast_exec,
};

tj_tensor *tj_broadcast_to(tj_tensor *h, tj_shape shape) {
    tensor *t = tj_resolve(h, "broadcast_to", 1);
    return t ? tj_handle(tj_t_broadcast(t, &shape)) : NULL;
}
