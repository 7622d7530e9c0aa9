/* graph.h: the compiled path's graph IR. A trace becomes a list of nodes in execution
 * order: parameters (the call's inputs), constants (captured values), state reads
 * (variables) and op applications with their attributes, plus the outputs and the state
 * writes (tj_assign) of the step. Passes rewrite it; the lowering turns it into code.
 * Includes no llvm-c: trace and passes are plain C over runtime internals. */
#ifndef TJ_GRAPH_H
#define TJ_GRAPH_H

#include "ops/op.h"

typedef enum { TJ_N_PARAM, TJ_N_CONST, TJ_N_STATE, TJ_N_OP } tj_nkind;

typedef struct tj_gnode {
    tj_nkind kind;
    tj_op    op;          /* TJ_N_OP */
    int      nin;
    int     *in;          /* node ids of the inputs */
    tj_attr  attr;
    tj_dtype dtype;
    tj_shape shape;
    int64_t  numel;
    int      param;       /* TJ_N_PARAM: input position */
    tensor  *var;         /* TJ_N_STATE: the variable (the graph holds a reference) */
    void    *data;        /* TJ_N_CONST: its values (owned) */
    int      trace_id;    /* position in the original trace, for messages and dumps */
    tj_op    grad_of_op;  /* the op whose gradient made this node (TJ_OP_COUNT: the user's op) */
    int      grad_of;     /*   and that op's node (-1: the user's op) */
    int      update_of;   /* the optimizer update of variable g->updated[update_of], or -1 */
    int      replaced_by; /* passes: -1, or the node that stands in for this one */
} tj_gnode;

typedef struct tj_state_write { tensor *var; int node; } tj_state_write;

typedef struct tj_graph {
    tj_gnode *nodes;
    int n, cap;
    int *outputs, nout;
    tj_state_write *writes;
    int nwrites, capwrites;
    int nparams;
    tensor **updated;     /* variables an optimizer updated in the step (references held) */
    int nupdated;
    tensor **values;      /* check mode: each op node's eager value (references held) */
    int capvalues;
} tj_graph;

tj_graph *tj_graph_new(void);
void      tj_graph_free(tj_graph *g);
/* Appends a node (copying in[]); returns its id, or -1 on OOM. */
int       tj_graph_add(tj_graph *g, tj_nkind kind, tj_op op, int nin, const int *in,
                       const tj_attr *attr, tj_dtype dt, const tj_shape *shape);
/* Records that the step ends by writing node's value into var (the last write wins). */
int       tj_graph_write(tj_graph *g, tensor *var, int node);
/* The node a (possibly replaced) node resolves to. */
int       tj_graph_resolve(const tj_graph *g, int id);
/* "mul", or "mul (gradient of tanh, node 5)": where node id came from. */
const char *tj_graph_origin(const tj_graph *g, int id, char *buf, size_t n);
/* Nodes reachable from outputs and writes; keep[i] set for live nodes. */
void      tj_graph_live(const tj_graph *g, bool *keep);

/* ---- passes (passes.c) ---------------------------------------------------------------- */
/* Constant folding, algebraic simplification (only rewrites that keep every bit), common
 * subexpressions, dead code. Returns 0 or OOM. */
int       tj_graph_optimize(tj_graph *g);

/* ---- tracing (trace.c) ---------------------------------------------------------------- */
typedef struct tj_tracer tj_tracer;
/* Starts recording this thread's ops into a new graph whose parameters are in[]. */
/* keep: hold every op node's value in g->values (check mode compares them). */
tj_tracer *tj_trace_begin(const char *fname, int n_in, tensor *const *in, bool keep, bool *warned_read);
/* Stops recording; on success the graph (with outputs) is handed over, else NULL. */
tj_graph  *tj_trace_end(tj_tracer *tr, int n_out, tensor *const *out, bool ok);

#endif
