/* pipeline.c: the transformations: shuffle, batch, repeat, take (tf.data semantics).
 * Each takes the dataset it wraps, also on failure, so a chain of calls needs one check.
 * Randomness is Philox keyed by the shuffle's seed, with the iteration key (the epoch, or
 * a hash of it and the repetition under a repeat) in the counter: the order is a pure
 * function of (seed, epoch, repetition). skip is exact: skipping n elements leaves a node
 * where n calls of next would, which is what tj_dataset_set_state relies on. */
#include "data/data.h"

#include "core/rng.h"

#include <string.h>

/* A growable array of elements (the shuffle buffer, a batch being gathered). */
typedef struct elems { elem **e; int64_t n, cap; } elems;

static int elems_push(elems *a, elem *e, int64_t limit) {
    if (a->n == a->cap) {
        int64_t cap = a->cap ? 2 * a->cap : 16;
        if (cap > limit) cap = limit;
        elem **p = tj_mem_realloc(a->e, sizeof(elem *) * (size_t)a->cap, sizeof(elem *) * (size_t)cap);
        if (!p) return -1;
        a->e = p;
        a->cap = cap;
    }
    a->e[a->n++] = e;
    return 0;
}

static void elems_clear(elems *a) {
    for (int64_t i = 0; i < a->n; i++) tj_elem_free(a->e[i]);
    a->n = 0;
}

static void elems_release(elems *a) {
    elems_clear(a);
    tj_mem_free(a->e, sizeof(elem *) * (size_t)a->cap);
    *a = (elems){0};
}

/* ---- shuffle: TF's buffered shuffle ----------------------------------------------------------
 * The buffer holds up to size elements. Each next tops it up from the input, then removes
 * and returns a uniformly chosen element (its slot gets the last one). A buffer at least as
 * large as the input is a uniform random permutation. */
typedef struct shuffle {
    tj_dataset base;
    int64_t    size;
    uint64_t   seed, key, ctr;    /* draw block ctr of stream (seed, key) comes next */
    elems      buf;
    bool       input_done;
} shuffle;

/* A uniform integer in [0, n): 64 bits of a Philox block with counter (ctr, key) under the
 * shuffle's seed, rejecting the 2^64 mod n lowest values so that every result is equally
 * likely; words 2,3 are the second try, then the next block. */
static int64_t uniform_below(shuffle *s, int64_t n) {
    const uint64_t un = (uint64_t)n, reject = (0 - un) % un;     /* 2^64 mod n */
    const uint32_t key[2] = {(uint32_t)s->seed, (uint32_t)(s->seed >> 32)};
    for (;;) {
        const uint32_t ctr[4] = {(uint32_t)s->ctr, (uint32_t)(s->ctr >> 32), (uint32_t)s->key,
                                 (uint32_t)(s->key >> 32)};
        uint32_t w[4];
        tj_philox4x32_10(ctr, key, w);
        s->ctr++;
        for (int k = 0; k < 4; k += 2) {
            uint64_t r = (uint64_t)w[k] | (uint64_t)w[k + 1] << 32;
            if (r >= reject) return (int64_t)(r % un);
        }
    }
}

static int shuffle_begin(tj_dataset *d, uint64_t key) {
    shuffle *s = (shuffle *)d;
    elems_clear(&s->buf);
    s->key = key;
    s->ctr = 0;
    s->input_done = false;
    return tj_data_begin(d->child, key);
}

static int shuffle_next(tj_dataset *d, elem **out) {
    shuffle *s = (shuffle *)d;
    while (s->buf.n < s->size && !s->input_done) {
        elem *e;
        int r = tj_data_next(d->child, &e);
        if (r < 0) return -1;
        if (r == 0) {
            s->input_done = true;
            break;
        }
        if (elems_push(&s->buf, e, s->size)) {
            tj_elem_free(e);
            return -1;
        }
    }
    if (s->buf.n == 0) return 0;
    int64_t j = uniform_below(s, s->buf.n);
    *out = s->buf.e[j];
    s->buf.e[j] = s->buf.e[--s->buf.n];
    return 1;
}

static void shuffle_release(tj_dataset *d) { elems_release(&((shuffle *)d)->buf); }

static const node_ops shuffle_ops = {"dataset_shuffle", sizeof(shuffle), shuffle_begin,
                                     shuffle_next, NULL, shuffle_release};

tj_dataset *tj_dataset_shuffle(tj_dataset *d, int64_t buffer_size, uint64_t seed) {
    tj_dataset *n = tj_data_wrap(d, &shuffle_ops);
    if (!n) return NULL;
    if (buffer_size < 1) {
        tj_dataset_free(n);
        return tj_err(TJ_ERR_ARG, "dataset_shuffle: buffer_size is %lld, must be >= 1",
                      (long long)buffer_size), NULL;
    }
    ((shuffle *)n)->size = buffer_size;
    ((shuffle *)n)->seed = seed;
    return n;
}

/* ---- batch: stacks up to size consecutive elements along a new axis 0 ---------------------- */
typedef struct batch {
    tj_dataset base;
    int64_t    size;
    bool       drop_remainder;
    elems      items;
    comp      *proto;     /* (arity) scratch: the stacked shapes */
} batch;

static int batch_begin(tj_dataset *d, uint64_t key) {
    elems_clear(&((batch *)d)->items);
    return tj_data_begin(d->child, key);
}

/* Copies the k gathered elements into one; all must agree in shape, component by component
 * (they may not: batching a batched dataset whose last batch is partial). */
static elem *stack(batch *b) {
    tj_dataset *d = &b->base;
    elem **it = b->items.e;
    int64_t k = b->items.n;
    for (int i = 0; i < d->arity; i++) {
        const tj_shape *s0 = &it[0]->c[i].shape;
        for (int64_t j = 1; j < k; j++) {
            if (!tj_shape_equal(&it[j]->c[i].shape, s0)) {
                char a[TJ_SHAPE_STR_MAX], c[TJ_SHAPE_STR_MAX];
                tj_err(TJ_ERR_SHAPE, "dataset_batch: cannot stack elements of different shapes: "
                       "component %d is %s in element 0 of the batch and %s in element %lld", i,
                       tj_shape_str(s0, a, sizeof a), tj_shape_str(&it[j]->c[i].shape, c, sizeof c),
                       (long long)j);
                return NULL;
            }
        }
        tj_shape s = {.ndim = s0->ndim + 1, .dim = {k}};
        for (int a = 0; a < s0->ndim; a++) s.dim[a + 1] = s0->dim[a];
        b->proto[i] = (comp){.dt = it[0]->c[i].dt, .shape = s};
    }
    elem *e = tj_elem_new(d->arity, b->proto, "dataset_batch");
    if (!e) return NULL;
    for (int i = 0; i < d->arity; i++) {
        size_t bytes = (size_t)it[0]->c[i].numel * tj_dtype_size(it[0]->c[i].dt);
        char *dst = tj_elem_data(e, i);     /* (k, element shape) */
        for (int64_t j = 0; j < k && bytes; j++)
            memcpy(dst + (size_t)j * bytes, tj_elem_data(it[j], i), bytes);
    }
    return e;
}

static int batch_next(tj_dataset *d, elem **out) {
    batch *b = (batch *)d;
    while (b->items.n < b->size) {
        elem *e;
        int r = tj_data_next(d->child, &e);
        if (r < 0) goto fail;
        if (r == 0) break;
        if (elems_push(&b->items, e, b->size)) {
            tj_elem_free(e);
            goto fail;
        }
    }
    if (b->items.n == 0 || (b->items.n < b->size && b->drop_remainder)) {
        elems_clear(&b->items);
        return 0;
    }
    elem *e = stack(b);
    elems_clear(&b->items);
    if (!e) return -1;
    *out = e;
    return 1;
fail:
    elems_clear(&b->items);
    return -1;
}

/* n batches are n * size elements of the input, or fewer at its end, where a partial
 * batch counts unless it is dropped. */
static int64_t batch_skip(tj_dataset *d, int64_t n) {
    batch *b = (batch *)d;
    int64_t want = n > INT64_MAX / b->size ? INT64_MAX : n * b->size;
    int64_t got = tj_data_skip(d->child, want);
    if (got < 0) return -1;
    if (got == want) return n;
    return got / b->size + (got % b->size != 0 && !b->drop_remainder);
}

static void batch_release(tj_dataset *d) {
    batch *b = (batch *)d;
    elems_release(&b->items);
    tj_mem_free(b->proto, sizeof(comp) * (size_t)d->arity);
}

static const node_ops batch_ops = {"dataset_batch", sizeof(batch), batch_begin, batch_next,
                                   batch_skip, batch_release};

tj_dataset *tj_dataset_batch(tj_dataset *d, int64_t batch_size, bool drop_remainder) {
    tj_dataset *n = tj_data_wrap(d, &batch_ops);
    if (!n) return NULL;
    batch *b = (batch *)n;
    if (batch_size < 1) {
        tj_dataset_free(n);
        return tj_err(TJ_ERR_ARG, "dataset_batch: batch_size is %lld, must be >= 1",
                      (long long)batch_size), NULL;
    }
    for (int i = 0; i < n->arity; i++) {
        if (n->spec[i].ndim >= TJ_MAX_DIMS) {
            tj_err(TJ_ERR_SHAPE, "dataset_batch: component %d has rank %d; a batch of it would "
                   "exceed %d dimensions", i, n->spec[i].ndim, TJ_MAX_DIMS);
            tj_dataset_free(n);
            return NULL;
        }
        n->spec[i].ndim++;
    }
    b->proto = tj_mem_calloc(sizeof(comp) * (size_t)n->arity);
    if (!b->proto) {
        tj_dataset_free(n);
        return NULL;
    }
    b->size = batch_size;
    b->drop_remainder = drop_remainder;
    return n;
}

/* ---- repeat: count passes over the input (-1: forever), each with its own key --------------
 * As in tf.data, a pass that yields nothing ends the repeat, so repeating an empty dataset
 * forever is empty rather than a hang. Every pass has the same length (no node's length
 * depends on its key), so skip jumps over whole passes by arithmetic. */
typedef struct repeat {
    tj_dataset base;
    int64_t    count, rep;        /* rep: the pass now running */
    int64_t    in_pass;           /* elements of this pass so far */
    int64_t    pass_len;          /* the length of a pass, once one has ended; 0 before */
    uint64_t   key;
    bool       done;
} repeat;

/* The key of pass rep under key: splitmix64's finaliser over both, so passes and epochs
 * get unrelated shuffle streams. */
static uint64_t pass_key(uint64_t key, int64_t rep) {
    uint64_t z = key ^ (0x9E3779B97F4A7C15ull * ((uint64_t)rep + 1));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int repeat_begin(tj_dataset *d, uint64_t key) {
    repeat *r = (repeat *)d;
    r->key = key;
    r->rep = 0;
    r->in_pass = 0;
    r->pass_len = 0;
    r->done = r->count == 0;
    return r->done ? 0 : tj_data_begin(d->child, pass_key(key, 0));
}

/* The current pass has ended: start the next one, or end. 0 or -1. */
static int next_pass(repeat *r) {
    r->pass_len = r->in_pass;
    if (r->in_pass == 0 || (r->count >= 0 && r->rep + 1 >= r->count) || r->rep == INT64_MAX) {
        r->done = true;
        return 0;
    }
    r->rep++;
    r->in_pass = 0;
    return tj_data_begin(r->base.child, pass_key(r->key, r->rep)) ? -1 : 0;
}

static int repeat_next(tj_dataset *d, elem **out) {
    repeat *r = (repeat *)d;
    while (!r->done) {
        int rc = tj_data_next(d->child, out);
        if (rc != 0) {
            if (rc > 0) r->in_pass++;
            return rc;
        }
        if (next_pass(r)) return -1;
    }
    return 0;
}

static int64_t repeat_skip(tj_dataset *d, int64_t n) {
    repeat *r = (repeat *)d;
    int64_t k = 0;
    while (k < n && !r->done) {
        /* at the start of a pass: jump over the whole passes to skip but the last, which
         * goes through the child so that its end is handled as next would */
        if (r->in_pass == 0 && r->pass_len > 0) {
            int64_t m = (n - k) / r->pass_len;
            if (r->count >= 0 && m > r->count - r->rep) m = r->count - r->rep;
            if (m >= 2) {
                r->rep += m - 1;
                k += (m - 1) * r->pass_len;
                if (tj_data_begin(d->child, pass_key(r->key, r->rep))) return -1;
            }
        }
        int64_t got = tj_data_skip(d->child, n - k);
        if (got < 0) return -1;
        r->in_pass += got;
        k += got;
        if (k < n && next_pass(r)) return -1;
    }
    return k;
}

static void repeat_release(tj_dataset *d) { (void)d; }

static const node_ops repeat_ops = {"dataset_repeat", sizeof(repeat), repeat_begin, repeat_next,
                                    repeat_skip, repeat_release};

tj_dataset *tj_dataset_repeat(tj_dataset *d, int64_t count) {
    tj_dataset *n = tj_data_wrap(d, &repeat_ops);
    if (!n) return NULL;
    if (count < -1) {
        tj_dataset_free(n);
        return tj_err(TJ_ERR_ARG, "dataset_repeat: count is %lld, must be >= 0 or -1 (forever)",
                      (long long)count), NULL;
    }
    ((repeat *)n)->count = count;
    return n;
}

/* ---- take: the first count elements (-1: all) -------------------------------------------- */
typedef struct take {
    tj_dataset base;
    int64_t    count, left;       /* left < 0: no limit */
} take;

static int take_begin(tj_dataset *d, uint64_t key) {
    take *t = (take *)d;
    t->left = t->count;
    return tj_data_begin(d->child, key);
}

static int take_next(tj_dataset *d, elem **out) {
    take *t = (take *)d;
    if (t->left == 0) return 0;
    int rc = tj_data_next(d->child, out);
    if (rc > 0 && t->left > 0) t->left--;
    return rc;
}

static int64_t take_skip(tj_dataset *d, int64_t n) {
    take *t = (take *)d;
    int64_t want = t->left >= 0 && t->left < n ? t->left : n;
    int64_t got = want ? tj_data_skip(d->child, want) : 0;
    if (got > 0 && t->left > 0) t->left -= got;
    return got;
}

static void take_release(tj_dataset *d) { (void)d; }

static const node_ops take_ops = {"dataset_take", sizeof(take), take_begin, take_next, take_skip,
                                  take_release};

tj_dataset *tj_dataset_take(tj_dataset *d, int64_t count) {
    tj_dataset *n = tj_data_wrap(d, &take_ops);
    if (!n) return NULL;
    if (count < -1) {
        tj_dataset_free(n);
        return tj_err(TJ_ERR_ARG, "dataset_take: count is %lld, must be >= 0 or -1 (all)",
                      (long long)count), NULL;
    }
    ((take *)n)->count = count;
    return n;
}
