/* kernels.c: how each live node becomes a kernel: a view (no code), an elementwise vector
 * loop (which may also compute reductions of its values over rows or columns, and compute
 * again cheap values of an earlier loop instead of loading them), an inline reduction, an
 * inline small matmul (reading transposes in place; the elementwise ops after it are its
 * epilogue), a direct BLAS call (with its epilogue on each piece of each batch) or a call
 * of the op's eager kernel, and the loop nest of elementwise kernels (one flat dimension
 * for a loop through reshapes, whose ops read views of its values in registers). One
 * place, used by the lowering (lower.c) and the dumps (dump.c); plain C, no LLVM. */
#include "lowered.h"
#include "matmul_small.h"
#include "math/reduce.h"
#include "core/blas.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

bool tj_lower_inline(const tj_graph *g, const tj_gnode *nd) {
    (void)g;
    if (nd->kind != TJ_N_OP) return false;
    if (nd->op == TJ_OP_CAST) return true;
    tj_kind k = tj_ops[nd->op]->kind;
    if (k != TJ_KIND_UNARY && k != TJ_KIND_BINARY && k != TJ_KIND_TERNARY) return false;
    if (nd->op == TJ_OP_POW) return false;                       /* libm's pow: the kernel */
    if (nd->op == TJ_OP_DIV && nd->dtype == TJ_I32) return false; /* checks for zero */
    return true;
}

bool tj_lower_reduce_inline(const tj_graph *g, const tj_gnode *nd, int64_t *nout, int64_t *K) {
    if (nd->kind != TJ_N_OP || (nd->op != TJ_OP_SUM && nd->op != TJ_OP_MAX)) return false;
    const tj_shape *s = &g->nodes[tj_graph_resolve(g, nd->in[0])].shape;
    bool red[TJ_MAX_DIMS] = {false};
    for (int i = 0; i < nd->attr.red.naxes; i++) red[nd->attr.red.axes[i]] = true;
    bool seen = false;
    for (int d = 0; d < s->ndim; d++) {
        if (red[d]) seen = true;
        else if (seen && s->dim[d] != 1) return false;     /* a kept dim after a reduced one */
    }
    *nout = nd->numel;
    *K = nd->numel ? tj_shape_numel(s) / nd->numel : 0;
    return true;
}

bool tj_lower_is_view(const tj_gnode *nd) {
    return nd->kind == TJ_N_OP && (nd->op == TJ_OP_RESHAPE || nd->op == TJ_OP_STOP_GRADIENT);
}

/* position of node id in k's ops, or -1 */
static int member(const tj_kernel *k, int id) {
    for (int i = 0; i < k->nops; i++)
        if (k->ops[i] == id) return i;
    return -1;
}

/* The first elementwise op of k: 0, or 1 after a matmul (its epilogue). */
static int first_elementwise(const tj_graph *g, const tj_kernel *k) {
    return tj_lower_inline(g, &g->nodes[k->ops[0]]) ? 0 : 1;
}

int tj_kernel_view_source(const tj_graph *g, int id) {
    id = tj_graph_resolve(g, id);
    while (tj_lower_is_view(&g->nodes[id])) id = tj_graph_resolve(g, g->nodes[id].in[0]);
    return id;
}

int tj_kernel_loop_read(const tj_graph *g, const tj_kernel *k, int in) {
    int s = tj_kernel_view_source(g, in);
    return member(k, s) >= 0 ? s : tj_graph_resolve(g, in);
}

/* The values k's elementwise ops read from outside, in first-read order (into e->in). */
static void outside_reads(const tj_graph *g, const tj_kernel *k, tj_loop_dims *e) {
    for (int m = first_elementwise(g, k); m < k->nops; m++) {
        const tj_gnode *nd = &g->nodes[k->ops[m]];
        for (int q = 0; q < nd->nin; q++) {
            int x = tj_kernel_loop_read(g, k, nd->in[q]);
            bool seen = member(k, x) >= 0;
            for (int j = 0; j < e->nin && !seen; j++) seen = e->in[j] == x;
            if (!seen) e->in[e->nin++] = x;
        }
    }
}

void tj_kernel_loop_inputs(const tj_graph *g, const tj_kernel *k, tj_loop_dims *e) {
    memset(e, 0, sizeof *e);
    outside_reads(g, k, e);
    const tj_shape *os = &g->nodes[k->node].shape;
    e->nd = os->ndim;
    for (int d = 0; d < os->ndim; d++) {
        e->dim[d] = os->dim[d];
        for (int j = 0; j < e->nin; j++) {
            const tj_shape *is = &g->nodes[e->in[j]].shape;
            int di = d - (os->ndim - is->ndim);
            int64_t st = 0;
            if (di >= 0 && is->dim[di] != 1) {
                st = 1;
                for (int q = di + 1; q < is->ndim; q++) st *= is->dim[q];
            }
            e->st[j][d] = st;
        }
    }
}

/* A loop whose ops all have its first op's shape runs over that shape (views between its
 * ops keep the element order); one whose ops have several shapes runs flat (joins). */
bool tj_kernel_loop_flat(const tj_graph *g, const tj_kernel *k) {
    for (int m = 1; m < k->nops; m++)
        if (!tj_shape_equal(&g->nodes[k->ops[m]].shape, &g->nodes[k->node].shape)) return true;
    return false;
}

/* A flat loop: one dimension of numel elements; an input of that numel is read in order
 * (stride 1), a scalar is broadcast (stride 0). */
static void flat_dims(const tj_graph *g, const tj_kernel *k, tj_loop_dims *e) {
    memset(e, 0, sizeof *e);
    outside_reads(g, k, e);
    e->nd = 1;
    e->dim[0] = g->nodes[k->node].numel;
    for (int j = 0; j < e->nin; j++) e->st[j][0] = g->nodes[e->in[j]].numel != 1;
}

/* Folded loop nest of an elementwise node: size-1 dims dropped, dims contiguous for every
 * input merged, as dispatch.c does; one dimension for a flat loop. */
void tj_kernel_loop_dims(const tj_graph *g, const tj_kernel *k, tj_loop_dims *e) {
    if (tj_kernel_loop_flat(g, k)) { flat_dims(g, k, e); return; }
    tj_kernel_loop_inputs(g, k, e);
    int n = 0;
    for (int d = 0; d < e->nd; d++) {
        if (e->dim[d] == 1) continue;
        bool fold = n > 0;
        for (int j = 0; j < e->nin && fold; j++) fold = e->st[j][n - 1] == e->st[j][d] * e->dim[d];
        if (fold) {
            e->dim[n - 1] *= e->dim[d];
            for (int j = 0; j < e->nin; j++) e->st[j][n - 1] = e->st[j][d];
        } else {
            e->dim[n] = e->dim[d];
            for (int j = 0; j < e->nin; j++) e->st[j][n] = e->st[j][d];
            n++;
        }
    }
    for (int d = n; d < TJ_MAX_DIMS; d++) {        /* unused dims; a scalar's loop has one element */
        e->dim[d] = d == 0;
        for (int j = 0; j < e->nin; j++) e->st[j][d] = 0;
    }
    e->nd = n ? n : 1;
}

static bool kernel_node(const tj_graph *g, const bool *live, const bool *folded, int i) {
    const tj_gnode *nd = &g->nodes[i];
    return live[i] && nd->kind == TJ_N_OP && nd->replaced_by < 0 && !tj_lower_is_view(nd) && !folded[i];
}

/* Why an open fused loop ends before a kernel of kind k. */
static const char *ends_before(tj_kernel_kind k) {
    switch (k) {
    case TJ_KERNEL_REDUCE: return "a reduction follows";
    case TJ_KERNEL_SMALL_MATMUL: return "a matmul (inline) follows";
    case TJ_KERNEL_BLAS: return "a matmul (BLAS call) follows";
    case TJ_KERNEL_VIEW: case TJ_KERNEL_LOOP: case TJ_KERNEL_CALL: break;
    }
    return "an op without a loop of its own follows";
}

/* The input of node id if it is a transpose swapping the last two axes, else -1. */
static int swapped_input(const tj_graph *g, int id) {
    const tj_gnode *t = &g->nodes[tj_graph_resolve(g, id)];
    int r = t->shape.ndim;
    if (t->kind != TJ_N_OP || t->op != TJ_OP_TRANSPOSE || r < 2) return -1;
    for (int d = 0; d < r - 2; d++)
        if (t->attr.perm[d] != d) return -1;
    if (t->attr.perm[r - 2] != r - 1 || t->attr.perm[r - 1] != r - 2) return -1;
    return tj_graph_resolve(g, t->in[0]);
}

/* folded[t]: t is a live transpose whose every reader is a small matmul (which reads t's
 * input in place), and no output or state write: it needs no kernel and no value. */
static void fold_transposes(const tj_graph *g, const bool *live, bool *folded) {
    for (int i = 0; i < g->n; i++) folded[i] = live[i] && g->nodes[i].replaced_by < 0 && swapped_input(g, i) >= 0;
    for (int i = 0; i < g->nout; i++) folded[tj_graph_resolve(g, g->outputs[i])] = false;
    for (int i = 0; i < g->nwrites; i++) folded[tj_graph_resolve(g, g->writes[i].node)] = false;
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        tj_small_matmul mm;
        if (!live[i] || nd->kind != TJ_N_OP || nd->replaced_by >= 0 || tj_kernel_small_matmul(g, nd, &mm)) continue;
        for (int q = 0; q < nd->nin; q++) folded[tj_graph_resolve(g, nd->in[q])] = false;
    }
}

tj_reduce_form tj_kernel_reduce_form(const tj_graph *g, const tj_gnode *nd, int64_t *nout, int64_t *K, int64_t *n) {
    int64_t cols = 1;
    *nout = *K = 0;
    if (n) *n = 1;
    if (tj_lower_reduce_inline(g, nd, nout, K)) return TJ_REDUCE_ROWS;
    if (nd->kind != TJ_N_OP || (nd->op != TJ_OP_SUM && nd->op != TJ_OP_MAX)) return TJ_REDUCE_NONE;
    const tj_shape *s = &g->nodes[tj_graph_resolve(g, nd->in[0])].shape;
    bool red[TJ_MAX_DIMS] = {false}, seen = false;
    for (int i = 0; i < nd->attr.red.naxes; i++) red[nd->attr.red.axes[i]] = true;
    int64_t outer = 1, k = 1;
    for (int d = 0; d < s->ndim; d++) {     /* as runtime/ops/reduce.c sorts its axes */
        if (red[d] && cols > 1 && s->dim[d] != 1) return TJ_REDUCE_NONE;     /* reduced, kept, reduced */
        seen = seen || red[d];
        *(red[d] ? &k : seen ? &cols : &outer) *= s->dim[d];
    }
    if (cols < 2 || k > TJ_REDUCE_BLOCK) return TJ_REDUCE_NONE;
    *nout = outer * cols;
    *K = k;
    if (n) *n = cols;
    return TJ_REDUCE_COLS;
}

int64_t tj_kernel_reduce_blocks(const tj_graph *g, const tj_gnode *nd) {
    int64_t nout, K;
    switch (tj_kernel_reduce_form(g, nd, &nout, &K, NULL)) {
    case TJ_REDUCE_ROWS: return (K + TJ_REDUCE_BLOCK - 1) / TJ_REDUCE_BLOCK;
    case TJ_REDUCE_COLS: return 1;
    case TJ_REDUCE_NONE: break;
    }
    return 0;
}

tj_reduce_form tj_kernel_loop_reduce(const tj_graph *g, const tj_kernel *k, int64_t *nout, int64_t *K, int64_t *n) {
    *nout = *K = 0;
    if (n) *n = 1;
    return k->nreduced > 0 ? tj_kernel_reduce_form(g, &g->nodes[k->reduced[0]], nout, K, n) : TJ_REDUCE_NONE;
}

/* A loop of dims e can run as rows of `len` elements, row r being elements [r len, (r + 1)
 * len): it runs flat (one dimension), or its rows are that long. Rows of K for rows
 * reduced, of n (the columns) for columns. */
static bool rows_fit(const tj_loop_dims *e, int64_t len) {
    return e->nd == 1 || (e->nd == 2 && e->dim[1] == len);
}

static int64_t row_length(tj_reduce_form f, int64_t K, int64_t n) { return f == TJ_REDUCE_COLS ? n : K; }

/* Whether the open loop can compute reduction nd too: one it can compute (its rows or its
 * columns, with at most a block of block values per output to finish) of a value of the
 * loop, whose rows the loop can run as (rows_fit), of the same form and size as the
 * loop's other reductions. A matmul's epilogue computes none. */
static bool absorbable(const tj_graph *g, const tj_kernel *open, const tj_gnode *nd) {
    int64_t nout, K, n, nout0, K0, n0;
    tj_reduce_form f = tj_kernel_reduce_form(g, nd, &nout, &K, &n);
    if (first_elementwise(g, open) > 0 || open->nreduced == TJ_LOOP_REDUCE_MAX || f == TJ_REDUCE_NONE || K < 1 ||
        K > TJ_REDUCE_BLOCK * (int64_t)TJ_REDUCE_BLOCK)
        return false;
    if (member(open, tj_kernel_loop_read(g, open, nd->in[0])) < 0) return false;
    tj_reduce_form f0 = tj_kernel_loop_reduce(g, open, &nout0, &K0, &n0);
    if (open->nreduced > 0 && (f0 != f || nout0 != nout || K0 != K || n0 != n)) return false;
    tj_loop_dims e;
    tj_kernel_loop_dims(g, open, &e);
    return rows_fit(&e, row_length(f, K, n));
}

/* Every value e (a flat loop's reads) reads from outside has n elements or one. */
static bool flat_reads(const tj_graph *g, const tj_loop_dims *e, int64_t n) {
    for (int j = 0; j < e->nin; j++)
        if (g->nodes[e->in[j]].numel != n && g->nodes[e->in[j]].numel != 1) return false;
    return true;
}

/* Whether elementwise node i can join the open loop; if not, *why says why (the loop
 * ends there). An op of the loop's shape joins; so does one of its numel (behind a view,
 * say) if the loop can then run flat, which a matmul's epilogue never does. A loop that
 * computes reductions takes no op that reads one, and stays one-dimensional. */
static bool joins(const tj_graph *g, const tj_kernel *open, int i, const char **why) {
    const tj_gnode *nd = &g->nodes[i];
    *why = "the next elementwise op has another shape";
    if (!tj_shape_equal(&g->nodes[open->node].shape, &nd->shape) &&
        (nd->numel != g->nodes[open->node].numel || first_elementwise(g, open) > 0))
        return false;
    *why = "the loop holds the most ops it may";
    if (open->nops == TJ_GROUP_MAX) return false;
    tj_kernel t = *open;
    t.ops[t.nops++] = i;
    tj_loop_dims e;
    tj_kernel_loop_dims(g, &t, &e);
    *why = "the loop reads the most inputs it may";
    if (e.nin > TJ_GROUP_MAX_IN) return false;
    *why = "the loop would run flat (its ops have several shapes) but the next op broadcasts a value";
    if (tj_kernel_loop_flat(g, &t) && !flat_reads(g, &e, nd->numel)) return false;
    if (open->nreduced == 0) return true;
    *why = "the next op reads a reduction the loop computes";
    for (int q = 0; q < nd->nin; q++)
        for (int r = 0; r < open->nreduced; r++)
            if (tj_kernel_view_source(g, nd->in[q]) == open->reduced[r]) return false;
    int64_t nout, K, n;
    tj_reduce_form f = tj_kernel_loop_reduce(g, open, &nout, &K, &n);
    *why = "the next op would break the rows the loop reduces";
    return rows_fit(&e, row_length(f, K, n));
}

/* Whether the open loop stays open past view i. A view of a value the loop does not
 * compute is read from its buffer like any outside value. The ops after a view of a loop
 * value read it in registers: element for element when the view has the loop's shape or
 * the loop runs flat (one dimension). A matmul's epilogue ends at any view. */
static bool view_passes(const tj_graph *g, const tj_kernel *open, int i, const char **why) {
    *why = "a view (reshape or stop_gradient) follows";
    if (first_elementwise(g, open) > 0) return false;
    if (member(open, tj_kernel_view_source(g, i)) < 0) return true;
    if (tj_shape_equal(&g->nodes[i].shape, &g->nodes[open->node].shape)) return true;
    tj_loop_dims e;
    tj_kernel_loop_dims(g, open, &e);
    *why = "a reshape of a loop value follows and the loop broadcasts (it cannot run flat)";
    return e.nd == 1;
}

/* The kernels in order: fused runs of elementwise ops (also through views: view_passes),
 * every other kernel node alone. A loop that computes a reduction stays open past it: the
 * reduction's kernel, which only combines block values, runs after the whole loop. The run
 * of elementwise ops of its shape right after a matmul (small, or a BLAS call, batched or
 * not) is its epilogue: ops[1..] of the matmul's kernel.
 * ends: why a loop or an epilogue ends (a matmul without one has no reason). */
static int group(const tj_graph *g, const bool *live, const bool *folded, tj_kernel *ks) {
    int nk = 0;
    tj_kernel *open = NULL;                        /* the fused loop or epilogue that may grow */
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        const char *why = NULL;
        if (!kernel_node(g, live, folded, i)) {
            bool view = live[i] && nd->kind == TJ_N_OP && nd->replaced_by < 0 && !folded[i];
            if (view && open && !view_passes(g, open, i, &why)) {
                if (open->ends) open->ends = why;
                open = NULL;
            }
            continue;
        }
        tj_kernel_kind kind = tj_kernel_kind_of(g, nd);
        bool loop = kind == TJ_KERNEL_LOOP;
        if (open && loop && joins(g, open, i, &why)) {
            open->ops[open->nops++] = i;
            open->ends = "the step ends";
            continue;
        }
        bool absorb = open && !loop && absorbable(g, open, nd);
        if (open && !absorb && open->ends) open->ends = why ? why : ends_before(kind);
        tj_kernel *k = &ks[nk++];
        k->node = i;
        k->nops = 1;
        k->ops[0] = i;
        k->ends = loop ? "the step ends" : NULL;
        k->from_loop = -1;
        if (absorb) {
            open->reduced[open->nreduced++] = i;
            k->from_loop = (int)(open - ks);
        } else {
            open = loop || kind == TJ_KERNEL_SMALL_MATMUL || kind == TJ_KERNEL_BLAS ? k : NULL;
        }
    }
    return nk;
}

/* ---- a cheap value computed again instead of stored --------------------------------------- */

/* Ops cheap enough to compute twice: no transcendental, square root or division. */
static bool cheap(const tj_gnode *nd) {
    switch (nd->op) {
    case TJ_OP_ADD: case TJ_OP_SUB: case TJ_OP_MUL: case TJ_OP_NEG: case TJ_OP_MAXIMUM: case TJ_OP_MINIMUM:
    case TJ_OP_RELU: case TJ_OP_ABS: case TJ_OP_GREATER: case TJ_OP_LESS: case TJ_OP_EQUAL: case TJ_OP_WHERE:
    case TJ_OP_CAST:
        return true;
    case TJ_OP_DIV: case TJ_OP_POW: case TJ_OP_EXP: case TJ_OP_LOG: case TJ_OP_SQRT: case TJ_OP_TANH:
    case TJ_OP_SIGMOID: case TJ_OP_MATMUL: case TJ_OP_SUM: case TJ_OP_MAX: case TJ_OP_ARGMAX: case TJ_OP_RESHAPE:
    case TJ_OP_TRANSPOSE: case TJ_OP_BROADCAST: case TJ_OP_CONCAT: case TJ_OP_SLICE: case TJ_OP_GATHER:
    case TJ_OP_SCATTER_ADD: case TJ_OP_RAND_UNIFORM: case TJ_OP_RAND_NORMAL: case TJ_OP_STOP_GRADIENT: case TJ_OP_COUNT:
        break;
    }
    return false;
}

/* The ops of loop k1 that value x (an op of k1) is computed from, x included, in k1's
 * order (into out): their count, or -1 if there are more than TJ_RECOMPUTE_MAX or one is
 * not cheap. */
static int cone(const tj_graph *g, const tj_kernel *k1, int x, int *out) {
    bool in[TJ_GROUP_MAX] = {false};
    int mx = member(k1, x), n = 0;
    in[mx] = true;
    for (int m = mx; m >= 0; m--) {
        if (!in[m]) continue;
        const tj_gnode *nd = &g->nodes[k1->ops[m]];
        if (!cheap(nd)) return -1;
        for (int q = 0; q < nd->nin; q++) {
            int p = member(k1, tj_kernel_loop_read(g, k1, nd->in[q]));
            if (p >= 0) in[p] = true;
        }
    }
    for (int m = 0; m <= mx; m++) {
        if (!in[m]) continue;
        if (n == TJ_RECOMPUTE_MAX) return -1;
        out[n++] = k1->ops[m];
    }
    return n;
}

/* x is read only by ops of k1 and k2 and by reductions k1 computes, none through a view,
 * and is no output and no state write. */
static bool read_only_by(const tj_graph *g, const bool *live, const tj_kernel *k1, const tj_kernel *k2, int x) {
    for (int i = 0; i < g->nout; i++)
        if (tj_graph_resolve(g, g->outputs[i]) == x) return false;
    for (int i = 0; i < g->nwrites; i++)
        if (tj_graph_resolve(g, g->writes[i].node) == x) return false;
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (!live[i] || nd->kind != TJ_N_OP || nd->replaced_by >= 0) continue;
        bool reads = false;
        for (int q = 0; q < nd->nin; q++) reads = reads || tj_graph_resolve(g, nd->in[q]) == x;
        if (!reads) continue;
        bool reduced = false;
        for (int r = 0; r < k1->nreduced; r++) reduced = reduced || k1->reduced[r] == i;
        if (tj_lower_is_view(nd) || (member(k1, i) < 0 && member(k2, i) < 0 && !reduced)) return false;
    }
    return true;
}

/* Loop k2 (after loop k1) computes x, a value of k1 it reads, again from k1's inputs (the
 * ops of its cone, before its own: k2->nrecomputed, in trace order, so each after what it
 * reads) when that is cheaper than k1 storing x and k2 loading it: a few cheap ops (cone),
 * whose inputs k2 does not read yet (scalars aside) take no more bytes than x; x then needs
 * no buffer (read_only_by), and k1 still has work of its own (an op outside the cone, or a
 * reduction). k2 must be able to run them (joins' rules). */
static bool try_recompute(const tj_graph *g, const bool *live, const tj_kernel *k1, tj_kernel *k2, int x) {
    int c[TJ_RECOMPUTE_MAX], n = cone(g, k1, x, c);
    const tj_gnode *nd = &g->nodes[k2->node];
    if (n < 0 || k2->nops + n > TJ_GROUP_MAX || g->nodes[x].numel != nd->numel || !read_only_by(g, live, k1, k2, x))
        return false;
    bool work = k1->nreduced > 0;                  /* k1 keeps an op of its own outside the cone */
    for (int m = k1->nrecomputed; m < k1->nops && !work; m++) {
        work = true;
        for (int j = 0; j < n; j++) work = work && c[j] != k1->ops[m];
    }
    if (!work) return false;
    tj_loop_dims before, e;
    tj_kernel_loop_dims(g, k2, &before);
    for (int i = 1; i < n; i++)                    /* the cone in trace order */
        for (int j = i; j > 0 && c[j - 1] > c[j]; j--) { int v = c[j]; c[j] = c[j - 1]; c[j - 1] = v; }
    tj_kernel t = *k2;                             /* the ops it computes again, merged in trace order */
    t.nrecomputed = 0;
    for (int i = 0, j = 0; i < k2->nrecomputed || j < n;) {
        bool old = j == n || (i < k2->nrecomputed && k2->ops[i] <= c[j]);
        int id = old ? k2->ops[i++] : c[j++];
        if (t.nrecomputed == 0 || t.ops[t.nrecomputed - 1] != id) t.ops[t.nrecomputed++] = id;
    }
    memcpy(t.ops + t.nrecomputed, k2->ops + k2->nrecomputed, sizeof(int) * (size_t)(k2->nops - k2->nrecomputed));
    t.nops = t.nrecomputed + k2->nops - k2->nrecomputed;
    tj_kernel_loop_dims(g, &t, &e);
    int64_t added = 0, nout, K, ncol;
    for (int j = 0; j < e.nin; j++) {
        bool had = false;
        for (int q = 0; q < before.nin; q++) had = had || before.in[q] == e.in[j];
        if (!had && g->nodes[e.in[j]].numel > 1)    /* a scalar is one load */
            added += g->nodes[e.in[j]].numel * (int64_t)tj_dtype_size(g->nodes[e.in[j]].dtype);
    }
    tj_reduce_form f = tj_kernel_loop_reduce(g, &t, &nout, &K, &ncol);
    if (added > g->nodes[x].numel * (int64_t)tj_dtype_size(g->nodes[x].dtype) || e.nin > TJ_GROUP_MAX_IN ||
        (tj_kernel_loop_flat(g, &t) && !flat_reads(g, &e, nd->numel)) || (f != TJ_REDUCE_NONE && !rows_fit(&e, row_length(f, K, ncol))))
        return false;
    *k2 = t;
    return true;
}

/* Each loop, in order, computes again the values of earlier loops it would read, while
 * try_recompute finds that cheaper. */
static void recompute(const tj_graph *g, const bool *live, tj_kernel *ks, int nk, int *kernel_of) {
    for (int i = 0; i < g->n; i++) kernel_of[i] = -1;
    for (int k = 0; k < nk; k++)
        for (int m = ks[k].nrecomputed; m < ks[k].nops; m++) kernel_of[ks[k].ops[m]] = k;
    for (int k = 0; k < nk; k++) {
        if (tj_kernel_kind_at(g, &ks[k]) != TJ_KERNEL_LOOP) continue;
        for (bool again = true; again;) {
            again = false;
            tj_loop_dims e;
            tj_kernel_loop_dims(g, &ks[k], &e);
            for (int j = 0; j < e.nin && !again; j++) {
                int k1 = kernel_of[e.in[j]];
                again = k1 >= 0 && k1 < k && tj_kernel_kind_at(g, &ks[k1]) == TJ_KERNEL_LOOP &&
                        try_recompute(g, live, &ks[k1], &ks[k], e.in[j]);
            }
        }
    }
}

static bool live_view(const tj_graph *g, const bool *live, int i) {
    return live[i] && tj_lower_is_view(&g->nodes[i]) && g->nodes[i].replaced_by < 0;
}

/* outside[i]: node i is read outside its kernel (by another kernel, an output, a state
 * write or a folded transpose). A view belongs to the kernel of the value it shows, and a
 * view read outside makes that value read outside: it shares its buffer. */
static void mark_outside(const tj_graph *g, const bool *live, const tj_kernel *ks, int *kernel_of, bool *outside) {
    for (int i = 0; i < g->n; i++)
        if (live_view(g, live, i)) kernel_of[i] = kernel_of[tj_kernel_view_source(g, i)];
    for (int i = 0; i < g->nout; i++) outside[tj_graph_resolve(g, g->outputs[i])] = true;
    for (int i = 0; i < g->nwrites; i++) outside[tj_graph_resolve(g, g->writes[i].node)] = true;
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (!live[i] || nd->kind != TJ_N_OP || nd->replaced_by >= 0) continue;
        for (int q = 0; q < nd->nin; q++) {
            int x = tj_graph_resolve(g, nd->in[q]);
            bool computed_here = kernel_of[i] >= 0 && member(&ks[kernel_of[i]], tj_kernel_view_source(g, x)) >= 0;
            if (kernel_of[x] >= 0 && kernel_of[x] != kernel_of[i] && !computed_here) outside[x] = true;   /* computed again */
        }
    }
    for (int i = g->n - 1; i >= 0; i--)          /* a view comes after what it shows */
        if (outside[i] && live_view(g, live, i)) outside[tj_graph_resolve(g, g->nodes[i].in[0])] = true;
}

/* stored: everything but fused values used only inside their loop (or computed again by
 * the loops that read them), views of those, and folded transposes */
static void mark_stored(const tj_graph *g, const bool *live, const bool *folded, const tj_kernel *ks, int nk,
                        int *kernel_of, bool *outside, bool *stored) {
    for (int i = 0; i < g->n; i++) {
        stored[i] = !folded[i];
        kernel_of[i] = -1;
        outside[i] = false;
    }
    for (int k = 0; k < nk; k++)
        for (int m = ks[k].nrecomputed; m < ks[k].nops; m++) kernel_of[ks[k].ops[m]] = k;
    for (int k = 0; k < nk; k++)
        for (int r = 0; r < ks[k].nreduced; r++) kernel_of[ks[k].reduced[r]] = k;   /* reads its input there */
    mark_outside(g, live, ks, kernel_of, outside);
    for (int k = 0; k < nk; k++)
        if (ks[k].nops > 1 || ks[k].nreduced > 0)
            for (int m = ks[k].nrecomputed; m < ks[k].nops; m++) stored[ks[k].ops[m]] = outside[ks[k].ops[m]];
    for (int k = 0; k < nk; k++)             /* BLAS writes its product to memory */
        if (tj_kernel_kind_of(g, &g->nodes[ks[k].node]) == TJ_KERNEL_BLAS) stored[ks[k].node] = true;
    for (int i = 0; i < g->n; i++)
        if (live_view(g, live, i)) stored[i] = stored[tj_kernel_view_source(g, i)];
}

/* the range a loop splits over: its outermost folded dim; pieces of >= 16384 elements. A
 * loop that reduces: the blocks of its rows, row by row, or pieces of its columns
 * (tj_kernel_loop_reduce). A BLAS call with an epilogue: the pieces (tj_blas_pieces) of
 * each batch's product, batch after batch (range nbatch * npieces), one at a time. */
static void split_ranges(const tj_graph *g, tj_kernel *ks, int nk) {
    for (int k = 0; k < nk; k++) {
        const tj_gnode *nd = &g->nodes[ks[k].node];
        ks[k].range = 1;
        ks[k].grain = 1;
        if (tj_kernel_kind_of(g, nd) == TJ_KERNEL_BLAS && ks[k].nops > 1) {
            int64_t m = nd->shape.dim[nd->shape.ndim - 2], n = nd->shape.dim[nd->shape.ndim - 1], pm, pn;
            ks[k].range = nd->numel / (m * n) * tj_blas_pieces(m, n, &pm, &pn);   /* m, n > 0: matmul_direct */
        }
        if (tj_kernel_kind_of(g, nd) != TJ_KERNEL_LOOP || nd->numel == 0) continue;
        int64_t nout, K, n;
        tj_reduce_form f = tj_kernel_loop_reduce(g, &ks[k], &nout, &K, &n);
        if (f != TJ_REDUCE_NONE) {  /* whole blocks of its rows, or pieces of its columns */
            int64_t per = f == TJ_REDUCE_COLS ? K * TJ_REDUCE_COLS_PIECE : K < TJ_REDUCE_BLOCK ? K : TJ_REDUCE_BLOCK;
            ks[k].range = f == TJ_REDUCE_COLS ? nout / n * ((n + TJ_REDUCE_COLS_PIECE - 1) / TJ_REDUCE_COLS_PIECE)
                                              : nout * tj_kernel_reduce_blocks(g, &g->nodes[ks[k].reduced[0]]);
            ks[k].grain = (16384 + per - 1) / per;
            continue;
        }
        tj_loop_dims e;
        tj_kernel_loop_dims(g, &ks[k], &e);
        int64_t per_row = e.nd == 1 ? 1 : g->nodes[ks[k].node].numel / e.dim[0];
        ks[k].range = e.dim[0];
        ks[k].grain = per_row >= 16384 ? 1 : (16384 + per_row - 1) / per_row;
    }
}

/* names: k<first>_<op>_<op>... (its own ops, cut to fit) */
static void name_kernels(const tj_graph *g, tj_kernel *ks, int nk) {
    for (int k = 0; k < nk; k++) {
        size_t len = (size_t)snprintf(ks[k].name, sizeof ks[k].name, "k%d", ks[k].node);
        for (int m = ks[k].nrecomputed; m < ks[k].nops && len < sizeof ks[k].name; m++)
            len += (size_t)snprintf(ks[k].name + len, sizeof ks[k].name - len, "_%s", tj_ops[g->nodes[ks[k].ops[m]].op]->name);
    }
}

int tj_kernel_plan(const tj_graph *g, const bool *live, tj_kernel **out, int *n, bool *stored) {
    *out = NULL;
    *n = 0;
    size_t nn = (size_t)(g->n ? g->n : 1);
    int rc = TJ_ERR_OOM, nk = 0;
    tj_kernel *ks = tj_mem_calloc(sizeof(tj_kernel) * nn), *fit = NULL;
    if (!ks) return TJ_ERR_OOM;
    int *kernel_of = tj_mem_alloc(sizeof(int) * nn);
    if (!kernel_of) goto free_ks;
    bool *outside = tj_mem_alloc(sizeof(bool) * nn);
    if (!outside) goto free_kernel_of;
    bool *folded = tj_mem_alloc(sizeof(bool) * nn);
    if (!folded) goto free_outside;
    fold_transposes(g, live, folded);
    nk = group(g, live, folded, ks);
    recompute(g, live, ks, nk, kernel_of);
    mark_stored(g, live, folded, ks, nk, kernel_of, outside, stored);
    split_ranges(g, ks, nk);
    name_kernels(g, ks, nk);
    if (!(fit = tj_mem_alloc(sizeof(tj_kernel) * (size_t)(nk ? nk : 1)))) goto free_folded;
    memcpy(fit, ks, sizeof(tj_kernel) * (size_t)nk);
    *out = fit;
    *n = nk;
    rc = 0;
free_folded:
    tj_mem_free(folded, sizeof(bool) * nn);
free_outside:
    tj_mem_free(outside, sizeof(bool) * nn);
free_kernel_of:
    tj_mem_free(kernel_of, sizeof(int) * nn);
free_ks:
    tj_mem_free(ks, sizeof(tj_kernel) * nn);
    return rc;
}

/* f32/f64 matmul whose batch dims match (or are absent): one tj_blas_?gemm call per batch,
 * the routine eager's kernel calls (defined in the JIT by address, compile.c), or with an
 * epilogue each batch's pieces (tj_blas_?gemm_piece). Other shapes call the kernel. */
int64_t tj_kernel_matmul_k(const tj_graph *g, const tj_gnode *nd, int *trans) {
    const tj_shape *a = &g->nodes[tj_graph_resolve(g, nd->in[0])].shape;
    *trans = (nd->attr.mm.ta ? TJ_BLAS_TA : 0) | (nd->attr.mm.tb ? TJ_BLAS_TB : 0);
    return a->dim[nd->attr.mm.ta ? a->ndim - 2 : a->ndim - 1];
}

static bool matmul_direct(const tj_graph *g, const tj_gnode *nd) {
    if (nd->op != TJ_OP_MATMUL || nd->dtype == TJ_I32) return false;
    const tj_shape *a = &g->nodes[tj_graph_resolve(g, nd->in[0])].shape, *b = &g->nodes[tj_graph_resolve(g, nd->in[1])].shape;
    int r = nd->shape.ndim, trans;
    int64_t m = nd->shape.dim[r - 2], n = nd->shape.dim[r - 1], k = tj_kernel_matmul_k(g, nd, &trans);
    if (m <= 0 || n <= 0 || k <= 0 || m > INT_MAX || n > INT_MAX || k > INT_MAX) return false;
    if (a->ndim != r || b->ndim != r) return false;
    for (int d = 0; d < r - 2; d++)
        if (a->dim[d] != nd->shape.dim[d] || b->dim[d] != nd->shape.dim[d]) return false;
    return nd->numel / (m * n) <= 64;
}

/* An operand of a small matmul: node in (or the input of the transpose it is: *through). */
static int operand(const tj_graph *g, int in, int *through) {
    int x = swapped_input(g, in);
    *through = x >= 0 ? tj_graph_resolve(g, in) : -1;
    return x >= 0 ? x : tj_graph_resolve(g, in);
}

bool tj_kernel_small_matmul(const tj_graph *g, const tj_gnode *nd, tj_small_matmul *mm) {
    if (nd->kind != TJ_N_OP || nd->op != TJ_OP_MATMUL || nd->dtype == TJ_I32) return false;
    const tj_shape *as = &g->nodes[tj_graph_resolve(g, nd->in[0])].shape;
    const tj_shape *bs = &g->nodes[tj_graph_resolve(g, nd->in[1])].shape;
    int r = nd->shape.ndim, trans;
    int64_t m = nd->shape.dim[r - 2], n = nd->shape.dim[r - 1], k = tj_kernel_matmul_k(g, nd, &trans);
    if (!tj_matmul_small(m, n, k)) return false;
    *mm = (tj_small_matmul){.dtype = nd->dtype, .m = m, .n = n, .k = k, .batch = {.ndim = r - 2}};
    for (int d = 0; d < r - 2; d++) mm->batch.dim[d] = nd->shape.dim[d];
    tj_matmul_batch_strides(as, &mm->batch, mm->sta);     /* a transpose keeps its batch layout */
    tj_matmul_batch_strides(bs, &mm->batch, mm->stb);
    mm->a = operand(g, nd->in[0], &mm->a_through);
    mm->b = operand(g, nd->in[1], &mm->b_through);
    bool ta = nd->attr.mm.ta != (mm->a_through >= 0), tb = nd->attr.mm.tb != (mm->b_through >= 0);
    mm->ars = ta ? 1 : k;                                  /* op(a) read transposed: stored (k, m) */
    mm->acs = ta ? m : 1;
    mm->brs = tb ? 1 : n;                                  /* op(b) read transposed: stored (n, k) */
    mm->bcs = tb ? k : 1;
    return true;
}

tj_kernel_kind tj_kernel_kind_of(const tj_graph *g, const tj_gnode *nd) {
    int64_t nout, K;
    tj_small_matmul mm;
    if (tj_lower_is_view(nd)) return TJ_KERNEL_VIEW;
    if (tj_lower_inline(g, nd)) return TJ_KERNEL_LOOP;
    if (tj_lower_reduce_inline(g, nd, &nout, &K)) return TJ_KERNEL_REDUCE;
    if (tj_kernel_small_matmul(g, nd, &mm)) return TJ_KERNEL_SMALL_MATMUL;
    if (matmul_direct(g, nd)) return TJ_KERNEL_BLAS;
    return TJ_KERNEL_CALL;
}

tj_kernel_kind tj_kernel_kind_at(const tj_graph *g, const tj_kernel *k) {
    return k->from_loop >= 0 ? TJ_KERNEL_REDUCE : tj_kernel_kind_of(g, &g->nodes[k->node]);
}
