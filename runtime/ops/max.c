/* max: the largest value over the given axes; NaN if any value is NaN. */
#include "op.h"
#include "math/reduce.h"

static void max_f32(int64_t n, const void *x, void *out) { *(float *)out = tj_max_block_f32(x, n); }
static void max_f64(int64_t n, const void *x, void *out) { *(double *)out = tj_max_block_f64(x, n); }
static void max_i32(int64_t n, const void *x, void *out) { *(int32_t *)out = tj_max_block_i32(x, n); }
static void cols_f32(const void *x, int64_t K, int64_t st, int64_t n, void *acc, void *y) { tj_max_cols_f32(x, K, st, n, acc, y); }
static void cols_f64(const void *x, int64_t K, int64_t st, int64_t n, void *acc, void *y) { tj_max_cols_f64(x, K, st, n, acc, y); }
static void cols_i32(const void *x, int64_t K, int64_t st, int64_t n, void *acc, void *y) { tj_max_cols_i32(x, K, st, n, acc, y); }

/* d max(a)/da = g shared equally by the elements equal to the max (as TensorFlow):
 * mask = (a == y), ga = mask * g / sum(mask) */
static int max_grad(const tj_node *n, tensor *g, tensor **gin) {
    tensor *a = n->in[0];
    tensor *y = tj_t_unreduce(n, n->out);
    tensor *mask = tj_t_ew2(TJ_OP_EQUAL, a, y);
    tensor *count = tj_t_reduce(TJ_OP_SUM, mask, n->attr.red.naxes, n->attr.red.axes, true);
    gin[0] = T_MUL(mask, T_DIV(tj_t_unreduce(n, g), count));
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_max = {
    .name = "max",
    .kind = TJ_KIND_REDUCE,
    .grad = max_grad,
    .reduce = {max_f32, max_f64, max_i32},
    .reduce_cols = {cols_f32, cols_f64, cols_i32},
};

tj_tensor *tj_max(tj_tensor *h, int naxes, const int *axes, bool keepdims) {
    tensor *t = tj_resolve(h, "max", 1);
    return t ? tj_handle(tj_t_reduce(TJ_OP_MAX, t, naxes, axes, keepdims)) : NULL;
}
