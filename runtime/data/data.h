/* data.h: the internal view of datasets: elements, pipeline nodes and their operations.
 * A dataset is a chain of nodes (a source at the bottom, transformations above); each node
 * is a definition and an iterator in one. begin(key) starts an iteration, next makes the
 * next element, skip drops elements building as little as it can. The order is a pure
 * function of the seeds and the iteration keys (epoch, repetition): no clock, no threads.
 * Elements are private blocks owned by whoever holds them; only tj_dataset_next turns
 * one into tensors. Every node returns 0 again after its end until the next begin. */
#ifndef TJ_DATA_H
#define TJ_DATA_H

#include "core/core.h"

/* ---- elements: one block holding arity components and their data (16-byte aligned) ---- */
typedef struct comp { tj_dtype dt; tj_shape shape; int64_t numel; size_t off; } comp;
typedef struct elem { size_t bytes; int arity; comp c[]; } elem;

static inline void *tj_elem_data(elem *e, int i) { return (char *)e + e->c[i].off; }
/* A new element with components of proto[i].dt and .shape (the rest of proto is ignored),
 * data uninitialised; NULL (TJ_ERR_OOM or TJ_ERR_SHAPE) on failure. */
elem *tj_elem_new(int arity, const comp *proto, const char *op);
void  tj_elem_free(elem *e);

/* ---- nodes ------------------------------------------------------------------------------- */
typedef struct node_ops {
    const char *name;                             /* for messages: "dataset_batch" */
    size_t      size;                             /* bytes of the node struct */
    int     (*begin)(tj_dataset *d, uint64_t key);  /* 0 or an error code; begins the child */
    int     (*next)(tj_dataset *d, elem **out);   /* 1 (*out is the caller's), 0 at the end, -1 */
    int64_t (*skip)(tj_dataset *d, int64_t n);    /* skipped (< n: the end), -1; NULL: next */
    void    (*release)(tj_dataset *d);            /* frees what the node holds, not the child */
} node_ops;

/* Static description of component i: dtype and rank (dims may vary, e.g. a last batch). */
typedef struct spec { tj_dtype dt; int ndim; } spec;

struct tj_dataset {
    const node_ops *ops;
    tj_dataset *child;      /* owned; NULL for a source */
    bool        wrapped;    /* a pipeline owns this node: only the outermost is iterated */
    int         arity;
    spec       *spec;       /* (arity) */
    /* the iterator, used on the outermost node only */
    int64_t     epoch, pos; /* pos: elements returned in this epoch */
    bool        started, ended, broken;
    elem       *pending;    /* made, but could not be turned into tensors (OOM): retried */
};

/* A node of ops->size bytes above child: checks that child is usable (NULL or already in
 * a pipeline: error, and a child in a pipeline is left alone), copies its spec and marks
 * it wrapped. On any other failure child is freed, as the public contract says. */
tj_dataset *tj_data_wrap(tj_dataset *child, const node_ops *ops);
/* A new node with no child and `arity` components (spec zeroed); NULL on OOM. */
tj_dataset *tj_data_node(const node_ops *ops, int arity);
/* Begins / advances / skips through d, whatever its kind. */
int     tj_data_begin(tj_dataset *d, uint64_t key);
int     tj_data_next(tj_dataset *d, elem **out);
int64_t tj_data_skip(tj_dataset *d, int64_t n);

/* A source of `rows` rows over a blob it takes (blob_bytes is what tj_mem_free needs; the
 * blob is freed on failure too). Every component must then be described once with
 * tj_data_table_col: component i of row r is the value of shape and dt stored at
 * blob + off + r * stride. */
tj_dataset *tj_data_table(int arity, int64_t rows, char *blob, size_t blob_bytes);
void        tj_data_table_col(tj_dataset *d, int i, tj_dtype dt, const tj_shape *shape,
                              size_t off, size_t stride);

#endif
