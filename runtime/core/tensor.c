/* tensor.c: tensor headers and storage, the handle table, scopes, variables, accessors.
 * Two lifetimes: a variable lives until tj_variable_free; every other tensor belongs to
 * the innermost scope and its handle dies with it. The header itself is refcounted, so
 * a tape record can keep a value whose handle is gone. Handle slots are never reused
 * with the same generation, so a stale handle is always detected. */
#include "core.h"
#include "profile.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* ---- handle table ------------------------------------------------------------------ */
/* Slots live in fixed chunks that never move or get freed, so a lookup needs no lock. */
#define CHUNK_BITS 12
#define CHUNK (1u << CHUNK_BITS)
#define MAX_CHUNKS (1u << 16)

typedef struct slot { _Atomic uint32_t gen; uint32_t next_free; tensor *t; } slot;

static _Atomic(slot *) chunks[MAX_CHUNKS];
static _Atomic uint32_t nslots;          /* slots handed out so far */
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;
/* Released slots go to the releasing thread's own list: no lock on the hot path. */
static _Thread_local uint32_t free_head = UINT32_MAX;

static slot *slot_at(uint32_t i) { return &atomic_load_explicit(&chunks[i >> CHUNK_BITS], memory_order_acquire)[i & (CHUNK - 1)]; }

static int fresh_slot(uint32_t *out) {
    uint32_t i = atomic_fetch_add(&nslots, 1);
    if (i >> CHUNK_BITS >= MAX_CHUNKS) {
        atomic_fetch_sub(&nslots, 1);
        return tj_err(TJ_ERR_OOM, "out of memory: more than %u live tensors", MAX_CHUNKS * CHUNK);
    }
    if (!atomic_load_explicit(&chunks[i >> CHUNK_BITS], memory_order_acquire)) {
        pthread_mutex_lock(&grow_lock);
        if (!atomic_load(&chunks[i >> CHUNK_BITS])) {
            slot *c = tj_mem_calloc(sizeof(slot) * CHUNK);
            if (!c) {
                pthread_mutex_unlock(&grow_lock);
                return TJ_ERR_OOM;   /* slot i is lost; its chunk is retried by the next one */
            }
            for (uint32_t k = 0; k < CHUNK; k++) c[k].gen = 1;
            atomic_store_explicit(&chunks[i >> CHUNK_BITS], c, memory_order_release);
        }
        pthread_mutex_unlock(&grow_lock);
    }
    *out = i;
    return 0;
}

static int handle_new(tensor *t) {
    uint32_t i = free_head;
    if (i != UINT32_MAX) free_head = slot_at(i)->next_free;
    else if (fresh_slot(&i)) return TJ_ERR_OOM;
    slot *s = slot_at(i);
    s->t = t;
    t->handle = (uint64_t)atomic_load_explicit(&s->gen, memory_order_relaxed) << 32 | i;
    return 0;
}

/* The user's lifetime of t ends: its handle goes stale for good. */
static void handle_release(tensor *t) {
    if (!t->handle) return;
    uint32_t i = (uint32_t)t->handle;
    slot *s = slot_at(i);
    s->t = NULL;
    uint32_t g = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&s->gen, g, memory_order_release);
    if (g != 0) { s->next_free = free_head; free_head = i; }   /* a wrapped slot retires */
    t->handle = 0;
}

/* The tensor behind h: 0, or TJ_ERR_ARG (NULL / not a handle) or TJ_ERR_STALE. */
static int lookup(const tj_tensor *h, tensor **out) {
    *out = NULL;
    if (!h) return TJ_ERR_ARG;
    uint64_t v = (uint64_t)(uintptr_t)h;
    uint32_t i = (uint32_t)v, gen = (uint32_t)(v >> 32);
    if (gen == 0 || i >= atomic_load(&nslots) ||
        !atomic_load_explicit(&chunks[i >> CHUNK_BITS], memory_order_acquire))
        return TJ_ERR_ARG;
    slot *s = slot_at(i);
    uint32_t now = atomic_load_explicit(&s->gen, memory_order_acquire);
    if (now == gen && s->t) { *out = s->t; return 0; }
    return now > gen ? TJ_ERR_STALE : TJ_ERR_ARG;
}

static int resolve_status(const tj_tensor *h, const char *op, int argi, tensor **out) {
    int rc = lookup(h, out);
    if (rc == TJ_ERR_STALE)
        tj_err(TJ_ERR_STALE, "%s: argument %d is a tensor whose scope has ended (or a freed variable); "
               "keep it with tj_keep to use it later", op, argi);
    else if (rc)
        tj_err(TJ_ERR_ARG, h ? "%s: argument %d is not a tensor handle" : "%s: argument %d is NULL", op, argi);
    return rc;
}

tensor *tj_resolve(const tj_tensor *h, const char *op, int argi) {
    tensor *t;
    resolve_status(h, op, argi, &t);
    return t;
}

/* ---- per-thread state ---------------------------------------------------------------- */

static _Thread_local tj_thread thread_state;

tj_thread *tj_thread_state(void) { return &thread_state; }

static _Atomic uint64_t next_id = 1;
/* Threads take ids in ranges, so that making a tensor needs no atomic operation. */
#define ID_RANGE 4096
static _Thread_local uint64_t id_next, id_end;

uint64_t tj_next_id(void) {
    if (id_next == id_end) {
        id_next = atomic_fetch_add_explicit(&next_id, ID_RANGE, memory_order_relaxed);
        id_end = id_next + ID_RANGE;
    }
    return id_next++;
}

/* ---- scopes ---------------------------------------------------------------------------- */

static void scope_release(scope *s);

/* A thread that ends frees its scopes, root included (pthread key destructor). */
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *arg) {
    tj_thread *th = arg;
    while (th->nscopes > 0) scope_release(&th->scopes[--th->nscopes]);
    tj_mem_free(th->scopes, sizeof(scope) * (size_t)th->capscopes);
    th->scopes = NULL;
    th->capscopes = 0;
}

static void thread_key_create(void) { pthread_key_create(&thread_key, thread_exit); }

static int scope_push(tj_thread *th) {
    if (th->nscopes == th->capscopes) {
        int cap = th->capscopes ? 2 * th->capscopes : 8;
        scope *s = tj_mem_realloc(th->scopes, sizeof(scope) * th->capscopes, sizeof(scope) * cap);
        if (!s) return TJ_ERR_OOM;
        if (!th->scopes) {
            pthread_once(&thread_key_once, thread_key_create);
            pthread_setspecific(thread_key, th);
        }
        th->scopes = s;
        th->capscopes = cap;
    }
    th->scopes[th->nscopes++] = (scope){0};
    return 0;
}

/* s's tensors: in the scope itself until they outgrow it (then cap > 0). */
static tensor **scope_items(scope *s) { return s->cap ? s->items : s->inl; }

static int scope_add(tensor *t) {
    tj_thread *th = &thread_state;
    if (th->nscopes == 0 && scope_push(th)) return TJ_ERR_OOM;
    scope *s = &th->scopes[th->nscopes - 1];
    if (s->n == (s->cap ? s->cap : TJ_SCOPE_INLINE)) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        tensor **items = tj_mem_realloc(s->items, sizeof(tensor *) * s->cap, sizeof(tensor *) * cap);
        if (!items) return TJ_ERR_OOM;
        if (!s->cap) memcpy(items, s->inl, sizeof s->inl);
        s->items = items;
        s->cap = cap;
    }
    t->scope = th->nscopes - 1;
    t->scope_pos = s->n;
    scope_items(s)[s->n++] = t;
    return 0;
}

void tj_scope_begin(void) {
    tj_thread *th = &thread_state;
    if (th->nscopes == 0 && scope_push(th)) return;   /* the root scope */
    if (scope_push(th)) th->scopes[th->nscopes - 1].phantoms++;
}

static void scope_release(scope *s) {
    tensor **items = scope_items(s);
    for (int64_t i = 0; i < s->n; i++) {
        tensor *t = items[i];
        if (!t) continue;           /* kept into the enclosing scope */
        t->scope = -1;
        handle_release(t);
        tj_tensor_unref(t);
    }
    tj_mem_free(s->items, sizeof(tensor *) * s->cap);
    *s = (scope){0};
}

int tj_scope_end(void) {
    tj_thread *th = &thread_state;
    if (th->nscopes > 0 && th->scopes[th->nscopes - 1].phantoms) {
        th->scopes[th->nscopes - 1].phantoms--;
        return 0;
    }
    if (th->nscopes <= 1)
        return tj_err(TJ_ERR_STATE, "scope_end: no scope is open (tj_scope_begin was not called)");
    scope_release(&th->scopes[--th->nscopes]);
    return 0;
}



tj_tensor *tj_keep(tj_tensor *h) {
    tensor *t = tj_resolve(h, "keep", 1);
    if (!t) return NULL;
    if (tj_is_variable(t)) return h;                 /* persistent already */
    tj_thread *th = &thread_state;
    if (t->scope != th->nscopes - 1 || t->scope == 0) return h;  /* already outer */
    int32_t from = t->scope;
    scope *s = &th->scopes[from];
    scope_items(s)[t->scope_pos] = NULL;
    th->nscopes--;                  /* add to the enclosing scope */
    int rc = scope_add(t);
    th->nscopes++;
    if (rc) {                       /* could not move: it stays where it was */
        t->scope = from;
        scope_items(s)[t->scope_pos] = t;
        return NULL;
    }
    return h;
}

/* t gets a new handle and joins the innermost scope (the caller supplies its reference). */
static int scope_join(tensor *t) {
    if (handle_new(t)) return TJ_ERR_OOM;
    if (scope_add(t)) { handle_release(t); return TJ_ERR_OOM; }
    return 0;
}

bool tj_scope_try_begin(void) {
    tj_thread *th = tj_thread_state();
    int before = th->nscopes;
    tj_scope_begin();   /* with no scope yet, it opens the root scope too */
    if (th->nscopes == (before ? before + 1 : 2)) return true;
    /* the push failed (OOM): tj_scope_begin counted a phantom scope; take it back */
    if (th->nscopes > 0 && th->scopes[th->nscopes - 1].phantoms > 0) tj_scope_end();
    return false;
}

tj_tensor *tj_scope_adopt(tensor *t) {
    if (t->handle) return tj_handle(t);
    if (scope_join(t)) return NULL;
    t->refs++;
    return tj_handle(t);
}

/* ---- tensors ---------------------------------------------------------------------------- */

size_t tj_dtype_size(tj_dtype dt) { return dt == TJ_F64 ? 8 : 4; }
bool   tj_dtype_valid(tj_dtype dt) { return dt == TJ_F32 || dt == TJ_F64 || dt == TJ_I32; }
bool   tj_dtype_is_float(tj_dtype dt) { return dt == TJ_F32 || dt == TJ_F64; }
bool   tj_is_variable(const tensor *t) { return t->flags & TJ_T_VARIABLE; }

const char *tj_dtype_name(tj_dtype dt) {
    switch (dt) {
    case TJ_F32: return "float32";
    case TJ_F64: return "float64";
    case TJ_I32: return "int32";
    }
    return "invalid dtype";
}

#define STORAGE_HDR ((sizeof(storage) + 15) & ~(size_t)15)
#define EMBED_HDR ((sizeof(tensor) + 15) & ~(size_t)15)

/* A block of storage header, `extra` bytes (an embedded tensor header) and data. */
static storage *storage_new(size_t extra, size_t bytes) {
    size_t block = STORAGE_HDR + extra + bytes;
    storage *st = tj_mem_alloc(block);
    if (!st) return NULL;
    st->refs = 0;
    st->block = block;
    return st;
}

static void storage_unref(storage *st) {
    if (--st->refs == 0) tj_mem_free(st, st->block);
}

/* Sets up header t (zeroed memory) over st's data at data; registers handle and scope. */
static tensor *header_init(tensor *t, tj_dtype dt, const tj_shape *shape, int64_t numel, storage *st,
                           void *data) {
    t->id = tj_next_id();
    t->dtype = dt;
    t->shape = *shape;
    t->numel = numel;
    t->refs = 1;
    t->scope = -1;
    t->st = st;
    t->data = data;
    if (scope_join(t)) return NULL;
    st->refs++;
    return t;
}

/* One allocation: the header lives inside its storage block until both are unused. */
tensor *tj_tensor_new(tj_dtype dt, const tj_shape *shape) {
    if (tj_shape_check(shape, "tensor")) return NULL;   /* op results can outgrow their inputs */
    int64_t numel = tj_shape_numel(shape);
    storage *st = storage_new(EMBED_HDR, (size_t)numel * tj_dtype_size(dt));
    if (!st) return NULL;
    tensor *t = (tensor *)((char *)st + STORAGE_HDR);
    memset(t, 0, sizeof *t);
    t->flags = TJ_T_EMBEDDED;
    if (!header_init(t, dt, shape, numel, st, (char *)st + STORAGE_HDR + EMBED_HDR)) {
        tj_mem_free(st, st->block);
        return NULL;
    }
    if (tj_profile_on()) tj_profile_op_begin(t);   /* an op's start: its kernel runs next */
    return t;
}

/* A header of its own over st's data (views; variables, whose storage tj_assign swaps). */
static tensor *header_new(tj_dtype dt, const tj_shape *shape, storage *st, void *data) {
    tensor *t = tj_mem_calloc(sizeof *t);
    if (!t) return NULL;
    if (!header_init(t, dt, shape, tj_shape_numel(shape), st, data)) {
        tj_mem_free(t, sizeof *t);
        return NULL;
    }
    return t;
}

tensor *tj_tensor_view(tensor *src, const tj_shape *shape) {
    return header_new(src->dtype, shape, src->st, src->data);
}

tensor *tj_variable_snapshot(tensor *v) {
    if (v->snapshot) return v->snapshot;
    tensor *s = tj_mem_calloc(sizeof *s);   /* no handle, no scope: only tapes see it */
    if (!s) return NULL;
    s->id = tj_next_id();
    s->dtype = v->dtype;
    s->shape = v->shape;
    s->numel = v->numel;
    s->st = v->st;
    s->data = v->data;
    s->refs = 1;                            /* v's reference */
    s->scope = -1;
    s->var_of = v;
    v->st->refs++;
    v->refs++;
    v->snapshot = s;
    return s;
}

static void drop_snapshot(tensor *v) {
    tensor *s = v->snapshot;
    v->snapshot = NULL;
    if (s) tj_tensor_unref(s);
}

void tj_tensor_ref(tensor *t) { t->refs++; }

void tj_tensor_unref(tensor *t) {
    if (--t->refs > 0) return;
    handle_release(t);
    if (t->name) tj_mem_free(t->name, strlen(t->name) + 1);
    if (t->var_of) tj_tensor_unref(t->var_of);
    if (t->flags & TJ_T_EMBEDDED) {
        storage_unref(t->st);        /* frees t too once no view uses the block */
    } else {
        storage_unref(t->st);
        tj_mem_free(t, sizeof *t);
    }
}

/* ---- variables ------------------------------------------------------------------------ */

tj_tensor *tj_variable(tj_tensor *init_h, const char *name) {
    tensor *init = tj_resolve(init_h, "variable", 1);
    if (!init) return NULL;
    size_t bytes = (size_t)init->numel * tj_dtype_size(init->dtype);
    storage *st = storage_new(0, bytes);
    if (!st) return NULL;
    tensor *v = header_new(init->dtype, &init->shape, st, (char *)st + STORAGE_HDR);
    if (!v) { tj_mem_free(st, st->block); return NULL; }
    memcpy(v->data, init->data, (size_t)init->numel * tj_dtype_size(init->dtype));
    /* persistent: out of its scope, owned by itself */
    scope_items(&thread_state.scopes[v->scope])[v->scope_pos] = NULL;
    v->scope = -1;
    v->flags |= TJ_T_VARIABLE;
    if (name) {
        size_t n = strlen(name) + 1;
        v->name = tj_mem_alloc(n);
        if (!v->name) { tj_tensor_unref(v); return NULL; }
        memcpy(v->name, name, n);
    }
    return tj_handle(v);
}

static int resolve_variable(const tj_tensor *h, const char *op, tensor **v) {
    int rc = resolve_status(h, op, 1, v);
    if (rc == 0 && !tj_is_variable(*v)) {
        *v = NULL;
        return tj_err(TJ_ERR_ARG, "%s: argument 1 is not a variable (create it with tj_variable)", op);
    }
    return rc;
}

int tj_assign(tj_tensor *var_h, tj_tensor *value_h) {
    tensor *v, *x;
    int rc = resolve_variable(var_h, "assign", &v);
    if (rc || (rc = resolve_status(value_h, "assign", 2, &x))) return rc;
    char sv[TJ_SHAPE_STR_MAX], sx[TJ_SHAPE_STR_MAX];
    if (v->dtype != x->dtype)
        return tj_err(TJ_ERR_DTYPE, "assign: variable '%s' is %s, value is %s",
                      v->name ? v->name : "", tj_dtype_name(v->dtype), tj_dtype_name(x->dtype));
    if (!tj_shape_equal(&v->shape, &x->shape))
        return tj_err(TJ_ERR_SHAPE, "assign: variable '%s' has shape %s, value has shape %s",
                      v->name ? v->name : "", tj_shape_str(&v->shape, sv, sizeof sv),
                      tj_shape_str(&x->shape, sx, sizeof sx));
    if (v->st != x->st && (rc = tj_variable_write(v, x->data))) return rc;
    return thread_state.trace ? thread_state.trace->assign(thread_state.tracer, v, x) : 0;
}

int tj_variable_write_prepare(tensor *v, bool keep) {
    drop_snapshot(v);               /* records of earlier reads keep the old storage */
    size_t bytes = (size_t)v->numel * tj_dtype_size(v->dtype);
    if (v->st->refs > 1) {          /* a view still shows the old value: copy on write */
        storage *st = storage_new(0, bytes);
        if (!st) return TJ_ERR_OOM;
        if (keep) memcpy((char *)st + STORAGE_HDR, v->data, bytes);
        storage_unref(v->st);
        v->st = st;
        st->refs = 1;
        v->data = (char *)st + STORAGE_HDR;
    }
    return 0;
}

int tj_variable_write(tensor *v, const void *data) {
    int rc = tj_variable_write_prepare(v, false);
    if (!rc) memmove(v->data, data, (size_t)v->numel * tj_dtype_size(v->dtype));
    return rc;
}

void tj_variable_free(tj_tensor *h) {
    tensor *v;
    if (!h || resolve_variable(h, "variable_free", &v)) return;
    drop_snapshot(v);
    handle_release(v);
    tj_tensor_unref(v);
}

/* Renames variable v (runtime/nn gives module variables their path from the root). */
int tj_variable_set_name(tensor *v, const char *name) {
    assert(tj_is_variable(v) && name);
    size_t n = strlen(name) + 1;
    char *s = tj_mem_alloc(n);
    if (!s) return TJ_ERR_OOM;
    memcpy(s, name, n);
    if (v->name) tj_mem_free(v->name, strlen(v->name) + 1);
    v->name = s;
    return 0;
}

const char *tj_variable_name(const tj_tensor *h) {
    tensor *v = tj_resolve(h, "variable_name", 1);
    return v && v->name ? v->name : "";
}

/* ---- accessors ---------------------------------------------------------------------------- */

tj_dtype tj_tensor_dtype(const tj_tensor *h) {
    tensor *t = tj_resolve(h, "tensor_dtype", 1);
    return t ? t->dtype : TJ_F32;
}

tj_shape tj_tensor_shape(const tj_tensor *h) {
    tensor *t = tj_resolve(h, "tensor_shape", 1);
    if (!t) return (tj_shape){.ndim = -1};
    return t->shape;
}

int64_t tj_tensor_numel(const tj_tensor *h) {
    tensor *t = tj_resolve(h, "tensor_numel", 1);
    return t ? t->numel : -1;
}

const void *tj_tensor_data(const tj_tensor *h) {
    tensor *t = tj_resolve(h, "tensor_data", 1);
    if (t && thread_state.trace) thread_state.trace->read(thread_state.tracer, t, "tensor_data");
    return t ? t->data : NULL;
}

double tj_item(const tj_tensor *h) {
    tensor *t = tj_resolve(h, "item", 1);
    if (t && thread_state.trace) thread_state.trace->read(thread_state.tracer, t, "item");
    if (!t) return __builtin_nan("");
    if (t->numel != 1) {
        char s[TJ_SHAPE_STR_MAX];
        tj_err(TJ_ERR_SHAPE, "item: tensor has shape %s (%lld elements), expected one element",
               tj_shape_str(&t->shape, s, sizeof s), (long long)t->numel);
        return __builtin_nan("");
    }
    switch (t->dtype) {
    case TJ_F32: return *(const float *)t->data;
    case TJ_F64: return *(const double *)t->data;
    case TJ_I32: return *(const int32_t *)t->data;
    }
    return __builtin_nan("");
}
