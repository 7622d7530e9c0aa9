/* module.c: modules: a tree of named modules, each owning its children and variables.
 * Variables are enumerated depth first (a module's own, in creation order, then each
 * child's, in the order added) and named by their path from the root, without the root's
 * name ("dense1/kernel"). Names never contain '/', and names are unique among a module's
 * children and among its variables, so paths are unique. Also the Keras-style summary.
 * A module used after tj_module_free is the caller's bug; NULL modules are errors. */
#include "nn/nn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = tj_mem_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void str_free(char *s) {
    if (s) tj_mem_free(s, strlen(s) + 1);
}

static bool grow(void **arr, int *cap, int n, size_t elem) {
    if (n < *cap) return true;
    int nc = *cap ? 2 * *cap : 4;
    void *p = tj_mem_realloc(*arr, (size_t)*cap * elem, (size_t)nc * elem);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

static int check_name(const char *op, const char *what, const char *name) {
    if (!name || !*name) return tj_err(TJ_ERR_ARG, "%s: %s name is %s", op, what, name ? "empty" : "NULL");
    if (strchr(name, '/'))
        return tj_err(TJ_ERR_ARG, "%s: %s name '%s' contains '/' (names are joined by '/' into paths)",
                      op, what, name);
    return 0;
}

const char *tj_nn_kind_name(nn_kind kind) {
    switch (kind) {
    case NN_CUSTOM: return "Model";
    case NN_SEQUENTIAL: return "Sequential";
    case NN_DENSE: return "Dense";
    case NN_DROPOUT: return "Dropout";
    case NN_EMBEDDING: return "Embedding";
    case NN_ACTIVATION: return "Activation";
    case NN_FLATTEN: return "Flatten";
    case NN_RESHAPE: return "Reshape";
    }
    return "?";
}

tj_module *tj_nn_module_new(nn_kind kind, const char *name, const char *default_name, const char *op,
                            tj_forward_fn forward, void *user) {
    if (name && check_name(op, "module", name)) return NULL;
    tj_module *m = tj_mem_calloc(sizeof *m);
    if (!m) return NULL;
    m->auto_name = name == NULL;
    if (!(m->name = str_dup(name ? name : default_name))) {
        tj_mem_free(m, sizeof *m);
        return NULL;
    }
    m->kind = kind;
    m->forward = forward;
    m->user = user;
    return m;
}

tj_module *tj_module_new(const char *name, tj_forward_fn forward, void *user) {
    return tj_nn_module_new(NN_CUSTOM, name, "model", "module_new", forward, user);
}

void *tj_module_user(const tj_module *m) {
    if (!m) return tj_err(TJ_ERR_ARG, "module_user: module is NULL"), NULL;
    return m->user;
}

const char *tj_module_name(const tj_module *m) {
    if (!m) return tj_err(TJ_ERR_ARG, "module_name: module is NULL"), NULL;
    return m->name;
}

/* ---- paths ------------------------------------------------------------------------------ */

/* Length of m's path from its root ("" for the root), without the terminating 0. */
static size_t path_len(const tj_module *m) {
    size_t n = 0;
    for (; m->parent; m = m->parent) n += strlen(m->name) + 1;
    return n ? n - 1 : 0;
}

/* The path of m's variable `local` ("down1/conv/kernel"), in memory of size *size. */
static char *var_path(const tj_module *m, const char *local, size_t *size) {
    size_t pl = path_len(m), ll = strlen(local);
    *size = pl + (pl ? 1 : 0) + ll + 1;
    char *s = tj_mem_alloc(*size);
    if (!s) return NULL;
    size_t pos = pl;
    for (const tj_module *p = m; p->parent; p = p->parent) {   /* fill the prefix from the right */
        size_t k = strlen(p->name);
        pos -= k;
        memcpy(s + pos, p->name, k);
        if (pos > 0) s[--pos] = '/';
    }
    if (pl) s[pl] = '/';
    memcpy(s + pl + (pl ? 1 : 0), local, ll + 1);
    return s;
}

/* Gives every variable under m its path from the root. */
static int rename_subtree(tj_module *m) {
    for (int i = 0; i < m->nvar; i++) {
        tensor *v = tj_resolve(m->var[i].h, "module_add", 2);
        size_t size;
        char *path = var_path(m, m->var[i].name, &size);
        if (!v || !path) { if (path) tj_mem_free(path, size); return tj_error_code(); }
        int rc = tj_variable_set_name(v, path);
        tj_mem_free(path, size);
        if (rc) return rc;
    }
    for (int i = 0; i < m->nchild; i++) {
        int rc = rename_subtree(m->child[i]);
        if (rc) return rc;
    }
    return 0;
}

/* ---- children ------------------------------------------------------------------------------ */

static tj_module *find_child(const tj_module *m, const char *name) {
    for (int i = 0; i < m->nchild; i++)
        if (!strcmp(m->child[i]->name, name)) return m->child[i];
    return NULL;
}

/* An auto-named child that clashes becomes "<name>_<k>" with the smallest free k, as Keras. */
static int unique_auto_name(tj_module *m, tj_module *child) {
    size_t base = strlen(child->name), size = base + 24;
    char *s = tj_mem_alloc(size);
    if (!s) return TJ_ERR_OOM;
    for (long k = 1;; k++) {
        snprintf(s, size, "%s_%ld", child->name, k);
        if (!find_child(m, s)) break;
    }
    char *d = str_dup(s);
    tj_mem_free(s, size);
    if (!d) return TJ_ERR_OOM;
    str_free(child->name);
    child->name = d;
    return 0;
}

tj_module *tj_module_add(tj_module *m, tj_module *child) {
    if (!child) return tj_err(TJ_ERR_ARG, "module_add: child is NULL"), NULL;
    if (child->parent)    /* not taken: it belongs to its parent */
        return tj_err(TJ_ERR_ARG, "module_add: '%s' is already a child of '%s'", child->name,
                      child->parent->name), NULL;
    for (const tj_module *p = m; p; p = p->parent)
        if (p == child)   /* not taken: freeing it would free m */
            return tj_err(TJ_ERR_ARG, "module_add: '%s' cannot be added to itself or its descendant '%s'",
                          child->name, m->name), NULL;
    if (!m) {
        tj_err(TJ_ERR_ARG, "module_add: module is NULL (adding '%s')", child->name);
        goto fail;
    }
    if (find_child(m, child->name)) {
        if (!child->auto_name) {
            tj_err(TJ_ERR_ARG, "module_add: '%s' already has a child named '%s'", m->name, child->name);
            goto fail;
        }
        if (unique_auto_name(m, child)) goto fail;
    }
    if (!grow((void **)&m->child, &m->capchild, m->nchild, sizeof *m->child)) goto fail;
    m->child[m->nchild++] = child;
    child->parent = m;
    if (rename_subtree(child)) {
        m->nchild--;
        child->parent = NULL;
        goto fail;
    }
    return child;
fail:
    tj_module_free(child);
    return NULL;
}

tj_module *tj_module_child(const tj_module *m, const char *name) {
    if (!m) return tj_err(TJ_ERR_ARG, "module_child: module is NULL"), NULL;
    if (!name) return tj_err(TJ_ERR_ARG, "module_child: name is NULL"), NULL;
    tj_module *c = find_child(m, name);
    if (!c) tj_err(TJ_ERR_ARG, "module_child: '%s' has no child named '%s'", m->name, name);
    return c;
}

/* ---- variables ----------------------------------------------------------------------------- */

tj_tensor *tj_module_variable(tj_module *m, const char *name, tj_tensor *init) {
    if (!m) return tj_err(TJ_ERR_ARG, "module_variable: module is NULL"), NULL;
    if (check_name("module_variable", "variable", name)) return NULL;
    for (int i = 0; i < m->nvar; i++)
        if (!strcmp(m->var[i].name, name))
            return tj_err(TJ_ERR_ARG, "module_variable: '%s' already has a variable named '%s'", m->name,
                          name), NULL;
    if (!tj_resolve(init, "module_variable", 3)) return NULL;
    if (!grow((void **)&m->var, &m->capvar, m->nvar, sizeof *m->var)) return NULL;
    size_t size;
    char *path = var_path(m, name, &size), *local = str_dup(name);
    tj_tensor *v = path && local ? tj_variable(init, path) : NULL;
    if (path) tj_mem_free(path, size);
    if (!v) { str_free(local); return NULL; }
    m->var[m->nvar++] = (nn_var){local, v};
    return v;
}

tj_tensor *tj_nn_weight(tj_module *m, const char *name, tj_shape shape, tj_dtype dt, double lo, double hi) {
    /* init scope: the draw is neither traced (a compiled step would redraw it on every
     * replay) nor taped, and its temporaries die here */
    tj_thread *th = tj_thread_state();
    const tj_trace_hooks *hooks = th->trace;
    void *tracer = th->tracer;
    th->trace = NULL;
    th->tracer = NULL;
    tj_no_grad_begin();
    tj_scope_begin();
    tj_tensor *init = lo == hi ? tj_zeros(dt, shape) : tj_cast(tj_rand_uniform(shape, lo, hi), dt);
    tj_tensor *v = init ? tj_module_variable(m, name, init) : NULL;
    tj_scope_end();
    tj_no_grad_end();
    th->trace = hooks;
    th->tracer = tracer;
    return v;
}

static int count_vars(const tj_module *m, int n, int cap, tj_tensor **vars) {
    for (int i = 0; i < m->nvar; i++, n++)
        if (n < cap) vars[n] = m->var[i].h;
    for (int i = 0; i < m->nchild; i++) n = count_vars(m->child[i], n, cap, vars);
    return n;
}

int tj_module_variables(const tj_module *m, int cap, tj_tensor **vars) {
    if (!m) return tj_err(TJ_ERR_ARG, "module_variables: module is NULL"), -1;
    if (cap < 0 || (cap > 0 && !vars))
        return tj_err(TJ_ERR_ARG, "module_variables: cap is %d and vars is %s", cap, vars ? "set" : "NULL"), -1;
    return count_vars(m, 0, cap, vars);
}

static int64_t params(const tj_module *m) {
    int64_t n = 0;
    for (int i = 0; i < m->nvar; i++) n += tj_tensor_numel(m->var[i].h);
    for (int i = 0; i < m->nchild; i++) n += params(m->child[i]);
    return n;
}

int64_t tj_module_param_count(const tj_module *m) {
    if (!m) return tj_err(TJ_ERR_ARG, "module_param_count: module is NULL"), -1;
    return params(m);
}

/* ---- calls ---------------------------------------------------------------------------------- */

tj_tensor *tj_module_call(tj_module *m, tj_tensor *x, bool training) {
    if (!m) return tj_err(TJ_ERR_ARG, "module_call: module is NULL"), NULL;
    if (!tj_resolve(x, m->name, 1)) return NULL;
    if (!m->forward) return tj_err(TJ_ERR_ARG, "module_call: '%s' has no forward function", m->name), NULL;
    tj_tensor *y = m->forward(m, x, training);
    if (!y) {
        if (!tj_has_error())
            tj_err(TJ_ERR_ARG, "module_call: the forward function of '%s' returned NULL without an error",
                   m->name);
        return NULL;
    }
    tensor *t = tj_resolve(y, m->name, 0);
    if (!t) return NULL;
    m->out_shape = t->shape;
    m->called = true;
    return y;
}

/* ---- freeing -------------------------------------------------------------------------------- */

static void free_tree(tj_module *m) {
    for (int i = 0; i < m->nchild; i++) free_tree(m->child[i]);
    for (int i = 0; i < m->nvar; i++) {
        tj_variable_free(m->var[i].h);
        str_free(m->var[i].name);
    }
    tj_mem_free(m->child, sizeof *m->child * (size_t)m->capchild);
    tj_mem_free(m->var, sizeof *m->var * (size_t)m->capvar);
    str_free(m->name);
    tj_mem_free(m, sizeof *m);
}

void tj_module_free(tj_module *m) {
    if (!m) return;
    tj_module *p = m->parent;
    if (p) {                     /* a child freed on its own leaves its parent */
        int i = 0;
        while (p->child[i] != m) i++;
        memmove(p->child + i, p->child + i + 1, sizeof *p->child * (size_t)(p->nchild - i - 1));
        p->nchild--;
    }
    free_tree(m);
}

/* ---- summary -------------------------------------------------------------------------------- */

/* Output appended to buf with snprintf semantics: len counts everything, buf holds what fits. */
typedef struct { char *buf; size_t size, len; } sink;

static void put(sink *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sink *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *dst = o->len < o->size ? o->buf + o->len : NULL;
    int n = vsnprintf(dst, dst ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0) o->len += (size_t)n;
}

#define LINE 65
static const int column_end[3] = {29, 55, 65};   /* Keras: line_length 65, positions .45 .85 1 */

/* One row as Keras's print_row: each field cut at its column's end, the character
 * before a field forced to a space; trailing spaces dropped. */
static void put_row(sink *o, const char *const *fields) {
    char line[LINE + 1];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        if (i > 0) line[n - 1] = ' ';
        for (const char *f = fields[i]; *f && n < column_end[i]; f++) line[n++] = *f;
        while (n < column_end[i]) line[n++] = ' ';
    }
    while (n > 0 && line[n - 1] == ' ') n--;
    line[n] = 0;
    put(o, "%s\n", line);
}

static void put_rule(sink *o, char c) {
    char line[LINE + 1];
    memset(line, c, LINE);
    line[LINE] = 0;
    put(o, "%s\n", line);
}

/* "(None, 32)": the batch dim is None; "?" before the first call */
static void shape_field(const tj_module *m, char *buf, size_t size) {
    if (!m->called) { snprintf(buf, size, "?"); return; }
    const tj_shape *s = &m->out_shape;
    size_t k = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < s->ndim && k < size; i++) {
        if (i == 0) k += (size_t)snprintf(buf + k, size - k, "None");
        else k += (size_t)snprintf(buf + k, size - k, ", %lld", (long long)s->dim[i]);
    }
    if (k < size) snprintf(buf + k, size - k, s->ndim == 1 ? ",)" : ")");
}

/* 1234567 -> "1,234,567" (Keras's totals) */
static void grouped(int64_t v, char *buf, size_t size) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)v), k = 0;
    for (int i = 0; i < n && (size_t)k + 1 < size; i++) {
        if (i > 0 && digits[i - 1] != '-' && (n - i) % 3 == 0 && (size_t)k + 2 < size) buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = 0;
}

static void put_layer(sink *o, const tj_module *c) {
    char label[LINE + 1], shape[TJ_SHAPE_STR_MAX], count[32];
    snprintf(label, sizeof label, "%s (%s)", c->name, tj_nn_kind_name(c->kind));
    shape_field(c, shape, sizeof shape);
    snprintf(count, sizeof count, "%lld", (long long)params(c));
    put_row(o, (const char *const[]){label, shape, count});
}

int tj_module_summary(const tj_module *m, char *buf, size_t size) {
    if (!m) return tj_err(TJ_ERR_ARG, "module_summary: module is NULL"), -1;
    if (!buf && size) return tj_err(TJ_ERR_ARG, "module_summary: buf is NULL but size is %zu", size), -1;
    sink o = {buf, size, 0};
    if (size) buf[0] = 0;
    put(&o, "Model: \"%s\"\n", m->name);
    put_rule(&o, '_');
    put_row(&o, (const char *const[]){"Layer (type)", "Output Shape", "Param #"});
    put_rule(&o, '=');
    if (m->nchild == 0) put_layer(&o, m);        /* a single layer: itself */
    for (int i = 0; i < m->nchild; i++) {
        if (i > 0) put_rule(&o, '_');
        put_layer(&o, m->child[i]);
    }
    put_rule(&o, '=');
    char total[40];
    grouped(params(m), total, sizeof total);
    put(&o, "Total params: %s\nTrainable params: %s\nNon-trainable params: 0\n", total, total);
    put_rule(&o, '_');
    if (o.len > (size_t)INT32_MAX) return tj_err(TJ_ERR_ARG, "module_summary: summary is too long"), -1;
    return (int)o.len;
}

void tj_module_print_summary(const tj_module *m) {
    int n = tj_module_summary(m, NULL, 0);
    if (n < 0) return;
    char *s = tj_mem_alloc((size_t)n + 1);
    if (!s) return;
    tj_module_summary(m, s, (size_t)n + 1);
    fputs(s, stdout);
    tj_mem_free(s, (size_t)n + 1);
}
