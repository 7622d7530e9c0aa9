/* function.c: tj_function, the user-facing compiled function. Per signature (dtypes and
 * shapes of the inputs, n_out, call flags) it traces one eager call, has it compiled
 * (compile.c: on a thread of its own by default while calls run eagerly), and replays it:
 * parameters, state and constants are bound to node buffers, temporaries live in an arena
 * planned by liveness (bufplan.c), random draws reserve the same generator positions eager
 * would, outputs are computed into the caller's new tensors, and state writes go through
 * tj_variable_write or straight into the variable. Check mode is check.c. Without the JIT
 * (TJ_JIT=OFF) or when LLVM fails, calls run eagerly with a one-time warning. */
#include "signature.h"
#include "dump.h"
#include "core/profile.h"
#include "core/rng.h"
#ifdef TJ_HAVE_JIT
#include "lower.h"
#include "bufplan.h"
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- mode ----------------------------------------------------------------------------- */

static _Atomic int mode = -1;

static tj_mode mode_from_env(void) {
    const char *s = getenv("TJ_MODE");
    if (!s || !strcmp(s, "jit")) return TJ_MODE_JIT;
    if (!strcmp(s, "eager")) return TJ_MODE_EAGER;
    if (!strcmp(s, "check")) return TJ_MODE_CHECK;
    fprintf(stderr, "tapejit: warning: TJ_MODE=%s is not eager, jit or check; using jit\n", s);
    return TJ_MODE_JIT;
}

void tj_set_mode(tj_mode m) {
    if (m != TJ_MODE_EAGER && m != TJ_MODE_JIT && m != TJ_MODE_CHECK) {
        tj_err(TJ_ERR_ARG, "set_mode: %d is not a mode", (int)m);
        return;
    }
    atomic_store(&mode, (int)m);
}

tj_mode tj_get_mode(void) {
    int m = atomic_load(&mode);
    if (m < 0) {
        m = (int)mode_from_env();
        atomic_store(&mode, m);
    }
    return (tj_mode)m;
}

void tj_jit_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tapejit: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- compiled signatures ----------------------------------------------------------------- */

void tj_jit_call(jit_call *c) {
    const tj_op_info *info = tj_ops[c->op];
    if ((info->check && info->check(c->attr, c->in, c->out)) || tj_exec(c->op, c->attr, c->nin, c->in, c->out)) *c->failed = 1;
}


tj_function *tj_function_new(const char *name, tj_fn fn, void *user) {
    if (!fn) return tj_err(TJ_ERR_ARG, "function_new: fn is NULL"), NULL;
    tj_function *f = tj_mem_calloc(sizeof *f);
    if (!f) return NULL;
    if (!name) name = "fn";
    size_t n = strlen(name) + 1;
    if (!(f->name = tj_mem_alloc(n))) { tj_mem_free(f, sizeof *f); return NULL; }
    memcpy(f->name, name, n);
    f->fn = fn;
    f->user = user;
    f->limit = 8;
    f->last_path = "none";
    return f;
}

int tj_function_set_retrace_limit(tj_function *f, int limit) {
    if (!f) return tj_err(TJ_ERR_ARG, "function_set_retrace_limit: f is NULL");
    if (limit < 0) return tj_err(TJ_ERR_ARG, "function_set_retrace_limit: limit %d is negative", limit);
    f->limit = limit;
    return 0;
}

int tj_function_traces(const tj_function *f) { return f ? f->traces : 0; }

int tj_function_dump(tj_function *f, const char *dir, const char *what) {
    if (!f || !dir || !what) return tj_err(TJ_ERR_ARG, "function_dump: f, dir or what is NULL");
    unsigned bits;
    if (tj_dump_parse(what, &bits)) return tj_error_code();
    size_t n = strlen(dir) + 1;
    char *d = tj_mem_alloc(n);
    if (!d) return TJ_ERR_OOM;
    memcpy(d, dir, n);
    if (f->dump_dir) tj_mem_free(f->dump_dir, strlen(f->dump_dir) + 1);
    f->dump_dir = d;
    f->dump_what = bits;
    return 0;
}

/* The dump settings for f: its own, else the environment's. */
static unsigned dump_what(const tj_function *f, const char **dir) {
    if (f->dump_dir) { *dir = f->dump_dir; return f->dump_what; }
    *dir = tj_dump_env_dir();
    return tj_dump_env();
}
const char *tj_function_last_path(const tj_function *f) { return f ? f->last_path : ""; }

int tj_function_compile_stats(tj_function *f, tj_compile_stats *out) {
    if (!f || !out) return tj_err(TJ_ERR_ARG, "function_compile_stats: f or out is NULL");
    if (!f->sigs) return tj_err(TJ_ERR_STATE, "function_compile_stats: %s has not been traced", f->name);
    tj_sig_join(f->sigs);
    *out = f->sigs->stats;
    return 0;
}

static void sig_free(sig *s) {
    if (!s) return;
    tj_sig_join(s);
    if (s->dump_dir) tj_mem_free(s->dump_dir, strlen(s->dump_dir) + 1);
#ifdef TJ_HAVE_JIT
    tj_lowered_free(&s->low);
    tj_lowered_free(&s->opt);
#endif
    int n = s->g ? s->g->n : 0;
    tj_mem_free(s->live, sizeof(bool) * (size_t)n);
    tj_mem_free(s->desc, sizeof(tensor) * (size_t)n);
    tj_mem_free(s->bufs, sizeof(void *) * (size_t)n);
    tj_mem_free(s->calls, sizeof(void *) * (size_t)n);
    tj_mem_free(s->recs, sizeof(jit_call) * (size_t)n);
    tj_mem_free(s->rec_in, sizeof(tensor *) * (size_t)s->nrec_in);
    tj_mem_free(s->point, sizeof(int) * (size_t)n);
    tj_mem_free(s->draws, sizeof(int) * (size_t)n);
    if (s->g) tj_mem_free(s->inplace, sizeof(bool) * (size_t)(s->g->nwrites ? s->g->nwrites : 1));
    if (s->g) tj_mem_free(s->direct, sizeof(bool) * (size_t)(s->g->nout ? s->g->nout : 1));
    tj_mem_free(s->arena, s->arena_bytes);
    tj_graph_free(s->g);
    tj_mem_free(s, sizeof *s);
}

void tj_function_free(tj_function *f) {
    if (!f) return;
    for (sig *s = f->sigs, *next; s; s = next) { next = s->next; sig_free(s); }
    tj_mem_free(f->name, strlen(f->name) + 1);
    if (f->dump_dir) tj_mem_free(f->dump_dir, strlen(f->dump_dir) + 1);
    tj_mem_free(f, sizeof *f);
}

/* The flags of the tj_function call running on this thread (0 outside any call). */
static _Thread_local unsigned call_flags;

unsigned tj_function_flags(void) { return call_flags; }

static bool sig_matches(const sig *s, int n_in, tensor *const *in, int n_out) {
    if (s->n_in != n_in || s->n_out != n_out || s->flags != call_flags) return false;
    for (int i = 0; i < n_in; i++)
        if (s->dt[i] != in[i]->dtype || !tj_shape_equal(&s->shape[i], &in[i]->shape)) return false;
    return true;
}

/* "input 0 shape (10, 3) -> (6, 3)": what differs from the previous signature. */
static void describe_change(const sig *prev, int n_in, tensor *const *in, int n_out, char *buf, size_t n) {
    char a[TJ_SHAPE_STR_MAX], b[TJ_SHAPE_STR_MAX];
    if (prev->flags != call_flags) { snprintf(buf, n, "flags 0x%x -> 0x%x", prev->flags, call_flags); return; }
    if (prev->n_in != n_in) { snprintf(buf, n, "%d inputs -> %d", prev->n_in, n_in); return; }
    for (int i = 0; i < n_in; i++) {
        if (prev->dt[i] != in[i]->dtype) {
            snprintf(buf, n, "input %d dtype %s -> %s", i, tj_dtype_name(prev->dt[i]), tj_dtype_name(in[i]->dtype));
            return;
        }
        if (!tj_shape_equal(&prev->shape[i], &in[i]->shape)) {
            snprintf(buf, n, "input %d shape %s -> %s", i, tj_shape_str(&prev->shape[i], a, sizeof a),
                     tj_shape_str(&in[i]->shape, b, sizeof b));
            return;
        }
    }
    snprintf(buf, n, "%d outputs -> %d", prev->n_out, n_out);
}

/* ---- binding a compiled signature ---------------------------------------------------------- */

#ifdef TJ_HAVE_JIT
/* Headers for every node, call records for the nodes generated code calls. */
int tj_sig_bind(sig *s) {
    tj_graph *g = s->g;
    int n = g->n;
    if (!(s->desc = tj_mem_calloc(sizeof(tensor) * (size_t)n)) || !(s->bufs = tj_mem_calloc(sizeof(void *) * (size_t)n)) ||
        !(s->calls = tj_mem_calloc(sizeof(void *) * (size_t)n)) || !(s->recs = tj_mem_calloc(sizeof(jit_call) * (size_t)n)) ||
        !(s->point = tj_mem_alloc(sizeof(int) * (size_t)n)) || !(s->draws = tj_mem_alloc(sizeof(int) * (size_t)n)) ||
        !(s->inplace = tj_mem_calloc(sizeof(bool) * (size_t)(g->nwrites ? g->nwrites : 1))) ||
        !(s->direct = tj_mem_calloc(sizeof(bool) * (size_t)(g->nout ? g->nout : 1))))
        return TJ_ERR_OOM;
    for (int i = 0; i < n; i++) {
        tj_gnode *nd = &g->nodes[i];
        s->desc[i] = (tensor){.shape = nd->shape, .numel = nd->numel, .dtype = nd->dtype, .refs = 1, .scope = -1};
        if (nd->kind == TJ_N_PARAM || nd->kind == TJ_N_STATE || nd->replaced_by >= 0 || (nd->kind == TJ_N_OP && tj_lower_is_view(nd)))
            s->point[s->npoint++] = i;
        if (nd->kind == TJ_N_OP && (nd->op == TJ_OP_RAND_UNIFORM || nd->op == TJ_OP_RAND_NORMAL)) s->draws[s->ndraws++] = i;
        if (nd->kind == TJ_N_CONST) s->desc[i].data = nd->data;
        if (nd->kind == TJ_N_OP && s->live[i] && nd->replaced_by < 0 && !tj_lower_inline(g, nd)) s->nrec_in += nd->nin;
    }
    if (s->nrec_in && !(s->rec_in = tj_mem_alloc(sizeof(tensor *) * (size_t)s->nrec_in))) return TJ_ERR_OOM;
    tensor **rin = s->rec_in;
    for (int i = 0; i < n; i++) {
        tj_gnode *nd = &g->nodes[i];
        int64_t nout, K;
        if (nd->kind != TJ_N_OP || !s->live[i] || nd->replaced_by >= 0 || tj_lower_inline(g, nd) ||
            tj_lower_reduce_inline(g, nd, &nout, &K))
            continue;
        jit_call *c = &s->recs[i];
        *c = (jit_call){.op = nd->op, .nin = nd->nin, .attr = &nd->attr, .in = rin, .out = &s->desc[i], .failed = &s->failed};
        for (int k = 0; k < nd->nin; k++) *rin++ = &s->desc[tj_graph_resolve(g, nd->in[k])];
        s->calls[i] = c;
    }
    return 0;
}

/* Places the buffers in a new arena: shared by liveness, or each its own (check mode
 * reads every value after the step). */
int tj_sig_layout(sig *s, bool share) {
    int n = s->g->n;
    size_t bytes, nb = sizeof(int64_t) * (size_t)n;
    int64_t *off = tj_mem_alloc(nb), *scratch = tj_mem_alloc(nb);
    int rc = off && scratch ? tj_buffer_plan(s->g, s->live, &s->low, share, off, scratch, s->inplace, s->direct, &bytes) : TJ_ERR_OOM;
    char *arena = rc ? NULL : tj_mem_alloc(bytes + 64);
    if (!rc && !arena) rc = TJ_ERR_OOM;
    if (!rc) {
        tj_mem_free(s->arena, s->arena_bytes);
        s->arena = arena;
        s->arena_bytes = bytes + 64;
        s->shared = share;
        char *p = (char *)(((uintptr_t)arena + 63) & ~(uintptr_t)63);
        for (int i = 0; i < n; i++) {
            if (off[i] >= 0) s->desc[i].data = p + off[i];
            if (scratch[i] >= 0) s->calls[i] = p + scratch[i];
            s->bufs[i] = s->desc[i].data;     /* sig_point updates the nodes that change */
        }
    }
    tj_mem_free(off, nb);
    tj_mem_free(scratch, nb);
    return rc;
}

/* The variables written in place get storage of their own (a tape's snapshot or a view
 * keeps the old one), and their new values' nodes point at it. 0 or OOM. */
static int point_inplace(sig *s) {
    tj_graph *g = s->g;
    for (int w = 0; w < g->nwrites; w++) {
        if (!s->inplace[w]) continue;
        tensor *v = g->writes[w].var;
        int rc = tj_variable_write_prepare(v, true), n = tj_graph_resolve(g, g->writes[w].node);
        if (rc) return rc;
        s->bufs[n] = s->desc[n].data = v->data;
    }
    return 0;
}

/* Points the headers and bufs[] of inputs, state and aliases at this call's data. */
static void sig_point(sig *s, tensor *const *in) {
    tj_graph *g = s->g;
    for (int k = 0; k < s->npoint; k++) {
        int i = s->point[k];
        tj_gnode *nd = &g->nodes[i];
        if (nd->kind == TJ_N_PARAM) s->desc[i].data = in[nd->param]->data;
        else if (nd->kind == TJ_N_STATE) s->desc[i].data = nd->var->data;
        else if (nd->replaced_by >= 0) s->desc[i].data = s->desc[tj_graph_resolve(g, i)].data;
        else if (nd->kind == TJ_N_OP && tj_lower_is_view(nd)) s->desc[i].data = s->desc[tj_graph_resolve(g, nd->in[0])].data;
        s->bufs[i] = s->desc[i].data;
    }
}

/* A piece of a loop kernel for the pool: rows [i*grain, (i+1)*grain). Elementwise, so the
 * split never changes a bit. */
typedef struct piece_job { sig *s; const tj_kernel *k; } piece_job;

static void piece(void *ctx, int64_t i) {
    const piece_job *j = ctx;
    int64_t lo = i * j->k->grain, hi = lo + j->k->grain < j->k->range ? lo + j->k->grain : j->k->range;
    j->k->fn(j->s->bufs, j->s->calls, lo, hi);
}

static void run_kernel(sig *s, const tj_kernel *k) {
    int64_t pieces = (k->range + k->grain - 1) / k->grain;
    if (pieces <= 1) {
        k->fn(s->bufs, s->calls, 0, k->range);
        return;
    }
    piece_job j = {s, k};
    tj_parallel_for(pieces, piece, &j);
}

/* Runs the compiled step: outputs into out[] (new tensors in this scope), state writes. */
int tj_sig_run(tj_function *f, sig *s, tensor *const *in, tj_tensor **out) {
    tj_graph *g = s->g;
    int rc = point_inplace(s);
    if (rc) return rc;
    tensor *made[MAX_OUT];                     /* outputs computed straight into their tensor */
    for (int i = 0; i < s->n_out; i++) {
        if (!s->direct[i]) continue;
        int n = tj_graph_resolve(g, g->outputs[i]);
        if (!(made[i] = tj_tensor_new(g->nodes[n].dtype, &g->nodes[n].shape))) return TJ_ERR_OOM;
        s->bufs[n] = s->desc[n].data = made[i]->data;
    }
    sig_point(s, in);
    tj_thread *th = tj_thread_state();
    for (int k = 0; k < s->ndraws; k++) {      /* every draw eager would make, in its order */
        tj_gnode *nd = &g->nodes[s->draws[k]];
        nd->attr.rng.seed = th->rng_seed;
        nd->attr.rng.offset = tj_rng_reserve(nd->numel);
    }
    s->failed = 0;
    bool profile = tj_profile_on();
    if (!profile && tj_threads() == 1) {
        s->low.step(s->bufs, s->calls);
    } else {                             /* kernel by kernel: big loops in pieces, events */
        double t0 = tj_now_ms();
        for (int k = 0; k < s->low.kernels; k++) {
            double a = tj_now_ms();
            run_kernel(s, &s->low.kernel[k]);
            if (profile) tj_profile_event("kernel", s->low.kernel[k].name, a, tj_now_ms(), NULL);
        }
        if (profile) tj_profile_event("compiled", f->name, t0, tj_now_ms(), NULL);
    }
    if (s->failed) {
        if (!tj_has_error()) tj_err(TJ_ERR_OOM, "%s: compiled step failed", f->name);
        return tj_error_code();
    }
    for (int i = 0; i < s->n_out; i++) {
        int id = tj_graph_resolve(g, g->outputs[i]);
        tensor *t = s->direct[i] ? made[i] : tj_tensor_new(g->nodes[id].dtype, &g->nodes[id].shape);
        if (!t) return TJ_ERR_OOM;
        if (!s->direct[i]) memcpy(t->data, s->desc[id].data, (size_t)t->numel * tj_dtype_size(t->dtype));
        out[i] = tj_handle(t);
    }
    for (int i = 0; i < g->nwrites && !rc; i++)
        if (!s->inplace[i]) rc = tj_variable_write(g->writes[i].var, s->desc[tj_graph_resolve(g, g->writes[i].node)].data);
    return rc;
}
#endif

/* ---- calls --------------------------------------------------------------------------------- */

static int call_eager(tj_function *f, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    f->last_path = "eager";
    return f->fn(f->user, n_in, in, n_out, out);
}

/* Runs fn eagerly while recording it; on success a new signature holds the graph. */
static int trace(tj_function *f, int n_in, tj_tensor *const *in_h, tensor *const *in, int n_out,
                 tj_tensor **out, sig **made) {
    *made = NULL;
    if (f->sigs) {
        char why[256];
        describe_change(f->sigs, n_in, in, n_out, why, sizeof why);
        tj_jit_warn("%s: retracing: %s", f->name, why);
    }
    double t0 = tj_now_ms();
    tj_tracer *tr = tj_trace_begin(f->name, n_in, in, false, &f->warned_read);
    if (!tr) return TJ_ERR_OOM;
    int rc = f->fn(f->user, n_in, in_h, n_out, out);
    tensor *outs[MAX_OUT];
    bool ok = rc == 0;
    for (int i = 0; ok && i < n_out; i++) ok = (outs[i] = tj_resolve(out[i], f->name, i + 1)) != NULL;
    tj_graph *g = tj_trace_end(tr, n_out, outs, ok);
    f->traces++;
    f->last_path = "traced";
    if (rc) return rc;
    if (!g) return tj_error_code() ? tj_error_code() : TJ_ERR_OOM;
    sig *s = tj_mem_calloc(sizeof *s);
    if (!s) { tj_graph_free(g); return TJ_ERR_OOM; }
    s->n_in = n_in;
    s->n_out = n_out;
    s->flags = call_flags;
    s->g = g;
    s->stats.trace_ms = tj_now_ms() - t0;
    s->stats.nodes = g->n;
    s->index = f->traces - 1;
    if (tj_profile_on()) tj_profile_event("compile", "trace", t0, t0 + s->stats.trace_ms, NULL);
    const char *dir;
    s->dump_what = dump_what(f, &dir);
    int before = tj_error_code();
    if (s->dump_what && !(s->dump_dir = tj_mem_alloc(strlen(dir) + 1))) { sig_free(s); return TJ_ERR_OOM; }
    if (s->dump_dir) memcpy(s->dump_dir, dir, strlen(dir) + 1);
    if (s->dump_what && tj_dump_trace(dir, f->name, s->index, s->dump_what, g)) {
        tj_jit_warn("%s: could not write the trace dump: %s", f->name, tj_last_error());
        if (!before) tj_clear_error();      /* a dump is a side product: the call goes on */
    }
    for (int i = 0; i < n_in; i++) { s->dt[i] = in[i]->dtype; s->shape[i] = in[i]->shape; }
    s->next = f->sigs;
    f->sigs = s;
    *made = s;
    return 0;
}

static int call(tj_function *f, int n_in, tj_tensor *const *in_h, int n_out, tj_tensor **out);

int tj_function_call(tj_function *f, int n_in, tj_tensor *const *in_h, int n_out, tj_tensor **out) {
    return tj_function_call_flags(f, 0, n_in, in_h, n_out, out);
}

int tj_function_call_flags(tj_function *f, unsigned flags, int n_in, tj_tensor *const *in_h, int n_out,
                           tj_tensor **out) {
    unsigned outer = call_flags;     /* a nested call has its own flags */
    call_flags = flags;
    int rc = call(f, n_in, in_h, n_out, out);
    call_flags = outer;
    return rc;
}

static int call(tj_function *f, int n_in, tj_tensor *const *in_h, int n_out, tj_tensor **out) {
    if (!f) return tj_err(TJ_ERR_ARG, "function_call: f is NULL");
    if (n_in < 0 || n_out < 0 || (n_in && !in_h) || (n_out && !out))
        return tj_err(TJ_ERR_ARG, "%s: bad arguments: n_in %d, n_out %d", f->name, n_in, n_out);
    for (int i = 0; i < n_out; i++) out[i] = NULL;
    tj_mode m = tj_get_mode();
    tj_thread *th = tj_thread_state();
    if (m == TJ_MODE_EAGER || th->trace || n_in > MAX_IN || n_out > MAX_OUT)   /* inside a trace: inline */
        return call_eager(f, n_in, in_h, n_out, out);
    tensor *in[MAX_IN];
    if (!tj_resolve_args(f->name, n_in, in_h, in)) return tj_error_code();
    sig *s = f->sigs;
    while (s && !sig_matches(s, n_in, in, n_out)) s = s->next;
    if (!s) {
        if (f->traces >= f->limit) {
            if (!f->warned_limit)
                tj_jit_warn("%s: traced %d signatures (the limit); new signatures run eagerly", f->name, f->traces);
            f->warned_limit = true;
            return call_eager(f, n_in, in_h, n_out, out);
        }
        int rc = trace(f, n_in, in_h, in, n_out, out, &s);
        if (rc) return rc;
        if (tj_compile_in_background() && m == TJ_MODE_JIT) tj_sig_compile_start(f, s);
        else tj_sig_compile(f, s, false);
        return 0;           /* the traced call's results are the eager results */
    }
    if (m == TJ_MODE_CHECK) tj_sig_join(s);       /* check compares with the compiled code */
    int state = atomic_load(&s->state);
    if (state == SIG_COMPILING) {
        f->last_path = "compiling";
        return f->fn(f->user, n_in, in_h, n_out, out);
    }
    if (state == SIG_EAGER) return call_eager(f, n_in, in_h, n_out, out);
#ifdef TJ_HAVE_JIT
    tj_sig_upgrade(s);                            /* optimised code, once the thread has it */
    if (s->shared == (m == TJ_MODE_CHECK) && tj_sig_layout(s, m != TJ_MODE_CHECK)) return tj_error_code();
    if (m == TJ_MODE_CHECK) return tj_sig_check(f, s, n_in, in_h, in, n_out, out);
    f->last_path = "compiled";
    return tj_sig_run(f, s, in, out);
#else
    return call_eager(f, n_in, in_h, n_out, out);
#endif
}
