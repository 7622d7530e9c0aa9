/* check_profile.c: the Chrome-trace profiler. Each test profiles a snippet, then parses the
 * written file with cJSON: eager ops by name with their shapes, compile stages, compiled
 * calls with their kernels nested inside, thread metadata; start/stop errors, nothing
 * recorded while off, two sessions in one process, events from several threads, a buffer
 * that cannot grow, and TJ_PROFILE in a child process. */
#define _XOPEN_SOURCE 700   /* mkdtemp, nftw, setenv */
#include "testutil.h"
#include "core/profile.h"

#include <cjson/cJSON.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

Suite *profile_suite(void);

static char tmpdir[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tj_profile_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    tj_scope_begin();
    tj_clear_error();
}

static void teardown(void) {
    if (tj_profile_on()) tj_profile_stop();
    tj_set_mode(TJ_MODE_JIT);
    tj_scope_end();
    tj_clear_error();
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

/* The profile at path, parsed; the caller cJSON_Deletes it. */
static cJSON *load(const char *path) {
    char *s = tu_slurp(path, NULL);
    ck_assert_msg(s != NULL, "no profile at %s", path);
    cJSON *root = cJSON_Parse(s);
    ck_assert_msg(root != NULL, "not JSON: %.200s", s);
    free(s);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(root, "displayTimeUnit")), "ms");
    ck_assert(cJSON_IsArray(cJSON_GetObjectItem(root, "traceEvents")));
    return root;
}

static const char *str(const cJSON *ev, const char *key) {
    return cJSON_GetStringValue(cJSON_GetObjectItem(ev, key));
}
static double num(const cJSON *ev, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(ev, key);
    ck_assert_msg(cJSON_IsNumber(v), "event without a number %s", key);
    return v->valuedouble;
}
static bool is(const cJSON *ev, const char *cat, const char *name) {
    const char *c = str(ev, "cat"), *n = str(ev, "name");
    return c && n && !strcmp(c, cat) && (!name || !strcmp(n, name));
}
#ifdef TJ_HAVE_JIT
/* [ts, ts + dur] of outer contains inner's, on the same thread (1 ns of rounding allowed) */
static bool inside(const cJSON *inner, const cJSON *outer) {
    return num(inner, "tid") == num(outer, "tid") && num(inner, "ts") >= num(outer, "ts") - 0.0015 &&
           num(inner, "ts") + num(inner, "dur") <= num(outer, "ts") + num(outer, "dur") + 0.0015;
}
#endif
static int count(const cJSON *root, const char *cat, const char *name) {
    int n = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(root, "traceEvents")) n += is(ev, cat, name);
    return n;
}
static const cJSON *find(const cJSON *root, const char *cat, const char *name) {
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(root, "traceEvents")) if (is(ev, cat, name)) return ev;
    return NULL;
}

/* Every event is a complete event with its fields, or metadata; every thread that has
 * events is named. Returns the number of complete events. */
static int check_format(const cJSON *root) {
    int nx = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(root, "traceEvents")) {
        const char *ph = str(ev, "ph");
        ck_assert_ptr_nonnull(ph);
        ck_assert_ptr_nonnull(str(ev, "name"));
        num(ev, "pid");
        num(ev, "tid");
        ck_assert(cJSON_IsObject(cJSON_GetObjectItem(ev, "args")));
        if (!strcmp(ph, "M")) continue;
        ck_assert_str_eq(ph, "X");
        ck_assert_ptr_nonnull(str(ev, "cat"));
        ck_assert_msg(num(ev, "ts") >= 0 && num(ev, "dur") >= 0, "%s: ts %g dur %g", str(ev, "name"),
                      num(ev, "ts"), num(ev, "dur"));
        bool named = false;
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "traceEvents"))
            named |= !strcmp(str(m, "ph"), "M") && !strcmp(str(m, "name"), "thread_name") &&
                     num(m, "tid") == num(ev, "tid") && num(m, "pid") == num(ev, "pid") &&
                     str(cJSON_GetObjectItem(m, "args"), "name") != NULL;
        ck_assert_msg(named, "thread %g has no thread_name", num(ev, "tid"));
        nx++;
    }
    return nx;
}

static double dropped(const cJSON *root) {
    const cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "otherData"), "dropped_events");
    ck_assert(cJSON_IsNumber(d));
    return d->valuedouble;
}

/* the op event's args: {"inputs": [...], "output": "..."} */
static void check_op(const cJSON *root, const char *name, int nin, const char *const *inputs, const char *output) {
    const cJSON *ev = find(root, "op", name);
    ck_assert_msg(ev != NULL, "no op event %s", name);
    const cJSON *args = cJSON_GetObjectItem(ev, "args"), *in = cJSON_GetObjectItem(args, "inputs");
    ck_assert_int_eq(cJSON_GetArraySize(in), nin);
    for (int i = 0; i < nin; i++) ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(in, i)), inputs[i]);
    ck_assert_str_eq(str(args, "output"), output);
}

/* ---- eager ops and a compiled function ----------------------------------------------------- */

/* out = tanh(x * x + x) */
static int step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_tanh(tj_add(tj_mul(in[0], in[0]), in[0]));
    return out[0] ? 0 : tj_error_code();
}

START_TEST(eager_and_compiled) {
    const char *path = tmp_path("p.json");
    ck_assert_int_eq(tj_profile_start(path), 0);
    ck_assert(tj_profile_on());

    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(2, 3)), *w = tj_ones(TJ_F32, TJ_SHAPE(3, 4));
    tj_tensor *s = tj_sum(tj_tanh(tj_matmul(x, w)), 0, NULL, false);
    tj_tensor *r = tj_reshape(tj_cast(w, TJ_F64), TJ_SHAPE(12));
    ck_assert(s && r);

    tj_set_mode(TJ_MODE_JIT);
    tj_function *f = tj_function_new("step", step, NULL);
    tj_tensor *in = tj_rand_normal(TJ_SHAPE(4, 8), 0, 1), *out;
    const char *paths[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(tj_function_call(f, 1, &in, 1, &out), 0);
        paths[i] = tj_function_last_path(f);
    }
    ck_assert_int_eq(tj_profile_stop(), 0);
    ck_assert(!tj_profile_on());

    cJSON *root = load(path);
    check_format(root);
    ck_assert_int_eq(dropped(root), 0);
    check_op(root, "matmul", 2, (const char *[]){"float32 (2, 3)", "float32 (3, 4)"}, "float32 (2, 4)");
    check_op(root, "tanh", 1, (const char *[]){"float32 (2, 4)"}, "float32 (2, 4)");
    check_op(root, "sum", 1, (const char *[]){"float32 (2, 4)"}, "float32 ()");
    check_op(root, "cast", 1, (const char *[]){"float32 (3, 4)"}, "float64 (3, 4)");
    check_op(root, "reshape", 1, (const char *[]){"float64 (3, 4)"}, "float64 (12,)");
    check_op(root, "rand_normal", 0, NULL, "float32 (4, 8)");
#ifdef TJ_HAVE_JIT
    ck_assert_str_eq(paths[0], "traced");
    ck_assert_str_eq(paths[1], "compiled");
    ck_assert_str_eq(paths[2], "compiled");
    /* one signature: each stage once; the traced call's ops ran eagerly, inside "trace" */
    const char *stages[] = {"trace", "graph passes", "IR build", "LLVM optimisation", "codegen"};
    for (int i = 0; i < 5; i++) ck_assert_msg(count(root, "compile", stages[i]) == 1, "stage %s", stages[i]);
    const cJSON *tr = find(root, "compile", "trace"), *ev;
    ck_assert_int_eq(count(root, "op", "mul"), 1);
    ck_assert(inside(find(root, "op", "mul"), tr));
    ck_assert(inside(find(root, "op", "add"), tr));
    /* two compiled calls, each with its kernels inside; no eager op inside them */
    ck_assert_int_eq(count(root, "compiled", "step"), 2);
    int kernels[2] = {0, 0}, k = 0;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(root, "traceEvents")) {
        if (!is(ev, "compiled", "step")) continue;
        ck_assert(num(ev, "ts") >= num(tr, "ts") + num(tr, "dur"));
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "traceEvents")) {
            if (is(e, "op", NULL)) ck_assert_msg(!inside(e, ev), "eager op %s inside a compiled call", str(e, "name"));
            if (is(e, "kernel", NULL) && inside(e, ev)) kernels[k]++;
        }
        k++;
    }
    ck_assert(kernels[0] >= 1 && kernels[0] == kernels[1]);
    int nk = 0;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(root, "traceEvents")) {
        if (!is(ev, "kernel", NULL)) continue;
        const char *n = str(ev, "name");
        size_t d = strspn(n + 1, "0123456789");
        ck_assert_msg(n[0] == 'k' && d > 0 && n[1 + d] == '_' && n[2 + d], "kernel name %s", n);
        nk++;
    }
    ck_assert_int_eq(nk, kernels[0] + kernels[1]);    /* every kernel inside a call */
#else
    (void)paths;
#endif
    cJSON_Delete(root);
    tj_function_free(f);
}
END_TEST

/* ---- start and stop ----------------------------------------------------------------------- */

START_TEST(start_stop_errors) {
    ck_assert_int_eq(tj_profile_stop(), TJ_ERR_STATE);
    ck_assert_error(TJ_ERR_STATE, "profile_stop: no profile is running");
    ck_assert_int_eq(tj_profile_start(NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "profile_start: path is NULL or empty");
    ck_assert_int_eq(tj_profile_start(""), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "profile_start: path is NULL or empty");

    const char *nodir = tmp_path("no/such/dir/p.json");
    ck_assert_int_eq(tj_profile_start(nodir), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, nodir);
    ck_assert(!tj_profile_on());

    const char *a = tmp_path("a.json");
    ck_assert_int_eq(tj_profile_start(a), 0);
    ck_assert_int_eq(tj_profile_start(tmp_path("b.json")), TJ_ERR_STATE);
    ck_assert_error(TJ_ERR_STATE, "profile_start: a profile is already running");
    ck_assert(tj_profile_on());                  /* the first one goes on */
    ck_assert_int_eq(tj_profile_stop(), 0);
    ck_assert_int_eq(tj_error_code(), 0);
    ck_assert_int_eq(tj_profile_stop(), TJ_ERR_STATE);
    ck_assert_error(TJ_ERR_STATE, "no profile is running");

    /* the file's directory vanishes while profiling: stop reports it, and profiling ends */
    char sub[512];
    snprintf(sub, sizeof sub, "%s/gone", tmpdir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/p.json", sub);
    ck_assert_int_eq(tj_profile_start(p), 0);
    ck_assert_ptr_nonnull(tj_add(tj_ones(TJ_F32, TJ_SHAPE(2)), tj_ones(TJ_F32, TJ_SHAPE(2))));
    ck_assert_int_eq(remove(p), 0);
    ck_assert_int_eq(rmdir(sub), 0);
    ck_assert_int_eq(tj_profile_stop(), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, p);
    ck_assert(!tj_profile_on());
    ck_assert_int_eq(tj_profile_stop(), TJ_ERR_STATE);
    tj_clear_error();
}
END_TEST

START_TEST(off_records_nothing) {
    ck_assert(!tj_profile_on());
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(3));
    ck_assert_ptr_nonnull(tj_exp(tj_add(x, x)));
    tj_profile_event("compile", "ignored", 0, 1, NULL);
    const char *path = tmp_path("empty.json");
    ck_assert_int_eq(tj_profile_start(path), 0);
    cJSON *root = load(path);                    /* a valid file from the start */
    cJSON_Delete(root);
    ck_assert_int_eq(tj_profile_stop(), 0);
    ck_assert_ptr_nonnull(tj_exp(x));            /* after the stop */
    root = load(path);
    ck_assert_int_eq(check_format(root), 0);
    ck_assert_int_eq(dropped(root), 0);
    cJSON_Delete(root);
}
END_TEST

START_TEST(two_sessions) {
    const char *a = tmp_path("a.json"), *b = tmp_path("b.json");
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(5));
    ck_assert_int_eq(tj_profile_start(a), 0);
    ck_assert_ptr_nonnull(tj_add(x, x));
    ck_assert_int_eq(tj_profile_stop(), 0);
    ck_assert_int_eq(tj_profile_start(b), 0);
    ck_assert_ptr_nonnull(tj_mul(x, x));
    ck_assert_ptr_nonnull(tj_mul(x, x));
    ck_assert_int_eq(tj_profile_stop(), 0);
    cJSON *ra = load(a), *rb = load(b);
    ck_assert_int_eq(check_format(ra), 1);
    ck_assert_int_eq(check_format(rb), 2);      /* each names its thread again */
    ck_assert_int_eq(count(ra, "op", "add"), 1);
    ck_assert_int_eq(count(rb, "op", "mul"), 2);
    ck_assert_int_eq(count(rb, "op", "add"), 0);
    cJSON_Delete(ra);
    cJSON_Delete(rb);
}
END_TEST

/* Names are user text: quotes, backslashes, control bytes and bad UTF-8 still give JSON. */
START_TEST(names_escaped) {
    const char *path = tmp_path("esc.json");
    ck_assert_int_eq(tj_profile_start(path), 0);
    double t = tj_now_ms();
    tj_profile_event("compiled", "a\"b\\c\nd\x01 \xc3\xa9 \xff.", t, t + 1, NULL);
    tj_profile_event("compile", "stage", t - 1e6, t + 0.5, "{\"k\": 1}");   /* began before the start */
    tj_profile_event("compile", "backwards", t, t - 1, NULL);
    ck_assert_int_eq(tj_profile_stop(), 0);
    cJSON *root = load(path);
    ck_assert_int_eq(check_format(root), 3);
    ck_assert_int_eq(count(root, "compiled", "a\"b\\c\nd\x01 \xc3\xa9 \xef\xbf\xbd."), 1);
    const cJSON *st = find(root, "compile", "stage");
    ck_assert(num(st, "ts") == 0);
    ck_assert(num(cJSON_GetObjectItem(st, "args"), "k") == 1);
    ck_assert(num(find(root, "compile", "backwards"), "dur") == 0);
    cJSON_Delete(root);
}
END_TEST

/* A concat of many inputs lists the first ones and says how many more. */
START_TEST(many_inputs) {
    enum { N = 200 };
    tj_tensor *ts[N];
    for (int i = 0; i < N; i++) ts[i] = tj_ones(TJ_F32, TJ_SHAPE(1, 1, 1, 1, 1, 1, 0, 100000));   /* empty, long to print */
    const char *path = tmp_path("concat.json");
    ck_assert_int_eq(tj_profile_start(path), 0);
    ck_assert_ptr_nonnull(tj_concat(N, ts, 0));
    ck_assert_int_eq(tj_profile_stop(), 0);
    cJSON *root = load(path);
    const cJSON *args = cJSON_GetObjectItem(find(root, "op", "concat"), "args");
    const cJSON *in = cJSON_GetObjectItem(args, "inputs");
    int n = cJSON_GetArraySize(in);
    ck_assert(n > 1 && n < N);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(in, 0)), "float32 (1, 1, 1, 1, 1, 1, 0, 100000)");
    char more[32];
    snprintf(more, sizeof more, "%d more", N - (n - 1));
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(in, n - 1)), more);
    ck_assert_str_eq(str(args, "output"), "float32 (200, 1, 1, 1, 1, 1, 0, 100000)");
    cJSON_Delete(root);
}
END_TEST

/* ---- threads -------------------------------------------------------------------------------- */

enum { THREAD_OPS = 500 };

static void *user_thread(void *arg) {
    (void)arg;
    tj_scope_begin();
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(3));
    for (int i = 0; i < THREAD_OPS; i++) {
        tj_scope_begin();
        tj_neg(x);
        tj_scope_end();
    }
    tj_scope_end();
    return NULL;
}

/* Two user threads and the main thread record at once, while pool workers run a large
 * op: every event arrives, on the thread that ran it, and workers record nothing. */
START_TEST(threads) {
    const char *path = tmp_path("threads.json");
    int before = tj_threads();
    tj_set_threads(4);
    ck_assert_int_eq(tj_profile_start(path), 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, user_thread, NULL), 0);
    tj_tensor *big = tj_ones(TJ_F32, TJ_SHAPE(1 << 20));
    for (int i = 0; i < 20; i++) ck_assert_ptr_nonnull(tj_sum(tj_exp(big), 0, NULL, false));
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(tj_profile_stop(), 0);
    tj_set_threads(before);
    cJSON *root = load(path);
    check_format(root);
    ck_assert_int_eq(dropped(root), 0);
    ck_assert_int_eq(count(root, "op", "neg"), 2 * THREAD_OPS);
    ck_assert_int_eq(count(root, "op", "exp"), 20);
    ck_assert_int_eq(count(root, "op", "sum"), 20);
    /* three threads named and recording: main and the two user threads, no pool worker */
    double tids[8];
    int named = 0, ntids = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(root, "traceEvents")) {
        named += !strcmp(str(ev, "name"), "thread_name");
        if (strcmp(str(ev, "ph"), "X")) continue;
        int k = 0;
        while (k < ntids && tids[k] != num(ev, "tid")) k++;
        if (k == ntids && ntids < 8) tids[ntids++] = num(ev, "tid");
    }
    ck_assert_int_eq(named, 3);
    ck_assert_int_eq(ntids, 3);
    cJSON_Delete(root);
}
END_TEST

/* ---- a buffer that cannot grow ---------------------------------------------------------------- */

static bool fail_big;

/* realloc, except that blocks of 16 KiB and more fail while fail_big */
static void *small_only(void *ud, void *p, size_t osize, size_t nsize) {
    (void)ud; (void)osize;
    if (nsize == 0) { free(p); return NULL; }
    if (fail_big && nsize >= 16384) return NULL;
    return realloc(p, nsize);
}

START_TEST(drops_when_full) {
    enum { OPS = 3000 };
    tj_set_allocator(small_only, NULL);
    const char *path = tmp_path("full.json");
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(1));
    ck_assert_int_eq(tj_profile_start(path), 0);
    fail_big = true;
    for (int i = 0; i < OPS; i++) {
        tj_scope_begin();
        ck_assert_ptr_nonnull(tj_add(x, x));
        tj_scope_end();
    }
    ck_assert_int_eq(tj_error_code(), 0);        /* dropping is not the program's error */
    fail_big = false;
    ck_assert_int_eq(tj_profile_stop(), 0);
    cJSON *root = load(path);
    int kept = check_format(root);
    ck_assert_int_eq(count(root, "op", "add"), kept);
    ck_assert_int_eq(kept + (int)dropped(root), OPS);       /* none lost unseen */
    ck_assert(dropped(root) > 0 && kept > 0);
    ck_assert_ptr_nonnull(strstr(str(cJSON_GetObjectItem(root, "otherData"), "note"), "dropped"));
    cJSON_Delete(root);
    tj_set_allocator(NULL, NULL);
}
END_TEST

/* ---- TJ_PROFILE: the whole process, written at exit ------------------------------------------ */

/* Runs in a child started by env_profile (TJ_PROFILE set); a no-op in a normal run. */
START_TEST(env_child) {
    if (!getenv("TJ_PROFILE")) return;
    ck_assert(tj_profile_on());
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(7, 2));
    ck_assert_ptr_nonnull(tj_sqrt(tj_add(x, x)));
}
END_TEST

START_TEST(env_profile) {
    const char *path = tmp_path("env.json");
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("TJ_PROFILE", path, 1);
        setenv("CK_RUN_SUITE", "profile", 1);
        setenv("CK_RUN_CASE", "env_child", 1);
        setenv("CK_FORK", "no", 1);           /* the ops run in the process that writes */
        if (!freopen("/dev/null", "w", stdout)) _exit(126);
        execl("/proc/self/exe", "tj_tests", (char *)NULL);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cJSON *root = load(path);
    check_format(root);
    check_op(root, "add", 2, (const char *[]){"float32 (7, 2)", "float32 (7, 2)"}, "float32 (7, 2)");
    check_op(root, "sqrt", 1, (const char *[]){"float32 (7, 2)"}, "float32 (7, 2)");
    const cJSON *ev;
    bool main_named = false;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(root, "traceEvents"))
        main_named |= !strcmp(str(ev, "name"), "thread_name") && !strcmp(str(cJSON_GetObjectItem(ev, "args"), "name"), "main");
    ck_assert(main_named);
    cJSON_Delete(root);
}
END_TEST

Suite *profile_suite(void) {
    Suite *s = suite_create("profile");
    TCase *tc = tcase_create("profile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, eager_and_compiled);
    tcase_add_test(tc, start_stop_errors);
    tcase_add_test(tc, off_records_nothing);
    tcase_add_test(tc, two_sessions);
    tcase_add_test(tc, names_escaped);
    tcase_add_test(tc, many_inputs);
    tcase_add_test(tc, threads);
    tcase_add_test(tc, drops_when_full);
    tcase_add_test(tc, env_profile);
    suite_add_tcase(s, tc);
    TCase *child = tcase_create("env_child");
    tcase_add_checked_fixture(child, setup, teardown);
    tcase_add_test(child, env_child);
    suite_add_tcase(s, child);
    return s;
}
