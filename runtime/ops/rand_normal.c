/* rand_normal: f32 normal values (Box-Muller on the counter-based generator, core/rng.h).
 * Shares its driver with rand_uniform (tj_t_rand). */
#include "op.h"

static int rand_normal_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)nin; (void)in;
    return tj_rand_exec(TJ_OP_RAND_NORMAL, attr, out);
}

const tj_op_info tj_op_rand_normal = {.name = "rand_normal", .kind = TJ_KIND_OTHER, .exec = rand_normal_exec};

tj_tensor *tj_rand_normal(tj_shape shape, double mean, double stddev) {
    return tj_handle(tj_t_rand(TJ_OP_RAND_NORMAL, &shape, mean, stddev));
}
