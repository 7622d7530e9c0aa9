/* dump.c: the dumps of dump.h. Each file is built in memory and written once. Its text
 * comes from the trace alone (node ids, op names, variable names, dtypes, shapes,
 * constant values): no addresses, clocks or hash orders, so two runs of a program write
 * identical files. Times go to <sig>.stats.txt and nowhere else. Errors are TJ_ERR_IO
 * naming the path (or OOM); nothing aborts or prints, except a one-time warning for an
 * unknown stage in env TJ_DUMP. The stages after the lowering (fusion, llvm, asm) exist
 * only where a signature compiled. Layouts of the files: dump.h. */
#define _POSIX_C_SOURCE 200809L
#include "dump.h"
#include "core/blas.h"
#include "math/reduce.h"
#include "lowered.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ---- stage names ------------------------------------------------------------------------ */

static const struct { const char *name; unsigned bit; } stages[] = {
    {"trace", TJ_DUMP_TRACE}, {"graph", TJ_DUMP_GRAPH}, {"fusion", TJ_DUMP_FUSION}, {"llvm", TJ_DUMP_LLVM},
    {"asm", TJ_DUMP_ASM},     {"dot", TJ_DUMP_DOT},     {"stats", TJ_DUMP_STATS},   {"all", TJ_DUMP_ALL},
};

/* Parses list into *what, skipping unknown names; false if there was one, with the
 * first one's position and length in *bad, *badlen. */
static bool parse_list(const char *list, unsigned *what, size_t *bad, size_t *badlen) {
    bool ok = true;
    *what = 0;
    for (size_t i = 0; list[i];) {
        while (list[i] == ' ' || list[i] == '\t' || list[i] == ',') i++;
        size_t j = i;
        while (list[j] && list[j] != ',') j++;
        size_t e = j;
        while (e > i && (list[e - 1] == ' ' || list[e - 1] == '\t')) e--;
        bool known = e == i;
        for (size_t s = 0; s < sizeof stages / sizeof stages[0] && !known; s++)
            if (strlen(stages[s].name) == e - i && !memcmp(stages[s].name, list + i, e - i)) {
                *what |= stages[s].bit;
                known = true;
            }
        if (!known && ok) { *bad = i; *badlen = e - i; ok = false; }
        i = j;
    }
    return ok;
}

int tj_dump_parse(const char *list, unsigned *what) {
    if (!what) return tj_err(TJ_ERR_ARG, "dump: what is NULL");
    *what = 0;
    if (!list) return tj_err(TJ_ERR_ARG, "dump: the list of stages is NULL");
    size_t bad, badlen;
    unsigned bits;
    if (!parse_list(list, &bits, &bad, &badlen))
        return tj_err(TJ_ERR_ARG, "dump: unknown stage '%.*s' in '%s' (stages: trace, graph, fusion, llvm, asm, dot, "
                      "stats, all)", (int)badlen, list + bad, list);
    *what = bits;
    return 0;
}

static atomic_bool warned_env;

/* Read on every call (once per signature compiled), so a change of the environment
 * applies to the next signature traced. */
unsigned tj_dump_env(void) {
    const char *s = getenv("TJ_DUMP");
    if (!s) return 0;
    unsigned what;
    size_t bad, badlen;
    if (!parse_list(s, &what, &bad, &badlen) && !atomic_exchange(&warned_env, true))
        fprintf(stderr, "tapejit: warning: TJ_DUMP: unknown stage '%.*s' ignored (stages: trace, graph, fusion, "
                "llvm, asm, dot, stats, all)\n", (int)badlen, s + bad);
    return what;
}

const char *tj_dump_env_dir(void) {
    const char *d = getenv("TJ_DUMP_DIR");
    return d && *d ? d : "tj-dump";
}

/* ---- a growing text buffer ----------------------------------------------------------------- */

typedef struct sbuf { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_free(sbuf *b) {
    if (b->p) tj_mem_free(b->p, b->cap);
    *b = (sbuf){0};
}

static bool sb_reserve(sbuf *b, size_t extra) {
    if (b->oom) return false;
    if (b->n + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = tj_mem_realloc(b->p, b->cap, cap);
    if (!p) { b->oom = true; return false; }
    b->p = p;
    b->cap = cap;
    return true;
}

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (!sb_reserve(b, n)) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) { sb_put(b, small, (size_t)n); return; }
    if (!sb_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* A user's string (a variable's name) on one line: controls and backslashes escaped. In
 * DOT labels quotes are escaped too. */
static void sb_name(sbuf *b, const char *s, bool dot) {
    if (!s) { sb_puts(b, "(unnamed)"); return; }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == '\\' || (dot && c == '"')) sb_printf(b, c == '"' ? "\\\"" : "\\x%02x", c);
        else sb_put(b, (const char *)&c, 1);
    }
}

/* ---- files --------------------------------------------------------------------------------- */

/* errno's message (strerror: the XSI and GNU strerror_r differ, and this file may be
 * built with or without _GNU_SOURCE). */
static int io_error(const char *what, const char *path) {
    return tj_err(TJ_ERR_IO, "dump: cannot %s '%s': %s", what, path, strerror(errno));
}

/* mkdir -p path. */
static int make_dirs(char *path) {
    size_t n = strlen(path);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        if (path[i - 1] == '/') continue;
        char c = path[i];
        path[i] = '\0';
        struct stat st;
        int rc = 0;
        if (mkdir(path, 0777) != 0) {   /* it may exist: fine if it is a directory */
            int e = errno;
            if (stat(path, &st) != 0) {
                errno = e;
                rc = io_error("create the directory", path);
            } else if (!S_ISDIR(st.st_mode)) {
                rc = tj_err(TJ_ERR_IO, "dump: cannot create the directory '%s': a file is in the way", path);
            }
        }
        path[i] = c;
        if (rc) return rc;
    }
    return 0;
}

/* Where one signature's files go: <dir>/<fname>/<sig>. The function's name is one path
 * component: bytes other than [A-Za-z0-9._+-] become '_', and "", "." and ".." become "_". */
typedef struct dout {
    sbuf path;            /* "<dir>/<fname>/<sig>" + the extension while writing */
    size_t base;          /* length without the extension */
    int rc;               /* the first error */
} dout;

static int dout_open(dout *o, const char *dir, const char *fname, int sig) {
    *o = (dout){0};
    if (!dir || !*dir) return tj_err(TJ_ERR_ARG, "dump: the directory is empty");
    sb_puts(&o->path, dir);
    sb_puts(&o->path, "/");
    size_t start = o->path.n;
    for (const char *s = fname ? fname : ""; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '+' || c == '-';
        sb_put(&o->path, ok ? &c : "_", 1);
    }
    size_t len = o->path.n - start;
    if (len == 0 || (len <= 2 && !o->path.oom && strspn(o->path.p + start, ".") == len)) {
        o->path.n = start;
        sb_puts(&o->path, "_");
    }
    if (o->path.oom) { sb_free(&o->path); return TJ_ERR_OOM; }
    int rc = make_dirs(o->path.p);
    if (rc) { sb_free(&o->path); return rc; }
    sb_printf(&o->path, "/%d", sig);
    o->base = o->path.n;
    if (o->path.oom) { sb_free(&o->path); return TJ_ERR_OOM; }
    return 0;
}

/* Writes text to <base><ext>; keeps the first error in o->rc. Frees text. */
static void dout_write(dout *o, const char *ext, sbuf *text) {
    o->path.n = o->base;
    sb_puts(&o->path, ext);
    int rc = 0;
    if (text->oom || o->path.oom) rc = TJ_ERR_OOM;
    else {
        FILE *f = fopen(o->path.p, "wb");
        if (!f) rc = io_error("write", o->path.p);
        else {
            size_t put = text->n ? fwrite(text->p, 1, text->n, f) : 0;
            if (put != text->n) rc = io_error("write", o->path.p);
            if (fclose(f) != 0 && !rc) rc = io_error("write", o->path.p);
        }
    }
    if (rc && !o->rc) o->rc = rc;
    sb_free(text);
}

/* ---- nodes as text ------------------------------------------------------------------------- */

static const char *plural(int64_t n) { return n == 1 ? "" : "s"; }

/* The block values a loop leaves for reduction nd to combine: a block per TJ_REDUCE_BLOCK
 * values of each output over rows, one per output over columns (tj_kernel_reduce_form). */
static int64_t block_values(const tj_graph *g, const tj_gnode *nd) {
    int64_t nout, K;
    tj_kernel_reduce_form(g, nd, &nout, &K, NULL);
    return nout * tj_kernel_reduce_blocks(g, nd);
}

static const char *dt_short(tj_dtype dt) {
    switch (dt) {
    case TJ_F32: return "f32";
    case TJ_F64: return "f64";
    case TJ_I32: return "i32";
    }
    return "?";
}

static void sb_shape(sbuf *b, const tj_shape *s) {
    char buf[TJ_SHAPE_STR_MAX];
    sb_puts(b, tj_shape_str(s, buf, sizeof buf));
}

static void sb_ints(sbuf *b, const char *key, int n, const int *v) {
    sb_printf(b, "  %s=[", key);
    for (int i = 0; i < n; i++) sb_printf(b, i ? ", %d" : "%d", v[i]);
    sb_puts(b, "]");
}

/* Value i of data, in the shortest text that reads back to the same value (so 0.1f is
 * "0.1", not "0.100000001"); NaN is "nan" whatever its sign and payload. */
static void sb_value(sbuf *b, tj_dtype dt, const void *data, int64_t i) {
    char buf[64];
    if (dt == TJ_I32) { sb_printf(b, "%d", ((const int32_t *)data)[i]); return; }
    double v = dt == TJ_F32 ? (double)((const float *)data)[i] : ((const double *)data)[i];
    if (v != v) { sb_puts(b, "nan"); return; }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, v);
        if (dt == TJ_F32 ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) break;
    }
    sb_puts(b, buf);
}

/* "0.5" (one value), "all 0.5", or "[1, 2, 3, 4, ...]": at most 4 values. */
static void sb_preview(sbuf *b, const tj_gnode *nd) {
    if (nd->numel == 0 || !nd->data) { sb_puts(b, "[]"); return; }
    size_t es = tj_dtype_size(nd->dtype);
    bool same = true;
    for (int64_t i = 1; i < nd->numel && same; i++) same = !memcmp((const char *)nd->data + i * (int64_t)es, nd->data, es);
    if (same) {
        if (nd->numel > 1) sb_puts(b, "all ");
        sb_value(b, nd->dtype, nd->data, 0);
        return;
    }
    sb_puts(b, "[");
    for (int64_t i = 0; i < nd->numel && i < 4; i++) {
        if (i) sb_puts(b, ", ");
        sb_value(b, nd->dtype, nd->data, i);
    }
    sb_puts(b, nd->numel > 4 ? ", ...]" : "]");
}

static const char *var_name(const tensor *v) { return v ? v->name : NULL; }

static bool has_origin(const tj_graph *g, const tj_gnode *nd) {
    return (nd->update_of >= 0 && nd->update_of < g->nupdated) || nd->grad_of_op != TJ_OP_COUNT;
}

/* "gradient of tanh (node 9)" (inner: "gradient of tanh, node 9", to sit inside
 * parentheses), "optimizer update of a", or nothing for the step's own ops. */
static void sb_origin(sbuf *b, const tj_graph *g, const tj_gnode *nd, bool dot, bool inner) {
    if (nd->update_of >= 0 && nd->update_of < g->nupdated) {
        sb_puts(b, "optimizer update of ");
        sb_name(b, var_name(g->updated[nd->update_of]), dot);
    } else if (nd->grad_of_op != TJ_OP_COUNT) {
        sb_printf(b, "gradient of %s", tj_ops[nd->grad_of_op]->name);
        if (nd->grad_of >= 0) sb_printf(b, inner ? ", node %d" : " (node %d)", nd->grad_of);
    }
}

/* "  <- gradient of tanh (node 9)" or nothing. */
static void sb_arrow(sbuf *b, const tj_graph *g, const tj_gnode *nd) {
    if (!has_origin(g, nd)) return;
    sb_puts(b, "  <- ");
    sb_origin(b, g, nd, false, false);
}

/* The attributes that matter, as "  key=value". */
static void sb_attrs(sbuf *b, const tj_gnode *nd) {
    const tj_attr *a = &nd->attr;
    switch (nd->op) {
    case TJ_OP_SUM:
    case TJ_OP_MAX:
        sb_ints(b, "axes", a->red.naxes, a->red.axes);
        if (a->red.keepdims) sb_puts(b, "  keepdims");
        break;
    case TJ_OP_TRANSPOSE: sb_ints(b, "perm", nd->shape.ndim, a->perm); break;
    case TJ_OP_ARGMAX:
    case TJ_OP_CONCAT:
    case TJ_OP_GATHER:
    case TJ_OP_SCATTER_ADD: sb_printf(b, "  axis=%d", a->axis); break;
    case TJ_OP_SLICE:
        sb_puts(b, "  begin=[");
        for (int d = 0; d < nd->shape.ndim; d++) sb_printf(b, d ? ", %lld" : "%lld", (long long)a->slice.begin[d]);
        sb_puts(b, "]");
        break;
    case TJ_OP_CAST: sb_printf(b, "  dtype=%s", dt_short(a->dtype)); break;
    case TJ_OP_MATMUL: sb_puts(b, a->mm.ta ? (a->mm.tb ? "  a^T b^T" : "  a^T") : a->mm.tb ? "  b^T" : ""); break;
    case TJ_OP_RAND_UNIFORM: sb_printf(b, "  lo=%.17g  hi=%.17g", a->rng.a, a->rng.b); break;
    case TJ_OP_RAND_NORMAL: sb_printf(b, "  mean=%.17g  stddev=%.17g", a->rng.a, a->rng.b); break;
    case TJ_OP_ADD: case TJ_OP_SUB: case TJ_OP_MUL: case TJ_OP_DIV: case TJ_OP_POW: case TJ_OP_MAXIMUM:
    case TJ_OP_MINIMUM: case TJ_OP_GREATER: case TJ_OP_LESS: case TJ_OP_EQUAL: case TJ_OP_WHERE: case TJ_OP_NEG:
    case TJ_OP_EXP: case TJ_OP_LOG: case TJ_OP_SQRT: case TJ_OP_ABS: case TJ_OP_TANH: case TJ_OP_SIGMOID:
    case TJ_OP_RELU: case TJ_OP_RESHAPE: case TJ_OP_BROADCAST: case TJ_OP_STOP_GRADIENT:
    case TJ_OP_COUNT:
        break;   /* the shape says it all */
    }
}

static int resolve_if(const tj_graph *g, int id, bool resolve) { return resolve ? tj_graph_resolve(g, id) : id; }

/* One node: "%12 = mul(%7, %11)  f32 (10, 32)  <- gradient of tanh (node 9)"; inputs
 * through replacements when resolve (the graph after the passes). */
static void sb_node(sbuf *b, const tj_graph *g, int i, bool resolve) {
    const tj_gnode *nd = &g->nodes[i];
    sb_printf(b, "%%%d = ", i);
    switch (nd->kind) {
    case TJ_N_PARAM: sb_printf(b, "input %d", nd->param); break;
    case TJ_N_STATE: sb_puts(b, "variable "); sb_name(b, var_name(nd->var), false); break;
    case TJ_N_CONST: sb_puts(b, "constant"); break;
    case TJ_N_OP:
        sb_printf(b, "%s(", tj_ops[nd->op]->name);
        for (int k = 0; k < nd->nin; k++) sb_printf(b, k ? ", %%%d" : "%%%d", resolve_if(g, nd->in[k], resolve));
        sb_puts(b, ")");
        break;
    }
    sb_printf(b, "  %s ", dt_short(nd->dtype));
    sb_shape(b, &nd->shape);
    if (nd->kind == TJ_N_CONST) {
        sb_puts(b, "  ");
        sb_preview(b, nd);
        if (nd->op != TJ_OP_COUNT) sb_printf(b, "  (folded %s)", tj_ops[nd->op]->name);
    }
    if (nd->kind == TJ_N_OP) sb_attrs(b, nd);
    if (nd->kind == TJ_N_OP || nd->kind == TJ_N_CONST) sb_arrow(b, g, nd);
    sb_puts(b, "\n");
}

/* The state node reading var, or -1. */
static int state_node(const tj_graph *g, const tensor *var) {
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].kind == TJ_N_STATE && g->nodes[i].var == var) return i;
    return -1;
}

/* "function f\nsignature 0: 2 inputs, 1 output\n  input 0: f32 (4, 3)\n..." */
static void sb_header(sbuf *b, const tj_graph *g, const char *fname, int sig) {
    sb_puts(b, "function ");
    sb_name(b, fname, false);
    sb_printf(b, "\nsignature %d: %d input%s, %d output%s\n", sig, g->nparams, plural(g->nparams), g->nout,
              plural(g->nout));
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (nd->kind != TJ_N_PARAM) continue;
        sb_printf(b, "  input %d: %s ", nd->param, dt_short(nd->dtype));
        sb_shape(b, &nd->shape);
        sb_puts(b, "\n");
    }
}

/* Outputs and state writes, through replacements when resolve. */
static void sb_footer(sbuf *b, const tj_graph *g, bool resolve) {
    sb_puts(b, "\noutputs\n");
    for (int i = 0; i < g->nout; i++) sb_printf(b, "  %d: %%%d\n", i, resolve_if(g, g->outputs[i], resolve));
    sb_puts(b, "state written\n");
    if (g->nwrites == 0) sb_puts(b, "  (none)\n");
    for (int i = 0; i < g->nwrites; i++) {
        sb_puts(b, "  ");
        sb_name(b, var_name(g->writes[i].var), false);
        sb_printf(b, " <- %%%d", resolve_if(g, g->writes[i].node, resolve));
        int r = state_node(g, g->writes[i].var);
        if (r >= 0) sb_printf(b, "  (read as %%%d)", r);
        sb_puts(b, "\n");
    }
}

static const char legend[] =
    "# origin after '<-': 'gradient of OP (node N)': the tape made it for node N; 'optimizer update of V':\n"
    "# an optimizer made it to update variable V; none: the step's own op. Node ids are trace ids.\n";

/* ---- trace ---------------------------------------------------------------------------------- */

static void trace_text(sbuf *b, const tj_graph *g, const char *fname, int sig) {
    int count[4] = {0}, grads = 0, updates = 0;
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        count[nd->kind]++;
        grads += nd->kind == TJ_N_OP && nd->update_of < 0 && nd->grad_of_op != TJ_OP_COUNT;
        updates += nd->kind == TJ_N_OP && nd->update_of >= 0;
    }
    sb_puts(b, "# tapejit trace: every op the step ran, as recorded (before the passes)\n");
    sb_puts(b, legend);
    sb_header(b, g, fname, sig);
    sb_printf(b, "nodes: %d: %d input%s, %d constant%s, %d variable%s read, %d op%s (%d gradient, %d optimizer update)\n\n",
              g->n, count[TJ_N_PARAM], plural(count[TJ_N_PARAM]), count[TJ_N_CONST], plural(count[TJ_N_CONST]),
              count[TJ_N_STATE], plural(count[TJ_N_STATE]), count[TJ_N_OP], plural(count[TJ_N_OP]), grads, updates);
    for (int i = 0; i < g->n; i++) sb_node(b, g, i, false);
    sb_footer(b, g, false);
}

int tj_dump_trace(const char *dir, const char *fname, int sig, unsigned what, const tj_graph *g) {
    if (!(what & TJ_DUMP_TRACE)) return 0;
    if (!g) return tj_err(TJ_ERR_ARG, "dump: no graph");
    dout o;
    int rc = dout_open(&o, dir, fname, sig);
    if (rc) return rc;
    sbuf b = {0};
    trace_text(&b, g, fname, sig);
    dout_write(&o, ".trace.txt", &b);
    sb_free(&o.path);
    return o.rc;
}

/* ---- the graph after the passes ------------------------------------------------------------------ */

/* Why node i (replaced) stands for resolve(i): an exact identity (x*1, -(-x), ...) gives
 * one of its inputs; a common subexpression gives an equal earlier node. */
static bool replaced_by_identity(const tj_graph *g, int i) {
    const tj_gnode *nd = &g->nodes[i];
    int to = tj_graph_resolve(g, i);
    for (int k = 0; k < nd->nin; k++) {
        int a = tj_graph_resolve(g, nd->in[k]);
        if (a == to) return true;
        const tj_gnode *x = &g->nodes[a];
        if (nd->op == TJ_OP_NEG && x->kind == TJ_N_OP && x->op == TJ_OP_NEG && tj_graph_resolve(g, x->in[0]) == to)
            return true;
    }
    return false;
}

static void graph_text(sbuf *b, const tj_graph *g, const bool *live, const char *fname, int sig) {
    int nlive = 0, replaced = 0, folded = 0, dead = 0;
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (live[i]) nlive++;
        else if (nd->replaced_by >= 0 && live[tj_graph_resolve(g, i)]) replaced++;
        else if (nd->kind != TJ_N_PARAM) dead++;
        folded += nd->kind == TJ_N_CONST && nd->op != TJ_OP_COUNT;
    }
    sb_puts(b, "# tapejit graph after the passes (constant folding, exact identities, common subexpressions,\n"
               "# broadcasts read in place, dead code): live nodes, inputs through replacements;\n"
               "# '%k = %j' lines are nodes the passes replaced by %j; dead nodes are left out\n");
    sb_puts(b, legend);
    sb_header(b, g, fname, sig);
    sb_printf(b, "nodes: %d traced: %d live, %d replaced, %d dead; %d op%s folded into constants\n\n", g->n, nlive,
              replaced, dead, folded, plural(folded));
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (live[i]) { sb_node(b, g, i, true); continue; }
        if (nd->kind == TJ_N_PARAM) {   /* part of the signature, used or not */
            sb_printf(b, "%%%d = input %d  %s ", i, nd->param, dt_short(nd->dtype));
            sb_shape(b, &nd->shape);
            sb_puts(b, "  (unused)\n");
            continue;
        }
        if (nd->replaced_by < 0 || !live[tj_graph_resolve(g, i)]) continue;
        int to = tj_graph_resolve(g, i);
        sb_printf(b, "%%%d = %%%d  (", i, to);
        if (nd->kind == TJ_N_CONST) sb_puts(b, "constant: the same values");
        else sb_printf(b, "%s: %s", nd->kind == TJ_N_OP ? tj_ops[nd->op]->name : "node",
                       replaced_by_identity(g, i) ? "an exact identity" : "a common subexpression");
        sb_puts(b, ")");
        sb_arrow(b, g, nd);
        sb_puts(b, "\n");
    }
    sb_footer(b, g, true);
}

/* ---- kernels (kernels.c decides what each node becomes) ---------------------------------------- */

/* Estimated arithmetic of one node: one per output element for elementwise ops (exp,
 * tanh, pow... count one too), one per input element for reductions and scatter_add,
 * 2 m n k per matmul, none for data movement (transpose, slice, gather, rand, ...). */
static int64_t node_flops(const tj_graph *g, const tj_gnode *nd) {
    const tj_gnode *x = nd->nin > 0 ? &g->nodes[tj_graph_resolve(g, nd->in[0])] : NULL;
    switch (nd->op) {
    case TJ_OP_ADD: case TJ_OP_SUB: case TJ_OP_MUL: case TJ_OP_DIV: case TJ_OP_POW: case TJ_OP_MAXIMUM:
    case TJ_OP_MINIMUM: case TJ_OP_GREATER: case TJ_OP_LESS: case TJ_OP_EQUAL: case TJ_OP_WHERE: case TJ_OP_NEG:
    case TJ_OP_EXP: case TJ_OP_LOG: case TJ_OP_SQRT: case TJ_OP_ABS: case TJ_OP_TANH: case TJ_OP_SIGMOID:
    case TJ_OP_RELU: case TJ_OP_CAST:
        return nd->numel;
    case TJ_OP_SUM: case TJ_OP_MAX: case TJ_OP_ARGMAX: case TJ_OP_SCATTER_ADD:
        return x ? x->numel : 0;
    case TJ_OP_MATMUL: {
        int trans;
        return x && x->shape.ndim > 0 ? 2 * nd->numel * tj_kernel_matmul_k(g, nd, &trans) : 0;
    }
    case TJ_OP_RESHAPE: case TJ_OP_TRANSPOSE: case TJ_OP_BROADCAST: case TJ_OP_CONCAT: case TJ_OP_SLICE:
    case TJ_OP_GATHER: case TJ_OP_RAND_UNIFORM: case TJ_OP_RAND_NORMAL: case TJ_OP_STOP_GRADIENT: case TJ_OP_COUNT:
        return 0;
    }
    return 0;
}

static int64_t node_bytes(const tj_gnode *nd) { return nd->numel * (int64_t)tj_dtype_size(nd->dtype); }

/* The trace ids a kernel computes, in order (today one: issue 5 will fuse several). */
static int count_stored(const tj_lowered *low, const tj_kernel *k) {
    int n = 0;
    for (int m = k->nrecomputed; m < k->nops; m++) n += low->stored[k->ops[m]];
    return n;
}

/* its own ops (not those it computes again: sb_recomputed) */
static int kernel_ops(const tj_kernel *k, int *ids, int max) {
    int n = k->nops - k->nrecomputed < max ? k->nops - k->nrecomputed : max;
    memcpy(ids, k->ops + k->nrecomputed, sizeof(int) * (size_t)n);
    return n;
}

/* "\n  again    %5 mul, %6 add of k3_mul_add, from its inputs (not stored there)" */
static void sb_recomputed(sbuf *b, const tj_graph *g, const tj_lowered *low, const int *kmap, const tj_kernel *k) {
    if (k->nrecomputed == 0) return;
    sb_puts(b, "\n  again    ");
    for (int m = 0; m < k->nrecomputed; m++)
        sb_printf(b, m ? ", %%%d %s" : "%%%d %s", k->ops[m], tj_ops[g->nodes[k->ops[m]].op]->name);
    sb_printf(b, " of %s, computed here again from its inputs: cheaper than storing and loading", low->kernel[kmap[k->ops[0]]].name);
}

/* "trace ids 12 (mul <- gradient of tanh, node 9)" */
static void sb_kernel_ops(sbuf *b, const tj_graph *g, const tj_kernel *k) {
    int ids[64], n = kernel_ops(k, ids, 64);
    sb_puts(b, "trace ids ");
    for (int i = 0; i < n; i++) sb_printf(b, i ? ", %d" : "%d", ids[i]);
    sb_puts(b, " (");
    for (int i = 0; i < n; i++) {
        const tj_gnode *nd = &g->nodes[ids[i]];
        if (i) sb_puts(b, ", ");
        sb_puts(b, tj_ops[nd->op]->name);
        if (has_origin(g, nd)) {
            sb_puts(b, " <- ");
            sb_origin(b, g, nd, false, true);
        }
    }
    sb_puts(b, ")");
}

/* Index of node i's kernel in low->kernel, from a map built once. */
static int *kernel_map(const tj_graph *g, const tj_lowered *low) {
    int *map = tj_mem_alloc(sizeof(int) * (size_t)(g->n ? g->n : 1));
    if (!map) return NULL;
    for (int i = 0; i < g->n; i++) map[i] = -1;
    for (int k = 0; k < low->kernels; k++) {
        int ids[64], n = kernel_ops(&low->kernel[k], ids, 64);
        for (int j = 0; j < n; j++)
            if (ids[j] >= 0 && ids[j] < g->n) map[ids[j]] = k;
    }
    return map;
}

static void sb_io(sbuf *b, const tj_graph *g, int id) {
    const tj_gnode *x = &g->nodes[id];
    sb_printf(b, "%%%d %s ", id, dt_short(x->dtype));
    sb_shape(b, &x->shape);
}

/* Who reads each node after the passes (live op nodes, in order): first[i] .. first[i+1]
 * index user[]. Outputs and state writes are looked up directly (few). */
typedef struct users { int *first, *user, n, total; } users;

static void users_free(users *u) {
    tj_mem_free(u->first, sizeof(int) * (size_t)(u->n + 1));
    tj_mem_free(u->user, sizeof(int) * (size_t)(u->total ? u->total : 1));
    *u = (users){0};
}

static int users_make(users *u, const tj_graph *g, const bool *live) {
    *u = (users){.n = g->n};
    if (!(u->first = tj_mem_calloc(sizeof(int) * (size_t)(g->n + 1)))) return TJ_ERR_OOM;
    for (int pass = 0; pass < 2; pass++) {     /* count, then fill */
        int *at = pass ? u->first : NULL;
        for (int i = 0; i < g->n; i++) {
            const tj_gnode *nd = &g->nodes[i];
            if (!live[i] || nd->kind != TJ_N_OP) continue;
            for (int k = 0; k < nd->nin; k++) {
                int a = tj_graph_resolve(g, nd->in[k]);
                bool dup = false;                  /* mul(%5, %5) uses %5 once */
                for (int q = 0; q < k && !dup; q++) dup = tj_graph_resolve(g, nd->in[q]) == a;
                if (dup) continue;
                if (pass) u->user[at[a]++] = i;
                else u->first[a + 1]++;
            }
        }
        if (pass) break;
        for (int i = 0; i < g->n; i++) u->first[i + 1] += u->first[i];   /* first[i]: where i's users start */
        u->total = u->first[g->n];
        if (!(u->user = tj_mem_alloc(sizeof(int) * (size_t)(u->total ? u->total : 1)))) { users_free(u); return TJ_ERR_OOM; }
    }
    for (int i = g->n; i > 0; i--) u->first[i] = u->first[i - 1];   /* filling moved each to the next start */
    u->first[0] = 0;
    return 0;
}

static void sb_users(sbuf *b, const tj_graph *g, const users *u, int id) {
    int n = 0;
    sb_puts(b, "  used by  ");
    for (int k = u->first[id]; k < u->first[id + 1]; k++) sb_printf(b, n++ ? ", %%%d" : "%%%d", u->user[k]);
    for (int i = 0; i < g->nout; i++)
        if (tj_graph_resolve(g, g->outputs[i]) == id) sb_printf(b, n++ ? ", output %d" : "output %d", i);
    for (int i = 0; i < g->nwrites; i++)
        if (tj_graph_resolve(g, g->writes[i].node) == id) {
            sb_puts(b, n++ ? ", written to " : "written to ");
            sb_name(b, var_name(g->writes[i].var), false);
        }
    sb_puts(b, n ? "\n" : "nothing\n");
}

static const char *kind_name(tj_kernel_kind k) {
    switch (k) {
    case TJ_KERNEL_LOOP: return "vector loop";
    case TJ_KERNEL_REDUCE: return "reduction";
    case TJ_KERNEL_SMALL_MATMUL: return "small matmul (inline)";
    case TJ_KERNEL_BLAS: return "BLAS call";
    case TJ_KERNEL_CALL: return "kernel call";
    case TJ_KERNEL_VIEW: return "view";
    }
    return "?";
}

/* "; epilogue 5, 6 on each tile as it is computed, over (10, 32), strides %4 [0, 1]" */
static void sb_epilogue(sbuf *b, const tj_graph *g, const tj_kernel *k, const char *unit) {
    tj_loop_dims e;
    tj_kernel_loop_inputs(g, k, &e);
    sb_puts(b, "; epilogue ");
    for (int m = 1; m < k->nops; m++) sb_printf(b, m > 1 ? ", %d" : "%d", k->ops[m]);
    sb_printf(b, " on each %s as it is computed, over ", unit);
    sb_shape(b, &g->nodes[k->node].shape);
    for (int q = 0; q < e.nin; q++) {
        sb_printf(b, q ? "; %%%d [" : ", strides %%%d [", e.in[q]);
        for (int d = 0; d < e.nd; d++) sb_printf(b, d ? ", %lld" : "%lld", (long long)e.st[q][d]);
        sb_puts(b, "]");
    }
}

/* An op of k reads view v of a value of k (in registers). */
static bool reads_view(const tj_graph *g, const tj_kernel *k, int v) {
    for (int m = 0; m < k->nops; m++) {
        const tj_gnode *nd = &g->nodes[k->ops[m]];
        for (int q = 0; q < nd->nin; q++) {
            int in = tj_graph_resolve(g, nd->in[q]);
            if (tj_kernel_loop_read(g, k, in) == in) continue;           /* not a view of k's value */
            for (int x = in; tj_lower_is_view(&g->nodes[x]); x = tj_graph_resolve(g, g->nodes[x].in[0]))
                if (x == v) return true;
        }
    }
    return false;
}

/* "  views    %7 reshape (24,) of %5, ...": the views k's ops read of k's values (no
 * code: in registers), if any. */
static void sb_loop_views(sbuf *b, const tj_graph *g, const bool *live, const tj_kernel *k) {
    int n = 0;
    for (int i = k->node; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (!live[i] || !tj_lower_is_view(nd) || nd->replaced_by >= 0 || !reads_view(g, k, i)) continue;
        sb_puts(b, n++ ? ", " : "\n  views    ");
        sb_printf(b, "%%%d %s ", i, tj_ops[nd->op]->name);
        sb_shape(b, &nd->shape);
        sb_printf(b, " of %%%d", tj_graph_resolve(g, nd->in[0]));
    }
}

static void fusion_text(sbuf *b, const tj_graph *g, const bool *live, const tj_lowered *low, const int *kmap,
                        const char *fname, int sig) {
    int views = 0;
    for (int i = 0; i < g->n; i++) views += live[i] && tj_lower_is_view(&g->nodes[i]) && g->nodes[i].replaced_by < 0;
    sb_puts(b, "# tapejit fusion groups: the kernels of the compiled step, in the order step runs them.\n"
               "# kinds: vector loop (elementwise, explicit vectors + a masked one; it may also compute sums\n"
               "# and maxes of its values, over rows block by block or over columns in pieces of columns),\n"
               "# reduction (canonical order; after such a loop, it combines the loop's block values),\n"
               "# small matmul (inline vectors across n, in the order of ops/matmul_small.h; an operand that is a\n"
               "# transpose of the last two axes is read in place, and such a transpose read by nothing else has\n"
               "# no kernel; the elementwise ops of its shape right after it are its epilogue, applied to each\n"
               "# output tile as it is computed: the matmul's value is stored only if read elsewhere), BLAS call\n"
               "# (matmul: tj_blas_?gemm), kernel call (the op's eager kernel, through tj_jit_call), view (no\n"
               "# code: shares its input's buffer; a loop's ops read a view of its values in registers, and a\n"
               "# loop through reshapes runs flat: one dim of its numel, every input of that numel or a scalar).\n"
               "# space: loop dims after size-1 dims are dropped and contiguous dims merged, with each input's\n"
               "# stride per dim (0: broadcast); outputs x values for reductions; m n k for matmul, and its\n"
               "# epilogue's inputs' strides along the output's dims.\n"
               "# bytes: each input read once in full plus the output written once (an estimate: slices and\n"
               "# gathers read less, caches are ignored); flops: one per output element for elementwise ops\n"
               "# (exp, tanh, ... count one), one per input element for reductions, 2 m n k for matmul,\n"
               "# none for data movement.\n");
    sb_puts(b, legend);
    sb_header(b, g, fname, sig);
    sb_printf(b, "kernels: %d; views: %d; runs of elementwise ops of one shape, or of one numel through views,\n"
              "are fused into one loop\n", low->kernels, views);
    users u;
    if (users_make(&u, g, live)) { b->oom = true; return; }
    int64_t tbytes = 0, tflops = 0;
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (!live[i] || nd->kind != TJ_N_OP || nd->replaced_by >= 0) continue;
        tj_kernel_kind kk = tj_kernel_kind_of(g, nd);
        if (kk == TJ_KERNEL_VIEW) {
            int vk = kmap[tj_kernel_view_source(g, i)];   /* the kernel computing what it shows, or -1 */
            if (low->stored[i] || vk < 0)
                sb_printf(b, "\nview %%%d %s  (no code: shares the buffer of %%%d)\n", i, tj_ops[nd->op]->name,
                          tj_graph_resolve(g, nd->in[0]));
            else
                sb_printf(b, "\nview %%%d %s  (no code: %s reads %%%d through it in registers)\n", i,
                          tj_ops[nd->op]->name, low->kernel[vk].name, tj_graph_resolve(g, nd->in[0]));
            sb_puts(b, "  output   ");
            sb_io(b, g, i);
            sb_puts(b, "\n");
            sb_users(b, g, &u, i);
            continue;
        }
        int ki = kmap[i];
        if (ki < 0 || low->kernel[ki].node != i) continue;   /* fused ops are listed with their loop */
        const tj_kernel *k = &low->kernel[ki];
        kk = tj_kernel_kind_at(g, k);
        sb_printf(b, "\nkernel %s  (%s)\n  ops      ", k->name, kind_name(kk));
        sb_kernel_ops(b, g, k);
        sb_recomputed(b, g, low, kmap, k);
        if (kk == TJ_KERNEL_LOOP) sb_loop_views(b, g, live, k);
        sb_puts(b, "\n  space    ");
        switch (kk) {
        case TJ_KERNEL_LOOP: {
            tj_loop_dims e;
            tj_kernel_loop_dims(g, k, &e);
            for (int d = 0; d < e.nd; d++) sb_printf(b, d ? " x %lld" : "%lld", (long long)e.dim[d]);
            sb_puts(b, tj_kernel_loop_flat(g, k) ? " (flat, from " : " (from ");
            sb_shape(b, &nd->shape);
            sb_puts(b, ")");
            if (nd->numel == 0) sb_puts(b, ", empty: no code");
            for (int q = 0; q < e.nin; q++) {
                sb_printf(b, q ? "; %%%d [" : ", strides %%%d [", e.in[q]);
                for (int d = 0; d < e.nd; d++) sb_printf(b, d ? ", %lld" : "%lld", (long long)e.st[q][d]);
                sb_puts(b, "]");
            }
            int64_t nout, K, n;
            bool cols = tj_kernel_loop_reduce(g, k, &nout, &K, &n) == TJ_REDUCE_COLS;
            for (int r = 0; r < k->nreduced; r++) {
                sb_printf(b, "; also the block values of %%%d = %s(%%%d), ", k->reduced[r], tj_ops[g->nodes[k->reduced[r]].op]->name,
                          tj_graph_resolve(g, g->nodes[k->reduced[r]].in[0]));
                if (cols && nout > n)
                    sb_printf(b, "%lld x %lld columns of %lld, in pieces of %d columns", (long long)(nout / n), (long long)n,
                              (long long)K, TJ_REDUCE_COLS_PIECE);
                else if (cols)
                    sb_printf(b, "%lld columns of %lld, in pieces of %d columns", (long long)nout, (long long)K, TJ_REDUCE_COLS_PIECE);
                else
                    sb_printf(b, "%lld row%s of %lld, blocks of %d", (long long)nout, plural(nout), (long long)K, TJ_REDUCE_BLOCK);
            }
            break;
        }
        case TJ_KERNEL_REDUCE: {
            int64_t nout = 0, K = 0, nb = block_values(g, nd);
            tj_kernel_reduce_form(g, nd, &nout, &K, NULL);
            sb_printf(b, "%lld output%s x %lld values", (long long)nout, plural(nout), (long long)K);
            if (k->from_loop >= 0)
                sb_printf(b, "; %s computed its %lld block value%s: this combines them", low->kernel[k->from_loop].name,
                          (long long)nb, plural(nb));
            break;
        }
        case TJ_KERNEL_BLAS: {
            int r = nd->shape.ndim, trans;
            int64_t m = nd->shape.dim[r - 2], n = nd->shape.dim[r - 1], kk2 = tj_kernel_matmul_k(g, nd, &trans);
            sb_printf(b, "m %lld, n %lld, k %lld, %lld batch%s; %s", (long long)m, (long long)n, (long long)kk2,
                      (long long)(nd->numel / (m * n)), nd->numel / (m * n) == 1 ? "" : "es",
                      nd->dtype == TJ_F64 ? "tj_blas_dgemm" : "tj_blas_sgemm");
            if (trans) sb_printf(b, " reading %s transposed in place", trans == 3 ? "a and b" : trans == 1 ? "a" : "b");
            if (k->nops > 1) {     /* pieces per batch (k->range counts those of all batches) */
                int64_t pm, pn, np = tj_blas_pieces(m, n, &pm, &pn);
                sb_printf(b, " in %lld piece%s of %lld x %lld%s", (long long)np, plural(np), (long long)pm, (long long)pn,
                          nd->numel / (m * n) == 1 ? "" : " per batch");
                sb_epilogue(b, g, k, "piece");
            }
            break;
        }
        case TJ_KERNEL_SMALL_MATMUL: {
            tj_small_matmul mm;
            tj_kernel_small_matmul(g, nd, &mm);
            sb_printf(b, "m %lld, n %lld, k %lld, %lld batch%s", (long long)mm.m, (long long)mm.n, (long long)mm.k,
                      (long long)tj_shape_numel(&mm.batch), tj_shape_numel(&mm.batch) == 1 ? "" : "es");
            if (mm.a_through >= 0) sb_printf(b, "; a: %%%d read transposed in place of %%%d", mm.a, mm.a_through);
            if (mm.b_through >= 0) sb_printf(b, "; b: %%%d read transposed in place of %%%d", mm.b, mm.b_through);
            if (k->nops > 1) sb_epilogue(b, g, k, "tile");
            break;
        }
        case TJ_KERNEL_CALL:
            sb_puts(b, "the eager kernel of ");
            sb_puts(b, tj_ops[nd->op]->name);
            sb_puts(b, " over ");
            sb_shape(b, &nd->shape);
            break;
        case TJ_KERNEL_VIEW: break;
        }
        /* a loop reads its outside values and writes its stored ones; other kernels: the node */
        int in_ids[TJ_GROUP_MAX_IN], nin = 0;
        if (kk == TJ_KERNEL_LOOP) {
            tj_loop_dims e;
            tj_kernel_loop_dims(g, k, &e);
            nin = e.nin;
            memcpy(in_ids, e.in, sizeof(int) * (size_t)nin);
        } else if (kk == TJ_KERNEL_SMALL_MATMUL || (kk == TJ_KERNEL_BLAS && k->nops > 1)) {
            tj_small_matmul mm = {.a = tj_graph_resolve(g, nd->in[0]), .b = tj_graph_resolve(g, nd->in[1])};
            tj_loop_dims e;
            if (kk == TJ_KERNEL_SMALL_MATMUL) tj_kernel_small_matmul(g, nd, &mm);   /* through transposes */
            tj_kernel_loop_inputs(g, k, &e);                                       /* then its epilogue's */
            in_ids[nin++] = mm.a;
            if (mm.b != mm.a) in_ids[nin++] = mm.b;
            for (int q = 0; q < e.nin && nin < TJ_GROUP_MAX_IN; q++)
                if (e.in[q] != mm.a && e.in[q] != mm.b) in_ids[nin++] = e.in[q];
        } else if (k->from_loop < 0) {
            for (int q = 0; q < nd->nin && nin < TJ_GROUP_MAX_IN; q++) in_ids[nin++] = tj_graph_resolve(g, nd->in[q]);
        }
        sb_puts(b, "\n  inputs   ");
        int64_t rd = 0, wr = 0, fl = 0;
        for (int q = 0; q < nin; q++) {
            if (q) sb_puts(b, ", ");
            sb_io(b, g, in_ids[q]);
            rd += node_bytes(&g->nodes[in_ids[q]]);
        }
        int64_t nb = 0;                /* the block values the loop left */
        if (k->from_loop >= 0) {
            nb = block_values(g, nd);
            sb_printf(b, "%lld block values of %%%d", (long long)nb, tj_graph_resolve(g, nd->in[0]));
            rd += nb * (int64_t)tj_dtype_size(nd->dtype);
        } else if (nin == 0) {
            sb_puts(b, "(none)");
        }
        sb_puts(b, "\n  output   ");
        bool any = false;
        for (int m = 0; m < k->nops; m++) {
            int id = k->ops[m];
            fl += node_flops(g, &g->nodes[id]);
            if (m < k->nrecomputed || !low->stored[id]) continue;
            if (any) sb_puts(b, ", ");
            sb_io(b, g, id);
            wr += node_bytes(&g->nodes[id]);
            any = true;
        }
        for (int r = 0; r < k->nreduced; r++) {      /* done here, leaving block values */
            const tj_gnode *red = &g->nodes[k->reduced[r]];
            fl += node_flops(g, red);
            wr += block_values(g, red) * (int64_t)tj_dtype_size(red->dtype);
        }
        if (!any) sb_puts(b, k->nreduced ? "block values only" : "(none)");
        if (k->from_loop >= 0) fl = nb;   /* block values only */
        if (k->nops - k->nrecomputed > 1 || k->nrecomputed)
            sb_printf(b, "  (%d of %d values stored; the rest stay in registers)", count_stored(low, k), k->nops - k->nrecomputed);
        sb_puts(b, "\n");
        for (int m = k->nrecomputed; m < k->nops; m++)
            if (low->stored[k->ops[m]]) sb_users(b, g, &u, k->ops[m]);
        sb_printf(b, "  bytes    %lld (read %lld, write %lld)\n  flops    %lld\n", (long long)(rd + wr), (long long)rd,
                  (long long)wr, (long long)fl);
        if (k->ends) sb_printf(b, "  ends     %s\n", k->ends);
        tbytes += rd + wr;
        tflops += fl;
    }
    sb_printf(b, "\ntotal: %d kernels, %lld bytes, %lld flops\n", low->kernels, (long long)tbytes, (long long)tflops);
    users_free(&u);
}

/* ---- LLVM IR and assembly, with a comment before each kernel -------------------------------- */

/* The kernel named name[0..len) ("k<node>_<op>"), or NULL. */
static const tj_kernel *kernel_named(const tj_graph *g, const tj_lowered *low, const int *kmap, const char *name, size_t len) {
    if (len < 3 || name[0] != 'k' || name[1] < '0' || name[1] > '9') return NULL;
    long node = 0;
    size_t i = 1;
    while (i < len && name[i] >= '0' && name[i] <= '9' && node < INT_MAX / 10) node = node * 10 + (name[i++] - '0');
    if (node >= g->n || kmap[node] < 0) return NULL;
    const tj_kernel *k = &low->kernel[kmap[node]];
    return strlen(k->name) == len && !memcmp(k->name, name, len) ? k : NULL;
}

/* text with "; k12_mul: trace ids 12 (...)" before each kernel's define and the
 * "; Function Attrs" line LLVM puts above it (cmt ";"), or, in assembly (cmt "#" or
 * "//"), before its .globl line or else its label. */
static void annotate(sbuf *b, const char *text, const char *cmt, bool is_asm, const tj_graph *g, const tj_lowered *low,
                     const int *kmap, const char *fname, int sig, const char *what) {
    sb_printf(b, "%s tapejit: ", cmt);
    sb_name(b, fname, false);
    sb_printf(b, ", signature %d: %s; each kernel is preceded by the trace ids it computes\n", sig, what);
    bool *done = tj_mem_calloc(sizeof(bool) * (size_t)(low->kernels ? low->kernels : 1));
    if (!done) { b->oom = true; return; }
    bool step_done = false;
    const char *held = NULL;   /* a "; Function Attrs" line, written after the comment */
    size_t held_len = 0;
    for (const char *s = text; *s;) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s + 1) : strlen(s);
        if (!is_asm && !held && !strncmp(s, "; Function Attrs", 16)) {
            held = s;
            held_len = len;
            s += len;
            continue;
        }
        const char *name = NULL;
        size_t nlen = 0;
        if (!is_asm && !strncmp(s, "define ", 7)) {
            const char *at = memchr(s, '@', len), *par = at ? memchr(at, '(', len - (size_t)(at - s)) : NULL;
            if (at && par) { name = at + 1; nlen = (size_t)(par - at - 1); }
        } else if (is_asm) {
            const char *p = s;
            while (*p == ' ' || *p == '\t') p++;
            if (!strncmp(p, ".globl", 6) && (p[6] == ' ' || p[6] == '\t')) {
                p += 6;
                while (*p == ' ' || *p == '\t') p++;
                name = p;
                while (p < s + len && *p != ' ' && *p != '\t' && *p != '\n' && *p != '#') p++;
                nlen = (size_t)(p - name);
            } else if (p == s) {
                const char *c = memchr(s, ':', len);
                if (c) { name = s; nlen = (size_t)(c - s); }
            }
        }
        if (name) {
            const tj_kernel *k = kernel_named(g, low, kmap, name, nlen);
            if (k && !done[k - low->kernel]) {
                done[k - low->kernel] = true;
                sb_printf(b, "%s %s: ", cmt, k->name);
                sb_kernel_ops(b, g, k);
                sb_puts(b, "\n");
            } else if (!k && nlen == 4 && !memcmp(name, "step", 4) && !step_done) {
                step_done = true;
                sb_printf(b, "%s step: runs the %d kernels in order\n", cmt, low->kernels);
            }
        }
        if (held) sb_put(b, held, held_len);
        held = NULL;
        sb_put(b, s, len);
        s += len;
    }
    if (held) sb_put(b, held, held_len);
    tj_mem_free(done, sizeof(bool) * (size_t)(low->kernels ? low->kernels : 1));
}

/* The assembly's comment marker: what precedes "-- End function" (LLVM writes it after
 * every function): "#" on x86, "//" on AArch64. */
static void asm_comment(const char *text, char *cmt, size_t n) {
    snprintf(cmt, n, "#");
    const char *p = strstr(text, "-- End function");
    if (!p) return;
    const char *q = p;
    while (q > text && q[-1] == ' ') q--;
    const char *r = q;
    while (r > text && r[-1] != ' ' && r[-1] != '\t' && r[-1] != '\n') r--;
    if (q > r && (size_t)(q - r) < n) snprintf(cmt, n, "%.*s", (int)(q - r), r);
}

/* ---- DOT -------------------------------------------------------------------------------- */

/* A node's box; a view (no code) is dashed. */
static void dot_node(sbuf *b, const tj_graph *g, int i, const char *indent, bool view) {
    const tj_gnode *nd = &g->nodes[i];
    sb_printf(b, "%sn%d [label=\"%%%d ", indent, i, i);   /* dot's own escapes: \\n is a line break */
    const char *style = "";
    switch (nd->kind) {
    case TJ_N_PARAM:
        sb_printf(b, "input %d", nd->param);
        style = ", shape=ellipse, style=filled, fillcolor=gray90";
        break;
    case TJ_N_STATE:
        sb_puts(b, "variable ");
        sb_name(b, var_name(nd->var), true);
        style = ", shape=ellipse, style=filled, fillcolor=lightyellow";
        break;
    case TJ_N_CONST: {
        sb_puts(b, "constant ");
        sbuf v = {0};
        sb_preview(&v, nd);
        if (v.oom) b->oom = true;
        else sb_name(b, v.p, true);
        sb_free(&v);
        style = ", shape=note";
        break;
    }
    case TJ_N_OP: {
        static const char *const op_style[2][3] = {
            {"", ", style=filled, fillcolor=lightblue", ", style=filled, fillcolor=lightsalmon"},
            {", style=dashed", ", style=\"filled,dashed\", fillcolor=lightblue", ", style=\"filled,dashed\", fillcolor=lightsalmon"},
        };
        sb_puts(b, tj_ops[nd->op]->name);
        style = op_style[view][nd->update_of >= 0 ? 2 : nd->grad_of_op != TJ_OP_COUNT];
        break;
    }
    }
    sb_printf(b, "\\n%s ", dt_short(nd->dtype));
    sb_shape(b, &nd->shape);
    if ((nd->kind == TJ_N_OP || nd->kind == TJ_N_CONST) && has_origin(g, nd)) {
        sb_puts(b, "\\n<- ");
        sb_origin(b, g, nd, true, false);
    }
    sb_printf(b, "\"%s];\n", style);
}

/* Node v is a view of a value that stays in its kernel's registers (not stored). */
static bool in_registers(const tj_graph *g, const bool *live, const struct tj_lowered *low, const int *kmap, int v) {
    const tj_gnode *nd = &g->nodes[v];
    return kmap && live[v] && nd->replaced_by < 0 && tj_lower_is_view(nd) && !low->stored[v] &&
           kmap[tj_kernel_view_source(g, v)] >= 0;
}

static void dot_text(sbuf *b, const tj_graph *g, const bool *live, const struct tj_lowered *low, const int *kmap,
                     const char *fname, int sig) {
    sb_puts(b, "// tapejit: the graph after the passes; one cluster per kernel; blue: gradient, salmon: optimizer update\n");
    sb_puts(b, "digraph \"");
    sb_name(b, fname, true);
    sb_printf(b, "/%d\" {\n  rankdir=TB;\n  graph [fontname=\"monospace\", fontsize=10];\n"
              "  node [shape=box, fontname=\"monospace\", fontsize=10];\n", sig);
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (!live[i] && nd->kind != TJ_N_PARAM) continue;
        if (low && kmap && kmap[i] >= 0) {
            const tj_kernel *k = &low->kernel[kmap[i]];
            if (k->node != i) continue;   /* a kernel's cluster is drawn at its first node */
            sb_printf(b, "  subgraph cluster_k%d {\n    label=\"%s\\n%s\";\n    style=rounded;\n", i, k->name,
                      kind_name(tj_kernel_kind_at(g, k)));
            int ids[64], n = kernel_ops(k, ids, 64);
            for (int j = 0; j < n; j++) dot_node(b, g, ids[j], "    ", false);
            for (int v = i + 1; v < g->n; v++)          /* the views it reads in registers */
                if (in_registers(g, live, low, kmap, v) && kmap[tj_kernel_view_source(g, v)] == kmap[i])
                    dot_node(b, g, v, "    ", true);
            sb_puts(b, "  }\n");
            continue;
        }
        if (low && in_registers(g, live, low, kmap, i)) continue;   /* drawn in its kernel */
        if (low && tj_lower_is_view(nd)) {
            dot_node(b, g, i, "  ", true);
            continue;
        }
        dot_node(b, g, i, "  ", false);
    }
    for (int i = 0; i < g->n; i++) {
        const tj_gnode *nd = &g->nodes[i];
        if (!live[i] || nd->kind != TJ_N_OP) continue;
        for (int k = 0; k < nd->nin; k++) sb_printf(b, "  n%d -> n%d;\n", tj_graph_resolve(g, nd->in[k]), i);
    }
    for (int i = 0; i < g->nout; i++)
        sb_printf(b, "  out%d [shape=plaintext, label=\"output %d\"];\n  n%d -> out%d;\n", i, i,
                  tj_graph_resolve(g, g->outputs[i]), i);
    for (int i = 0; i < g->nwrites; i++) {
        sb_printf(b, "  w%d [shape=plaintext, label=\"", i);
        sb_name(b, var_name(g->writes[i].var), true);
        sb_printf(b, " <-\"];\n  n%d -> w%d [style=bold];\n", tj_graph_resolve(g, g->writes[i].node), i);
    }
    sb_puts(b, "}\n");
}

/* ---- stats ----------------------------------------------------------------------------------- */

static void stats_text(sbuf *b, const tj_compile_stats *st, size_t arena_bytes, const char *fname, int sig) {
    sb_puts(b, "# tapejit compile statistics: times (ms) vary from run to run; nothing else in the dumps does\n");
    sb_puts(b, "function ");
    sb_name(b, fname, false);
    sb_printf(b, "\nsignature %d\n", sig);
    double total = st->trace_ms + st->graph_ms + st->ir_ms + st->llvm_opt_ms + st->codegen_ms;
    sb_printf(b, "trace_ms      %.3f\ngraph_ms      %.3f\nir_ms         %.3f\nllvm_opt_ms   %.3f\ncodegen_ms    %.3f\n"
              "total_ms      %.3f\n", st->trace_ms, st->graph_ms, st->ir_ms, st->llvm_opt_ms, st->codegen_ms, total);
    sb_printf(b, "nodes         %d\nlive_nodes    %d\nkernels       %d\npeak_bytes    %zu\n", st->nodes, st->live_nodes,
              st->kernels, arena_bytes);
}

/* ---- after the passes ----------------------------------------------------------------------- */

int tj_dump_compiled(const char *dir, const char *fname, int sig, unsigned what, const tj_graph *g, const bool *live,
                     const struct tj_lowered *low, const struct tj_compile_stats *st, size_t arena_bytes) {
    what &= TJ_DUMP_ALL & ~(unsigned)TJ_DUMP_TRACE;
    if (!what) return 0;
    if (!g || !live) return tj_err(TJ_ERR_ARG, "dump: no graph");
    dout o;
    int rc = dout_open(&o, dir, fname, sig);
    if (rc) return rc;
    int *kmap = NULL;
    if (low && !(kmap = kernel_map(g, low))) { sb_free(&o.path); return TJ_ERR_OOM; }
    if (what & TJ_DUMP_GRAPH) {
        sbuf b = {0};
        graph_text(&b, g, live, fname, sig);
        dout_write(&o, ".graph.txt", &b);
    }
    if (low && (what & TJ_DUMP_FUSION)) {
        sbuf b = {0};
        fusion_text(&b, g, live, low, kmap, fname, sig);
        dout_write(&o, ".fusion.txt", &b);
    }
    if (low && (what & TJ_DUMP_LLVM) && low->ir && low->ir_opt) {
        sbuf b = {0};
        annotate(&b, low->ir, ";", false, g, low, kmap, fname, sig, "LLVM IR before optimisation");
        dout_write(&o, ".llvm.ll", &b);
        annotate(&b, low->ir_opt, ";", false, g, low, kmap, fname, sig, "LLVM IR after optimisation");
        dout_write(&o, ".llvm-opt.ll", &b);
    }
    if (low && (what & TJ_DUMP_ASM) && low->asm_text) {
        sbuf b = {0};
        char cmt[8];
        asm_comment(low->asm_text, cmt, sizeof cmt);
        annotate(&b, low->asm_text, cmt, true, g, low, kmap, fname, sig, "assembly");
        dout_write(&o, ".asm.s", &b);
    }
    if (what & TJ_DUMP_DOT) {
        sbuf b = {0};
        dot_text(&b, g, live, low, kmap, fname, sig);
        dout_write(&o, ".dot", &b);
    }
    if ((what & TJ_DUMP_STATS) && st) {
        sbuf b = {0};
        stats_text(&b, st, arena_bytes, fname, sig);
        dout_write(&o, ".stats.txt", &b);
    }
    if (kmap) tj_mem_free(kmap, sizeof(int) * (size_t)(g->n ? g->n : 1));
    sb_free(&o.path);
    return o.rc;
}
