/* less: y = (a < b) as 0 or 1 in the operands' dtype. Not differentiable. */
#include "ew.h"

TJ_EW2(less_f32, float, x0 < x1 ? 1.0f : 0.0f)
TJ_EW2(less_f64, double, x0 < x1 ? 1.0 : 0.0)
TJ_EW2(less_i32, int32_t, x0 < x1 ? 1 : 0)

const tj_op_info tj_op_less = {
    .name = "less",
    .kind = TJ_KIND_BINARY,
    .run = {less_f32, less_f64, less_i32},
};
TJ_API2(less, LESS)
