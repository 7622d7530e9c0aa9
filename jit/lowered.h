/* lowered.h: what compiling a graph produces (lower.c), in plain C so that code without
 * LLVM (function.c in a TJ_JIT=OFF build, dump.c) can name it. */
#ifndef TJ_LOWERED_H
#define TJ_LOWERED_H

#include "graph.h"

typedef struct tj_jit_code tj_jit_code;          /* engine.h: one compiled module */
/* passes_ms: optimisation; codegen_ms: machine code and linking; cached: the machine code
 * came from the disk cache (TJ_CACHE_DIR), so nothing was optimised or generated. */
typedef struct tj_compile_times { double passes_ms, codegen_ms; bool cached; } tj_compile_times;

/* bufs[i]: node i's data; calls[i]: node i's call record (function.c) when not inline. */
typedef void (*tj_step_fn)(void **bufs, void **calls);

/* A kernel: one generated function `k<node>_<op>[_<op>...]` (a fused elementwise loop, a
 * reduction, a BLAS call or a call of the op's kernel); step calls them in order. */
#define TJ_GROUP_MAX 24      /* ops in one fused loop */
#define TJ_GROUP_MAX_IN 24   /* values a fused loop reads from outside */
#define TJ_LOOP_REDUCE_MAX 4 /* reductions a fused loop computes */
#define TJ_RECOMPUTE_MAX 4   /* ops a loop computes again of one value of an earlier loop */
/* A kernel computes rows [lo, hi) of its outermost loop dimension (loops), or pieces
 * [lo, hi) (a BLAS call with an epilogue: p = batch * npieces + piece; a loop that reduces:
 * tj_kernel.reduced); other kernels ignore the range. range is that dimension's extent or
 * the number of pieces, grain the rows or pieces per parallel piece. */
typedef void (*tj_kernel_fn)(void **bufs, void **calls, int64_t lo, int64_t hi);

typedef struct tj_kernel {
    int node;                /* its first node */
    int64_t range, grain;
    /* nodes it computes, in order: ops[0..nops); in a matmul's kernel ops[0] is the matmul
     * and ops[1..] its epilogue, elementwise ops of its shape applied to each output tile
     * (small) or piece of each batch (BLAS) as it is computed */
    int nops;
    int ops[TJ_GROUP_MAX];
    /* ops[0..nrecomputed) of a loop: values of an earlier loop it computes again from that
     * loop's inputs (cheaper than storing and loading them); never stored here */
    int nrecomputed;
    /* Sums or maxes of a loop's values are computed in the loop, all of one form
     * (tj_kernel_loop_reduce): it writes the value of each block of TJ_REDUCE_BLOCK
     * elements of each output of reduced[0..nreduced) (the reductions' nodes) to their
     * scratch, output r's blocks after output r - 1's (one block an output for COLS), and
     * each reduction's own kernel, after the loop, combines each output's block values
     * (from_loop: that loop's kernel index, else -1). */
    int nreduced, reduced[TJ_LOOP_REDUCE_MAX];
    int from_loop;
    const char *ends;        /* why the group ends where it does (fused loops, epilogues) */
    char name[64];
    tj_kernel_fn fn;
} tj_kernel;

typedef struct tj_lowered {
    tj_jit_code *code;
    tj_step_fn step;
    tj_compile_times times;
    double ir_ms;         /* building the IR */
    int kernels;          /* kernels emitted */
    tj_kernel *kernel;    /* [kernels], in execution order (tj_lowered_free) */
    bool *stored;         /* per node: its value is written to its buffer (fused values may not be) */
    int nnodes;
    char *ir, *ir_opt, *asm_text;   /* texts, when asked for (dumps) */
} tj_lowered;

typedef enum {
    TJ_KERNEL_VIEW, TJ_KERNEL_LOOP, TJ_KERNEL_REDUCE, TJ_KERNEL_SMALL_MATMUL, TJ_KERNEL_BLAS, TJ_KERNEL_CALL
} tj_kernel_kind;
tj_kernel_kind tj_kernel_kind_of(const tj_graph *g, const tj_gnode *nd);
/* The kind of kernel k: its node's, but REDUCE for the end of a reduction a loop computed
 * (from_loop: a reduction over leading axes is otherwise a call of its kernel). */
tj_kernel_kind tj_kernel_kind_at(const tj_graph *g, const tj_kernel *k);

/* The kernels of the live nodes, in execution order (*out: tj_mem_alloc'd, n of them):
 * runs of consecutive elementwise nodes of one shape fuse into one loop, also through
 * views (reshape, stop_gradient) when the loop can run flat: all its nodes of one numel
 * and every value it reads from outside of that numel or a scalar; a loop may absorb
 * reductions of its values that follow (tj_kernel.reduced, tj_kernel_reduce_form); such a
 * run right after a small matmul or a BLAS call (batched or not), of the matmul's shape, is
 * the matmul's epilogue (in its kernel; a BLAS call's range is then its batches times its
 * pieces, tj_blas_pieces); a transpose read only by small matmuls (which read its input in place)
 * has no kernel; every other node is a kernel of its own. stored[i]: node i's value is
 * written to its buffer (a fused value used only inside its kernel, or such a transpose,
 * is not). 0 or OOM. */
int  tj_kernel_plan(const tj_graph *g, const bool *live, tj_kernel **out, int *n, bool *stored);

/* The loop nest of a fused loop: its shape with size-1 dims dropped and contiguous dims
 * merged, or one dimension of its numel for a flat loop (its ops of several shapes); in[k]
 * is the k-th value its elementwise ops read from outside (a node id: tj_kernel_loop_read),
 * st[k][d] its stride along dim d (0 where broadcast). A kernel reads at most
 * TJ_GROUP_MAX_IN; the room for one more op's three is for the check that would add it. */
typedef struct tj_loop_dims {
    int nd, nin;
    int64_t dim[TJ_MAX_DIMS];
    int in[TJ_GROUP_MAX_IN + 3];
    int64_t st[TJ_GROUP_MAX_IN + 3][TJ_MAX_DIMS];
} tj_loop_dims;
void tj_kernel_loop_dims(const tj_graph *g, const tj_kernel *k, tj_loop_dims *e);
/* How a loop can compute reduction nd (nout outputs of K values each; 0, 0 for NONE): ROWS,
 * a sum/max over trailing axes (tj_lower_reduce_inline), output r reducing the elements
 * [r K, (r + 1) K) in row-major order; COLS, a sum/max over axes in the middle (size-1
 * dims aside) of an input seen as (outer, K, *n) with K <= TJ_REDUCE_BLOCK and *n > 1 (the
 * columns; 1 for ROWS; n may be NULL): output (o, j) reduces the elements o K n + j,
 * o K n + n + j, ... (math/reduce.h's column form, as runtime/ops/reduce.c runs it). A loop
 * that computes COLS reductions runs over pieces of TJ_REDUCE_COLS_PIECE columns of each
 * o, each piece all its K rows, in order. */
typedef enum { TJ_REDUCE_NONE, TJ_REDUCE_ROWS, TJ_REDUCE_COLS } tj_reduce_form;
#define TJ_REDUCE_COLS_PIECE 256
tj_reduce_form tj_kernel_reduce_form(const tj_graph *g, const tj_gnode *nd, int64_t *nout, int64_t *K, int64_t *n);
/* The block values a loop that computes reduction nd leaves for each of its outputs:
 * ceil(K / TJ_REDUCE_BLOCK) over rows, 1 over columns (0 for NONE). */
int64_t tj_kernel_reduce_blocks(const tj_graph *g, const tj_gnode *nd);
/* The form of loop k's reductions, all of one form and size (NONE: it computes none). Its
 * loop nest is one dimension, or two with rows of K (ROWS) or n (COLS) elements. */
tj_reduce_form tj_kernel_loop_reduce(const tj_graph *g, const tj_kernel *k, int64_t *nout, int64_t *K, int64_t *n);
/* Loop k runs flat: its ops have several shapes (of one numel), through views. */
bool tj_kernel_loop_flat(const tj_graph *g, const tj_kernel *k);
/* The same over the kernel's shape as it is (nd its rank, no dim dropped or merged): how a
 * small matmul's epilogue finds its inputs' elements at an output tile. */
void tj_kernel_loop_inputs(const tj_graph *g, const tj_kernel *k, tj_loop_dims *e);
/* What an op of k reads for its input `in`: the op of k it shows, through replacements and
 * views (a value in registers), else the node as read (resolved; a view reads the buffer
 * of the value it shows). */
int  tj_kernel_loop_read(const tj_graph *g, const tj_kernel *k, int in);
/* The value node id shows: id through replacements and views. */
int  tj_kernel_view_source(const tj_graph *g, int id);

/* The node is generated inline (an elementwise loop), not a call of its kernel. */
bool tj_lower_inline(const tj_graph *g, const tj_gnode *nd);
/* A sum/max over trailing axes (size-1 dims aside), generated inline in the canonical
 * order: nout outputs of K values each; it needs scratch for ceil(K / 4096) values
 * (calls[i] points at it). */
bool tj_lower_reduce_inline(const tj_graph *g, const tj_gnode *nd, int64_t *nout, int64_t *K);
/* The node shares its input's buffer (reshape, stop_gradient): no code. */
bool tj_lower_is_view(const tj_gnode *nd);

/* A small f32/f64 matmul (ops/matmul_small.h decides) generated inline, in the order of
 * that header. An operand that is a transpose swapping the last two axes is read from the
 * transpose's input in place, its strides swapped, as is one the matmul reads transposed
 * (attr.mm; both: neither). Batch t (row-major over batch, the
 * output's batch dims) reads A + sum_d t_d*sta[d], B + sum_d t_d*stb[d] and writes C +
 * t*m*n; within it a[i,p] = A[i*ars + p*acs], b[p,j] = B[p*brs + j*bcs], y[i,j] = C[i*n + j]. */
typedef struct tj_small_matmul {
    int a, b;                   /* the nodes read: A and B */
    int a_through, b_through;   /* the transpose read through (then a, b are its input), or -1 */
    tj_dtype dtype;
    int64_t m, n, k;
    int64_t ars, acs, brs, bcs;
    tj_shape batch;
    int64_t sta[TJ_MAX_DIMS], stb[TJ_MAX_DIMS];   /* 0 where an operand is broadcast */
} tj_small_matmul;
bool tj_kernel_small_matmul(const tj_graph *g, const tj_gnode *nd, tj_small_matmul *mm);
/* Matmul nd's inner size k, and in *trans the operands it reads transposed (attr.mm, as
 * core/blas.h's TJ_BLAS_TA | TJ_BLAS_TB). */
int64_t tj_kernel_matmul_k(const tj_graph *g, const tj_gnode *nd, int *trans);

#endif
