/* transpose: out.dim[i] = in.dim[perm[i]] (a copy). NULL perm reverses the dims. */
#include "op.h"

#include <string.h>

/* The last two axes swapped, the others kept: (batch, R, C) -> (batch, C, R) in tiles of
 * TILE x TILE, so that both sides stay in cache (the matmul gradients' transposes). */
#define TILE 32
#define SWAP_LAST2(name, T)                                                                   \
    static void name(int64_t batch, int64_t R, int64_t C, const void *xv, void *yv) {           \
        const T *x = xv;                                                                      \
        T *y = yv;                                                                            \
        for (int64_t b = 0; b < batch; b++, x += R * C, y += R * C)                           \
            for (int64_t i0 = 0; i0 < R; i0 += TILE)                                          \
                for (int64_t j0 = 0; j0 < C; j0 += TILE) {                                    \
                    int64_t i1 = i0 + TILE < R ? i0 + TILE : R, j1 = j0 + TILE < C ? j0 + TILE : C; \
                    for (int64_t j = j0; j < j1; j++)                                         \
                        for (int64_t i = i0; i < i1; i++) y[j * R + i] = x[i * C + j];        \
                }                                                                             \
    }
SWAP_LAST2(swap_last2_4, uint32_t)
SWAP_LAST2(swap_last2_8, uint64_t)

static bool swaps_last2(const int *perm, int r) {
    if (r < 2 || perm[r - 2] != r - 1 || perm[r - 1] != r - 2) return false;
    for (int d = 0; d < r - 2; d++)
        if (perm[d] != d) return false;
    return true;
}

/* out[i0..] = in[..] walking out in order; the input offset advances by permuted strides */
static int transpose_exec(const tj_attr *attr, int nin, tensor *const *in, tensor *out) {
    (void)nin;
    const tensor *t = in[0];
    int r = t->shape.ndim;
    if (swaps_last2(attr->perm, r) && t->numel > 0) {
        int64_t R = t->shape.dim[r - 2], C = t->shape.dim[r - 1];
        (tj_dtype_size(t->dtype) == 4 ? swap_last2_4 : swap_last2_8)(t->numel / (R * C), R, C, t->data, out->data);
        return 0;
    }
    int64_t ist[TJ_MAX_DIMS], st[TJ_MAX_DIMS], idx[TJ_MAX_DIMS] = {0};
    tj_strides(&t->shape, ist);
    for (int d = 0; d < r; d++) st[d] = ist[attr->perm[d]];
    size_t es = tj_dtype_size(t->dtype);
    const char *x = t->data;
    char *y = out->data;
    int64_t off = 0;
    for (int64_t i = 0; i < out->numel; i++) {
        memcpy(y + i * (int64_t)es, x + off * (int64_t)es, es);
        for (int d = r - 1; d >= 0; d--) {
            off += st[d];
            if (++idx[d] < out->shape.dim[d]) break;
            off -= idx[d] * st[d];
            idx[d] = 0;
        }
    }
    return 0;
}

tensor *tj_t_transpose(tensor *t, const int *perm_) {
    if (!t) return NULL;
    int r = t->shape.ndim, perm[TJ_MAX_DIMS];
    bool seen[TJ_MAX_DIMS] = {false};
    for (int d = 0; d < r; d++) {
        int p = perm_ ? perm_[d] : r - 1 - d;
        if (p < -r || p >= r)
            return tj_err(TJ_ERR_ARG, "transpose: perm[%d] = %d is out of range for rank %d", d, p, r), NULL;
        if (p < 0) p += r;
        if (seen[p]) return tj_err(TJ_ERR_ARG, "transpose: perm repeats axis %d", p), NULL;
        seen[p] = true;
        perm[d] = p;
    }
    tj_shape os = {.ndim = r};
    for (int d = 0; d < r; d++) os.dim[d] = t->shape.dim[perm[d]];
    tensor *out = tj_tensor_new(t->dtype, &os);
    tj_attr attr;
    memcpy(attr.perm, perm, sizeof perm);
    if (!out || transpose_exec(&attr, 1, &t, out)) return NULL;
    if (tj_record(TJ_OP_TRANSPOSE, 1, &t, out, &attr)) return NULL;
    return out;
}

/* d transpose(a, p)/da = transpose(g, inverse of p) */
static int transpose_grad(const tj_node *n, tensor *g, tensor **gin) {
    int inv[TJ_MAX_DIMS];
    for (int d = 0; d < n->in[0]->shape.ndim; d++) inv[n->attr.perm[d]] = d;
    gin[0] = tj_t_transpose(g, inv);
    return gin[0] ? 0 : -1;
}

const tj_op_info tj_op_transpose = {
    .name = "transpose",
    .kind = TJ_KIND_OTHER,
    .grad = transpose_grad,
    .exec = transpose_exec,
};

tj_tensor *tj_transpose(tj_tensor *h, const int *perm) {
    tensor *t = tj_resolve(h, "transpose", 1);
    return t ? tj_handle(tj_t_transpose(t, perm)) : NULL;
}
