/* fuzz_safetensors.c: a libFuzzer target for the safetensors reader (tj_safetensors_parse,
 * the code behind every load). Any input must give a parsed file or an error with a
 * message, within ASan and UBSan. A parsed file must also survive a round trip: written
 * back (tj_st_build_header, then the data in its order) it parses to the same names,
 * dtypes, shapes, bytes and metadata. Build with -DTJ_FUZZ=ON and clang (tools/test.sh);
 * seeds: the .safetensors files in tests/data, dictionary: tests/data/safetensors.dict. */
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what) {
    fprintf(stderr, "fuzz_safetensors: round trip: %s\n", what);
    abort();
}

static void roundtrip(const tj_st_file *f) {
    int n = f->n;
    const char **names = calloc((size_t)n + 1, sizeof *names);
    tensor **ts = calloc((size_t)n + 1, sizeof *ts);
    int *order = calloc((size_t)n + 1, sizeof *order);
    if (!names || !ts || !order) abort();
    for (int i = 0; i < n; i++) { names[i] = f->e[i].name; ts[i] = f->e[i].t; }
    unsigned char *hdr;
    size_t hlen;
    int rc = tj_st_build_header("fuzz", n, names, ts, f->nmeta, (const char *const *)f->meta_key,
                                (const char *const *)f->meta_value, &hdr, &hlen, order);
    if (rc) {   /* the writer refuses what it would not write: names that are not UTF-8 */
        if (rc != TJ_ERR_ARG) fail(tj_last_error());
        tj_clear_error();
        goto done;
    }
    size_t total = hlen;
    for (int i = 0; i < n; i++) total += (size_t)(f->e[i].end - f->e[i].begin);
    unsigned char *img = malloc(total ? total : 1);
    if (!img) abort();
    unsigned char *p = img + hlen;
    memcpy(img, hdr, hlen);
    for (int j = 0; j < n; j++) {
        const tensor *t = ts[order[j]];
        size_t b = (size_t)t->numel * tj_dtype_size(t->dtype);
        memcpy(p, t->data, b);
        p += b;
    }
    tj_mem_free(hdr, hlen);
    tj_st_file g;
    if (tj_safetensors_parse(img, total, "fuzz", "round trip", &g)) fail(tj_last_error());
    if (g.n != n || g.nmeta != f->nmeta) fail("counts differ");
    for (int i = 0; i < n; i++) {
        const tj_st_entry *a = &f->e[i], *b = &g.e[i];
        if (strcmp(a->name, b->name) || a->dtype != b->dtype || !tj_shape_equal(&a->shape, &b->shape) ||
            memcmp(a->t->data, b->t->data, (size_t)(a->end - a->begin)))
            fail("a tensor differs");
    }
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_key[i], g.meta_key[i]) || strcmp(f->meta_value[i], g.meta_value[i]))
            fail("metadata differs");
    tj_st_file_free(&g);
    free(img);
done:
    free(names);
    free(ts);
    free(order);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tj_scope_begin();
    tj_st_file f;
    if (tj_safetensors_parse(data, size, "fuzz", "input", &f)) {
        if (!tj_last_error()[0]) fail("an error without a message");
    } else {
        roundtrip(&f);
        tj_st_file_free(&f);
    }
    tj_clear_error();
    tj_scope_end();
    return 0;
}
