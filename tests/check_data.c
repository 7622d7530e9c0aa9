/* check_data.c: datasets (runtime/data/): slices of tensors, CSV files, shuffle, batch,
 * repeat, take, the iterator's position, and every error a user or a file can cause.
 * Fixtures for the error cases are in tests/data/, found beside this file through
 * __FILE__; format variants (CRLF, BOM, no last newline) are written to temporary files so
 * that no line-end conversion can touch them. Elements are compared through tj_snprint,
 * which prints shape, dtype and every value, or bit for bit through their data. */
#define _POSIX_C_SOURCE 200809L   /* mkstemp */
#include "tapejit.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ---- helpers ----------------------------------------------------------------------------- */

/* dir(__FILE__) + "/" + rel; four results may be alive at once. */
static const char *src_path(const char *rel) {
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    const char *f = __FILE__, *slash = strrchr(f, '/');
    int n = slash ? (int)(slash - f) : 1;
    snprintf(b, sizeof buf[0], "%.*s/%s", n, slash ? f : ".", rel);
    return b;
}
#define FIXTURE(name) src_path("data/" name)
#define IRIS src_path("../examples/data/iris.csv")

static const char *const IRIS_COLS[] = {"Petal.Length", "Sepal.Length", "Petal.Width", "Sepal.Width"};
static const int IRIS_GROUPS[] = {3, 1};

static tj_dataset *iris(void) { return tj_dataset_from_csv(IRIS, 2, IRIS_GROUPS, IRIS_COLS); }

/* Writes n bytes to a new temporary file; returns its path (static, one at a time). */
static const char *write_tmp(const char *bytes, size_t n) {
    static char path[64];
    strcpy(path, "/tmp/tj_check_data_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *fp = fdopen(fd, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
    return path;
}

/* Every component of out[0, n) printed with tj_snprint, joined with " | ". */
static void fingerprint(char *buf, size_t size, int n, tj_tensor **out) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && k < size; i++) {
        if (i) k += (size_t)snprintf(buf + k, size - k, " | ");
        if (k >= size) break;
        int m = tj_snprint(buf + k, size - k, out[i]);
        ck_assert_int_ge(m, 0);
        k += (size_t)m;
    }
}

/* Elements left in this epoch (each in its own scope). */
static int64_t count_rest(tj_dataset *d) {
    int64_t n = 0;
    tj_tensor *out[8];
    for (;;) {
        tj_scope_begin();
        int r = tj_dataset_next(d, out);
        tj_scope_end();
        ck_assert_msg(r >= 0, "dataset_next failed: %s", tj_last_error());
        if (r == 0) return n;
        n++;
    }
}

/* A dataset of n elements: x_i = (2i, 2i+1) f32 and y_i = 100 + i int32. */
static tj_dataset *pairs(int n) {
    tj_scope_begin();
    float x[64];
    int32_t y[32];
    for (int i = 0; i < 2 * n; i++) x[i] = (float)i;
    for (int i = 0; i < n; i++) y[i] = 100 + i;
    tj_tensor *ts[2] = {tj_tensor_from(TJ_F32, TJ_SHAPE(n, 2), x), tj_tensor_from(TJ_I32, TJ_SHAPE(n), y)};
    tj_dataset *d = tj_dataset_from_tensors(2, ts);
    tj_scope_end();     /* the inputs die here; the dataset has its own copy */
    ck_assert_msg(d != NULL, "%s", tj_last_error());
    return d;
}

/* The y values (int32 scalars or a batch of them) of one epoch, flattened, into ys. */
static int epoch_ys(tj_dataset *d, int *ys, int cap) {
    int n = 0;
    tj_tensor *out[2];
    for (;;) {
        tj_scope_begin();
        int r = tj_dataset_next(d, out);
        ck_assert_msg(r >= 0, "%s", tj_last_error());
        if (r == 1)
            for (int64_t i = 0; i < tj_tensor_numel(out[1]); i++) {
                ck_assert_int_lt(n, cap);
                ys[n++] = (int)tu_get(out[1], i);
            }
        tj_scope_end();
        if (r == 0) return n;
    }
}

static void teardown(void) {
    tj_set_allocator(NULL, NULL);
    tj_clear_error();
}

/* ---- slices of tensors ---------------------------------------------------------------------- */

START_TEST(from_tensors_values_and_order) {
    tj_dataset *d = pairs(5);
    ck_assert_int_eq(tj_dataset_arity(d), 2);
    for (int i = 0; i < 5; i++) {
        tj_scope_begin();
        tj_tensor *out[2];
        ck_assert_int_eq(tj_dataset_next(d, out), 1);
        tj_shape sx = tj_tensor_shape(out[0]), sy = tj_tensor_shape(out[1]);
        ck_assert_int_eq(sx.ndim, 1);
        ck_assert_int_eq(sx.dim[0], 2);
        ck_assert_int_eq(sy.ndim, 0);
        ck_assert_int_eq(tj_tensor_dtype(out[0]), TJ_F32);
        ck_assert_int_eq(tj_tensor_dtype(out[1]), TJ_I32);
        ck_assert_double_eq(tu_get(out[0], 0), 2 * i);
        ck_assert_double_eq(tu_get(out[0], 1), 2 * i + 1);
        ck_assert_double_eq(tj_item(out[1]), 100 + i);
        tj_scope_end();
    }
    tj_tensor *out[2];
    ck_assert_int_eq(tj_dataset_next(d, out), 0);
    ck_assert_int_eq(tj_dataset_next(d, out), 0);      /* stays at the end */
    ck_assert_int_eq(tj_dataset_reset(d), 0);
    ck_assert_int_eq(count_rest(d), 5);
    ck_assert_int_eq(tj_error_code(), 0);
    tj_dataset_free(d);
}
END_TEST

START_TEST(from_tensors_higher_rank_and_f64) {
    double v[2 * 2 * 3];
    for (int i = 0; i < 12; i++) v[i] = i * 0.5;
    tj_tensor *t = tj_tensor_from(TJ_F64, TJ_SHAPE(2, 2, 3), v);
    tj_dataset *d = tj_dataset_from_tensors(1, &t);
    ck_assert_ptr_nonnull(d);
    tj_tensor *out[1];
    char buf[256];
    ck_assert_int_eq(tj_dataset_next(d, out), 1);
    tj_snprint(buf, sizeof buf, out[0]);
    ck_assert_str_eq(buf, "tj.Tensor([[0.  0.5 1. ] [1.5 2.  2.5]], shape=(2, 3), dtype=float64)");
    ck_assert_int_eq(tj_dataset_next(d, out), 1);
    ck_assert_double_eq(tu_get(out[0], 5), 5.5);
    ck_assert_int_eq(tj_dataset_next(d, out), 0);
    tj_dataset_free(d);
}
END_TEST

START_TEST(outputs_belong_to_innermost_scope) {
    tj_dataset *d = pairs(3);
    tj_tensor *out[2];
    tj_scope_begin();
    ck_assert_int_eq(tj_dataset_next(d, out), 1);
    ck_assert_int_eq(tj_tensor_numel(out[0]), 2);
    tj_scope_end();
    ck_assert_int_eq(tj_tensor_numel(out[0]), -1);
    ck_assert_error(TJ_ERR_STALE, "scope has ended");
    tj_dataset_free(d);
}
END_TEST

START_TEST(batch_keeps_or_drops_the_remainder) {
    tj_dataset *d = tj_dataset_batch(pairs(5), 2, false);
    ck_assert_ptr_nonnull(d);
    int64_t rows[3] = {2, 2, 1};
    for (int b = 0; b < 3; b++) {
        tj_scope_begin();
        tj_tensor *out[2];
        ck_assert_int_eq(tj_dataset_next(d, out), 1);
        tj_shape sx = tj_tensor_shape(out[0]), sy = tj_tensor_shape(out[1]);
        ck_assert_int_eq(sx.ndim, 2);
        ck_assert_int_eq(sx.dim[0], rows[b]);
        ck_assert_int_eq(sx.dim[1], 2);
        ck_assert_int_eq(sy.ndim, 1);
        ck_assert_int_eq(sy.dim[0], rows[b]);
        for (int64_t i = 0; i < rows[b]; i++) {
            ck_assert_double_eq(tu_get(out[0], 2 * i), 2 * (2 * b + i));
            ck_assert_double_eq(tu_get(out[1], i), 100 + 2 * b + i);
        }
        tj_scope_end();
    }
    ck_assert_int_eq(count_rest(d), 0);
    tj_dataset_free(d);

    d = tj_dataset_batch(pairs(5), 2, true);
    ck_assert_int_eq(count_rest(d), 2);
    tj_dataset_free(d);

    tj_tensor *out[2];
    char buf[512];
    d = tj_dataset_batch(pairs(3), 7, false);         /* one short batch */
    ck_assert_int_eq(tj_dataset_next(d, out), 1);
    fingerprint(buf, sizeof buf, 2, out);
    ck_assert_str_eq(buf, "tj.Tensor([[0. 1.] [2. 3.] [4. 5.]], shape=(3, 2), dtype=float32) | "
                          "tj.Tensor([100 101 102], shape=(3,), dtype=int32)");
    ck_assert_int_eq(tj_dataset_next(d, out), 0);
    tj_dataset_free(d);
    d = tj_dataset_batch(pairs(3), 7, true);          /* ... dropped */
    ck_assert_int_eq(count_rest(d), 0);
    tj_dataset_free(d);
    d = tj_dataset_batch(tj_dataset_batch(pairs(4), 2, false), 2, false);   /* batch of batches */
    ck_assert_int_eq(tj_dataset_next(d, out), 1);
    ck_assert_int_eq(tj_tensor_shape(out[0]).ndim, 3);
    ck_assert_int_eq(tj_tensor_shape(out[0]).dim[0], 2);
    ck_assert_int_eq(tj_tensor_shape(out[0]).dim[1], 2);
    ck_assert_double_eq(tu_get(out[1], 3), 103);
    ck_assert_int_eq(tj_dataset_next(d, out), 0);
    tj_dataset_free(d);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

START_TEST(take_and_repeat_counts) {
    int ys[64];
    tj_dataset *d = tj_dataset_repeat(pairs(5), 3);
    ck_assert_int_eq(epoch_ys(d, ys, 64), 15);
    for (int i = 0; i < 15; i++) ck_assert_int_eq(ys[i], 100 + i % 5);
    ck_assert_int_eq(tj_dataset_reset(d), 0);
    ck_assert_int_eq(count_rest(d), 15);               /* every epoch repeats again */
    tj_dataset_free(d);

    d = tj_dataset_take(tj_dataset_repeat(pairs(5), 3), 7);
    ck_assert_int_eq(epoch_ys(d, ys, 64), 7);
    ck_assert_int_eq(ys[5], 100);
    ck_assert_int_eq(ys[6], 101);
    tj_dataset_free(d);

    d = tj_dataset_repeat(tj_dataset_take(pairs(5), 3), 2);
    ck_assert_int_eq(epoch_ys(d, ys, 64), 6);
    const int want[6] = {100, 101, 102, 100, 101, 102};
    for (int i = 0; i < 6; i++) ck_assert_int_eq(ys[i], want[i]);
    tj_dataset_free(d);

    struct { int64_t take, repeat, want; } cases[] = {
        {0, 1, 0}, {-1, 1, 5}, {9, 1, 5}, {5, 0, 0}, {-1, 2, 10}, {0, -1, 0},   /* empty forever: ends */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        d = tj_dataset_repeat(tj_dataset_take(pairs(5), cases[c].take), cases[c].repeat);
        ck_assert_msg(count_rest(d) == cases[c].want, "take %lld repeat %lld", (long long)cases[c].take,
                      (long long)cases[c].repeat);
        tj_dataset_free(d);
    }
    d = tj_dataset_take(tj_dataset_repeat(pairs(5), -1), 12);   /* forever, cut */
    ck_assert_int_eq(epoch_ys(d, ys, 64), 12);
    ck_assert_int_eq(ys[11], 101);
    tj_dataset_free(d);

    d = tj_dataset_repeat(tj_dataset_batch(pairs(5), 2, false), 2);   /* partial batch each pass */
    ck_assert_int_eq(epoch_ys(d, ys, 64), 10);
    ck_assert_int_eq(ys[5], 100);
    tj_dataset_free(d);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- CSV ---------------------------------------------------------------------------------------- */

/* Collapses runs of spaces, so numpy's column padding ("5.  0.2") compares with the guide's
 * printout ("5. 0.2"). */
static void squeeze(char *s) {
    char *w = s;
    for (char *r = s; *r; r++)
        if (!(*r == ' ' && w > s && w[-1] == ' ')) *w++ = *r;
    *w = '\0';
}

START_TEST(iris_first_batch_matches_the_guide) {
    tj_dataset *d = tj_dataset_batch(iris(), 10, false);
    ck_assert_msg(d != NULL, "%s", tj_last_error());
    ck_assert_int_eq(tj_dataset_arity(d), 2);
    tj_tensor *out[2];
    ck_assert_int_eq(tj_dataset_next(d, out), 1);
    const float x[10][3] = {{1.4f, 5.1f, 0.2f}, {1.4f, 4.9f, 0.2f}, {1.3f, 4.7f, 0.2f}, {1.5f, 4.6f, 0.2f},
                            {1.4f, 5.0f, 0.2f}, {1.7f, 5.4f, 0.4f}, {1.4f, 4.6f, 0.3f}, {1.5f, 5.0f, 0.2f},
                            {1.4f, 4.4f, 0.2f}, {1.5f, 4.9f, 0.1f}};
    const float y[10] = {3.5f, 3.0f, 3.2f, 3.1f, 3.6f, 3.9f, 3.4f, 3.4f, 2.9f, 3.1f};
    tj_shape sx = tj_tensor_shape(out[0]), sy = tj_tensor_shape(out[1]);
    ck_assert_int_eq(sx.ndim, 2);
    ck_assert_int_eq(sx.dim[0], 10);
    ck_assert_int_eq(sx.dim[1], 3);
    ck_assert_int_eq(sy.ndim, 2);
    ck_assert_int_eq(sy.dim[0], 10);
    ck_assert_int_eq(sy.dim[1], 1);
    ck_assert_int_eq(memcmp(tj_tensor_data(out[0]), x, sizeof x), 0);
    ck_assert_int_eq(memcmp(tj_tensor_data(out[1]), y, sizeof y), 0);
    char buf[1024];
    tj_snprint(buf, sizeof buf, out[0]);
    ck_assert_str_eq(buf, "tj.Tensor([[1.4 5.1 0.2] [1.4 4.9 0.2] [1.3 4.7 0.2] [1.5 4.6 0.2] "
                          "[1.4 5.  0.2] [1.7 5.4 0.4] [1.4 4.6 0.3] [1.5 5.  0.2] [1.4 4.4 0.2] "
                          "[1.5 4.9 0.1]], shape=(10, 3), dtype=float32)");
    squeeze(buf);     /* the Keras eager guide's printout */
    ck_assert_ptr_nonnull(strstr(buf, "[[1.4 5.1 0.2] [1.4 4.9 0.2] [1.3 4.7 0.2] [1.5 4.6 0.2] [1.4 5. 0.2] "
                                      "[1.7 5.4 0.4] [1.4 4.6 0.3] [1.5 5. 0.2] [1.4 4.4 0.2] [1.5 4.9 0.1]]"));
    ck_assert_int_eq(count_rest(d), 14);                /* 150 rows */
    tj_dataset_free(d);

    d = iris();
    ck_assert_int_eq(count_rest(d), 150);
    tj_dataset_free(d);
}
END_TEST

/* The same two rows whatever the line ends, quoting, BOM, blank lines and spaces. */
START_TEST(csv_formats) {
    static const struct { const char *name, *text; } cases[] = {
        {"LF", "a,b c,name\n1,2.5,x\n3,-0.4,y\n"},
        {"CRLF", "a,b c,name\r\n1,2.5,x\r\n3,-0.4,y\r\n"},
        {"no last newline", "a,b c,name\n1,2.5,x\n3,-0.4,y"},
        {"CRLF, no last newline", "a,b c,name\r\n1,2.5,x\r\n3,-0.4,y"},
        {"quoted header, BOM", "\xEF\xBB\xBF\"a\",\"b c\",\"name\"\n1,2.5,\"x, \"\"quoted\"\"\"\n3,-0.4,y\n"},
        {"blank lines, spaces", "a , b c,name\n\n 1 ,\t2.5 ,x\n\r\n3,-4e-1 ,y\n\n\n"},
        {"quoted numbers, line break in a string", "a,b c,name\n\"1\",\" 2.5\",\"two\nlines\"\n3,-0.4,y\n"},
        {"R write.csv", "\"\",\"a\",\"b c\",\"name\"\n\"1\",1,2.5,\"x\"\n\"2\",3,-0.4,\"y\"\n"},
    };
    const char *cols[] = {"b c", "a"};
    const int groups[] = {1, 1};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *path = write_tmp(cases[c].text, strlen(cases[c].text));
        tj_dataset *d = tj_dataset_from_csv(path, 2, groups, cols);
        ck_assert_msg(d != NULL, "%s: %s", cases[c].name, tj_last_error());
        tj_tensor *out[2];
        char buf[256];
        ck_assert_int_eq(tj_dataset_next(d, out), 1);
        fingerprint(buf, sizeof buf, 2, out);
        ck_assert_msg(strcmp(buf, "tj.Tensor([2.5], shape=(1,), dtype=float32) | "
                                  "tj.Tensor([1.], shape=(1,), dtype=float32)") == 0, "%s: %s", cases[c].name, buf);
        ck_assert_int_eq(tj_dataset_next(d, out), 1);
        ck_assert_float_eq(*(const float *)tj_tensor_data(out[0]), -0.4f);
        ck_assert_float_eq(*(const float *)tj_tensor_data(out[1]), 3.0f);
        ck_assert_msg(tj_dataset_next(d, out) == 0, "%s: more than 2 rows", cases[c].name);
        tj_dataset_free(d);
        unlink(path);
    }
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- shuffle ------------------------------------------------------------------------------------- */

static bool is_permutation(const int *ys, int n) {
    bool seen[64] = {false};
    for (int i = 0; i < n; i++) {
        int k = ys[i] - 100;
        if (k < 0 || k >= n || seen[k]) return false;
        seen[k] = true;
    }
    return true;
}

START_TEST(shuffle_is_a_permutation_each_epoch) {
    int64_t buffers[] = {1, 2, 3, 10, 1000};
    for (size_t b = 0; b < sizeof buffers / sizeof buffers[0]; b++) {
        tj_dataset *d = tj_dataset_shuffle(pairs(10), buffers[b], 42);
        for (int e = 0; e < 4; e++) {
            int ys[16];
            ck_assert_int_eq(epoch_ys(d, ys, 16), 10);
            ck_assert_msg(is_permutation(ys, 10), "buffer %lld epoch %d", (long long)buffers[b], e);
            /* a buffer of B can only give one of the first B elements first */
            ck_assert_int_lt(ys[0] - 100, buffers[b]);
            if (buffers[b] == 1)
                for (int i = 0; i < 10; i++) ck_assert_int_eq(ys[i], 100 + i);
            ck_assert_int_eq(tj_dataset_reset(d), 0);
        }
        tj_dataset_free(d);
    }
}
END_TEST

START_TEST(shuffle_order_depends_on_seed_and_epoch_only) {
    int a[3][16], b[3][16], c[16];
    tj_dataset *da = tj_dataset_shuffle(pairs(12), 100, 7);
    tj_dataset *db = tj_dataset_batch(tj_dataset_shuffle(pairs(12), 100, 7), 5, false);
    tj_dataset *dc = tj_dataset_shuffle(pairs(12), 100, 8);
    for (int e = 0; e < 3; e++) {
        ck_assert_int_eq(epoch_ys(da, a[e], 16), 12);
        ck_assert_int_eq(epoch_ys(db, b[e], 16), 12);
        ck_assert_int_eq(memcmp(a[e], b[e], sizeof(int) * 12), 0);   /* same seed, same order */
        tj_dataset_reset(da);
        tj_dataset_reset(db);
    }
    ck_assert_int_ne(memcmp(a[0], a[1], sizeof(int) * 12), 0);   /* each epoch reshuffles */
    ck_assert_int_ne(memcmp(a[1], a[2], sizeof(int) * 12), 0);
    ck_assert_int_eq(epoch_ys(dc, c, 16), 12);
    ck_assert_int_ne(memcmp(a[0], c, sizeof(int) * 12), 0);     /* another seed, another order */
    /* restoring epoch 1 gives epoch 1's order, whatever ran before */
    ck_assert_int_eq(tj_dataset_set_state(dc, (int64_t[2]){1, 0}), 0);
    tj_dataset_free(dc);
    dc = tj_dataset_shuffle(pairs(12), 100, 7);
    ck_assert_int_eq(tj_dataset_set_state(dc, (int64_t[2]){2, 0}), 0);
    ck_assert_int_eq(epoch_ys(dc, c, 16), 12);
    ck_assert_int_eq(memcmp(a[2], c, sizeof(int) * 12), 0);
    tj_dataset_free(da);
    tj_dataset_free(db);
    tj_dataset_free(dc);

    /* under a repeat, every pass reshuffles */
    int r[32];
    tj_dataset *dr = tj_dataset_repeat(tj_dataset_shuffle(pairs(12), 100, 7), 2);
    ck_assert_int_eq(epoch_ys(dr, r, 32), 24);
    ck_assert(is_permutation(r, 12));
    ck_assert(is_permutation(r + 12, 12));
    ck_assert_int_ne(memcmp(r, r + 12, sizeof(int) * 12), 0);
    tj_dataset_free(dr);
}
END_TEST

/* A full-buffer shuffle's first element is uniform over the 10 elements: chi-square over
 * 2000 seeds, 9 degrees of freedom, bound at p = 0.001 (27.88). Also the position where
 * element 0 lands, and the same at epoch 1. Deterministic: the seeds are fixed. */
START_TEST(shuffle_first_element_is_uniform) {
    enum { N = 10, SEEDS = 2000 };
    for (int e = 0; e < 2; e++) {
        int first[N] = {0}, where0[N] = {0};
        for (int s = 0; s < SEEDS; s++) {
            tj_dataset *d = tj_dataset_shuffle(pairs(N), N, (uint64_t)s * 0x9E3779B97F4A7C15ull + 1);
            if (e) tj_dataset_reset(d);
            int ys[N];
            ck_assert_int_eq(epoch_ys(d, ys, N), N);
            first[ys[0] - 100]++;
            for (int i = 0; i < N; i++)
                if (ys[i] == 100) where0[i]++;
            tj_dataset_free(d);
        }
        double chi_first = 0, chi_where = 0, expect = (double)SEEDS / N;
        for (int i = 0; i < N; i++) {
            chi_first += (first[i] - expect) * (first[i] - expect) / expect;
            chi_where += (where0[i] - expect) * (where0[i] - expect) / expect;
        }
        ck_assert_msg(chi_first < 27.88, "epoch %d: chi-square of the first element %g", e, chi_first);
        ck_assert_msg(chi_where < 27.88, "epoch %d: chi-square of element 0's position %g", e, chi_where);
    }
}
END_TEST

/* ---- the iterator's position ----------------------------------------------------------------- */

static tj_dataset *iris_pipeline(void) {
    tj_dataset *d = tj_dataset_batch(tj_dataset_shuffle(iris(), 50, 7), 32, false);
    ck_assert_msg(d != NULL, "%s", tj_last_error());
    return d;
}

/* The next batch into x (32*3) and y (32); its row count; resets at the end of an epoch. */
static int64_t next_batch(tj_dataset *d, float *x, float *y) {
    tj_scope_begin();
    tj_tensor *out[2];
    int r = tj_dataset_next(d, out);
    if (r == 0) {
        ck_assert_int_eq(tj_dataset_reset(d), 0);
        r = tj_dataset_next(d, out);
    }
    ck_assert_msg(r == 1, "%s", tj_last_error());
    int64_t rows = tj_tensor_shape(out[0]).dim[0];
    memset(x, 0, sizeof(float) * 32 * 3);
    memset(y, 0, sizeof(float) * 32);
    memcpy(x, tj_tensor_data(out[0]), sizeof(float) * 3 * (size_t)rows);
    memcpy(y, tj_tensor_data(out[1]), sizeof(float) * (size_t)rows);
    tj_scope_end();
    return rows;
}

START_TEST(state_restores_bit_for_bit) {
    tj_dataset *d = iris_pipeline();
    for (int e = 0; e < 2; e++) {
        ck_assert_int_eq(count_rest(d), 5);         /* 4 of 32 and one of 22 */
        ck_assert_int_eq(tj_dataset_reset(d), 0);
    }
    float x[5][32 * 3], y[5][32], x2[32 * 3], y2[32];
    int64_t rows[5];
    for (int b = 0; b < 3; b++) next_batch(d, x[0], y[0]);
    int64_t st[2];
    ck_assert_int_eq(tj_dataset_get_state(d, st), 0);
    ck_assert_int_eq(st[0], 2);
    ck_assert_int_eq(st[1], 3);
    for (int b = 0; b < 5; b++) rows[b] = next_batch(d, x[b], y[b]);   /* crosses into epoch 3 */
    ck_assert_int_eq(rows[1], 22);
    tj_dataset_free(d);

    d = iris_pipeline();
    ck_assert_int_eq(tj_dataset_set_state(d, st), 0);
    int64_t now[2];
    tj_dataset_get_state(d, now);
    ck_assert_int_eq(now[0], 2);
    ck_assert_int_eq(now[1], 3);
    for (int b = 0; b < 5; b++) {
        ck_assert_int_eq(next_batch(d, x2, y2), rows[b]);
        ck_assert_msg(memcmp(x2, x[b], sizeof x2) == 0 && memcmp(y2, y[b], sizeof y2) == 0,
                      "batch %d after the restore differs", b);
    }
    tj_dataset_free(d);
}
END_TEST

/* For several pipeline shapes: a fresh pipeline set to (epoch, p), for every p of the
 * first three epochs, continues exactly as the pipeline that got there by iterating. This
 * holds skip (the fast path of set_state) to next's semantics in every node. */
typedef tj_dataset *(*builder)(void);
static tj_dataset *p_shuffle_batch(void) { return tj_dataset_batch(tj_dataset_shuffle(pairs(7), 3, 1), 2, false); }
static tj_dataset *p_shuffle_repeat_batch(void) {
    return tj_dataset_batch(tj_dataset_repeat(tj_dataset_shuffle(pairs(7), 100, 2), 3), 4, false);
}
static tj_dataset *p_batch_repeat(void) { return tj_dataset_repeat(tj_dataset_batch(pairs(7), 2, false), 2); }
static tj_dataset *p_forever_take_batch(void) {
    return tj_dataset_batch(tj_dataset_take(tj_dataset_repeat(pairs(7), -1), 20), 3, true);
}
static tj_dataset *p_take_shuffle_repeat_take(void) {
    return tj_dataset_take(tj_dataset_repeat(tj_dataset_shuffle(tj_dataset_take(pairs(7), 5), 2, 3), 2), 9);
}
static tj_dataset *p_batch_shuffle_repeat(void) {
    return tj_dataset_repeat(tj_dataset_shuffle(tj_dataset_batch(pairs(7), 3, true), 10, 4), 2);
}
static tj_dataset *p_repeat_batch_take(void) {
    return tj_dataset_take(tj_dataset_batch(tj_dataset_repeat(pairs(7), 2), 3, false), 4);
}
static tj_dataset *p_repeat_batch_drop(void) {
    return tj_dataset_batch(tj_dataset_repeat(tj_dataset_take(pairs(7), 5), 3), 4, true);
}

START_TEST(state_restores_every_position) {
    static const builder builders[] = {p_shuffle_batch, p_shuffle_repeat_batch, p_batch_repeat,
                                       p_forever_take_batch, p_take_shuffle_repeat_take,
                                       p_batch_shuffle_repeat, p_repeat_batch_take, p_repeat_batch_drop};
    enum { EPOCHS = 3, MAXN = 32, FP = 400 };
    static char ref[EPOCHS][MAXN][FP];
    for (size_t k = 0; k < sizeof builders / sizeof builders[0]; k++) {
        int len[EPOCHS];
        tj_dataset *d = builders[k]();
        ck_assert_msg(d != NULL, "%s", tj_last_error());
        for (int e = 0; e < EPOCHS; e++) {
            tj_tensor *out[2];
            for (len[e] = 0;; len[e]++) {
                tj_scope_begin();
                int r = tj_dataset_next(d, out);
                ck_assert_int_ge(r, 0);
                if (r) {
                    ck_assert_int_lt(len[e], MAXN);
                    fingerprint(ref[e][len[e]], FP, 2, out);
                }
                tj_scope_end();
                if (!r) break;
            }
            tj_dataset_reset(d);
        }
        tj_dataset_free(d);
        for (int e = 0; e < EPOCHS; e++) {
            for (int p = 0; p <= len[e]; p++) {
                d = builders[k]();
                ck_assert_int_eq(tj_dataset_set_state(d, (int64_t[2]){e, p}), 0);
                for (int i = p;; i++) {
                    tj_tensor *out[2];
                    char fp[FP];
                    tj_scope_begin();
                    int r = tj_dataset_next(d, out);
                    ck_assert_int_eq(r, i < len[e]);
                    if (r) {
                        fingerprint(fp, FP, 2, out);
                        ck_assert_msg(strcmp(fp, ref[e][i]) == 0, "pipeline %zu, restored to (%d, %d): "
                                      "element %d is %s, not %s", k, e, p, i, fp, ref[e][i]);
                    }
                    tj_scope_end();
                    if (!r) break;
                }
                tj_dataset_free(d);
            }
        }
        ck_assert_int_gt(len[0], 0);
    }
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

START_TEST(state_errors_leave_the_position) {
    tj_dataset *d = tj_dataset_shuffle(pairs(5), 5, 3);
    int ys[8];
    tj_tensor *out[2];
    ck_assert_int_eq(tj_dataset_next(d, out), 1);
    ck_assert_int_eq(tj_dataset_next(d, out), 1);
    int64_t st[2];
    tj_dataset_get_state(d, st);
    ck_assert_int_eq(tj_dataset_set_state(d, (int64_t[2]){4, 6}), TJ_ERR_VALUE);
    ck_assert_error(TJ_ERR_VALUE, "dataset_set_state: epoch 4 has 5 elements, so position 6 does not exist");
    ck_assert_int_eq(tj_dataset_set_state(d, (int64_t[2]){-1, 0}), TJ_ERR_VALUE);
    ck_assert_error(TJ_ERR_VALUE, "epoch -1, position 0: both must be >= 0");
    ck_assert_int_eq(tj_dataset_set_state(d, NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "dataset_set_state: state is NULL");
    int64_t now[2];
    tj_dataset_get_state(d, now);
    ck_assert_int_eq(now[0], st[0]);
    ck_assert_int_eq(now[1], st[1]);
    ck_assert_int_eq(epoch_ys(d, ys, 8), 3);            /* the rest of the epoch is still there */
    tj_dataset_free(d);
    ck_assert_int_eq(tj_dataset_get_state(NULL, st), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "dataset_get_state: the dataset is NULL");
    d = pairs(2);
    ck_assert_int_eq(tj_dataset_get_state(d, NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "state is NULL");
    /* far positions under a repeat forever are found by arithmetic, not by replay */
    tj_dataset *f = tj_dataset_batch(tj_dataset_repeat(pairs(5), -1), 4, false);
    ck_assert_int_eq(tj_dataset_set_state(f, (int64_t[2]){3, INT64_C(100000000000000)}), 0);
    ck_assert_int_eq(tj_dataset_next(f, out), 1);
    char buf[128];
    tj_snprint(buf, sizeof buf, out[1]);
    ck_assert_str_eq(buf, "tj.Tensor([100 101 102 103], shape=(4,), dtype=int32)");   /* 4e14 % 5 = 0 */
    tj_dataset_free(f);
    f = tj_dataset_repeat(pairs(5), -1);
    ck_assert_int_eq(tj_dataset_set_state(f, (int64_t[2]){0, INT64_MAX - 5}), 0);
    ck_assert_int_eq(tj_dataset_next(f, out), 1);
    ck_assert_double_eq(tj_item(out[1]), 100 + (INT64_MAX - 5) % 5);
    tj_dataset_free(f);
    /* the end of an epoch is a valid position */
    ck_assert_int_eq(tj_dataset_set_state(d, (int64_t[2]){0, 2}), 0);
    ck_assert_int_eq(tj_dataset_next(d, out), 0);
    tj_dataset_free(d);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------------- */

static void csv_error(const char *path, int code, const char *part) {
    tj_dataset *d = tj_dataset_from_csv(path, 2, IRIS_GROUPS, IRIS_COLS);
    ck_assert_msg(d == NULL, "%s: no error", path);
    ck_assert_error(code, part);
}

START_TEST(csv_errors) {
    csv_error(FIXTURE("bad_number.csv"), TJ_ERR_VALUE,
              "bad_number.csv line 7, column Petal.Width: \"abc\" is not a number");
    ck_assert(tj_dataset_from_csv(FIXTURE("bad_number.csv"), 2, IRIS_GROUPS, IRIS_COLS) == NULL);
    ck_assert_str_eq(strstr(tj_last_error(), "dataset_from_csv: "), tj_last_error());
    tj_clear_error();
    csv_error(FIXTURE("empty_field.csv"), TJ_ERR_VALUE, "empty_field.csv line 3, column Sepal.Width: the field is empty");
    csv_error(FIXTURE("no_header.csv"), TJ_ERR_ARG, "no column \"Petal.Length\" in ");
    csv_error(FIXTURE("no_header.csv"), TJ_ERR_ARG, "the first line looks like data, but a header line is required");
    csv_error(FIXTURE("empty.csv"), TJ_ERR_VALUE, "empty.csv is empty, but a header line with the column names is required");
    csv_error(FIXTURE("header_only.csv"), TJ_ERR_VALUE, "header_only.csv has a header but no rows");
    csv_error(FIXTURE("truncated.csv"), TJ_ERR_VALUE, "truncated.csv line 5 has 2 fields, but the header has 5");
    csv_error(FIXTURE("unclosed_quote.csv"), TJ_ERR_VALUE, "unclosed_quote.csv line 2: a quoted field is not closed");
    csv_error(FIXTURE("out_of_range.csv"), TJ_ERR_VALUE,
              "out_of_range.csv line 3, column Sepal.Width: \"1e39\" is out of range for float32");
    csv_error(FIXTURE("does_not_exist.csv"), TJ_ERR_IO, "dataset_from_csv: cannot open ");
    csv_error(FIXTURE("does_not_exist.csv"), TJ_ERR_IO, "does_not_exist.csv: No such file or directory");
    csv_error(FIXTURE(""), TJ_ERR_IO, "Is a directory");

    const char *missing[] = {"Petal.Len", "Sepal.Length", "Petal.Width", "Sepal.Width"};
    ck_assert(tj_dataset_from_csv(IRIS, 2, IRIS_GROUPS, missing) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_csv: no column \"Petal.Len\" in ");
    ck_assert(tj_dataset_from_csv(IRIS, 2, IRIS_GROUPS, missing) == NULL);
    ck_assert_error(TJ_ERR_ARG, "iris.csv (columns: Sepal.Length, Sepal.Width, Petal.Length, Petal.Width, Species)");
    const char *species[] = {"Species"};
    ck_assert(tj_dataset_from_csv(IRIS, 1, (int[]){1}, species) == NULL);
    ck_assert_error(TJ_ERR_VALUE, "iris.csv line 2, column Species: \"setosa\" is not a number");
    const char *dup[] = {"Sepal.Length"};
    ck_assert(tj_dataset_from_csv(FIXTURE("duplicate_column.csv"), 1, (int[]){1}, dup) == NULL);
    ck_assert_error(TJ_ERR_VALUE, "column \"Sepal.Length\" appears twice in the header of");
    const char *width[] = {"Sepal.Width"};             /* the unselected duplicate is fine */
    tj_dataset *d = tj_dataset_from_csv(FIXTURE("duplicate_column.csv"), 1, (int[]){1}, width);
    ck_assert_ptr_nonnull(d);
    tj_dataset_free(d);

    /* arguments */
    ck_assert(tj_dataset_from_csv(NULL, 2, IRIS_GROUPS, IRIS_COLS) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_csv: path is NULL");
    ck_assert(tj_dataset_from_csv(IRIS, 0, IRIS_GROUPS, IRIS_COLS) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_csv: ngroups is 0, must be >= 1");
    ck_assert(tj_dataset_from_csv(IRIS, 2, NULL, IRIS_COLS) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_csv: group_sizes is NULL");
    ck_assert(tj_dataset_from_csv(IRIS, 2, IRIS_GROUPS, NULL) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_csv: columns is NULL");
    ck_assert(tj_dataset_from_csv(IRIS, 2, (int[]){3, 0}, IRIS_COLS) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_csv: group 1 has 0 columns, must be >= 1");
    ck_assert(tj_dataset_from_csv(IRIS, 2, IRIS_GROUPS, (const char *[]){"Sepal.Width", NULL, "a", "b"}) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_csv: column 1 is NULL");

    /* odd bytes in a field are shown escaped */
    static const char odd[] = "a,b\n1,\"x\"\"\x01\"\n";
    const char *path = write_tmp(odd, sizeof odd - 1);
    ck_assert(tj_dataset_from_csv(path, 1, (int[]){1}, (const char *[]){"b"}) == NULL);
    ck_assert_error(TJ_ERR_VALUE, "line 2, column b: \"x\\\"\\x01\" is not a number");
    unlink(path);
    static const char after[] = "a,b\n1,\"2\"x\n";
    path = write_tmp(after, sizeof after - 1);
    ck_assert(tj_dataset_from_csv(path, 1, (int[]){1}, (const char *[]){"a"}) == NULL);
    ck_assert_error(TJ_ERR_VALUE, "line 2: text after the closing quote of field 2");
    unlink(path);
}
END_TEST

START_TEST(pipeline_errors) {
    float x[10] = {0};
    int32_t y[4] = {0};
    tj_tensor *ts[2] = {tj_tensor_from(TJ_F32, TJ_SHAPE(5, 2), x), tj_tensor_from(TJ_I32, TJ_SHAPE(4), y)};
    ck_assert(tj_dataset_from_tensors(2, ts) == NULL);
    ck_assert_error(TJ_ERR_SHAPE, "dataset_from_tensors: the tensors must agree on dimension 0, "
                                  "but tensor 0 is (5, 2) and tensor 1 is (4,)");
    tj_tensor *s = tj_scalar(1.0);
    ck_assert(tj_dataset_from_tensors(1, &s) == NULL);
    ck_assert_error(TJ_ERR_SHAPE, "dataset_from_tensors: tensor 0 is a scalar");
    ck_assert(tj_dataset_from_tensors(0, ts) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_tensors: n is 0");
    ck_assert(tj_dataset_from_tensors(1, NULL) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_tensors: the tensor array is NULL");
    ck_assert(tj_dataset_from_tensors(2, (tj_tensor *[]){ts[0], NULL}) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_from_tensors: argument 1 is NULL");
    tj_scope_begin();
    tj_tensor *gone = tj_zeros(TJ_F32, TJ_SHAPE(3));
    tj_scope_end();
    ck_assert(tj_dataset_from_tensors(1, &gone) == NULL);
    ck_assert_error(TJ_ERR_STALE, "dataset_from_tensors: argument 0 is a tensor whose scope has ended");
    /* an empty dataset is fine */
    tj_tensor *none = tj_zeros(TJ_F32, TJ_SHAPE(0, 3));
    tj_dataset *d = tj_dataset_from_tensors(1, &none);
    ck_assert_int_eq(count_rest(d), 0);
    tj_dataset_free(d);

    /* transformations: bad arguments free the dataset they were given (ASan checks) */
    ck_assert(tj_dataset_batch(pairs(3), 0, false) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_batch: batch_size is 0, must be >= 1");
    ck_assert(tj_dataset_shuffle(pairs(3), 0, 1) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_shuffle: buffer_size is 0, must be >= 1");
    ck_assert(tj_dataset_repeat(pairs(3), -2) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_repeat: count is -2, must be >= 0 or -1 (forever)");
    ck_assert(tj_dataset_take(pairs(3), -5) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_take: count is -5, must be >= 0 or -1 (all)");
    ck_assert(tj_dataset_batch(NULL, 2, false) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_batch: the dataset is NULL");
    ck_assert(tj_dataset_shuffle(NULL, 2, 0) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_shuffle: the dataset is NULL");
    ck_assert(tj_dataset_repeat(NULL, 2) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_repeat: the dataset is NULL");
    ck_assert(tj_dataset_take(NULL, 2) == NULL);
    ck_assert_error(TJ_ERR_ARG, "dataset_take: the dataset is NULL");
    /* a chain keeps the first error and needs one check */
    ck_assert(tj_dataset_batch(tj_dataset_shuffle(tj_dataset_from_csv(FIXTURE("missing.csv"), 2, IRIS_GROUPS,
                                                                      IRIS_COLS), 10, 1), 4, false) == NULL);
    ck_assert_error(TJ_ERR_IO, "missing.csv: No such file or directory");

    /* iteration */
    tj_tensor *out[2];
    ck_assert_int_eq(tj_dataset_next(NULL, out), -1);
    ck_assert_error(TJ_ERR_ARG, "dataset_next: the dataset is NULL");
    d = pairs(3);
    ck_assert_int_eq(tj_dataset_next(d, NULL), -1);
    ck_assert_error(TJ_ERR_ARG, "dataset_next: out is NULL");
    ck_assert_int_eq(tj_dataset_arity(NULL), -1);
    ck_assert_error(TJ_ERR_ARG, "dataset_arity: the dataset is NULL");
    ck_assert_int_ne(tj_dataset_reset(NULL), 0);
    ck_assert_error(TJ_ERR_ARG, "dataset_reset: the dataset is NULL");
    tj_dataset_free(NULL);
    ck_assert_int_eq(tj_error_code(), 0);

    /* a dataset inside a pipeline belongs to it */
    tj_dataset *b = tj_dataset_batch(d, 2, false);
    ck_assert_int_eq(tj_dataset_next(d, out), -1);
    ck_assert_error(TJ_ERR_STATE, "dataset_next: this dataset is part of a pipeline");
    ck_assert(tj_dataset_take(d, 1) == NULL);
    ck_assert_error(TJ_ERR_STATE, "dataset_take: the dataset is already part of a pipeline");
    tj_dataset_free(d);
    ck_assert_error(TJ_ERR_STATE, "dataset_free: this dataset is part of a pipeline");
    ck_assert_int_eq(count_rest(b), 2);                   /* b still works */
    tj_dataset_free(b);

    /* batching a batched dataset whose last batch is short fails when it gets there */
    d = tj_dataset_batch(tj_dataset_batch(pairs(5), 2, false), 3, false);
    ck_assert_int_eq(tj_dataset_next(d, out), -1);
    ck_assert_error(TJ_ERR_SHAPE, "dataset_batch: cannot stack elements of different shapes: component 0 is "
                                  "(2, 2) in element 0 of the batch and (1, 2) in element 2");
    ck_assert_int_eq(tj_dataset_next(d, out), -1);
    ck_assert_error(TJ_ERR_STATE, "dataset_next: an earlier error stopped this epoch");
    ck_assert_int_eq(tj_dataset_reset(d), 0);
    ck_assert_int_eq(tj_dataset_next(d, out), -1);
    ck_assert_error(TJ_ERR_SHAPE, "cannot stack");
    tj_dataset_free(d);
    d = tj_dataset_batch(tj_dataset_batch(pairs(5), 2, true), 3, false);     /* dropped: fine */
    ck_assert_int_eq(count_rest(d), 1);
    tj_dataset_free(d);

    /* rank limit */
    tj_tensor *big = tj_zeros(TJ_F32, TJ_SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    d = tj_dataset_batch(tj_dataset_batch(tj_dataset_from_tensors(1, &big), 1, false), 1, false);
    ck_assert(d == NULL);
    ck_assert_error(TJ_ERR_SHAPE, "dataset_batch: component 0 has rank 8; a batch of it would exceed 8 dimensions");
}
END_TEST

/* ---- memory: the n-th allocation fails ------------------------------------------------------ */

/* Live blocks by address (open addressing, deletion by backward shift), so that the size
 * tapejit gives back can be checked, and blocks from before the hook was set (the handle
 * table, scopes) pass through to realloc/free, which made them. */
#define TAB_SIZE (1u << 14)
static struct { void *p; size_t n; } tab[TAB_SIZE];
static struct { long count, fail_at, failed, bad; long long live, blocks; } M;

static size_t tab_hash(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    return (size_t)((x ^ (x >> 33)) & (TAB_SIZE - 1));
}

static long tab_find(const void *p) {
    for (size_t i = tab_hash(p);; i = (i + 1) & (TAB_SIZE - 1)) {
        if (tab[i].p == p) return (long)i;
        if (!tab[i].p) return -1;
    }
}

static void tab_del(size_t i) {
    M.live -= (long long)tab[i].n;
    M.blocks--;
    for (size_t j = i;;) {
        j = (j + 1) & (TAB_SIZE - 1);
        if (!tab[j].p) break;
        size_t k = tab_hash(tab[j].p);
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
        tab[i] = tab[j];
        i = j;
    }
    tab[i].p = NULL;
}

static void tab_put(void *p, size_t n) {
    ck_assert_msg(M.blocks < (long long)(TAB_SIZE / 2), "too many live blocks for the test's table");
    size_t i = tab_hash(p);
    while (tab[i].p) i = (i + 1) & (TAB_SIZE - 1);
    tab[i].p = p;
    tab[i].n = n;
    M.live += (long long)n;
    M.blocks++;
}

static void *fail_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    long at = ptr ? tab_find(ptr) : -1;
    if (at >= 0 && tab[at].n != osize) M.bad++;
    if (nsize == 0) {
        if (at >= 0) tab_del((size_t)at);
        free(ptr);
        return NULL;
    }
    if ((!ptr || nsize > osize) && ++M.count == M.fail_at) {
        M.failed++;
        return NULL;
    }
    void *q = realloc(ptr, nsize);
    if (!q) return NULL;
    if (at >= 0) tab_del((size_t)at);
    tab_put(q, nsize);
    return q;
}

/* Builds an iris pipeline, reads 2 epochs and a bit, restores a position, and writes
 * a fingerprint of each batch. Every failure must be an OOM; a failed next is recovered
 * by restoring the position before it, so the output is the same as without failures.
 * Returns false if construction failed. */
static bool oom_program(char *log, size_t size) {
    size_t k = 0;
    log[0] = '\0';
    tj_dataset *d = tj_dataset_batch(tj_dataset_shuffle(tj_dataset_repeat(tj_dataset_take(iris(), 30), 2),
                                                        20, 5), 16, false);    /* 16, 16, 16, 12 */
    if (!d) {
        ck_assert_msg(tj_error_code() == TJ_ERR_OOM, "error %d: %s", tj_error_code(), tj_last_error());
        tj_clear_error();
        return false;
    }
    int64_t restore_at[2] = {-1, -1};
    for (int step = 0; step < 14; step++) {
        int64_t st[2];
        ck_assert_int_eq(tj_dataset_get_state(d, st), 0);
        if (step == 7) memcpy(restore_at, st, sizeof st);
        if (step == 12) st[0] = restore_at[0], st[1] = restore_at[1];
        for (int attempt = 0;; attempt++) {
            ck_assert_int_lt(attempt, 3);
            if (step == 12 || attempt > 0) {
                if (tj_dataset_set_state(d, st)) {
                    ck_assert_int_eq(tj_error_code(), TJ_ERR_OOM);
                    tj_clear_error();
                    continue;
                }
            }
            tj_scope_begin();
            tj_tensor *out[2];
            int r = tj_dataset_next(d, out);
            if (r < 0) {
                ck_assert_msg(tj_error_code() == TJ_ERR_OOM, "error %d: %s", tj_error_code(), tj_last_error());
                tj_clear_error();
                tj_scope_end();
                continue;
            }
            char fp[4096];
            if (r == 1) fingerprint(fp, sizeof fp, 2, out);
            else strcpy(fp, "end");
            tj_scope_end();
            if (k < size) k += (size_t)snprintf(log + k, size - k, "%d:%s\n", step, fp);
            if (r == 0) {
                if (tj_dataset_reset(d)) {
                    ck_assert_int_eq(tj_error_code(), TJ_ERR_OOM);
                    tj_clear_error();
                }
            }
            break;
        }
    }
    tj_dataset_free(d);
    return true;
}

START_TEST(allocation_failures_are_clean) {
    static char want[1 << 16], got[1 << 16];
    tj_clear_error();
    oom_program(want, sizeof want);              /* warm up: the handle table, scopes */
    memset(&M, 0, sizeof M);
    tj_set_allocator(fail_alloc, NULL);
    tj_scope_begin();
    tj_scope_end();
    long long base = M.live;
    ck_assert(oom_program(want, sizeof want));
    ck_assert_int_eq(tj_error_code(), 0);
    long total = M.count;
    ck_assert_int_gt(total, 100);
    ck_assert(M.live == base);
    for (long n = 1; n <= total; n++) {
        M.count = 0;
        M.fail_at = n;
        M.failed = 0;
        bool built = oom_program(got, sizeof got);
        ck_assert_msg(M.failed == 1, "allocation %ld was not reached", n);
        if (built) ck_assert_msg(strcmp(got, want) == 0, "allocation %ld failing changed the batches", n);
        ck_assert_msg(M.live == base, "allocation %ld failing: %lld bytes leaked", n, M.live - base);
    }
    ck_assert_int_eq(M.bad, 0);
    tj_set_allocator(NULL, NULL);
}
END_TEST

/* ---- hostile files --------------------------------------------------------------------------------- */

/* Mutations of iris.csv (bytes replaced by CSV syntax or noise, cuts, deletions): each
 * gives a dataset or a clear error, never a crash (run under ASan in CI). */
START_TEST(mutated_files_never_crash) {
    FILE *fp = fopen(IRIS, "rb");
    ck_assert_ptr_nonnull(fp);
    static char orig[8192], buf[8192];
    size_t n = fread(orig, 1, sizeof orig, fp);
    fclose(fp);
    ck_assert_int_gt(n, 3000);
    uint64_t rng = 12345;
#define RAND() (rng = rng * 6364136223846793005ull + 1442695040888963407ull, (size_t)(rng >> 33))
    static const char syntax[] = ",\"\r\n \t0.e-+x\x00\xff";
    int ok = 0, failed = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(buf, orig, n);
        size_t len = n;
        int muts = 1 + (int)(RAND() % 6);
        for (int m = 0; m < muts && len > 0; m++) {
            size_t at = RAND() % len;
            switch (RAND() % 4) {
            case 0: buf[at] = syntax[RAND() % (sizeof syntax - 1)]; break;
            case 1: buf[at] = (char)RAND(); break;
            case 2: len = at; break;
            case 3: {
                size_t k = RAND() % 40;
                if (k > len - at) k = len - at;
                memmove(buf + at, buf + at + k, len - at - k);
                len -= k;
                break;
            }
            }
        }
        const char *path = write_tmp(buf, len);
        tj_dataset *d = tj_dataset_from_csv(path, 2, IRIS_GROUPS, IRIS_COLS);
        if (d) {
            ok++;
            d = tj_dataset_batch(d, 7, false);
            count_rest(d);
            tj_dataset_free(d);
        } else {
            failed++;
            int code = tj_error_code();
            ck_assert_msg(code == TJ_ERR_VALUE || code == TJ_ERR_ARG, "code %d: %s", code, tj_last_error());
            ck_assert_ptr_nonnull(strstr(tj_last_error(), "dataset_from_csv: "));
            tj_clear_error();
        }
        unlink(path);
    }
#undef RAND
    ck_assert_int_gt(ok, 10);
    ck_assert_int_gt(failed, 10);
}
END_TEST

Suite *data_suite(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, from_tensors_values_and_order);
    tcase_add_test(tc, from_tensors_higher_rank_and_f64);
    tcase_add_test(tc, outputs_belong_to_innermost_scope);
    tcase_add_test(tc, batch_keeps_or_drops_the_remainder);
    tcase_add_test(tc, take_and_repeat_counts);
    tcase_add_test(tc, iris_first_batch_matches_the_guide);
    tcase_add_test(tc, csv_formats);
    tcase_add_test(tc, shuffle_is_a_permutation_each_epoch);
    tcase_add_test(tc, shuffle_order_depends_on_seed_and_epoch_only);
    tcase_add_test(tc, shuffle_first_element_is_uniform);
    tcase_add_test(tc, state_restores_bit_for_bit);
    tcase_add_test(tc, state_restores_every_position);
    tcase_add_test(tc, state_errors_leave_the_position);
    tcase_add_test(tc, csv_errors);
    tcase_add_test(tc, pipeline_errors);
    tcase_add_test(tc, allocation_failures_are_clean);
    tcase_add_test(tc, mutated_files_never_crash);
    suite_add_tcase(s, tc);
    return s;
}
