/* stop_gradient: the same values, never differentiated through. Eager returns a view;
 * it is an op (with no gradient rule) so a traced step keeps it connected to its input. */
#include "op.h"

#include <string.h>

static int stop_gradient_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)attr; (void)nin;
    memcpy(out->data, in[0]->data, (size_t)out->numel * tj_dtype_size(out->dtype));
    return 0;
}

tensor *tj_t_stop_gradient(tensor *t) {
    if (!t) return NULL;
    tensor *out = tj_tensor_view(t, &t->shape);
    if (!out) return NULL;
    if (tj_record(TJ_OP_STOP_GRADIENT, 1, &t, out, NULL)) return NULL;
    return out;
}

const tj_op_info tj_op_stop_gradient = {.name = "stop_gradient", .kind = TJ_KIND_OTHER, .exec = stop_gradient_exec};

tj_tensor *tj_stop_gradient(tj_tensor *h) {
    tensor *t = tj_resolve(h, "stop_gradient", 1);
    return t ? tj_handle(tj_t_stop_gradient(t)) : NULL;
}
