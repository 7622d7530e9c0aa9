/* dataset.c: elements, nodes, the table source (tj_dataset_from_tensors; csv.c reads into
 * it) and the iterator of the outermost node: next, reset, state, free.
 * The position is (epoch, elements returned in it). Restoring one begins that epoch and
 * skips, which gives the same elements because the order depends only on seeds and keys.
 * A failed call changes nothing the user can see: an element that could not become
 * tensors is kept and returned by the next call, a failed set_state puts back the old
 * position. */
#include "data/data.h"

#include <string.h>

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

/* ---- elements ------------------------------------------------------------------------------ */

elem *tj_elem_new(int arity, const comp *proto, const char *op) {
    size_t head = ALIGN16(sizeof(elem) + sizeof(comp) * (size_t)arity), off = head;
    for (int i = 0; i < arity; i++) {
        if (tj_shape_check(&proto[i].shape, op)) return NULL;
        size_t bytes = (size_t)tj_shape_numel(&proto[i].shape) * tj_dtype_size(proto[i].dt);  /* < 2^62 */
        if (bytes > SIZE_MAX / 2 - off) {
            tj_err(TJ_ERR_OOM, "%s: out of memory: an element of more than %zu bytes", op, off);
            return NULL;
        }
        off = ALIGN16(off + bytes);
    }
    elem *e = tj_mem_alloc(off);
    if (!e) return NULL;
    e->bytes = off;
    e->arity = arity;
    off = head;
    for (int i = 0; i < arity; i++) {
        int64_t numel = tj_shape_numel(&proto[i].shape);
        e->c[i] = (comp){proto[i].dt, proto[i].shape, numel, off};
        off = ALIGN16(off + (size_t)numel * tj_dtype_size(proto[i].dt));
    }
    return e;
}

void tj_elem_free(elem *e) {
    if (e) tj_mem_free(e, e->bytes);
}

/* ---- nodes --------------------------------------------------------------------------------- */

tj_dataset *tj_data_node(const node_ops *ops, int arity) {
    tj_dataset *d = tj_mem_calloc(ops->size);
    if (!d) return NULL;
    d->spec = tj_mem_calloc(sizeof(spec) * (size_t)arity);
    if (!d->spec) {
        tj_mem_free(d, ops->size);
        return NULL;
    }
    d->ops = ops;
    d->arity = arity;
    return d;
}

static void node_free(tj_dataset *d) {
    while (d) {
        tj_dataset *child = d->child;
        d->ops->release(d);
        tj_elem_free(d->pending);
        tj_mem_free(d->spec, sizeof(spec) * (size_t)d->arity);
        tj_mem_free(d, d->ops->size);
        d = child;
    }
}

tj_dataset *tj_data_wrap(tj_dataset *child, const node_ops *ops) {
    if (!child) {
        tj_err(TJ_ERR_ARG, "%s: the dataset is NULL", ops->name);
        return NULL;
    }
    if (child->wrapped) {
        tj_err(TJ_ERR_STATE, "%s: the dataset is already part of a pipeline (a pipeline owns the "
               "dataset it wraps)", ops->name);
        return NULL;
    }
    tj_dataset *d = tj_data_node(ops, child->arity);
    if (!d) {
        node_free(child);
        return NULL;
    }
    memcpy(d->spec, child->spec, sizeof(spec) * (size_t)child->arity);
    tj_elem_free(child->pending);
    child->pending = NULL;
    child->wrapped = true;
    d->child = child;
    return d;
}

int tj_data_begin(tj_dataset *d, uint64_t key) { return d->ops->begin(d, key); }
int tj_data_next(tj_dataset *d, elem **out) { return d->ops->next(d, out); }

int64_t tj_data_skip(tj_dataset *d, int64_t n) {
    if (d->ops->skip) return d->ops->skip(d, n);
    int64_t k = 0;
    for (; k < n; k++) {
        elem *e;
        int r = d->ops->next(d, &e);
        if (r < 0) return -1;
        if (r == 0) break;
        tj_elem_free(e);
    }
    return k;
}

/* ---- the table source ------------------------------------------------------------------------ */

typedef struct table {
    tj_dataset base;
    int64_t    rows, at;
    char      *blob;
    size_t     blob_bytes;
    comp      *proto;                 /* (arity) dtype and shape of each component */
    struct col { size_t off, stride, bytes; } *col;   /* (arity) where each component is */
} table;

static int table_begin(tj_dataset *d, uint64_t key) {
    (void)key;
    ((table *)d)->at = 0;
    return 0;
}

static int table_next(tj_dataset *d, elem **out) {
    table *t = (table *)d;
    if (t->at >= t->rows) return 0;
    elem *e = tj_elem_new(d->arity, t->proto, "dataset_next");
    if (!e) return -1;
    for (int i = 0; i < d->arity; i++) {
        const struct col *c = &t->col[i];
        if (c->bytes) memcpy(tj_elem_data(e, i), t->blob + c->off + (size_t)t->at * c->stride, c->bytes);
    }
    t->at++;
    *out = e;
    return 1;
}

static int64_t table_skip(tj_dataset *d, int64_t n) {
    table *t = (table *)d;
    int64_t k = t->rows - t->at < n ? t->rows - t->at : n;
    t->at += k;
    return k;
}

static void table_release(tj_dataset *d) {
    table *t = (table *)d;
    tj_mem_free(t->blob, t->blob_bytes);
    tj_mem_free(t->proto, sizeof(comp) * (size_t)d->arity);
    tj_mem_free(t->col, sizeof(struct col) * (size_t)d->arity);
}

static const node_ops table_ops = {"dataset", sizeof(table), table_begin, table_next, table_skip,
                                   table_release};

tj_dataset *tj_data_table(int arity, int64_t rows, char *blob, size_t blob_bytes) {
    tj_dataset *d = tj_data_node(&table_ops, arity);
    if (!d) {
        tj_mem_free(blob, blob_bytes);
        return NULL;
    }
    table *t = (table *)d;
    t->blob = blob;
    t->blob_bytes = blob_bytes;
    t->rows = rows;
    t->proto = tj_mem_calloc(sizeof(comp) * (size_t)arity);
    t->col = t->proto ? tj_mem_calloc(sizeof(struct col) * (size_t)arity) : NULL;
    if (!t->col) {
        node_free(d);       /* frees the blob, and proto if it was made */
        return NULL;
    }
    return d;
}

void tj_data_table_col(tj_dataset *d, int i, tj_dtype dt, const tj_shape *shape, size_t off,
                       size_t stride) {
    table *t = (table *)d;
    d->spec[i] = (spec){dt, shape->ndim};
    t->proto[i] = (comp){.dt = dt, .shape = *shape};
    t->col[i] = (struct col){off, stride, (size_t)tj_shape_numel(shape) * tj_dtype_size(dt)};
}

tj_dataset *tj_dataset_from_tensors(int n, tj_tensor *const *ts) {
    static const char op[] = "dataset_from_tensors";
    if (n < 1) return tj_err(TJ_ERR_ARG, "%s: n is %d, at least one tensor is needed", op, n), NULL;
    if (!ts) return tj_err(TJ_ERR_ARG, "%s: the tensor array is NULL", op), NULL;
    tensor *t0 = NULL;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        tensor *t = tj_resolve(ts[i], op, i);
        if (!t) return NULL;
        char s0[TJ_SHAPE_STR_MAX], s1[TJ_SHAPE_STR_MAX];
        if (t->shape.ndim == 0)
            return tj_err(TJ_ERR_SHAPE, "%s: tensor %d is a scalar; slicing along axis 0 needs "
                          "rank >= 1", op, i), NULL;
        if (!t0) t0 = t;
        if (t->shape.dim[0] != t0->shape.dim[0])
            return tj_err(TJ_ERR_SHAPE, "%s: the tensors must agree on dimension 0, but tensor 0 "
                          "is %s and tensor %d is %s", op, tj_shape_str(&t0->shape, s0, sizeof s0),
                          i, tj_shape_str(&t->shape, s1, sizeof s1)), NULL;
        bytes = ALIGN16(bytes + (size_t)t->numel * tj_dtype_size(t->dtype));   /* each < 2^62 */
        if (bytes > SIZE_MAX / 4)
            return tj_err(TJ_ERR_OOM, "%s: out of memory: the tensors hold too many bytes", op), NULL;
    }
    char *blob = tj_mem_alloc(bytes);
    if (!blob) return NULL;
    tj_dataset *d = tj_data_table(n, t0->shape.dim[0], blob, bytes);
    if (!d) return NULL;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        tensor *t = tj_resolve(ts[i], op, i);
        size_t tb = (size_t)t->numel * tj_dtype_size(t->dtype);
        tj_shape row = {.ndim = t->shape.ndim - 1};
        for (int k = 1; k < t->shape.ndim; k++) row.dim[k - 1] = t->shape.dim[k];
        tj_data_table_col(d, i, t->dtype, &row, at, (size_t)tj_shape_numel(&row) * tj_dtype_size(t->dtype));
        if (tb) memcpy(blob + at, t->data, tb);
        at = ALIGN16(at + tb);
    }
    return d;
}

/* ---- the iterator of the outermost node ------------------------------------------------------ */

static int usable(const tj_dataset *d, const char *op) {
    if (!d) return tj_err(TJ_ERR_ARG, "%s: the dataset is NULL", op);
    if (d->wrapped)
        return tj_err(TJ_ERR_STATE, "%s: this dataset is part of a pipeline; use the outermost "
                      "dataset (the one the last transformation returned)", op);
    return 0;
}

/* Begins epoch `epoch` at position 0; 0 or the error code. */
static int start_epoch(tj_dataset *d, int64_t epoch) {
    tj_elem_free(d->pending);
    d->pending = NULL;
    d->epoch = epoch;
    d->pos = 0;
    d->started = true;
    d->ended = false;
    d->broken = false;
    int rc = tj_data_begin(d, (uint64_t)epoch);
    if (rc) d->broken = true;
    return rc;
}

int tj_dataset_arity(const tj_dataset *d) {
    if (!d) return tj_err(TJ_ERR_ARG, "dataset_arity: the dataset is NULL"), -1;
    return d->arity;
}

int tj_dataset_next(tj_dataset *d, tj_tensor **out) {
    static const char op[] = "dataset_next";
    if (usable(d, op)) return -1;
    if (!out) return tj_err(TJ_ERR_ARG, "%s: out is NULL", op), -1;
    for (int i = 0; i < d->arity; i++) out[i] = NULL;
    if (d->broken)
        return tj_err(TJ_ERR_STATE, "%s: an earlier error stopped this epoch; call "
                      "tj_dataset_reset or tj_dataset_set_state", op), -1;
    if (!d->started && start_epoch(d, d->epoch)) return -1;
    elem *e = d->pending;
    if (!e) {
        if (d->ended) return 0;
        int r = tj_data_next(d, &e);
        if (r == 0) d->ended = true;
        if (r < 0) d->broken = true;
        if (r <= 0) return r;
    }
    d->pending = NULL;
    for (int i = 0; i < d->arity; i++) {
        tensor *t = tj_tensor_new(e->c[i].dt, &e->c[i].shape);
        if (!t) {
            /* the tensors made so far belong to the scope, which frees them */
            for (int k = 0; k < i; k++) out[k] = NULL;
            d->pending = e;
            return -1;
        }
        if (e->c[i].numel)
            memcpy(t->data, tj_elem_data(e, i), (size_t)e->c[i].numel * tj_dtype_size(e->c[i].dt));
        out[i] = tj_handle(t);
    }
    tj_elem_free(e);
    d->pos++;
    return 1;
}

int tj_dataset_reset(tj_dataset *d) {
    static const char op[] = "dataset_reset";
    int rc = usable(d, op);
    if (rc) return rc;
    if (d->epoch == INT64_MAX) return tj_err(TJ_ERR_STATE, "%s: the epoch counter is at its maximum", op);
    return start_epoch(d, d->epoch + 1);
}

int tj_dataset_get_state(const tj_dataset *d, int64_t state[2]) {
    static const char op[] = "dataset_get_state";
    int rc = usable(d, op);
    if (rc) return rc;
    if (!state) return tj_err(TJ_ERR_ARG, "%s: state is NULL", op);
    state[0] = d->epoch;
    state[1] = d->pos;
    return 0;
}

/* Begins epoch and skips pos elements: 0 or the error code. */
static int seek(tj_dataset *d, int64_t epoch, int64_t pos, const char *op) {
    int rc = start_epoch(d, epoch);
    if (rc) return rc;
    int64_t k = pos ? tj_data_skip(d, pos) : 0;
    if (k < 0) {
        d->broken = true;
        return tj_error_code() ? tj_error_code() : TJ_ERR_STATE;
    }
    if (k < pos) {
        d->broken = true;
        return tj_err(TJ_ERR_VALUE, "%s: epoch %lld has %lld elements, so position %lld does not "
                      "exist", op, (long long)epoch, (long long)k, (long long)pos);
    }
    d->pos = pos;
    return 0;
}

int tj_dataset_set_state(tj_dataset *d, const int64_t state[2]) {
    static const char op[] = "dataset_set_state";
    int rc = usable(d, op);
    if (rc) return rc;
    if (!state) return tj_err(TJ_ERR_ARG, "%s: state is NULL", op);
    if (state[0] < 0 || state[1] < 0)
        return tj_err(TJ_ERR_VALUE, "%s: epoch %lld, position %lld: both must be >= 0", op,
                      (long long)state[0], (long long)state[1]);
    int64_t old_epoch = d->epoch, old_pos = d->pos;
    bool old_started = d->started, old_ended = d->ended, old_broken = d->broken;
    int code = seek(d, state[0], state[1], op);
    if (code == 0) return 0;
    /* put the old position back: replaying it is deterministic, so it is the same position
     * (an element that was pending is made again by the next call) */
    if (!old_started) {
        start_epoch(d, old_epoch);      /* begin needs nothing: a fresh node stays fresh */
        d->started = false;
        d->broken = false;
    } else if (old_broken) {
        d->epoch = old_epoch;
        d->pos = old_pos;
        d->broken = true;
    } else if (seek(d, old_epoch, old_pos, op) == 0) {
        d->ended = old_ended;
    }
    return code;
}

void tj_dataset_free(tj_dataset *d) {
    if (!d) return;
    if (d->wrapped) {
        tj_err(TJ_ERR_STATE, "dataset_free: this dataset is part of a pipeline, which frees it; "
               "free the outermost dataset");
        return;
    }
    node_free(d);
}
