/* log: y = ln a, with the project's own log (math/tj_math.h). */
#include "ew.h"

TJ_EW1(log_f32, float, tj_m_logf(x0))
TJ_EW1(log_f64, double, tj_m_log(x0))

/* d(ln a)/da = g/a */
static int log_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = T_DIV(g, n->in[0]);
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_log = {
    .name = "log",
    .kind = TJ_KIND_UNARY,
    .run = {log_f32, log_f64, NULL},
    .grad = log_grad,
};
TJ_API1(log, LOG)
