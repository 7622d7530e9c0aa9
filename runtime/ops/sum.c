/* sum: adds the values over the given axes in the canonical order (math/reduce.h). */
#include "op.h"
#include "math/reduce.h"

static void sum_f32(int64_t n, const void *x, void *out) { *(float *)out = tj_sum_block_f32(x, n); }
static void sum_f64(int64_t n, const void *x, void *out) { *(double *)out = tj_sum_block_f64(x, n); }
static void sum_i32(int64_t n, const void *x, void *out) { *(int32_t *)out = tj_sum_block_i32(x, n); }
static void cols_f32(const void *x, int64_t K, int64_t st, int64_t n, void *acc, void *y) { tj_sum_cols_f32(x, K, st, n, acc, y); }
static void cols_f64(const void *x, int64_t K, int64_t st, int64_t n, void *acc, void *y) { tj_sum_cols_f64(x, K, st, n, acc, y); }
static void cols_i32(const void *x, int64_t K, int64_t st, int64_t n, void *acc, void *y) { tj_sum_cols_i32(x, K, st, n, acc, y); }

/* d sum(a)/da = g broadcast back over the reduced axes */
static int sum_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = tj_t_broadcast(tj_t_unreduce(n, g), &n->in[0]->shape);
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_sum = {
    .name = "sum",
    .kind = TJ_KIND_REDUCE,
    .grad = sum_grad,
    .reduce = {sum_f32, sum_f64, sum_i32},
    .reduce_cols = {cols_f32, cols_f64, cols_i32},
};

tj_tensor *tj_sum(tj_tensor *h, int naxes, const int *axes, bool keepdims) {
    tensor *t = tj_resolve(h, "sum", 1);
    return t ? tj_handle(tj_t_reduce(TJ_OP_SUM, t, naxes, axes, keepdims)) : NULL;
}
