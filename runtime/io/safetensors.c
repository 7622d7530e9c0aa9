/* safetensors.c: the safetensors reader and writer (huggingface/safetensors). A file is a
 * u64 little-endian N, N bytes of JSON header ({"name": {"dtype", "shape", "data_offsets"},
 * "__metadata__": {string: string}}), then the data; offsets are relative to the data, and
 * the tensors tile it without gap or overlap. Every length, offset, dtype and shape read
 * is checked before it sizes an allocation or a copy. cJSON allocates with malloc: its
 * hooks are process-wide, so tapejit leaves them to the application; its blocks live
 * within one call and are freed on every path. Little-endian hosts only (no byte swaps). */
#define _POSIX_C_SOURCE 200809L
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ---------------------------------------------------------------------- */

static int host_check(const char *op) {
    const uint16_t one = 1;
    unsigned char low;
    memcpy(&low, &one, 1);
    if (low != 1)
        return tj_err(TJ_ERR_IO, "%s: this host is big-endian; safetensors data is little-endian "
                      "and tapejit does not byte-swap it", op);
    return 0;
}

/* A malformed file: "op: what: <message>". */
static int bad(const char *op, const char *what, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(const char *op, const char *what, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tj_err(TJ_ERR_IO, "%s: %s: %s", op, what, msg);
}

static int sys_err(const char *op, const char *doing, const char *path, int e) {
    char buf[128];
    if (strerror_r(e, buf, sizeof buf)) snprintf(buf, sizeof buf, "error %d", e);
    return tj_err(TJ_ERR_IO, "%s: cannot %s %s: %s", op, doing, path, buf);
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = tj_mem_alloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static void str_free(char *s) {
    if (s) tj_mem_free(s, strlen(s) + 1);
}


static bool utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        int more;
        uint32_t cp, min;
        if (c < 0x80) continue;
        else if ((c & 0xE0) == 0xC0) { more = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { more = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { more = 3; cp = c & 0x07; min = 0x10000; }
        else return false;
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xC0) != 0x80) return false;
            cp = cp << 6 | (*p & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    }
    return true;
}

/* ---- dtypes --------------------------------------------------------------------------------- */

static const char *st_dtype_name(tj_dtype dt) {
    switch (dt) {
    case TJ_F32: return "F32";
    case TJ_F64: return "F64";
    case TJ_I32: return "I32";
    }
    return "?";
}

/* 0: one tapejit loads; 1: a safetensors dtype tapejit does not load; -1: unknown. */
static int st_dtype_parse(const char *s, tj_dtype *dt) {
    static const char *const others[] = {
        "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E4M3FN", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
        "F8_E8M0", "I16", "U16", "F16", "BF16", "U32", "I64", "U64", "C64", "F4", "F6_E2M3",
        "F6_E3M2"};
    if (!strcmp(s, "F32")) { *dt = TJ_F32; return 0; }
    if (!strcmp(s, "F64")) { *dt = TJ_F64; return 0; }
    if (!strcmp(s, "I32")) { *dt = TJ_I32; return 0; }
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (!strcmp(s, others[i])) return 1;
    return -1;
}

/* ---- the parsed file -------------------------------------------------------------------------- */

void tj_st_file_free(tj_st_file *f) {
    if (!f) return;
    if (f->e) {
        for (int i = 0; i < f->n; i++) str_free(f->e[i].name);
        tj_mem_free(f->e, sizeof *f->e * (size_t)f->n);
    }
    if (f->meta_key) {
        for (int i = 0; i < f->nmeta; i++) str_free(f->meta_key[i]);
        tj_mem_free(f->meta_key, sizeof(char *) * (size_t)f->nmeta);
    }
    if (f->meta_value) {
        for (int i = 0; i < f->nmeta; i++) str_free(f->meta_value[i]);
        tj_mem_free(f->meta_value, sizeof(char *) * (size_t)f->nmeta);
    }
    *f = (tj_st_file){0};
}

const char *tj_st_meta(const tj_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_key[i], key)) return f->meta_value[i];
    return NULL;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice among the n in names (sorted in place), or NULL. */
static const char *first_duplicate(const char **names, size_t n) {
    if (n < 2) return NULL;
    qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i])) return names[i];
    return NULL;
}

/* A JSON number that is an integer in [0, max] (max <= 2^53, where doubles are exact). */
static bool json_uint(const cJSON *v, uint64_t max, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > (double)max) return false;   /* also NaN */
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return false;
    *out = u;
    return true;
}

#define JSON_INT_MAX (UINT64_C(1) << 53)

typedef struct span { uint64_t begin, end; int idx; } span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* One tensor entry {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]} into e. */
static int parse_entry(const cJSON *obj, uint64_t data_size, const char *op, const char *what,
                       tj_st_entry *e) {
    const char *nm = obj->string;
    if (!cJSON_IsObject(obj)) return bad(op, what, "tensor \"%.80s\" is not a JSON object", nm);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = obj->child; f; f = f->next) {
        const cJSON **slot = !strcmp(f->string, "dtype") ? &dtype
                           : !strcmp(f->string, "shape") ? &shape
                           : !strcmp(f->string, "data_offsets") ? &offs : NULL;
        if (!slot) continue;   /* unknown fields are ignored, as the reference reader does */
        if (*slot) return bad(op, what, "tensor \"%.80s\" has two \"%s\" fields", nm, f->string);
        *slot = f;
    }
    if (!dtype || !shape || !offs)
        return bad(op, what, "tensor \"%.80s\" has no \"%s\"", nm,
                   !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

    if (!cJSON_IsString(dtype)) return bad(op, what, "tensor \"%.80s\": dtype is not a string", nm);
    int k = st_dtype_parse(dtype->valuestring, &e->dtype);
    if (k > 0)
        return bad(op, what, "tensor \"%.80s\" has dtype %s; tapejit loads only F32, F64 and I32",
                   nm, dtype->valuestring);
    if (k < 0) return bad(op, what, "tensor \"%.80s\" has an unknown dtype \"%.40s\"", nm, dtype->valuestring);

    if (!cJSON_IsArray(shape)) return bad(op, what, "tensor \"%.80s\": shape is not an array", nm);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TJ_MAX_DIMS)
        return bad(op, what, "tensor \"%.80s\" has %d dimensions; tapejit allows at most %d", nm, ndim, TJ_MAX_DIMS);
    e->shape.ndim = ndim;
    /* the product of the nonzero dims must stay <= TJ_MAX_NUMEL, as tj_shape_check wants */
    uint64_t numel = 1, nonzero = 1;
    int d = 0;
    for (const cJSON *v = shape->child; v; v = v->next, d++) {
        uint64_t u;
        if (!json_uint(v, JSON_INT_MAX, &u))
            return bad(op, what, "tensor \"%.80s\": dimension %d is not an integer in [0, 2^53]", nm, d);
        e->shape.dim[d] = (int64_t)u;
        if (u == 0) { numel = 0; continue; }
        if (nonzero > (uint64_t)TJ_MAX_NUMEL / u)
            return bad(op, what, "tensor \"%.80s\": the shape has too many elements (overflow)", nm);
        nonzero *= u;
        numel *= u;
    }
    uint64_t bytes = numel * tj_dtype_size(e->dtype);   /* <= 2^59 * 8: no overflow */

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(offs->child, JSON_INT_MAX, &e->begin) || !json_uint(offs->child->next, JSON_INT_MAX, &e->end))
        return bad(op, what, "tensor \"%.80s\": data_offsets is not a pair of integers [begin, end]", nm);
    if (e->begin > e->end)
        return bad(op, what, "tensor \"%.80s\": data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
                   nm, e->begin, e->end);
    if (e->end > data_size)
        return bad(op, what, "tensor \"%.80s\": data_offsets [%" PRIu64 ", %" PRIu64 "] are outside the "
                   "%" PRIu64 " bytes of data", nm, e->begin, e->end, data_size);
    if (e->end - e->begin != bytes) {
        char s[TJ_SHAPE_STR_MAX];
        return bad(op, what, "tensor \"%.80s\": shape %s of %s needs %" PRIu64 " bytes, data_offsets "
                   "[%" PRIu64 ", %" PRIu64 "] hold %" PRIu64, nm, tj_shape_str(&e->shape, s, sizeof s),
                   dtype->valuestring, bytes, e->begin, e->end, e->end - e->begin);
    }
    return 0;
}

/* Checks the JSON header json[0..len) against data_size bytes of data and fills out
 * (entries without tensors) and *spans (entries sorted by offset, tj_mem, out->n of them). */
static int parse_header(const char *json, size_t len, uint64_t data_size, const char *op,
                        const char *what, tj_st_file *out, span **spans) {
    *out = (tj_st_file){0};
    *spans = NULL;
    if (len == 0 || json[0] != '{') return bad(op, what, "the header does not start with '{'");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        return bad(op, what, "the header is not valid JSON (at byte %zu of %zu)", at, len);
    }
    if (!end) end = json + len;
    int rc = 0;
    const char **names = NULL, **mkeys = NULL;
    size_t nnames = 0, nmkeys = 0, cap_names = 0, cap_mkeys = 0;
    /* only JSON whitespace may follow (the writer pads with spaces) */
    for (const char *p = end; p < json + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = bad(op, what, "the header has bytes after its JSON object (at byte %zu)", (size_t)(p - json));
            goto done;
        }
    if (!cJSON_IsObject(root)) { rc = bad(op, what, "the header is not a JSON object"); goto done; }

    const cJSON *meta = NULL;
    size_t count = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__")) { count++; continue; }
        if (meta) { rc = bad(op, what, "the header has two \"__metadata__\" objects"); goto done; }
        meta = it;
    }
    if (count > INT_MAX / 2) { rc = bad(op, what, "the header has too many tensors"); goto done; }
    size_t mcount = 0;
    if (meta) {
        if (!cJSON_IsObject(meta)) { rc = bad(op, what, "\"__metadata__\" is not a JSON object"); goto done; }
        for (const cJSON *m = meta->child; m; m = m->next, mcount++)
            if (!cJSON_IsString(m)) {
                rc = bad(op, what, "metadata \"%.80s\" is not a string (metadata values must be strings)", m->string);
                goto done;
            }
        if (mcount > INT_MAX / 2) { rc = bad(op, what, "the header has too much metadata"); goto done; }
    }

    /* entries, then duplicate names (a JSON object may repeat a key; cJSON keeps both) */
    if (count) {
        cap_names = count;
        if (!(out->e = tj_mem_calloc(sizeof *out->e * count)) ||
            !(names = tj_mem_alloc(sizeof *names * count)) ||
            !(*spans = tj_mem_alloc(sizeof **spans * count))) { rc = TJ_ERR_OOM; goto done; }
    }
    for (const cJSON *it = root->child; it; it = it->next) {
        if (it == meta) continue;
        tj_st_entry *e = &out->e[out->n];
        if ((rc = parse_entry(it, data_size, op, what, e))) goto done;
        if (!(e->name = str_dup(it->string))) { rc = TJ_ERR_OOM; goto done; }
        (*spans)[out->n] = (span){e->begin, e->end, out->n};
        names[nnames++] = e->name;
        out->n++;
    }
    const char *dup = first_duplicate(names, nnames);
    if (dup) { rc = bad(op, what, "two tensors are named \"%.80s\"", dup); goto done; }

    if (mcount) {
        cap_mkeys = mcount;
        out->nmeta = (int)mcount;   /* before the arrays: tj_st_file_free sizes them by it */
        if (!(out->meta_key = tj_mem_calloc(sizeof(char *) * mcount)) ||
            !(out->meta_value = tj_mem_calloc(sizeof(char *) * mcount)) ||
            !(mkeys = tj_mem_alloc(sizeof *mkeys * mcount))) { rc = TJ_ERR_OOM; goto done; }
        int i = 0;
        for (const cJSON *m = meta->child; m; m = m->next, i++) {
            if (!(out->meta_key[i] = str_dup(m->string)) || !(out->meta_value[i] = str_dup(m->valuestring))) {
                rc = TJ_ERR_OOM;
                goto done;
            }
            mkeys[nmkeys++] = out->meta_key[i];
        }
        if ((dup = first_duplicate(mkeys, nmkeys))) {
            rc = bad(op, what, "metadata \"%.80s\" appears twice", dup);
            goto done;
        }
    }

    /* the tensors must tile the data: sorted by offset, each begins where the last ended */
    if (out->n) qsort(*spans, (size_t)out->n, sizeof **spans, cmp_span);
    uint64_t at = 0;
    for (int i = 0; i < out->n; i++) {
        const span *s = &(*spans)[i];
        if (s->begin < at) {
            const span *p = &(*spans)[i - 1];
            rc = bad(op, what, "tensors \"%.60s\" [%" PRIu64 ", %" PRIu64 "] and \"%.60s\" [%" PRIu64 ", %" PRIu64 "] overlap",
                     out->e[p->idx].name, p->begin, p->end, out->e[s->idx].name, s->begin, s->end);
            goto done;
        }
        if (s->begin > at) {
            rc = bad(op, what, "bytes [%" PRIu64 ", %" PRIu64 ") of the data belong to no tensor", at, s->begin);
            goto done;
        }
        at = s->end;
    }
    if (at != data_size)
        rc = bad(op, what, "bytes [%" PRIu64 ", %" PRIu64 ") of the data belong to no tensor", at, data_size);
done:
    if (names) tj_mem_free(names, sizeof *names * cap_names);
    if (mkeys) tj_mem_free(mkeys, sizeof *mkeys * cap_mkeys);
    cJSON_Delete(root);
    if (rc) {
        if (*spans) tj_mem_free(*spans, sizeof **spans * cap_names);
        *spans = NULL;
        if (out->e) {   /* allocated for cap_names entries, out->n of them named */
            for (int i = 0; i < out->n; i++) str_free(out->e[i].name);
            tj_mem_free(out->e, sizeof *out->e * cap_names);
            out->e = NULL;
            out->n = 0;
        }
        tj_st_file_free(out);
    }
    return rc;
}

/* ---- reading: the same code for a buffer and a file ---------------------------------------- */

typedef struct reader {
    const unsigned char *mem;   /* the whole file in memory, or NULL: read fd */
    int         fd;
    uint64_t    size, pos;      /* the file's size (fstat), and where we are */
    const char *op, *what;
} reader;

static int rd(reader *r, void *dst, uint64_t n) {
    if (n > r->size - r->pos) return bad(r->op, r->what, "the file ends early");
    if (r->mem) {
        memcpy(dst, r->mem + r->pos, (size_t)n);
        r->pos += n;
        return 0;
    }
    unsigned char *p = dst;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t got = read(r->fd, p, chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return sys_err(r->op, "read", r->what, errno);
        if (got == 0) return bad(r->op, r->what, "the file ends early (was it truncated while being read?)");
        p += got;
        n -= (uint64_t)got;
        r->pos += (uint64_t)got;
    }
    return 0;
}

static int load(reader *r, tj_st_file *out) {
    *out = (tj_st_file){0};
    int rc;
    if ((rc = host_check(r->op))) return rc;
    if (r->size < 8)
        return bad(r->op, r->what, "the file has %" PRIu64 " bytes, fewer than the 8 of the header length", r->size);
    unsigned char lb[8];
    if ((rc = rd(r, lb, 8))) return rc;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lb[i];
    if (hlen > TJ_ST_MAX_HEADER)
        return bad(r->op, r->what, "the header length %" PRIu64 " is more than the limit of %" PRIu64 " bytes",
                   hlen, TJ_ST_MAX_HEADER);
    if (hlen > r->size - 8)
        return bad(r->op, r->what, "the header length %" PRIu64 " is more than the %" PRIu64 " bytes after it",
                   hlen, r->size - 8);
    char *json = tj_mem_alloc((size_t)hlen + 1);   /* NUL-terminated for cJSON's sake */
    if (!json) return TJ_ERR_OOM;
    if ((rc = rd(r, json, hlen))) { tj_mem_free(json, (size_t)hlen + 1); return rc; }
    json[hlen] = '\0';
    span *spans;
    rc = parse_header(json, (size_t)hlen, r->size - 8 - hlen, r->op, r->what, out, &spans);
    tj_mem_free(json, (size_t)hlen + 1);
    if (rc) return rc;

    /* the values, into tensors of a scope of our own, kept into the caller's on success */
    if (!tj_scope_try_begin()) { rc = TJ_ERR_OOM; goto fail; }
    for (int i = 0; i < out->n && !rc; i++) {
        tj_st_entry *e = &out->e[spans[i].idx];
        if (!(e->t = tj_tensor_new(e->dtype, &e->shape))) rc = TJ_ERR_OOM;
        else rc = rd(r, e->t->data, e->end - e->begin);   /* spans tile the data in order */
    }
    for (int i = 0; i < out->n && !rc; i++)
        if (!tj_keep(tj_handle(out->e[i].t))) rc = TJ_ERR_OOM;   /* earlier ones stay kept */
    tj_scope_end();
fail:
    tj_mem_free(spans, sizeof *spans * (size_t)out->n);
    if (rc) tj_st_file_free(out);
    return rc;
}

int tj_safetensors_parse(const void *buf, size_t n, const char *op, const char *what, tj_st_file *out) {
    reader r = {.mem = buf, .fd = -1, .size = n, .op = op, .what = what};
    if (!buf && n) { *out = (tj_st_file){0}; return tj_err(TJ_ERR_ARG, "%s: NULL buffer", op); }
    return load(&r, out);
}

int tj_st_read(const char *path, const char *op, tj_st_file *out) {
    *out = (tj_st_file){0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_err(op, "open", path, errno);
    struct stat st;
    int rc;
    if (fstat(fd, &st)) rc = sys_err(op, "stat", path, errno);
    else if (!S_ISREG(st.st_mode)) rc = bad(op, path, "not a regular file");
    else {
        reader r = {.fd = fd, .size = (uint64_t)st.st_size, .op = op, .what = path};
        rc = load(&r, out);
    }
    close(fd);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------------------ */

static bool add_item(cJSON *parent, const char *key, cJSON *item) {
    if (!item) return false;
    bool ok = key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
    if (!ok) cJSON_Delete(item);
    return ok;
}

/* An exact integer (cJSON prints doubles, which round past 2^53). */
static bool add_int(cJSON *arr, uint64_t v) {
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    return add_item(arr, NULL, cJSON_CreateRaw(s));
}

static int check_names(const char *op, const char *kind, int n, const char *const *names) {
    for (int i = 0; i < n; i++) {
        if (!names[i]) return tj_err(TJ_ERR_ARG, "%s: %s %d is NULL", op, kind, i);
        if (!utf8_valid(names[i]))
            return tj_err(TJ_ERR_ARG, "%s: %s %d (\"%.60s\") is not valid UTF-8", op, kind, i, names[i]);
    }
    if (n < 2) return 0;
    const char **sorted = tj_mem_alloc(sizeof *sorted * (size_t)n);
    if (!sorted) return TJ_ERR_OOM;
    memcpy(sorted, names, sizeof *sorted * (size_t)n);
    const char *dup = first_duplicate(sorted, (size_t)n);
    int rc = dup ? tj_err(TJ_ERR_ARG, "%s: two %ss are named \"%.80s\"", op, kind, dup) : 0;
    tj_mem_free(sorted, sizeof *sorted * (size_t)n);
    return rc;
}

int tj_st_build_header(const char *op, int n, const char *const *names, tensor *const *ts,
                       int nmeta, const char *const *keys, const char *const *values,
                       unsigned char **hdr, size_t *hdr_len, int *order) {
    *hdr = NULL;
    *hdr_len = 0;
    int rc;
    if (n < 0 || nmeta < 0 || (n > 0 && (!names || !ts)) || (nmeta > 0 && (!keys || !values)))
        return tj_err(TJ_ERR_ARG, "%s: bad counts or NULL arrays (n %d, nmeta %d)", op, n, nmeta);
    if ((rc = check_names(op, "tensor", n, names)) || (rc = check_names(op, "metadata key", nmeta, keys)))
        return rc;
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], "__metadata__"))
            return tj_err(TJ_ERR_ARG, "%s: a tensor may not be named \"__metadata__\"", op);
    for (int i = 0; i < nmeta; i++)
        if (!values[i] || !utf8_valid(values[i]))
            return tj_err(TJ_ERR_ARG, "%s: the value of metadata \"%.60s\" is %s", op, keys[i],
                          values[i] ? "not valid UTF-8" : "NULL");

    /* 8-byte dtypes first, so every tensor's data is aligned to its element size, as the
     * reference writer does (it also sorts by name; we keep the caller's order). */
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if ((tj_dtype_size(ts[i]->dtype) == 8) == (pass == 0)) order[k++] = i;

    uint64_t *begin = n ? tj_mem_alloc(sizeof *begin * (size_t)n) : NULL;   /* by tensor */
    if (n && !begin) return TJ_ERR_OOM;
    uint64_t off = 0;
    for (int j = 0; j < n; j++) {
        begin[order[j]] = off;
        off += (uint64_t)ts[order[j]]->numel * tj_dtype_size(ts[order[j]]->dtype);
    }
    /* the header lists the tensors in the given order (a reader's order), the data follows `order` */
    cJSON *root = cJSON_CreateObject(), *meta = NULL;
    bool ok = root != NULL;
    if (ok && nmeta > 0) ok = add_item(root, "__metadata__", meta = cJSON_CreateObject());
    for (int i = 0; ok && i < nmeta; i++) ok = add_item(meta, keys[i], cJSON_CreateString(values[i]));
    for (int i = 0; ok && i < n; i++) {
        const tensor *t = ts[i];
        cJSON *e = cJSON_CreateObject(), *shape, *offs;
        if (!(ok = add_item(root, names[i], e))) break;
        ok = add_item(e, "dtype", cJSON_CreateString(st_dtype_name(t->dtype))) &&
             add_item(e, "shape", shape = cJSON_CreateArray());
        for (int d = 0; ok && d < t->shape.ndim; d++) ok = add_int(shape, (uint64_t)t->shape.dim[d]);
        uint64_t bytes = (uint64_t)t->numel * tj_dtype_size(t->dtype);
        ok = ok && add_item(e, "data_offsets", offs = cJSON_CreateArray()) &&
             add_int(offs, begin[i]) && add_int(offs, begin[i] + bytes);
    }
    if (begin) tj_mem_free(begin, sizeof *begin * (size_t)n);
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return tj_err(TJ_ERR_OOM, "%s: out of memory building the JSON header", op);
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    if (padded > TJ_ST_MAX_HEADER) {
        cJSON_free(text);
        return tj_err(TJ_ERR_ARG, "%s: the header would be %zu bytes, more than the limit of %" PRIu64,
                      op, padded, TJ_ST_MAX_HEADER);
    }
    unsigned char *h = tj_mem_alloc(8 + padded);
    if (!h) { cJSON_free(text); return TJ_ERR_OOM; }
    for (int i = 0; i < 8; i++) h[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(h + 8, text, len);
    memset(h + 8 + len, ' ', padded - len);
    cJSON_free(text);
    *hdr = h;
    *hdr_len = 8 + padded;
    return 0;
}

static int write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        if (w == 0) return EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory holding path, so the rename itself is durable. */
static int sync_dir(const char *path, const char *op) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? tj_mem_alloc((size_t)(slash - path) + 2) : NULL;
    if (slash && !dir) return TJ_ERR_OOM;
    if (dir) {
        size_t n = slash == path ? 1 : (size_t)(slash - path);   /* "/x": the root */
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    const char *d = dir ? dir : ".";
    int rc = 0, fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) rc = sys_err(op, "open directory", d, errno);
    else {
        /* some file systems cannot sync a directory (EINVAL): nothing more we can do there */
        if (fsync(fd) && errno != EINVAL) rc = sys_err(op, "sync directory", d, errno);
        close(fd);
    }
    if (dir) tj_mem_free(dir, (size_t)(slash - path) + 2);
    return rc;
}

int tj_st_write(const char *path, const char *op, int n, const char *const *names,
                tensor *const *ts, int nmeta, const char *const *keys, const char *const *values) {
    static _Atomic unsigned seq;
    int rc;
    if ((rc = host_check(op))) return rc;
    if (!path || !*path) return tj_err(TJ_ERR_ARG, "%s: the path is %s", op, path ? "empty" : "NULL");
    if (n < 0) return tj_err(TJ_ERR_ARG, "%s: n is %d", op, n);
    int *order = n ? tj_mem_alloc(sizeof *order * (size_t)n) : NULL;
    if (n && !order) return TJ_ERR_OOM;
    unsigned char *hdr = NULL;
    size_t hlen = 0, tlen = strlen(path) + 48;
    char *tmp = NULL;
    int fd = -1;
    if ((rc = tj_st_build_header(op, n, names, ts, nmeta, keys, values, &hdr, &hlen, order))) goto done;
    if (!(tmp = tj_mem_alloc(tlen))) { rc = TJ_ERR_OOM; goto done; }
    snprintf(tmp, tlen, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&seq, 1u));
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) < 0) {
        rc = sys_err(op, "create", tmp, errno);
        goto done;
    }
    int e = write_all(fd, hdr, hlen);
    for (int j = 0; !e && j < n; j++) {
        const tensor *t = ts[order[j]];
        e = write_all(fd, t->data, (size_t)t->numel * tj_dtype_size(t->dtype));
    }
    if (e) { rc = sys_err(op, "write", tmp, e); goto fail; }
    if (fsync(fd)) { rc = sys_err(op, "sync", tmp, errno); goto fail; }
    e = close(fd) ? errno : 0;
    fd = -1;
    if (e) { rc = sys_err(op, "write (close)", tmp, e); goto fail; }
    if (rename(tmp, path)) {
        e = errno;
        char what[64];
        snprintf(what, sizeof what, "rename %.40s to", strrchr(tmp, '/') ? strrchr(tmp, '/') + 1 : tmp);
        rc = sys_err(op, what, path, e);
        goto fail;
    }
    rc = sync_dir(path, op);
    goto done;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
done:
    if (tmp) tj_mem_free(tmp, tlen);
    if (hdr) tj_mem_free(hdr, hlen);
    if (order) tj_mem_free(order, sizeof *order * (size_t)n);
    return rc;
}

/* ---- the public functions ---------------------------------------------------------------------- */

static int not_tracing(const char *op) {
    if (tj_thread_state()->trace)
        return tj_err(TJ_ERR_STATE, "%s: cannot run inside a compiled function while it is traced "
                      "(a replay would not do it again)", op);
    return 0;
}

int tj_safetensors_save(const char *path, int n, const char *const *names, tj_tensor *const *ts,
                        int nmeta, const char *const *meta_keys, const char *const *meta_values) {
    const char *op = "safetensors_save";
    int rc;
    if ((rc = not_tracing(op))) return rc;
    if (n < 0 || (n > 0 && (!names || !ts)))
        return tj_err(TJ_ERR_ARG, "%s: n is %d with %s", op, n, n < 0 ? "no tensors" : "a NULL array");
    tensor **tt = n ? tj_mem_alloc(sizeof *tt * (size_t)n) : NULL;
    if (n && !tt) return TJ_ERR_OOM;
    for (int i = 0; i < n && !rc; i++) {
        char what[48];
        snprintf(what, sizeof what, "%s: ts[%d]", op, i);
        if (!(tt[i] = tj_resolve(ts[i], what, 4))) rc = ts[i] ? TJ_ERR_STALE : TJ_ERR_ARG;
    }
    if (!rc) rc = tj_st_write(path, op, n, names, tt, nmeta, meta_keys, meta_values);
    if (tt) tj_mem_free(tt, sizeof *tt * (size_t)n);
    return rc;
}

int tj_safetensors_load(const char *path, int *n, char ***names, tj_tensor ***ts) {
    const char *op = "safetensors_load";
    if (n) *n = 0;
    if (names) *names = NULL;
    if (ts) *ts = NULL;
    int rc;
    if ((rc = not_tracing(op))) return rc;
    if (!path || !n || !names || !ts)
        return tj_err(TJ_ERR_ARG, "%s: %s is NULL", op, !path ? "path" : !n ? "n" : !names ? "names" : "ts");
    tj_st_file f;
    if ((rc = tj_st_read(path, op, &f))) return rc;
    char **nm = NULL;
    tj_tensor **hs = NULL;
    if (f.n > 0) {
        nm = tj_mem_alloc(sizeof *nm * (size_t)f.n);
        hs = tj_mem_alloc(sizeof *hs * (size_t)f.n);
        if (!nm || !hs) {
            if (nm) tj_mem_free(nm, sizeof *nm * (size_t)f.n);
            if (hs) tj_mem_free(hs, sizeof *hs * (size_t)f.n);
            tj_st_file_free(&f);   /* the tensors stay in the scope */
            return TJ_ERR_OOM;
        }
        for (int i = 0; i < f.n; i++) {
            nm[i] = f.e[i].name;   /* handed over */
            f.e[i].name = NULL;
            hs[i] = tj_handle(f.e[i].t);
        }
    }
    *n = f.n;
    *names = nm;
    *ts = hs;
    tj_st_file_free(&f);
    return 0;
}

void tj_safetensors_free_list(int n, char **names, tj_tensor **ts) {
    if (n <= 0) return;
    if (names) {
        for (int i = 0; i < n; i++) str_free(names[i]);
        tj_mem_free(names, sizeof *names * (size_t)n);
    }
    if (ts) tj_mem_free(ts, sizeof *ts * (size_t)n);
}
