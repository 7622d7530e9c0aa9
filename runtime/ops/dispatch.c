/* dispatch.c: the one place where elementwise ops meet broadcasting (forward).
 * It checks dtypes (a rank-0 f32 scalar takes the other operand's dtype), computes the
 * numpy broadcast shape, folds dimensions into runs whose inputs advance by 0 or 1, and
 * hands the runs to the op's kernel, split into fixed pieces for the thread pool.
 * Op files never see broadcasting; the tape undoes it for gradients (tj_t_sum_to). */
#include "op.h"
#include "core/profile.h"

#include <string.h>

tensor *tj_t_full(tj_dtype dt, const tj_shape *shape, double v) {
    tensor *t = tj_tensor_new(dt, shape);
    if (!t) return NULL;
    switch (dt) {
    case TJ_F32: { float *p = t->data; for (int64_t i = 0; i < t->numel; i++) p[i] = (float)v; break; }
    case TJ_F64: { double *p = t->data; for (int64_t i = 0; i < t->numel; i++) p[i] = v; break; }
    case TJ_I32: { int32_t *p = t->data; int32_t iv = tj_f2i(v); for (int64_t i = 0; i < t->numel; i++) p[i] = iv; break; }
    }
    t->flags |= TJ_T_UNIFORM;
    return t;
}

tensor *tj_t_scalar(tj_dtype dt, double v) {
    tj_shape s = {0};
    return tj_t_full(dt, &s, v);
}

/* ---- running kernels over broadcast runs ---------------------------------------------- */

#define MAXIN 3
#define PIECE 16384        /* elements per task: fixed, so splitting never depends on threads */

typedef struct ew_plan {
    tj_run_fn run;
    int nin, nd;           /* folded dims, innermost last */
    int64_t dim[TJ_MAX_DIMS];
    int64_t st[MAXIN][TJ_MAX_DIMS];   /* input strides in elements, 0 where broadcast */
    const char *in[MAXIN];
    char *out;
    size_t esize;
    int64_t rows, inner;   /* rows of `inner` outputs each */
    int64_t rows_per_task, pieces_per_row;
} ew_plan;

/* Runs rows r0..r1 of the plan (all dims but the innermost), elements i0..i1 of each;
 * the input pointers advance from row to row as an odometer. They are kept as pointers,
 * not as offsets that gcc re-read with one vector load after their scalar updates: a
 * store-forwarding stall per row, 70 of the 160 ns of a (10, 32) + (32,) add. */
static void run_rows(const ew_plan *p, int64_t r0, int64_t r1, int64_t i0, int64_t i1) {
    int64_t idx[TJ_MAX_DIMS], r = r0, es = (int64_t)p->esize;
    for (int d = p->nd - 2; d >= 0; d--) { idx[d] = r % p->dim[d]; r /= p->dim[d]; }
    const void *in[MAXIN];
    int64_t s[MAXIN];
    for (int k = 0; k < p->nin; k++) {
        s[k] = p->st[k][p->nd - 1];
        int64_t off = i0 * s[k];
        for (int d = 0; d < p->nd - 1; d++) off += idx[d] * p->st[k][d];
        in[k] = p->in[k] + off * es;
    }
    for (int64_t row = r0; row < r1; row++) {
        p->run(i1 - i0, in, s, p->out + (row * p->inner + i0) * es);
        for (int d = p->nd - 2; d >= 0; d--) {      /* next row: odometer */
            for (int k = 0; k < p->nin; k++) in[k] = (const char *)in[k] + p->st[k][d] * es;
            if (++idx[d] < p->dim[d]) break;
            for (int k = 0; k < p->nin; k++) in[k] = (const char *)in[k] - idx[d] * p->st[k][d] * es;
            idx[d] = 0;
        }
    }
}

static void ew_task(void *ctx, int64_t t) {
    const ew_plan *p = ctx;
    if (p->pieces_per_row > 1) {     /* one long row split in pieces */
        int64_t i0 = t * PIECE, i1 = i0 + PIECE < p->inner ? i0 + PIECE : p->inner;
        run_rows(p, 0, 1, i0, i1);
    } else {
        int64_t r0 = t * p->rows_per_task;
        int64_t r1 = r0 + p->rows_per_task < p->rows ? r0 + p->rows_per_task : p->rows;
        run_rows(p, r0, r1, 0, p->inner);
    }
}

static void ew_execute(tj_run_fn run, int nin, tensor *const *in_, tensor *out) {
    bool flat = true;            /* every input is the whole output or one value */
    int64_t s[MAXIN];
    const void *ptr[MAXIN];
    tensor one[MAXIN], *in[MAXIN];  /* a uniform input is read as its one value (a scalar) */
    for (int k = 0; k < nin; k++) {
        in[k] = in_[k];
        if ((in[k]->flags & TJ_T_UNIFORM) && in[k]->numel > 1) {
            one[k] = *in[k];
            one[k].shape.ndim = 0;
            one[k].numel = 1;
            in[k] = &one[k];
        }
    }
    for (int k = 0; k < nin; k++) {
        flat = flat && (in[k]->numel == out->numel ? tj_shape_equal(&in[k]->shape, &out->shape)
                                                   : in[k]->numel == 1);
        s[k] = in[k]->numel == out->numel ? 1 : 0;
        ptr[k] = in[k]->data;
    }
    if (flat && out->numel <= PIECE) {   /* the common small case: one run, no plan */
        if (out->numel) run(out->numel, ptr, s, out->data);
        return;
    }
    ew_plan p = {.run = run, .nin = nin, .out = out->data, .esize = tj_dtype_size(out->dtype)};
    /* out dims (size-1 dims dropped) with each input's strides, then fold contiguous dims */
    const tj_shape *os = &out->shape;
    for (int d = 0; d < os->ndim; d++) {
        if (os->dim[d] == 1) continue;
        p.dim[p.nd] = os->dim[d];
        for (int k = 0; k < nin; k++) {
            const tj_shape *is = &in[k]->shape;
            int di = d - (os->ndim - is->ndim);
            int64_t st = 0;
            if (di >= 0 && is->dim[di] != 1) {
                st = 1;
                for (int e = di + 1; e < is->ndim; e++) st *= is->dim[e];
            }
            p.st[k][p.nd] = st;
        }
        p.nd++;
    }
    int nd = 0;
    for (int d = 0; d < p.nd; d++) {
        bool fold = nd > 0;
        for (int k = 0; k < nin && fold; k++)
            fold = p.st[k][nd - 1] == p.st[k][d] * p.dim[d];
        if (fold) {
            p.dim[nd - 1] *= p.dim[d];
            for (int k = 0; k < nin; k++) p.st[k][nd - 1] = p.st[k][d];
        } else {
            p.dim[nd] = p.dim[d];
            for (int k = 0; k < nin; k++) p.st[k][nd] = p.st[k][d];
            nd++;
        }
    }
    if (nd == 0) { p.dim[0] = 1; for (int k = 0; k < nin; k++) p.st[k][0] = 0; nd = 1; }
    p.nd = nd;
    for (int k = 0; k < nin; k++) p.in[k] = in[k]->data;
    p.inner = p.dim[nd - 1];
    p.rows = out->numel / (p.inner ? p.inner : 1);
    if (out->numel == 0) return;
    int64_t tasks;
    if (p.rows == 1) {
        p.pieces_per_row = (p.inner + PIECE - 1) / PIECE;
        tasks = p.pieces_per_row;
    } else {
        p.rows_per_task = p.inner >= PIECE ? 1 : PIECE / p.inner;
        tasks = (p.rows + p.rows_per_task - 1) / p.rows_per_task;
    }
    if (tasks == 1) run_rows(&p, 0, p.rows, 0, p.inner);
    else tj_parallel_for(tasks, ew_task, &p);
}

int tj_exec(tj_op op, const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    const tj_op_info *info = tj_ops[op];
    switch (info->kind) {
    case TJ_KIND_UNARY:
    case TJ_KIND_BINARY:
    case TJ_KIND_TERNARY: ew_execute(info->run[out->dtype], nin, in, out); return 0;
    case TJ_KIND_REDUCE:  return tj_reduce_exec(op, attr, in[0], out);
    case TJ_KIND_OTHER:   return info->exec(attr, nin, in, out);
    }
    return 0;
}

/* ---- the elementwise entry point ------------------------------------------------------ */

static bool is_py_scalar(const tensor *t) { return t->shape.ndim == 0 && t->dtype == TJ_F32; }

/* The operand a of a * 1 or 1 * a (float, a of the product's shape, nothing records), else
 * NULL: the product is a, bit for bit (a signaling NaN stays signaling), so it is a view. */
static tensor *times_one(tensor *const *in, const tj_shape *shape) {
    for (int k = 0; k < 2; k++) {
        const tensor *c = in[k];
        if (!(c->numel == 1 || (c->flags & TJ_T_UNIFORM)) || !tj_shape_equal(&in[1 - k]->shape, shape)) continue;
        double v = c->dtype == TJ_F32 ? *(const float *)c->data : *(const double *)c->data;
        if (v == 1.0 && !tj_records(2, in)) return in[1 - k];
    }
    return NULL;
}

/* The broadcast shape of in[]: in[0]'s own while no input broadcasts (no copy), else *buf;
 * NULL (error set) when they do not broadcast. */
static const tj_shape *out_shape(const char *name, int nin, tensor *const *in, tj_shape *buf) {
    const tj_shape *shape = &in[0]->shape;
    for (int k = 1; k < nin; k++) {
        if (tj_shape_equal(shape, &in[k]->shape)) continue;
        if (tj_broadcast_shape(shape, &in[k]->shape, buf, name)) return NULL;
        shape = buf;
    }
    return shape;
}

tensor *tj_t_ew(tj_op op, int nin, tensor *const *in_) {
    const tj_op_info *info = tj_ops[op];
    tensor *in[MAXIN] = {NULL};
    for (int k = 0; k < nin; k++) {
        if (!in_[k]) return NULL;
        in[k] = in_[k];
    }
    /* dtype: the first operand that is not a bare f32 scalar decides (where: a and b) */
    int first = op == TJ_OP_WHERE ? 1 : 0;
    tj_dtype dt = in[first]->dtype;
    for (int k = first; k < nin; k++)
        if (!is_py_scalar(in[k])) { dt = in[k]->dtype; break; }
    for (int k = 0; k < nin; k++) {
        if (in[k]->dtype == dt) continue;
        if (is_py_scalar(in[k]) || (op == TJ_OP_WHERE && k == 0)) {
            in[k] = tj_t_cast(in[k], dt);         /* constant: never needs a gradient */
            if (!in[k]) return NULL;
            continue;
        }
        return tj_err(TJ_ERR_DTYPE, "%s: operands have different dtypes: %s and %s (use tj_cast)",
                      info->name, tj_dtype_name(dt), tj_dtype_name(in[k]->dtype)), NULL;
    }
    tj_run_fn run = info->run[dt];
    if (!run)
        return tj_err(TJ_ERR_DTYPE, "%s: dtype %s is not supported%s", info->name, tj_dtype_name(dt),
                      dt == TJ_I32 ? " (cast to float32 first)" : ""), NULL;
    tj_shape bshape;
    const tj_shape *shape = out_shape(info->name, nin, in, &bshape);
    if (!shape || (info->check && info->check(NULL, in, NULL))) return NULL;
    tensor *same = op == TJ_OP_MUL && dt != TJ_I32 ? times_one(in, shape) : NULL;
    if (same) {
        tensor *view = tj_tensor_view(same, shape);
        if (view && tj_profile_on()) tj_profile_op(info->name, nin, in, view);
        return view;
    }
    tensor *out = tj_tensor_new(dt, shape);
    if (!out) return NULL;
    ew_execute(run, nin, in, out);
    if (tj_record(op, nin, in, out, NULL)) return NULL;
    return out;
}

void tj_t_ew_in_place(tj_op op, int nin, tensor *const *in) {
    if (tj_profile_on()) tj_profile_op_begin(in[0]);
    in[0]->flags &= ~(uint32_t)TJ_T_UNIFORM;
    ew_execute(tj_ops[op]->run[in[0]->dtype], nin, in, in[0]);
    if (tj_profile_on()) tj_profile_op(tj_ops[op]->name, nin, in, in[0]);
}

tensor *tj_t_ew_fused(const char *name, const tj_run_fn run[2], int nin, tensor *const *in) {
    tj_shape bshape;
    const tj_shape *shape = out_shape(name, nin, in, &bshape);
    tensor *out = shape ? tj_tensor_new(in[0]->dtype, shape) : NULL;
    if (!out) return NULL;
    ew_execute(run[in[0]->dtype == TJ_F64], nin, in, out);
    if (tj_profile_on()) tj_profile_op(name, nin, in, out);
    return out;
}
