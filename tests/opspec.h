/* opspec.h: one test spec per row of the op table (runtime/ops/ops.def): how to make
 * inputs, how to apply the op through the public API, and a naive double-precision
 * reference. check_ops.c (forward) and check_grad.c (gradients) loop over it, and a
 * test fails if an op of the table has no spec, so a new op is tested the day it lands. */
#ifndef TJ_OPSPEC_H
#define TJ_OPSPEC_H

#include "testutil.h"
#include "op.h"

/* A double-precision reference tensor. */
typedef struct { tj_shape s; double *v; } ref_t;

#define SPEC_MAXIN 3
#define SPEC_MAXCASES 9

typedef struct opspec {
    tj_op op;
    int nin;
    int ncases;
    tj_shape shapes[SPEC_MAXCASES][SPEC_MAXIN];  /* per case, per input */
    double lo[SPEC_MAXIN], hi[SPEC_MAXIN];       /* input value range */
    bool index_input[SPEC_MAXIN];                /* int32 indices in [0, hi) */
    bool integer_values;                         /* inputs are whole numbers (int32-safe ops) */
    bool int32_ok;                               /* forward test also runs on int32 */
    /* applies the op (case c) to the inputs */
    tj_tensor *(*apply)(int c, tj_tensor *const *in);
    /* reference: fills out (allocates out->v) from the inputs; case c */
    void (*ref)(int c, const ref_t *in, ref_t *out);
    double (*fn1)(double);                       /* elementwise shortcut for ref */
    double (*fn2)(double, double);
    bool differentiable;                         /* gradcheck it (float inputs only) */
} opspec;

extern const opspec tj_specs[];
extern const int tj_nspecs;
const opspec *spec_for(tj_op op);

/* Sets the generator to where the random ops' references expect it. */
void spec_rng_state(const opspec *sp, int c);
/* Computes the reference output of case c. */
void spec_reference(const opspec *sp, int c, const ref_t *in, ref_t *out);
/* Random inputs of case c for sp in dtype dt, and their exact values as ref_t. */
void spec_inputs(const opspec *sp, int c, tj_dtype dt, uint64_t seed, tj_tensor **in, ref_t *rin);
void ref_free(ref_t *r);

#endif
