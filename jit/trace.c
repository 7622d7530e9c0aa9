/* trace.c: records a step function's eager run into a graph (graph.h). Every op the
 * runtime applies on this thread reaches op_hook; a tensor the trace has not seen before
 * becomes a state read (a variable) or a constant (its values copied now). Values are
 * mapped by tensor id, which is never reused, so a tensor freed mid-trace cannot alias
 * a later one. tj_assign becomes a state write, and later reads see the written value. */
#include "graph.h"

#include <stdio.h>
#include <string.h>

struct tj_tracer {
    tj_graph *g;
    uint64_t *keys;       /* open addressing: tensor id -> node */
    int      *vals;
    size_t    cap, count;
    const char *fname;
    bool     *warned_read;   /* the function's: warn once per function */
    bool      failed;
    bool      keep;
    const tj_trace_hooks *saved_hooks;
    void     *saved_tracer;
};

static size_t slot_of(const tj_tracer *tr, uint64_t key) {
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ull) & (tr->cap - 1);
    while (tr->keys[i] && tr->keys[i] != key) i = (i + 1) & (tr->cap - 1);
    return i;
}

static int map_get(const tj_tracer *tr, uint64_t key) {
    size_t i = slot_of(tr, key);
    return tr->keys[i] ? tr->vals[i] : -1;
}

static int map_put(tj_tracer *tr, uint64_t key, int node) {
    if (2 * (tr->count + 1) > tr->cap) {
        size_t cap = tr->cap ? 2 * tr->cap : 256;
        uint64_t *keys = tj_mem_calloc(sizeof(uint64_t) * cap);
        int *vals = tj_mem_alloc(sizeof(int) * cap);
        if (!keys || !vals) {
            tj_mem_free(keys, sizeof(uint64_t) * cap);
            tj_mem_free(vals, sizeof(int) * cap);
            return TJ_ERR_OOM;
        }
        uint64_t *ok = tr->keys;
        int *ov = tr->vals;
        size_t ocap = tr->cap;
        tr->keys = keys;
        tr->vals = vals;
        tr->cap = cap;
        for (size_t i = 0; i < ocap; i++)
            if (ok[i]) { size_t j = slot_of(tr, ok[i]); tr->keys[j] = ok[i]; tr->vals[j] = ov[i]; }
        tj_mem_free(ok, sizeof(uint64_t) * ocap);
        tj_mem_free(ov, sizeof(int) * ocap);
    }
    size_t i = slot_of(tr, key);
    if (!tr->keys[i]) tr->count++;
    tr->keys[i] = key;
    tr->vals[i] = node;
    return 0;
}

/* The node holding t's value: known, or a new state read / constant. A variable's
 * snapshot (tape records) stands for the variable. */
static int node_of(tj_tracer *tr, tensor *t) {
    if (t->var_of) t = t->var_of;
    int id = map_get(tr, t->id);
    if (id >= 0) return id;
    tj_graph *g = tr->g;
    if (tj_is_variable(t)) {
        id = tj_graph_add(g, TJ_N_STATE, TJ_OP_COUNT, 0, NULL, NULL, t->dtype, &t->shape);
        if (id < 0) return -1;
        g->nodes[id].var = t;
        tj_tensor_ref(t);
    } else {
        size_t bytes = (size_t)t->numel * tj_dtype_size(t->dtype);
        void *data = tj_mem_alloc(bytes);
        if (!data) return -1;
        memcpy(data, t->data, bytes);
        id = tj_graph_add(g, TJ_N_CONST, TJ_OP_COUNT, 0, NULL, NULL, t->dtype, &t->shape);
        if (id < 0) { tj_mem_free(data, bytes); return -1; }
        g->nodes[id].data = data;
    }
    return map_put(tr, t->id, id) ? -1 : id;
}

/* Index of var in g->updated, adding it (with a reference) the first time; -1 on OOM. */
static int updated_index(tj_graph *g, tensor *var) {
    for (int i = 0; i < g->nupdated; i++)
        if (g->updated[i] == var) return i;
    tensor **u = tj_mem_realloc(g->updated, sizeof(tensor *) * (size_t)g->nupdated, sizeof(tensor *) * (size_t)(g->nupdated + 1));
    if (!u) return -1;
    g->updated = u;
    tj_tensor_ref(var);
    g->updated[g->nupdated] = var;
    return g->nupdated++;
}

static int op_hook(void *ctx, int op, int nin, tensor *const *in, tensor *out, const union tj_attr *attr) {
    tj_tracer *tr = ctx;
    if (tr->failed) return 0;
    int ids_small[8] = {0}, *ids = ids_small;
    if (nin > 8 && !(ids = tj_mem_alloc(sizeof(int) * (size_t)nin))) goto oom;
    for (int i = 0; i < nin; i++)
        if ((ids[i] = node_of(tr, in[i])) < 0) goto oom;
    int id = tj_graph_add(tr->g, TJ_N_OP, (tj_op)op, nin, ids, attr, out->dtype, &out->shape);
    if (ids != ids_small) tj_mem_free(ids, sizeof(int) * (size_t)nin);
    if (id < 0 || map_put(tr, out->id, id)) goto oom_freed;
    tj_thread *th = tj_thread_state();
    if (th->updating && (tr->g->nodes[id].update_of = updated_index(tr->g, th->updating)) < 0) goto oom_freed;
    if (th->grad_op) {
        tr->g->nodes[id].grad_of_op = (tj_op)(th->grad_op - 1);
        tr->g->nodes[id].grad_of = map_get(tr, th->grad_of);
    }
    if (tr->keep) {
        tj_graph *g = tr->g;
        if (id >= g->capvalues) {
            int cap = g->cap;
            tensor **v = tj_mem_realloc(g->values, sizeof(tensor *) * (size_t)g->capvalues, sizeof(tensor *) * (size_t)cap);
            if (!v) goto oom_freed;
            memset(v + g->capvalues, 0, sizeof(tensor *) * (size_t)(cap - g->capvalues));
            g->values = v;
            g->capvalues = cap;
        }
        g->values[id] = out;
        tj_tensor_ref(out);
    }
    return 0;
oom:
    if (ids != ids_small && ids) tj_mem_free(ids, sizeof(int) * (size_t)nin);
oom_freed:
    tr->failed = true;
    return TJ_ERR_OOM;
}

static void read_hook(void *ctx, const tensor *t, const char *api) {
    tj_tracer *tr = ctx;
    (void)t;
    if (*tr->warned_read) return;
    *tr->warned_read = true;
    fprintf(stderr, "tapejit: warning: %s: tj_%s read a value while tracing; control flow that "
            "depends on it is frozen into the compiled step\n", tr->fname, api);
}

static int assign_hook(void *ctx, tensor *var, tensor *value) {
    tj_tracer *tr = ctx;
    if (tr->failed) return 0;
    int node = node_of(tr, value);
    if (node < 0 || tj_graph_write(tr->g, var, node) || map_put(tr, var->id, node)) {
        tr->failed = true;
        return TJ_ERR_OOM;
    }
    return 0;
}

static const tj_trace_hooks hooks = {op_hook, read_hook, assign_hook};

tj_tracer *tj_trace_begin(const char *fname, int n_in, tensor *const *in, bool keep, bool *warned_read) {
    tj_tracer *tr = tj_mem_calloc(sizeof *tr);
    if (!tr) return NULL;
    tr->fname = fname;
    tr->warned_read = warned_read;
    tr->keep = keep;
    if (!(tr->g = tj_graph_new())) goto fail;
    tr->g->nparams = n_in;
    for (int i = 0; i < n_in; i++) {
        tensor *t = in[i];
        int id = tj_graph_add(tr->g, TJ_N_PARAM, TJ_OP_COUNT, 0, NULL, NULL, t->dtype, &t->shape);
        if (id < 0 || map_put(tr, t->id, id)) goto fail;
        tr->g->nodes[id].param = i;
    }
    tj_thread *th = tj_thread_state();
    tr->saved_hooks = th->trace;
    tr->saved_tracer = th->tracer;
    th->trace = &hooks;
    th->tracer = tr;
    return tr;
fail:
    tj_graph_free(tr->g);
    tj_mem_free(tr, sizeof *tr);
    return NULL;
}

tj_graph *tj_trace_end(tj_tracer *tr, int n_out, tensor *const *out, bool ok) {
    tj_thread *th = tj_thread_state();
    th->trace = tr->saved_hooks;
    th->tracer = tr->saved_tracer;
    tj_graph *g = tr->g;
    ok = ok && !tr->failed;
    if (ok && n_out > 0) {
        g->outputs = tj_mem_alloc(sizeof(int) * (size_t)n_out);
        ok = g->outputs != NULL;
        for (int i = 0; ok && i < n_out; i++) {
            g->outputs[i] = node_of(tr, out[i]);
            ok = g->outputs[i] >= 0;
        }
        if (g->outputs) g->nout = n_out;
    }
    tj_mem_free(tr->keys, sizeof(uint64_t) * tr->cap);
    tj_mem_free(tr->vals, sizeof(int) * tr->cap);
    tj_mem_free(tr, sizeof *tr);
    if (!ok) { tj_graph_free(g); return NULL; }
    return g;
}
