/* check_engine.c: the LLVM engine (jit/engine.c) on modules built by hand with the C API.
 * Kernels are run against C with bits compared; C computes a*b+a with two roundings
 * (volatile product), so an FMA contracted anywhere in the JIT shows. Errors (undefined
 * symbol, invalid IR) are TJ_ERR_JIT naming the cause, never an abort, and the engine keeps
 * working after them. Code freed and re-added keeps memory flat; two threads compile at once.
 * Needs TJ_HAVE_JIT and LLVM's include dirs; without TJ_HAVE_JIT the suite is empty. */
#define _POSIX_C_SOURCE 200809L
#include "tapejit.h"
#include "core/core.h"
#include "testutil.h"

#include <check.h>
#include <string.h>

Suite *engine_suite(void);

#if TJ_HAVE_JIT
#include "engine.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* ---- IR built by hand ------------------------------------------------------------------ */

static LLVMValueRef gep(LLVMBuilderRef B, LLVMTypeRef elem, LLVMValueRef base, LLVMValueRef i) {
    return LLVMBuildInBoundsGEP2(B, elem, base, &i, 1, "");
}

/* <lanes x float> at base[i] (float alignment); the bitcast keeps LLVM 14's typed pointers
 * happy and folds away with opaque pointers. */
static LLVMValueRef load_vec(LLVMBuilderRef B, LLVMTypeRef vt, LLVMTypeRef f32, LLVMValueRef base,
                             LLVMValueRef i) {
    LLVMValueRef p = LLVMBuildBitCast(B, gep(B, f32, base, i), LLVMPointerType(vt, 0), "");
    LLVMValueRef v = LLVMBuildLoad2(B, vt, p, "");
    LLVMSetAlignment(v, 4);
    return v;
}

static void store_vec(LLVMBuilderRef B, LLVMTypeRef vt, LLVMTypeRef f32, LLVMValueRef base,
                      LLVMValueRef i, LLVMValueRef v) {
    LLVMValueRef p = LLVMBuildBitCast(B, gep(B, f32, base, i), LLVMPointerType(vt, 0), "");
    LLVMSetAlignment(LLVMBuildStore(B, v, p), 4);
}

/* void name(float *y, const float *a, const float *b, int64_t n):
 *   y[i] = a[i]*b[i] + a[i] (+ bias), an explicit <lanes x float> loop over n & -lanes,
 *   then a scalar tail; fmul and fadd separately, as the lowering emits them. */
static void build_kernel(LLVMModuleRef m, const char *name, int lanes, bool with_bias, float bias) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef f32 = LLVMFloatTypeInContext(ctx), i64 = LLVMInt64TypeInContext(ctx);
    LLVMTypeRef pf = LLVMPointerType(f32, 0), vt = LLVMVectorType(f32, (unsigned)lanes);
    LLVMTypeRef params[4] = {pf, pf, pf, i64};
    LLVMValueRef fn = LLVMAddFunction(m, name, LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 4, 0));
    LLVMValueRef y = LLVMGetParam(fn, 0), a = LLVMGetParam(fn, 1), b = LLVMGetParam(fn, 2),
                 n = LLVMGetParam(fn, 3);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(ctx, fn, "entry"),
                      vcond = LLVMAppendBasicBlockInContext(ctx, fn, "vcond"),
                      vbody = LLVMAppendBasicBlockInContext(ctx, fn, "vbody"),
                      scond = LLVMAppendBasicBlockInContext(ctx, fn, "scond"),
                      sbody = LLVMAppendBasicBlockInContext(ctx, fn, "sbody"),
                      done = LLVMAppendBasicBlockInContext(ctx, fn, "done");
    LLVMBuilderRef B = LLVMCreateBuilderInContext(ctx);
    LLVMValueRef zero = LLVMConstInt(i64, 0, 0);

    LLVMPositionBuilderAtEnd(B, entry);
    LLVMValueRef nv = LLVMBuildAnd(B, n, LLVMConstInt(i64, (unsigned long long)-(long long)lanes, 1), "nv");
    LLVMBuildBr(B, vcond);

    LLVMPositionBuilderAtEnd(B, vcond);
    LLVMValueRef i = LLVMBuildPhi(B, i64, "i");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, i, nv, ""), vbody, scond);

    LLVMPositionBuilderAtEnd(B, vbody);
    LLVMValueRef va = load_vec(B, vt, f32, a, i), vb = load_vec(B, vt, f32, b, i);
    LLVMValueRef r = LLVMBuildFAdd(B, LLVMBuildFMul(B, va, vb, "ab"), va, "aba");
    if (with_bias) {
        LLVMValueRef c[16];
        for (int k = 0; k < lanes; k++) c[k] = LLVMConstReal(f32, bias);
        r = LLVMBuildFAdd(B, r, LLVMConstVector(c, (unsigned)lanes), "");
    }
    store_vec(B, vt, f32, y, i, r);
    LLVMValueRef inext = LLVMBuildAdd(B, i, LLVMConstInt(i64, (unsigned long long)lanes, 0), "");
    LLVMBuildBr(B, vcond);
    LLVMValueRef iv[2] = {zero, inext};
    LLVMBasicBlockRef ib[2] = {entry, vbody};
    LLVMAddIncoming(i, iv, ib, 2);

    LLVMPositionBuilderAtEnd(B, scond);
    LLVMValueRef j = LLVMBuildPhi(B, i64, "j");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, j, n, ""), sbody, done);

    LLVMPositionBuilderAtEnd(B, sbody);
    LLVMValueRef sa = LLVMBuildLoad2(B, f32, gep(B, f32, a, j), "");
    LLVMValueRef sb = LLVMBuildLoad2(B, f32, gep(B, f32, b, j), "");
    LLVMValueRef s = LLVMBuildFAdd(B, LLVMBuildFMul(B, sa, sb, ""), sa, "");
    if (with_bias) s = LLVMBuildFAdd(B, s, LLVMConstReal(f32, bias), "");
    LLVMBuildStore(B, s, gep(B, f32, y, j));
    LLVMValueRef jnext = LLVMBuildAdd(B, j, LLVMConstInt(i64, 1, 0), "");
    LLVMBuildBr(B, scond);
    LLVMValueRef jv[2] = {i, jnext};
    LLVMBasicBlockRef jb[2] = {vcond, sbody};
    LLVMAddIncoming(j, jv, jb, 2);

    LLVMPositionBuilderAtEnd(B, done);
    LLVMBuildRetVoid(B);
    LLVMDisposeBuilder(B);
}

typedef void kernel_fn(float *y, const float *a, const float *b, int64_t n);

/* The kernel's definition in C: two roundings whatever the compiler's contraction setting. */
static void kernel_ref(float *y, const float *a, const float *b, int64_t n, bool with_bias, float bias) {
    for (int64_t i = 0; i < n; i++) {
        volatile float p = a[i] * b[i];
        volatile float s = p + a[i];
        y[i] = with_bias ? s + bias : s;
    }
}

static _Thread_local uint32_t lcg_state = 12345u;
static float rnd(void) {   /* in [-4, 4), full 24-bit mantissas, so FMA and two roundings differ */
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (float)(lcg_state >> 8) * 0x1p-21f - 4.0f;
}

/* One module with build_kernel(name) compiled: its address, or NULL with the error kept. */
static kernel_fn *compile_kernel(const char *name, bool with_bias, float bias, tj_jit_code **code,
                                 tj_compile_times *times, char **ir, char **as) {
    LLVMOrcThreadSafeContextRef tsc;
    LLVMModuleRef mod;
    if (tj_engine_module("test", &tsc, &mod)) return NULL;
    build_kernel(mod, name, tj_engine_vector_lanes(), with_bias, bias);
    void *addr;
    if (tj_engine_add(tsc, mod, 1, &name, &addr, code, times, ir, as)) return NULL;
    return (kernel_fn *)addr;
}

/* Runs k on n random values and compares bits with kernel_ref: 0, the first bad index + 1,
 * or -1 if out of memory. */
static int64_t run_and_compare(kernel_fn *k, int64_t n, bool with_bias, float bias, int64_t *fma_differs) {
    float *a = calloc((size_t)n + 1, sizeof(float)), *b = calloc((size_t)n + 1, sizeof(float));
    float *y = calloc((size_t)n + 1, sizeof(float)), *r = calloc((size_t)n + 1, sizeof(float));
    int64_t bad = 0;
    if (!a || !b || !y || !r) {   /* no ck_assert here: threads call this too */
        bad = -1;
        goto out;
    }
    for (int64_t i = 0; i <= n; i++) {
        a[i] = rnd();
        b[i] = rnd();
        y[i] = r[i] = -7.0f;
    }
    k(y, a, b, n);
    kernel_ref(r, a, b, n, with_bias, bias);
    for (int64_t i = 0; i <= n && !bad; i++)   /* i == n: nothing written past the end */
        if (memcmp(&y[i], &r[i], sizeof(float)) != 0) bad = i + 1;
    if (fma_differs) {
        *fma_differs = 0;
        for (int64_t i = 0; i < n; i++) {
            float f = fmaf(a[i], b[i], a[i]);
            if (memcmp(&f, &r[i], sizeof f) != 0) (*fma_differs)++;
        }
    }
out:
    free(a);
    free(b);
    free(y);
    free(r);
    return bad;
}

static void free_text(char *s) {
    if (s) tj_mem_free(s, strlen(s) + 1);
}

/* ---- kernels: bits as C, odd sizes ------------------------------------------------------ */

START_TEST(vector_kernel_matches_c_bits) {
    ck_assert_int_eq(tj_engine_init(), 0);
    tj_jit_code *code;
    tj_compile_times t = {-1, -1, true};
    kernel_fn *k = compile_kernel("k_axpy", false, 0, &code, &t, NULL, NULL);
    ck_assert_msg(k != NULL, "%s", tj_last_error());
    ck_assert(t.passes_ms >= 0 && t.codegen_ms > 0 && !t.cached);
    int lanes = tj_engine_vector_lanes();
    int64_t sizes[] = {0, 1, 17, lanes - 1, lanes, lanes + 1, 1000 + lanes - 1, 4099};
    int64_t fma_differs_total = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int64_t differs;
        int64_t bad = run_and_compare(k, sizes[s], false, 0, &differs);
        ck_assert_msg(bad == 0, "n=%lld: element %lld differs from C", (long long)sizes[s],
                      (long long)bad - 1);
        fma_differs_total += differs;
    }
    /* the inputs do tell FMA from two roundings, so the equality above means no contraction */
    ck_assert_msg(fma_differs_total > 100, "only %lld elements where FMA differs",
                  (long long)fma_differs_total);
    tj_engine_free(code);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- symbols defined with tj_engine_define --------------------------------------------- */

static float ext_scale(float x) { return 3.0f * x + 1.0f; }

/* cblas_sgemm's signature; row-major, no transposes: C = alpha A B + beta C (beta 0: C unread) */
static void ext_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (order != 101 || ta != 111 || tb != 111) return;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0;
            for (int p = 0; p < k; p++) s += A[i * lda + p] * B[p * ldb + j];
            C[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * C[i * ldc + j]);   /* as BLAS */
        }
}

START_TEST(defined_symbols_are_callable) {
    ck_assert_int_eq(tj_engine_define("tj_test_scale", (void *)ext_scale), 0);
    ck_assert_int_eq(tj_engine_define("tj_test_sgemm", (void *)ext_sgemm), 0);
    ck_assert_int_eq(tj_engine_define("tj_test_scale", (void *)ext_scale), 0);   /* idempotent */
    ck_assert_int_eq(tj_engine_define("tj_test_scale", (void *)ext_sgemm), TJ_ERR_JIT);
    ck_assert_error(TJ_ERR_JIT, "already defined");
    ck_assert_int_eq(tj_engine_define(NULL, (void *)ext_scale), TJ_ERR_ARG);
    tj_clear_error();

    LLVMOrcThreadSafeContextRef tsc;
    LLVMModuleRef mod;
    ck_assert_int_eq(tj_engine_module("calls", &tsc, &mod), 0);
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    LLVMTypeRef f32 = LLVMFloatTypeInContext(ctx), i32 = LLVMInt32TypeInContext(ctx);
    LLVMTypeRef pf = LLVMPointerType(f32, 0), vd = LLVMVoidTypeInContext(ctx);
    LLVMBuilderRef B = LLVMCreateBuilderInContext(ctx);

    /* float call_scale(float x) { return tj_test_scale(x) * 2; } */
    LLVMTypeRef scale_t = LLVMFunctionType(f32, &f32, 1, 0);
    LLVMValueRef scale = LLVMAddFunction(mod, "tj_test_scale", scale_t);
    LLVMValueRef f = LLVMAddFunction(mod, "call_scale", scale_t);
    LLVMPositionBuilderAtEnd(B, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
    LLVMValueRef x = LLVMGetParam(f, 0);
    LLVMValueRef r = LLVMBuildCall2(B, scale_t, scale, &x, 1, "");
    LLVMBuildRet(B, LLVMBuildFMul(B, r, LLVMConstReal(f32, 2.0), ""));

    /* void call_gemm(A, B, C) { tj_test_sgemm(RowMajor, N, N, 2, 3, 4, 1, A, 4, B, 3, 0, C, 3); } */
    LLVMTypeRef gp[14] = {i32, i32, i32, i32, i32, i32, f32, pf, i32, pf, i32, f32, pf, i32};
    LLVMTypeRef gemm_t = LLVMFunctionType(vd, gp, 14, 0);
    LLVMValueRef gemm = LLVMAddFunction(mod, "tj_test_sgemm", gemm_t);
    LLVMTypeRef cp[3] = {pf, pf, pf};
    LLVMValueRef g = LLVMAddFunction(mod, "call_gemm", LLVMFunctionType(vd, cp, 3, 0));
    LLVMPositionBuilderAtEnd(B, LLVMAppendBasicBlockInContext(ctx, g, "entry"));
#define I(v) LLVMConstInt(i32, (v), 0)
    LLVMValueRef args[14] = {I(101), I(111), I(111), I(2), I(3), I(4), LLVMConstReal(f32, 1.0),
                             LLVMGetParam(g, 0), I(4), LLVMGetParam(g, 1), I(3),
                             LLVMConstReal(f32, 0.0), LLVMGetParam(g, 2), I(3)};
#undef I
    LLVMBuildCall2(B, gemm_t, gemm, args, 14, "");
    LLVMBuildRetVoid(B);
    LLVMDisposeBuilder(B);

    const char *names[2] = {"call_scale", "call_gemm"};
    void *addrs[2];
    tj_jit_code *code;
    ck_assert_msg(tj_engine_add(tsc, mod, 2, names, addrs, &code, NULL, NULL, NULL) == 0, "%s",
                  tj_last_error());
    float (*call_scale)(float) = (float (*)(float))addrs[0];
    ck_assert(call_scale(2.0f) == 14.0f);
    ck_assert(call_scale(-1.0f) == -4.0f);

    float A[8] = {1, 2, 3, 4, 5, 6, 7, 8}, Bm[12] = {1, 0, 2, 0, 1, 0, 3, 1, 1, -1, 0, 2};
    float C[6] = {NAN, NAN, NAN, NAN, NAN, NAN}, R[6] = {0, 0, 0, 0, 0, 0};
    ((void (*)(const float *, const float *, float *))addrs[1])(A, Bm, C);
    ext_sgemm(101, 111, 111, 2, 3, 4, 1.0f, A, 4, Bm, 3, 0.0f, R, 3);
    ck_assert_mem_eq(C, R, sizeof C);
    tj_engine_free(code);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- errors: no abort, the engine keeps working ---------------------------------------- */

static void assert_engine_works(void) {
    tj_jit_code *code;
    kernel_fn *k = compile_kernel("k_after", true, 0.5f, &code, NULL, NULL, NULL);
    ck_assert_msg(k != NULL, "%s", tj_last_error());
    ck_assert_int_eq(run_and_compare(k, 100, true, 0.5f, NULL), 0);
    tj_engine_free(code);
}

START_TEST(undefined_symbol_is_an_error) {
    LLVMOrcThreadSafeContextRef tsc;
    LLVMModuleRef mod;
    for (int round = 0; round < 2; round++) {   /* the same names fail twice, cleanly */
        ck_assert_int_eq(tj_engine_module("undef", &tsc, &mod), 0);
        LLVMContextRef ctx = LLVMGetModuleContext(mod);
        LLVMTypeRef f32 = LLVMFloatTypeInContext(ctx), pf = LLVMPointerType(f32, 0);
        LLVMTypeRef ext_t = LLVMFunctionType(f32, &f32, 1, 0);
        LLVMValueRef ext = LLVMAddFunction(mod, "tj_test_no_such_symbol", ext_t);
        LLVMValueRef f = LLVMAddFunction(mod, "k_undef", LLVMFunctionType(LLVMVoidTypeInContext(ctx), &pf, 1, 0));
        LLVMBuilderRef B = LLVMCreateBuilderInContext(ctx);
        LLVMPositionBuilderAtEnd(B, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
        LLVMValueRef one = LLVMConstReal(f32, 1.0);
        LLVMBuildStore(B, LLVMBuildCall2(B, ext_t, ext, &one, 1, ""), LLVMGetParam(f, 0));
        LLVMBuildRetVoid(B);
        LLVMDisposeBuilder(B);
        const char *name = "k_undef";
        void *addr = (void *)&name;
        tj_jit_code *code = (tj_jit_code *)&name;
        char *ir = NULL;
        ck_assert_int_eq(tj_engine_add(tsc, mod, 1, &name, &addr, &code, NULL, &ir, NULL), TJ_ERR_JIT);
        ck_assert_ptr_null(code);
        ck_assert_ptr_null(addr);
        ck_assert_ptr_nonnull(ir);   /* a failed compile can still be dumped */
        free_text(ir);
        ck_assert_error(TJ_ERR_JIT, "tj_test_no_such_symbol");
    }
    assert_engine_works();
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

START_TEST(invalid_ir_is_an_error) {
    /* a block without a terminator */
    LLVMOrcThreadSafeContextRef tsc;
    LLVMModuleRef mod;
    ck_assert_int_eq(tj_engine_module("bad", &tsc, &mod), 0);
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    LLVMValueRef f = LLVMAddFunction(mod, "k_bad", LLVMFunctionType(LLVMVoidTypeInContext(ctx), NULL, 0, 0));
    LLVMAppendBasicBlockInContext(ctx, f, "entry");
    const char *name = "k_bad";
    void *addr;
    tj_jit_code *code;
    ck_assert_int_eq(tj_engine_add(tsc, mod, 1, &name, &addr, &code, NULL, NULL, NULL), TJ_ERR_JIT);
    ck_assert_ptr_null(code);
    ck_assert_error(TJ_ERR_JIT, "verify module 'bad'");

    /* asking for a symbol the module does not define */
    ck_assert_int_eq(tj_engine_module("other", &tsc, &mod), 0);
    build_kernel(mod, "k_real", tj_engine_vector_lanes(), false, 0);
    name = "k_missing";
    ck_assert_int_eq(tj_engine_add(tsc, mod, 1, &name, &addr, &code, NULL, NULL, NULL), TJ_ERR_JIT);
    ck_assert_error(TJ_ERR_JIT, "no external definition of 'k_missing'");

    /* bad arguments still take the module */
    ck_assert_int_eq(tj_engine_module("args", &tsc, &mod), 0);
    ck_assert_int_eq(tj_engine_add(tsc, mod, 1, NULL, &addr, &code, NULL, NULL, NULL), TJ_ERR_ARG);
    tj_clear_error();
    tj_engine_free(NULL);
    assert_engine_works();
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- lifetime: free and re-add, live modules with the same names --------------------------- */

static long rss_kb(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void readd(int times) {
    for (int it = 0; it < times; it++) {
        tj_jit_code *code;
        kernel_fn *k = compile_kernel("k_again", true, (float)it, &code, NULL, NULL, NULL);
        ck_assert_msg(k != NULL, "round %d: %s", it, tj_last_error());
        ck_assert_int_eq(run_and_compare(k, 33, true, (float)it, NULL), 0);
        tj_engine_free(code);
    }
}

START_TEST(free_and_readd_keeps_memory_flat) {
    readd(30);   /* warm up: LLVM's caches, the TM pool, malloc's arenas */
    long before = rss_kb();
    readd(200);
    long grown = rss_kb() - before;
    /* ASan's quarantine keeps freed memory resident; valgrind keeps a translation of every
     * new piece of JIT code (its preload library shows in LD_PRELOAD) */
    const char *preload = getenv("LD_PRELOAD");
    bool rss_tells = !(preload && strstr(preload, "vgpreload"));
#ifdef UNDER_ASAN
    rss_tells = false;
#endif
    /* a module kept alive costs about 13 KB (notes §6.4): 200 of them would be ~2.6 MB */
    if (rss_tells)
        ck_assert_msg(grown < 1000, "RSS grew by %ld KB over 200 compile/free rounds", grown);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

START_TEST(live_modules_may_share_names) {
    tj_jit_code *c1, *c2;
    kernel_fn *k1 = compile_kernel("k_same", true, 1.0f, &c1, NULL, NULL, NULL);
    kernel_fn *k2 = compile_kernel("k_same", true, 2.0f, &c2, NULL, NULL, NULL);
    ck_assert_msg(k1 && k2, "%s", tj_last_error());
    ck_assert_ptr_ne((void *)k1, (void *)k2);
    ck_assert_int_eq(run_and_compare(k1, 50, true, 1.0f, NULL), 0);
    ck_assert_int_eq(run_and_compare(k2, 50, true, 2.0f, NULL), 0);
    tj_engine_free(c1);
    ck_assert_int_eq(run_and_compare(k2, 50, true, 2.0f, NULL), 0);   /* c2 survives c1 */
    tj_engine_free(c2);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- threads ------------------------------------------------------------------------------- */

typedef struct worker { int id, done; char msg[600]; } worker;

static void *compile_many(void *arg) {
    worker *w = arg;
    for (int it = 0; it < 50; it++) {
        float bias = (float)(w->id * 1000 + it);
        tj_jit_code *code;
        kernel_fn *k = compile_kernel("k", true, bias, &code, NULL, NULL, NULL);
        if (!k) {
            snprintf(w->msg, sizeof w->msg, "thread %d round %d: %s", w->id, it, tj_last_error());
            return NULL;
        }
        int64_t bad = run_and_compare(k, 37 + it, true, bias, NULL);
        tj_engine_free(code);
        if (bad) {
            snprintf(w->msg, sizeof w->msg, "thread %d round %d: element %lld differs", w->id, it,
                     (long long)bad - 1);
            return NULL;
        }
        w->done++;
    }
    return NULL;
}

START_TEST(two_threads_compile_at_once) {
    worker w[2] = {{.id = 1}, {.id = 2}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, compile_many, &w[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) ck_assert_msg(w[i].done == 50, "%s", w[i].msg);
}
END_TEST

/* ---- dumps, vector width, host facts -------------------------------------------------------- */

/* void k_scal(float *noalias y, const float *noalias a, int64_t n): y[i] = a[i] * 2, scalar IR:
 * whether the loop vectoriser uses zmm shows whether prefer-256-bit was dropped. */
static void build_scalar_loop(LLVMModuleRef m) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef f32 = LLVMFloatTypeInContext(ctx), i64 = LLVMInt64TypeInContext(ctx);
    LLVMTypeRef pf = LLVMPointerType(f32, 0);
    LLVMTypeRef params[3] = {pf, pf, i64};
    LLVMValueRef fn = LLVMAddFunction(m, "k_scal", LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 3, 0));
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    for (unsigned p = 1; p <= 2; p++)
        LLVMAddAttributeAtIndex(fn, p, LLVMCreateEnumAttribute(ctx, noalias, 0));
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(ctx, fn, "entry"),
                      cond = LLVMAppendBasicBlockInContext(ctx, fn, "cond"),
                      body = LLVMAppendBasicBlockInContext(ctx, fn, "body"),
                      done = LLVMAppendBasicBlockInContext(ctx, fn, "done");
    LLVMBuilderRef B = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(B, entry);
    LLVMBuildBr(B, cond);
    LLVMPositionBuilderAtEnd(B, cond);
    LLVMValueRef i = LLVMBuildPhi(B, i64, "i");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, i, LLVMGetParam(fn, 2), ""), body, done);
    LLVMPositionBuilderAtEnd(B, body);
    LLVMValueRef x = LLVMBuildLoad2(B, f32, gep(B, f32, LLVMGetParam(fn, 1), i), "");
    LLVMBuildStore(B, LLVMBuildFMul(B, x, LLVMConstReal(f32, 2.0), ""), gep(B, f32, LLVMGetParam(fn, 0), i));
    LLVMValueRef inext = LLVMBuildAdd(B, i, LLVMConstInt(i64, 1, 0), "");
    LLVMBuildBr(B, cond);
    LLVMValueRef iv[2] = {LLVMConstInt(i64, 0, 0), inext};
    LLVMBasicBlockRef ib[2] = {entry, body};
    LLVMAddIncoming(i, iv, ib, 2);
    LLVMPositionBuilderAtEnd(B, done);
    LLVMBuildRetVoid(B);
    LLVMDisposeBuilder(B);
}

START_TEST(dumps_name_the_function) {
    tj_jit_code *code;
    char *ir = NULL, *as = NULL;
    kernel_fn *k = compile_kernel("k_dump", false, 0, &code, NULL, &ir, &as);
    ck_assert_msg(k != NULL, "%s", tj_last_error());
    ck_assert_ptr_nonnull(ir);
    ck_assert_ptr_nonnull(as);
    ck_assert_msg(strstr(ir, "define void @k_dump(") != NULL, "IR:\n%s", ir);
    ck_assert_msg(strstr(as, "k_dump:") != NULL, "asm:\n%s", as);
    ck_assert_msg(strstr(ir, ".tj") == NULL && strstr(as, ".tj") == NULL, "private suffix in a dump");
    ck_assert_msg(strstr(as, "vfmadd") == NULL && strstr(as, "vfnmadd") == NULL, "FMA in:\n%s", as);
    int lanes = tj_engine_vector_lanes();
    const char *reg = lanes == 16 ? "zmm" : lanes == 8 ? "ymm" : "xmm";
    ck_assert_msg(strstr(as, reg) != NULL, "no %s in:\n%s", reg, as);
    ck_assert_int_eq(run_and_compare(k, 77, false, 0, NULL), 0);   /* what was dumped runs */
    free_text(ir);
    free_text(as);
    tj_engine_free(code);

    LLVMOrcThreadSafeContextRef tsc;
    LLVMModuleRef mod;
    ck_assert_int_eq(tj_engine_module("scal", &tsc, &mod), 0);
    build_scalar_loop(mod);
    const char *name = "k_scal";
    void *addr;
    ck_assert_int_eq(tj_engine_add(tsc, mod, 1, &name, &addr, &code, NULL, NULL, &as), 0);
    /* LLVM's loop vectoriser, when the pipeline has it (TJ_JIT_PIPELINE=default<O2> or
     * default<O3>; the default light pipeline has none: our IR is vectors already), uses zmm */
    const char *pipe = tj_engine_pipeline();
    bool vectorises = !strcmp(pipe, "default<O2>") || !strcmp(pipe, "default<O3>");
    if (lanes == 16 && vectorises && tj_engine_opt_level() >= 2)
        ck_assert_msg(strstr(as, "zmm") != NULL, "scalar loop not vectorised to zmm:\n%s", as);
    float a[100], y[100];
    for (int i = 0; i < 100; i++) a[i] = (float)i - 33.5f;
    ((void (*)(float *, const float *, int64_t))addr)(y, a, 100);
    for (int i = 0; i < 100; i++) ck_assert(y[i] == a[i] * 2.0f);
    free_text(as);
    tj_engine_free(code);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

START_TEST(host_facts) {
    ck_assert_int_eq(tj_engine_init(), 0);
    __builtin_cpu_init();
    int want = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") ? 8 : 4;
    ck_assert_int_eq(tj_engine_vector_lanes(), want);
    ck_assert_int_gt((int)strlen(tj_engine_cpu()), 0);
    ck_assert_ptr_nonnull(strstr(tj_engine_triple(), "x86_64"));
    const char *env = getenv("TJ_JIT_OPT");
    ck_assert_int_eq(tj_engine_opt_level(), env && *env ? env[0] - '0' : 2);
    const char *pipe = getenv("TJ_JIT_PIPELINE");
    if (pipe && *pipe) ck_assert_str_eq(tj_engine_pipeline(), pipe);
    else ck_assert_ptr_nonnull(strstr(tj_engine_pipeline(), "sroa"));   /* the light one */
    if (want == 16) ck_assert_ptr_nonnull(strstr(tj_engine_features(), "-prefer-256-bit"));
}
END_TEST

Suite *engine_suite(void) {
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 300);   /* ~230 compiles; much slower under sanitizers or valgrind */
    tcase_add_test(tc, host_facts);
    tcase_add_test(tc, vector_kernel_matches_c_bits);
    tcase_add_test(tc, defined_symbols_are_callable);
    tcase_add_test(tc, undefined_symbol_is_an_error);
    tcase_add_test(tc, invalid_ir_is_an_error);
    tcase_add_test(tc, dumps_name_the_function);
    tcase_add_test(tc, live_modules_may_share_names);
    tcase_add_test(tc, free_and_readd_keeps_memory_flat);
    tcase_add_test(tc, two_threads_compile_at_once);
    suite_add_tcase(s, tc);
    return s;
}

#else /* no JIT in this build */

Suite *engine_suite(void) { return suite_create("engine"); }

#endif
