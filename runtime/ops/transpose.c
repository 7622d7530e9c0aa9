/* transpose: out.dim[i] = in.dim[perm[i]] (a copy). NULL perm reverses the dims. */
#include "op.h"

#include <string.h>

/* The last two axes swapped, the others kept: (batch, R, C) -> (batch, C, R) in tiles of
 * TILE x TILE, so that both sides stay in cache (the matmul gradients' transposes). 4-byte
 * values move in 8 x 8 blocks through vector registers (W2's compiled step: transposes
 * went from 5.8% to 4.0% of it); the tiles' edges and 8-byte values one at a time. */
#define TILE 32

typedef uint32_t v8u __attribute__((vector_size(32)));

/* lanes i0.. of a, b (8 + i: lane i of b): clang and gcc 12+ name it alike, older gcc not */
#ifdef __has_builtin
#if __has_builtin(__builtin_shufflevector)
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#endif
#endif
#ifndef SHUF
#define SHUF(a, b, ...) __builtin_shuffle(a, b, (v8u){__VA_ARGS__})
#endif

/* y[c * ry + r] = x[r * rx + c] for r, c < 8: unpack pairs, then pairs of pairs, then halves */
static void block8(const uint32_t *x, int64_t rx, uint32_t *y, int64_t ry) {
    v8u r[8], t[8], u[8];
    for (int k = 0; k < 8; k++) memcpy(&r[k], x + k * rx, sizeof r[k]);
    for (int k = 0; k < 8; k += 2) {
        t[k] = SHUF(r[k], r[k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[k + 1] = SHUF(r[k], r[k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int k = 0; k < 8; k += 4)
        for (int h = 0; h < 2; h++) {
            u[k + 2 * h] = SHUF(t[k + h], t[k + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            u[k + 2 * h + 1] = SHUF(t[k + h], t[k + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int c = 0; c < 4; c++) {
        v8u lo = SHUF(u[c], u[c + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        v8u hi = SHUF(u[c], u[c + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        memcpy(y + c * ry, &lo, sizeof lo);
        memcpy(y + (c + 4) * ry, &hi, sizeof hi);
    }
}

/* The tiles of x (batch, R, C) into y (batch, C, R); with BLOCKS, 8 x 8 blocks of each
 * tile through block8, the rest (the rows below them, the columns right of them) one value
 * at a time. */
#define SWAP_LAST2(name, T, BLOCKS)                                                           \
    static void name(int64_t batch, int64_t R, int64_t C, const void *xv, void *yv) {           \
        const T *x = xv;                                                                      \
        T *y = yv;                                                                            \
        for (int64_t b = 0; b < batch; b++, x += R * C, y += R * C)                           \
            for (int64_t i0 = 0; i0 < R; i0 += TILE)                                          \
                for (int64_t j0 = 0; j0 < C; j0 += TILE) {                                    \
                    int64_t i1 = i0 + TILE < R ? i0 + TILE : R, j1 = j0 + TILE < C ? j0 + TILE : C; \
                    int64_t i8 = BLOCKS ? i0 + (i1 - i0) / 8 * 8 : i0;                        \
                    int64_t j8 = BLOCKS ? j0 + (j1 - j0) / 8 * 8 : j0;                        \
                    for (int64_t i = i0; i < i8; i += 8)                                      \
                        for (int64_t j = j0; j < j8; j += 8)                                  \
                            block8((const uint32_t *)(x + i * C + j), C, (uint32_t *)(y + j * R + i), R); \
                    for (int64_t j = j0; j < j1; j++)                                         \
                        for (int64_t i = j < j8 ? i8 : i0; i < i1; i++) y[j * R + i] = x[i * C + j]; \
                }                                                                             \
    }
SWAP_LAST2(swap_last2_4, uint32_t, true)
SWAP_LAST2(swap_last2_8, uint64_t, false)

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
