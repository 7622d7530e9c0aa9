/* relu: y = max(a, 0); NaN stays NaN. */
#include "ew.h"

TJ_EW1(relu_f32, float, x0 < 0 ? 0.0f : x0)
TJ_EW1(relu_f64, double, x0 < 0 ? 0.0 : x0)
TJ_EW1(relu_i32, int32_t, x0 < 0 ? 0 : x0)

/* d relu(a)/da = g * (a > 0) */
static int relu_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = T_MUL(g, tj_t_ew2(TJ_OP_GREATER, n->in[0], tj_t_zero_like(n->in[0])));
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_relu = {
    .name = "relu",
    .kind = TJ_KIND_UNARY,
    .run = {relu_f32, relu_f64, relu_i32},
    .grad = relu_grad,
};
TJ_API1(relu, RELU)
