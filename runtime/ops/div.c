/* div: y = a / b. int32 truncates toward zero; a zero divisor is an error, and
 * INT32_MIN / -1 wraps to INT32_MIN instead of trapping. */
#include "ew.h"

TJ_EW2(div_f32, float, x0 / x1)
TJ_EW2(div_f64, double, x0 / x1)
TJ_EW2(div_i32, int32_t, x1 == -1 ? TJ_WRAP(-, 0, x0) : x0 / x1)

static int div_check(const tj_attr *attr, tensor *const *in, const tensor *out) {
    (void)attr; (void)out;
    if (in[1]->dtype != TJ_I32) return 0;
    const int32_t *b = in[1]->data;
    for (int64_t i = 0; i < in[1]->numel; i++)
        if (b[i] == 0)
            return tj_err(TJ_ERR_VALUE, "div: integer division by zero (divisor element %lld is 0)",
                          (long long)i);
    return 0;
}

/* d(a/b)/da = g/b, d(a/b)/db = -g*a/b^2 = -(g*y)/b */
static int div_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = TJ_GRAD(0, T_DIV(g, n->in[1]));
    gin[1] = TJ_GRAD(1, tj_t_ew1(TJ_OP_NEG, T_DIV(T_MUL(g, n->out), n->in[1])));
    return tj_grad_made(2, gin);
}

const tj_op_info tj_op_div = {
    .name = "div",
    .kind = TJ_KIND_BINARY,
    .run = {div_f32, div_f64, div_i32},
    .check = div_check,
    .grad = div_grad,
};
TJ_API2(div, DIV)
