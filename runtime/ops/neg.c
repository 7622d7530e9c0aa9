/* neg: y = -a. */
#include "ew.h"

TJ_EW1(neg_f32, float, -x0)
TJ_EW1(neg_f64, double, -x0)
TJ_EW1(neg_i32, int32_t, TJ_WRAP(-, 0, x0))

/* d(-a)/da = -g */
static int neg_grad(const tj_node *n, tensor *g, tensor **gin) {
    (void)n;
    gin[0] = tj_t_ew1(TJ_OP_NEG, g);
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_neg = {
    .name = "neg",
    .kind = TJ_KIND_UNARY,
    .run = {neg_f32, neg_f64, neg_i32},
    .grad = neg_grad,
};
TJ_API1(neg, NEG)
