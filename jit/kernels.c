/* kernels.c: how each live node becomes a kernel: a view (no code), an elementwise vector
 * loop, an inline reduction, a direct BLAS call or a call of the op's eager kernel, and
 * the folded loop nest of elementwise kernels. One place, used by the lowering (lower.c)
 * and the dumps (dump.c); plain C, no LLVM. */
#include "lowered.h"
#include "core/blas.h"

#include <limits.h>
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

/* Folded loop nest of an elementwise node: dims with each input's stride (0 or the
 * row-major stride), size-1 dims dropped, contiguous dims merged, as dispatch.c does. */
void tj_kernel_loop_dims(const tj_graph *g, const tj_gnode *nd, tj_loop_dims *e) {
    memset(e, 0, sizeof *e);
    e->nin = nd->nin;
    const tj_shape *os = &nd->shape;
    for (int d = 0; d < os->ndim; d++) {
        if (os->dim[d] == 1) continue;
        e->dim[e->nd] = os->dim[d];
        for (int k = 0; k < nd->nin; k++) {
            const tj_shape *is = &g->nodes[tj_graph_resolve(g, nd->in[k])].shape;
            int di = d - (os->ndim - is->ndim);
            int64_t st = 0;
            if (di >= 0 && is->dim[di] != 1) {
                st = 1;
                for (int q = di + 1; q < is->ndim; q++) st *= is->dim[q];
            }
            e->st[k][e->nd] = st;
        }
        e->nd++;
    }
    int n = 0;
    for (int d = 0; d < e->nd; d++) {
        bool fold = n > 0;
        for (int k = 0; k < e->nin && fold; k++) fold = e->st[k][n - 1] == e->st[k][d] * e->dim[d];
        if (fold) {
            e->dim[n - 1] *= e->dim[d];
            for (int k = 0; k < e->nin; k++) e->st[k][n - 1] = e->st[k][d];
        } else {
            e->dim[n] = e->dim[d];
            for (int k = 0; k < e->nin; k++) e->st[k][n] = e->st[k][d];
            n++;
        }
    }
    if (n == 0) { e->dim[0] = 1; n = 1; }
    e->nd = n;
}

/* f32/f64 matmul whose batch dims match (or are absent): one cblas_?gemm call per batch
 * with exactly the arguments tj_blas_sgemm/dgemm pass, on the symbol eager uses (defined
 * explicitly in the JIT by function.c). Other shapes call the kernel. */
static bool matmul_direct(const tj_graph *g, const tj_gnode *nd) {
    if (nd->op != TJ_OP_MATMUL || nd->dtype == TJ_I32) return false;
    if (!(nd->dtype == TJ_F32 ? tj_blas_sgemm_symbol() : tj_blas_dgemm_symbol())) return false;
    const tj_shape *a = &g->nodes[tj_graph_resolve(g, nd->in[0])].shape, *b = &g->nodes[tj_graph_resolve(g, nd->in[1])].shape;
    int r = nd->shape.ndim;
    int64_t m = nd->shape.dim[r - 2], n = nd->shape.dim[r - 1], k = a->dim[a->ndim - 1];
    if (m <= 0 || n <= 0 || k <= 0 || m > INT_MAX || n > INT_MAX || k > INT_MAX) return false;
    if (a->ndim != r || b->ndim != r) return false;
    for (int d = 0; d < r - 2; d++)
        if (a->dim[d] != nd->shape.dim[d] || b->dim[d] != nd->shape.dim[d]) return false;
    return nd->numel / (m * n) <= 64;
}

tj_kernel_kind tj_kernel_kind_of(const tj_graph *g, const tj_gnode *nd) {
    int64_t nout, K;
    if (tj_lower_is_view(nd)) return TJ_KERNEL_VIEW;
    if (tj_lower_inline(g, nd)) return TJ_KERNEL_LOOP;
    if (tj_lower_reduce_inline(g, nd, &nout, &K)) return TJ_KERNEL_REDUCE;
    if (matmul_direct(g, nd)) return TJ_KERNEL_BLAS;
    return TJ_KERNEL_CALL;
}
