/* rand_uniform: f32 values in [lo, hi) from the counter-based generator (core/rng.h).
 * The draw's (seed, offset) is kept in the node, so a compiled step can redo it. */
#include "op.h"
#include "core/rng.h"

#include <math.h>

/* Draws from the (seed, offset) in attr: the compiled path passes a fresh offset. */
int tj_rand_exec(tj_op op, const tj_attr *attr, tensor *out) {
    if (op == TJ_OP_RAND_UNIFORM)
        tj_rng_uniform_f32(attr->rng.seed, attr->rng.offset, out->numel, (float)attr->rng.a, (float)attr->rng.b, out->data);
    else
        tj_rng_normal_f32(attr->rng.seed, attr->rng.offset, out->numel, (float)attr->rng.a, (float)attr->rng.b, out->data);
    return 0;
}

static int rand_uniform_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)nin; (void)in;
    return tj_rand_exec(TJ_OP_RAND_UNIFORM, attr, out);
}

tensor *tj_t_rand(tj_op op, const tj_shape *shape, double a, double b) {
    const char *name = tj_ops[op]->name;
    if (tj_shape_check(shape, name)) return NULL;
    if (!isfinite(a) || !isfinite(b) || !isfinite((float)a) || !isfinite((float)b) ||
        (op == TJ_OP_RAND_UNIFORM ? !(a <= b) || !isfinite((float)b - (float)a) : b < 0))
        return tj_err(TJ_ERR_ARG, op == TJ_OP_RAND_UNIFORM
                      ? "%s: bad range lo %g, hi %g (need finite float32 values, lo <= hi)"
                      : "%s: bad mean %g or stddev %g (need finite float32 values, stddev >= 0)",
                      name, a, b), NULL;
    tensor *out = tj_tensor_new(TJ_F32, shape);
    if (!out) return NULL;
    tj_thread *th = tj_thread_state();
    tj_attr attr = {.rng = {.seed = th->rng_seed, .offset = tj_rng_reserve(out->numel), .a = a, .b = b}};
    tj_rand_exec(op, &attr, out);
    if (tj_record(op, 0, NULL, out, &attr)) return NULL;
    return out;
}

const tj_op_info tj_op_rand_uniform = {.name = "rand_uniform", .kind = TJ_KIND_OTHER, .exec = rand_uniform_exec};

tj_tensor *tj_rand_uniform(tj_shape shape, double lo, double hi) {
    return tj_handle(tj_t_rand(TJ_OP_RAND_UNIFORM, &shape, lo, hi));
}
