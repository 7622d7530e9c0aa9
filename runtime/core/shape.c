/* shape.c: shape arithmetic shared by every op: element counts, validation, numpy
 * broadcasting, axis normalisation, strides and the "(2, 3)" form used in messages. */
#include "core.h"

#include <stdio.h>
#include <string.h>

int64_t tj_shape_numel(const tj_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->dim[i];
    return n;
}

/* The error for s, found bad at dim i (-1: its rank); out of line, so that the check's
 * loop needs no stack frame (it runs for every op's output). */
static __attribute__((noinline, cold)) int shape_error(const tj_shape *s, const char *op, int i) {
    if (i < 0)
        return tj_err(TJ_ERR_SHAPE, "%s: rank %d is out of range [0, %d]", op, s->ndim, TJ_MAX_DIMS);
    if (s->dim[i] < 0)
        return tj_err(TJ_ERR_SHAPE, "%s: dimension %d is %lld, must be >= 0", op, i, (long long)s->dim[i]);
    char b[TJ_SHAPE_STR_MAX];
    return tj_err(TJ_ERR_SHAPE, "%s: shape %s has too many elements (more than 2^59)", op,
                  tj_shape_str(s, b, sizeof b));
}

int tj_shape_check(const tj_shape *s, const char *op) {
    if (s->ndim < 0 || s->ndim > TJ_MAX_DIMS) return shape_error(s, op, -1);
    int64_t n = 1;     /* product of the nonzero dims: a (0, 2^62) shape is refused too */
    for (int i = 0; i < s->ndim; i++) {
        int64_t d = s->dim[i], p;   /* n * d > 2^59, without a division */
        if (d < 0 || __builtin_mul_overflow(n, d, &p) || p > TJ_MAX_NUMEL) return shape_error(s, op, i);
        if (d) n = p;
    }
    return 0;
}

char *tj_shape_str(const tj_shape *s, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < s->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)s->dim[i]);
    if (k < n) snprintf(buf + k, n - k, s->ndim == 1 ? ",)" : ")");
    return buf;
}

int tj_broadcast_shape(const tj_shape *a, const tj_shape *b, tj_shape *out, const char *op) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    tj_shape r = {.ndim = nd};
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[TJ_SHAPE_STR_MAX], sb[TJ_SHAPE_STR_MAX];
            return tj_err(TJ_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast (dimension %d: %lld vs %lld)",
                          op, tj_shape_str(a, sa, sizeof sa), tj_shape_str(b, sb, sizeof sb), i,
                          (long long)da, (long long)db);
        }
        r.dim[i] = da == 1 ? db : da;
    }
    *out = r;
    return 0;
}

int tj_axis(int axis, int ndim, const char *op, int *out) {
    if (axis < -ndim || axis >= ndim || ndim == 0)
        return tj_err(TJ_ERR_ARG, "%s: axis %d is out of range for rank %d", op, axis, ndim);
    *out = axis < 0 ? axis + ndim : axis;
    return 0;
}

void tj_strides(const tj_shape *s, int64_t *strides) {
    int64_t st = 1;
    for (int i = s->ndim - 1; i >= 0; i--) {
        strides[i] = st;
        st *= s->dim[i];
    }
}
