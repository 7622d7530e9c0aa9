/* check_io.c: safetensors files and checkpoints. Fixtures written by an independent writer
 * (tests/data/make_fixtures.py, standard library only) load with the right values, and that
 * script reads what tapejit writes (when /usr/bin/python3 exists). Hostile files (every
 * truncation, bad lengths, JSON, dtypes, shapes, offsets, names, metadata, 1000 random
 * corruptions) are errors with a message, never a crash. A failing save leaves no temporary
 * file and the old file as it was. Checkpoints restore exactly or change nothing and say
 * every mismatch; the manager keeps the newest N. Allocation failures leak nothing. */
#define _XOPEN_SOURCE 700   /* mkdtemp, nftw, popen, setrlimit */
#include "tapejit.h"
#include "core/core.h"
#include "io/safetensors.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

Suite *io_suite(void);

/* ---- files and directories ---------------------------------------------------------------- */

#ifdef TJ_TEST_DATA_DIR
static const char *data_dir(void) { return TJ_TEST_DATA_DIR; }
#else
/* tests/data next to this file (CMake passes absolute source paths) */
static const char *data_dir(void) {
    static char dir[1024];
    if (!dir[0]) {
        const char *slash = strrchr(__FILE__, '/');
        if (slash) snprintf(dir, sizeof dir, "%.*s/data", (int)(slash - __FILE__), __FILE__);
        else snprintf(dir, sizeof dir, "data");
    }
    return dir;
}
#endif

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tj_io_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void remove_tmpdir(void) {
    if (tmpdir[0]) nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static unsigned char *read_file(const char *path, size_t *n) {
    unsigned char *buf = (unsigned char *)tu_slurp(path, n);
    ck_assert_msg(buf != NULL, "cannot open %s", path);
    return buf;
}

static void write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(buf, 1, n, f), n);
    fclose(f);
}

/* Files in tmpdir whose name contains part. */
static int count_files(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (strstr(de->d_name, part)) n++;
    closedir(d);
    return n;
}

/* A file image: 8-byte length, the header json padded to 8 with spaces, then data. */
static unsigned char *image(const char *json, const void *data, size_t ndata, size_t *n) {
    size_t h = strlen(json), p = (h + 7) & ~(size_t)7;
    unsigned char *buf = malloc(8 + p + ndata + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)p >> (8 * i));
    memcpy(buf + 8, json, h);
    memset(buf + 8 + h, ' ', p - h);
    if (ndata) memcpy(buf + 8 + p, data, ndata);
    *n = 8 + p + ndata;
    return buf;
}

/* Parses buf from memory; returns the error code (0: parsed) and leaves nothing behind. */
static int parse_buf(const void *buf, size_t n) {
    tj_st_file f;
    tj_scope_begin();
    int rc = tj_safetensors_parse(buf, n, "parse", "buf", &f);
    if (!rc) tj_st_file_free(&f);
    else ck_assert_ptr_null(f.e);
    tj_scope_end();
    return rc;
}

/* The JSON header with data must be rejected with TJ_ERR_IO and a message containing part,
 * both from memory and from a file. */
static void expect_bad(const char *json, const void *data, size_t ndata, const char *part) {
    size_t n;
    unsigned char *buf = image(json, data, ndata, &n);
    tj_clear_error();
    ck_assert_msg(parse_buf(buf, n) == TJ_ERR_IO, "accepted: %s", json);
    ck_assert_error(TJ_ERR_IO, part);
    const char *p = tmp_path("bad.safetensors");
    write_file(p, buf, n);
    int cnt = 7;
    char **names = (char **)1;
    tj_tensor **ts = (tj_tensor **)1;
    ck_assert_int_eq(tj_safetensors_load(p, &cnt, &names, &ts), TJ_ERR_IO);
    ck_assert_int_eq(cnt, 0);
    ck_assert_ptr_null(names);
    ck_assert_ptr_null(ts);
    ck_assert_error(TJ_ERR_IO, part);
    free(buf);
}

static int find_name(int n, char **names, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

static void assert_shape(tj_tensor *t, tj_shape want) {
    tj_shape s = tj_tensor_shape(t);
    ck_assert_int_eq(s.ndim, want.ndim);
    for (int i = 0; i < s.ndim; i++) ck_assert_int_eq(s.dim[i], want.dim[i]);
}

/* The tests seed and restore the RNG: the suites after them (CK_FORK=no) see it as it was. */
static uint64_t rng_seed, rng_offset;

static void setup(void) {
    make_tmpdir();
    tj_clear_error();
    rng_seed = tj_thread_state()->rng_seed;
    rng_offset = tj_rng_offset();
}

static void teardown(void) {
    remove_tmpdir();
    tj_clear_error();
    tj_rng_set_state(rng_seed, rng_offset);
}

/* ---- fixtures written by tests/data/make_fixtures.py ------------------------------------------ */

START_TEST(test_fixture_basic) {
    char path[1200];
    snprintf(path, sizeof path, "%s/basic.safetensors", data_dir());
    tj_scope_begin();
    int n;
    char **names;
    tj_tensor **ts;
    ck_assert_int_eq(tj_safetensors_load(path, &n, &names, &ts), 0);
    ck_assert_int_eq(n, 3);
    /* the order of the header, not of the data */
    ck_assert_str_eq(names[0], "c");
    ck_assert_str_eq(names[1], "a");
    ck_assert_str_eq(names[2], "b");
    ck_assert_int_eq(tj_tensor_dtype(ts[0]), TJ_I32);
    assert_shape(ts[0], TJ_SHAPE(2, 2));
    const int32_t c[4] = {INT32_MIN, INT32_MAX, 0, -1};
    ck_assert_int_eq(memcmp(tj_tensor_data(ts[0]), c, sizeof c), 0);
    ck_assert_int_eq(tj_tensor_dtype(ts[1]), TJ_F32);
    assert_shape(ts[1], TJ_SHAPE(2, 3));
    const float a[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
    ck_assert_int_eq(memcmp(tj_tensor_data(ts[1]), a, sizeof a), 0);
    ck_assert_int_eq(tj_tensor_dtype(ts[2]), TJ_F64);
    assert_shape(ts[2], TJ_SHAPE(4));
    const double b[4] = {1.0 / 3.0, -1.7976931348623157e308, 4.9406564584124654e-324, -0.0};
    ck_assert_int_eq(memcmp(tj_tensor_data(ts[2]), b, sizeof b), 0);   /* bits: -0.0, subnormal */
    tj_safetensors_free_list(n, names, ts);

    /* metadata (through the internal reader: the public loader gives tensors only) */
    tj_st_file f;
    ck_assert_int_eq(tj_st_read(path, "test", &f), 0);
    ck_assert_int_eq(f.nmeta, 2);
    ck_assert_str_eq(tj_st_meta(&f, "format"), "pt");
    ck_assert_str_eq(tj_st_meta(&f, "note"), "h\xc3\xa9llo \xe2\x9c\x93");
    ck_assert_ptr_null(tj_st_meta(&f, "missing"));
    tj_st_file_free(&f);
    tj_scope_end();
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

START_TEST(test_fixture_scalar_empty) {
    char path[1200];
    snprintf(path, sizeof path, "%s/scalar_empty.safetensors", data_dir());
    tj_scope_begin();
    int n;
    char **names;
    tj_tensor **ts;
    ck_assert_int_eq(tj_safetensors_load(path, &n, &names, &ts), 0);
    ck_assert_int_eq(n, 4);
    int s = find_name(n, names, "scalar"), e = find_name(n, names, "empty"),
        e3 = find_name(n, names, "empty3"), v = find_name(n, names, "vec");
    ck_assert(s >= 0 && e >= 0 && e3 >= 0 && v >= 0);
    assert_shape(ts[s], TJ_SHAPE());
    ck_assert(tj_item(ts[s]) == 3.25);
    assert_shape(ts[e], TJ_SHAPE(0));
    ck_assert_int_eq(tj_tensor_numel(ts[e]), 0);
    assert_shape(ts[e3], TJ_SHAPE(2, 0, 3));
    ck_assert_int_eq(tj_tensor_dtype(ts[e3]), TJ_F64);
    ck_assert_int_eq(tj_tensor_dtype(ts[v]), TJ_I32);
    const int32_t want[3] = {7, 8, 9};
    ck_assert_int_eq(memcmp(tj_tensor_data(ts[v]), want, sizeof want), 0);
    tj_safetensors_free_list(n, names, ts);

    snprintf(path, sizeof path, "%s/none.safetensors", data_dir());
    ck_assert_int_eq(tj_safetensors_load(path, &n, &names, &ts), 0);
    ck_assert_int_eq(n, 0);
    tj_safetensors_free_list(n, names, ts);

    /* a valid file, in a dtype tapejit does not load */
    snprintf(path, sizeof path, "%s/bf16.safetensors", data_dir());
    ck_assert_int_eq(tj_safetensors_load(path, &n, &names, &ts), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "tensor \"w\" has dtype BF16; tapejit loads only F32, F64 and I32");
    tj_scope_end();
}
END_TEST

/* ---- round trips and the file tapejit writes -------------------------------------------------- */

/* A file of every dtype, a scalar, an empty tensor and metadata. */
static void save_sample(const char *path) {
    tj_scope_begin();
    const float w[6] = {0.1f, -2.5f, 3e38f, -0.0f, 1e-45f, 7.0f};
    const double d[3] = {0.1, -1e300, 2.0 / 3.0};
    const int32_t k[2] = {-7, 123456789};
    tj_tensor *ts[5] = {
        tj_tensor_from(TJ_F32, TJ_SHAPE(2, 3), w), tj_tensor_from(TJ_F64, TJ_SHAPE(3), d),
        tj_tensor_from(TJ_I32, TJ_SHAPE(2), k), tj_scalar(-1.5), tj_zeros(TJ_F32, TJ_SHAPE(0, 4))};
    const char *names[5] = {"layer/w", "d", "k", "s", "e"};
    const char *keys[2] = {"format", "quote"}, *vals[2] = {"pt", "say \"hi\"\n\\ \xc3\xa9"};
    ck_assert_int_eq(tj_safetensors_save(path, 5, names, ts, 2, keys, vals), 0);
    tj_scope_end();
}

START_TEST(test_roundtrip) {
    const char *p = tmp_path("x.safetensors");
    save_sample(p);
    ck_assert_int_eq(count_files(tmpdir, ".tmp-"), 0);
    size_t n1, n2;
    unsigned char *b1 = read_file(p, &n1);
    /* layout: header length a multiple of 8, the header a JSON object, data aligned */
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = h << 8 | b1[i];
    ck_assert_int_eq(h % 8, 0);
    ck_assert_int_eq(b1[8], '{');
    ck_assert_int_eq(b1[8 + h - 1] == '}' || b1[8 + h - 1] == ' ', 1);
    save_sample(p);   /* deterministic: the same bytes again */
    unsigned char *b2 = read_file(p, &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert_int_eq(memcmp(b1, b2, n1), 0);
    free(b2);

    tj_scope_begin();
    tj_st_file f;
    ck_assert_int_eq(tj_safetensors_parse(b1, n1, "test", "x", &f), 0);
    ck_assert_int_eq(f.n, 5);
    for (int i = 0; i < f.n; i++)   /* every tensor starts at a multiple of its element size */
        ck_assert_int_eq((8 + h + f.e[i].begin) % tj_dtype_size(f.e[i].dtype), 0);
    ck_assert_str_eq(tj_st_meta(&f, "quote"), "say \"hi\"\n\\ \xc3\xa9");
    tj_st_file_free(&f);
    free(b1);

    int n;
    char **names;
    tj_tensor **ts;
    ck_assert_int_eq(tj_safetensors_load(p, &n, &names, &ts), 0);
    ck_assert_int_eq(n, 5);
    ck_assert_str_eq(names[0], "layer/w");   /* the order given */
    ck_assert_str_eq(names[4], "e");
    const float w[6] = {0.1f, -2.5f, 3e38f, -0.0f, 1e-45f, 7.0f};
    ck_assert_int_eq(memcmp(tj_tensor_data(ts[0]), w, sizeof w), 0);
    const double d[3] = {0.1, -1e300, 2.0 / 3.0};
    ck_assert_int_eq(memcmp(tj_tensor_data(ts[1]), d, sizeof d), 0);
    ck_assert_int_eq(((const int32_t *)tj_tensor_data(ts[2]))[1], 123456789);
    assert_shape(ts[3], TJ_SHAPE());
    ck_assert(tj_item(ts[3]) == -1.5);
    assert_shape(ts[4], TJ_SHAPE(0, 4));
    tj_safetensors_free_list(n, names, ts);
    tj_scope_end();
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* The independent reader (make_fixtures.py dump) reads what tapejit wrote. */
START_TEST(test_python_reads_ours) {
    if (access("/usr/bin/python3", X_OK) != 0) return;   /* optional: no python here */
    const char *p = tmp_path("py.safetensors");
    save_sample(p);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/make_fixtures.py' dump '%s' 2>&1", data_dir(), p);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    char out[4096];
    size_t len = fread(out, 1, sizeof out - 1, f);
    out[len] = '\0';
    int status = pclose(f);
    const char *want =
        "d F64 [3] [0.10000000000000001 -1.0000000000000001e+300 0.66666666666666663]\n"
        "e F32 [0, 4] []\n"
        "k I32 [2] [-7 123456789]\n"
        "layer/w F32 [2, 3] [0.10000000149011612 -2.5 3.0000000054977558e+38 -0 1.4012984643248171e-45 7]\n"
        "s F32 [] [-1.5]\n"
        "meta format=pt\n"
        "meta quote=say \"hi\"\n\\ \xc3\xa9\n";
    ck_assert_msg(status == 0 && !strcmp(out, want), "python read:\n%s\nexpected:\n%s", out, want);
}
END_TEST

START_TEST(test_save_errors) {
    tj_scope_begin();
    tj_tensor *a = tj_ones(TJ_F32, TJ_SHAPE(2)), *b = tj_zeros(TJ_I32, TJ_SHAPE(1));
    tj_tensor *ts[2] = {a, b};
    const char *p = tmp_path("e.safetensors");
    const char *dup[2] = {"x", "x"};
    ck_assert_int_eq(tj_safetensors_save(p, 2, dup, ts, 0, NULL, NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "safetensors_save: two tensors are named \"x\"");
    const char *meta_name[2] = {"x", "__metadata__"};
    ck_assert_int_eq(tj_safetensors_save(p, 2, meta_name, ts, 0, NULL, NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "may not be named \"__metadata__\"");
    const char *bad_utf8[2] = {"x", "\xff"};
    ck_assert_int_eq(tj_safetensors_save(p, 2, bad_utf8, ts, 0, NULL, NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "tensor 1 (\"\xff\") is not valid UTF-8");
    const char *ok[2] = {"x", "y"}, *keys[2] = {"k", "k"}, *vals[2] = {"1", "2"};
    ck_assert_int_eq(tj_safetensors_save(p, 2, ok, ts, 2, keys, vals), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "two metadata keys are named \"k\"");
    tj_tensor *with_null[2] = {a, NULL};
    ck_assert_int_eq(tj_safetensors_save(p, 2, ok, with_null, 0, NULL, NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "safetensors_save: ts[1]: argument 4 is NULL");
    ck_assert_int_eq(tj_safetensors_save(p, -1, ok, ts, 0, NULL, NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "safetensors_save: n is -1");
    tj_scope_begin();
    tj_tensor *gone = tj_ones(TJ_F32, TJ_SHAPE(1));
    tj_scope_end();
    tj_tensor *stale[2] = {a, gone};
    ck_assert_int_eq(tj_safetensors_save(p, 2, ok, stale, 0, NULL, NULL), TJ_ERR_STALE);
    ck_assert_error(TJ_ERR_STALE, "safetensors_save: ts[1]: argument 4 is a tensor whose scope has ended");
    ck_assert_int_eq(access(p, F_OK), -1);   /* nothing was written */

    /* a directory that does not exist: the error names the temporary file and the reason */
    const char *nodir = tmp_path("no/such/dir/x.safetensors");
    ck_assert_int_eq(tj_safetensors_save(nodir, 2, ok, ts, 0, NULL, NULL), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "No such file or directory");
    ck_assert_int_eq(count_files(tmpdir, ".tmp-"), 0);

    /* loading: bad arguments, a missing file, a directory */
    int n;
    char **names;
    tj_tensor **lts;
    ck_assert_int_eq(tj_safetensors_load(NULL, &n, &names, &lts), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "safetensors_load: path is NULL");
    ck_assert_int_eq(tj_safetensors_load(tmp_path("missing"), &n, &names, &lts), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "cannot open");
    ck_assert_int_eq(tj_safetensors_load(tmpdir, &n, &names, &lts), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "not a regular file");
    tj_scope_end();
}
END_TEST

/* A save that fails half-way (the file size limit) or at the rename (the target is a
 * directory) leaves the old file byte for byte and no temporary file. */
START_TEST(test_save_atomic) {
    const char *p = tmp_path("keep.safetensors");
    save_sample(p);
    size_t n0, n1;
    unsigned char *before = read_file(p, &n0);

    tj_scope_begin();
    tj_tensor *big = tj_zeros(TJ_F32, TJ_SHAPE(1 << 16));   /* 256 KiB */
    const char *name[1] = {"big"};
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);   /* write fails with EFBIG instead */
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = tj_safetensors_save(p, 1, name, &big, 0, NULL, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    ck_assert_int_eq(rc, TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "safetensors_save: cannot write");
    ck_assert_int_eq(count_files(tmpdir, ".tmp-"), 0);
    unsigned char *after = read_file(p, &n1);
    ck_assert_int_eq(n0, n1);
    ck_assert_int_eq(memcmp(before, after, n0), 0);
    free(after);

    /* rename over a non-empty directory fails */
    const char *d = tmp_path("adir");
    ck_assert_int_eq(mkdir(d, 0777), 0);
    write_file(tmp_path("adir/f"), "x", 1);
    ck_assert_int_eq(tj_safetensors_save(d, 1, name, &big, 0, NULL, NULL), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "cannot rename");
    ck_assert_int_eq(count_files(tmpdir, ".tmp-"), 0);
    tj_scope_end();
    free(before);
}
END_TEST

/* ---- hostile files ------------------------------------------------------------------------------ */

START_TEST(test_truncated_everywhere) {
    char path[1200];
    snprintf(path, sizeof path, "%s/basic.safetensors", data_dir());
    size_t n;
    unsigned char *buf = read_file(path, &n);
    ck_assert_int_eq(parse_buf(buf, n), 0);
    const char *p = tmp_path("t.safetensors");
    for (size_t cut = 0; cut < n; cut++) {
        ck_assert_msg(parse_buf(buf, cut) == TJ_ERR_IO, "a file cut at %zu bytes was accepted", cut);
        ck_assert_str_ne(tj_last_error(), "");
        tj_clear_error();
        write_file(p, buf, cut);
        tj_scope_begin();
        tj_st_file f;
        ck_assert_int_eq(tj_st_read(p, "read", &f), TJ_ERR_IO);
        tj_scope_end();
        ck_assert_str_ne(tj_last_error(), "");
        tj_clear_error();
    }
    ck_assert_int_eq(parse_buf(buf, 0), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "the file has 0 bytes, fewer than the 8 of the header length");
    free(buf);
}
END_TEST

START_TEST(test_bad_lengths) {
    size_t n;
    unsigned char *buf = image("{}", NULL, 0, &n);
    ck_assert_int_eq(parse_buf(buf, n), 0);
    buf[0] = (unsigned char)(n - 8 + 1);   /* one past the end */
    ck_assert_int_eq(parse_buf(buf, n), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "the header length 9 is more than the 8 bytes after it");
    memset(buf, 0xff, 8);                   /* 2^64 - 1 */
    ck_assert_int_eq(parse_buf(buf, n), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "the header length 18446744073709551615 is more than the limit of 100000000 bytes");
    const uint64_t just_over = 100000001;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(just_over >> (8 * i));
    ck_assert_int_eq(parse_buf(buf, n), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "more than the limit");
    memset(buf, 0, 8);                      /* an empty header */
    ck_assert_int_eq(parse_buf(buf, n), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "the header does not start with '{'");
    free(buf);
}
END_TEST

START_TEST(test_bad_headers) {
    const unsigned char d16[16] = {0};
    expect_bad("{\"a\":", NULL, 0, "the header is not valid JSON");
    expect_bad("[1,2]", NULL, 0, "the header does not start with '{'");
    expect_bad(" {}", NULL, 0, "the header does not start with '{'");
    expect_bad("{}x", NULL, 0, "the header has bytes after its JSON object (at byte 2)");
    expect_bad("{\"a\":1}", NULL, 0, "tensor \"a\" is not a JSON object");
    expect_bad("{\"a\":{\"dtype\":\"F33\",\"shape\":[4],\"data_offsets\":[0,16]}}", d16, 16,
               "tensor \"a\" has an unknown dtype \"F33\"");
    expect_bad("{\"a\":{\"dtype\":\"f32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d16, 16, "unknown dtype \"f32\"");
    expect_bad("{\"a\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[0,16]}}", d16, 16,
               "tensor \"a\" has dtype F16; tapejit loads only F32, F64 and I32");
    expect_bad("{\"a\":{\"dtype\":32,\"shape\":[4],\"data_offsets\":[0,16]}}", d16, 16, "dtype is not a string");
    expect_bad("{\"a\":{\"shape\":[4],\"data_offsets\":[0,16]}}", d16, 16, "tensor \"a\" has no \"dtype\"");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", d16, 16, "tensor \"a\" has no \"shape\"");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4]}}", d16, 16, "tensor \"a\" has no \"data_offsets\"");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d16, 16,
               "tensor \"a\" has two \"dtype\" fields");
    /* shapes: negative, fractional, not numbers, too many dims, overflowing, inconsistent */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", d16, 16,
               "tensor \"a\": dimension 0 is not an integer in [0, 2^53]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,16]}}", d16, 16,
               "dimension 1 is not an integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", d16, 16, "dimension 0 is not an integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e400],\"data_offsets\":[0,16]}}", d16, 16, "dimension 0 is not an integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", d16, 16, "shape is not an array");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}", d16, 16,
               "tensor \"a\" has 9 dimensions; tapejit allows at most 8");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,9007199254740992],\"data_offsets\":[0,16]}}", d16, 16,
               "tensor \"a\": the shape has too many elements (overflow)");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,9007199254740992,9007199254740992],\"data_offsets\":[0,0]}}",
               NULL, 0, "the shape has too many elements");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740994],\"data_offsets\":[0,16]}}", d16, 16,
               "dimension 0 is not an integer in [0, 2^53]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", d16, 16,
               "tensor \"a\": shape (3,) of F32 needs 12 bytes, data_offsets [0, 16] hold 16");
    /* offsets: not a pair, reversed, past the end, overlapping, with a gap, short of the end */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16,32]}}", d16, 16,
               "data_offsets is not a pair of integers");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}", d16, 16,
               "data_offsets is not a pair of integers");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]}}", d16, 16,
               "data_offsets [16, 0] end before they begin");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", d16, 16,
               "data_offsets [8, 24] are outside the 16 bytes of data");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", d16, 16,
               "tensors \"a\" [0, 16] and \"b\" [8, 16] overlap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", d16, 16, "overlap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", d16, 16,
               "bytes [0, 8) of the data belong to no tensor");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d16, 16,
               "bytes [8, 16) of the data belong to no tensor");
    expect_bad("{}", d16, 16, "bytes [0, 16) of the data belong to no tensor");
    /* names and metadata */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", d16, 16,
               "two tensors are named \"a\"");
    expect_bad("{\"__metadata__\":{\"k\":1}}", NULL, 0, "metadata \"k\" is not a string");
    expect_bad("{\"__metadata__\":{\"k\":null}}", NULL, 0, "metadata \"k\" is not a string");
    expect_bad("{\"__metadata__\":[\"k\"]}", NULL, 0, "\"__metadata__\" is not a JSON object");
    expect_bad("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", NULL, 0, "metadata \"k\" appears twice");
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0, "two \"__metadata__\" objects");

    /* accepted: unknown fields (as the reference reader), whitespace padding, any key order */
    size_t n;
    unsigned char *buf = image("{\"a\":{\"data_offsets\":[0,16],\"x\":[1],\"shape\":[2,2],\"dtype\":\"I32\"}}\n\t",
                               d16, 16, &n);
    ck_assert_int_eq(parse_buf(buf, n), 0);
    free(buf);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* 1000 corruptions of a valid file (fixed seed): each is an error or a file that passes
 * every check; never a crash (ASan checks the reads). */
START_TEST(test_random_corruption) {
    char path[1200];
    snprintf(path, sizeof path, "%s/basic.safetensors", data_dir());
    size_t n;
    unsigned char *orig = read_file(path, &n), *buf = malloc(n);
    uint64_t s = 0x9E3779B97F4A7C15ull, hl = (uint64_t)orig[0] | (uint64_t)orig[1] << 8;
    int accepted = 0;
    for (int k = 0; k < 1000; k++) {
        memcpy(buf, orig, n);
        int flips = 1 + k % 4;
        for (int i = 0; i < flips; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            size_t at = (size_t)(s % n);
            /* half into the header, where the checks are; the rest anywhere */
            if (k % 2 == 0) at = 8 + (size_t)(s % hl);
            unsigned char v = (unsigned char)(s >> 32);
            static const char interesting[] = "{}[],:\" 0123456789-e.";
            if (k % 3 == 0) v = (unsigned char)interesting[(s >> 40) % (sizeof interesting - 1)];
            buf[at < n ? at : n - 1] = v;
        }
        int rc = parse_buf(buf, n);
        ck_assert_msg(rc == 0 || rc == TJ_ERR_IO, "variant %d: code %d", k, rc);
        if (rc) ck_assert_str_ne(tj_last_error(), "");
        accepted += rc == 0;
        tj_clear_error();
    }
    ck_assert_msg(accepted < 1000, "every corruption was accepted");
    free(buf);
    free(orig);
}
END_TEST

/* ---- checkpoints ------------------------------------------------------------------------------- */

typedef struct world {
    tj_module *model;
    tj_optimizer *opt;
    tj_dataset *data;
    tj_tensor *extra;       /* a plain variable */
    tj_checkpoint *ck;
} world;

/* A model (dense units1 -> dense 2) called once, Adam built, a dataset, a variable. */
static void world_new(world *w, int units1, bool second_layer) {
    tj_scope_begin();
    tj_module *layers[2] = {tj_dense("dense1", units1, TJ_ACT_RELU, true), tj_dense("dense2", 2, TJ_ACT_LINEAR, true)};
    w->model = tj_sequential("model", second_layer ? 2 : 1, layers);
    if (!second_layer) tj_module_free(layers[1]);
    ck_assert_ptr_nonnull(w->model);
    float xs[10 * 3];
    for (int i = 0; i < 30; i++) xs[i] = (float)i * 0.1f;
    tj_tensor *x = tj_tensor_from(TJ_F32, TJ_SHAPE(10, 3), xs);
    ck_assert_ptr_nonnull(tj_module_call(w->model, x, false));
    tj_tensor *vars[8];
    int nv = tj_module_variables(w->model, 8, vars);
    ck_assert_int_eq(nv, second_layer ? 4 : 2);
    w->opt = tj_adam(0.01, 0.9, 0.999, 1e-7);
    ck_assert_int_eq(tj_optimizer_build(w->opt, nv, vars), 0);
    w->data = tj_dataset_batch(tj_dataset_repeat(tj_dataset_from_tensors(1, &x), -1), 4, false);
    ck_assert_ptr_nonnull(w->data);
    w->extra = tj_variable(tj_full(TJ_I32, TJ_SHAPE(3), 5), "extra");
    w->ck = tj_checkpoint_new();
    ck_assert_int_eq(tj_checkpoint_add_module(w->ck, "model", w->model), 0);
    ck_assert_int_eq(tj_checkpoint_add_optimizer(w->ck, "opt", w->opt), 0);
    ck_assert_int_eq(tj_checkpoint_add_variable(w->ck, "extra", w->extra), 0);
    ck_assert_int_eq(tj_checkpoint_add_dataset(w->ck, "train", w->data), 0);
    tj_scope_end();
}

static void world_free(world *w) {
    tj_checkpoint_free(w->ck);
    tj_optimizer_free(w->opt);
    tj_module_free(w->model);
    tj_dataset_free(w->data);
    tj_variable_free(w->extra);
}

/* One training step: changes the weights, the slots and the step. */
static void world_step(world *w) {
    tj_scope_begin();
    tj_tensor *batch;
    ck_assert_int_eq(tj_dataset_next(w->data, &batch), 1);
    tj_tensor *vars[8];
    int nv = tj_module_variables(w->model, 8, vars);
    tj_tape *tape = tj_tape_begin(0);
    tj_tensor *loss = tj_sum(tj_mul(tj_module_call(w->model, batch, true), tj_module_call(w->model, batch, true)), 0, NULL, false);
    tj_tensor *grads[8];
    ck_assert_int_eq(tj_tape_gradient(tape, loss, nv, vars, grads), 0);
    tj_tape_free(tape);
    ck_assert_int_eq(tj_optimizer_apply(w->opt, nv, grads, vars), 0);
    ck_assert_int_eq(tj_assign(w->extra, tj_add(w->extra, tj_full(TJ_I32, TJ_SHAPE(3), 1))), 0);
    tj_rand_uniform(TJ_SHAPE(7), 0, 1);   /* moves the RNG */
    tj_scope_end();
}

/* Everything a checkpoint holds, as bytes, to compare two moments. */
typedef struct snap { unsigned char bytes[1 << 14]; size_t n; } snap;

static void take(const world *w, snap *s) {
    s->n = 0;
    tj_tensor *vars[32];
    int nv = tj_module_variables(w->model, 16, vars);
    nv += tj_optimizer_variables(w->opt, 16, vars + nv);
    vars[nv++] = w->extra;
    for (int i = 0; i < nv; i++) {
        size_t b = (size_t)tj_tensor_numel(vars[i]) * (tj_tensor_dtype(vars[i]) == TJ_F64 ? 8 : 4);
        ck_assert(s->n + b <= sizeof s->bytes);
        memcpy(s->bytes + s->n, tj_tensor_data(vars[i]), b);
        s->n += b;
    }
    int64_t st[2];
    ck_assert_int_eq(tj_dataset_get_state(w->data, st), 0);
    uint64_t rng[2] = {tj_thread_state()->rng_seed, tj_rng_offset()};
    memcpy(s->bytes + s->n, st, sizeof st);
    memcpy(s->bytes + s->n + sizeof st, rng, sizeof rng);
    s->n += sizeof st + sizeof rng;
}

static bool same(const snap *a, const snap *b) { return a->n == b->n && !memcmp(a->bytes, b->bytes, a->n); }

START_TEST(test_checkpoint_roundtrip) {
    static snap s0, s1, s2;
    tj_seed(42);
    world w;
    world_new(&w, 4, true);
    world_step(&w);
    take(&w, &s0);
    const char *p = tmp_path("ck.safetensors");
    ck_assert_int_eq(tj_checkpoint_save(w.ck, p), 0);
    world_step(&w);
    world_step(&w);
    take(&w, &s1);
    ck_assert(!same(&s0, &s1));
    ck_assert_int_eq(tj_checkpoint_restore(w.ck, p), 0);
    take(&w, &s2);
    ck_assert(same(&s0, &s2));
    /* and training goes on as it did the first time */
    world_step(&w);
    world_step(&w);
    take(&w, &s2);
    ck_assert(same(&s1, &s2));

    /* the file: names with prefixes, the optimizer's names, metadata as decimal strings */
    tj_scope_begin();
    tj_st_file f;
    ck_assert_int_eq(tj_st_read(p, "test", &f), 0);
    bool kernel = false, step = false;
    for (int i = 0; i < f.n; i++) {
        kernel |= !strcmp(f.e[i].name, "model/dense1/kernel");
        step |= !strcmp(f.e[i].name, "opt/step");
    }
    ck_assert(kernel && step);
    ck_assert_str_eq(tj_st_meta(&f, "tapejit.checkpoint_version"), "1");
    ck_assert_str_eq(tj_st_meta(&f, "tapejit.rng_seed"), "42");
    ck_assert_str_eq(tj_st_meta(&f, "tapejit.dataset/train"), "0 1");
    tj_st_file_free(&f);
    tj_scope_end();
    world_free(&w);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* A checkpoint of another model: every mismatch is named and nothing changes. */
START_TEST(test_checkpoint_mismatch) {
    static snap s0, s1;
    world a, b;
    world_new(&a, 16, false);
    const char *p = tmp_path("a.safetensors");
    ck_assert_int_eq(tj_checkpoint_save(a.ck, p), 0);
    world_new(&b, 32, true);
    world_step(&b);
    take(&b, &s0);
    ck_assert_int_eq(tj_checkpoint_restore(b.ck, p), TJ_ERR_ARG);
    const char *msg = tj_last_error();
    ck_assert_msg(strstr(msg, "checkpoint_restore: ") && strstr(msg, "a.safetensors does not match: "), "%s", msg);
    ck_assert_msg(strstr(msg, "does not match: missing \"model/dense2/kernel\", \"model/dense2/bias\", "
                              "\"opt/m/dense2/kernel\" and 3 more; \"model/dense1/kernel\" has shape (3, 16), "
                              "expected (3, 32); \"model/dense1/bias\" has shape (16,), expected (32,) and 4 more "
                              "(12 mismatches)"), "%s", msg);
    tj_clear_error();
    take(&b, &s1);
    ck_assert(same(&s0, &s1));

    /* the other way: a's checkpoint lacks nothing of the file but has fewer variables */
    const char *q = tmp_path("b.safetensors");
    ck_assert_int_eq(tj_checkpoint_save(b.ck, q), 0);
    ck_assert_int_eq(tj_checkpoint_restore(a.ck, q), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "does not match: unexpected \"model/dense2/kernel\", \"model/dense2/bias\", "
                    "\"opt/m/dense2/kernel\" and 3 more; \"model/dense1/kernel\" has shape (3, 32), expected (3, 16); "
                    "\"model/dense1/bias\" has shape (32,), expected (16,) and 4 more (12 mismatches) (is everything "
                    "built? layers make their variables on their first call, optimizers their slots in "
                    "tj_optimizer_build)");

    /* a plain safetensors file is not a checkpoint */
    save_sample(tmp_path("plain.safetensors"));
    ck_assert_int_eq(tj_checkpoint_restore(a.ck, tmp_path("plain.safetensors")), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "is not a tapejit checkpoint");
    ck_assert_int_eq(tj_checkpoint_restore(a.ck, tmp_path("missing.safetensors")), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "cannot open");
    world_free(&a);
    world_free(&b);
}
END_TEST

/* Datasets and variables by name: a missing dataset, a variable of another dtype. */
START_TEST(test_checkpoint_names) {
    tj_scope_begin();
    tj_tensor *v = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(2)), "v");
    tj_tensor *vi = tj_variable(tj_zeros(TJ_I32, TJ_SHAPE(2)), "vi");
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(5, 1));
    tj_dataset *d = tj_dataset_from_tensors(1, &x);
    tj_checkpoint *c1 = tj_checkpoint_new(), *c2 = tj_checkpoint_new();
    ck_assert_int_eq(tj_checkpoint_add_variable(c1, "w", v), 0);
    ck_assert_int_eq(tj_checkpoint_add_dataset(c1, "train", d), 0);
    ck_assert_int_eq(tj_checkpoint_add_variable(c2, "w", vi), 0);
    ck_assert_int_eq(tj_checkpoint_add_dataset(c2, "valid", d), 0);
    /* add errors */
    ck_assert_int_eq(tj_checkpoint_add_variable(c1, "w", v), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "checkpoint_add_variable: the checkpoint already has a variable named \"w\"");
    ck_assert_int_eq(tj_checkpoint_add_variable(c1, "x", x), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "argument 3 is not a variable");
    ck_assert_int_eq(tj_checkpoint_add_dataset(c1, NULL, d), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "checkpoint_add_dataset: the name is NULL");
    ck_assert_int_eq(tj_checkpoint_add_module(c1, "m", NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "checkpoint_add_module: the module is NULL");

    const char *p = tmp_path("c1.safetensors");
    ck_assert_int_eq(tj_checkpoint_save(c1, p), 0);
    ck_assert_int_eq(tj_checkpoint_restore(c2, p), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "does not match: \"w\" has dtype float32, expected int32; "
                    "missing dataset \"valid\"; unexpected dataset \"train\"");

    /* a variable freed after it was added */
    tj_tensor *tmp = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(1)), NULL);
    ck_assert_int_eq(tj_checkpoint_add_variable(c2, "tmp", tmp), 0);
    tj_variable_free(tmp);
    ck_assert_int_eq(tj_checkpoint_save(c2, p), TJ_ERR_STALE);
    ck_assert_error(TJ_ERR_STALE, "checkpoint_save: variable \"tmp\": argument 1 is a tensor whose scope has ended");
    ck_assert_int_eq(access(tmp_path("c1.safetensors"), F_OK), 0);   /* the old file is still there */
    tj_checkpoint_free(c1);
    tj_checkpoint_free(c2);
    tj_dataset_free(d);
    tj_variable_free(v);
    tj_variable_free(vi);
    tj_scope_end();
}
END_TEST

/* Files that are checkpoints in name only, datasets that refuse a state, names that clash,
 * and calls while a function is traced. */
static int save_in_trace(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)n_in; (void)n_out;
    int rc = tj_checkpoint_save(user, tmp_path("traced.safetensors"));
    out[0] = tj_add(in[0], in[0]);
    return rc;
}

START_TEST(test_checkpoint_files) {
    tj_scope_begin();
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(5, 1));
    tj_dataset *ds[6];
    tj_checkpoint *ck = tj_checkpoint_new();
    for (int i = 0; i < 6; i++) {   /* 3 + 6 metadata entries: the list grows */
        char name[8] = {(char)('a' + i), 0};
        ds[i] = tj_dataset_from_tensors(1, &x);
        ck_assert_int_eq(tj_checkpoint_add_dataset(ck, name, ds[i]), 0);
    }
    tj_tensor *b;
    ck_assert_int_eq(tj_dataset_next(ds[0], &b), 1);
    const char *p = tmp_path("ds.safetensors");
    ck_assert_int_eq(tj_checkpoint_save(ck, p), 0);
    ck_assert_int_eq(tj_checkpoint_restore(ck, p), 0);

    /* metadata written by hand */
    const char *keys[9] = {"tapejit.checkpoint_version", "tapejit.rng_seed", "tapejit.rng_offset",
                           "tapejit.dataset/a", "tapejit.dataset/b", "tapejit.dataset/c",
                           "tapejit.dataset/d", "tapejit.dataset/e", "tapejit.dataset/f"};
    const char *vals[9] = {"2", "1", "0", "0 2", "0 0", "0 0", "0 0", "0 0", "0 0"};
    const char *q = tmp_path("hand.safetensors");
    ck_assert_int_eq(tj_safetensors_save(q, 0, NULL, NULL, 9, keys, vals), 0);
    ck_assert_int_eq(tj_checkpoint_restore(ck, q), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "hand.safetensors has checkpoint version \"2\"; this tapejit reads version 1");
    vals[0] = "1";
    vals[1] = "-1";
    ck_assert_int_eq(tj_safetensors_save(q, 0, NULL, NULL, 9, keys, vals), 0);
    ck_assert_int_eq(tj_checkpoint_restore(ck, q), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, "the RNG state (tapejit.rng_seed, tapejit.rng_offset) is missing or not decimal");
    vals[1] = "18446744073709551615";
    vals[4] = "0 x";
    vals[5] = "0 99999999999999999999";
    ck_assert_int_eq(tj_safetensors_save(q, 0, NULL, NULL, 9, keys, vals), 0);
    ck_assert_int_eq(tj_checkpoint_restore(ck, q), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "does not match: dataset \"b\" has a bad state \"0 x\"; "
                    "dataset \"c\" has a bad state \"0 99999999999999999999\"");
    /* b refuses its state: a, set before it, goes back to where it was (1 element in) */
    vals[4] = "-1 0";
    vals[5] = "0 0";
    ck_assert_int_eq(tj_safetensors_save(q, 0, NULL, NULL, 9, keys, vals), 0);
    ck_assert_int_eq(tj_checkpoint_restore(ck, q), TJ_ERR_VALUE);
    ck_assert_error(TJ_ERR_VALUE, "dataset_set_state: epoch -1, position 0");
    int64_t st[2];
    ck_assert_int_eq(tj_dataset_get_state(ds[0], st), 0);
    ck_assert(st[0] == 0 && st[1] == 1);
    vals[4] = "0 0";
    ck_assert_int_eq(tj_safetensors_save(q, 0, NULL, NULL, 9, keys, vals), 0);
    ck_assert_int_eq(tj_checkpoint_restore(ck, q), 0);
    ck_assert_int_eq(tj_dataset_get_state(ds[0], st), 0);
    ck_assert(st[0] == 0 && st[1] == 2);
    ck_assert(tj_rng_offset() == 0);
    ck_assert(tj_thread_state()->rng_seed == UINT64_MAX);

    /* not inside a trace */
    tj_mode mode = tj_get_mode();
    tj_set_mode(TJ_MODE_JIT);
    tj_function *f = tj_function_new("save", save_in_trace, ck);
    tj_tensor *out;
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &out), TJ_ERR_STATE);
    ck_assert_error(TJ_ERR_STATE, "checkpoint_save: cannot run inside a compiled function while it is traced");
    tj_function_free(f);
    tj_set_mode(mode);
    tj_checkpoint_free(ck);

    /* two modules under one prefix */
    world w;
    world_new(&w, 2, false);
    ck_assert_int_eq(tj_checkpoint_add_module(w.ck, "model", w.model), 0);
    ck_assert_int_eq(tj_checkpoint_save(w.ck, p), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "checkpoint_save: two variables are both named \"model/dense1/bias\" in the checkpoint");
    world_free(&w);
    for (int i = 0; i < 6; i++) tj_dataset_free(ds[i]);
    tj_scope_end();
}
END_TEST

START_TEST(test_manager) {
    static snap s3, s5, now;
    world w;
    tj_seed(7);
    world_new(&w, 4, true);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/run/ckpts/", tmpdir);   /* two levels missing, a trailing slash */
    tj_checkpoint_manager *mg = tj_checkpoint_manager_new(w.ck, dir, 3);
    ck_assert_ptr_nonnull(mg);
    ck_assert_ptr_null(tj_checkpoint_manager_latest(mg));
    ck_assert_int_eq(tj_checkpoint_manager_restore_latest(mg), 0);   /* nothing yet: nothing to do */
    ck_assert_int_eq(tj_error_code(), 0);
    /* files that are not ours */
    write_file(tmp_path("run/ckpts/notes.txt"), "x", 1);
    write_file(tmp_path("run/ckpts/ckpt-007.safetensors"), "x", 1);
    write_file(tmp_path("run/ckpts/ckpt-99.safetensors.tmp-1-0"), "x", 1);
    for (int step = 1; step <= 10; step++) {
        world_step(&w);
        if (step == 3) take(&w, &s3);
        if (step == 5) take(&w, &s5);
        if (step <= 5 || step == 9) ck_assert_int_eq(tj_checkpoint_manager_save(mg, step), 0);
    }
    /* 9 > 5 > 4 are kept (by step, numerically), 1-3 are gone */
    ck_assert_int_eq(count_files(tmp_path("run/ckpts"), ".safetensors"), 5);   /* 3 + the 2 foreign */
    ck_assert_int_eq(access(tmp_path("run/ckpts/ckpt-3.safetensors"), F_OK), -1);
    ck_assert_int_eq(access(tmp_path("run/ckpts/ckpt-4.safetensors"), F_OK), 0);
    const char *latest = tj_checkpoint_manager_latest(mg);
    ck_assert_ptr_nonnull(latest);
    ck_assert_msg(strstr(latest, "/run/ckpts/ckpt-9.safetensors") != NULL, "%s", latest);

    /* a new manager (a new process would do the same) finds ckpt-9; restore ckpt-5 by hand */
    tj_checkpoint_manager *mg2 = tj_checkpoint_manager_new(w.ck, dir, 3);
    ck_assert_ptr_nonnull(mg2);
    ck_assert_int_eq(tj_checkpoint_restore(w.ck, tmp_path("run/ckpts/ckpt-5.safetensors")), 0);
    take(&w, &now);
    ck_assert(same(&now, &s5));
    ck_assert_int_eq(tj_checkpoint_manager_restore_latest(mg2), 0);
    take(&w, &now);
    ck_assert(!same(&now, &s5) && !same(&now, &s3));
    /* a step older than the kept ones is saved and dropped at once (kept by step) */
    ck_assert_int_eq(tj_checkpoint_manager_save(mg2, 2), 0);
    ck_assert_int_eq(access(tmp_path("run/ckpts/ckpt-2.safetensors"), F_OK), -1);
    ck_assert_int_eq(tj_checkpoint_manager_save(mg2, -1), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "checkpoint_manager_save: step is -1; it must be >= 0");
    tj_checkpoint_manager_free(mg2);
    tj_checkpoint_manager_free(mg);

    /* bad arguments and directories */
    ck_assert_ptr_null(tj_checkpoint_manager_new(w.ck, dir, 0));
    ck_assert_error(TJ_ERR_ARG, "max_to_keep is 0; it must be at least 1");
    ck_assert_ptr_null(tj_checkpoint_manager_new(w.ck, tmp_path("run/ckpts/notes.txt"), 1));
    ck_assert_error(TJ_ERR_IO, "notes.txt is not a directory");
    ck_assert_ptr_null(tj_checkpoint_manager_new(w.ck, tmp_path("run/ckpts/notes.txt/sub"), 1));
    ck_assert_error(TJ_ERR_IO, "cannot create directory");
    world_free(&w);
}
END_TEST

/* ---- allocation failures: the n-th allocation fails, for every n ------------------------------- */

typedef struct counting { long count, fail_at, failed; long long live; } counting;
static counting A;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    if (nsize == 0) {
        if (ptr) A.live -= (long long)osize;
        free(ptr);
        return NULL;
    }
    if (!ptr || nsize > osize) {
        if (++A.count == A.fail_at) { A.failed++; return NULL; }
    }
    void *q = realloc(ptr, nsize);
    if (q) A.live += (long long)nsize - (long long)(ptr ? osize : 0);
    return q;
}

typedef int (*io_prog)(const char *dir);

static int prog_save_load(const char *dir) {
    char p[600];
    snprintf(p, sizeof p, "%s/oom.safetensors", dir);
    tj_scope_begin();
    const float w[4] = {1, 2, 3, 4};
    tj_tensor *ts[2] = {tj_tensor_from(TJ_F32, TJ_SHAPE(2, 2), w), tj_zeros(TJ_I32, TJ_SHAPE(3))};
    const char *names[2] = {"w", "i"}, *keys[1] = {"k"}, *vals[1] = {"v"};
    int rc = tj_safetensors_save(p, 2, names, ts, 1, keys, vals);
    int n;
    char **nm;
    tj_tensor **lt;
    if (!rc) rc = tj_safetensors_load(p, &n, &nm, &lt);
    if (!rc) tj_safetensors_free_list(n, nm, lt);
    tj_scope_end();
    return rc;
}

static int prog_checkpoint(const char *dir) {
    char p[600];
    snprintf(p, sizeof p, "%s/ck", dir);
    tj_scope_begin();
    tj_tensor *v = tj_variable(tj_ones(TJ_F32, TJ_SHAPE(3)), "v");
    tj_checkpoint *ck = tj_checkpoint_new();
    tj_checkpoint_manager *mg = NULL;
    int rc = v && ck ? tj_checkpoint_add_variable(ck, "v", v) : TJ_ERR_OOM;
    if (!rc) rc = (mg = tj_checkpoint_manager_new(ck, p, 1)) ? 0 : TJ_ERR_OOM;
    if (!rc) rc = tj_checkpoint_manager_save(mg, 1);
    if (!rc) rc = tj_checkpoint_manager_save(mg, 2);
    if (!rc) rc = tj_checkpoint_manager_restore_latest(mg);
    tj_checkpoint_manager_free(mg);
    tj_checkpoint_free(ck);
    tj_variable_free(v);
    tj_scope_end();
    return rc;
}

static void oom_loop(io_prog prog) {
    tj_clear_error();
    A = (counting){0};
    tj_set_allocator(counting_alloc, NULL);
    ck_assert_int_eq(prog(tmpdir), 0);   /* a warm-up: what tapejit keeps for the process */
    long long base = A.live;
    long total = A.count;
    for (long k = 1; k <= total + 1; k++) {
        A.count = 0;
        A.fail_at = k;
        A.failed = 0;
        tj_clear_error();
        int rc = prog(tmpdir);
        if (A.failed) {
            ck_assert_msg(rc == TJ_ERR_OOM || tj_error_code() == TJ_ERR_OOM,
                          "allocation %ld failed: rc %d, error %d '%s'", k, rc, tj_error_code(), tj_last_error());
        } else {
            ck_assert_int_eq(rc, 0);
        }
        ck_assert_msg(A.live == base, "allocation %ld failed: %lld bytes leaked", k, A.live - base);
        ck_assert_int_eq(count_files(tmpdir, ".tmp-"), 0);
    }
    tj_set_allocator(NULL, NULL);
    tj_clear_error();
}

START_TEST(test_oom_safetensors) { oom_loop(prog_save_load); }
END_TEST

START_TEST(test_oom_checkpoint) { oom_loop(prog_checkpoint); }
END_TEST

Suite *io_suite(void) {
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("safetensors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fixture_basic);
    tcase_add_test(tc, test_fixture_scalar_empty);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_python_reads_ours);
    tcase_add_test(tc, test_save_errors);
    tcase_add_test(tc, test_save_atomic);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_truncated_everywhere);
    tcase_add_test(tc, test_bad_lengths);
    tcase_add_test(tc, test_bad_headers);
    tcase_add_test(tc, test_random_corruption);
    suite_add_tcase(s, tc);
    tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_checkpoint_roundtrip);
    tcase_add_test(tc, test_checkpoint_mismatch);
    tcase_add_test(tc, test_checkpoint_names);
    tcase_add_test(tc, test_checkpoint_files);
    tcase_add_test(tc, test_manager);
    suite_add_tcase(s, tc);
    tc = tcase_create("io_alloc");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_oom_safetensors);
    tcase_add_test(tc, test_oom_checkpoint);
    suite_add_tcase(s, tc);
    return s;
}
