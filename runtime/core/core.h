/* core.h: the runtime's internal view of tensors, scopes, errors, memory and threads.
 * Public handles (tj_tensor *) are (generation << 32 | slot) values, never pointers, so a
 * handle used after its scope ended is detected (TJ_ERR_STALE) instead of being a
 * use-after-free. Internal code works on `tensor *`, which stays alive while anything
 * (its scope, a tape record, a view) holds a reference. Never includes llvm-c. */
#ifndef TJ_CORE_H
#define TJ_CORE_H

#include "tapejit.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- memory: every allocation goes through the hook of tj_set_allocator --------------- */
void *tj_mem_alloc(size_t n);                 /* NULL (and TJ_ERR_OOM) on failure */
void *tj_mem_calloc(size_t n);
void *tj_mem_realloc(void *p, size_t old, size_t n);
void  tj_mem_free(void *p, size_t n);

/* ---- errors -------------------------------------------------------------------------- */
/* Keeps the first error since tj_clear_error; returns code so callers can `return tj_err(..)`. */
int  tj_err(tj_error code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool tj_has_error(void);

/* ---- tensors -------------------------------------------------------------------------- */
typedef struct storage {
    int64_t refs;
    size_t  block;        /* bytes allocated for this block */
    /* data follows; a fresh tensor's header may sit between (TJ_T_EMBEDDED) */
} storage;

/* TJ_T_UNIFORM: every element equals the first (a constant or a broadcast of one value,
 * whose data nothing writes again): eager kernels read it as one value. */
enum { TJ_T_VARIABLE = 1, TJ_T_EMBEDDED = 2, TJ_T_UNIFORM = 4 };

typedef struct tensor {
    uint64_t handle;      /* the public handle; 0 once the user's lifetime ended */
    uint64_t id;          /* unique per value; a variable keeps its id across tj_assign */
    storage *st;
    void    *data;        /* (shape) row-major, in st */
    tj_shape shape;
    int64_t  numel;
    tj_dtype dtype;
    int32_t  refs;        /* owner (scope or variable) + tape records + ... */
    uint32_t flags;
    uint32_t tape_mask;   /* bit i: tape slot i of this thread records ops on this value */
    int32_t  scope;       /* index of the owning scope, -1 if none */
    int64_t  scope_pos;   /* position in that scope's list */
    char    *name;        /* variables */
    /* A variable's value as ops read it since the last tj_assign: tapes record this
     * snapshot (var_of points back), so tj_assign copies on write and a gradient uses
     * the value the forward pass saw, as TensorFlow's ReadVariableOp. */
    struct tensor *snapshot, *var_of;
    /* backward scratch (tape.c): valid when bw_epoch is the running pass's number; a
     * pass holds a reference on bw_grad and leaves it NULL when it returns */
    uint64_t bw_epoch;
    struct tensor *bw_grad;
} tensor;

static inline tj_tensor *tj_handle(const tensor *t) {
    return t ? (tj_tensor *)(uintptr_t)t->handle : NULL;
}
/* The tensor behind a handle, or NULL with an error naming op and argument position. */
tensor *tj_resolve(const tj_tensor *h, const char *op, int argi);

/* A new tensor owned by the innermost scope (data uninitialised); NULL on OOM. */
tensor *tj_tensor_new(tj_dtype dt, const tj_shape *shape);
/* A handle for t in the innermost scope, which takes a reference of its own: for a value
 * that references kept alive past the end of the scope it was made in (the backward
 * pass's gradients). A t whose handle is still live keeps it. NULL on OOM. */
tj_tensor *tj_scope_adopt(tensor *t);
/* tj_scope_begin that says whether it opened a scope (false: out of memory, and nothing
 * to end). */
bool tj_scope_try_begin(void);
/* A new tensor header sharing t's storage, with another shape of the same numel. */
tensor *tj_tensor_view(tensor *t, const tj_shape *shape);
/* Writes data (numel values of v's dtype) into variable v as tj_assign does: drops the
 * read snapshot and copies on write when v's storage is shared. 0 or OOM. */
int     tj_variable_write(tensor *v, const void *data);
/* The first half of that, for code that then writes v->data in place: afterwards v's
 * storage is its own (its value kept when keep). 0 or OOM. */
int     tj_variable_write_prepare(tensor *v, bool keep);
/* The variable's current read snapshot (owned by v), NULL on OOM. */
tensor *tj_variable_snapshot(tensor *v);
/* Replaces variable v's name with a copy of name; 0 or OOM (v keeps its old name). */
int     tj_variable_set_name(tensor *v, const char *name);
void    tj_tensor_ref(tensor *t);
void    tj_tensor_unref(tensor *t);
bool    tj_is_variable(const tensor *t);

size_t  tj_dtype_size(tj_dtype dt);
/* float -> int32 as tj_cast defines it: truncate toward zero, saturate, NaN -> 0
 * (C leaves out-of-range conversions undefined). */
static inline int32_t tj_f2i(double v) {
    if (v != v) return 0;
    if (v >= 2147483647.0) return INT32_MAX;
    if (v <= -2147483648.0) return INT32_MIN;
    return (int32_t)v;
}
bool    tj_dtype_valid(tj_dtype dt);
bool    tj_dtype_is_float(tj_dtype dt);

/* ---- shapes (shape.c) ------------------------------------------------------------------ */
int64_t tj_shape_numel(const tj_shape *s);
static inline bool tj_shape_equal(const tj_shape *a, const tj_shape *b) {   /* every op: inline */
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}
#define TJ_MAX_NUMEL (INT64_C(1) << 59)   /* so numel * 8 bytes never overflows */
/* Checks ndim and dims (>= 0, product of the nonzero ones <= TJ_MAX_NUMEL). */
int     tj_shape_check(const tj_shape *s, const char *op);
/* "(2, 3)" into buf (at least 8 * 24 bytes suggested); returns buf. */
char   *tj_shape_str(const tj_shape *s, char *buf, size_t n);
#define TJ_SHAPE_STR_MAX 200
/* numpy broadcast of a and b into out; error names op and both shapes. */
int     tj_broadcast_shape(const tj_shape *a, const tj_shape *b, tj_shape *out, const char *op);
/* Normalises axis (negative counts from the end) against ndim; error names op. */
int     tj_axis(int axis, int ndim, const char *op, int *out);
/* Row-major strides in elements. */
void    tj_strides(const tj_shape *s, int64_t *strides);

/* ---- per-thread state -------------------------------------------------------------------- */
struct tj_tape;
/* phantoms: tj_scope_begin calls above this scope that failed (OOM); the matching
 * tj_scope_end calls consume them instead of ending a real scope. A scope's first
 * TJ_SCOPE_INLINE tensors sit in inl (cap 0), so the many small scopes (a gradient rule's,
 * an optimizer update's) allocate nothing: W4's backward pass, a scope per node, went from
 * 49 to 45 ns a node. Past that, items holds them all. */
#define TJ_SCOPE_INLINE 16
typedef struct scope {
    tensor **items;
    int64_t n, cap;
    int32_t phantoms;
    tensor *inl[TJ_SCOPE_INLINE];
} scope;

/* Tracing (jit/trace.c installs these per thread; the runtime only calls them). op sees
 * every op applied, read every tj_item/tj_tensor_data, assign every tj_assign. */
union tj_attr;
typedef struct tj_trace_hooks {
    int  (*op)(void *tracer, int op, int nin, tensor *const *in, tensor *out, const union tj_attr *attr);
    void (*read)(void *tracer, const tensor *t, const char *api);
    int  (*assign)(void *tracer, tensor *var, tensor *value);
} tj_trace_hooks;

#define TJ_MAX_TAPES 32
typedef struct tj_thread {
    scope   *scopes;            /* scopes[0] is the thread's root scope */
    int      nscopes, capscopes;
    struct tj_tape *tapes[TJ_MAX_TAPES];
    uint32_t recording;         /* mask of tape slots that record now */
    int      no_grad;           /* depth of tj_no_grad_begin */
    uint64_t rng_seed, rng_offset;
    const tj_trace_hooks *trace;   /* non-NULL while a tj_function traces on this thread */
    int      grad_op;              /* backward: 1 + the op whose gradient runs now, 0 if none */
    uint64_t grad_of;              /*           and the id of that op's forward output */
    uint32_t grad_unused;          /*           bit k: no tape takes input k's gradient */
    tensor  *updating;             /* an optimizer is updating this variable now (traces) */
    void    *tracer;
} tj_thread;

tj_thread *tj_thread_state(void);   /* never NULL */
double     tj_now_ms(void);          /* a monotonic clock, for compile-time statistics */
uint64_t   tj_next_id(void);

/* ---- threads (pool.c) ---------------------------------------------------------------- */
/* Runs fn(ctx, i) for i in [0, n); with one thread or n == 1 in the caller. Callers give
 * work split into fixed pieces, so results never depend on the thread count. */
void tj_parallel_for(int64_t n, void (*fn)(void *ctx, int64_t i), void *ctx);

#endif
