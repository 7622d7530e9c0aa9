/* check_compile.c: when and where compiled code comes from, and the memory it uses. The
 * background compile (calls run eagerly until the code is ready, with the same bits;
 * freeing or exiting while it runs), the disk cache (TJ_CACHE_DIR: a later function finds
 * its code there; an entry in use, a damaged entry or an unusable directory fall back to
 * compiling), and the arena planned by liveness (buffers share bytes; a call allocates
 * only its outputs; the compiled step needs no more memory than the eager one). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void setup(void) { tj_scope_begin(); tj_clear_error(); }
static void teardown(void) {
    tj_set_background_compile(false);
    unsetenv("TJ_CACHE_DIR");
    tj_set_mode(TJ_MODE_JIT);
    tj_scope_end();
    tj_clear_error();
}

static bool same_bits(tj_tensor *a, tj_tensor *b) {
    return tj_tensor_numel(a) == tj_tensor_numel(b) &&
           memcmp(tj_tensor_data(a), tj_tensor_data(b), 4 * (size_t)tj_tensor_numel(a)) == 0;
}

/* A training step: w -= 0.1 * d sum(tanh(x * w + 1) * x) / dw; out: the loss. */
static int train_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)n_in; (void)n_out;
    tj_tensor *w = user, *g;
    tj_tape *tape = tj_tape_begin(0);
    tj_tensor *loss = tj_sum(tj_mul(tj_tanh(tj_add(tj_mul(in[0], w), tj_scalar(1))), in[0]), 0, NULL, false);
    int rc = tj_tape_gradient(tape, loss, 1, &w, &g);
    tj_tape_free(tape);
    if (!rc) rc = tj_assign(w, tj_sub(w, tj_mul(g, tj_scalar(0.1f))));
    out[0] = loss;
    return rc;
}

/* Runs `steps` steps from w = 0.5 in mode m; returns the final w (in this scope). */
static tj_tensor *train(tj_mode m, int steps, const char **paths) {
    tj_set_mode(m);
    tj_tensor *w = tj_variable(tj_full(TJ_F32, TJ_SHAPE(37), 0.5), "w");
    tj_tensor *x = tj_rand_normal(TJ_SHAPE(37), 0, 1), *loss;
    tj_function *f = tj_function_new("train", train_step, w);
    for (int i = 0; i < steps; i++) {
        ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &loss), 0);
        if (paths) paths[i] = tj_function_last_path(f);
    }
    tj_function_free(f);
    tj_tensor *final = tj_mul(w, tj_scalar(1));
    tj_variable_free(w);
    return final;
}

START_TEST(test_background_compile_runs_eagerly_until_ready) {
    tj_seed(3);
    tj_tensor *eager = train(TJ_MODE_EAGER, 30, NULL);
    tj_set_background_compile(true);
    const char *paths[30];
    tj_seed(3);
    tj_tensor *mixed = train(TJ_MODE_JIT, 30, paths);
    ck_assert_str_eq(paths[0], "traced");
    ck_assert_str_eq(paths[1], "compiling");     /* LLVM takes milliseconds; the call does not wait */
    ck_assert(same_bits(eager, mixed));
}
END_TEST

START_TEST(test_wait_then_compiled) {
    tj_set_background_compile(true);
    tj_tensor *w = tj_variable(tj_full(TJ_F32, TJ_SHAPE(5), 0.5), "w");
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(5)), *loss;
    tj_function *f = tj_function_new("train", train_step, w);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &loss), 0);
    ck_assert_int_eq(tj_function_wait(f), 0);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &loss), 0);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    tj_compile_stats st;               /* quick code first, then the optimised code */
    ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
    const char *opt = getenv("TJ_JIT_OPT");
    ck_assert_msg((st.quick_ms > 0) == !(opt && opt[0] == '0'), "quick_ms %g", st.quick_ms);
    ck_assert_int_eq(tj_function_wait(NULL), TJ_ERR_ARG);
    tj_function_free(f);
    tj_variable_free(w);
}
END_TEST

/* Eager calls, then the quick code, then the optimised code: one training run across all
 * three gives eager's bits. */
START_TEST(test_tiers_give_eager_bits) {
    tj_set_background_compile(true);
    tj_seed(5);
    tj_tensor *w = tj_variable(tj_full(TJ_F32, TJ_SHAPE(37), 0.5), "w");
    tj_tensor *x = tj_rand_normal(TJ_SHAPE(37), 0, 1), *loss;
    tj_function *f = tj_function_new("train", train_step, w);
    int steps = 0, compiled = 0;
    for (; compiled < 5 && steps < 1000000; steps++) {      /* until the quick code has run */
        ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &loss), 0);
        compiled += !strcmp(tj_function_last_path(f), "compiled");
    }
    ck_assert_int_eq(tj_function_wait(f), 0);                /* the optimised code */
    for (int i = 0; i < 5; i++, steps++) ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &loss), 0);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    tj_function_free(f);
    tj_tensor *mixed = tj_mul(w, tj_scalar(1));
    tj_variable_free(w);
    tj_seed(5);
    ck_assert(same_bits(train(TJ_MODE_EAGER, steps, NULL), mixed));
}
END_TEST

/* Freeing a function whose code is still compiling waits for it (no leak under LSan). */
START_TEST(test_free_while_compiling) {
    tj_set_background_compile(true);
    tj_tensor *w = tj_variable(tj_full(TJ_F32, TJ_SHAPE(5), 0.5), "w");
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(5)), *loss;
    tj_function *f = tj_function_new("train", train_step, w);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &loss), 0);
    tj_function_free(f);
    tj_variable_free(w);
}
END_TEST

/* A process that exits while compiling ends cleanly: exit waits for the compile. */
static tj_function *leaked;     /* reachable from a global: not a leak to LSan */
START_TEST(test_exit_while_compiling) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        tj_set_background_compile(true);
        tj_tensor *w = tj_variable(tj_full(TJ_F32, TJ_SHAPE(5), 0.5), "w");
        tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(5)), *loss;
        leaked = tj_function_new("train", train_step, w);
        exit(tj_function_call(leaked, 1, &x, 1, &loss) == 0 ? 0 : 3);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}
END_TEST

/* ---- the disk cache ------------------------------------------------------------------------ */

static int chain_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    out[0] = tj_mul(tj_tanh(tj_add(tj_mul(in[0], tj_scalar(2)), tj_scalar(1))), in[0]);
    return 0;
}

/* Calls a new function twice (traced, then compiled); *out: the compiled result. */
static tj_function *compiled(tj_tensor *x, tj_tensor **out, bool *cached) {
    tj_function *f = tj_function_new("chain", chain_step, NULL);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, out), 0);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, out), 0);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    tj_compile_stats st;
    ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
    *cached = st.cached;
    return f;
}

/* The one entry in dir (its path into buf); fails the test unless there is exactly one. */
static void only_entry(const char *dir, char *buf, size_t n) {
    DIR *d = opendir(dir);
    ck_assert(d != NULL);
    int count = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tjo")) {
            snprintf(buf, n, "%s/%s", dir, e->d_name);
            count++;
        }
    closedir(d);
    ck_assert_int_eq(count, 1);
}

START_TEST(test_disk_cache) {
    char dir[] = "/tmp/tj-cache-XXXXXX", entry[512];
    ck_assert(mkdtemp(dir) != NULL);
    setenv("TJ_CACHE_DIR", dir, 1);
    tj_tensor *x = tj_rand_normal(TJ_SHAPE(1000), 0, 1), *y1, *y2, *y3, *y4;
    bool cached;
    tj_function *f1 = compiled(x, &y1, &cached);
    ck_assert(!cached);
    only_entry(dir, entry, sizeof entry);
    tj_function_free(f1);

    tj_function *f2 = compiled(x, &y2, &cached);     /* a new process would do the same */
    ck_assert(cached);
    ck_assert(same_bits(y1, y2));
    tj_function *f3 = compiled(x, &y3, &cached);     /* f2 uses the entry: f3 compiles */
    ck_assert(!cached);
    ck_assert(same_bits(y1, y3));
    tj_function_free(f2);
    tj_function_free(f3);

    FILE *fp = fopen(entry, "r+b");                   /* damage the object: a miss */
    ck_assert(fp != NULL);
    fseek(fp, -100, SEEK_END);
    int c = fgetc(fp);
    fseek(fp, -100, SEEK_END);
    fputc(c ^ 0x40, fp);
    fclose(fp);
    tj_function *f4 = compiled(x, &y4, &cached);
    ck_assert(!cached);
    ck_assert(same_bits(y1, y4));
    tj_function_free(f4);
    tj_function *f5 = compiled(x, &y4, &cached);     /* f4 wrote it again */
    ck_assert(cached);
    tj_function_free(f5);

    ck_assert_int_eq(truncate(entry, 30), 0);        /* half a file: a miss */
    tj_function *f6 = compiled(x, &y4, &cached);
    ck_assert(!cached);
    ck_assert(same_bits(y1, y4));
    tj_function_free(f6);
    unlink(entry);
    ck_assert_int_eq(rmdir(dir), 0);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

START_TEST(test_unusable_cache_dir_compiles_anyway) {
    setenv("TJ_CACHE_DIR", "/proc/no/such/dir", 1);
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(10)), *y;
    bool cached;
    tj_function *f = compiled(x, &y, &cached);
    ck_assert(!cached);
    ck_assert_double_eq_tol(tu_get(y, 3), tanh(3.0), 1e-6);
    ck_assert_int_eq(tj_error_code(), 0);
    tj_function_free(f);
}
END_TEST

/* ---- memory ---------------------------------------------------------------------------------- */

/* Ten transposes, each followed by an exp: twenty kernels, none fused with another. */
static int transposes_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    tj_tensor *y = in[0];
    for (int i = 0; i < 10; i++) y = tj_exp(tj_mul(tj_transpose(y, NULL), tj_scalar(0.5f)));
    out[0] = y;
    return 0;
}

START_TEST(test_arena_shares_bytes_by_liveness) {
    tj_tensor *x = tj_rand_normal(TJ_SHAPE(64, 48), 0, 1), *y[3];
    tj_function *f = tj_function_new("transposes", transposes_step, NULL);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y[i]), 0);
    tj_compile_stats st;
    ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
    size_t one = 64 * 48 * 4;
    ck_assert_msg(st.arena_bytes <= 2 * one + 64, "arena %zu bytes for 20 values of %zu", st.arena_bytes, one);
    tj_set_mode(TJ_MODE_EAGER);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y[2]), 0);
    ck_assert(same_bits(y[1], y[2]));
    tj_set_mode(TJ_MODE_CHECK);     /* check mode gives every value its bytes, then back */
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y[2]), 0);
    tj_set_mode(TJ_MODE_JIT);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y[2]), 0);
    ck_assert(same_bits(y[1], y[2]));
    tj_function_free(f);
}
END_TEST

/* Bytes a call of f needed at most, and the bytes it left allocated (its outputs). */
static int64_t call_peak(tj_function *f, tj_tensor *x, int64_t *kept) {
    tj_tensor *loss;
    tj_memory_reset_peak();
    int64_t before = tj_memory_in_use();
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &loss), 0);
    *kept = tj_memory_in_use() - before;
    return tj_memory_peak() - before;
}

START_TEST(test_compiled_call_allocates_only_its_outputs) {
    tj_tensor *w = tj_variable(tj_full(TJ_F32, TJ_SHAPE(4096), 0.5), "w");
    tj_tensor *x = tj_rand_normal(TJ_SHAPE(4096), 0, 1);
    tj_function *f = tj_function_new("train", train_step, w);
    int64_t kept, eager, compiled;
    tj_set_mode(TJ_MODE_EAGER);
    eager = call_peak(f, x, &kept);
    tj_set_mode(TJ_MODE_JIT);
    call_peak(f, x, &kept);                         /* traced */
    compiled = call_peak(f, x, &kept);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    ck_assert_int_eq(compiled, kept);              /* nothing temporary */
    ck_assert_int_lt(kept, 1024);                  /* one scalar output and its header */
    tj_compile_stats st;
    ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
    ck_assert_msg((int64_t)st.arena_bytes + compiled <= eager, "compiled %zu + %lld bytes, eager %lld",
                  st.arena_bytes, (long long)compiled, (long long)eager);
    tj_function_free(f);
    tj_variable_free(w);
}
END_TEST

/* Outputs are computed straight into the tensors a call returns: a fresh one each call,
 * and the arena holds none of them. */
START_TEST(test_outputs_computed_into_fresh_tensors) {
    tj_tensor *x1 = tj_full(TJ_F32, TJ_SHAPE(5000), 0.5), *x2 = tj_full(TJ_F32, TJ_SHAPE(5000), 2.0), *y1, *y2;
    tj_function *f = tj_function_new("chain", chain_step, NULL);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(tj_function_call(f, 1, &x1, 1, &y1), 0);
    ck_assert_int_eq(tj_function_call(f, 1, &x2, 1, &y2), 0);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    ck_assert_ptr_ne(tj_tensor_data(y1), tj_tensor_data(y2));
    ck_assert_double_eq_tol(tu_get(y1, 4999), tanh(2.0) * 0.5, 1e-6);
    ck_assert_double_eq_tol(tu_get(y2, 0), tanh(5.0) * 2.0, 1e-6);
    tj_compile_stats st;
    ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
    ck_assert_uint_lt(st.arena_bytes, 5000 * 4);
    tj_function_free(f);
}
END_TEST

/* ---- state written in place ------------------------------------------------------------------- */

/* v = v * 0.5 + x, elementwise: the new value can go straight into v's storage. */
static int halve_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)n_in; (void)n_out;
    tj_tensor *v = user;
    int rc = tj_assign(v, tj_add(tj_mul(v, tj_scalar(0.5f)), in[0]));
    out[0] = tj_sum(v, 0, NULL, false);
    return rc;
}

START_TEST(test_state_written_in_place_keeps_old_values_for_others) {
    tj_tensor *v = tj_variable(tj_full(TJ_F32, TJ_SHAPE(4096), 4.0), "v");
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(4096)), *y;
    tj_function *f = tj_function_new("halve", halve_step, v);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);       /* traced: v = 3 */
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);       /* compiled: v = 2.5 */
    tj_compile_stats st;
    ck_assert_int_eq(tj_function_compile_stats(f, &st), 0);
    ck_assert_msg(st.arena_bytes < 4096 * 4, "arena %zu bytes: the new value was not written in place", st.arena_bytes);
    /* a tape that read v, and a view of v, keep the value they saw */
    tj_tape *tape = tj_tape_begin(0);
    tj_tensor *sq = tj_mul(v, v), *view = tj_reshape(v, TJ_SHAPE(64, 64)), *g;
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);       /* v = 2.25 */
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    ck_assert_double_eq(tu_get(v, 4095), 2.25);
    ck_assert_double_eq(tu_get(view, 0), 2.5);
    ck_assert_int_eq(tj_tape_gradient(tape, sq, 1, &v, &g), 0);
    ck_assert_double_eq(tu_get(g, 7), 5.0);                        /* 2 v, v as the tape saw it */
    tj_tape_free(tape);
    ck_assert_int_eq(tj_function_call(f, 1, &x, 1, &y), 0);       /* nothing shares v now */
    ck_assert_double_eq(tu_get(v, 0), 2.125);
    ck_assert_double_eq(tu_get(view, 4095), 2.5);
    tj_function_free(f);
    tj_variable_free(v);
}
END_TEST

/* A step that can fail (a gather checks its indices) writes its state only on success. */
static int gather_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)n_in; (void)n_out;
    tj_tensor *v = user;
    int rc = tj_assign(v, tj_add(v, tj_scalar(1)));
    out[0] = tj_gather(in[0], in[1], 0);
    return rc ? rc : tj_error_code();
}

START_TEST(test_failed_step_leaves_state_alone) {
    tj_tensor *v = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(1000)), "v");
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(5)), *y;
    int32_t good[2] = {0, 4}, bad[2] = {0, 5};
    tj_tensor *in[2] = {x, tj_tensor_from(TJ_I32, TJ_SHAPE(2), good)};
    tj_function *f = tj_function_new("gather", gather_step, v);
    ck_assert_int_eq(tj_function_call(f, 2, in, 1, &y), 0);
    ck_assert_int_eq(tj_function_call(f, 2, in, 1, &y), 0);
    ck_assert_double_eq(tu_get(v, 999), 2.0);
    in[1] = tj_tensor_from(TJ_I32, TJ_SHAPE(2), bad);
    ck_assert_int_ne(tj_function_call(f, 2, in, 1, &y), 0);
    ck_assert_str_eq(tj_function_last_path(f), "compiled");
    ck_assert_double_eq(tu_get(v, 999), 2.0);
    tj_clear_error();
    tj_function_free(f);
    tj_variable_free(v);
}
END_TEST

Suite *compile_suite(void) {
    Suite *s = suite_create("compile");
    TCase *tc = tcase_create("compile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_background_compile_runs_eagerly_until_ready);
    tcase_add_test(tc, test_wait_then_compiled);
    tcase_add_test(tc, test_tiers_give_eager_bits);
    tcase_add_test(tc, test_free_while_compiling);
    tcase_add_test(tc, test_exit_while_compiling);
    tcase_add_test(tc, test_disk_cache);
    tcase_add_test(tc, test_unusable_cache_dir_compiles_anyway);
    tcase_add_test(tc, test_arena_shares_bytes_by_liveness);
    tcase_add_test(tc, test_compiled_call_allocates_only_its_outputs);
    tcase_add_test(tc, test_outputs_computed_into_fresh_tensors);
    tcase_add_test(tc, test_state_written_in_place_keeps_old_values_for_others);
    tcase_add_test(tc, test_failed_step_leaves_state_alone);
    suite_add_tcase(s, tc);
    return s;
}
