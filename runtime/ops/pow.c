/* pow: y = a ^ b. Floats use libm's powf/pow (the compiled path calls the same symbol,
 * so results stay identical); int32 uses exact repeated squaring with wrapping and
 * rejects negative exponents, as numpy does. */
#include "ew.h"

#include <math.h>

static int32_t ipow(int32_t base, int32_t e) {
    uint32_t r = 1, b = (uint32_t)base;
    for (uint32_t k = (uint32_t)e; k; k >>= 1, b *= b)
        if (k & 1) r *= b;
    return (int32_t)r;
}

TJ_EW2(pow_f32, float, powf(x0, x1))
TJ_EW2(pow_f64, double, pow(x0, x1))
TJ_EW2(pow_i32, int32_t, ipow(x0, x1))

static int pow_check(const tj_attr *attr, tensor *const *in, const tensor *out) {
    (void)attr; (void)out;
    if (in[1]->dtype != TJ_I32) return 0;
    const int32_t *b = in[1]->data;
    for (int64_t i = 0; i < in[1]->numel; i++)
        if (b[i] < 0)
            return tj_err(TJ_ERR_VALUE, "pow: int32 to a negative power (exponent element %lld is %d); "
                          "cast to float32 first", (long long)i, b[i]);
    return 0;
}

/* d(a^b)/da = g*b*a^(b-1); d(a^b)/db = g*y*log(a) where a > 0, else 0 (as TensorFlow) */
static int pow_grad(const tj_node *n, tensor *g, tensor **gin) {
    tensor *a = n->in[0], *b = n->in[1];
    gin[0] = TJ_GRAD(0, T_MUL(g, T_MUL(b, tj_t_ew2(TJ_OP_POW, a, T_SUB(b, tj_t_one_like(b))))));
    if (!tj_grad_unused(1)) {
        tensor *pos = tj_t_ew2(TJ_OP_GREATER, a, tj_t_zero_like(a));
        tensor *safe = tj_t_where(pos, a, tj_t_one_like(a));
        tensor *loga = tj_t_where(pos, tj_t_ew1(TJ_OP_LOG, safe), tj_t_zero_like(a));
        gin[1] = T_MUL(g, T_MUL(n->out, loga));
    }
    return tj_grad_made(2, gin);
}

const tj_op_info tj_op_pow = {
    .name = "pow",
    .kind = TJ_KIND_BINARY,
    .run = {pow_f32, pow_f64, pow_i32},
    .check = pow_check,
    .grad = pow_grad,
};
TJ_API2(pow, POW)
