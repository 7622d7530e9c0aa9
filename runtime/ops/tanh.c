/* tanh: y = tanh(a), with the project's own tanh (math/tj_math.h). */
#include "ew.h"

TJ_EW1(tanh_f32, float, tj_m_tanhf(x0))
TJ_EW1(tanh_f64, double, tj_m_tanh(x0))

/* d(tanh a)/da = g * (1 - y^2) */
static int tanh_grad(const tj_node *n, tensor *g, tensor **gin) {
    tensor *y = n->out;
    gin[0] = T_MUL(g, T_SUB(tj_t_one_like(y), T_MUL(y, y)));
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_tanh = {
    .name = "tanh",
    .kind = TJ_KIND_UNARY,
    .run = {tanh_f32, tanh_f64, NULL},
    .grad = tanh_grad,
};
TJ_API1(tanh, TANH)
