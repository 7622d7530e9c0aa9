/* sqrt: y = sqrt(a), IEEE correctly rounded (sqrtss/sqrtsd; exact in every mode). */
#include "ew.h"

#include <math.h>

TJ_EW1(sqrt_f32, float, sqrtf(x0))
TJ_EW1(sqrt_f64, double, sqrt(x0))

/* d(sqrt a)/da = g / (2 y) */
static int sqrt_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = T_DIV(g, T_MUL(n->out, tj_t_scalar(g->dtype, 2.0)));
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_sqrt = {
    .name = "sqrt",
    .kind = TJ_KIND_UNARY,
    .run = {sqrt_f32, sqrt_f64, NULL},
    .grad = sqrt_grad,
};
TJ_API1(sqrt, SQRT)
