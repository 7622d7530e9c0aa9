/* matmul: (..., m, k) @ (..., k, n) -> (..., m, n); batch dims broadcast as numpy.
 * f32/f64: small products (matmul_small.h, the same loops compiled code mirrors) are computed
 * here, others call BLAS (core/blas.h), once per batch; int32 uses a wrapping triple loop. */
#include "op.h"
#include "matmul_small.h"
#include "core/blas.h"

static void matmul_i32(int64_t m, int64_t n, int64_t k, const int32_t *a, const int32_t *b, int32_t *y) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            uint32_t acc = 0;
            for (int64_t p = 0; p < k; p++) acc += (uint32_t)a[i * k + p] * (uint32_t)b[p * n + j];
            y[i * n + j] = (int32_t)acc;
        }
}

/* One product per batch; batch dims of a and b broadcast to out's. */
static int matmul_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)attr; (void)nin;
    const tensor *a = in[0], *b = in[1];
    int r = out->shape.ndim;
    int64_t m = out->shape.dim[r - 2], n = out->shape.dim[r - 1], k = a->shape.dim[a->shape.ndim - 1];
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
        case TJ_F32:
            if (small) tj_matmul_small_f32(m, n, k, (const float *)pa, k, 1, (const float *)pb, n, 1, (float *)py);
            else tj_blas_sgemm(m, n, k, (const float *)pa, (const float *)pb, (float *)py);
            break;
        case TJ_F64:
            if (small) tj_matmul_small_f64(m, n, k, (const double *)pa, k, 1, (const double *)pb, n, 1, (double *)py);
            else tj_blas_dgemm(m, n, k, (const double *)pa, (const double *)pb, (double *)py);
            break;
        case TJ_I32: matmul_i32(m, n, k, (const int32_t *)pa, (const int32_t *)pb, (int32_t *)py); break;
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

tensor *tj_t_matmul(tensor *a, tensor *b) {
    if (!a || !b) return NULL;
    char sa[TJ_SHAPE_STR_MAX], sb[TJ_SHAPE_STR_MAX];
    if (a->dtype != b->dtype)
        return tj_err(TJ_ERR_DTYPE, "matmul: operands have different dtypes: %s and %s",
                      tj_dtype_name(a->dtype), tj_dtype_name(b->dtype)), NULL;
    if (a->shape.ndim < 2 || b->shape.ndim < 2)
        return tj_err(TJ_ERR_SHAPE, "matmul: operands need rank >= 2: a is %s, b is %s",
                      tj_shape_str(&a->shape, sa, sizeof sa), tj_shape_str(&b->shape, sb, sizeof sb)), NULL;
    int ra = a->shape.ndim, rb = b->shape.ndim;
    int64_t m = a->shape.dim[ra - 2], k = a->shape.dim[ra - 1], n = b->shape.dim[rb - 1];
    if (b->shape.dim[rb - 2] != k)
        return tj_err(TJ_ERR_SHAPE, "matmul: inner dimensions differ: a is %s, b is %s",
                      tj_shape_str(&a->shape, sa, sizeof sa), tj_shape_str(&b->shape, sb, sizeof sb)), NULL;
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
    if (!out || matmul_exec(NULL, 2, in, out)) return NULL;
    if (tj_record(TJ_OP_MATMUL, 2, in, out, NULL)) return NULL;
    return out;
}

static tensor *swap_last2(tensor *t) {
    int perm[TJ_MAX_DIMS], r = t->shape.ndim;
    for (int d = 0; d < r; d++) perm[d] = d;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return tj_t_transpose(t, perm);
}

/* d(a@b)/da = g @ b^T, d(a@b)/db = a^T @ g (the tape sums broadcast batch dims); each only
 * when the pass takes it (a first layer's input batch needs none) */
static int matmul_grad(const tj_node *n, tensor *g, tensor **gin) {
    gin[0] = TJ_GRAD(0, tj_t_matmul(g, swap_last2(n->in[1])));
    gin[1] = TJ_GRAD(1, tj_t_matmul(swap_last2(n->in[0]), g));
    return tj_grad_made(2, gin);
}

const tj_op_info tj_op_matmul = {.name = "matmul", .kind = TJ_KIND_OTHER, .grad = matmul_grad, .exec = matmul_exec};

tj_tensor *tj_matmul(tj_tensor *a, tj_tensor *b) {
    tj_tensor *h[2] = {a, b};
    tensor *t[2];
    if (!tj_resolve_args("matmul", 2, h, t)) return NULL;
    return tj_handle(tj_t_matmul(t[0], t[1]));
}
