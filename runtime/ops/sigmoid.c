/* sigmoid: y = 1 / (1 + e^-a), with the project's own sigmoid (math/tj_math.h). */
#include "ew.h"

TJ_EW1(sigmoid_f32, float, tj_m_sigmoidf(x0))
TJ_EW1(sigmoid_f64, double, tj_m_sigmoid(x0))

/* g * (y * (1 - y)), as the ops below compute it, in one pass */
TJ_EW2(sigmoid_bw_f32, float, x0 * (x1 * (1.0f - x1)))
TJ_EW2(sigmoid_bw_f64, double, x0 * (x1 * (1.0 - x1)))

/* d(sigmoid a)/da = g * y * (1 - y): the ops when a trace or tape records them, else one
 * pass */
static int sigmoid_grad(const tj_node *n, tensor *g, tensor **gin) {
    tensor *y = n->out, *in[2] = {g, y};
    if (g->dtype == y->dtype && !tj_records(2, in))
        gin[0] = tj_t_ew_fused("sigmoid_grad", (const tj_run_fn[2]){sigmoid_bw_f32, sigmoid_bw_f64}, 2, in);
    else
        gin[0] = T_MUL(g, T_MUL(y, T_SUB(tj_t_one_like(y), y)));
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_sigmoid = {
    .name = "sigmoid",
    .kind = TJ_KIND_UNARY,
    .run = {sigmoid_f32, sigmoid_f64, NULL},
    .grad = sigmoid_grad,
};
TJ_API1(sigmoid, SIGMOID)
