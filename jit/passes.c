/* passes.c: graph rewrites that keep every bit of the result. Constant folding runs the
 * op's own eager kernel (tj_exec), so a folded value is exactly what eager computes.
 * Algebraic identities are only those exact in IEEE arithmetic for every input, NaN and
 * signed zero included: x*1, x/1, x-(+0), x+(-0), -(-x), reshape to the same shape.
 * Common subexpressions merge equal ops on equal inputs (never random draws); elementwise
 * ops read through broadcasts (index arithmetic instead of a copy). Dead
 * nodes are left in place and skipped by the lowering (tj_graph_live). */
#include "graph.h"

#include <string.h>

#define FOLD_MAX_NUMEL (1 << 20)

static bool is_random(tj_op op) { return op == TJ_OP_RAND_UNIFORM || op == TJ_OP_RAND_NORMAL; }

/* A stack tensor over a node's constant data, enough for tj_exec. */
static tensor view_of(const tj_gnode *nd, void *data) {
    return (tensor){.data = data, .shape = nd->shape, .numel = nd->numel, .dtype = nd->dtype, .refs = 1};
}

static int fold(tj_graph *g, int i) {
    tj_gnode *nd = &g->nodes[i];
    if (nd->kind != TJ_N_OP || is_random(nd->op) || nd->numel > FOLD_MAX_NUMEL || nd->nin > 8) return 0;
    tensor ins[8], *inp[8];
    for (int k = 0; k < nd->nin; k++) {
        const tj_gnode *x = &g->nodes[tj_graph_resolve(g, nd->in[k])];
        if (x->kind != TJ_N_CONST) return 0;
        ins[k] = view_of(x, x->data);
        inp[k] = &ins[k];
    }
    size_t bytes = (size_t)nd->numel * tj_dtype_size(nd->dtype);
    void *data = tj_mem_alloc(bytes ? bytes : 1);
    if (!data) return TJ_ERR_OOM;
    tensor out = view_of(nd, data);
    if (tj_exec(nd->op, &nd->attr, nd->nin, inp, &out)) {
        tj_mem_free(data, bytes ? bytes : 1);
        return TJ_ERR_OOM;
    }
    if (!bytes) { tj_mem_free(data, 1); data = NULL; }
    tj_mem_free(nd->in, sizeof(int) * (size_t)nd->nin);
    nd->in = NULL;
    nd->nin = 0;
    nd->kind = TJ_N_CONST;
    nd->data = data;
    return 0;
}

/* Every element of constant node c equals v, with v's sign (so -0 and +0 differ). */
static bool const_all(const tj_graph *g, int c, double v) {
    const tj_gnode *nd = &g->nodes[tj_graph_resolve(g, c)];
    if (nd->kind != TJ_N_CONST || nd->numel == 0) return false;
    for (int64_t i = 0; i < nd->numel; i++) {
        double x = nd->dtype == TJ_F32 ? ((const float *)nd->data)[i]
                 : nd->dtype == TJ_F64 ? ((const double *)nd->data)[i] : ((const int32_t *)nd->data)[i];
        if (x != v || __builtin_signbit(x) != __builtin_signbit(v)) return false;
    }
    return true;
}

/* The node i can be replaced by (an exact identity), or -1. */
static int identity_of(const tj_graph *g, int i) {
    const tj_gnode *nd = &g->nodes[i];
    if (nd->kind != TJ_N_OP) return -1;
    int a = nd->nin > 0 ? tj_graph_resolve(g, nd->in[0]) : -1, b = nd->nin > 1 ? tj_graph_resolve(g, nd->in[1]) : -1;
    bool same_a = a >= 0 && tj_shape_equal(&g->nodes[a].shape, &nd->shape) && g->nodes[a].dtype == nd->dtype;
    bool same_b = b >= 0 && tj_shape_equal(&g->nodes[b].shape, &nd->shape) && g->nodes[b].dtype == nd->dtype;
    tj_op op = nd->op;
    if (op == TJ_OP_MUL && same_a && const_all(g, b, 1.0)) return a;
    if (op == TJ_OP_MUL && same_b && const_all(g, a, 1.0)) return b;
    if (op == TJ_OP_DIV && same_a && const_all(g, b, 1.0)) return a;
    if (op == TJ_OP_SUB && same_a && const_all(g, b, 0.0)) return a;
    if (op == TJ_OP_ADD && same_a && const_all(g, b, -0.0)) return a;
    if (op == TJ_OP_ADD && same_b && const_all(g, a, -0.0)) return b;
    if (op == TJ_OP_NEG && g->nodes[a].kind == TJ_N_OP && g->nodes[a].op == TJ_OP_NEG)
        return tj_graph_resolve(g, g->nodes[a].in[0]);
    if ((op == TJ_OP_RESHAPE || op == TJ_OP_BROADCAST) && same_a) return a;
    return -1;
}

static bool same_node(const tj_graph *g, const tj_gnode *x, const tj_gnode *y) {
    if (x->kind != y->kind || x->dtype != y->dtype || !tj_shape_equal(&x->shape, &y->shape)) return false;
    if (x->kind == TJ_N_CONST)
        return memcmp(x->data, y->data, (size_t)x->numel * tj_dtype_size(x->dtype)) == 0;
    if (x->kind != TJ_N_OP || x->op != y->op || x->nin != y->nin || is_random(x->op)) return false;
    if (memcmp(&x->attr, &y->attr, sizeof x->attr) != 0) return false;
    for (int k = 0; k < x->nin; k++)
        if (tj_graph_resolve(g, x->in[k]) != tj_graph_resolve(g, y->in[k])) return false;
    return true;
}

static uint64_t node_hash(const tj_graph *g, const tj_gnode *nd) {
    uint64_t h = (uint64_t)nd->kind * 31 + (uint64_t)nd->op * 131 + (uint64_t)nd->numel * 7 + nd->dtype;
    if (nd->kind == TJ_N_OP)
        for (int k = 0; k < nd->nin; k++) h = h * 1000003u + (uint64_t)tj_graph_resolve(g, nd->in[k]);
    else if (nd->kind == TJ_N_CONST && nd->numel > 0)
        h = h * 1000003u + (uint64_t)((const unsigned char *)nd->data)[0];
    return h;
}

static bool is_elementwise(tj_op op) {
    tj_kind k = tj_ops[op]->kind;
    return k == TJ_KIND_UNARY || k == TJ_KIND_BINARY || k == TJ_KIND_TERNARY;
}

/* An elementwise op broadcasts its inputs itself, so it can read a broadcast's input
 * directly (strides 0): the broadcast becomes index arithmetic and, unused, dead. */
static void fold_broadcasts(tj_graph *g, int i) {
    tj_gnode *nd = &g->nodes[i];
    if (nd->kind != TJ_N_OP || !is_elementwise(nd->op)) return;
    for (int k = 0; k < nd->nin; k++) {
        const tj_gnode *x = &g->nodes[tj_graph_resolve(g, nd->in[k])];
        if (x->kind == TJ_N_OP && x->op == TJ_OP_BROADCAST) nd->in[k] = tj_graph_resolve(g, x->in[0]);
    }
}

int tj_graph_optimize(tj_graph *g) {
    size_t cap = 16;
    while (cap < 2 * (size_t)g->n) cap *= 2;
    int *table = tj_mem_alloc(sizeof(int) * cap);
    if (!table) return TJ_ERR_OOM;
    for (size_t i = 0; i < cap; i++) table[i] = -1;
    int rc = 0;
    for (int i = 0; i < g->n && !rc; i++) {
        tj_gnode *nd = &g->nodes[i];
        if (nd->kind == TJ_N_PARAM || nd->kind == TJ_N_STATE) continue;
        fold_broadcasts(g, i);
        if ((rc = fold(g, i))) break;
        int same = identity_of(g, i);
        if (same >= 0) { nd->replaced_by = same; continue; }
        if (nd->kind == TJ_N_OP && is_random(nd->op)) continue;
        size_t s = (size_t)node_hash(g, nd) & (cap - 1);
        while (table[s] >= 0 && !same_node(g, &g->nodes[table[s]], nd)) s = (s + 1) & (cap - 1);
        if (table[s] >= 0) nd->replaced_by = table[s];
        else table[s] = i;
    }
    tj_mem_free(table, sizeof(int) * cap);
    return rc;
}
