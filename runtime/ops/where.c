/* where: y = cond != 0 ? a : b, all three broadcast together. */
#include "ew.h"

#define TJ_EW3(fname, T)                                                                \
    static void fname(int64_t n, const void *const *in, const int64_t *s, void *out) {  \
        const T *c = in[0], *a = in[1], *b = in[2];                                     \
        T *y = out;                                                                     \
        for (int64_t i = 0; i < n; i++)                                                 \
            y[i] = c[i * s[0]] != 0 ? a[i * s[1]] : b[i * s[2]];                        \
    }

TJ_EW3(where_f32, float)
TJ_EW3(where_f64, double)
TJ_EW3(where_i32, int32_t)

tensor *tj_t_where(tensor *c, tensor *a, tensor *b) {
    tensor *in[3] = {c, a, b};
    return tj_t_ew(TJ_OP_WHERE, 3, in);
}

/* d/da = where(c, g, 0), d/db = where(c, 0, g); cond gets none */
static int where_grad(const tj_node *n, tensor *g, tensor **gin) {
    tensor *zero = tj_t_zero_like(g);
    gin[0] = NULL;
    gin[1] = tj_t_where(n->in[0], g, zero);
    gin[2] = tj_t_where(n->in[0], zero, g);
    return gin[1] && gin[2] ? 0 : -1;
}

const tj_op_info tj_op_where = {
    .name = "where",
    .kind = TJ_KIND_TERNARY,
    .run = {where_f32, where_f64, where_i32},
    .grad = where_grad,
};

tj_tensor *tj_where(tj_tensor *c, tj_tensor *a, tj_tensor *b) {
    tj_tensor *h[3] = {c, a, b};
    tensor *t[3];
    if (!tj_resolve_args("where", 3, h, t)) return NULL;
    return tj_handle(tj_t_where(t[0], t[1], t[2]));
}
