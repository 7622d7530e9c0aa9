/* testutil.c: helpers shared by the suites. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

double tu_get(tj_tensor *t, int64_t i) {
    const void *p = tj_tensor_data(t);
    switch (tj_tensor_dtype(t)) {
    case TJ_F32: return ((const float *)p)[i];
    case TJ_F64: return ((const double *)p)[i];
    case TJ_I32: return ((const int32_t *)p)[i];
    }
    return 0;
}

char *tu_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)(len > 0 ? len : 0) + 1);
    ck_assert_ptr_nonnull(p);
    size_t got = len > 0 ? fread(p, 1, (size_t)len, f) : 0;
    fclose(f);
    p[got] = '\0';
    if (n) *n = got;
    return p;
}
