/* check_lower_math.c: the Check suite for jit/lower_math.c (compiled == eager, bit for bit).
 * Compiles, through jit/engine.c, loops y[i] = f(x[i]) applying tj_lower_{exp,log,tanh,sigmoid}
 * to vectors of 16/8/4 floats (8/4/2 doubles), odd widths 3 and 100, with a scalar tail, and to
 * scalars alone, and compares every result's BITS (NaNs included) with runtime/math/tj_math.h
 * over float bit-pattern sweeps, random double patterns, specials and every threshold's
 * neighbourhood. The engine's level applies (TJ_JIT_OPT, default 2; run with 0..3 to check
 * each). TJ_LOWER_MATH_STEP (float sweep step), TJ_LOWER_MATH_DRAWS (random doubles) override
 * the sizes; TJ_LOWER_MATH_VERBOSE=1 prints the counts. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>

#include "../jit/engine.h"
#include "../jit/lower_math.h"
#include "../runtime/core/core.h"
#include "../runtime/math/tj_math.h"

Suite *lower_math_suite(void);

/* Sizes: every STEP_F-th float bit pattern and DRAWS_D random doubles; about 1.5 s in all.
 * The full check, TJ_LOWER_MATH_STEP=97 TJ_LOWER_MATH_DRAWS=20000000 (44M floats, 20M
 * doubles), takes about 5 s, 10 s under ASan. */
#define STEP_F_DEFAULT 1009u
#define DRAWS_D_DEFAULT 2000000u
#define CHUNK 1000003   /* elements per call: prime, so every width leaves a scalar tail */

static unsigned long env_or(const char *name, unsigned long dflt)
{
    const char *s = getenv(name);
    unsigned long v = s ? strtoul(s, NULL, 10) : 0;
    return v ? v : dflt;
}

static int verbose(void) { return getenv("TJ_LOWER_MATH_VERBOSE") != NULL; }

typedef LLVMValueRef (*lower_fn)(LLVMModuleRef, LLVMBuilderRef, LLVMValueRef);

/* Emits void name(T *y, const T *x, int64_t n): y[i] = f(x[i]) on <lanes x T> while
 * i + lanes <= n, then one element at a time (lanes 1: only the scalar loop). */
static void emit_loop(LLVMModuleRef m, const char *name, lower_fn f, int dbl, unsigned lanes)
{
    LLVMContextRef c = LLVMGetModuleContext(m);
    LLVMTypeRef et = dbl ? LLVMDoubleTypeInContext(c) : LLVMFloatTypeInContext(c);
    LLVMTypeRef i64 = LLVMInt64TypeInContext(c), pt = LLVMPointerType(et, 0);
    LLVMTypeRef params[3] = {pt, pt, i64};
    LLVMValueRef fn = LLVMAddFunction(m, name, LLVMFunctionType(LLVMVoidTypeInContext(c), params, 3, 0));
    LLVMValueRef y = LLVMGetParam(fn, 0), x = LLVMGetParam(fn, 1), n = LLVMGetParam(fn, 2);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c, fn, "entry");
    LLVMBasicBlockRef vcond = LLVMAppendBasicBlockInContext(c, fn, "vcond");
    LLVMBasicBlockRef vbody = LLVMAppendBasicBlockInContext(c, fn, "vbody");
    LLVMBasicBlockRef tcond = LLVMAppendBasicBlockInContext(c, fn, "tcond");
    LLVMBasicBlockRef tbody = LLVMAppendBasicBlockInContext(c, fn, "tbody");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c, fn, "done");
    LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
    unsigned align = dbl ? 8 : 4;

    LLVMPositionBuilderAtEnd(b, entry);
    LLVMBuildBr(b, vcond);

    /* vector loop */
    LLVMPositionBuilderAtEnd(b, vcond);
    LLVMValueRef i = LLVMBuildPhi(b, i64, "i");
    LLVMValueRef zero = LLVMConstInt(i64, 0, 0);
    if (lanes > 1) {
        LLVMValueRef end = LLVMBuildAdd(b, i, LLVMConstInt(i64, lanes, 0), "");
        LLVMValueRef more = LLVMBuildICmp(b, LLVMIntSLE, end, n, "");
        LLVMBuildCondBr(b, more, vbody, tcond);
    } else {
        LLVMBuildBr(b, tcond);
    }
    LLVMPositionBuilderAtEnd(b, vbody);
    LLVMValueRef inext = zero;
    if (lanes > 1) {
        LLVMTypeRef vt = LLVMVectorType(et, lanes), vpt = LLVMPointerType(vt, 0);
        LLVMValueRef px = LLVMBuildBitCast(b, LLVMBuildGEP2(b, et, x, &i, 1, ""), vpt, "");
        LLVMValueRef v = LLVMBuildLoad2(b, vt, px, "x");
        LLVMSetAlignment(v, align);
        LLVMValueRef r = f(m, b, v);
        ck_assert_ptr_nonnull(r);
        LLVMValueRef py = LLVMBuildBitCast(b, LLVMBuildGEP2(b, et, y, &i, 1, ""), vpt, "");
        LLVMSetAlignment(LLVMBuildStore(b, r, py), align);
        inext = LLVMBuildAdd(b, i, LLVMConstInt(i64, lanes, 0), "");
    }
    LLVMBasicBlockRef vend = LLVMGetInsertBlock(b);
    LLVMBuildBr(b, vcond);
    LLVMValueRef iv[2] = {zero, inext};
    LLVMBasicBlockRef ib[2] = {entry, vend};
    LLVMAddIncoming(i, iv, ib, 2);

    /* scalar tail */
    LLVMPositionBuilderAtEnd(b, tcond);
    LLVMValueRef j = LLVMBuildPhi(b, i64, "j");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, j, n, ""), tbody, done);
    LLVMPositionBuilderAtEnd(b, tbody);
    LLVMValueRef s = LLVMBuildLoad2(b, et, LLVMBuildGEP2(b, et, x, &j, 1, ""), "xs");
    LLVMSetAlignment(s, align);
    LLVMValueRef rs = f(m, b, s);
    ck_assert_ptr_nonnull(rs);
    LLVMSetAlignment(LLVMBuildStore(b, rs, LLVMBuildGEP2(b, et, y, &j, 1, "")), align);
    LLVMValueRef jnext = LLVMBuildAdd(b, j, LLVMConstInt(i64, 1, 0), "");
    LLVMBasicBlockRef tend = LLVMGetInsertBlock(b);
    LLVMBuildBr(b, tcond);
    LLVMValueRef jv[2] = {i, jnext};
    LLVMBasicBlockRef jb[2] = {vcond, tend};
    LLVMAddIncoming(j, jv, jb, 2);

    LLVMPositionBuilderAtEnd(b, done);
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
}

/* The IR must hold no calls (so no intrinsic: no fmuladd, no fma, no maximum) and no
 * fast-math flags; the machine code no fused multiply-add and no call. */
static const char *const banned_ir[] = {"call ", "@llvm.", " fast ", " reassoc ", " nnan ",
                                        " ninf ", " nsz ", " arcp ", " contract ", " afn ", NULL};
static const char *const banned_asm[] = {"\tcall", "\tjmp\t*", "vfmadd", "vfmsub", "vfnmadd",
                                         "vfnmsub", NULL};

static void ck_text_clean(const char *text, const char *const *banned, const char *what)
{
    for (size_t k = 0; banned[k]; k++)
        ck_assert_msg(strstr(text, banned[k]) == NULL, "%s contains '%s'", what, banned[k]);
}

static void ck_ir_clean(LLVMModuleRef m, const char *what)
{
    char *ir = LLVMPrintModuleToString(m);
    ck_text_clean(ir, banned_ir, what);
    LLVMDisposeMessage(ir);
}

typedef void (*loop_fn)(void *y, const void *x, int64_t n);

#define MAX_VARIANTS 8
typedef struct {
    int n;
    loop_fn fn[MAX_VARIANTS];
    char name[MAX_VARIANTS][48];
    long long bad[MAX_VARIANTS];      /* mismatching elements */
    uint64_t bad_x[MAX_VARIANTS], bad_want[MAX_VARIANTS], bad_got[MAX_VARIANTS];
    tj_jit_code *code;
} variants;

/* Compiles f for every width in lanes[] into one module, through the engine. */
static void build_variants(variants *v, const char *fname, lower_fn f, int dbl,
                           const unsigned *lanes, int nlanes)
{
    memset(v, 0, sizeof *v);
    ck_assert_msg(tj_engine_init() == 0, "%s", tj_last_error());
    LLVMOrcThreadSafeContextRef tsc;
    LLVMModuleRef m;
    ck_assert_msg(tj_engine_module("lower_math_test", &tsc, &m) == 0, "%s", tj_last_error());
    const char *names[MAX_VARIANTS];
    for (int l = 0; l < nlanes; l++) {
        ck_assert_int_lt(v->n, MAX_VARIANTS);
        snprintf(v->name[v->n], sizeof v->name[0], "%s_%s_x%u_O%d", fname, dbl ? "f64" : "f32",
                 lanes[l], tj_engine_opt_level());
        emit_loop(m, v->name[v->n], f, dbl, lanes[l]);
        names[v->n] = v->name[v->n];
        v->n++;
    }
    char *msg = NULL;
    ck_assert_msg(!LLVMVerifyModule(m, LLVMReturnStatusAction, &msg), "verify: %s", msg);
    LLVMDisposeMessage(msg);
    ck_ir_clean(m, "emitted IR");
    void *addrs[MAX_VARIANTS];
    char *ir = NULL, *as = NULL;
    int rc = tj_engine_add(tsc, m, v->n, names, addrs, &v->code, NULL, &ir, &as); /* takes tsc, m */
    ck_assert_msg(rc == 0, "%s", tj_last_error());
    ck_text_clean(ir, banned_ir, "optimised IR");
    ck_text_clean(as, banned_asm, "assembly");
    tj_mem_free(ir, strlen(ir) + 1);
    tj_mem_free(as, strlen(as) + 1);
    for (int k = 0; k < v->n; k++)
        v->fn[k] = (loop_fn)(uintptr_t)addrs[k];
}

/* Runs every variant on x[0..n) and compares its bits with want (the C results). */
static void run_variants(variants *v, const void *x, const void *want, void *got, int64_t n, int dbl)
{
    size_t es = dbl ? 8 : 4;
    for (int k = 0; k < v->n; k++) {
        memset(got, 0xa5, (size_t)n * es);
        v->fn[k](got, x, n);
        if (memcmp(got, want, (size_t)n * es) == 0)
            continue;
        for (int64_t i = 0; i < n; i++) {
            uint64_t a = 0, w = 0, g = 0;
            memcpy(&a, (const char *)x + i * es, es);
            memcpy(&w, (const char *)want + i * es, es);
            memcpy(&g, (char *)got + i * es, es);
            if (w != g && v->bad[k]++ == 0) {
                v->bad_x[k] = a;
                v->bad_want[k] = w;
                v->bad_got[k] = g;
            }
        }
    }
}

static void ck_variants(const variants *v, long long compared)
{
    for (int k = 0; k < v->n; k++) {
        if (verbose())
            fprintf(stderr, "%-24s %lld values, %lld mismatches\n", v->name[k], compared, v->bad[k]);
        ck_assert_msg(v->bad[k] == 0,
                      "%s: %lld of %lld values differ; first x = 0x%llx: C 0x%llx, JIT 0x%llx",
                      v->name[k], v->bad[k], compared, (unsigned long long)v->bad_x[k],
                      (unsigned long long)v->bad_want[k], (unsigned long long)v->bad_got[k]);
    }
}

/* xorshift64*: the same sequence on every run */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* ---- float: specials, threshold neighbourhoods, random patterns, then the sweep ---------- */

typedef void (*ref_f32)(float *y, const float *x, int64_t n);
static void ref_expf(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tj_m_expf(x[i]);
}
static void ref_logf(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tj_m_logf(x[i]);
}
static void ref_tanhf(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tj_m_tanhf(x[i]);
}
static void ref_sigmoidf(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tj_m_sigmoidf(x[i]);
}

/* Appends the 2*r+1 bit patterns around u (wrapping: around 0 that reaches the NaNs). */
static int64_t near_f(float *out, int64_t n, uint32_t u, int r)
{
    for (int d = -r; d <= r; d++)
        out[n++] = tj_math_from_bits_f(u + (uint32_t)d);
    return n;
}

/* Specials and the neighbourhoods of each threshold of tj_math.h, both signs. */
static int64_t specials_f(float *out)
{
    static const float anchors[] = {
        0.0f, 1.0f, 0.5f, 2.0f, 0.625f,               /* tanh's switch */
        100.0f, 120.0f,                               /* exp's clamps */
        88.72283935546875f, 87.33654022216797f,       /* ln FLT_MAX, ln FLT_MIN */
        103.27892303466797f, 104.0f, 44.36141967773438f, /* ln 2^-149; tanh's e^2a overflow */
        0x1p-126f, 0x1p-149f, 0x1p-25f, 0x1p25f, 0x1p-12f, FLT_MAX, INFINITY,
        0.70710677f,                                  /* 0x3f3504f3: log's exponent step */
        0.3466f, 1.4142135f, 9.0f, 0.6931472f, 1e-8f, 3.0f, 50.0f};
    static const uint32_t nans[] = {0x7fc00000u, 0x7fc00001u, 0x7f800001u, 0x7fa00000u, 0x7fbfffffu,
                                    0x7fffffffu, 0x7f812345u, 0x7fd55555u};
    int64_t n = 0;
    for (size_t a = 0; a < sizeof anchors / sizeof anchors[0]; a++) {
        n = near_f(out, n, tj_math_bits_f(anchors[a]), 64);
        n = near_f(out, n, tj_math_bits_f(-anchors[a]), 64);
    }
    for (size_t a = 0; a < sizeof nans / sizeof nans[0]; a++) {
        out[n++] = tj_math_from_bits_f(nans[a]);
        out[n++] = tj_math_from_bits_f(nans[a] | 0x80000000u);
    }
    /* exp's rounding of k: the ties (k + 1/2) ln2 */
    for (int k = -180; k <= 150; k++)
        n = near_f(out, n, tj_math_bits_f((float)((k + 0.5) * 0.69314718055994530942)), 4);
    return n;
}

#define N_SPECIAL_F 20000
#define N_RANDOM_F 1000000

static void run_f32(const char *fname, lower_fn f, ref_f32 ref)
{
    static const unsigned lanes[] = {16, 8, 4, 3, 100, 1};
    variants v;
    build_variants(&v, fname, f, 0, lanes, (int)(sizeof lanes / sizeof lanes[0]));

    float *x = malloc(CHUNK * sizeof *x), *want = malloc(CHUNK * sizeof *want),
          *got = malloc(CHUNK * sizeof *got);
    ck_assert(x && want && got);
    long long compared = 0;

    int64_t n = specials_f(x);
    ck_assert_int_le(n, N_SPECIAL_F);
    ref(want, x, n);
    run_variants(&v, x, want, got, n, 0);
    compared += n;

    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < N_RANDOM_F; i++)
        x[i] = tj_math_from_bits_f((uint32_t)(rnd(&s) >> 32));
    ref(want, x, N_RANDOM_F);
    run_variants(&v, x, want, got, N_RANDOM_F, 0);
    compared += N_RANDOM_F;

    uint64_t step = env_or("TJ_LOWER_MATH_STEP", STEP_F_DEFAULT);
    for (uint64_t b = 0; b <= 0xffffffffu;) {
        int64_t m = 0;
        for (; m < CHUNK && b <= 0xffffffffu; m++, b += step)
            x[m] = tj_math_from_bits_f((uint32_t)b);
        ref(want, x, m);
        run_variants(&v, x, want, got, m, 0);
        compared += m;
    }
    ck_variants(&v, compared);
    free(x);
    free(want);
    free(got);
    tj_engine_free(v.code);
}

/* ---- double: specials, threshold neighbourhoods, random patterns -------------------------- */

typedef void (*ref_f64)(double *y, const double *x, int64_t n);
static void ref_exp(double *y, const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tj_m_exp(x[i]);
}
static void ref_log(double *y, const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tj_m_log(x[i]);
}
static void ref_tanh(double *y, const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tj_m_tanh(x[i]);
}
static void ref_sigmoid(double *y, const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tj_m_sigmoid(x[i]);
}

static int64_t near_d(double *out, int64_t n, uint64_t u, int r)
{
    for (int d = -r; d <= r; d++)
        out[n++] = tj_math_from_bits_d(u + (uint64_t)(int64_t)d);
    return n;
}

static int64_t specials_d(double *out)
{
    static const double anchors[] = {
        0.0, 1.0, 0.5, 2.0, 0.625, 800.0, 400.0,
        709.782712893384, 708.3964185322641,          /* ln DBL_MAX, -ln DBL_MIN */
        744.4400719213812, 745.1332191019411,         /* ln 2^-1074, 2^-1075 */
        354.891356446692,                             /* tanh's e^2a overflow */
        0x1p-1022, 0x1p-1074, 0x1p-54, 0x1p54, 0x1p-28, DBL_MAX, INFINITY,
        0.3466, 0.7071067811865476, 1.4142135623730951, 19.06, 0.6931471805599453, 1e-17, 3.0, 50.0};
    static const uint64_t nans[] = {0x7ff8000000000000u, 0x7ff8000000000001u, 0x7ff0000000000001u,
                                    0x7ff4000000000000u, 0x7ff7ffffffffffffu, 0x7fffffffffffffffu,
                                    0x7ff123456789abcdu, 0x7ffd555555555555u};
    int64_t n = 0;
    for (size_t a = 0; a < sizeof anchors / sizeof anchors[0]; a++) {
        n = near_d(out, n, tj_math_bits_d(anchors[a]), 64);
        n = near_d(out, n, tj_math_bits_d(-anchors[a]), 64);
    }
    for (size_t a = 0; a < sizeof nans / sizeof nans[0]; a++) {
        out[n++] = tj_math_from_bits_d(nans[a]);
        out[n++] = tj_math_from_bits_d(nans[a] | 0x8000000000000000u);
    }
    /* log's exponent step, at the high word 0x3fe6a09e, in several binades */
    for (int i = 0; i < 22; i++) {   /* biased exponents 0, 93, ..., 1953 */
        uint64_t e = 93u * (unsigned)i;
        n = near_d(out, n, (e << 52) | 0x0006a09e00000000ull, 8);
    }
    for (int k = -1160; k <= 1160; k += 3)
        n = near_d(out, n, tj_math_bits_d((k + 0.5) * 0x1.62e42fefa39efp-1), 2);
    return n;
}

#define N_SPECIAL_D 20000

static void run_f64(const char *fname, lower_fn f, ref_f64 ref)
{
    static const unsigned lanes[] = {8, 4, 2, 3, 100, 1};
    variants v;
    build_variants(&v, fname, f, 1, lanes, (int)(sizeof lanes / sizeof lanes[0]));

    double *x = malloc(CHUNK * sizeof *x), *want = malloc(CHUNK * sizeof *want),
           *got = malloc(CHUNK * sizeof *got);
    ck_assert(x && want && got);
    long long compared = 0;

    int64_t n = specials_d(x);
    ck_assert_int_le(n, N_SPECIAL_D);
    ref(want, x, n);
    run_variants(&v, x, want, got, n, 1);
    compared += n;

    /* half uniform bit patterns (mostly huge or tiny), half with exponents in
     * [2^-60, 2^11): where exp, tanh and sigmoid do not saturate */
    uint64_t s = 0xd1b54a32d192ed03ull, draws = env_or("TJ_LOWER_MATH_DRAWS", DRAWS_D_DEFAULT);
    for (uint64_t done = 0; done < draws;) {
        int64_t m = 0;
        for (; m < CHUNK && done < draws; m++, done++) {
            uint64_t r = rnd(&s);
            if (done & 1)
                r = (r & 0x800fffffffffffffull) | ((uint64_t)(1023 - 60 + (r >> 52) % 71) << 52);
            x[m] = tj_math_from_bits_d(r);
        }
        ref(want, x, m);
        run_variants(&v, x, want, got, m, 1);
        compared += m;
    }
    ck_variants(&v, compared);
    free(x);
    free(want);
    free(got);
    tj_engine_free(v.code);
}

START_TEST(exp_f32) { run_f32("exp", tj_lower_exp, ref_expf); }
END_TEST
START_TEST(log_f32) { run_f32("log", tj_lower_log, ref_logf); }
END_TEST
START_TEST(tanh_f32) { run_f32("tanh", tj_lower_tanh, ref_tanhf); }
END_TEST
START_TEST(sigmoid_f32) { run_f32("sigmoid", tj_lower_sigmoid, ref_sigmoidf); }
END_TEST
START_TEST(exp_f64) { run_f64("exp", tj_lower_exp, ref_exp); }
END_TEST
START_TEST(log_f64) { run_f64("log", tj_lower_log, ref_log); }
END_TEST
START_TEST(tanh_f64) { run_f64("tanh", tj_lower_tanh, ref_tanh); }
END_TEST
START_TEST(sigmoid_f64) { run_f64("sigmoid", tj_lower_sigmoid, ref_sigmoid); }
END_TEST

/* ---- the emitted IR itself --------------------------------------------------------------- */

/* Result type is x's type; straight-line code in the builder's block; other types give NULL. */
START_TEST(ir_types_and_rejects)
{
    static const lower_fn fns[4] = {tj_lower_exp, tj_lower_log, tj_lower_tanh, tj_lower_sigmoid};
    static const unsigned lanes[] = {0, 1, 4, 16, 100};
    LLVMContextRef c = LLVMContextCreate();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("ir", c);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(c);
    for (int dbl = 0; dbl < 2; dbl++)
        for (size_t l = 0; l < sizeof lanes / sizeof lanes[0]; l++) {
            LLVMTypeRef et = dbl ? LLVMDoubleTypeInContext(c) : LLVMFloatTypeInContext(c);
            LLVMTypeRef t = lanes[l] ? LLVMVectorType(et, lanes[l]) : et;
            LLVMValueRef fn = LLVMAddFunction(m, "f", LLVMFunctionType(t, &t, 1, 0));
            LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c, fn, "entry");
            LLVMPositionBuilderAtEnd(b, bb);
            LLVMValueRef acc = LLVMGetParam(fn, 0);
            for (int k = 0; k < 4; k++) {
                acc = fns[k](m, b, acc);
                ck_assert_ptr_nonnull(acc);
                ck_assert_ptr_eq(LLVMTypeOf(acc), t);
            }
            ck_assert_ptr_eq(LLVMGetInsertBlock(b), bb);
            LLVMBuildRet(b, acc);
        }
    char *msg = NULL;
    ck_assert_msg(!LLVMVerifyModule(m, LLVMReturnStatusAction, &msg), "verify: %s", msg);
    LLVMDisposeMessage(msg);
    ck_ir_clean(m, "emitted IR");

    /* not float/double: NULL, and nothing emitted */
    LLVMValueRef fn = LLVMAddFunction(m, "g", LLVMFunctionType(i32, &i32, 1, 0));
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
    for (int k = 0; k < 4; k++) {
        ck_assert_ptr_null(fns[k](m, b, LLVMGetParam(fn, 0)));
        ck_assert_ptr_null(fns[k](m, b, NULL));
        ck_assert_ptr_null(fns[k](m, NULL, LLVMGetParam(fn, 0)));
    }
    ck_assert_ptr_null(LLVMGetFirstInstruction(LLVMGetInsertBlock(b)));
    LLVMDisposeBuilder(b);
    LLVMDisposeModule(m);
    LLVMContextDispose(c);
}
END_TEST

Suite *lower_math_suite(void)
{
    Suite *s = suite_create("lower_math");
    TCase *ir = tcase_create("ir");
    tcase_add_test(ir, ir_types_and_rejects);
    suite_add_tcase(s, ir);
    TCase *bits = tcase_create("bits");
    tcase_set_timeout(bits, 300);
    tcase_add_test(bits, exp_f32);
    tcase_add_test(bits, log_f32);
    tcase_add_test(bits, tanh_f32);
    tcase_add_test(bits, sigmoid_f32);
    tcase_add_test(bits, exp_f64);
    tcase_add_test(bits, log_f64);
    tcase_add_test(bits, tanh_f64);
    tcase_add_test(bits, sigmoid_f64);
    suite_add_tcase(s, bits);
    return s;
}
