/* exp: y = e^a, with the project's own exp (math/tj_math.h). */
#include "ew.h"

TJ_EW1(exp_f32, float, tj_m_expf(x0))
TJ_EW1(exp_f64, double, tj_m_exp(x0))

/* d(e^a)/da = g*y */
static int exp_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = T_MUL(g, n->out);
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_exp = {
    .name = "exp",
    .kind = TJ_KIND_UNARY,
    .run = {exp_f32, exp_f64, NULL},
    .grad = exp_grad,
};
TJ_API1(exp, EXP)
