/* check_alloc.c: out-of-memory handling through the allocation hook (tj_set_allocator),
 * as Lua's ltests does: a representative program runs with its n-th allocation failing,
 * for n = 1, 2, 3, ... until it runs to the end. Every call that suffers the failure must
 * report it (NULL or TJ_ERR_OOM, first error TJ_ERR_OOM with a message), nothing may
 * crash, and after cleanup the live bytes (tracked per block, with the size tapejit says it
 * frees checked against the size it asked for) are back to what they were, but for what
 * tapejit keeps for the process (its handle table), measured by one run before the loop. */
#include "tapejit.h"
#include "core/core.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *alloc_suite(void);

/* ---- a counting allocator that fails the n-th allocation ------------------------------- */

/* Live blocks by address (linear probing, deletion by backward shift). */
#define TAB_BITS 16
#define TAB_SIZE (1u << TAB_BITS)
static struct { void *p; size_t n; } tab[TAB_SIZE];

static size_t tab_hash(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)(x & (TAB_SIZE - 1));
}

static long tab_find(const void *p) {
    for (size_t i = tab_hash(p);; i = (i + 1) & (TAB_SIZE - 1)) {
        if (tab[i].p == p) return (long)i;
        if (!tab[i].p) return -1;
    }
}

static void tab_put(void *p, size_t n) {
    size_t i = tab_hash(p);
    while (tab[i].p) i = (i + 1) & (TAB_SIZE - 1);
    tab[i].p = p;
    tab[i].n = n;
}

static void tab_del(size_t i) {
    for (size_t j = i;;) {
        j = (j + 1) & (TAB_SIZE - 1);
        if (!tab[j].p) break;
        size_t k = tab_hash(tab[j].p);
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;   /* stays where it is */
        tab[i] = tab[j];
        i = j;
    }
    tab[i].p = NULL;
}

typedef struct {
    long long live;      /* bytes in blocks we handed out and that are not freed */
    long blocks;         /* those blocks */
    long count;          /* allocations so far: new blocks and growing reallocs */
    long fail_at;        /* the allocation to fail, 0: none */
    long failed;         /* failures injected */
    long bad_osize;      /* frees/reallocs whose osize is not the size of the block */
    long foreign;        /* frees/reallocs of blocks we did not hand out */
    char bad_what[160];  /* the first bad_osize */
} alloc_state;

static alloc_state A;

static void *test_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    alloc_state *a = ud;
    long at = -1;
    if (ptr) {
        at = tab_find(ptr);
        if (at < 0) {
            a->foreign++;
        } else if (tab[at].n != osize) {
            if (!a->bad_osize)
                snprintf(a->bad_what, sizeof a->bad_what, "block of %zu bytes given back as %zu (new size %zu)",
                         tab[at].n, osize, nsize);
            a->bad_osize++;
        }
    }
    if (nsize == 0) {
        if (at >= 0) { a->live -= (long long)tab[at].n; a->blocks--; tab_del((size_t)at); }
        free(ptr);
        return NULL;
    }
    if (!ptr || nsize > osize) {
        if (++a->count == a->fail_at) { a->failed++; return NULL; }
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    if (at >= 0) { a->live -= (long long)tab[at].n; a->blocks--; tab_del((size_t)at); }
    ck_assert_msg(a->blocks < (long)(TAB_SIZE / 2), "too many live blocks for the test's table");
    tab_put(p, nsize);
    a->live += (long long)nsize;
    a->blocks++;
    return p;
}

static void install(long fail_at) {
    A.count = 0;
    A.fail_at = fail_at;
    A.failed = 0;
    tj_set_allocator(test_alloc, &A);
}

static void reset_allocator_state(void) {
    memset(tab, 0, sizeof tab);
    memset(&A, 0, sizeof A);
}

static void teardown(void) {
    tj_set_allocator(NULL, NULL);
    tj_clear_error();
}

/* ---- the program ----------------------------------------------------------------------- */

/* After one call: if an allocation failed during it, the call must say so (NULL result,
 * TJ_ERR_OOM status, or the error set), and the first error must be TJ_ERR_OOM with a
 * message; if none failed, it must succeed with no error. Returns whether to go on. */
static bool step(bool ok, long failed_before, const char *what) {
    if (A.failed > failed_before) {
        ck_assert_msg(!ok, "allocation %ld failed in `%s`, which reported success", A.fail_at, what);
        ck_assert_msg(tj_error_code() == TJ_ERR_OOM, "allocation %ld failed in `%s`: error is %d (%s)",
                      A.fail_at, what, tj_error_code(), tj_last_error());
        ck_assert_msg(tj_last_error()[0] != '\0', "allocation %ld failed in `%s`: empty message",
                      A.fail_at, what);
        return false;
    }
    ck_assert_msg(ok && tj_error_code() == 0, "`%s` failed with no allocation failure: error %d (%s)",
                  what, tj_error_code(), tj_last_error());
    return true;
}

#define PTR(var, expr)                                                          \
    do {                                                                        \
        long f0_ = A.failed;                                                    \
        var = (expr);                                                           \
        if (!step(var != NULL, f0_, #expr)) goto out;                           \
    } while (0)
#define INT(expr)                                                               \
    do {                                                                        \
        long f0_ = A.failed;                                                    \
        int rc_ = (expr);                                                       \
        if (!step(rc_ == 0, f0_, #expr)) {                                      \
            ck_assert_msg(rc_ == TJ_ERR_OOM, "`%s` returned %d", #expr, rc_);   \
            goto out;                                                           \
        }                                                                       \
    } while (0)
#define VOID(stmt)                                                              \
    do {                                                                        \
        long f0_ = A.failed;                                                    \
        stmt;                                                                   \
        if (!step(tj_error_code() == 0, f0_, #stmt)) goto out;                  \
    } while (0)

/* The program's data and a double reference of its loss:
 * e = a*b + 1 (a (2,3), b (3,) broadcast), m = e @ W (W (3,2) a variable),
 * s = sum(m, axis 1, keepdims), mx = max(e, axis 0),
 * t = transpose(reshape(e, (3,2))), c = concat(e, t; axis 0) (4,3), sl = c[1:3, :],
 * ga = gather(sl, [2, 0], axis 1), loss = sum(tanh(m)) + sum(ga) + mean(s) + sum(mx). */
static const double pa[6] = {0.5, -1.0, 1.5, 2.0, -0.25, 0.75};
static const double pb[3] = {1.0, -2.0, 0.5};
static const double pw[6] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6};
static const double px[3] = {0.5, -1.0, 2.0};
static const int32_t pidx[2] = {2, 0};

static double loss_ref(const double *a, const double *w) {
    double e[6], m[4], loss = 0;
    for (int i = 0; i < 6; i++) e[i] = a[i] * pb[i % 3] + 1;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            m[i * 2 + j] = 0;
            for (int k = 0; k < 3; k++) m[i * 2 + j] += e[i * 3 + k] * w[k * 2 + j];
            loss += tanh(m[i * 2 + j]);
        }
    for (int i = 0; i < 2; i++) loss += (m[i * 2] + m[i * 2 + 1]) / 2;      /* mean(s) */
    for (int j = 0; j < 3; j++) loss += fmax(e[j], e[3 + j]);              /* sum(mx) */
    /* c rows: e[0], e[1], t[0], t[1]; t[i][j] = r[j][i] = e_flat[2j + i]; sl = rows 1, 2 */
    double sl[6];
    for (int j = 0; j < 3; j++) { sl[j] = e[3 + j]; sl[3 + j] = e[2 * j]; }
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) loss += sl[i * 3 + pidx[k]];
    return loss;
}

static void check_values(tj_tensor *t, const double *ref, int n, double tol, const char *what) {
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(tu_get(t, i) - ref[i]) <= tol * (1 + fabs(ref[i])), "%s[%d] = %.9g, expected %.9g",
                      what, i, tu_get(t, i), ref[i]);
}

typedef struct {
    tj_tensor *w;
    tj_tape *tape, *outer, *inner;
    int scopes;          /* scopes the program opened that are still open */
    bool finished;
} prog;

static float f32buf[6];
static const float *f32(const double *v, int n) {
    for (int i = 0; i < n; i++) f32buf[i] = (float)v[i];
    return f32buf;
}

/* Runs until the end or the first failing call; cleanup is cleanup_program's. */
static void run_program(prog *P) {
    tj_tensor *a, *b, *w0, *idx, *x, *e, *m, *s, *mx, *r, *t, *c, *sl, *ga, *loss, *l1, *l2, *l3;
    tj_tensor *sm, *dr, *pos, *ad, *gv[2], *g1, *g2, *y, *view, *upd;
    memset(P, 0, sizeof *P);
    VOID(tj_scope_begin());
    P->scopes++;
    PTR(a, tj_tensor_from(TJ_F32, TJ_SHAPE(2, 3), f32(pa, 6)));
    PTR(b, tj_tensor_from(TJ_F32, TJ_SHAPE(3), f32(pb, 3)));
    PTR(w0, tj_tensor_from(TJ_F32, TJ_SHAPE(3, 2), f32(pw, 6)));
    PTR(P->w, tj_variable(w0, "dense/kernel"));
    PTR(idx, tj_tensor_from(TJ_I32, TJ_SHAPE(2), pidx));
    PTR(x, tj_tensor_from(TJ_F32, TJ_SHAPE(3), f32(px, 3)));
    PTR(P->tape, tj_tape_begin(TJ_TAPE_PERSISTENT));
    VOID(tj_tape_watch(P->tape, a));

    VOID(tj_scope_begin());
    P->scopes++;
    PTR(e, tj_add(tj_mul(a, b), tj_scalar(1.0)));             /* a chain: NULL flows through */
    PTR(m, tj_matmul(e, P->w));
    int ax1 = 1, ax0 = 0;
    PTR(s, tj_sum(m, 1, &ax1, true));
    PTR(mx, tj_max(e, 1, &ax0, false));
    PTR(r, tj_reshape(e, TJ_SHAPE(3, 2)));
    PTR(t, tj_transpose(r, NULL));
    tj_tensor *parts[2];
    parts[0] = e;
    parts[1] = t;
    PTR(c, tj_concat(2, parts, 0));
    const int64_t begin[2] = {1, 0}, size[2] = {2, -1};
    PTR(sl, tj_slice(c, begin, size));
    PTR(ga, tj_gather(sl, idx, 1));
    PTR(l1, tj_sum(tj_tanh(m), 0, NULL, false));
    PTR(l2, tj_add(tj_sum(ga, 0, NULL, false), tj_mean(s, 0, NULL, false)));
    PTR(l3, tj_sum(mx, 0, NULL, false));
    PTR(loss, tj_add(tj_add(l1, l2), l3));
    /* composites and comparisons, not part of the loss */
    PTR(sm, tj_softmax(m, -1));
    PTR(dr, tj_dropout(e, 0.5, true));
    PTR(pos, tj_where(tj_greater(e, tj_scalar(0.0)), e, tj_scalar(0.0)));
    PTR(ad, tj_mul(tj_cast(a, TJ_F64), tj_full(TJ_F64, TJ_SHAPE(2, 3), 2.0)));
    PTR(loss, tj_keep(loss));
    ck_assert_int_eq(tj_scope_end(), 0);
    P->scopes--;

    double ref = loss_ref(pa, pw);
    check_values(loss, &ref, 1, 1e-5, "loss");
    tj_tensor *src[2] = {a, P->w};
    INT(tj_tape_gradient(P->tape, loss, 2, src, gv));
    /* central differences of the double reference, for a and for W */
    double da[6], dw[6], va[6], vw[6];
    memcpy(va, pa, sizeof va);
    memcpy(vw, pw, sizeof vw);
    for (int i = 0; i < 6; i++) {
        const double h = 1e-6;
        va[i] = pa[i] + h; double fp = loss_ref(va, pw);
        va[i] = pa[i] - h; double fm = loss_ref(va, pw);
        va[i] = pa[i];
        da[i] = (fp - fm) / (2 * h);
        vw[i] = pw[i] + h; fp = loss_ref(pa, vw);
        vw[i] = pw[i] - h; fm = loss_ref(pa, vw);
        vw[i] = pw[i];
        dw[i] = (fp - fm) / (2 * h);
    }
    check_values(gv[0], da, 6, 1e-4, "dloss/da");
    check_values(gv[1], dw, 6, 1e-4, "dloss/dW");

    /* second order, with three tapes recording: y = sum(tanh(x) x),
     * dy/dx = tanh x + x (1 - tanh^2 x), d2y/dx2 = 2 (1 - tanh^2 x) - 2 x tanh x (1 - tanh^2 x) */
    PTR(P->outer, tj_tape_begin(0));
    PTR(P->inner, tj_tape_begin(0));
    VOID(tj_tape_watch(P->tape, x));
    VOID(tj_tape_watch(P->outer, x));
    VOID(tj_tape_watch(P->inner, x));
    PTR(y, tj_sum(tj_mul(tj_tanh(x), x), 0, NULL, false));
    INT(tj_tape_gradient(P->inner, y, 1, &x, &g1));
    INT(tj_tape_gradient(P->outer, g1, 1, &x, &g2));
    double r1[3], r2[3];
    for (int i = 0; i < 3; i++) {
        double th = tanh(px[i]);
        r1[i] = th + px[i] * (1 - th * th);
        r2[i] = 2 * (1 - th * th) - 2 * px[i] * th * (1 - th * th);
    }
    check_values(g1, r1, 3, 1e-5, "dy/dx");
    check_values(g2, r2, 3, 1e-5, "d2y/dx2");

    /* an optimizer step while a view shows the old value (copy on write) */
    PTR(view, tj_stop_gradient(P->w));
    PTR(upd, tj_sub(P->w, tj_mul(gv[1], tj_scalar(0.5))));
    INT(tj_assign(P->w, upd));
    double neww[6];
    for (int i = 0; i < 6; i++) neww[i] = pw[i] - 0.5 * dw[i];
    check_values(P->w, neww, 6, 1e-4, "w after assign");
    check_values(view, pw, 6, 1e-7, "view of w's old value");

    char buf[128];
    ck_assert_int_eq(tj_snprint(buf, sizeof buf, idx), 41);
    ck_assert_str_eq(buf, "tj.Tensor([2 0], shape=(2,), dtype=int32)");
    PTR(l1, tj_sum(a, 0, NULL, false));
    ck_assert_int_gt(tj_snprint(buf, sizeof buf, l1), 0);
    ck_assert_str_eq(buf, "tj.Tensor(3.5, shape=(), dtype=float32)");
    (void)sm; (void)dr; (void)pos; (void)ad;
    P->finished = true;
out:
    return;
}

static void cleanup_program(prog *P) {
    for (; P->scopes > 0; P->scopes--) ck_assert_int_eq(tj_scope_end(), 0);
    tj_tape_free(P->inner);
    tj_tape_free(P->outer);
    tj_tape_free(P->tape);
    tj_variable_free(P->w);
}

/* n = 1, 2, ...: fail the n-th allocation; every run must clean up to the baseline. */
START_TEST(fail_each_allocation_in_turn) {
    reset_allocator_state();
    tj_clear_error();
    prog P;
    install(0);
    run_program(&P);                      /* the baseline: grows what stays for the process */
    cleanup_program(&P);
    ck_assert_msg(P.finished && tj_error_code() == 0, "the program fails without injected failures: %s",
                  tj_last_error());
    long long base = A.live;
    long base_blocks = A.blocks;
    install(0);
    run_program(&P);                      /* a second run leaves nothing more */
    cleanup_program(&P);
    long total = A.count;
    ck_assert(P.finished);
    ck_assert_msg(A.live == base && A.blocks == base_blocks, "second run: %lld bytes live, first left %lld",
                  A.live, base);
    ck_assert_msg(total > 100, "only %ld allocations: is the hook used?", total);
    ck_assert_int_eq(A.foreign, 0);
    long n;
    for (n = 1; n < 100000; n++) {
        tj_clear_error();
        install(n);
        run_program(&P);
        cleanup_program(&P);
        tj_set_allocator(NULL, NULL);
        if (A.failed) {
            ck_assert_msg(!P.finished, "allocation %ld failed but the program ran to its end", n);
            ck_assert_msg(tj_error_code() == TJ_ERR_OOM, "allocation %ld: error %d after cleanup (%s)", n,
                          tj_error_code(), tj_last_error());
            ck_assert_msg(strstr(tj_last_error(), "out of memory") != NULL, "allocation %ld: message '%s'", n,
                          tj_last_error());
        } else {
            ck_assert_msg(P.finished, "no failure injected but the program stopped");
            ck_assert_int_eq(tj_error_code(), 0);
        }
        ck_assert_msg(A.live == base && A.blocks == base_blocks,
                      "allocation %ld failed: %lld bytes in %ld blocks live after cleanup, %lld in %ld expected",
                      n, A.live, A.blocks, base, base_blocks);
        ck_assert_msg(A.bad_osize == 0, "allocation %ld: %ld frees with a wrong size, first: %s", n,
                      A.bad_osize, A.bad_what);
        if (!A.failed) break;
    }
    ck_assert_msg(n == total + 1, "the program ran to its end at n = %ld; a run makes %ld allocations", n, total);
    tj_clear_error();
}
END_TEST

/* A tj_scope_begin that fails (its scope stack cannot grow) reports TJ_ERR_OOM, and the
 * program's matching tj_scope_end must not end the enclosing scope: x, made there, lives
 * until that scope's own end. */
START_TEST(failed_scope_begin_keeps_scopes_balanced) {
    reset_allocator_state();
    tj_clear_error();
    tj_thread *th = tj_thread_state();
    tj_scope_begin();
    int depth = th->nscopes - 1;          /* what to come back to */
    while (th->nscopes < th->capscopes) tj_scope_begin();   /* the stack is full */
    tj_tensor *x = tj_full(TJ_F32, TJ_SHAPE(1), 4.0);
    ck_assert_ptr_nonnull(x);
    install(1);
    tj_scope_begin();                     /* must grow the stack: fails */
    tj_set_allocator(NULL, NULL);
    int code = tj_error_code();
    bool says_oom = strstr(tj_last_error(), "out of memory") != NULL;
    tj_clear_error();
    tj_scope_end();                       /* the program ends the scope it began */
    double xv = tj_item(x);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", tj_last_error());
    while (th->nscopes > depth) tj_scope_end();
    tj_clear_error();
    ck_assert_int_eq(A.failed, 1);
    ck_assert_int_eq(code, TJ_ERR_OOM);
    ck_assert(says_oom);
    ck_assert_msg(xv == 4.0, "x died with the failed scope's end: %s", msg);
}
END_TEST

/* A thread that used tapejit and ended leaves nothing behind (its scope stack and root
 * scope are per-thread state). */
static void *thread_body(void *arg) {
    (void)arg;
    tj_scope_begin();
    tj_tensor *y = tj_add(tj_ones(TJ_F32, TJ_SHAPE(3)), tj_scalar(1.0));
    double v = tj_item(tj_sum(y, 0, NULL, false));
    tj_scope_end();
    return v == 6.0 ? (void *)1 : NULL;
}

START_TEST(ended_thread_leaves_nothing) {
    reset_allocator_state();
    tj_clear_error();
    pthread_t tid;
    install(0);
    ck_assert_int_eq(pthread_create(&tid, NULL, thread_body, NULL), 0);   /* warm up: handle table */
    void *ok;
    ck_assert_int_eq(pthread_join(tid, &ok), 0);
    ck_assert_ptr_nonnull(ok);
    long long before = A.live;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_create(&tid, NULL, thread_body, NULL), 0);
        ck_assert_int_eq(pthread_join(tid, &ok), 0);
        ck_assert_ptr_nonnull(ok);
    }
    tj_set_allocator(NULL, NULL);
    ck_assert_msg(A.live == before, "4 threads left %lld bytes behind", A.live - before);
}
END_TEST

Suite *alloc_suite(void) {
    Suite *s = suite_create("alloc");
    TCase *c = tcase_create("fail_nth");
    tcase_add_checked_fixture(c, NULL, teardown);
    tcase_set_timeout(c, 300);
    tcase_add_test(c, fail_each_allocation_in_turn);
    tcase_add_test(c, failed_scope_begin_keeps_scopes_balanced);
    tcase_add_test(c, ended_thread_leaves_nothing);
    suite_add_tcase(s, c);
    return s;
}
