/* matmul: op(a) @ op(b) with op(a) (..., m, k) and op(b) (..., k, n) -> (..., m, n); batch
 * dims broadcast as numpy. op(x) is x, or x with its last two axes swapped when attr.mm.ta
 * (for a) or .tb (for b) is set: the gradient rules multiply by transposes that way, with
 * no transposed copy (BLAS reads them in place, as does the small product).
 * f32/f64: small products (matmul_small.h, the same loops compiled code mirrors) are computed
 * here, others call BLAS (core/blas.h), once per batch; int32 uses a wrapping triple loop. */
#include "op.h"
#include "matmul_small.h"
#include "core/blas.h"

#include <string.h>

static void matmul_i32(int64_t m, int64_t n, int64_t k, const int32_t *a, int64_t ars, int64_t acs, const int32_t *b,
                       int64_t brs, int64_t bcs, int32_t *y) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            uint32_t acc = 0;
            for (int64_t p = 0; p < k; p++) acc += (uint32_t)a[i * ars + p * acs] * (uint32_t)b[p * brs + j * bcs];
            y[i * n + j] = (int32_t)acc;
        }
}

/* m, k of op(a) and n of op(b) */
static void matmul_sizes(const tj_attr *attr, const tj_shape *a, const tj_shape *b, int64_t *m, int64_t *k, int64_t *n) {
    int ra = a->ndim, rb = b->ndim;
    *m = a->dim[attr->mm.ta ? ra - 1 : ra - 2];
    *k = a->dim[attr->mm.ta ? ra - 2 : ra - 1];
    *n = b->dim[attr->mm.tb ? rb - 2 : rb - 1];
}

/* One product per batch; batch dims of a and b broadcast to out's. */
static int matmul_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)nin;
    const tensor *a = in[0], *b = in[1];
    int r = out->shape.ndim;
    int64_t m, n, k;
    matmul_sizes(attr, &a->shape, &b->shape, &m, &k, &n);
    int64_t ars = attr->mm.ta ? 1 : k, acs = attr->mm.ta ? m : 1;     /* op(a)[i,p] = a[i ars + p acs] */
    int64_t brs = attr->mm.tb ? 1 : n, bcs = attr->mm.tb ? k : 1;     /* op(b)[p,j] = b[p brs + j bcs] */
    int trans = (attr->mm.ta ? TJ_BLAS_TA : 0) | (attr->mm.tb ? TJ_BLAS_TB : 0);
    tj_shape bs = {.ndim = r - 2};
    for (int d = 0; d < r - 2; d++) bs.dim[d] = out->shape.dim[d];
    int64_t sta[TJ_MAX_DIMS], stb[TJ_MAX_DIMS], idx[TJ_MAX_DIMS] = {0};
    tj_matmul_batch_strides(&a->shape, &bs, sta);
    tj_matmul_batch_strides(&b->shape, &bs, stb);
    int64_t nbatch = tj_shape_numel(&bs), es = (int64_t)tj_dtype_size(a->dtype);
    bool small = tj_matmul_small(m, n, k);
    int64_t oa = 0, ob = 0;
    for (int64_t i = 0; i < nbatch; i++) {
        const char *pa = (const char *)a->data + oa * es, *pb = (const char *)b->data + ob * es;
        char *py = (char *)out->data + i * m * n * es;
        switch (a->dtype) {
        /* b's column stride as a constant 1 where it is 1, so that gcc vectorizes along j */
        case TJ_F32:
            if (small && bcs == 1) tj_matmul_small_f32(m, n, k, (const float *)pa, ars, acs, (const float *)pb, brs, 1, (float *)py);
            else if (small) tj_matmul_small_f32(m, n, k, (const float *)pa, ars, acs, (const float *)pb, brs, bcs, (float *)py);
            else tj_blas_sgemm(trans, m, n, k, (const float *)pa, (const float *)pb, (float *)py);
            break;
        case TJ_F64:
            if (small && bcs == 1) tj_matmul_small_f64(m, n, k, (const double *)pa, ars, acs, (const double *)pb, brs, 1, (double *)py);
            else if (small) tj_matmul_small_f64(m, n, k, (const double *)pa, ars, acs, (const double *)pb, brs, bcs, (double *)py);
            else tj_blas_dgemm(trans, m, n, k, (const double *)pa, (const double *)pb, (double *)py);
            break;
        case TJ_I32:
            matmul_i32(m, n, k, (const int32_t *)pa, ars, acs, (const int32_t *)pb, brs, bcs, (int32_t *)py);
            break;
        }
        for (int d = bs.ndim - 1; d >= 0; d--) {     /* next batch: odometer */
            oa += sta[d]; ob += stb[d];
            if (++idx[d] < bs.dim[d]) break;
            oa -= idx[d] * sta[d]; ob -= idx[d] * stb[d];
            idx[d] = 0;
        }
    }
    return 0;
}

tensor *tj_t_matmul_t(tensor *a, tensor *b, bool ta, bool tb) {
    if (!a || !b) return NULL;
    char sa[TJ_SHAPE_STR_MAX], sb[TJ_SHAPE_STR_MAX];
    if (a->dtype != b->dtype)
        return tj_err(TJ_ERR_DTYPE, "matmul: operands have different dtypes: %s and %s",
                      tj_dtype_name(a->dtype), tj_dtype_name(b->dtype)), NULL;
    if (a->shape.ndim < 2 || b->shape.ndim < 2)
        return tj_err(TJ_ERR_SHAPE, "matmul: operands need rank >= 2: a is %s, b is %s",
                      tj_shape_str(&a->shape, sa, sizeof sa), tj_shape_str(&b->shape, sb, sizeof sb)), NULL;
    tj_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.mm.ta = ta;
    attr.mm.tb = tb;
    int ra = a->shape.ndim, rb = b->shape.ndim;
    int64_t m, k, n;
    matmul_sizes(&attr, &a->shape, &b->shape, &m, &k, &n);
    if (b->shape.dim[tb ? rb - 1 : rb - 2] != k)
        return tj_err(TJ_ERR_SHAPE, "matmul: inner dimensions differ: a%s is %s, b%s is %s", ta ? " (transposed)" : "",
                      tj_shape_str(&a->shape, sa, sizeof sa), tb ? " (transposed)" : "",
                      tj_shape_str(&b->shape, sb, sizeof sb)), NULL;
    tj_shape ba = {.ndim = ra - 2}, bb = {.ndim = rb - 2}, bs;
    for (int d = 0; d < ra - 2; d++) ba.dim[d] = a->shape.dim[d];
    for (int d = 0; d < rb - 2; d++) bb.dim[d] = b->shape.dim[d];
    for (int d = 0; d < ba.ndim && d < bb.ndim; d++) {
        int64_t x = ba.dim[ba.ndim - 1 - d], y = bb.dim[bb.ndim - 1 - d];
        if (x != y && x != 1 && y != 1)
            return tj_err(TJ_ERR_SHAPE, "matmul: batch dimensions cannot be broadcast: a is %s, b is %s",
                          tj_shape_str(&a->shape, sa, sizeof sa), tj_shape_str(&b->shape, sb, sizeof sb)), NULL;
    }
    if (tj_broadcast_shape(&ba, &bb, &bs, "matmul")) return NULL;
    tj_shape os = bs;
    os.dim[os.ndim++] = m;
    os.dim[os.ndim++] = n;
    tensor *out = tj_tensor_new(a->dtype, &os);
    tensor *in[2] = {a, b};
    if (!out || matmul_exec(&attr, 2, in, out)) return NULL;
    if (tj_record(TJ_OP_MATMUL, 2, in, out, &attr)) return NULL;
    return out;
}

tensor *tj_t_matmul(tensor *a, tensor *b) { return tj_t_matmul_t(a, b, false, false); }

/* y = op(a) @ op(b): d op(a) = g @ op(b)^T and d op(b) = op(a)^T @ g, so (transposing back
 * what was read transposed, and using (x @ y)^T = y^T @ x^T) with flags, never a copy:
 *   ta tb   da                  db
 *   0  0    g @ b^T             a^T @ g
 *   0  1    g @ b               g^T @ a
 *   1  0    b @ g^T             a @ g
 *   1  1    b^T @ g^T           g^T @ a^T
 * (the tape sums broadcast batch dims); each only when the pass takes it (a first layer's
 * input batch needs none). */
static int matmul_grad(const tj_node *n, tensor *g, tensor **gin) {
    bool ta = n->attr.mm.ta, tb = n->attr.mm.tb;
    tensor *a = n->in[0], *b = n->in[1];
    gin[0] = TJ_GRAD(0, ta ? tj_t_matmul_t(b, g, tb, true) : tj_t_matmul_t(g, b, false, !tb));
    gin[1] = TJ_GRAD(1, tb ? tj_t_matmul_t(g, a, true, ta) : tj_t_matmul_t(a, g, !ta, false));
    return tj_grad_made(2, gin);
}

const tj_op_info tj_op_matmul = {.name = "matmul", .kind = TJ_KIND_OTHER, .grad = matmul_grad, .exec = matmul_exec};

tj_tensor *tj_matmul_t(tj_tensor *a, tj_tensor *b, bool transpose_a, bool transpose_b) {
    tj_tensor *h[2] = {a, b};
    tensor *t[2];
    if (!tj_resolve_args("matmul", 2, h, t)) return NULL;
    return tj_handle(tj_t_matmul_t(t[0], t[1], transpose_a, transpose_b));
}

tj_tensor *tj_matmul(tj_tensor *a, tj_tensor *b) { return tj_matmul_t(a, b, false, false); }
