/* bufplan.c: the arena of a compiled step, planned by liveness (see bufplan.h). Buffers
 * are placed largest first, each at the lowest offset free of every placed buffer whose
 * life overlaps its own (the greedy-by-size placement of TFLite's arena planner). */
#include "bufplan.h"
#include "math/reduce.h"

#include <stdlib.h>

typedef struct buf { int node; bool scratch; int64_t size, at; int first, last; } buf;

static int64_t round64(int64_t x) { return (x + 63) & ~(int64_t)63; }

static bool has_value(const tj_graph *g, const bool *live, const bool *stored, int i) {
    const tj_gnode *nd = &g->nodes[i];
    return live[i] && nd->kind == TJ_N_OP && nd->replaced_by < 0 && !tj_lower_is_view(nd) && (!stored || stored[i]);
}

/* Kernel k reads node x: x's buffer (or input, state, constant), or for a value without
 * one (a view, a value kept in registers, a transpose read in place) what it is made from. */
static void mark_read(const tj_graph *g, const bool *live, const bool *stored, int *last, int x, int k) {
    x = tj_graph_resolve(g, x);
    const tj_gnode *nd = &g->nodes[x];
    if (nd->kind != TJ_N_OP || has_value(g, live, stored, x)) {
        if (last[x] < k) last[x] = k;
        return;
    }
    for (int q = 0; q < nd->nin; q++) mark_read(g, live, stored, last, nd->in[q], k);
}

/* Kernel k cannot fail: a call of an eager kernel that checks nothing and allocates
 * nothing, or generated code. A step whose kernels all cannot fail may write variables
 * in place: a failed step must leave them as they were. */
static bool cannot_fail(const tj_graph *g, const tj_kernel *k) {
    const tj_gnode *nd = &g->nodes[k->node];
    if (tj_kernel_kind_of(g, nd) != TJ_KERNEL_CALL) return true;
    switch (nd->op) {
    case TJ_OP_TRANSPOSE: case TJ_OP_POW: case TJ_OP_RAND_UNIFORM: case TJ_OP_RAND_NORMAL: return true;
    case TJ_OP_SUM: case TJ_OP_MAX:      /* one block per output: no scratch to allocate */
        return g->nodes[tj_graph_resolve(g, nd->in[0])].numel <= TJ_REDUCE_BLOCK * (nd->numel ? nd->numel : 1);
    default: return false;
    }
}

/* Node x is node s, or is read from s through nodes without a value of their own (views,
 * folded transposes). */
static bool reads_through(const tj_graph *g, const bool *live, const bool *stored, int x, int s) {
    x = tj_graph_resolve(g, x);
    const tj_gnode *nd = &g->nodes[x];
    if (x == s) return true;
    if (nd->kind != TJ_N_OP || has_value(g, live, stored, x)) return false;
    for (int q = 0; q < nd->nin; q++)
        if (reads_through(g, live, stored, nd->in[q], s)) return true;
    return false;
}

/* Kernel k is a matmul that reads state node s: its epilogue writes tile by tile (small)
 * or piece by piece (BLAS) while the matmul still reads s. */
static bool matmul_reads(const tj_graph *g, const bool *live, const tj_lowered *low, int k, int s) {
    const tj_gnode *mm = &g->nodes[low->kernel[k].ops[0]];
    if (tj_lower_inline(g, mm)) return false;
    for (int q = 0; q < mm->nin; q++)
        if (reads_through(g, live, low->stored, mm->in[q], s)) return true;
    return false;
}

/* Write w can go straight into its variable's storage: a loop or a matmul's epilogue
 * computes it (element i is written after element i is read), no later kernel reads the
 * variable's old value, that kernel reads it only elementwise (the same shape; not as the
 * matmul's operand), and the value is no output and has no other write, nor the variable. */
static bool in_place(const tj_graph *g, const bool *live, const tj_lowered *low, const int *first, const int *last, int w) {
    int n = tj_graph_resolve(g, g->writes[w].node);
    const tj_gnode *nd = &g->nodes[n];
    if (nd->kind != TJ_N_OP || first[n] < 0 || tj_kernel_kind_of(g, nd) != TJ_KERNEL_LOOP) return false;
    for (int i = 0; i < g->nout; i++)
        if (tj_graph_resolve(g, g->outputs[i]) == n) return false;
    for (int v = 0; v < g->nwrites; v++)
        if (v != w && (g->writes[v].var == g->writes[w].var || tj_graph_resolve(g, g->writes[v].node) == n)) return false;
    for (int s = 0; s < g->n; s++) {
        const tj_gnode *st = &g->nodes[s];
        if (st->kind != TJ_N_STATE || st->var != g->writes[w].var || last[s] < 0) continue;
        if (last[s] > first[n]) return false;
        if (last[s] == first[n] && (!tj_shape_equal(&st->shape, &nd->shape) || matmul_reads(g, live, low, first[n], s)))
            return false;
    }
    return true;
}

/* Output i can be computed straight into the tensor the call returns: a value of its own
 * in a kernel (not an input, state, constant or alias), returned once and not written to a
 * variable. */
static bool direct_out(const tj_graph *g, const bool *live, const bool *stored, const int *first, int i) {
    int n = tj_graph_resolve(g, g->outputs[i]);
    if (!has_value(g, live, stored, n) || first[n] < 0) return false;
    for (int j = 0; j < g->nout; j++)
        if (j != i && tj_graph_resolve(g, g->outputs[j]) == n) return false;
    for (int w = 0; w < g->nwrites; w++)
        if (tj_graph_resolve(g, g->writes[w].node) == n) return false;
    return true;
}

static int by_size(const void *a, const void *b) {
    const buf *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->first != y->first ? x->first - y->first : x->node - y->node;   /* deterministic */
}

static int by_offset(const void *a, const void *b) {
    const buf *x = *(const buf *const *)a, *y = *(const buf *const *)b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Places bs[0..n) (sorted largest first): each at the lowest gap among the placed buffers
 * whose lives overlap its own. */
static int64_t place(buf *bs, int n, const buf **clash) {
    int64_t top = 0;
    for (int i = 0; i < n; i++) {
        int nc = 0;
        for (int j = 0; j < i; j++)
            if (bs[j].first <= bs[i].last && bs[i].first <= bs[j].last) clash[nc++] = &bs[j];
        qsort(clash, (size_t)nc, sizeof *clash, by_offset);
        int64_t at = 0;
        for (int j = 0; j < nc && clash[j]->at < at + bs[i].size; j++)
            if (clash[j]->at + clash[j]->size > at) at = clash[j]->at + clash[j]->size;
        bs[i].at = at;
        if (at + bs[i].size > top) top = at + bs[i].size;
    }
    return top;
}

int tj_buffer_plan(const tj_graph *g, const bool *live, const tj_lowered *low, bool share,
                   int64_t *off, int64_t *scratch, bool *inplace, bool *direct, size_t *bytes) {
    int n = g->n, nk = low->kernels, nb = 0;
    size_t cap = (size_t)(2 * n + 1);
    int *first = tj_mem_alloc(sizeof(int) * cap);
    buf *bs = tj_mem_alloc(sizeof(buf) * cap);
    const buf **clash = tj_mem_alloc(sizeof(buf *) * cap);
    if (!first || !bs || !clash) {
        tj_mem_free(first, sizeof(int) * cap);
        tj_mem_free(bs, sizeof(buf) * cap);
        tj_mem_free(clash, sizeof(buf *) * cap);
        return TJ_ERR_OOM;
    }
    int *last = first + n;
    for (int i = 0; i < n; i++) { first[i] = -1; last[i] = -1; off[i] = scratch[i] = -1; }
    for (int k = 0; k < nk; k++)
        for (int m = 0; m < low->kernel[k].nops; m++) {
            int id = low->kernel[k].ops[m];
            if (m >= low->kernel[k].nrecomputed) first[id] = last[id] = k;   /* else only read here */
            for (int q = 0; q < g->nodes[id].nin; q++) mark_read(g, live, low->stored, last, g->nodes[id].in[q], k);
        }
    for (int i = 0; i < g->nout; i++) mark_read(g, live, low->stored, last, g->outputs[i], nk);   /* copied out */
    bool safe = share;
    for (int k = 0; k < nk; k++) safe = safe && cannot_fail(g, &low->kernel[k]);
    for (int w = 0; w < g->nwrites; w++) {      /* before the writes' own reads (below) */
        inplace[w] = safe && in_place(g, live, low, first, last, w);
        if (inplace[w]) off[tj_graph_resolve(g, g->writes[w].node)] = -2;   /* outside the arena */
    }
    for (int i = 0; i < g->nout; i++) {
        direct[i] = share && direct_out(g, live, low->stored, first, i);
        if (direct[i]) off[tj_graph_resolve(g, g->outputs[i])] = -2;
    }
    for (int i = 0; i < g->nwrites; i++) mark_read(g, live, low->stored, last, g->writes[i].node, nk);
    for (int i = 0; i < n; i++) {
        if (!has_value(g, live, low->stored, i)) continue;
        if (first[i] < 0) { first[i] = 0; last[i] = nk; }    /* in no kernel: the whole step */
        const tj_gnode *nd = &g->nodes[i];
        if (off[i] != -2)
            bs[nb++] = (buf){i, false, round64(nd->numel * (int64_t)tj_dtype_size(nd->dtype)), 0, first[i], last[i]};
        int64_t nout, K;
        /* block values, while its kernel runs: one output's at a time, or every output's
         * from the loop that fills them, if one does */
        bool filled = first[i] < nk && low->kernel[first[i]].from_loop >= 0;
        int from = filled ? low->kernel[first[i]].from_loop : first[i];
        tj_reduce_form f = tj_kernel_reduce_form(g, nd, &nout, &K, NULL);
        if (f == TJ_REDUCE_ROWS || filled)
            bs[nb++] = (buf){i, true, round64(tj_kernel_reduce_blocks(g, nd) * (filled ? nout : 1) * (int64_t)tj_dtype_size(nd->dtype)),
                             0, from, first[i]};
    }
    if (!share)
        for (int i = 0; i < nb; i++) { bs[i].first = 0; bs[i].last = nk; }   /* every life overlaps */
    qsort(bs, (size_t)nb, sizeof *bs, by_size);
    *bytes = (size_t)place(bs, nb, clash);
    for (int i = 0; i < nb; i++) (bs[i].scratch ? scratch : off)[bs[i].node] = bs[i].at;
    tj_mem_free(first, sizeof(int) * cap);
    tj_mem_free(bs, sizeof(buf) * cap);
    tj_mem_free(clash, sizeof(buf *) * cap);
    return 0;
}
