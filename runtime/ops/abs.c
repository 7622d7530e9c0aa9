/* abs: y = |a|. */
#include "ew.h"

TJ_EW1(abs_f32, float, x0 < 0 ? -x0 : x0 == 0 ? 0.0f : x0)
TJ_EW1(abs_f64, double, x0 < 0 ? -x0 : x0 == 0 ? 0.0 : x0)
TJ_EW1(abs_i32, int32_t, x0 < 0 ? TJ_WRAP(-, 0, x0) : x0)

/* d|a|/da = g * sign(a), sign(0) = 0 (as TensorFlow) */
static int abs_grad(const tj_node *n, tensor *g, tensor **gin) {
    tensor *a = n->in[0], *zero = tj_t_zero_like(a);
    tensor *sign = T_SUB(tj_t_ew2(TJ_OP_GREATER, a, zero), tj_t_ew2(TJ_OP_LESS, a, zero));
    gin[0] = T_MUL(g, sign);
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_abs = {
    .name = "abs",
    .kind = TJ_KIND_UNARY,
    .run = {abs_f32, abs_f64, abs_i32},
    .grad = abs_grad,
};
TJ_API1(abs, ABS)
