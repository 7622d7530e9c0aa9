/* check.c: TJ_MODE=check. A call runs eagerly (traced, keeping every node's value) and
 * compiled from the same state; outputs and state updates are compared bit for bit, the
 * first node whose bits differ is named, and the eager results stand. */
#include "signature.h"

#include <string.h>

#ifdef TJ_HAVE_JIT
/* ---- check mode ------------------------------------------------------------------------------ */

/* The variables the step reads or writes, and a copy of their values. */
typedef struct saved { int n; tensor *var[256]; void *data[256]; } saved;

static void saved_free(saved *sv) {
    for (int i = 0; i < sv->n; i++)
        tj_mem_free(sv->data[i], (size_t)sv->var[i]->numel * tj_dtype_size(sv->var[i]->dtype));
    sv->n = 0;
}

static int saved_take(const tj_graph *g, saved *sv) {
    sv->n = 0;
    for (int i = 0; i < g->n + g->nwrites; i++) {
        tensor *v = i < g->n ? g->nodes[i].var : g->writes[i - g->n].var;
        bool seen = !v;
        for (int k = 0; k < sv->n && !seen; k++) seen = sv->var[k] == v;
        if (seen) continue;
        if (sv->n == 256) return tj_err(TJ_ERR_ARG, "check: more than 256 variables in one step");
        size_t bytes = (size_t)v->numel * tj_dtype_size(v->dtype);
        if (!(sv->data[sv->n] = tj_mem_alloc(bytes))) return TJ_ERR_OOM;
        memcpy(sv->data[sv->n], v->data, bytes);
        sv->var[sv->n++] = v;
    }
    return 0;
}

static int saved_restore(const saved *sv) {
    for (int i = 0; i < sv->n; i++) {
        int rc = tj_variable_write(sv->var[i], sv->data[i]);
        if (rc) return rc;
    }
    return 0;
}

/* First element where a and b (n values of dt) differ bitwise, or -1. */
static int64_t first_diff(const void *a, const void *b, int64_t n, tj_dtype dt) {
    size_t es = tj_dtype_size(dt);
    for (int64_t i = 0; i < n; i++)
        if (memcmp((const char *)a + i * (int64_t)es, (const char *)b + i * (int64_t)es, es)) return i;
    return -1;
}

static double value_at(const void *p, int64_t i, tj_dtype dt) {
    switch (dt) {
    case TJ_F32: return ((const float *)p)[i];
    case TJ_F64: return ((const double *)p)[i];
    case TJ_I32: return ((const int32_t *)p)[i];
    }
    return 0;
}

/* Names the first op node of the compiled step whose value differs from eager's. */
static int report_first_node(tj_function *f, sig *s, const tj_graph *eg) {
    const tj_graph *g = s->g;
    for (int i = 0; i < g->n && i < eg->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (nd->kind != TJ_N_OP || !s->live[i] || i >= eg->capvalues || !eg->values[i]) continue;
        if (s->low.stored && !s->low.stored[i]) continue;   /* fused: never left its registers */
        if (eg->nodes[i].op != nd->op || !tj_shape_equal(&eg->nodes[i].shape, &nd->shape))
            return tj_err(TJ_ERR_CHECK, "check: %s: this call traced differently from the compiled one at node %d "
                          "(%s vs %s): the step depends on values it read", f->name, i,
                          tj_ops[eg->nodes[i].op]->name, tj_ops[nd->op]->name);
        const tensor *e = eg->values[i];
        int64_t k = first_diff(e->data, s->desc[tj_graph_resolve(g, i)].data, nd->numel, nd->dtype);
        if (k < 0) continue;
        char origin[128];
        return tj_err(TJ_ERR_CHECK, "check: %s: node %d, %s, differs first: element %lld is %.9g eager, %.9g compiled",
                      f->name, i, tj_graph_origin(g, i, origin, sizeof origin), (long long)k, value_at(e->data, k, nd->dtype),
                      value_at(s->desc[tj_graph_resolve(g, i)].data, k, nd->dtype));
    }
    return tj_err(TJ_ERR_CHECK, "check: %s: results differ but no single node does", f->name);
}

/* Runs the call eagerly (traced, keeping node values) and compiled from the same state,
 * compares outputs and state updates bit for bit, and keeps the eager results. */
int tj_sig_check(tj_function *f, sig *s, int n_in, tj_tensor *const *in_h, tensor *const *in, int n_out,
                      tj_tensor **out) {
    tj_thread *th = tj_thread_state();
    saved before = {0}, after = {0};
    uint64_t seed = th->rng_seed, offset = th->rng_offset;
    int rc = saved_take(s->g, &before);
    tj_tracer *tr = rc ? NULL : tj_trace_begin(f->name, n_in, in, true, &f->warned_read);
    if (!tr) { saved_free(&before); return rc ? rc : TJ_ERR_OOM; }
    rc = f->fn(f->user, n_in, in_h, n_out, out);
    tensor *outs[MAX_OUT];
    bool ok = rc == 0;
    for (int i = 0; ok && i < n_out; i++) ok = (outs[i] = tj_resolve(out[i], f->name, i + 1)) != NULL;
    tj_graph *eg = tj_trace_end(tr, n_out, outs, ok);
    if (rc || !eg) { saved_free(&before); tj_graph_free(eg); return rc ? rc : tj_error_code(); }
    uint64_t offset_after = th->rng_offset;
    tj_tensor *cout[MAX_OUT];
    if (!(rc = saved_take(s->g, &after)) && !(rc = saved_restore(&before))) {
        th->rng_seed = seed;
        th->rng_offset = offset;
        rc = tj_sig_run(f, s, in, cout);
    }
    bool same = rc == 0 && th->rng_offset == offset_after;
    for (int i = 0; same && i < n_out; i++) {
        tensor *c = tj_resolve(cout[i], f->name, i + 1);
        same = c && first_diff(outs[i]->data, c->data, c->numel, c->dtype) < 0;
    }
    for (int i = 0; same && i < after.n; i++)
        same = first_diff(after.data[i], after.var[i]->data, after.var[i]->numel, after.var[i]->dtype) < 0;
    if (rc == 0 && !same) rc = report_first_node(f, s, eg);
    int rc2 = saved_restore(&after);          /* eager's state stands */
    saved_free(&before);
    saved_free(&after);
    tj_graph_free(eg);
    f->last_path = "checked";
    return rc ? rc : rc2;
}

#endif

