/* maximum: y = max(a, b), NaN if either is NaN. */
#include "ew.h"

TJ_EW2(maximum_f32, float, (x0 > x1 || x0 != x0) ? x0 : x1)
TJ_EW2(maximum_f64, double, (x0 > x1 || x0 != x0) ? x0 : x1)
TJ_EW2(maximum_i32, int32_t, x0 > x1 ? x0 : x1)

/* g goes to a where a >= b (ties to a, as TensorFlow), else to b */
static int maximum_grad(const tj_node *n, tensor *g, tensor **gin) {
    tensor *b_wins = tj_t_ew2(TJ_OP_LESS, n->in[0], n->in[1]);
    tensor *zero = tj_t_zero_like(g);
    gin[0] = TJ_GRAD(0, tj_t_where(b_wins, zero, g));
    gin[1] = TJ_GRAD(1, tj_t_where(b_wins, g, zero));
    return tj_grad_made(2, gin);
}

const tj_op_info tj_op_maximum = {
    .name = "maximum",
    .kind = TJ_KIND_BINARY,
    .run = {maximum_f32, maximum_f64, maximum_i32},
    .grad = maximum_grad,
};
TJ_API2(maximum, MAXIMUM)
