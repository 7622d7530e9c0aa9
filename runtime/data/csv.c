/* csv.c: tj_dataset_from_csv: the selected columns of a CSV file with a header, as f32.
 * The file is hostile input: any bytes give a dataset or an error naming the file, the
 * line and the column, never a crash. Fields follow RFC 4180 (quotes, "" escapes, line
 * breaks inside quotes); LF or CRLF line ends, a last line with or without its newline, a
 * UTF-8 BOM, and blank lines are accepted. A selected field is parsed by strtof in the "C"
 * locale and must be a number as a whole, but for surrounding spaces; the other columns
 * may hold anything. The values become a table source (dataset.c), one row per element. */
#define _POSIX_C_SOURCE 200809L   /* newlocale, uselocale */
#include "data/data.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char OP[] = "dataset_from_csv";

/* ---- messages ------------------------------------------------------------------------------ */

/* s[0, n) fit for a message: control bytes as \xNN, '"' and '\' escaped, at most 40 bytes
 * shown, then "...". buf needs SHOW_MAX bytes. */
#define SHOW_MAX 200
static const char *show(const char *s, size_t n, char *buf) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 40) {
            memcpy(buf + k, "...", 3);
            k += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[k++] = '\\';
            buf[k++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            k += (size_t)snprintf(buf + k, SHOW_MAX - k, "\\x%02x", c);
        } else {
            buf[k++] = (char)c;
        }
    }
    buf[k] = '\0';
    return buf;
}

/* ---- reading records ------------------------------------------------------------------------- */

typedef struct field { const char *s; size_t n; bool quoted; } field;   /* quoted: inside the quotes */

typedef struct reader {
    const char *path;
    const char *p, *end;      /* the rest of the file */
    int64_t     line;         /* the line *p is on, from 1 */
    field      *f;            /* (nf) the fields of the last record */
    size_t      nf, cap;
    char       *text;         /* scratch for one field's text */
    size_t      tcap;
} reader;

static bool at_eol(const reader *r, const char *q) {
    return *q == '\n' || (*q == '\r' && (q + 1 == r->end || q[1] == '\n'));
}

static bool blank(char c) { return c == ' ' || c == '\t'; }

/* Moves past the line end at q (if any) and counts it. */
static const char *past_eol(reader *r, const char *q) {
    if (q < r->end && *q == '\r') q++;
    if (q < r->end && *q == '\n') q++;
    r->line++;
    return q;
}

static int push_field(reader *r, field f) {
    if (r->nf == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        field *p = tj_mem_realloc(r->f, sizeof(field) * r->cap, sizeof(field) * cap);
        if (!p) return -1;
        r->f = p;
        r->cap = cap;
    }
    r->f[r->nf++] = f;
    return 0;
}

/* Reads the next record that is not a blank line into r->f, setting *line to the line it
 * starts on: 1, 0 at the end of the file, -1 on error. */
static int read_record(reader *r, int64_t *line) {
    while (r->p < r->end && at_eol(r, r->p)) r->p = past_eol(r, r->p);
    if (r->p >= r->end) return 0;
    *line = r->line;
    r->nf = 0;
    const char *q = r->p;
    for (;;) {                                  /* one field per turn; q is at its start */
        const char *s = q;
        while (s < r->end && blank(*s)) s++;
        field f;
        if (s < r->end && *s == '"') {
            const char *c = ++s;
            for (;; c++) {
                if (c >= r->end)
                    return tj_err(TJ_ERR_VALUE, "%s: %s line %lld: a quoted field is not closed",
                                  OP, r->path, (long long)*line), -1;
                if (*c == '"') {
                    if (c + 1 < r->end && c[1] == '"') { c++; continue; }
                    break;
                }
                if (*c == '\n') r->line++;
            }
            f = (field){s, (size_t)(c - s), true};
            q = c + 1;
            while (q < r->end && blank(*q)) q++;
            if (q < r->end && *q != ',' && !at_eol(r, q))
                return tj_err(TJ_ERR_VALUE, "%s: %s line %lld: text after the closing quote of "
                              "field %zu", OP, r->path, (long long)r->line, r->nf + 1), -1;
        } else {
            while (q < r->end && *q != ',' && !at_eol(r, q)) q++;
            f = (field){s, (size_t)(q - s), false};
        }
        if (push_field(r, f)) return -1;
        if (q < r->end && *q == ',') {
            q++;
            continue;
        }
        r->p = q < r->end ? past_eol(r, q) : q;
        return 1;
    }
}

/* The text of field f into r->text (NUL-terminated; an embedded NUL stays): unquoted
 * fields lose surrounding spaces, quoted ones their "" escapes. NULL on OOM. */
static const char *field_text(reader *r, const field *f, size_t *len) {
    if (f->n + 1 > r->tcap) {
        size_t cap = f->n + 1 > 2 * r->tcap ? f->n + 1 : 2 * r->tcap;
        char *p = tj_mem_realloc(r->text, r->tcap, cap);
        if (!p) return NULL;
        r->text = p;
        r->tcap = cap;
    }
    size_t k = 0;
    if (f->quoted) {
        for (size_t i = 0; i < f->n; i++) {
            r->text[k++] = f->s[i];
            if (f->s[i] == '"') i++;              /* the second quote of "" */
        }
    } else {
        size_t a = 0, b = f->n;
        while (b > a && blank(f->s[b - 1])) b--;
        while (a < b && blank(f->s[a])) a++;
        memcpy(r->text, f->s + a, b - a);
        k = b - a;
    }
    r->text[k] = '\0';
    *len = k;
    return r->text;
}

typedef enum { NUM_OK, NUM_EMPTY, NUM_BAD, NUM_RANGE } num_status;

/* s[0, n) (NUL at s[n]) as a float32: strtof over the whole text but for surrounding
 * spaces and tabs; a finite text that rounds to infinity is out of range. */
static num_status parse_f32(const char *s, size_t n, float *out) {
    while (n > 0 && blank(s[n - 1])) n--;
    while (n > 0 && blank(*s)) { s++; n--; }
    if (n == 0) return NUM_EMPTY;
    if (*s == ' ' || (*s >= '\t' && *s <= '\r')) return NUM_BAD;     /* strtof would skip it */
    char *endp;
    errno = 0;
    float v = strtof(s, &endp);
    if (endp != s + n) return NUM_BAD;
    if (errno == ERANGE && isinf(v)) return NUM_RANGE;
    *out = v;
    return NUM_OK;
}

/* ---- the whole file -------------------------------------------------------------------------- */

/* The file's bytes in a block of *cap bytes; NULL with TJ_ERR_IO (strerror) or OOM. */
static char *read_file(const char *path, size_t *len, size_t *cap) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return tj_err(TJ_ERR_IO, "%s: cannot open %s: %s", OP, path, strerror(errno)), NULL;
    char *buf = NULL;
    size_t n = 0, c = 0;
    for (;;) {
        if (n == c) {
            size_t nc = c ? 2 * c : 65536;
            char *p = nc > c ? tj_mem_realloc(buf, c, nc) : NULL;
            if (!p) {
                if (nc <= c) tj_err(TJ_ERR_OOM, "%s: out of memory: %s is too large", OP, path);
                goto fail;
            }
            buf = p;
            c = nc;
        }
        size_t want = c - n, got = fread(buf + n, 1, want, fp);
        n += got;
        if (got < want) {
            if (ferror(fp)) {
                tj_err(TJ_ERR_IO, "%s: cannot read %s: %s", OP, path, strerror(errno));
                goto fail;
            }
            break;
        }
    }
    fclose(fp);
    *len = n;
    *cap = c;
    return buf;
fail:
    fclose(fp);
    tj_mem_free(buf, c);
    return NULL;
}

/* The header's names, each NUL-terminated, in one block. */
typedef struct header { char *names; size_t bytes; size_t n; size_t *off, *len; } header;

static void header_free(header *h) {
    tj_mem_free(h->names, h->bytes);
    tj_mem_free(h->off, sizeof(size_t) * h->n);
    tj_mem_free(h->len, sizeof(size_t) * h->n);
}

static int header_read(reader *r, header *h) {
    int64_t line;
    int rc = read_record(r, &line);
    if (rc < 0) return -1;
    if (rc == 0)
        return tj_err(TJ_ERR_VALUE, "%s: %s is empty, but a header line with the column names "
                      "is required", OP, r->path), -1;
    h->n = r->nf;
    for (size_t i = 0; i < r->nf; i++) h->bytes += r->f[i].n + 1;
    h->names = tj_mem_alloc(h->bytes);
    h->off = h->names ? tj_mem_alloc(sizeof(size_t) * h->n) : NULL;
    h->len = h->off ? tj_mem_alloc(sizeof(size_t) * h->n) : NULL;
    if (!h->len) return -1;
    size_t at = 0;
    for (size_t i = 0; i < h->n; i++) {
        size_t n;
        const char *s = field_text(r, &r->f[i], &n);
        if (!s) return -1;
        memcpy(h->names + at, s, n + 1);
        h->off[i] = at;
        h->len[i] = n;
        at += n + 1;
    }
    return 0;
}

/* The error for a column that is not in the header: lists the columns there are, and says
 * so when the first line looks like data (a name that is a number) rather than a header. */
static int no_column(const reader *r, const header *h, const char *name) {
    char list[320], b[SHOW_MAX];
    size_t k = 0;
    bool numbers = false;
    for (size_t i = 0; i < h->n; i++) {
        const char *s = h->names + h->off[i];
        float v;
        if (parse_f32(s, h->len[i], &v) == NUM_OK) numbers = true;
        if (k < 240) k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "",
                                            show(s, h->len[i], b));
        else if (k < sizeof list - 8) k += (size_t)snprintf(list + k, sizeof list - k, ", ...");
    }
    if (k >= sizeof list) k = sizeof list - 1;
    list[k] = '\0';
    return tj_err(TJ_ERR_ARG, "%s: no column \"%s\" in %s (columns: %s)%s", OP,
                  show(name, strlen(name), b), r->path, list,
                  numbers ? "; the first line looks like data, but a header line is required" : "");
}

tj_dataset *tj_dataset_from_csv(const char *path, int ngroups, const int *group_sizes,
                                const char *const *columns) {
    if (!path) return tj_err(TJ_ERR_ARG, "%s: path is NULL", OP), NULL;
    if (ngroups < 1) return tj_err(TJ_ERR_ARG, "%s: ngroups is %d, must be >= 1", OP, ngroups), NULL;
    if (!group_sizes) return tj_err(TJ_ERR_ARG, "%s: group_sizes is NULL", OP), NULL;
    if (!columns) return tj_err(TJ_ERR_ARG, "%s: columns is NULL", OP), NULL;
    int64_t ncols = 0;
    for (int g = 0; g < ngroups; g++) {
        if (group_sizes[g] < 1)
            return tj_err(TJ_ERR_ARG, "%s: group %d has %d columns, must be >= 1", OP, g,
                          group_sizes[g]), NULL;
        ncols += group_sizes[g];
        if (ncols > (INT64_C(1) << 24))
            return tj_err(TJ_ERR_ARG, "%s: more than 2^24 columns selected", OP), NULL;
    }
    for (int64_t j = 0; j < ncols; j++)
        if (!columns[j]) return tj_err(TJ_ERR_ARG, "%s: column %lld is NULL", OP, (long long)j), NULL;

    tj_dataset *d = NULL;
    size_t flen, fcap = 0;
    char *file = read_file(path, &flen, &fcap);
    if (!file) return NULL;
    reader r = {.path = path, .p = file, .end = file + flen, .line = 1};
    if (flen >= 3 && memcmp(file, "\xEF\xBB\xBF", 3) == 0) r.p += 3;     /* UTF-8 BOM */
    header h = {0};
    size_t *sel = NULL;                 /* (ncols) header index of each selected column */
    float *vals = NULL;                 /* (rows, ncols) */
    size_t vcap = 0, row_bytes = sizeof(float) * (size_t)ncols;
    int64_t rows = 0, line = 0;
    char b1[SHOW_MAX], b2[SHOW_MAX];
    /* strtof in the "C" locale whatever the program's locale (a ',' decimal point would
     * make every number bad); without one the current locale stays */
    locale_t c_loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0), old_loc = (locale_t)0;
    if (c_loc) old_loc = uselocale(c_loc);

    if (header_read(&r, &h)) goto done;
    sel = tj_mem_alloc(sizeof(size_t) * (size_t)ncols);
    if (!sel) goto done;
    for (int64_t j = 0; j < ncols; j++) {
        size_t want = strlen(columns[j]), found = h.n;
        for (size_t i = 0; i < h.n; i++) {
            if (h.len[i] != want || memcmp(h.names + h.off[i], columns[j], want) != 0) continue;
            if (found < h.n) {
                tj_err(TJ_ERR_VALUE, "%s: column \"%s\" appears twice in the header of %s (fields "
                       "%zu and %zu)", OP, show(columns[j], want, b1), path, found + 1, i + 1);
                goto done;
            }
            found = i;
        }
        if (found == h.n) {
            no_column(&r, &h, columns[j]);
            goto done;
        }
        sel[j] = found;
    }

    for (;;) {
        int rc = read_record(&r, &line);
        if (rc < 0) goto done;
        if (rc == 0) break;
        if (r.nf != h.n) {
            tj_err(TJ_ERR_VALUE, "%s: %s line %lld has %zu field%s, but the header has %zu", OP,
                   path, (long long)line, r.nf, r.nf == 1 ? "" : "s", h.n);
            goto done;
        }
        if ((size_t)rows == vcap / row_bytes) {
            size_t nc = vcap ? 2 * vcap : 64 * row_bytes;
            float *p = nc > vcap ? tj_mem_realloc(vals, vcap, nc) : NULL;
            if (!p) {
                if (nc <= vcap) tj_err(TJ_ERR_OOM, "%s: out of memory: %s has too many rows", OP, path);
                goto done;
            }
            vals = p;
            vcap = nc;
        }
        for (int64_t j = 0; j < ncols; j++) {
            size_t n;
            const char *s = field_text(&r, &r.f[sel[j]], &n);
            if (!s) goto done;
            const char *col = show(columns[j], strlen(columns[j]), b1);
            switch (parse_f32(s, n, &vals[(size_t)rows * (size_t)ncols + (size_t)j])) {
            case NUM_OK: break;
            case NUM_EMPTY:
                tj_err(TJ_ERR_VALUE, "%s: %s line %lld, column %s: the field is empty", OP, path,
                       (long long)line, col);
                goto done;
            case NUM_BAD:
                tj_err(TJ_ERR_VALUE, "%s: %s line %lld, column %s: \"%s\" is not a number", OP,
                       path, (long long)line, col, show(s, n, b2));
                goto done;
            case NUM_RANGE:
                tj_err(TJ_ERR_VALUE, "%s: %s line %lld, column %s: \"%s\" is out of range for "
                       "float32", OP, path, (long long)line, col, show(s, n, b2));
                goto done;
            }
        }
        rows++;
    }
    if (rows == 0) {
        tj_err(TJ_ERR_VALUE, "%s: %s has a header but no rows", OP, path);
        goto done;
    }

    d = tj_data_table(ngroups, rows, (char *)vals, vcap);
    vals = NULL;                        /* the table has it, or freed it */
    if (d) {
        int64_t at = 0;
        for (int g = 0; g < ngroups; g++) {
            tj_shape s = {.ndim = 1, .dim = {group_sizes[g]}};
            tj_data_table_col(d, g, TJ_F32, &s, sizeof(float) * (size_t)at, row_bytes);
            at += group_sizes[g];
        }
    }
done:
    if (c_loc) {
        uselocale(old_loc);
        freelocale(c_loc);
    }
    tj_mem_free(vals, vcap);
    tj_mem_free(sel, sizeof(size_t) * (size_t)ncols);
    header_free(&h);
    tj_mem_free(r.f, sizeof(field) * r.cap);
    tj_mem_free(r.text, r.tcap);
    tj_mem_free(file, fcap);
    return d;
}
