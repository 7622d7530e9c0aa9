/* checkpoint.c: checkpoints (the variables of modules and optimizers and single variables,
 * dataset positions, this thread's RNG state) as safetensors files, and the manager that
 * keeps the newest N of them in a directory. Objects are enumerated when saving and
 * restoring, never when added: layers and optimizer slots are built on first use.
 * Restore is all or nothing: the whole file is read and matched against every expected
 * name, dtype and shape, every mismatch is reported at once, and values are written only
 * when everything matches. Integers (RNG, dataset state) are metadata decimal strings. */
#define _POSIX_C_SOURCE 200809L
#include "io/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CK_VERSION   "1"
#define KEY_VERSION  "tapejit.checkpoint_version"
#define KEY_SEED     "tapejit.rng_seed"
#define KEY_OFFSET   "tapejit.rng_offset"
#define KEY_DATASET  "tapejit.dataset/"          /* + name: "<state[0]> <state[1]>" */

typedef enum { CK_MODULE, CK_OPTIMIZER, CK_VARIABLE, CK_DATASET } ck_kind;

typedef struct ck_item {
    ck_kind             kind;
    char               *name;      /* prefix (module, optimizer; may be ""), or full name */
    const tj_module    *m;
    const tj_optimizer *o;
    tj_tensor          *var;
    tj_dataset         *d;
} ck_item;

struct tj_checkpoint {
    ck_item *item;
    int      n, cap;
};

/* ---- helpers ------------------------------------------------------------------------------- */

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = tj_mem_alloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static void str_free(char *s) {
    if (s) tj_mem_free(s, strlen(s) + 1);
}

/* "prefix/name", or name when prefix is empty. */
static char *join(const char *prefix, const char *name) {
    size_t a = strlen(prefix), b = strlen(name);
    char *s = tj_mem_alloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, prefix, a);
    if (a) s[a++] = '/';
    memcpy(s + a, name, b + 1);
    return s;
}

static int sys_err(const char *op, const char *doing, const char *path, int e) {
    char buf[128];
    if (strerror_r(e, buf, sizeof buf)) snprintf(buf, sizeof buf, "error %d", e);
    return tj_err(TJ_ERR_IO, "%s: cannot %s %s: %s", op, doing, path, buf);
}

static int not_tracing(const char *op) {
    if (tj_thread_state()->trace)
        return tj_err(TJ_ERR_STATE, "%s: cannot run inside a compiled function while it is traced "
                      "(a replay would not do it again)", op);
    return 0;
}

/* Exact decimal integers: digits only (and a leading '-' for signed), no overflow. */
static bool parse_u64(const char *s, const char **end, uint64_t *out) {
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9') return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    *end = p;
    return true;
}

static bool parse_i64(const char *s, const char **end, int64_t *out) {
    bool neg = *s == '-';
    uint64_t u;
    if (!parse_u64(s + neg, end, &u)) return false;
    if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX) return false;
    *out = !neg ? (int64_t)u : u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    return true;
}

static bool parse_u64_all(const char *s, uint64_t *out) {
    const char *end;
    return s && parse_u64(s, &end, out) && *end == '\0';
}

static bool parse_state(const char *s, int64_t st[2]) {
    const char *end;
    return s && parse_i64(s, &end, &st[0]) && *end == ' ' && parse_i64(end + 1, &end, &st[1]) && *end == '\0';
}

/* ---- the checkpoint object ------------------------------------------------------------------- */

tj_checkpoint *tj_checkpoint_new(void) {
    return tj_mem_calloc(sizeof(tj_checkpoint));
}

void tj_checkpoint_free(tj_checkpoint *ck) {
    if (!ck) return;
    for (int i = 0; i < ck->n; i++) str_free(ck->item[i].name);
    if (ck->item) tj_mem_free(ck->item, sizeof *ck->item * (size_t)ck->cap);
    tj_mem_free(ck, sizeof *ck);
}

static int add(tj_checkpoint *ck, const char *op, ck_item it, const char *name) {
    if (!ck) return tj_err(TJ_ERR_ARG, "%s: the checkpoint is NULL", op);
    if (it.kind == CK_VARIABLE || it.kind == CK_DATASET) {
        if (!name || !*name) return tj_err(TJ_ERR_ARG, "%s: the name is %s", op, name ? "empty" : "NULL");
        for (int i = 0; i < ck->n; i++)
            if (ck->item[i].kind == it.kind && !strcmp(ck->item[i].name, name))
                return tj_err(TJ_ERR_ARG, "%s: the checkpoint already has a %s named \"%.80s\"", op,
                              it.kind == CK_DATASET ? "dataset" : "variable", name);
    }
    if (ck->n == ck->cap) {
        int cap = ck->cap ? 2 * ck->cap : 8;
        ck_item *p = tj_mem_realloc(ck->item, sizeof *p * (size_t)ck->cap, sizeof *p * (size_t)cap);
        if (!p) return TJ_ERR_OOM;
        ck->item = p;
        ck->cap = cap;
    }
    if (!(it.name = str_dup(name ? name : ""))) return TJ_ERR_OOM;
    ck->item[ck->n++] = it;
    return 0;
}

int tj_checkpoint_add_module(tj_checkpoint *ck, const char *prefix, const tj_module *m) {
    if (!m) return tj_err(TJ_ERR_ARG, "checkpoint_add_module: the module is NULL");
    return add(ck, "checkpoint_add_module", (ck_item){.kind = CK_MODULE, .m = m}, prefix);
}

int tj_checkpoint_add_optimizer(tj_checkpoint *ck, const char *prefix, const tj_optimizer *o) {
    if (!o) return tj_err(TJ_ERR_ARG, "checkpoint_add_optimizer: the optimizer is NULL");
    return add(ck, "checkpoint_add_optimizer", (ck_item){.kind = CK_OPTIMIZER, .o = o}, prefix);
}

int tj_checkpoint_add_variable(tj_checkpoint *ck, const char *name, tj_tensor *var) {
    const char *op = "checkpoint_add_variable";
    tensor *v = tj_resolve(var, op, 3);
    if (!v) return var ? TJ_ERR_STALE : TJ_ERR_ARG;
    if (!tj_is_variable(v)) return tj_err(TJ_ERR_ARG, "%s: argument 3 is not a variable (create it with tj_variable)", op);
    return add(ck, op, (ck_item){.kind = CK_VARIABLE, .var = var}, name);
}

int tj_checkpoint_add_dataset(tj_checkpoint *ck, const char *name, tj_dataset *d) {
    if (!d) return tj_err(TJ_ERR_ARG, "checkpoint_add_dataset: the dataset is NULL");
    return add(ck, "checkpoint_add_dataset", (ck_item){.kind = CK_DATASET, .d = d}, name);
}

/* ---- what a checkpoint holds now: named variables -------------------------------------------- */

typedef struct named { char *name; tensor *t; } named;
typedef struct expected { named *v; int n, cap; } expected;

static void expected_free(expected *ex) {
    for (int i = 0; i < ex->n; i++) str_free(ex->v[i].name);
    if (ex->v) tj_mem_free(ex->v, sizeof *ex->v * (size_t)ex->cap);
    *ex = (expected){0};
}

/* Appends (name, t); takes name (tj_mem; NULL: the allocation failed). */
static int expected_push(expected *ex, char *name, tensor *t) {
    if (!name) return TJ_ERR_OOM;
    if (ex->n == ex->cap) {
        int cap = ex->cap ? 2 * ex->cap : 16;
        named *p = tj_mem_realloc(ex->v, sizeof *p * (size_t)ex->cap, sizeof *p * (size_t)cap);
        if (!p) { str_free(name); return TJ_ERR_OOM; }
        ex->v = p;
        ex->cap = cap;
    }
    ex->v[ex->n++] = (named){name, t};
    return 0;
}

/* The variable behind h into *out, or an error naming what it was meant to be. */
static int variable_of(tj_tensor *h, const char *op, const char *kind, const char *name, tensor **out) {
    char what[160];
    snprintf(what, sizeof what, "%s: %s \"%.80s\"", op, kind, name);
    *out = tj_resolve(h, what, 1);   /* "...: argument 1 is a ... freed variable" */
    if (!*out) return h ? TJ_ERR_STALE : TJ_ERR_ARG;
    if (!tj_is_variable(*out))
        return tj_err(TJ_ERR_ARG, "%s: %s \"%.80s\" holds a tensor that is not a variable", op, kind, name);
    return 0;
}

static int cmp_named(const void *a, const void *b) {
    return strcmp((*(const named *const *)a)->name, (*(const named *const *)b)->name);
}

/* Every variable of ck under its checkpoint name, in the order added (modules depth first). */
static int collect(const tj_checkpoint *ck, const char *op, expected *ex) {
    *ex = (expected){0};
    int rc = 0;
    for (int i = 0; i < ck->n && !rc; i++) {
        const ck_item *it = &ck->item[i];
        if (it->kind == CK_VARIABLE) {
            tensor *t;
            if (!(rc = variable_of(it->var, op, "variable", it->name, &t)))
                rc = expected_push(ex, str_dup(it->name), t);
            continue;
        }
        if (it->kind == CK_DATASET) continue;
        int cnt = it->kind == CK_MODULE ? tj_module_variables(it->m, 0, NULL) : tj_optimizer_variables(it->o, 0, NULL);
        if (cnt < 0) {
            rc = tj_err(TJ_ERR_ARG, "%s: cannot list the variables of %s \"%.80s\"", op,
                        it->kind == CK_MODULE ? "module" : "optimizer", it->name);
            break;
        }
        if (cnt == 0) continue;
        tj_tensor **vars = tj_mem_alloc(sizeof *vars * (size_t)cnt);
        if (!vars) { rc = TJ_ERR_OOM; break; }
        int got = it->kind == CK_MODULE ? tj_module_variables(it->m, cnt, vars) : tj_optimizer_variables(it->o, cnt, vars);
        for (int j = 0; j < got && j < cnt && !rc; j++) {
            tensor *t;
            if (!(rc = variable_of(vars[j], op, it->kind == CK_MODULE ? "module" : "optimizer", it->name, &t)))
                rc = expected_push(ex, join(it->name, tj_variable_name(vars[j])), t);
        }
        tj_mem_free(vars, sizeof *vars * (size_t)cnt);
    }
    if (!rc && ex->n > 1) {   /* two objects may not claim one name */
        const named **s = tj_mem_alloc(sizeof *s * (size_t)ex->n);
        if (!s) rc = TJ_ERR_OOM;
        else {
            for (int i = 0; i < ex->n; i++) s[i] = &ex->v[i];
            qsort(s, (size_t)ex->n, sizeof *s, cmp_named);
            for (int i = 1; i < ex->n && !rc; i++)
                if (!strcmp(s[i - 1]->name, s[i]->name))
                    rc = tj_err(TJ_ERR_ARG, "%s: two variables are both named \"%.80s\" in the checkpoint "
                                "(give the modules or optimizers different prefixes)", op, s[i]->name);
            tj_mem_free(s, sizeof *s * (size_t)ex->n);
        }
    }
    if (rc) expected_free(ex);
    return rc;
}

/* ---- save ------------------------------------------------------------------------------------- */

typedef struct meta { const char **key; char **value; int n, cap; char **owned_key; } meta;

static void meta_free(meta *m) {
    for (int i = 0; i < m->n; i++) { str_free(m->owned_key[i]); str_free(m->value[i]); }
    size_t c = (size_t)m->cap;
    if (m->key) tj_mem_free(m->key, sizeof *m->key * c);
    if (m->owned_key) tj_mem_free(m->owned_key, sizeof *m->owned_key * c);
    if (m->value) tj_mem_free(m->value, sizeof *m->value * c);
    *m = (meta){0};
}

/* Appends (prefix + key, value), copying both. */
static int meta_add(meta *m, const char *prefix, const char *key, const char *value) {
    if (m->n == m->cap) {   /* all three arrays at once, or none */
        size_t c = (size_t)m->cap, cap = c ? 2 * c : 8;
        const char **k = tj_mem_alloc(sizeof *k * cap);
        char **o = tj_mem_alloc(sizeof *o * cap), **v = tj_mem_alloc(sizeof *v * cap);
        if (!k || !o || !v) {
            if (k) tj_mem_free(k, sizeof *k * cap);
            if (o) tj_mem_free(o, sizeof *o * cap);
            if (v) tj_mem_free(v, sizeof *v * cap);
            return TJ_ERR_OOM;
        }
        if (c) {
            memcpy(k, m->key, sizeof *k * c);
            memcpy(o, m->owned_key, sizeof *o * c);
            memcpy(v, m->value, sizeof *v * c);
            tj_mem_free(m->key, sizeof *k * c);
            tj_mem_free(m->owned_key, sizeof *o * c);
            tj_mem_free(m->value, sizeof *v * c);
        }
        m->key = k;
        m->owned_key = o;
        m->value = v;
        m->cap = (int)cap;
    }
    char *kk = tj_mem_alloc(strlen(prefix) + strlen(key) + 1);
    char *vv = str_dup(value);
    if (!kk || !vv) {
        if (kk) tj_mem_free(kk, strlen(prefix) + strlen(key) + 1);
        str_free(vv);
        return TJ_ERR_OOM;
    }
    strcpy(kk, prefix);
    strcat(kk, key);
    m->key[m->n] = kk;
    m->owned_key[m->n] = kk;
    m->value[m->n++] = vv;
    return 0;
}

int tj_checkpoint_save(const tj_checkpoint *ck, const char *path) {
    const char *op = "checkpoint_save";
    int rc;
    if ((rc = not_tracing(op))) return rc;
    if (!ck || !path) return tj_err(TJ_ERR_ARG, "%s: the %s is NULL", op, ck ? "path" : "checkpoint");
    expected ex;
    if ((rc = collect(ck, op, &ex))) return rc;
    meta md = {0};
    const tj_thread *th = tj_thread_state();
    char num[2][48];
    snprintf(num[0], sizeof num[0], "%" PRIu64, th->rng_seed);
    snprintf(num[1], sizeof num[1], "%" PRIu64, th->rng_offset);
    if ((rc = meta_add(&md, "", KEY_VERSION, CK_VERSION)) || (rc = meta_add(&md, "", KEY_SEED, num[0])) ||
        (rc = meta_add(&md, "", KEY_OFFSET, num[1])))
        goto done;
    for (int i = 0; i < ck->n; i++) {
        const ck_item *it = &ck->item[i];
        if (it->kind != CK_DATASET) continue;
        int64_t st[2];
        if ((rc = tj_dataset_get_state(it->d, st))) {
            tj_err(rc, "%s: cannot get the state of dataset \"%.80s\"", op, it->name);
            goto done;
        }
        snprintf(num[0], sizeof num[0], "%" PRId64 " %" PRId64, st[0], st[1]);
        if ((rc = meta_add(&md, KEY_DATASET, it->name, num[0]))) goto done;
    }
    const char **names = NULL;
    tensor **ts = NULL;
    if (ex.n) {
        names = tj_mem_alloc(sizeof *names * (size_t)ex.n);
        ts = tj_mem_alloc(sizeof *ts * (size_t)ex.n);
    }
    if (ex.n && (!names || !ts)) rc = TJ_ERR_OOM;
    else {
        for (int i = 0; i < ex.n; i++) { names[i] = ex.v[i].name; ts[i] = ex.v[i].t; }
        rc = tj_st_write(path, op, ex.n, names, ts, md.n, md.key, (const char *const *)md.value);
    }
    if (names) tj_mem_free(names, sizeof *names * (size_t)ex.n);
    if (ts) tj_mem_free(ts, sizeof *ts * (size_t)ex.n);
done:
    meta_free(&md);
    expected_free(&ex);
    return rc;
}

/* ---- restore ---------------------------------------------------------------------------------- */

/* Mismatches, by kind (missing, unexpected, dtype or shape, datasets): all counted, the
 * first few of each kind spelled out. */
typedef struct mismatch { char text[360]; size_t len; int count; bool cut; } mismatch;
typedef struct group { char text[240]; size_t len; int n, shown; } group;

static void group_add(group *g, int limit, const char *sep, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void group_add(group *g, int limit, const char *sep, const char *fmt, ...) {
    g->n++;
    if (g->shown >= limit) return;
    char one[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(one, sizeof one, fmt, ap);
    va_end(ap);
    int k = snprintf(g->text + g->len, sizeof g->text - g->len, "%s%s", g->shown ? sep : "", one);
    if (k < 0 || (size_t)k >= sizeof g->text - g->len) { g->text[g->len] = '\0'; return; }   /* counted only */
    g->len += (size_t)k;
    g->shown++;
}

/* Appends "<prefix><group>[ and N more]" to mm. */
static void group_end(mismatch *mm, const group *g, const char *prefix) {
    if (!g->n) return;
    mm->count += g->n;
    char more[32] = "";
    if (g->n > g->shown) snprintf(more, sizeof more, " and %d more", g->n - g->shown);
    int k = snprintf(mm->text + mm->len, sizeof mm->text - mm->len, "%s%s%s%s", mm->len ? "; " : "",
                     prefix, g->text, more);
    if (k < 0 || (size_t)k >= sizeof mm->text - mm->len) { mm->text[mm->len] = '\0'; mm->cut = true; return; }
    mm->len += (size_t)k;
    mm->cut |= g->n > g->shown;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp((*(const tj_st_entry *const *)a)->name, (*(const tj_st_entry *const *)b)->name);
}

static const tj_st_entry *find_entry(const tj_st_entry **sorted, int n, const char *name) {
    tj_st_entry key = {.name = (char *)name};
    const tj_st_entry *k = &key, **hit = n ? bsearch(&k, sorted, (size_t)n, sizeof *sorted, cmp_entry_name) : NULL;
    return hit ? *hit : NULL;
}

static const ck_item *find_dataset(const tj_checkpoint *ck, const char *name) {
    for (int i = 0; i < ck->n; i++)
        if (ck->item[i].kind == CK_DATASET && !strcmp(ck->item[i].name, name)) return &ck->item[i];
    return NULL;
}

/* Matches f against ex and ck's datasets: match[i] is the entry of ex.v[i]; state[j] the new
 * state of the j-th dataset. Fills mm; *unexpected: the file has tensors we do not. */
static void match_file(const tj_checkpoint *ck, const expected *ex, const tj_st_file *f,
                       const tj_st_entry **sorted, bool *used, const tj_st_entry **match,
                       int64_t (*state)[2], mismatch *mm, bool *unexpected) {
    char a[TJ_SHAPE_STR_MAX], b[TJ_SHAPE_STR_MAX];
    group missing = {0}, extra = {0}, differ = {0}, data = {0};
    for (int i = 0; i < ex->n; i++) {
        const tj_st_entry *e = match[i] = find_entry(sorted, f->n, ex->v[i].name);
        if (e) used[e - f->e] = true;
        else group_add(&missing, 3, ", ", "\"%.80s\"", ex->v[i].name);
    }
    for (int i = 0; i < f->n; i++)
        if (!used[i]) group_add(&extra, 3, ", ", "\"%.80s\"", f->e[i].name);
    *unexpected = extra.n > 0;
    for (int i = 0; i < ex->n; i++) {
        const tensor *t = ex->v[i].t;
        const tj_st_entry *e = match[i];
        if (!e) continue;
        if (e->dtype != t->dtype)
            group_add(&differ, 2, "; ", "\"%.80s\" has dtype %s, expected %s", e->name, tj_dtype_name(e->dtype),
                      tj_dtype_name(t->dtype));
        else if (!tj_shape_equal(&e->shape, &t->shape))
            group_add(&differ, 2, "; ", "\"%.80s\" has shape %s, expected %s", e->name,
                      tj_shape_str(&e->shape, a, sizeof a), tj_shape_str(&t->shape, b, sizeof b));
    }
    const size_t kd = strlen(KEY_DATASET);
    int j = 0;
    for (int i = 0; i < ck->n; i++) {
        const ck_item *it = &ck->item[i];
        if (it->kind != CK_DATASET) continue;
        const char *v = NULL;
        for (int k = 0; k < f->nmeta && !v; k++)
            if (!strncmp(f->meta_key[k], KEY_DATASET, kd) && !strcmp(f->meta_key[k] + kd, it->name))
                v = f->meta_value[k];
        if (!v) group_add(&data, 3, "; ", "missing dataset \"%.80s\"", it->name);
        else if (!parse_state(v, state[j])) group_add(&data, 3, "; ", "dataset \"%.80s\" has a bad state \"%.40s\"", it->name, v);
        j++;
    }
    for (int k = 0; k < f->nmeta; k++)
        if (!strncmp(f->meta_key[k], KEY_DATASET, kd) && !find_dataset(ck, f->meta_key[k] + kd))
            group_add(&data, 3, "; ", "unexpected dataset \"%.80s\"", f->meta_key[k] + kd);
    group_end(mm, &missing, "missing ");
    group_end(mm, &extra, "unexpected ");
    group_end(mm, &differ, "");
    group_end(mm, &data, "");
}

int tj_checkpoint_restore(tj_checkpoint *ck, const char *path) {
    const char *op = "checkpoint_restore";
    int rc;
    if ((rc = not_tracing(op))) return rc;
    if (!ck || !path) return tj_err(TJ_ERR_ARG, "%s: the %s is NULL", op, ck ? "path" : "checkpoint");
    expected ex;
    if ((rc = collect(ck, op, &ex))) return rc;
    int nd = 0;
    for (int i = 0; i < ck->n; i++) nd += ck->item[i].kind == CK_DATASET;
    tj_st_file f = {0};
    const tj_st_entry **sorted = NULL, **match = NULL;
    bool *used = NULL;
    int64_t (*state)[2] = NULL, (*old)[2] = NULL;
    if (!tj_scope_try_begin()) { expected_free(&ex); return TJ_ERR_OOM; }   /* owns the file's tensors */
    if ((rc = tj_st_read(path, op, &f))) goto done;

    const char *v = tj_st_meta(&f, KEY_VERSION);
    uint64_t seed, offset;
    if (!v) {
        rc = tj_err(TJ_ERR_IO, "%s: %s is not a tapejit checkpoint (its metadata has no \"%s\")", op, path, KEY_VERSION);
        goto done;
    }
    if (strcmp(v, CK_VERSION)) {
        rc = tj_err(TJ_ERR_IO, "%s: %s has checkpoint version \"%.20s\"; this tapejit reads version %s", op, path, v, CK_VERSION);
        goto done;
    }
    if (!parse_u64_all(tj_st_meta(&f, KEY_SEED), &seed) || !parse_u64_all(tj_st_meta(&f, KEY_OFFSET), &offset)) {
        rc = tj_err(TJ_ERR_IO, "%s: %s: the RNG state (%s, %s) is missing or not decimal", op, path, KEY_SEED, KEY_OFFSET);
        goto done;
    }

    if ((f.n && (!(sorted = tj_mem_alloc(sizeof *sorted * (size_t)f.n)) || !(used = tj_mem_calloc(sizeof *used * (size_t)f.n)))) ||
        (ex.n && !(match = tj_mem_alloc(sizeof *match * (size_t)ex.n))) ||
        (nd && (!(state = tj_mem_alloc(sizeof *state * (size_t)nd)) || !(old = tj_mem_alloc(sizeof *old * (size_t)nd))))) {
        rc = TJ_ERR_OOM;
        goto done;
    }
    for (int i = 0; i < f.n; i++) sorted[i] = &f.e[i];
    if (f.n) qsort(sorted, (size_t)f.n, sizeof *sorted, cmp_entry_name);
    mismatch mm = {0};
    bool unexpected;
    match_file(ck, &ex, &f, sorted, used, match, state, &mm, &unexpected);
    if (mm.count) {
        char total[48] = "";
        if (mm.cut) snprintf(total, sizeof total, " (%d mismatches)", mm.count);
        bool lazy = false;
        for (int i = 0; i < ck->n; i++) lazy |= ck->item[i].kind == CK_MODULE || ck->item[i].kind == CK_OPTIMIZER;
        rc = tj_err(TJ_ERR_ARG, "%s: %s does not match: %s%s%s", op, path, mm.text, total,
                    unexpected && lazy ? " (is everything built? layers make their variables on their first "
                    "call, optimizers their slots in tj_optimizer_build)" : "");
        goto done;
    }

    /* everything matches: datasets first (they can refuse a state: then undo), values, RNG */
    int j = 0;
    for (int i = 0; i < ck->n && !rc; i++)
        if (ck->item[i].kind == CK_DATASET && (rc = tj_dataset_get_state(ck->item[i].d, old[j++])))
            tj_err(rc, "%s: cannot get the state of dataset \"%.80s\"", op, ck->item[i].name);
    j = 0;
    for (int i = 0; i < ck->n && !rc; i++) {
        const ck_item *it = &ck->item[i];
        if (it->kind != CK_DATASET) continue;
        if ((rc = tj_dataset_set_state(it->d, state[j]))) {   /* its error comes first, ours adds the file */
            tj_err(rc, "%s: %s: dataset \"%.80s\" refuses the state (%" PRId64 ", %" PRId64 ")",
                   op, path, it->name, state[j][0], state[j][1]);
            for (int k = 0, jj = 0; k < i; k++)
                if (ck->item[k].kind == CK_DATASET) tj_dataset_set_state(ck->item[k].d, old[jj++]);
        }
        j++;
    }
    for (int i = 0; i < ex.n && !rc; i++)
        if (tj_variable_write(ex.v[i].t, match[i]->t->data))   /* OOM only: copy on write */
            rc = tj_err(TJ_ERR_OOM, "%s: out of memory writing \"%.80s\": the restore is incomplete", op, ex.v[i].name);
    if (!rc) tj_rng_set_state(seed, offset);
done:
    tj_scope_end();
    if (sorted) tj_mem_free(sorted, sizeof *sorted * (size_t)f.n);
    if (used) tj_mem_free(used, sizeof *used * (size_t)f.n);
    if (match) tj_mem_free(match, sizeof *match * (size_t)ex.n);
    if (state) tj_mem_free(state, sizeof *state * (size_t)nd);
    if (old) tj_mem_free(old, sizeof *old * (size_t)nd);
    tj_st_file_free(&f);
    expected_free(&ex);
    return rc;
}

/* ---- the manager: ckpt-<step>.safetensors in a directory ------------------------------------- */

struct tj_checkpoint_manager {
    tj_checkpoint *ck;
    char          *dir;           /* without trailing slashes */
    size_t         dir_size;      /* its block */
    int            keep;
    char          *latest;        /* what tj_checkpoint_manager_latest returned last */
    size_t         latest_size;
};

/* mkdir -p: every missing component of dir (a writable copy) is made. */
static int mkdir_p(const char *op, char *dir) {
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0777) && errno != EEXIST) {
            int rc = sys_err(op, "create directory", dir, errno);
            *p = c;
            return rc;
        }
        *p = c;
        if (!c) break;
    }
    struct stat st;
    if (stat(dir, &st)) return sys_err(op, "use directory", dir, errno);
    if (!S_ISDIR(st.st_mode)) return tj_err(TJ_ERR_IO, "%s: %s is not a directory", op, dir);
    return 0;
}

tj_checkpoint_manager *tj_checkpoint_manager_new(tj_checkpoint *ck, const char *dir, int max_to_keep) {
    const char *op = "checkpoint_manager_new";
    if (!ck || !dir || !*dir) {
        tj_err(TJ_ERR_ARG, "%s: the %s", op, !ck ? "checkpoint is NULL" : dir ? "directory is empty" : "directory is NULL");
        return NULL;
    }
    if (max_to_keep < 1) {
        tj_err(TJ_ERR_ARG, "%s: max_to_keep is %d; it must be at least 1", op, max_to_keep);
        return NULL;
    }
    tj_checkpoint_manager *mg = tj_mem_calloc(sizeof *mg);
    if (!mg) return NULL;
    mg->dir_size = strlen(dir) + 1;
    if (!(mg->dir = str_dup(dir))) { tj_mem_free(mg, sizeof *mg); return NULL; }
    for (size_t n = strlen(mg->dir); n > 1 && mg->dir[n - 1] == '/'; n--) mg->dir[n - 1] = '\0';
    if (mkdir_p(op, mg->dir)) {
        tj_checkpoint_manager_free(mg);
        return NULL;
    }
    mg->ck = ck;
    mg->keep = max_to_keep;
    return mg;
}

void tj_checkpoint_manager_free(tj_checkpoint_manager *mg) {
    if (!mg) return;
    tj_mem_free(mg->dir, mg->dir_size);
    if (mg->latest) tj_mem_free(mg->latest, mg->latest_size);
    tj_mem_free(mg, sizeof *mg);
}

/* "ckpt-<step>.safetensors" with step in canonical decimal (no sign, no leading zeros). */
static bool ckpt_step(const char *s, int64_t *step) {
    const char *end;
    uint64_t u;
    if (strncmp(s, "ckpt-", 5) || !parse_u64(s + 5, &end, &u) || u > (uint64_t)INT64_MAX) return false;
    if (s[5] == '0' && end - (s + 5) > 1) return false;
    if (strcmp(end, ".safetensors")) return false;
    *step = (int64_t)u;
    return true;
}

/* dir/ckpt-<step>.safetensors into a new tj_mem block of *size bytes. */
static char *ckpt_path(const tj_checkpoint_manager *mg, int64_t step, size_t *size) {
    *size = strlen(mg->dir) + 48;
    char *p = tj_mem_alloc(*size);
    if (p) snprintf(p, *size, "%s/ckpt-%" PRId64 ".safetensors", mg->dir, step);
    return p;
}

static int cmp_step_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x > y ? -1 : x < y;
}

/* The steps of the checkpoints in mg's directory, newest first (tj_mem, *cap entries). */
static int scan(const tj_checkpoint_manager *mg, const char *op, int64_t **steps, int *n, int *cap) {
    *steps = NULL;
    *n = *cap = 0;
    DIR *d = opendir(mg->dir);
    if (!d) return sys_err(op, "open directory", mg->dir, errno);
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) rc = sys_err(op, "read directory", mg->dir, errno);
            break;
        }
        int64_t step;
        if (!ckpt_step(de->d_name, &step)) continue;
        if (*n == *cap) {
            int c = *cap ? 2 * *cap : 16;
            int64_t *p = tj_mem_realloc(*steps, sizeof *p * (size_t)*cap, sizeof *p * (size_t)c);
            if (!p) { rc = TJ_ERR_OOM; break; }
            *steps = p;
            *cap = c;
        }
        (*steps)[(*n)++] = step;
    }
    closedir(d);
    if (rc) {
        if (*steps) tj_mem_free(*steps, sizeof **steps * (size_t)*cap);
        *steps = NULL;
        *n = *cap = 0;
        return rc;
    }
    if (*n > 1) qsort(*steps, (size_t)*n, sizeof **steps, cmp_step_desc);
    return 0;
}

int tj_checkpoint_manager_save(tj_checkpoint_manager *mg, int64_t step) {
    const char *op = "checkpoint_manager_save";
    if (!mg) return tj_err(TJ_ERR_ARG, "%s: the manager is NULL", op);
    if (step < 0) return tj_err(TJ_ERR_ARG, "%s: step is %" PRId64 "; it must be >= 0", op, step);
    size_t size;
    char *path = ckpt_path(mg, step, &size);
    if (!path) return TJ_ERR_OOM;
    int rc = tj_checkpoint_save(mg->ck, path);
    tj_mem_free(path, size);
    if (rc) return rc;
    /* keep the newest max_to_keep by step; older ones go (this one too, if it is older) */
    int64_t *steps;
    int n, cap;
    if ((rc = scan(mg, op, &steps, &n, &cap))) return rc;
    for (int i = mg->keep; i < n && !rc; i++) {
        if (!(path = ckpt_path(mg, steps[i], &size))) { rc = TJ_ERR_OOM; break; }
        if (unlink(path) && errno != ENOENT) rc = sys_err(op, "delete old checkpoint", path, errno);
        tj_mem_free(path, size);
    }
    if (steps) tj_mem_free(steps, sizeof *steps * (size_t)cap);
    return rc;
}

/* The newest checkpoint's path in mg->latest (NULL: none) or an error. */
static int find_latest(tj_checkpoint_manager *mg, const char *op, const char **out) {
    *out = NULL;
    int64_t *steps;
    int n, cap, rc;
    if ((rc = scan(mg, op, &steps, &n, &cap))) return rc;
    if (n > 0) {
        size_t size;
        char *path = ckpt_path(mg, steps[0], &size);
        if (!path) rc = TJ_ERR_OOM;
        else {
            if (mg->latest) tj_mem_free(mg->latest, mg->latest_size);
            mg->latest = path;
            mg->latest_size = size;
            *out = path;
        }
    }
    if (steps) tj_mem_free(steps, sizeof *steps * (size_t)cap);
    return rc;
}

const char *tj_checkpoint_manager_latest(tj_checkpoint_manager *mg) {
    const char *p;
    if (!mg) { tj_err(TJ_ERR_ARG, "checkpoint_manager_latest: the manager is NULL"); return NULL; }
    find_latest(mg, "checkpoint_manager_latest", &p);
    return p;
}

int tj_checkpoint_manager_restore_latest(tj_checkpoint_manager *mg) {
    const char *op = "checkpoint_manager_restore_latest", *p;
    if (!mg) return tj_err(TJ_ERR_ARG, "%s: the manager is NULL", op);
    int rc = find_latest(mg, op, &p);
    if (rc || !p) return rc;   /* no checkpoint yet: nothing to do, as a first run expects */
    return tj_checkpoint_restore(mg->ck, p);
}
