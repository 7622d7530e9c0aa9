/* check_blas.c: matrix products (runtime/core/blas.c) and the thread pool behind them
 * (runtime/core/pool.c). Products are checked against a double-precision reference with
 * a bound that grows with k; C starts as NaN, so beta 0 must overwrite it. The pool must
 * run every task exactly once, nest without deadlock and reject bad thread counts. */
#include "tapejit.h"
#include "core/blas.h"
#include "core/core.h"

#include <check.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *blas_suite(void);

/* ---- reference ------------------------------------------------------------------------ */

static uint64_t lcg = 88172645463325252ull;
static double rnd(void) {   /* in [-1, 1) */
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg >> 11) * 0x1p-52 - 1.0;
}

typedef void gemm_f32(int, int64_t, int64_t, int64_t, const float *, const float *, float *);
typedef void gemm_f64(int, int64_t, int64_t, int64_t, const double *, const double *, double *);

/* Where op(A)[i,p] and op(B)[p,j] are stored: A (m, k) or, read transposed, (k, m); B (k, n)
 * or (n, k). */
#define AT(i, p) (trans & TJ_BLAS_TA ? (p) * m + (i) : (i) * k + (p))
#define BT(p, j) (trans & TJ_BLAS_TB ? (j) * k + (p) : (p) * n + (j))

/* |C - op(A)@op(B)| <= 2 k eps sum_p |A_ip B_pj| (+ the smallest normal, for all-zero rows) */
static void check_f32(gemm_f32 *gemm, int trans, int64_t m, int64_t n, int64_t k) {
    float *A = malloc(sizeof(float) * (size_t)(m * k + 1));
    float *B = malloc(sizeof(float) * (size_t)(k * n + 1));
    float *C = malloc(sizeof(float) * (size_t)(m * n + 1));
    for (int64_t i = 0; i < m * k; i++) A[i] = (float)rnd();
    for (int64_t i = 0; i < k * n; i++) B[i] = (float)rnd();
    for (int64_t i = 0; i < m * n + 1; i++) C[i] = NAN;
    gemm(trans, m, n, k, A, B, C);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double ref = 0, mag = 0;
            for (int64_t p = 0; p < k; p++) {
                ref += (double)A[AT(i, p)] * B[BT(p, j)];
                mag += fabs((double)A[AT(i, p)] * B[BT(p, j)]);
            }
            double tol = 2.0 * (double)k * FLT_EPSILON * mag + FLT_MIN;
            ck_assert_msg(fabs(C[i * n + j] - ref) <= tol,
                          "%lldx%lldx%lld trans %d: C[%lld,%lld] = %.9g, reference %.9g (tolerance %g)",
                          (long long)m, (long long)n, (long long)k, trans, (long long)i, (long long)j,
                          (double)C[i * n + j], ref, tol);
        }
    ck_assert_msg(isnan(C[m * n]), "wrote past the end of C");
    free(A);
    free(B);
    free(C);
}

static void check_f64(gemm_f64 *gemm, int trans, int64_t m, int64_t n, int64_t k) {
    double *A = malloc(sizeof(double) * (size_t)(m * k + 1));
    double *B = malloc(sizeof(double) * (size_t)(k * n + 1));
    double *C = malloc(sizeof(double) * (size_t)(m * n + 1));
    for (int64_t i = 0; i < m * k; i++) A[i] = rnd();
    for (int64_t i = 0; i < k * n; i++) B[i] = rnd();
    for (int64_t i = 0; i < m * n + 1; i++) C[i] = NAN;
    gemm(trans, m, n, k, A, B, C);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            long double ref = 0, mag = 0;
            for (int64_t p = 0; p < k; p++) {
                ref += (long double)A[AT(i, p)] * B[BT(p, j)];
                mag += fabsl((long double)A[AT(i, p)] * B[BT(p, j)]);
            }
            double tol = 2.0 * (double)k * DBL_EPSILON * (double)mag + DBL_MIN;
            ck_assert_msg(fabs(C[i * n + j] - (double)ref) <= tol,
                          "%lldx%lldx%lld trans %d: C[%lld,%lld] = %.17g, reference %.17g",
                          (long long)m, (long long)n, (long long)k, trans, (long long)i, (long long)j,
                          C[i * n + j], (double)ref);
        }
    ck_assert_msg(isnan(C[m * n]), "wrote past the end of C");
    free(A);
    free(B);
    free(C);
}

static const int64_t sizes[][3] = {   /* m, n, k */
    {1, 1, 1}, {7, 13, 5}, {64, 3, 32}, {130, 257, 65}, {1, 300, 2}, {300, 1, 17},
    {0, 5, 3}, {5, 0, 3}, {4, 6, 0}, {0, 0, 0},
};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* each size with A and B as stored and read transposed (TJ_BLAS_TA, TJ_BLAS_TB) */
START_TEST(sgemm_matches_reference) {
    for (int trans = 0; trans < 4; trans++) check_f32(tj_blas_sgemm, trans, sizes[_i][0], sizes[_i][1], sizes[_i][2]);
}
END_TEST

START_TEST(dgemm_matches_reference) {
    for (int trans = 0; trans < 4; trans++) check_f64(tj_blas_dgemm, trans, sizes[_i][0], sizes[_i][1], sizes[_i][2]);
}
END_TEST

START_TEST(naive_matches_reference) {
    for (int trans = 0; trans < 4; trans++) {
        check_f32(tj_blas_sgemm_naive, trans, sizes[_i][0], sizes[_i][1], sizes[_i][2]);
        check_f64(tj_blas_dgemm_naive, trans, sizes[_i][0], sizes[_i][1], sizes[_i][2]);
    }
}
END_TEST

START_TEST(k_zero_gives_zeros) {
    float C[12];
    double D[12];
    for (int i = 0; i < 12; i++) { C[i] = NAN; D[i] = NAN; }
    float a = 1;
    double b = 1;
    tj_blas_sgemm(0, 3, 4, 0, &a, &a, C);
    tj_blas_dgemm(0, 3, 4, 0, &b, &b, D);
    for (int i = 0; i < 12; i++) {
        ck_assert(C[i] == 0.0f && !signbit(C[i]));
        ck_assert(D[i] == 0.0 && !signbit(D[i]));
    }
}
END_TEST

START_TEST(one_and_two_threads) {
    int saved = tj_threads();
    for (int t = 1; t <= 2; t++) {
        ck_assert_int_eq(tj_set_threads(t), 0);
        check_f32(tj_blas_sgemm, 0, 256, 256, 256);
        check_f32(tj_blas_sgemm, TJ_BLAS_TA | TJ_BLAS_TB, 600, 256, 70);    /* pieces of rows */
        check_f64(tj_blas_dgemm, TJ_BLAS_TB, 96, 600, 200);                 /* pieces of columns */
        check_f32(tj_blas_sgemm_naive, TJ_BLAS_TA, 100, 70, 50);
    }
    ck_assert_int_eq(tj_set_threads(saved), 0);
}
END_TEST

/* The pieces tile the product (rows or columns, equal but the last, multiples of 16), and
 * computing them one by one gives the whole product's bits, f32 and f64, with the operands
 * as stored and read transposed. */
START_TEST(pieces_tile_the_product) {
    static const int64_t mnk[6][3] = {{784, 512, 128}, {128, 512, 784}, {600, 700, 33}, {100, 1100, 7}, {10, 10, 3},
                                      {512, 5, 0}};
    for (int s = 0; s < 6; s++) {
        int64_t m = mnk[s][0], n = mnk[s][1], k = mnk[s][2], pm, pn;
        int64_t np = tj_blas_pieces(m, n, &pm, &pn);
        ck_assert(pm == m || pn == n);
        ck_assert(pm == m || pm % 16 == 0);
        ck_assert(pn == n || pn % 16 == 0);
        ck_assert_int_eq(np, (m + pm - 1) / pm * ((n + pn - 1) / pn));
        ck_assert(np >= 1 && (np == 1 || (pm < m ? (np - 1) * pm < m : (np - 1) * pn < n)));
        float *A = malloc(sizeof(float) * (size_t)(m * k + 1)), *B = malloc(sizeof(float) * (size_t)(k * n + 1));
        float *C1 = malloc(sizeof(float) * (size_t)(m * n)), *C2 = malloc(sizeof(float) * (size_t)(m * n));
        double *D1 = malloc(sizeof(double) * (size_t)(m * n)), *D2 = malloc(sizeof(double) * (size_t)(m * n));
        double *Ad = malloc(sizeof(double) * (size_t)(m * k + 1)), *Bd = malloc(sizeof(double) * (size_t)(k * n + 1));
        for (int64_t i = 0; i < m * k; i++) Ad[i] = A[i] = (float)rnd();
        for (int64_t i = 0; i < k * n; i++) Bd[i] = B[i] = (float)rnd();
        for (int64_t i = 0; i < m * n; i++) { C1[i] = C2[i] = NAN; D1[i] = D2[i] = NAN; }
        for (int trans = 0; trans < 4; trans++) {
            tj_blas_sgemm(trans, m, n, k, A, B, C1);
            tj_blas_dgemm(trans, m, n, k, Ad, Bd, D1);
            for (int64_t t = np - 1; t >= 0; t--) {           /* any order */
                tj_blas_sgemm_piece(trans, m, n, k, A, B, C2, t);
                tj_blas_dgemm_piece(trans, m, n, k, Ad, Bd, D2, t);
            }
            ck_assert_msg(memcmp(C1, C2, sizeof(float) * (size_t)(m * n)) == 0, "%lldx%lldx%lld trans %d f32", (long long)m,
                          (long long)n, (long long)k, trans);
            ck_assert_msg(memcmp(D1, D2, sizeof(double) * (size_t)(m * n)) == 0, "%lldx%lldx%lld trans %d f64", (long long)m,
                          (long long)n, (long long)k, trans);
        }
        free(A); free(B); free(C1); free(C2); free(D1); free(D2); free(Ad); free(Bd);
    }
    int64_t pm, pn;
    ck_assert_int_eq(tj_blas_pieces(0, 5, &pm, &pn), 0);
}
END_TEST

/* The threads of this process (Linux: /proc/self/task), or -1. */
static int task_count(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

START_TEST(info_names_the_core) {
    const char *env = getenv("OPENBLAS_CORETYPE");
    char saved[256];
    const char *before = NULL;
    if (env) {
        snprintf(saved, sizeof saved, "%s", env);
        before = saved;
    }
    const char *threads_env = getenv("OPENBLAS_NUM_THREADS");
    int threads_before = task_count();
    const char *info = tj_blas_info();
    ck_assert_ptr_nonnull(info);
    /* OpenBLAS starts no threads of its own (the pool runs its pieces), unless the
     * environment asked it to */
    if (!threads_env) ck_assert_int_eq(task_count(), threads_before);
    ck_assert_ptr_eq(getenv("OPENBLAS_NUM_THREADS"), threads_env);
    ck_assert_msg(strlen(info) > 0, "empty info");
    if (!strstr(info, "no OpenBLAS found") && !strstr(info, "naive C loops")) {
        ck_assert_msg(strncmp(info, "OpenBLAS", 8) == 0 && strstr(info, " core="), "info: %s",
                      info);
        if (before && !strstr(info, "already loaded")) {
            char want[300];
            snprintf(want, sizeof want, "OPENBLAS_CORETYPE=%s from the environment", before);
            ck_assert_msg(strstr(info, want), "info: %s", info);
        }
    }
    /* loading leaves the environment as it was */
    env = getenv("OPENBLAS_CORETYPE");
    if (before) ck_assert_str_eq(env ? env : "(unset)", before);
    else ck_assert_msg(env == NULL, "OPENBLAS_CORETYPE left set to %s", env);
}
END_TEST

/* ---- the pool ------------------------------------------------------------------------------ */

typedef struct { _Atomic int *hits; int64_t n; _Atomic int nested; } count_ctx;

static void count_task(void *vctx, int64_t i) {
    count_ctx *c = vctx;
    atomic_fetch_add(&c->hits[i], 1);
}

static void nested_task(void *vctx, int64_t i) {
    count_ctx *c = vctx;
    atomic_fetch_add(&c->hits[i], 1);
    count_ctx inner = {c->hits + c->n, c->n, 0};   /* a second row of counters */
    tj_parallel_for(3, count_task, &inner);     /* inner.hits[0..2] += 1 each time */
    atomic_fetch_add(&c->nested, 1);
}

START_TEST(parallel_for_runs_each_task_once) {
    int saved = tj_threads();
    const int counts[] = {1, 2, 3, 4, 8};
    const int64_t ns[] = {1, 2, 3, 7, 100, 10007};
    for (size_t t = 0; t < sizeof counts / sizeof counts[0]; t++) {
        ck_assert_int_eq(tj_set_threads(counts[t]), 0);
        ck_assert_int_eq(tj_threads(), counts[t]);
        for (size_t s = 0; s < sizeof ns / sizeof ns[0]; s++) {
            for (int rep = 0; rep < 20; rep++) {
                _Atomic int *hits = calloc((size_t)ns[s], sizeof *hits);
                count_ctx c = {hits, ns[s], 0};
                tj_parallel_for(ns[s], count_task, &c);
                for (int64_t i = 0; i < ns[s]; i++)
                    ck_assert_msg(hits[i] == 1, "threads %d, n %lld: task %lld ran %d times",
                                  counts[t], (long long)ns[s], (long long)i, hits[i]);
                free(hits);
            }
        }
    }
    tj_parallel_for(0, count_task, NULL);    /* nothing to do, fn never called */
    tj_parallel_for(-3, count_task, NULL);
    ck_assert_int_eq(tj_set_threads(saved), 0);
}
END_TEST

START_TEST(nested_parallel_for_runs_serially) {
    int saved = tj_threads();
    ck_assert_int_eq(tj_set_threads(2), 0);
    enum { N = 64 };
    _Atomic int *hits = calloc(2 * N, sizeof *hits);
    count_ctx c = {hits, N, 0};
    tj_parallel_for(N, nested_task, &c);
    for (int i = 0; i < N; i++) ck_assert_int_eq(hits[i], 1);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(hits[N + i], N);
    ck_assert_int_eq(c.nested, N);
    free(hits);
    ck_assert_int_eq(tj_set_threads(saved), 0);
}
END_TEST

static void *user_thread(void *arg) {
    _Atomic int *hits = arg;
    count_ctx c = {hits, 5000, 0};
    for (int rep = 0; rep < 50; rep++) tj_parallel_for(5000, count_task, &c);
    return NULL;
}

START_TEST(two_user_threads_share_the_pool) {
    int saved = tj_threads();
    ck_assert_int_eq(tj_set_threads(2), 0);
    _Atomic int *hits = calloc(2 * 5000, sizeof *hits);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, user_thread, hits + 5000 * i);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2 * 5000; i++) ck_assert_int_eq(hits[i], 50);
    free(hits);
    ck_assert_int_eq(tj_set_threads(saved), 0);
}
END_TEST

START_TEST(set_threads_rejects_bad_counts) {
    int saved = tj_threads();
    const int bad[] = {0, -1, 257, 100000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tj_clear_error();
        ck_assert_int_eq(tj_set_threads(bad[i]), TJ_ERR_ARG);
        ck_assert_int_eq(tj_error_code(), TJ_ERR_ARG);
        char want[64];
        snprintf(want, sizeof want, "set_threads: n is %d", bad[i]);
        ck_assert_msg(strstr(tj_last_error(), want), "message: %s", tj_last_error());
        ck_assert_int_eq(tj_threads(), saved);
    }
    tj_clear_error();
    ck_assert_int_eq(tj_set_threads(256), 0);
    ck_assert_int_eq(tj_threads(), 256);
    ck_assert_int_eq(tj_set_threads(saved), 0);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

Suite *blas_suite(void) {
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, sgemm_matches_reference, 0, NSIZES);
    tcase_add_loop_test(tc, dgemm_matches_reference, 0, NSIZES);
    tcase_add_loop_test(tc, naive_matches_reference, 0, NSIZES);
    tcase_add_test(tc, k_zero_gives_zeros);
    tcase_add_test(tc, one_and_two_threads);
    tcase_add_test(tc, pieces_tile_the_product);
    tcase_add_test(tc, info_names_the_core);
    suite_add_tcase(s, tc);

    tc = tcase_create("pool");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, parallel_for_runs_each_task_once);
    tcase_add_test(tc, nested_parallel_for_runs_serially);
    tcase_add_test(tc, two_user_threads_share_the_pool);
    tcase_add_test(tc, set_threads_rejects_bad_counts);
    suite_add_tcase(s, tc);
    return s;
}
