/* reduce.c: the driver shared by sum and max: axes and output shape, and the walk that
 * feeds each output's sequence of reduced values, block by block, to the op's block
 * kernel in the canonical order of math/reduce.h. Work is split into fixed pieces
 * (outputs, or one output's blocks), so the bits never depend on the thread count. */
#include "op.h"
#include "math/reduce.h"

#include <string.h>

typedef struct red_plan {
    tj_reduce_fn fn;
    size_t esize;
    const char *x;
    char *y;
    int64_t nout, K;            /* outputs, reduced values per output */
    bool suffix;                /* reduced axes are the innermost: sequences are contiguous */
    int nk, no;                 /* reduced and kept dims */
    int64_t kdim[TJ_MAX_DIMS], kst[TJ_MAX_DIMS], odim[TJ_MAX_DIMS], ost[TJ_MAX_DIMS];
    char *partials;             /* one output's block values, when K > BLOCK */
} red_plan;

static int64_t out_base(const red_plan *p, int64_t o) {
    int64_t off = 0;
    for (int d = p->no - 1; d >= 0; d--) { off += (o % p->odim[d]) * p->ost[d]; o /= p->odim[d]; }
    return off;
}

/* Values k0..k1 of output o's sequence, contiguous in buf (or in place when possible). */
static const char *gather(const red_plan *p, int64_t o, int64_t k0, int64_t k1, char *buf) {
    if (p->suffix) return p->x + (o * p->K + k0) * (int64_t)p->esize;
    int64_t base = out_base(p, o);
    for (int64_t k = k0; k < k1; k++) {
        int64_t off = base, r = k;
        for (int d = p->nk - 1; d >= 0; d--) { off += (r % p->kdim[d]) * p->kst[d]; r /= p->kdim[d]; }
        memcpy(buf + (k - k0) * (int64_t)p->esize, p->x + off * (int64_t)p->esize, p->esize);
    }
    return buf;
}

static void block(const red_plan *p, int64_t o, int64_t b, void *dst) {
    char buf[TJ_REDUCE_BLOCK * 8];
    int64_t k0 = b * TJ_REDUCE_BLOCK, k1 = k0 + TJ_REDUCE_BLOCK < p->K ? k0 + TJ_REDUCE_BLOCK : p->K;
    p->fn(k1 - k0, gather(p, o, k0, k1, buf), dst);
}

/* Reduces a sequence of n values (already block values) to one, recursively. */
static int reduce_values(const red_plan *p, char *v, int64_t n, void *dst) {
    while (n > TJ_REDUCE_BLOCK) {
        int64_t nb = (n + TJ_REDUCE_BLOCK - 1) / TJ_REDUCE_BLOCK;
        for (int64_t b = 0; b < nb; b++) {
            int64_t len = b + 1 < nb ? TJ_REDUCE_BLOCK : n - b * TJ_REDUCE_BLOCK;
            p->fn(len, v + b * TJ_REDUCE_BLOCK * (int64_t)p->esize, v + b * (int64_t)p->esize);
        }
        n = nb;
    }
    p->fn(n, v, dst);
    return 0;
}

static void one_output_task(void *ctx, int64_t b) {
    const red_plan *p = ctx;
    block(p, 0, b, p->partials + b * (int64_t)p->esize);
}

static void outputs_task(void *ctx, int64_t t) {
    const red_plan *p = ctx;
    int64_t per = TJ_REDUCE_BLOCK, o1 = (t + 1) * per < p->nout ? (t + 1) * per : p->nout;
    for (int64_t o = t * per; o < o1; o++) block(p, o, 0, p->y + o * (int64_t)p->esize);
}

static int run_reduce(red_plan *p) {
    int64_t nb = (p->K + TJ_REDUCE_BLOCK - 1) / TJ_REDUCE_BLOCK;
    if (nb <= 1) {                           /* each output is one block */
        int64_t tasks = (p->nout + TJ_REDUCE_BLOCK - 1) / TJ_REDUCE_BLOCK;
        if (p->K == 0) {                     /* empty: the identity */
            for (int64_t o = 0; o < p->nout; o++) p->fn(0, p->x, p->y + o * (int64_t)p->esize);
            return 0;
        }
        if (p->nout * p->K < 65536) for (int64_t t = 0; t < tasks; t++) outputs_task(p, t);
        else tj_parallel_for(tasks, outputs_task, p);
        return 0;
    }
    size_t bytes = (size_t)nb * p->esize;
    p->partials = tj_mem_alloc(bytes);
    if (!p->partials) return TJ_ERR_OOM;
    for (int64_t o = 0; o < p->nout; o++) {
        if (p->nout == 1) tj_parallel_for(nb, one_output_task, p);
        else for (int64_t b = 0; b < nb; b++) block(p, o, b, p->partials + b * (int64_t)p->esize);
        reduce_values(p, p->partials, nb, p->y + o * (int64_t)p->esize);
    }
    tj_mem_free(p->partials, bytes);
    return 0;
}

/* ---- reduced axes in the middle: x is (outer, K, inner) with inner > 1 ------------------------
 * Each output's sequence is a column of a K x inner matrix; the columns are reduced
 * together, a piece of COLS at a time, in the same order as one at a time. */
#define COLS 256

typedef struct cols_plan {
    tj_reduce_cols_fn fn;
    size_t esize;
    const char *x;
    char *y;
    int64_t K, inner, pieces;   /* pieces per outer index */
    _Atomic int failed;
} cols_plan;

/* K rows (stride values apart) of n <= COLS columns into y; past a block, through the
 * rows of block values, as reduce_values does for one sequence. */
static int cols_reduce(cols_plan *p, const char *x, int64_t K, int64_t stride, int64_t n, char *y) {
    int64_t es = (int64_t)p->esize;
    if (K <= TJ_REDUCE_BLOCK) {
        char acc[TJ_REDUCE_LANES * COLS * 8];
        p->fn(x, K, stride, n, acc, y);
        return 0;
    }
    int64_t nb = (K + TJ_REDUCE_BLOCK - 1) / TJ_REDUCE_BLOCK;
    size_t bytes = (size_t)(nb * n * es);
    char *part = tj_mem_alloc(bytes);
    if (!part) return TJ_ERR_OOM;
    for (int64_t b = 0; b < nb; b++) {
        int64_t len = b + 1 < nb ? TJ_REDUCE_BLOCK : K - b * TJ_REDUCE_BLOCK;
        cols_reduce(p, x + b * TJ_REDUCE_BLOCK * stride * es, len, stride, n, part + b * n * es);
    }
    int rc = cols_reduce(p, part, nb, n, n, y);
    tj_mem_free(part, bytes);
    return rc;
}

static void cols_task(void *ctx, int64_t t) {
    cols_plan *p = ctx;
    int64_t o = t / p->pieces, j0 = t % p->pieces * COLS, es = (int64_t)p->esize;
    int64_t n = p->inner - j0 < COLS ? p->inner - j0 : COLS;
    if (cols_reduce(p, p->x + (o * p->K * p->inner + j0) * es, p->K, p->inner, n, p->y + (o * p->inner + j0) * es))
        p->failed = 1;
}

static int run_cols(tj_op op, tensor *t, tensor *out, int64_t outer, int64_t K, int64_t inner) {
    cols_plan p = {.fn = tj_ops[op]->reduce_cols[t->dtype], .esize = tj_dtype_size(t->dtype), .x = t->data,
                   .y = out->data, .K = K, .inner = inner, .pieces = (inner + COLS - 1) / COLS};
    int64_t tasks = outer * p.pieces;
    if (outer * K * inner < 65536) for (int64_t i = 0; i < tasks; i++) cols_task(&p, i);
    else tj_parallel_for(tasks, cols_task, &p);
    return p.failed ? tj_err(TJ_ERR_OOM, "out of memory: reducing %lld values", (long long)(outer * K * inner)) : 0;
}

/* Normalises axes into a mask; naxes 0 means all. */
int tj_reduce_axes(const char *op, const tensor *t, int naxes, const int *axes, bool *mask) {
    memset(mask, 0, sizeof(bool) * TJ_MAX_DIMS);
    if (naxes < 0 || naxes > TJ_MAX_DIMS || (naxes > 0 && !axes))
        return tj_err(TJ_ERR_ARG, "%s: naxes is %d but axes is %s", op, naxes, axes ? "given" : "NULL");
    if (naxes == 0) {
        for (int d = 0; d < t->shape.ndim; d++) mask[d] = true;
        return 0;
    }
    for (int i = 0; i < naxes; i++) {
        int a;
        if (tj_axis(axes[i], t->shape.ndim, op, &a)) return TJ_ERR_ARG;
        if (mask[a]) return tj_err(TJ_ERR_ARG, "%s: axis %d is given twice", op, axes[i]);
        mask[a] = true;
    }
    return 0;
}

int tj_reduce_exec(tj_op op, const tj_attr *attr, tensor *t, tensor *out) {
    red_plan p = {.fn = tj_ops[op]->reduce[t->dtype], .esize = tj_dtype_size(t->dtype), .x = t->data,
                  .y = out->data, .nout = out->numel, .K = 1, .suffix = true};
    bool mask[TJ_MAX_DIMS] = {false}, seen_reduced = false, middle = true;
    for (int i = 0; i < attr->red.naxes; i++) mask[attr->red.axes[i]] = true;
    int64_t outer = 1, inner = 1;          /* kept values before and after the reduced ones */
    int64_t st[TJ_MAX_DIMS];
    tj_strides(&t->shape, st);
    for (int d = 0; d < t->shape.ndim; d++) {
        if (mask[d]) {
            p.kdim[p.nk] = t->shape.dim[d];
            p.kst[p.nk++] = st[d];
            p.K *= t->shape.dim[d];
            if (inner > 1 && t->shape.dim[d] != 1) middle = false;   /* reduced, kept, reduced */
            seen_reduced = true;
        } else {
            if (seen_reduced && t->shape.dim[d] != 1) p.suffix = false;
            *(seen_reduced ? &inner : &outer) *= t->shape.dim[d];
            p.odim[p.no] = t->shape.dim[d];
            p.ost[p.no++] = st[d];
        }
    }
    if (p.nout == 0) return 0;
    return !p.suffix && middle ? run_cols(op, t, out, outer, p.K, inner) : run_reduce(&p);
}

tensor *tj_t_reduce(tj_op op, tensor *t, int naxes, const int *axes, bool keepdims) {
    if (!t) return NULL;
    const tj_op_info *info = tj_ops[op];
    bool mask[TJ_MAX_DIMS];
    if (tj_reduce_axes(info->name, t, naxes, axes, mask)) return NULL;
    tj_attr attr = {.red = {.naxes = 0, .keepdims = keepdims}};
    tj_shape os = {0};
    int64_t K = 1;
    for (int d = 0; d < t->shape.ndim; d++) {
        if (mask[d]) {
            attr.red.axes[attr.red.naxes++] = d;
            K *= t->shape.dim[d];
            if (keepdims) os.dim[os.ndim++] = 1;
        } else {
            os.dim[os.ndim++] = t->shape.dim[d];
        }
    }
    if (op == TJ_OP_MAX && K == 0 && tj_shape_numel(&os) > 0) {
        char s[TJ_SHAPE_STR_MAX];
        return tj_err(TJ_ERR_SHAPE, "max: reduction over an empty axis of a tensor of shape %s",
                      tj_shape_str(&t->shape, s, sizeof s)), NULL;
    }
    tensor *out = tj_tensor_new(t->dtype, &os);
    if (!out) return NULL;
    if (tj_reduce_exec(op, &attr, t, out)) return NULL;
    if (tj_record(op, 1, &t, out, &attr)) return NULL;
    return out;
}

/* The gradient's shape with the reduced axes kept as 1, so it broadcasts over them. */
tensor *tj_t_unreduce(const tj_node *n, tensor *g) {
    tj_shape ks = n->in[0]->shape;
    for (int i = 0; i < n->attr.red.naxes; i++) ks.dim[n->attr.red.axes[i]] = 1;
    return tj_t_reshape(g, &ks);
}
