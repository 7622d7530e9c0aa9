/* tanh: y = tanh(a), with the project's own tanh (math/tj_math.h). */
#include "ew.h"

TJ_EW1(tanh_f32, float, tj_m_tanhf(x0))
TJ_EW1(tanh_f64, double, tj_m_tanh(x0))

/* g * (1 - y^2), as the ops below compute it, in one pass */
TJ_EW2(tanh_bw_f32, float, x0 * (1.0f - x1 * x1))
TJ_EW2(tanh_bw_f64, double, x0 * (1.0 - x1 * x1))

/* d(tanh a)/da = g * (1 - y^2): the ops when a trace or tape records them, else one pass */
static int tanh_grad(const tj_node *n, tensor *g, tensor **gin) {
    tensor *y = n->out, *in[2] = {g, y};
    if (g->dtype == y->dtype && !tj_records(2, in))
        gin[0] = tj_t_ew_fused("tanh_grad", (const tj_run_fn[2]){tanh_bw_f32, tanh_bw_f64}, 2, in);
    else
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
