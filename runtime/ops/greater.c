/* greater: y = (a > b) as 0 or 1 in the operands' dtype. Not differentiable. */
#include "ew.h"

TJ_EW2(greater_f32, float, x0 > x1 ? 1.0f : 0.0f)
TJ_EW2(greater_f64, double, x0 > x1 ? 1.0 : 0.0)
TJ_EW2(greater_i32, int32_t, x0 > x1 ? 1 : 0)

const tj_op_info tj_op_greater = {
    .name = "greater",
    .kind = TJ_KIND_BINARY,
    .run = {greater_f32, greater_f64, greater_i32},
};
TJ_API2(greater, GREATER)
