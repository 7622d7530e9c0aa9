/* op.h: what every op file and the dispatcher share: the op enum and info table
 * (generated from ops.def), recorded nodes, kernel signatures, and the internal op
 * functions (tj_t_*) that gradient rules call. Internal functions take and return
 * `tensor *` owned by the innermost scope; NULL in gives NULL out. */
#ifndef TJ_OP_H
#define TJ_OP_H

#include "core/core.h"

typedef enum {
#define X(E, name, kind) TJ_OP_##E,
#include "ops.def"
#undef X
    TJ_OP_COUNT
} tj_op;

typedef enum { TJ_KIND_UNARY, TJ_KIND_BINARY, TJ_KIND_TERNARY, TJ_KIND_REDUCE, TJ_KIND_OTHER } tj_kind;

/* Attributes of one application of an op; which member is used depends on the op. */
typedef union tj_attr {
    struct { int naxes; int axes[TJ_MAX_DIMS]; bool keepdims; } red;   /* sum, max */
    int perm[TJ_MAX_DIMS];                                            /* transpose */
    int axis;                                                         /* argmax, concat, gather, scatter_add */
    struct { int64_t begin[TJ_MAX_DIMS]; } slice;                     /* slice (sizes: out shape) */
    tj_shape shape;                                                   /* scatter_add: out shape */
    struct { uint64_t seed, offset; double a, b; } rng;               /* rand_*: lo/hi or mean/stddev */
    tj_dtype dtype;                                                   /* cast */
    struct { bool ta, tb; } mm;                                       /* matmul: an operand read transposed */
} tj_attr;

/* One recorded application: out = op(in[0..nin)) with attr. */
typedef struct tj_node {
    tj_op    op;
    int      nin;
    tensor  *out;
    tj_attr  attr;
    tensor  *in[];
} tj_node;

/* Elementwise kernel over one run of n outputs; input i advances by stride[i] (0 or 1). */
typedef void (*tj_run_fn)(int64_t n, const void *const *in, const int64_t *stride, void *out);
/* Optional check of input values before the kernel runs (integer division by zero, indices
 * out of range); the compiled path runs it on every call, since the values change. */
typedef int (*tj_check_fn)(const tj_attr *attr, tensor *const *in, const tensor *out);   /* out may be NULL */
/* Gradients of n's inputs given g = d target / d out: gin[i] in out's shape (the tape
 * reduces broadcast gradients), or NULL where an input gets none. 0 on success. */
typedef int (*tj_grad_fn)(const tj_node *n, tensor *g, tensor **gin);
/* In a gradient rule: the backward pass takes no gradient of input k, so the rule may leave
 * gin[k] NULL instead of computing it (a matmul's input batch: PyTorch's needs_input_grad). */
static inline bool tj_grad_unused(int k) { return k < 32 && (tj_thread_state()->grad_unused >> k & 1u); }
/* gin[k] = expr, unless the pass takes no gradient of input k (NULL, expr not evaluated) */
#define TJ_GRAD(k, expr) (tj_grad_unused(k) ? NULL : (expr))
/* A rule's result: 0 when it made every gradient the pass takes of in[0..nin), else -1 */
static inline int tj_grad_made(int nin, tensor *const *gin) {
    for (int k = 0; k < nin; k++)
        if (!gin[k] && !tj_grad_unused(k)) return -1;
    return 0;
}
/* The op's eager kernel alone: out (allocated, with its shape and dtype) = op(in) under
 * attr, with inputs already checked. No allocation of tensors, no recording. The compiled
 * path calls it (through tj_exec) for ops it does not generate inline. */
typedef int (*tj_exec_fn)(const tj_attr *attr, int nin, tensor *const *in, tensor *out);   /* 0 or OOM */
/* Reduces x[0..n) (n <= TJ_REDUCE_BLOCK) to *out in the canonical order (math/reduce.h). */
typedef void (*tj_reduce_fn)(int64_t n, const void *x, void *out);
/* The same for the n columns of K <= TJ_REDUCE_BLOCK rows (TJ_REDUCE_COLS_FN). */
typedef void (*tj_reduce_cols_fn)(const void *x, int64_t K, int64_t stride, int64_t n, void *acc, void *y);

typedef struct tj_op_info {
    const char *name;
    tj_kind     kind;
    tj_run_fn   run[3];   /* elementwise kinds: per dtype F32, F64, I32; NULL: not supported */
    tj_check_fn check;
    tj_grad_fn  grad;     /* NULL: not differentiable */
    tj_reduce_fn reduce[3];  /* reduction kinds: per dtype */
    tj_reduce_cols_fn reduce_cols[3];
    tj_exec_fn  exec;     /* TJ_KIND_OTHER: the eager kernel */
} tj_op_info;

#define X(E, name, kind) extern const tj_op_info tj_op_##name;
#include "ops.def"
#undef X
extern const tj_op_info *const tj_ops[TJ_OP_COUNT];

/* ---- dispatch (dispatch.c) ---------------------------------------------------------- */
/* Elementwise op with numpy broadcasting: checks dtypes and shapes, runs, records. */
tensor *tj_t_ew(tj_op op, int nin, tensor *const *in);
/* Runs op's eager kernel on prepared tensors (any kind); see tj_exec_fn. */
int     tj_exec(tj_op op, const tj_attr *attr, int nin, tensor *const *in, tensor *out);
int     tj_reduce_exec(tj_op op, const tj_attr *attr, tensor *t, tensor *out);
/* Records out = op(in) on every tape that tracks an input (no-op otherwise). */
int     tj_record(tj_op op, int nin, tensor *const *in, tensor *out, const tj_attr *attr);
/* Whether an op reading in[] would be recorded: a trace runs, or a tape tracks an input. */
bool    tj_records(int nin, tensor *const *in);
/* A gradient rule's composition of elementwise ops as one pass, for when nothing records
 * (!tj_records(nin, in)): run[dtype] must do the ops' float operations in their order, so
 * the bits are the ops'. Inputs of one float dtype, broadcast as tj_t_ew does; profiled
 * under name; NULL (error set) on OOM. */
tensor *tj_t_ew_fused(const char *name, const tj_run_fn run[2], int nin, tensor *const *in);
/* in[0] = op(in) in place, for a caller holding in[0]'s only reference and storage when
 * nothing records; the inputs have in[0]'s dtype, and shapes that broadcast to its own. */
void    tj_t_ew_in_place(tj_op op, int nin, tensor *const *in);
/* Resolves n public handles for op; false (with the error kept) if any is bad. Inline,
 * so the resolved pointers stay in registers: out of line, the caller reloaded them as
 * one 16-byte load from two 8-byte stores, a store-forwarding stall that was a fifth of
 * a 1-element add (W4: 46 -> 37 ns). */
static inline bool tj_resolve_args(const char *op, int n, tj_tensor *const *h, tensor **out) {
    bool ok = true;
    for (int i = 0; i < n; i++) {
        out[i] = tj_resolve(h[i], op, i + 1);
        ok = ok && out[i];
    }
    return ok;
}

/* ---- internal ops, for gradient rules and composites ------------------------------ */
static inline tensor *tj_t_ew1(tj_op op, tensor *a) { return tj_t_ew(op, 1, &a); }
static inline tensor *tj_t_ew2(tj_op op, tensor *a, tensor *b) {
    tensor *in[2] = {a, b};
    return tj_t_ew(op, 2, in);
}
#define T_ADD(a, b) tj_t_ew2(TJ_OP_ADD, a, b)
#define T_SUB(a, b) tj_t_ew2(TJ_OP_SUB, a, b)
#define T_MUL(a, b) tj_t_ew2(TJ_OP_MUL, a, b)
#define T_DIV(a, b) tj_t_ew2(TJ_OP_DIV, a, b)

tensor *tj_t_full(tj_dtype dt, const tj_shape *shape, double value);   /* constant */
tensor *tj_t_scalar(tj_dtype dt, double value);                        /* rank 0 */
tensor *tj_t_where(tensor *c, tensor *a, tensor *b);
tensor *tj_t_cast(tensor *t, tj_dtype dt);
tensor *tj_t_matmul(tensor *a, tensor *b);
/* op(a) @ op(b), op(x) x with its last two axes swapped where ta (for a) or tb (for b) */
tensor *tj_t_matmul_t(tensor *a, tensor *b, bool ta, bool tb);
tensor *tj_t_reduce(tj_op op, tensor *t, int naxes, const int *axes, bool keepdims);
tensor *tj_t_reshape(tensor *t, const tj_shape *shape);
tensor *tj_t_transpose(tensor *t, const int *perm);
tensor *tj_t_broadcast(tensor *t, const tj_shape *shape);
tensor *tj_t_concat(int n, tensor *const *ts, int axis);
tensor *tj_t_slice(tensor *t, const int64_t *begin, const int64_t *size);
tensor *tj_t_gather(tensor *t, tensor *idx, int axis);
tensor *tj_t_scatter_add(tensor *upd, tensor *idx, int axis, const tj_shape *shape);
tensor *tj_t_sum_to(tensor *g, const tj_shape *shape);   /* undo a broadcast: sum, reshape */
tensor *tj_t_argmax(tensor *t, int axis);
/* Checks int32 indices against [0, dim) for gather and scatter_add; 0 or an error. */
int     tj_check_indices(const char *op, const tensor *idx, int64_t dim, int axis);
tensor *tj_t_rand(tj_op op, const tj_shape *shape, double a, double b);   /* rand_uniform/normal */
int     tj_rand_exec(tj_op op, const tj_attr *attr, tensor *out);
tensor *tj_t_stop_gradient(tensor *t);
/* Reduction axes of t as a mask (naxes 0: all); errors name op. */
int     tj_reduce_axes(const char *op, const tensor *t, int naxes, const int *axes, bool *mask);
tensor *tj_t_unreduce(const tj_node *n, tensor *g);          /* reduced axes kept as 1 */

#endif
