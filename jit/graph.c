/* graph.c: building and walking the graph IR (graph.h). */
#include "graph.h"

#include <stdio.h>
#include <string.h>

tj_graph *tj_graph_new(void) { return tj_mem_calloc(sizeof(tj_graph)); }

void tj_graph_free(tj_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) {
        tj_gnode *nd = &g->nodes[i];
        tj_mem_free(nd->in, sizeof(int) * (size_t)nd->nin);
        if (nd->data) tj_mem_free(nd->data, (size_t)nd->numel * tj_dtype_size(nd->dtype));
        if (nd->var) tj_tensor_unref(nd->var);
    }
    for (int i = 0; i < g->nwrites; i++) tj_tensor_unref(g->writes[i].var);
    for (int i = 0; i < g->nupdated; i++) tj_tensor_unref(g->updated[i]);
    tj_mem_free(g->updated, sizeof(tensor *) * (size_t)g->nupdated);
    for (int i = 0; i < g->capvalues; i++)
        if (g->values[i]) tj_tensor_unref(g->values[i]);
    tj_mem_free(g->values, sizeof(tensor *) * (size_t)g->capvalues);
    tj_mem_free(g->nodes, sizeof(tj_gnode) * (size_t)g->cap);
    tj_mem_free(g->outputs, sizeof(int) * (size_t)g->nout);
    tj_mem_free(g->writes, sizeof(tj_state_write) * (size_t)g->capwrites);
    tj_mem_free(g, sizeof *g);
}

int tj_graph_add(tj_graph *g, tj_nkind kind, tj_op op, int nin, const int *in, const tj_attr *attr,
                 tj_dtype dt, const tj_shape *shape) {
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        tj_gnode *nodes = tj_mem_realloc(g->nodes, sizeof(tj_gnode) * (size_t)g->cap, sizeof(tj_gnode) * (size_t)cap);
        if (!nodes) return -1;
        g->nodes = nodes;
        g->cap = cap;
    }
    tj_gnode nd = {.kind = kind, .op = op, .nin = nin, .dtype = dt, .shape = *shape,
                   .numel = tj_shape_numel(shape), .trace_id = g->n, .replaced_by = -1,
                   .grad_of_op = TJ_OP_COUNT, .grad_of = -1, .update_of = -1};
    if (attr) nd.attr = *attr;
    if (nin > 0) {
        nd.in = tj_mem_alloc(sizeof(int) * (size_t)nin);
        if (!nd.in) return -1;
        memcpy(nd.in, in, sizeof(int) * (size_t)nin);
    }
    g->nodes[g->n] = nd;
    return g->n++;
}

int tj_graph_write(tj_graph *g, tensor *var, int node) {
    for (int i = 0; i < g->nwrites; i++)
        if (g->writes[i].var == var) { g->writes[i].node = node; return 0; }
    if (g->nwrites == g->capwrites) {
        int cap = g->capwrites ? 2 * g->capwrites : 8;
        tj_state_write *w = tj_mem_realloc(g->writes, sizeof *w * (size_t)g->capwrites, sizeof *w * (size_t)cap);
        if (!w) return TJ_ERR_OOM;
        g->writes = w;
        g->capwrites = cap;
    }
    tj_tensor_ref(var);
    g->writes[g->nwrites++] = (tj_state_write){var, node};
    return 0;
}

const char *tj_graph_origin(const tj_graph *g, int id, char *buf, size_t n) {
    const tj_gnode *nd = &g->nodes[id];
    const char *what = nd->kind == TJ_N_OP ? tj_ops[nd->op]->name : nd->kind == TJ_N_PARAM ? "input"
                     : nd->kind == TJ_N_STATE ? "variable" : "constant";
    if (nd->update_of >= 0)
        snprintf(buf, n, "%s (optimizer update of %s)", what, g->updated[nd->update_of]->name ? g->updated[nd->update_of]->name : "a variable");
    else if (nd->grad_of_op == TJ_OP_COUNT) snprintf(buf, n, "%s", what);
    else snprintf(buf, n, "%s (gradient of %s, node %d)", what, tj_ops[nd->grad_of_op]->name, nd->grad_of);
    return buf;
}

int tj_graph_resolve(const tj_graph *g, int id) {
    while (g->nodes[id].replaced_by >= 0) id = g->nodes[id].replaced_by;
    return id;
}

void tj_graph_live(const tj_graph *g, bool *keep) {
    memset(keep, 0, sizeof(bool) * (size_t)g->n);
    for (int i = 0; i < g->nout; i++) keep[tj_graph_resolve(g, g->outputs[i])] = true;
    for (int i = 0; i < g->nwrites; i++) keep[tj_graph_resolve(g, g->writes[i].node)] = true;
    for (int i = g->n - 1; i >= 0; i--) {     /* inputs precede their users */
        if (!keep[i]) continue;
        const tj_gnode *nd = &g->nodes[i];
        for (int k = 0; k < nd->nin; k++) keep[tj_graph_resolve(g, nd->in[k])] = true;
    }
}
