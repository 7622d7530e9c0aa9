/* sub: y = a - b. */
#include "ew.h"

TJ_EW2(sub_f32, float, x0 - x1)
TJ_EW2(sub_f64, double, x0 - x1)
TJ_EW2(sub_i32, int32_t, TJ_WRAP(-, x0, x1))

/* d(a-b)/da = g, d(a-b)/db = -g */
static int sub_grad(const tj_node *n, tensor *g, tensor **gin) {
    (void)n;
    gin[0] = g;
    gin[1] = TJ_GRAD(1, tj_t_ew1(TJ_OP_NEG, g));
    return tj_grad_made(2, gin);
}

const tj_op_info tj_op_sub = {
    .name = "sub",
    .kind = TJ_KIND_BINARY,
    .run = {sub_f32, sub_f64, sub_i32},
    .grad = sub_grad,
};
TJ_API2(sub, SUB)
