/* blas.c: the only file that includes <cblas.h>. Loads OpenBLAS with dlopen on first use
 * (never linked at build time) so that its kernels can be chosen before its constructor
 * runs: Debian's 0.3.21 reads OPENBLAS_CORETYPE only there and takes recent CPUs for SSE3
 * "Prescott" (4-8x slower sgemm). A user's or system's OPENBLAS_CORETYPE, or an OpenBLAS
 * the program loaded itself, is never overridden. Without OpenBLAS, plain C loops run.
 * Needs _GNU_SOURCE (RTLD_NOLOAD, RTLD_DEFAULT, dladdr) and -ldl on old glibc. */
#define _GNU_SOURCE
#include "blas.h"

#include "core.h"

#include <cblas.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The types come from cblas.h, so a mismatch with the library's ABI is a compile error. */
typedef __typeof__(cblas_sgemm) sgemm_fn;
typedef __typeof__(cblas_dgemm) dgemm_fn;
typedef char *name_fn(void);
typedef void threads_fn(int);
_Static_assert(sizeof(blasint) == sizeof(int), "libopenblas.so.0 takes 32-bit integers");

static struct {
    void       *handle;             /* kept open for the life of the process */
    void       *sgemm_sym, *dgemm_sym;
    sgemm_fn   *sgemm;              /* NULL: the C loops */
    dgemm_fn   *dgemm;
    threads_fn *set_threads;
    char        info[640];
} lib;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;

/* ---- which kernels ---------------------------------------------------------------------
 * The core tapejit asks for when nobody else decided: returns NULL to leave OpenBLAS's own
 * detection. __builtin_cpu_supports also checks that the OS saves the AVX/AVX-512 state. */
static const char *choose_core(const char **why) {
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512cd");
    bool avx2fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (__builtin_cpu_is("intel") && avx512) {
        *why = "Intel CPU with AVX-512";
        return "SkylakeX";
    }
    /* AMD with AVX-512 (Zen 4, Zen 5): conservative. The AVX-512 kernels of older OpenBLAS
     * releases were written for and validated on Intel; we do not trust them on AMD and
     * take the AVX2 kernels. This costs speed: on a Zen 5 (family 0x1A) with 0.3.21, sgemm
     * 512^3 on 1 thread ran 119 GFLOP/s with Haswell, 223 with SkylakeX (results right). */
    if (__builtin_cpu_is("amd") && avx512 && avx2fma) {
        *why = "AMD CPU with AVX-512, where OpenBLAS's AVX-512 kernels are not trusted";
        return "Haswell";
    }
    if (avx2fma) {
        *why = "CPU with AVX2 and FMA";
        return "Haswell";
    }
    *why = "CPU without AVX2+FMA: OpenBLAS's own detection";
    return NULL;
}

/* ---- loading ------------------------------------------------------------------------ */

static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
/* libopenblas64_.so.0 has 64-bit integers: not ABI compatible with cblas.h, never tried. */

/* An OpenBLAS the program loaded already, by soname or under any other name (a libblas.so.3
 * that is OpenBLAS, say): found through its openblas_get_config symbol. */
static void *find_loaded(void) {
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *h = dlopen(names[i], RTLD_LAZY | RTLD_NOLOAD);
        if (h) return h;
    }
    void *sym = dlsym(RTLD_DEFAULT, "openblas_get_config");
    dlerror();
    if (!sym) return NULL;
    Dl_info di;
    void *h = NULL;
    if (dladdr(sym, &di) && di.dli_fname) h = dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) h = dlopen(NULL, RTLD_LAZY);    /* linked statically into the program */
    dlerror();
    return h;
}

static void *sym(const char *name) {
    void *p = dlsym(lib.handle, name);
    dlerror();
    return p;
}

static void load(void) {
    const char *why = NULL, *chose = NULL;
    char how[200], err[300] = "";
    bool preloaded = false;

    lib.handle = find_loaded();
    if (lib.handle) {
        preloaded = true;
        snprintf(how, sizeof how, "already loaded by the program");
        const char *would = choose_core(&why);
        if (would && !getenv("OPENBLAS_CORETYPE")) chose = would;   /* for a hint only */
    } else {
        const char *env = getenv("OPENBLAS_CORETYPE");
        if (env) {
            snprintf(how, sizeof how, "OPENBLAS_CORETYPE=%s from the environment", env);
        } else {
            chose = choose_core(&why);
            if (chose) snprintf(how, sizeof how, "chosen by tapejit: %s", why);
            else snprintf(how, sizeof how, "%s", why);
        }
        /* The variables exist only while the constructor runs; then the environment is
         * as we found it. (Another thread calling getenv meanwhile could see them.) With one
         * thread OpenBLAS starts no threads of its own: it would run them only until the
         * set_threads(1) below, and they spin a while (sched_yield) on the cores the pool
         * and a background compile need. */
        bool set = chose && setenv("OPENBLAS_CORETYPE", chose, 1) == 0;
        bool one = !getenv("OPENBLAS_NUM_THREADS") && setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib.handle; i++) {
            lib.handle = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
            if (!lib.handle && i == 0) {
                const char *e = dlerror();
                snprintf(err, sizeof err, "%s", e ? e : "not found");
            }
        }
        if (set) unsetenv("OPENBLAS_CORETYPE");
        if (one) unsetenv("OPENBLAS_NUM_THREADS");
    }
    if (!lib.handle) {
        snprintf(lib.info, sizeof lib.info, "no OpenBLAS found (%s): naive C loops", err);
        return;
    }

    lib.sgemm_sym = sym("cblas_sgemm");
    lib.dgemm_sym = sym("cblas_dgemm");
    name_fn *corename = (name_fn *)sym("openblas_get_corename");
    name_fn *config = (name_fn *)sym("openblas_get_config");
    lib.set_threads = (threads_fn *)sym("openblas_set_num_threads");
    if (!lib.sgemm_sym || !lib.dgemm_sym) {
        snprintf(lib.info, sizeof lib.info, "OpenBLAS without %s (%s): naive C loops",
                 lib.sgemm_sym ? "cblas_dgemm" : "cblas_sgemm", how);
        lib.sgemm_sym = lib.dgemm_sym = NULL;
        lib.set_threads = NULL;
        return;
    }
    lib.sgemm = (sgemm_fn *)lib.sgemm_sym;
    lib.dgemm = (dgemm_fn *)lib.dgemm_sym;

    /* "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64" -> "OpenBLAS 0.3.21" */
    char version[64] = "OpenBLAS";
    const char *cfg = config ? config() : NULL;
    if (cfg && strncmp(cfg, "OpenBLAS ", 9) == 0) {
        size_t n = 9 + strcspn(cfg + 9, " ");
        if (n >= sizeof version) n = sizeof version - 1;
        memcpy(version, cfg, n);
        version[n] = '\0';
    }
    const char *core = corename ? corename() : NULL;
    if (!core) core = "unknown";
    char hint[120] = "";
    if (chose && strcasecmp(core, chose) != 0)
        snprintf(hint, sizeof hint, preloaded ? "; tapejit would have chosen %s"
                                              : "; %s was asked for", chose);
    snprintf(lib.info, sizeof lib.info, "%s core=%s (%s%s)", version, core, how, hint);

    if (lib.set_threads) lib.set_threads(1);    /* the pool runs the pieces (below) */
}

static void ensure_loaded(void) { pthread_once(&load_once, load); }

const char *tj_blas_info(void) {
    ensure_loaded();
    return lib.info;
}

/* ---- the C loops ------------------------------------------------------------------------
 * C[i,:] = sum_p A[i,p] * B[p,:], p ascending, so every element is computed in the same
 * order whatever the split; rows are shared out in fixed blocks of ROWS. */
#define ROWS 16

typedef struct {
    bool dbl, ta, tb;          /* ta: A is stored (k, m), tb: B is stored (n, k) (TJ_BLAS_TA/TB) */
    int64_t m, n, k, pm, pn;   /* (m, k) @ (k, n); a piece's rows and columns (products) */
    const void *A, *B;
    void *C;
} gemm_ctx;

/* C[i0..i1, j0..j1) by the C loops (zeros when k is 0) */
#define NAIVE_RECT(T, name)                                                              \
    static void name(const gemm_ctx *c, int64_t i0, int64_t i1, int64_t j0, int64_t j1) { \
        const T *A = c->A, *B = c->B;                                                   \
        T *C = c->C;                                                                    \
        int64_t ars = c->ta ? 1 : c->k, acs = c->ta ? c->m : 1;                         \
        int64_t brs = c->tb ? 1 : c->n, bcs = c->tb ? c->k : 1;                         \
        for (int64_t i = i0; i < i1; i++) {                                             \
            T *ci = C + i * c->n;                                                       \
            for (int64_t j = j0; j < j1; j++) ci[j] = 0;                                \
            for (int64_t p = 0; p < c->k; p++) {                                        \
                const T a = A[i * ars + p * acs], *bp = B + p * brs;                    \
                for (int64_t j = j0; j < j1; j++) ci[j] += a * bp[j * bcs];             \
            }                                                                           \
        }                                                                               \
    }
NAIVE_RECT(float, naive_rect_f32)
NAIVE_RECT(double, naive_rect_f64)

static void naive_rect(const gemm_ctx *c, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    (c->dbl ? naive_rect_f64 : naive_rect_f32)(c, i0, i1, j0, j1);
}

static void naive_rows(void *vctx, int64_t blk) {
    const gemm_ctx *c = vctx;
    naive_rect(c, blk * ROWS, (blk + 1) * ROWS < c->m ? (blk + 1) * ROWS : c->m, 0, c->n);
}

static void naive(bool dbl, int trans, int64_t m, int64_t n, int64_t k, const void *A, const void *B, void *C) {
    if (m <= 0 || n <= 0) return;
    gemm_ctx c = {dbl, trans & TJ_BLAS_TA, trans & TJ_BLAS_TB, m, n, k > 0 ? k : 0, m, n, A, B, C};
    tj_parallel_for((m + ROWS - 1) / ROWS, naive_rows, &c);
}

void tj_blas_sgemm_naive(int trans, int64_t m, int64_t n, int64_t k, const float *A, const float *B, float *C) {
    naive(false, trans, m, n, k, A, B, C);
}

void tj_blas_dgemm_naive(int trans, int64_t m, int64_t n, int64_t k, const double *A, const double *B, double *C) {
    naive(true, trans, m, n, k, A, B, C);
}

/* ---- products ---------------------------------------------------------------------------
 * OpenBLAS runs single-threaded: a product of at least 2 * SPLIT rows is cut into pieces of
 * rows (else one of at least 2 * SPLIT columns into pieces of columns), one BLAS call each,
 * run on the process's pool. So BLAS starts no threads of its own to fight the pool's over
 * the cores, and since the pieces depend on the sizes only, the bits do not depend on the
 * thread count. Pieces are as large as SPLIT allows and of equal size (multiples of 16, the
 * last one shorter): each piece packs the other operand again (W2's products on 1 thread
 * took 2.06 ms in pieces of 64 rows, 1.88 ms in these, 1.75 ms in one call each). Compiled
 * code may run the pieces itself (tj_blas_?gemm_piece), each followed by the elementwise
 * ops after the product on that piece. */
#define SPLIT 256

/* Piece size for a dimension of d >= 2 * SPLIT: d split evenly into ceil(d / SPLIT) pieces,
 * rounded up to a multiple of 16. */
static int64_t piece_of(int64_t d) {
    int64_t np = (d + SPLIT - 1) / SPLIT;
    return ((d + np - 1) / np + 15) / 16 * 16;
}

int64_t tj_blas_pieces(int64_t m, int64_t n, int64_t *pm, int64_t *pn) {
    *pm = m;
    *pn = n;
    if (m <= 0 || n <= 0) return 0;
    if (m >= 2 * SPLIT) *pm = piece_of(m);
    else if (n >= 2 * SPLIT) *pn = piece_of(n);
    return (m + *pm - 1) / *pm * ((n + *pn - 1) / *pn);
}

/* Piece t: by OpenBLAS when it takes the whole product's sizes, else by the C loops. */
static void gemm_piece(void *vctx, int64_t t) {
    const gemm_ctx *c = vctx;
    int64_t i0 = c->pm < c->m ? t * c->pm : 0, j0 = c->pn < c->n ? t * c->pn : 0;
    int64_t mm = c->m - i0 < c->pm ? c->m - i0 : c->pm, nn = c->n - j0 < c->pn ? c->n - j0 : c->pn;
    bool blas = c->k > 0 && (c->dbl ? lib.dgemm != NULL : lib.sgemm != NULL) && c->m <= INT_MAX && c->n <= INT_MAX &&
                c->k <= INT_MAX;
    if (!blas) { naive_rect(c, i0, i0 + mm, j0, j0 + nn); return; }
    /* a piece's first row of op(A) and column of op(B), and their leading dimensions */
    int64_t ao = c->ta ? i0 : i0 * c->k, bo = c->tb ? j0 * c->k : j0;
    blasint lda = (blasint)(c->ta ? c->m : c->k), ldb = (blasint)(c->tb ? c->k : c->n), n = (blasint)c->n;
    enum CBLAS_TRANSPOSE ta = c->ta ? CblasTrans : CblasNoTrans, tb = c->tb ? CblasTrans : CblasNoTrans;
    if (c->dbl)
        lib.dgemm(CblasRowMajor, ta, tb, (blasint)mm, (blasint)nn, (blasint)c->k, 1.0, (const double *)c->A + ao, lda,
                  (const double *)c->B + bo, ldb, 0.0, (double *)c->C + i0 * c->n + j0, n);
    else
        lib.sgemm(CblasRowMajor, ta, tb, (blasint)mm, (blasint)nn, (blasint)c->k, 1.0f, (const float *)c->A + ao, lda,
                  (const float *)c->B + bo, ldb, 0.0f, (float *)c->C + i0 * c->n + j0, n);
}

/* The product C = op(A) @ op(B), cut into *pieces (tj_blas_pieces) */
static gemm_ctx product(bool dbl, int trans, int64_t m, int64_t n, int64_t k, const void *A, const void *B, void *C,
                        int64_t *pieces) {
    ensure_loaded();
    gemm_ctx c = {dbl, trans & TJ_BLAS_TA, trans & TJ_BLAS_TB, m, n, k > 0 ? k : 0, m, n, A, B, C};
    *pieces = tj_blas_pieces(m, n, &c.pm, &c.pn);
    return c;
}

static void gemm(bool dbl, int trans, int64_t m, int64_t n, int64_t k, const void *A, const void *B, void *C) {
    int64_t pieces;
    gemm_ctx c = product(dbl, trans, m, n, k, A, B, C, &pieces);
    tj_parallel_for(pieces, gemm_piece, &c);
}

void tj_blas_sgemm(int trans, int64_t m, int64_t n, int64_t k, const float *A, const float *B, float *C) {
    gemm(false, trans, m, n, k, A, B, C);
}

void tj_blas_dgemm(int trans, int64_t m, int64_t n, int64_t k, const double *A, const double *B, double *C) {
    gemm(true, trans, m, n, k, A, B, C);
}

void tj_blas_sgemm_piece(int trans, int64_t m, int64_t n, int64_t k, const float *A, const float *B, float *C, int64_t t) {
    int64_t pieces;
    gemm_ctx c = product(false, trans, m, n, k, A, B, C, &pieces);
    if (t >= 0 && t < pieces) gemm_piece(&c, t);
}

void tj_blas_dgemm_piece(int trans, int64_t m, int64_t n, int64_t k, const double *A, const double *B, double *C,
                         int64_t t) {
    int64_t pieces;
    gemm_ctx c = product(true, trans, m, n, k, A, B, C, &pieces);
    if (t >= 0 && t < pieces) gemm_piece(&c, t);
}
