/* check_dump.c: the dumps (jit/dump.c) and tj-dump. A small step (tanh(x*a + b), its sum,
 * the gradient wrt a, an SGD update) is dumped and its trace, graph, fusion and DOT files
 * compared byte for byte with tests/golden/dump/tanh_step/0.* (LLVM IR and assembly: only
 * the kernel comments). Also determinism across runs and processes, origins, errors, env
 * TJ_DUMP / TJ_DUMP_DIR, and tj-dump (found beside the test binary, or env TJ_DUMP_TOOL).
 * Regenerate the goldens after an intended change, then review the diff:
 *     TJ_UPDATE_GOLDEN=1 CK_RUN_SUITE=dump ./tj_tests && git diff tests/golden */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#ifdef TJ_HAVE_JIT
#include "dump.h"
#include "lower.h"
#endif

extern char **environ;
Suite *dump_suite(void);   /* also in testutil.h once main.c runs it */

static void setup(void) { tj_scope_begin(); tj_clear_error(); tj_set_mode(TJ_MODE_JIT); }
static void teardown(void) { tj_scope_end(); tj_clear_error(); }

static int no_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)in; (void)n_out; (void)out;
    return 0;
}

/* tj_function_dump checks its stage list, and the error names the bad stage. */
START_TEST(test_bad_stage) {
    tj_function *f = tj_function_new("f", no_step, NULL);
    ck_assert_int_eq(tj_function_dump(f, "d", "trace,bogus,graph"), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "unknown stage 'bogus' in 'trace,bogus,graph'");
    ck_assert_int_eq(tj_function_dump(f, "d", "trace, graph ,all"), 0);   /* spaces are fine */
    ck_assert_int_eq(tj_function_dump(f, NULL, "all"), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "NULL");
    ck_assert_int_eq(tj_function_dump(f, "d", NULL), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "NULL");
    ck_assert_int_eq(tj_function_dump(NULL, "d", "all"), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "NULL");
    tj_function_free(f);
}
END_TEST

#ifdef TJ_HAVE_JIT

/* ---- helpers ------------------------------------------------------------------------------- */

/* dir(__FILE__) + "/" + rel (static, two at a time). */
static const char *src_path(const char *rel) {
    static char buf[2][1024];
    static int k;
    char *b = buf[k++ & 1];
    const char *f = __FILE__, *slash = strrchr(f, '/');
    snprintf(b, sizeof buf[0], "%.*s/%s", slash ? (int)(slash - f) : 1, slash ? f : ".", rel);
    return b;
}

#define GOLDEN_DIR src_path("golden/dump")
#define FNAME "tanh_step"

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

static void rm_rf(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh temporary directory (static, four at a time). */
static const char *tmp_dir(void) {
    static char buf[4][64];
    static int k;
    char *b = buf[k++ & 3];
    strcpy(b, "/tmp/tj_check_dump_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(b));
    return b;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static const char *file_in(const char *dir, const char *fname, const char *leaf) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s/%s", dir, fname, leaf);
    return b;
}

/* The model: variables a, b (3,), an SGD optimizer; the step traced by a function. */
typedef struct model { tj_tensor *a, *b; tj_optimizer *opt; } model;

/* y = tanh(x*a + b); loss = sum(y); a -= lr * d loss / d a */
static int tanh_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    model *m = user;
    (void)n_in;
    (void)n_out;
    tj_tape *tape = tj_tape_begin(0);
    tj_tensor *y = tj_tanh(tj_add(tj_mul(in[0], m->a), m->b));
    tj_tensor *loss = tj_sum(y, 0, NULL, false);
    tj_tensor *g;
    int rc = tj_tape_gradient(tape, loss, 1, &m->a, &g);
    tj_tape_free(tape);
    if (rc) return rc;
    rc = tj_optimizer_apply(m->opt, 1, &g, &m->a);
    out[0] = loss;
    return rc;
}

/* Builds the model, makes the function (dumping `what` into dir unless dir is NULL: then
 * the environment decides), calls it `calls` times on x (rows, 3), frees everything. */
static void run_model(const char *dir, const char *what, int rows, int calls) {
    tj_scope_begin();
    const float av[3] = {0.5f, -0.25f, 1.0f}, bv[3] = {0.1f, 0.2f, 0.3f};
    float xv[3 * 8];
    for (int i = 0; i < 3 * rows; i++) xv[i] = (float)i / 10.0f - 0.5f;
    model m = {tj_variable(tj_tensor_from(TJ_F32, TJ_SHAPE(3), av), "a"),
               tj_variable(tj_tensor_from(TJ_F32, TJ_SHAPE(3), bv), "b"), tj_sgd(0.1, 0, false)};
    ck_assert(m.a && m.b && m.opt);
    tj_function *f = tj_function_new(FNAME, tanh_step, &m);
    ck_assert_ptr_nonnull(f);
    if (dir) ck_assert_int_eq(tj_function_dump(f, dir, what), 0);
    tj_tensor *x = tj_tensor_from(TJ_F32, TJ_SHAPE(rows, 3), xv), *loss;
    for (int i = 0; i < calls; i++) {
        ck_assert_msg(tj_function_call(f, 1, &x, 1, &loss) == 0, "%s", tj_last_error());
        ck_assert_str_eq(tj_function_last_path(f), i == 0 ? "traced" : "compiled");
    }
    tj_function_free(f);
    tj_optimizer_free(m.opt);
    tj_variable_free(m.a);
    tj_variable_free(m.b);
    tj_scope_end();
    ck_assert_msg(tj_error_code() == 0, "%s", tj_last_error());
}

/* Line number (1-based) where a and b first differ, and the two lines. */
static int first_diff_line(const char *a, const char *b, char *la, char *lb, size_t n) {
    int line = 1;
    const char *sa = a, *sb = b;
    while (*a && *a == *b) {
        if (*a == '\n') { line++; sa = a + 1; sb = b + 1; }
        a++;
        b++;
    }
    snprintf(la, n, "%.*s", (int)strcspn(sa, "\n"), sa);
    snprintf(lb, n, "%.*s", (int)strcspn(sb, "\n"), sb);
    return line;
}

/* got/<leaf> equals golden/<leaf>, or (TJ_UPDATE_GOLDEN=1) becomes it. */
static void check_golden(const char *got_dir, const char *leaf) {
    char golden[1024];
    snprintf(golden, sizeof golden, "%s/%s", GOLDEN_DIR, leaf);
    const char *got_path = file_in(got_dir, FNAME, leaf + strlen(FNAME "/"));
    size_t ng, ne;
    char *got = tu_slurp(got_path, &ng);
    ck_assert_msg(got != NULL, "no dump %s", got_path);
    const char *upd = getenv("TJ_UPDATE_GOLDEN");
    if (upd && !strcmp(upd, "1")) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/" FNAME, GOLDEN_DIR);
        mkdir(src_path("golden"), 0777);
        mkdir(GOLDEN_DIR, 0777);
        mkdir(dir, 0777);
        FILE *f = fopen(golden, "wb");
        ck_assert_msg(f != NULL, "cannot write %s: %s", golden, strerror(errno));
        ck_assert_uint_eq(fwrite(got, 1, ng, f), ng);
        fclose(f);
        fprintf(stderr, "check_dump: wrote %s\n", golden);
        free(got);
        return;
    }
    char *exp = tu_slurp(golden, &ne);
    ck_assert_msg(exp != NULL, "no golden file %s (TJ_UPDATE_GOLDEN=1 writes it)", golden);
    if (ng != ne || memcmp(got, exp, ng)) {
        char la[256], lb[256];
        int line = first_diff_line(got, exp, la, lb, sizeof la);
        ck_abort_msg("%s differs from %s at line %d:\n  got:      %s\n  expected: %s\n"
                     "(if the change is intended: TJ_UPDATE_GOLDEN=1 CK_RUN_SUITE=dump tj_tests, then review git diff)",
                     got_path, golden, line, la, lb);
    }
    free(got);
    free(exp);
}

/* The kernels named in a fusion dump ("kernel k2_mul  (vector loop)"), into names[]. */
static int kernel_names(const char *fusion, char names[][48], int max) {
    int n = 0;
    for (const char *p = fusion; (p = strstr(p, "\nkernel ")) && n < max; p++) {
        p += 8;
        snprintf(names[n++], 48, "%.*s", (int)strcspn(p, " \n"), p);
    }
    return n;
}

/* Every file of dir a/<FNAME> but .stats.txt equals its twin in b, byte for byte. */
static void same_dumps(const char *a, const char *b) {
    static const char *const leaves[] = {"0.trace.txt", "0.graph.txt", "0.fusion.txt", "0.llvm.ll", "0.llvm-opt.ll", "0.asm.s", "0.dot"};
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        size_t na, nb;
        char *x = tu_slurp(file_in(a, FNAME, leaves[i]), &na), *y = tu_slurp(file_in(b, FNAME, leaves[i]), &nb);
        ck_assert_msg(x && y, "%s missing in %s or %s", leaves[i], a, b);
        if (na != nb || memcmp(x, y, na)) {
            char la[256], lb[256];
            int line = first_diff_line(x, y, la, lb, sizeof la);
            ck_abort_msg("%s differs between two runs at line %d:\n  %s\n  %s", leaves[i], line, la, lb);
        }
        free(x);
        free(y);
    }
}

/* Runs argv with extra environment entries; its stdout and stderr into *out (malloc'd);
 * its exit status. */
static int run(char *const *argv, char *const *extra_env, char **out) {
    char path[] = "/tmp/tj_check_dump_out_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    int nenv = 0, nextra = 0;
    while (environ[nenv]) nenv++;
    while (extra_env && extra_env[nextra]) nextra++;
    char **env = calloc((size_t)(nenv + nextra + 1), sizeof(char *));
    ck_assert_ptr_nonnull(env);
    int k = 0;
    for (int i = 0; i < nextra; i++) env[k++] = extra_env[i];
    for (int i = 0; i < nenv; i++) {   /* the extra entries win */
        bool dup = false;
        for (int j = 0; j < nextra && !dup; j++) {
            size_t n = strcspn(extra_env[j], "=") + 1;
            dup = !strncmp(environ[i], extra_env[j], n);
        }
        if (!dup) env[k++] = environ[i];
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    ck_assert_msg(rc == 0, "cannot run %s: %s", argv[0], strerror(rc));
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    close(fd);
    *out = tu_slurp(path, NULL);
    unlink(path);
    ck_assert_ptr_nonnull(*out);
    ck_assert_msg(WIFEXITED(status), "%s did not exit normally", argv[0]);
    return WEXITSTATUS(status);
}

/* This test binary's directory + "/" + leaf. */
static const char *beside_self(const char *leaf) {
    static char buf[2][1024];
    static int k;
    char *b = buf[k++ & 1], self[900];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    snprintf(b, sizeof buf[0], "%.*s/%s", slash ? (int)(slash - self) : 1, slash ? self : ".", leaf);
    return b;
}

static const char *tool(void) {
    const char *t = getenv("TJ_DUMP_TOOL");
    if (t) return t;
    t = beside_self("tj-dump");
    ck_assert_msg(access(t, X_OK) == 0, "%s is missing: build the target tj-dump (or set TJ_DUMP_TOOL)", t);
    return t;
}

/* ---- golden files --------------------------------------------------------------------------------- */

START_TEST(test_golden) {
    const char *d = tmp_dir();
    run_model(d, "all", 4, 3);
    static const char *const leaves[] = {FNAME "/0.trace.txt", FNAME "/0.graph.txt", FNAME "/0.fusion.txt", FNAME "/0.dot"};
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) check_golden(d, leaves[i]);

    /* IR and assembly: before each kernel, a comment with its trace ids, then its definition */
    char *fusion = tu_slurp(file_in(d, FNAME, "0.fusion.txt"), NULL), *ll = tu_slurp(file_in(d, FNAME, "0.llvm.ll"), NULL);
    char *opt = tu_slurp(file_in(d, FNAME, "0.llvm-opt.ll"), NULL), *s = tu_slurp(file_in(d, FNAME, "0.asm.s"), NULL);
    ck_assert(fusion && ll && opt && s);
    char names[64][48];
    int n = kernel_names(fusion, names, 64);
    ck_assert_int_ge(n, 7);
    for (int i = 0; i < n; i++) {
        char cmt[96], def[96], label[96];
        snprintf(cmt, sizeof cmt, "\n; %.47s: trace ids ", names[i]);
        snprintf(def, sizeof def, "define void @%.47s(", names[i]);
        snprintf(label, sizeof label, "\n%.47s:", names[i]);
        for (int t = 0; t < 2; t++) {
            const char *text = t ? opt : ll, *c = strstr(text, cmt), *df = strstr(text, def);
            ck_assert_msg(c && df && c < df, "%s: no comment before the definition of %s", t ? ".llvm-opt.ll" : ".llvm.ll", names[i]);
        }
        snprintf(cmt, sizeof cmt, "\n# %.47s: trace ids ", names[i]);
        const char *c = strstr(s, cmt), *l = strstr(s, label);
        ck_assert_msg(c && l && c < l, ".s: no comment before the label of %s", names[i]);
    }
    ck_assert_ptr_nonnull(strstr(ll, "; k10_mul_sub_mul: trace ids 10, 12, 16 (mul <- gradient of tanh, node 5, sub <- gradient of tanh, node 5, mul <- gradient of mul, node 2)\n"));
    ck_assert_ptr_nonnull(strstr(ll, "; step: runs the "));
    ck_assert_ptr_nonnull(strstr(s, "# k24_mul_sub: trace ids 24, 25 (mul <- optimizer update of a, sub <- optimizer update of a)\n"));
    /* the stats: times, counts, peak bytes */
    char *st = tu_slurp(file_in(d, FNAME, "0.stats.txt"), NULL);
    ck_assert_ptr_nonnull(st);
    static const char *const keys[] = {"\ntrace_ms ", "\ngraph_ms ", "\nir_ms ", "\nllvm_opt_ms ", "\ncodegen_ms ",
                                       "\ntotal_ms ", "\nnodes ", "\nlive_nodes ", "\nkernels ", "\npeak_bytes "};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) ck_assert_msg(strstr(st, keys[i]), "stats lack%s", keys[i]);
    char want[32];
    snprintf(want, sizeof want, "\nkernels       %d\n", n);
    ck_assert_msg(strstr(st, want), "stats: kernels is not %d:\n%s", n, st);
    free(st);
    free(fusion);
    free(ll);
    free(opt);
    free(s);
    rm_rf(d);
}
END_TEST

/* Where each op came from: the user's op, the gradient of which op, the optimizer update of which variable. */
START_TEST(test_origins) {
    const char *d = tmp_dir();
    run_model(d, "trace,graph,fusion", 4, 1);
    char *t = tu_slurp(file_in(d, FNAME, "0.trace.txt"), NULL), *g = tu_slurp(file_in(d, FNAME, "0.graph.txt"), NULL);
    char *fu = tu_slurp(file_in(d, FNAME, "0.fusion.txt"), NULL);
    ck_assert(t && g && fu);
    ck_assert_ptr_nonnull(strstr(t, "\n%5 = tanh(%4)  f32 (4, 3)\n"));                          /* the user's op */
    ck_assert_ptr_nonnull(strstr(t, " = mul(%5, %5)  f32 (4, 3)  <- gradient of tanh (node 5)\n"));
    ck_assert_ptr_nonnull(strstr(t, " = sub(%1, %24)  f32 (3,)  <- optimizer update of a\n"));
    ck_assert_ptr_nonnull(strstr(t, "\n%1 = variable a  f32 (3,)\n"));
    ck_assert_ptr_nonnull(strstr(t, "constant  f32 ()  1\n"));
    ck_assert_ptr_nonnull(strstr(t, "signature 0: 1 input, 1 output\n  input 0: f32 (4, 3)\n"));
    ck_assert_ptr_nonnull(strstr(t, "state written\n  a <- %25  (read as %1)\n"));
    ck_assert_ptr_nonnull(strstr(t, "sum(%5)  f32 ()  axes=[0, 1]\n"));
    ck_assert_ptr_nonnull(strstr(g, "(mul: an exact identity)  <- gradient of tanh (node 5)\n"));
    ck_assert_ptr_nonnull(strstr(fu, "kernel k24_mul_sub  (vector loop)\n  ops      trace ids 24, 25 (mul <- optimizer update of a, sub <- optimizer update of a)\n"));
    ck_assert_ptr_nonnull(strstr(fu, "kernel k2_mul_add_tanh  (vector loop)\n"));   /* fused, as the issue's example */
    ck_assert_ptr_nonnull(strstr(fu, "(1 of 3 values stored; the rest stay in registers)"));
    ck_assert_ptr_nonnull(strstr(fu, "ends     a reduction follows"));
    ck_assert(!exists(file_in(d, FNAME, "0.llvm.ll")) && !exists(file_in(d, FNAME, "0.dot")));   /* not asked for */
    free(t);
    free(g);
    free(fu);
    rm_rf(d);
}
END_TEST

/* ---- determinism -------------------------------------------------------------------------------- */

/* In the child process of test_deterministic: the same dumps, from another process. */
START_TEST(test_child_dumps) {
    const char *d = getenv("TJ_CHECK_DUMP_CHILD");
    if (d) run_model(d, "all", 4, 2);
}
END_TEST

START_TEST(test_deterministic) {
    const char *a = tmp_dir(), *b = tmp_dir(), *c = tmp_dir();
    run_model(a, "all", 4, 2);
    run_model(b, "all", 4, 2);
    same_dumps(a, b);
    /* another process: other addresses (ASLR), another heap */
    char env1[128];
    snprintf(env1, sizeof env1, "TJ_CHECK_DUMP_CHILD=%s", c);
    char *env[] = {env1, "CK_RUN_SUITE=dump", "CK_RUN_CASE=child", "CK_FORK=no", NULL};
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = '\0';
    char *argv[] = {self, NULL};
    char *out;
    ck_assert_int_eq(run(argv, env, &out), 0);
    free(out);
    same_dumps(a, c);
    /* and tj-dump diff agrees (times in .stats.txt are not differences) */
    char *dv[] = {(char *)tool(), "diff", (char *)a, (char *)c, NULL};
    int rc = run(dv, NULL, &out);
    ck_assert_msg(rc == 0, "tj-dump diff: %d\n%s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "0 changed, 0 added, 0 removed, 8 identical"));
    free(out);
    rm_rf(a);
    rm_rf(b);
    rm_rf(c);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------------ */

START_TEST(test_errors) {
    unsigned what;
    ck_assert_int_eq(tj_dump_parse("llvm,asm", &what), 0);
    ck_assert_uint_eq(what, TJ_DUMP_LLVM | TJ_DUMP_ASM);
    ck_assert_int_eq(tj_dump_parse("all", &what), 0);
    ck_assert_uint_eq(what, TJ_DUMP_ALL);
    ck_assert_int_eq(tj_dump_parse("", &what), 0);
    ck_assert_uint_eq(what, 0);
    ck_assert_int_eq(tj_dump_parse("stat", &what), TJ_ERR_ARG);
    ck_assert_error(TJ_ERR_ARG, "'stat'");

    /* a directory that cannot be made: TJ_ERR_IO naming the path; a call still works */
    const char *d = tmp_dir();
    char file[256], sub[300];
    snprintf(file, sizeof file, "%s/file", d);
    FILE *fp = fopen(file, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);
    snprintf(sub, sizeof sub, "%s/sub", file);
    tj_graph *g = tj_graph_new();
    ck_assert_ptr_nonnull(g);
    tj_shape sh = TJ_SHAPE(2);
    ck_assert_int_eq(tj_graph_add(g, TJ_N_PARAM, TJ_OP_COUNT, 0, NULL, NULL, TJ_F32, &sh), 0);
    g->nparams = 1;
    ck_assert_int_eq(tj_dump_trace(sub, "f", 0, TJ_DUMP_TRACE, g), TJ_ERR_IO);
    ck_assert_error(TJ_ERR_IO, file);
    ck_assert_int_eq(tj_dump_trace(file, "f", 0, TJ_DUMP_TRACE, g), TJ_ERR_IO);   /* a file in the way */
    ck_assert_error(TJ_ERR_IO, "a file is in the way");
    ck_assert_int_eq(tj_dump_trace("/proc/tj_check_dump", "f", 0, TJ_DUMP_TRACE, g), TJ_ERR_IO);   /* mkdir fails */
    ck_assert_error(TJ_ERR_IO, "dump: cannot create the directory '/proc/tj_check_dump': ");
    ck_assert_int_eq(tj_dump_trace(d, "f", 0, TJ_DUMP_TRACE, g), 0);
    char *t = tu_slurp(file_in(d, "f", "0.trace.txt"), NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(strstr(t, "\n%0 = input 0  f32 (2,)\n"));
    free(t);
    tj_graph_free(g);
    run_model(sub, "all", 4, 2);   /* warns that it could not write the dumps, runs compiled */
    rm_rf(d);
}
END_TEST

/* ---- out of memory --------------------------------------------------------------------------- */

/* Fails the n-th allocation; counts the bytes handed out and given back. */
typedef struct oom { long count, fail_at, failed; long long net; } oom;

static void *oom_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    oom *o = ud;
    if (nsize == 0) {
        if (ptr) o->net -= (long long)osize;
        free(ptr);
        return NULL;
    }
    if ((!ptr || nsize > osize) && ++o->count == o->fail_at) { o->failed++; return NULL; }
    void *p = realloc(ptr, nsize);
    if (p) o->net += (long long)nsize - (ptr ? (long long)osize : 0);
    return p;
}

/* Every stage's dump with its n-th allocation failing, for n = 1, 2, ...: TJ_ERR_OOM,
 * nothing leaked, no crash; then it runs to the end. */
START_TEST(test_oom) {
    run_model(NULL, NULL, 4, 1);   /* the engine learns the symbols compiled steps call */
    model m = {tj_variable(tj_ones(TJ_F32, TJ_SHAPE(3)), "a"), tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(3)), "b"),
               tj_sgd(0.1, 0, false)};
    tj_tensor *xh = tj_ones(TJ_F32, TJ_SHAPE(4, 3)), *out;
    tensor *x = tj_resolve(xh, "test", 1);
    bool warned = false;
    tj_tracer *tr = tj_trace_begin(FNAME, 1, &x, false, &warned);
    ck_assert_ptr_nonnull(tr);
    ck_assert_int_eq(tanh_step(&m, 1, &xh, 1, &out), 0);
    tensor *o = tj_resolve(out, "test", 1);
    tj_graph *g = tj_trace_end(tr, 1, &o, true);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(tj_graph_optimize(g), 0);
    bool *live = calloc((size_t)g->n, sizeof(bool));
    tj_graph_live(g, live);
    tj_lowered low;
    ck_assert_msg(tj_lower(g, live, FNAME, tj_engine_vector_lanes(), -1, true, &low) == 0, "%s", tj_last_error());
    tj_compile_stats st = {.nodes = g->n, .kernels = low.kernels};
    const char *d = tmp_dir();
    long n;
    for (n = 1; n < 100000; n++) {
        oom a = {.fail_at = n};
        tj_set_allocator(oom_alloc, &a);
        int rc = tj_dump_trace(d, FNAME, 0, TJ_DUMP_ALL, g);
        int rc2 = tj_dump_compiled(d, FNAME, 0, TJ_DUMP_ALL, g, live, &low, &st, 1024);
        tj_set_allocator(NULL, NULL);
        ck_assert_msg(a.net == 0, "failing allocation %ld: %lld bytes not given back", n, a.net);
        if (!a.failed) {
            ck_assert_int_eq(rc, 0);
            ck_assert_int_eq(rc2, 0);
            break;
        }
        ck_assert_msg((rc == TJ_ERR_OOM) != (rc2 == TJ_ERR_OOM) && rc + rc2 == TJ_ERR_OOM,
                      "failing allocation %ld: %d %d (%s)", n, rc, rc2, tj_last_error());
        tj_clear_error();
    }
    ck_assert_int_gt(n, 10);
    ck_assert(exists(file_in(d, FNAME, "0.asm.s")) && exists(file_in(d, FNAME, "0.stats.txt")));
    tj_lowered_free(&low);
    free(live);
    tj_graph_free(g);
    tj_optimizer_free(m.opt);
    tj_variable_free(m.a);
    tj_variable_free(m.b);
    rm_rf(d);
}
END_TEST

/* ---- the environment ------------------------------------------------------------------------ */

START_TEST(test_env) {
    const char *d = tmp_dir();
    setenv("TJ_DUMP", "trace,fusion,bogus", 1);   /* bogus: a one-time warning, no error */
    setenv("TJ_DUMP_DIR", d, 1);
    run_model(NULL, NULL, 4, 2);
    ck_assert(exists(file_in(d, FNAME, "0.trace.txt")) && exists(file_in(d, FNAME, "0.fusion.txt")));
    ck_assert(!exists(file_in(d, FNAME, "0.graph.txt")) && !exists(file_in(d, FNAME, "0.llvm.ll")));
    /* read for every new signature: a changed environment applies to the next one */
    setenv("TJ_DUMP", "graph", 1);
    run_model(NULL, NULL, 4, 2);
    ck_assert(exists(file_in(d, FNAME, "0.graph.txt")));
    unsetenv("TJ_DUMP");
    unsetenv("TJ_DUMP_DIR");
    /* a second signature is 1.*; a name that is not a file name is made one */
    setenv("TJ_DUMP", "trace", 1);
    setenv("TJ_DUMP_DIR", d, 1);
    tj_scope_begin();
    model m = {tj_variable(tj_ones(TJ_F32, TJ_SHAPE(3)), "a"), tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(3)), "b"),
               tj_sgd(0.1, 0, false)};
    tj_function *f = tj_function_new("../we ird/name", tanh_step, &m);
    tj_tensor *x4 = tj_ones(TJ_F32, TJ_SHAPE(4, 3)), *x2 = tj_ones(TJ_F32, TJ_SHAPE(2, 3)), *loss;
    ck_assert_int_eq(tj_function_call(f, 1, &x4, 1, &loss), 0);
    ck_assert_int_eq(tj_function_call(f, 1, &x2, 1, &loss), 0);
    ck_assert(exists(file_in(d, ".._we_ird_name", "0.trace.txt")) && exists(file_in(d, ".._we_ird_name", "1.trace.txt")));
    char *t = tu_slurp(file_in(d, ".._we_ird_name", "1.trace.txt"), NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(strstr(t, "function ../we ird/name\nsignature 1: 1 input, 1 output\n  input 0: f32 (2, 3)\n"));
    free(t);
    tj_function_free(f);
    tj_optimizer_free(m.opt);
    tj_variable_free(m.a);
    tj_variable_free(m.b);
    tj_scope_end();
    unsetenv("TJ_DUMP");
    unsetenv("TJ_DUMP_DIR");
    ck_assert_int_eq(tj_error_code(), 0);
    rm_rf(d);
}
END_TEST

/* ---- tj-dump ------------------------------------------------------------------------------------- */

START_TEST(test_tool) {
    char *out;
    char *sv[] = {(char *)tool(), (char *)GOLDEN_DIR, NULL};
    ck_assert_int_eq(run(sv, NULL, &out), 0);
    static const char *const want[] = {
        FNAME ", signature 0: 1 input, 1 output\n  input 0: f32 (4, 3)\n",
        "  trace      28 nodes, 20 ops (10 gradient, 3 optimizer update, 7 other)\n",
        "  kernels    7, views 0; ops per kernel: 1 op x 3, 2 ops x 2, 3 ops x 2\n",
        "    k2_mul_add_tanh     3 ops  vector loop  (mul, add, tanh)\n",
        "(no 0.stats.txt",
        ": 1 function, 1 signature\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(out, want[i]), "tj-dump summary lacks '%s':\n%s", want[i], out);
    free(out);

    /* the golden stages, dumped now: no differences */
    const char *d = tmp_dir(), *e = tmp_dir();
    run_model(d, "trace,graph,fusion,dot", 4, 1);
    char *dv[] = {(char *)tool(), "diff", (char *)GOLDEN_DIR, (char *)d, NULL};
    int rc = run(dv, NULL, &out);
    ck_assert_msg(rc == 0, "tj-dump diff golden fresh: %d\n%s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "0 changed, 0 added, 0 removed, 4 identical\n"));
    free(out);

    /* another shape: changed files, with a line diff; an extra stage: an added file */
    run_model(e, "trace,graph,fusion,dot,stats", 2, 1);
    char *dv2[] = {(char *)tool(), "diff", (char *)d, (char *)e, NULL};
    ck_assert_int_eq(run(dv2, NULL, &out), 1);
    ck_assert_msg(strstr(out, "changed: " FNAME "/0.trace.txt\n--- ") && strstr(out, "\n-%0 = input 0  f32 (4, 3)\n") &&
                  strstr(out, "\n+%0 = input 0  f32 (2, 3)\n") && strstr(out, "\n@@ -") &&
                  strstr(out, "added: " FNAME "/0.stats.txt\n") && strstr(out, "4 changed, 1 added, 0 removed, 0 identical\n"),
                  "tj-dump diff:\n%s", out);
    free(out);
    char *dv3[] = {(char *)tool(), "diff", "-q", (char *)e, (char *)d, NULL};
    ck_assert_int_eq(run(dv3, NULL, &out), 1);
    ck_assert_ptr_null(strstr(out, "@@"));
    ck_assert_ptr_nonnull(strstr(out, "removed: " FNAME "/0.stats.txt\n"));
    free(out);

    /* errors: exit status 2 */
    char *bad1[] = {(char *)tool(), "diff", (char *)d, "/nonexistent/tj-dump", NULL};
    ck_assert_int_eq(run(bad1, NULL, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "tj-dump: cannot read '/nonexistent/tj-dump': No such file or directory\n"));
    free(out);
    char *bad2[] = {(char *)tool(), "/nonexistent/tj-dump", NULL};
    ck_assert_int_eq(run(bad2, NULL, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "tj-dump: cannot read the directory '/nonexistent/tj-dump'"));
    free(out);
    char *bad3[] = {(char *)tool(), NULL};
    ck_assert_int_eq(run(bad3, NULL, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "tj-dump: no directory given\nusage: tj-dump DIR"));
    free(out);
    char *bad4[] = {(char *)tool(), "diff", "--color", (char *)d, (char *)e, NULL};
    ck_assert_int_eq(run(bad4, NULL, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "tj-dump: diff: unknown option '--color'"));
    free(out);
    char *bad5[] = {(char *)tool(), (char *)e, NULL};   /* a directory without dumps */
    char empty[300];
    snprintf(empty, sizeof empty, "%s/empty", e);
    ck_assert_int_eq(mkdir(empty, 0777), 0);
    bad5[1] = empty;
    ck_assert_int_eq(run(bad5, NULL, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "holds no dumps"));
    free(out);
    rm_rf(d);
    rm_rf(e);
}
END_TEST

#endif

Suite *dump_suite(void) {
    Suite *s = suite_create("dump");
    TCase *tc = tcase_create("dump");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bad_stage);
#ifdef TJ_HAVE_JIT
    tcase_add_test(tc, test_golden);
    tcase_add_test(tc, test_origins);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_env);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_tool);
#endif
    suite_add_tcase(s, tc);
#ifdef TJ_HAVE_JIT
    TCase *child = tcase_create("child");   /* run by test_deterministic in a second process */
    tcase_add_checked_fixture(child, setup, teardown);
    tcase_add_test(child, test_child_dumps);
    suite_add_tcase(s, child);
#endif
    return s;
}
