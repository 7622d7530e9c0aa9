/* check_lower_reduce.c: jit/lower_reduce.c equals eager bit for bit (NaN payloads too):
 * JIT'd sum/max, f32/f64/i32, K around every boundary of the canonical order (16 lanes,
 * blocks of 4096, a second level) and nout 1, 3, 7, against reduce.h's block rule with a copy
 * of reduce.c's recursion and against eager tj_sum/tj_max; normals, widely scaled values,
 * NaNs, signed zeros, infinities, wrapping int32. Buffers have exact sizes (ASan), and the IR
 * must hold no call, reduce intrinsic or fast-math flag. TJ_LOWER_REDUCE_VERBOSE=1 prints
 * counts; TJ_LOWER_REDUCE_BENCH=1 times the JIT'd f32 sum of 1M values against eager. */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime for the throughput test */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>

#include "../jit/engine.h"
#include "../jit/lower_reduce.h"
#include "../runtime/core/core.h"
#include "../runtime/math/reduce.h"

Suite *lower_reduce_suite(void);

static int verbose(void) { return getenv("TJ_LOWER_REDUCE_VERBOSE") != NULL; }

static size_t esize(tj_dtype dt) { return dt == TJ_F64 ? 8 : 4; }
static const char *dt_name(tj_dtype dt) { return dt == TJ_F32 ? "f32" : dt == TJ_F64 ? "f64" : "i32"; }

/* ---- the C definition ----------------------------------------------------------------- */

static void ref_block(tj_dtype dt, bool mx, const void *x, int64_t n, void *out)
{
    switch (dt) {
    case TJ_F32: *(float *)out = mx ? tj_max_block_f32(x, n) : tj_sum_block_f32(x, n); break;
    case TJ_F64: *(double *)out = mx ? tj_max_block_f64(x, n) : tj_sum_block_f64(x, n); break;
    case TJ_I32: *(int32_t *)out = mx ? tj_max_block_i32(x, n) : tj_sum_block_i32(x, n); break;
    }
}

/* runtime/ops/reduce.c for contiguous sequences: run_reduce (blocks of one output into
 * partials), reduce_values (block values, block by block in place, until one block). */
static void ref_reduce(tj_dtype dt, bool mx, const void *x, int64_t nout, int64_t K, void *y)
{
    const int64_t B = TJ_REDUCE_BLOCK;
    size_t es = esize(dt);
    for (int64_t o = 0; o < nout; o++) {
        const char *xo = (const char *)x + (size_t)(o * K) * es;
        char *yo = (char *)y + (size_t)o * es;
        if (K <= B) {            /* K == 0: the block rule on nothing is the identity */
            ref_block(dt, mx, xo, K, yo);
            continue;
        }
        int64_t nb = (K + B - 1) / B;
        char *v = malloc((size_t)nb * es);
        ck_assert_ptr_nonnull(v);
        for (int64_t b = 0; b < nb; b++) {
            int64_t len = b + 1 < nb ? B : K - b * B;
            ref_block(dt, mx, xo + (size_t)(b * B) * es, len, v + (size_t)b * es);
        }
        int64_t n = nb;
        while (n > B) {
            int64_t nb2 = (n + B - 1) / B;
            for (int64_t b = 0; b < nb2; b++) {
                int64_t len = b + 1 < nb2 ? B : n - b * B;
                ref_block(dt, mx, v + (size_t)(b * B) * es, len, v + (size_t)b * es);
            }
            n = nb2;
        }
        ref_block(dt, mx, v, n, yo);
        free(v);
    }
}

/* The runtime's eager op on a (nout, K) tensor, reduced over axis 1. Returns false when
 * there is nothing to compare: max over an empty axis is an error there (checked). */
static bool eager_reduce(tj_dtype dt, bool mx, const void *x, int64_t nout, int64_t K, void *y)
{
    tj_scope_begin();
    tj_tensor *t = tj_tensor_from(dt, TJ_SHAPE(nout, K), x);
    ck_assert_msg(t != NULL, "%s", tj_last_error());
    int ax = 1;
    tj_tensor *r = mx ? tj_max(t, 1, &ax, false) : tj_sum(t, 1, &ax, false);
    bool ok = r != NULL;
    if (!ok) {
        ck_assert_msg(mx && K == 0, "eager %s: %s", mx ? "max" : "sum", tj_last_error());
        tj_clear_error();
    } else {
        ck_assert_int_eq(tj_tensor_numel(r), nout);
        memcpy(y, tj_tensor_data(r), (size_t)nout * esize(dt));
    }
    tj_scope_end();
    return ok;
}

/* ---- data ------------------------------------------------------------------------------- */

/* xorshift64*: the same sequence on every run */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static double uni(uint64_t *s) { return ((double)(rnd(s) >> 11) + 0.5) * 0x1p-53; }

static double normal(uint64_t *s) { return sqrt(-2.0 * log(uni(s))) * cos(6.283185307179586 * uni(s)); }

typedef enum {
    P_NORMAL,    /* N(0, 1); int32: N(0, 1000) rounded */
    P_SCALED,    /* float: N(0, 1) * 2^U[-40, 40] (every reordering of a sum shows); int32: uniform bits */
    P_NAN1,      /* float: normals, NaNs of one payload at the boundaries; int32: near INT32_MAX */
    P_NANMIX,    /* float: normals, NaNs of many payloads and both signs, quiet and signalling; int32: near INT32_MIN */
    P_ZEROS,     /* float: +0/-0 at random, one row all -0; int32: all INT32_MIN */
    P_INF,       /* float: normals with +inf and -inf; int32: INT32_MAX and INT32_MIN alternating with normals */
    P_COUNT
} pattern;

static const char *const pat_name[P_COUNT] = {"normal", "scaled", "nan1", "nanmix", "zeros", "inf"};

static void put(tj_dtype dt, void *x, int64_t i, double v)
{
    if (dt == TJ_F32)
        ((float *)x)[i] = (float)v;
    else
        ((double *)x)[i] = v;
}

static void put_bits(tj_dtype dt, void *x, int64_t i, uint64_t f64bits, uint32_t f32bits)
{
    if (dt == TJ_F32)
        memcpy((float *)x + i, &f32bits, 4);
    else
        memcpy((double *)x + i, &f64bits, 8);
}

/* Positions of a row worth a special value: both ends, the middle, each side of the group
 * and block boundaries (and the partial group), plus about one in 3000 at random. */
static bool special_pos(int64_t k, int64_t K, uint64_t *s)
{
    static const int64_t fixed[] = {0, 1, 14, 15, 16, 17, 31, 4080, 4095, 4096, 4097, 4111, 8191, 65535};
    if (k == K - 1 || k == K / 2 || k == K - 2)
        return true;
    for (size_t j = 0; j < sizeof fixed / sizeof fixed[0]; j++)
        if (k == fixed[j])
            return true;
    return rnd(s) % 3000 == 0;
}

static void fill(tj_dtype dt, pattern p, void *x, int64_t nout, int64_t K, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 0x1234567ull + (uint64_t)p;
    if (dt == TJ_I32) {
        int32_t *xi = x;
        for (int64_t o = 0; o < nout; o++)
            for (int64_t k = 0; k < K; k++) {
                int32_t v = 0;
                uint64_t r = rnd(&s);
                switch (p) {
                case P_NORMAL: v = (int32_t)lrint(normal(&s) * 1000.0); break;
                case P_SCALED: v = (int32_t)(uint32_t)(r >> 32); break;
                case P_NAN1:   v = INT32_MAX - (int32_t)(r % 100); break;
                case P_NANMIX: v = INT32_MIN + (int32_t)(r % 3); break;
                case P_ZEROS:  v = INT32_MIN; break;
                case P_INF:    v = k % 3 == 0 ? INT32_MAX : k % 3 == 1 ? INT32_MIN : (int32_t)lrint(normal(&s) * 1e6); break;
                case P_COUNT:  break;
                }
                xi[o * K + k] = v;
            }
        return;
    }
    /* NaN payloads: quiet, quiet with payload, signalling, all with both signs */
    static const uint32_t nan32[] = {0x7fc00000u, 0xffc00000u, 0x7fc00001u, 0xffd23456u, 0x7f800001u,
                                     0xffa00000u, 0x7fffffffu, 0x7f812345u};
    static const uint64_t nan64[] = {0x7ff8000000000000u, 0xfff8000000000000u, 0x7ff8000000000001u,
                                     0xfffd23456789abcdu, 0x7ff0000000000001u, 0xfff4000000000000u,
                                     0x7fffffffffffffffu, 0x7ff123456789abcdu};
    int nnan = 0;
    for (int64_t o = 0; o < nout; o++)
        for (int64_t k = 0; k < K; k++) {
            int64_t i = o * K + k;
            switch (p) {
            case P_NORMAL:
                put(dt, x, i, normal(&s));
                break;
            case P_SCALED:
                put(dt, x, i, ldexp(normal(&s), (int)(rnd(&s) % 81) - 40));
                break;
            case P_NAN1:
            case P_NANMIX:
                if (special_pos(k, K, &s) && (o + k) % 2 == 0) {
                    int j = p == P_NAN1 ? 0 : nnan++ % 8;
                    put_bits(dt, x, i, nan64[j], nan32[j]);
                } else {
                    put(dt, x, i, normal(&s));
                }
                break;
            case P_ZEROS:
                put(dt, x, i, o == 1 || rnd(&s) % 2 ? -0.0 : 0.0);
                break;
            case P_INF:
                if (special_pos(k, K, &s))
                    put(dt, x, i, (o % 2 == 0 || k % 2) ? INFINITY : -INFINITY);
                else
                    put(dt, x, i, normal(&s));
                break;
            case P_COUNT:
                break;
            }
        }
}

/* ---- IR --------------------------------------------------------------------------------- */

static const char *const banned_emitted[] = {"call ", "@llvm.", "vector.reduce", " fast ", " reassoc ", " nnan ",
                                             " ninf ", " nsz ", " arcp ", " contract ", " afn ", NULL};
static const char *const banned_opt[] = {"llvm.vector.reduce.f", "llvm.maximum", "llvm.minimum",
                                         "llvm.maxnum", "llvm.minnum", " fast ", " reassoc ", " nnan ",
                                         " ninf ", " nsz ", " arcp ", " contract ", " afn ", NULL};
static const char *const banned_asm[] = {"\tcall", "\tjmp\t*", NULL};

static void ck_text_clean(const char *text, const char *const *banned, const char *what)
{
    for (size_t k = 0; banned[k]; k++)
        ck_assert_msg(strstr(text, banned[k]) == NULL, "%s contains '%s'", what, banned[k]);
}

/* void name(ptr x, ptr y, ptr scratch) { tj_lower_reduce(...); } */
static void emit_fn(LLVMModuleRef m, const char *name, bool mx, tj_dtype dt, int64_t nout, int64_t K)
{
    LLVMContextRef c = LLVMGetModuleContext(m);
    LLVMTypeRef pt = LLVMPointerType(LLVMInt8TypeInContext(c), 0);
    LLVMTypeRef params[3] = {pt, pt, pt};
    LLVMValueRef fn = LLVMAddFunction(m, name, LLVMFunctionType(LLVMVoidTypeInContext(c), params, 3, 0));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
    tj_lower_reduce(m, b, fn, mx, dt, LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), LLVMGetParam(fn, 2), nout, K);
    ck_assert_ptr_null(LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(b)));
    ck_assert_ptr_eq(LLVMGetInsertBlock(b), LLVMGetLastBasicBlock(fn));
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
}

typedef void (*red_fn)(const void *x, void *y, void *scratch);

#define MAX_FNS 48
typedef struct {
    int n;
    char name[MAX_FNS][64];
    int64_t nout[MAX_FNS], K[MAX_FNS];
    red_fn fn[MAX_FNS];
    tj_jit_code *code;
} module;

/* Verifies m, checks its IR, compiles it through the engine and looks up mod->name[]. */
static void compile(module *mod, LLVMOrcThreadSafeContextRef tsc, LLVMModuleRef m)
{
    char *msg = NULL;
    ck_assert_msg(!LLVMVerifyModule(m, LLVMReturnStatusAction, &msg), "verify: %s", msg);
    LLVMDisposeMessage(msg);
    char *ir = LLVMPrintModuleToString(m);
    ck_text_clean(ir, banned_emitted, "emitted IR");
    LLVMDisposeMessage(ir);
    const char *names[MAX_FNS];
    void *addrs[MAX_FNS];
    for (int k = 0; k < mod->n; k++)
        names[k] = mod->name[k];
    char *opt = NULL, *as = NULL;
    int rc = tj_engine_add(tsc, m, mod->n, names, addrs, &mod->code, NULL, &opt, &as); /* takes tsc, m */
    ck_assert_msg(rc == 0, "%s", tj_last_error());
    ck_text_clean(opt, banned_opt, "optimised IR");
    ck_text_clean(as, banned_asm, "assembly");
    if (verbose() && strstr(opt, "llvm.vector.reduce"))
        fprintf(stderr, "note: the optimiser formed an integer llvm.vector.reduce (exact: wrapping add/smax)\n");
    tj_mem_free(opt, strlen(opt) + 1);
    tj_mem_free(as, strlen(as) + 1);
    for (int k = 0; k < mod->n; k++)
        mod->fn[k] = (red_fn)(uintptr_t)addrs[k];
}

static void build(module *mod, bool mx, tj_dtype dt, const int64_t *Ks, int nK, const int64_t *nouts, int nn)
{
    memset(mod, 0, sizeof *mod);
    ck_assert_msg(tj_engine_init() == 0, "%s", tj_last_error());
    LLVMOrcThreadSafeContextRef tsc;
    LLVMModuleRef m;
    ck_assert_msg(tj_engine_module("lower_reduce_test", &tsc, &m) == 0, "%s", tj_last_error());
    for (int i = 0; i < nK; i++)
        for (int j = 0; j < nn; j++) {
            ck_assert_int_lt(mod->n, MAX_FNS);
            int k = mod->n++;
            mod->K[k] = Ks[i];
            mod->nout[k] = nouts[j];
            snprintf(mod->name[k], sizeof mod->name[k], "%s_%s_K%lld_n%lld", mx ? "max" : "sum", dt_name(dt),
                     (long long)Ks[i], (long long)nouts[j]);
            emit_fn(m, mod->name[k], mx, dt, nouts[j], Ks[i]);
        }
    compile(mod, tsc, m);
}

/* ---- running and comparing ----------------------------------------------------------------- */

typedef struct {
    long long runs, outputs, bad_c, bad_eager, eager_skipped, nan_payload_c, nan_payload_eager;
    char first[256];
} tally;

static bool is_nan(tj_dtype dt, const void *p)
{
    if (dt == TJ_F32) {
        float f;
        memcpy(&f, p, 4);
        return f != f;
    }
    if (dt == TJ_F64) {
        double d;
        memcpy(&d, p, 8);
        return d != d;
    }
    return false;
}

/* 0 if want and got are the same bits, or (when a NaN's payload is free) both NaN. A sum
 * over NaNs of several payloads (or signs) has a NaN whose payload C does not define: x86
 * returns the first operand's NaN, and gcc may swap the operands of a + v (two compiles of
 * the same reduce.h macro, the runtime's and this file's, differ there), so only NaN-ness
 * is compared for such data; *nan_payload counts the payloads that differed. */
static int differ(tj_dtype dt, const void *want, const void *got, bool payload_free, long long *nan_payload)
{
    if (!memcmp(want, got, esize(dt)))
        return 0;
    if (payload_free && is_nan(dt, want) && is_nan(dt, got)) {
        (*nan_payload)++;
        return 0;
    }
    return 1;
}

static void note_bad(tally *t, const char *what, const char *fname, pattern p, int64_t o,
                     const void *want, const void *got, size_t es)
{
    if (t->first[0])
        return;
    uint64_t w = 0, g = 0;
    memcpy(&w, want, es);
    memcpy(&g, got, es);
    snprintf(t->first, sizeof t->first, "%s, data %s, output %lld: %s 0x%llx, JIT 0x%llx", fname,
             pat_name[p], (long long)o, what, (unsigned long long)w, (unsigned long long)g);
}

/* Runs mod's function k on pattern p; compares with the C rule and with eager. */
static void run_one(const module *mod, int k, bool mx, tj_dtype dt, pattern p, tally *t)
{
    int64_t nout = mod->nout[k], K = mod->K[k];
    size_t es = esize(dt), nx = (size_t)(nout * K) * es, ny = (size_t)nout * es;
    int64_t nb = (K + TJ_REDUCE_BLOCK - 1) / TJ_REDUCE_BLOCK;
    void *x = malloc(nx ? nx : 1), *y = malloc(ny), *want = malloc(ny), *eager = malloc(ny);
    void *scratch = K > TJ_REDUCE_BLOCK ? malloc((size_t)nb * es) : NULL;
    ck_assert(x && y && want && eager && (scratch || K <= TJ_REDUCE_BLOCK));
    fill(dt, p, x, nout, K, (uint64_t)(k + 1));
    ref_reduce(dt, mx, x, nout, K, want);
    memset(y, 0xa5, ny);
    mod->fn[k](x, y, scratch);
    bool have_eager = eager_reduce(dt, mx, x, nout, K, eager);
    t->runs++;
    t->outputs += nout;
    if (!have_eager)
        t->eager_skipped++;
    bool payload_free = !mx && dt != TJ_I32 && p == P_NANMIX;
    for (int64_t o = 0; o < nout; o++) {
        const char *w = (const char *)want + o * (int64_t)es, *g = (const char *)y + o * (int64_t)es;
        const char *e = (const char *)eager + o * (int64_t)es;
        if (differ(dt, w, g, payload_free, &t->nan_payload_c)) {
            t->bad_c++;
            note_bad(t, "C rule", mod->name[k], p, o, w, g, es);
        }
        if (have_eager && differ(dt, e, g, payload_free, &t->nan_payload_eager)) {
            t->bad_eager++;
            note_bad(t, "eager", mod->name[k], p, o, e, g, es);
        }
    }
    free(x);
    free(y);
    free(want);
    free(eager);
    free(scratch);
}

static void ck_tally(const tally *t, const char *what)
{
    if (verbose())
        fprintf(stderr, "%-20s %4lld runs, %5lld outputs: %lld differ from the C rule, %lld from eager;"
                        " %lld runs without eager (max over nothing); free NaN payloads differ: %lld from C, %lld from eager\n",
                what, t->runs, t->outputs, t->bad_c, t->bad_eager, t->eager_skipped, t->nan_payload_c,
                t->nan_payload_eager);
    ck_assert_msg(t->bad_c == 0 && t->bad_eager == 0, "%s: %lld + %lld of %lld outputs differ; first: %s", what,
                  t->bad_c, t->bad_eager, t->outputs, t->first);
}

static const int64_t Ks[] = {0, 1, 2, 15, 16, 17, 31, 4095, 4096, 4097, 70001};
static const int64_t nouts[] = {1, 3, 7};
#define NK ((int)(sizeof Ks / sizeof Ks[0]))
#define NN ((int)(sizeof nouts / sizeof nouts[0]))

static void run_all(bool mx, tj_dtype dt)
{
    module mod;
    build(&mod, mx, dt, Ks, NK, nouts, NN);
    tally t = {0};
    for (int k = 0; k < mod.n; k++)
        for (int p = 0; p < P_COUNT; p++)
            run_one(&mod, k, mx, dt, (pattern)p, &t);
    char what[32];
    snprintf(what, sizeof what, "%s %s", mx ? "max" : "sum", dt_name(dt));
    ck_tally(&t, what);
    tj_engine_free(mod.code);
}

START_TEST(sum_f32) { run_all(false, TJ_F32); }
END_TEST
START_TEST(sum_f64) { run_all(false, TJ_F64); }
END_TEST
START_TEST(sum_i32) { run_all(false, TJ_I32); }
END_TEST
START_TEST(max_f32) { run_all(true, TJ_F32); }
END_TEST
START_TEST(max_f64) { run_all(true, TJ_F64); }
END_TEST
START_TEST(max_i32) { run_all(true, TJ_I32); }
END_TEST

/* K = 4096 * 4096 + 3: 4097 block values, so a second level (2 values) before the last
 * block. One output, one data pattern per op and dtype. */
START_TEST(two_levels)
{
    static const int64_t K[1] = {4096LL * 4096 + 3}, n1[1] = {1};
    static const tj_dtype dts[3] = {TJ_F32, TJ_F64, TJ_I32};
    int i = _i;   /* loop test: 0..5 */
    bool mx = i >= 3;
    tj_dtype dt = dts[i % 3];
    pattern p = dt == TJ_I32 ? (mx ? P_NORMAL : P_SCALED) : (mx ? P_NANMIX : P_SCALED);
    module mod;
    build(&mod, mx, dt, K, 1, n1, 1);
    tally t = {0};
    run_one(&mod, 0, mx, dt, p, &t);
    char what[48];
    snprintf(what, sizeof what, "%s %s K=%lld", mx ? "max" : "sum", dt_name(dt), (long long)K[0]);
    ck_tally(&t, what);
    tj_engine_free(mod.code);
}
END_TEST

/* Two reductions in one function, code before and after: the builder ends after the
 * emitted blocks, ready for more; nout == 0 emits nothing. */
START_TEST(builder_position)
{
    enum { NO = 3, KK = 5000 };
    ck_assert_msg(tj_engine_init() == 0, "%s", tj_last_error());
    LLVMOrcThreadSafeContextRef tsc;
    LLVMModuleRef m;
    ck_assert_msg(tj_engine_module("lower_reduce_pos", &tsc, &m) == 0, "%s", tj_last_error());
    LLVMContextRef c = LLVMGetModuleContext(m);
    LLVMTypeRef pt = LLVMPointerType(LLVMInt8TypeInContext(c), 0), f32 = LLVMFloatTypeInContext(c);
    LLVMTypeRef params[3] = {pt, pt, pt};
    LLVMValueRef fn = LLVMAddFunction(m, "two", LLVMFunctionType(LLVMVoidTypeInContext(c), params, 3, 0));
    LLVMValueRef x = LLVMGetParam(fn, 0), y = LLVMGetParam(fn, 1), scratch = LLVMGetParam(fn, 2);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c, fn, "entry");
    LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef i0 = LLVMConstInt(LLVMInt64TypeInContext(c), 3 * NO, 0);
    LLVMBuildStore(b, LLVMConstReal(f32, 1.5), LLVMBuildGEP2(b, f32, y, &i0, 1, ""));   /* before */
    LLVMValueRef last = LLVMGetLastInstruction(entry);
    tj_lower_reduce(m, b, fn, false, TJ_F32, x, y, scratch, 0, KK);                    /* nothing */
    ck_assert_ptr_eq(LLVMGetInsertBlock(b), entry);
    ck_assert_ptr_eq(LLVMGetLastInstruction(entry), last);
    ck_assert_ptr_null(LLVMGetNextBasicBlock(entry));
    tj_lower_reduce(m, b, fn, false, TJ_F32, x, y, scratch, NO, KK);
    ck_assert_ptr_eq(LLVMGetInsertBlock(b), LLVMGetLastBasicBlock(fn));
    ck_assert_ptr_null(LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(b)));
    LLVMValueRef i1 = LLVMConstInt(LLVMInt64TypeInContext(c), NO, 0);
    LLVMValueRef y1 = LLVMBuildGEP2(b, f32, y, &i1, 1, "");
    tj_lower_reduce(m, b, fn, true, TJ_F32, x, y1, scratch, NO, KK);
    ck_assert_ptr_eq(LLVMGetInsertBlock(b), LLVMGetLastBasicBlock(fn));
    LLVMValueRef i2 = LLVMConstInt(LLVMInt64TypeInContext(c), 2 * NO, 0);
    tj_lower_reduce(m, b, fn, false, TJ_F32, x, LLVMBuildGEP2(b, f32, y, &i2, 1, ""), scratch, NO, 0);
    LLVMValueRef i3 = LLVMConstInt(LLVMInt64TypeInContext(c), 3 * NO + 1, 0);
    LLVMBuildStore(b, LLVMConstReal(f32, 2.5), LLVMBuildGEP2(b, f32, y, &i3, 1, ""));   /* after */
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    module mod = {.n = 1};
    strcpy(mod.name[0], "two");
    compile(&mod, tsc, m);

    float *xs = malloc(sizeof(float) * NO * KK), *ys = malloc(sizeof(float) * (3 * NO + 2));
    float *sc = malloc(sizeof(float) * ((KK + TJ_REDUCE_BLOCK - 1) / TJ_REDUCE_BLOCK)), want[3 * NO];
    ck_assert(xs && ys && sc);
    fill(TJ_F32, P_SCALED, xs, NO, KK, 7);
    ref_reduce(TJ_F32, false, xs, NO, KK, want);
    ref_reduce(TJ_F32, true, xs, NO, KK, want + NO);
    ref_reduce(TJ_F32, false, xs, NO, 0, want + 2 * NO);
    mod.fn[0](xs, ys, sc);
    ck_assert(memcmp(ys, want, sizeof want) == 0);
    ck_assert(ys[3 * NO] == 1.5f && ys[3 * NO + 1] == 2.5f);
    for (int o = 0; o < NO; o++)
        ck_assert(ys[2 * NO + o] == 0.0f && !signbit(ys[2 * NO + o]));
    free(xs);
    free(ys);
    free(sc);
    tj_engine_free(mod.code);
}
END_TEST

/* ---- throughput (TJ_LOWER_REDUCE_BENCH=1) --------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define BENCH_REPS 41
START_TEST(bench_sum_f32)
{
    if (!getenv("TJ_LOWER_REDUCE_BENCH"))
        return;
    static const int64_t K[1] = {1 << 20}, n1[1] = {1};
    module mod;
    build(&mod, false, TJ_F32, K, 1, n1, 1);
    float *x = malloc(sizeof(float) << 20), sc[256], yj = 0, yc = 0, ye = 0;
    ck_assert_ptr_nonnull(x);
    fill(TJ_F32, P_NORMAL, x, 1, K[0], 3);
    int prev = tj_threads();
    tj_set_threads(1);
    tj_scope_begin();
    tj_tensor *t = tj_tensor_from(TJ_F32, TJ_SHAPE(K[0]), x);
    double tj[BENCH_REPS], te[BENCH_REPS], tc[BENCH_REPS];
    for (int r = 0; r < BENCH_REPS; r++) {
        double t0 = now_ms();
        for (int q = 0; q < 10; q++)
            mod.fn[0](x, &yj, sc);
        double t1 = now_ms();
        for (int q = 0; q < 10; q++) {
            tj_scope_begin();
            ye = (float)tj_item(tj_sum(t, 0, NULL, false));
            tj_scope_end();
        }
        double t2 = now_ms();
        for (int q = 0; q < 10; q++)
            ref_reduce(TJ_F32, false, x, 1, K[0], &yc);
        double t3 = now_ms();
        tj[r] = (t1 - t0) / 10;
        te[r] = (t2 - t1) / 10;
        tc[r] = (t3 - t2) / 10;
    }
    tj_scope_end();
    tj_set_threads(prev);
    qsort(tj, BENCH_REPS, sizeof(double), cmp_d);
    qsort(te, BENCH_REPS, sizeof(double), cmp_d);
    qsort(tc, BENCH_REPS, sizeof(double), cmp_d);
    double mj = tj[BENCH_REPS / 2], me = te[BENCH_REPS / 2], mc = tc[BENCH_REPS / 2];
    fprintf(stderr, "sum f32, 2^20 values, 1 thread, median of %d x 10 calls (min):\n"
                    "  JIT        %.4f ms (%.4f)  %.2f Gelem/s  %.1f GB/s\n"
                    "  eager      %.4f ms (%.4f)  %.2f Gelem/s  (tj_sum: tensor, scope, dispatch)\n"
                    "  C rule     %.4f ms (%.4f)  %.2f Gelem/s  (this file's driver over tj_sum_block_f32)\n"
                    "  eager / JIT = %.2f\n",
            BENCH_REPS, mj, tj[0], K[0] / mj * 1e-6, 4.0 * K[0] / mj * 1e-6, me, te[0], K[0] / me * 1e-6,
            mc, tc[0], K[0] / mc * 1e-6, me / mj);
    ck_assert(memcmp(&yj, &ye, 4) == 0 && memcmp(&yj, &yc, 4) == 0);
    free(x);
    tj_engine_free(mod.code);
}
END_TEST

Suite *lower_reduce_suite(void)
{
    Suite *s = suite_create("lower_reduce");
    TCase *ir = tcase_create("ir");
    tcase_set_timeout(ir, 60);
    tcase_add_test(ir, builder_position);
    suite_add_tcase(s, ir);
    TCase *bits = tcase_create("bits");
    tcase_set_timeout(bits, 300);
    tcase_add_test(bits, sum_f32);
    tcase_add_test(bits, sum_f64);
    tcase_add_test(bits, sum_i32);
    tcase_add_test(bits, max_f32);
    tcase_add_test(bits, max_f64);
    tcase_add_test(bits, max_i32);
    tcase_add_loop_test(bits, two_levels, 0, 6);
    suite_add_tcase(s, bits);
    TCase *bench = tcase_create("bench");
    tcase_set_timeout(bench, 300);
    tcase_add_test(bench, bench_sum_f32);
    suite_add_tcase(s, bench);
    return s;
}
