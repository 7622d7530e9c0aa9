/* equal: y = (a == b) as 0 or 1 in the operands' dtype. Not differentiable. */
#include "ew.h"

TJ_EW2(equal_f32, float, x0 == x1 ? 1.0f : 0.0f)
TJ_EW2(equal_f64, double, x0 == x1 ? 1.0 : 0.0)
TJ_EW2(equal_i32, int32_t, x0 == x1 ? 1 : 0)

const tj_op_info tj_op_equal = {
    .name = "equal",
    .kind = TJ_KIND_BINARY,
    .run = {equal_f32, equal_f64, equal_i32},
};
TJ_API2(equal, EQUAL)
