/* mul: y = a * b. */
#include "ew.h"

TJ_EW2(mul_f32, float, x0 * x1)
TJ_EW2(mul_f64, double, x0 * x1)
TJ_EW2(mul_i32, int32_t, TJ_WRAP(*, x0, x1))

/* d(a*b)/da = g*b, d(a*b)/db = g*a: the same value when a is b (a square), computed once */
static int mul_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = TJ_GRAD(0, T_MUL(g, n->in[1]));
    gin[1] = n->in[0] == n->in[1] ? gin[0] : TJ_GRAD(1, T_MUL(g, n->in[0]));
    return tj_grad_made(2, gin);
}

const tj_op_info tj_op_mul = {
    .name = "mul",
    .kind = TJ_KIND_BINARY,
    .run = {mul_f32, mul_f64, mul_i32},
    .grad = mul_grad,
};
TJ_API2(mul, MUL)
