/* lower_math.c: runtime/math/tj_math.h as LLVM IR, operation by operation.
 * Each emitter below mirrors one function of tj_math.h: the same constants (written as the
 * same C literals, so a float literal is rounded to float by the C compiler exactly as in
 * tj_math.h and then passed exactly to LLVMConstReal), the same order of fmul/fadd/fsub/fdiv
 * (separate instructions; no fmuladd, no fast-math flags: the C side has -ffp-contract=off),
 * fcmp + select for tj_math_select_* (a select moves bits, as the C bit mask does), bitcasts
 * and integer ops for the bit tricks, fptosi/sitofp for the casts. Straight-line code only:
 * no blocks, no calls, no intrinsics. If tj_math.h changes, this file changes with it. */
#include "lower_math.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* What every emitter needs: the builder and x's types. A scalar has lanes == 0. */
typedef struct {
    LLVMBuilderRef b;
    LLVMTypeRef fs, is, i32s; /* element types: float|double, its bits i32|i64, and i32 */
    LLVMTypeRef ft, it, i32t; /* the same with x's lanes (ft is x's type) */
    unsigned lanes;
    int dbl;                  /* 1 for double */
} em;

/* 0 if x is a float or double scalar or fixed vector; then *e describes it. */
static int em_init(em *e, LLVMBuilderRef b, LLVMValueRef x)
{
    if (!b || !x)
        return -1;
    LLVMTypeRef t = LLVMTypeOf(x), s = t;
    e->b = b;
    e->lanes = 0;
    if (LLVMGetTypeKind(t) == LLVMVectorTypeKind) {
        e->lanes = LLVMGetVectorSize(t);
        s = LLVMGetElementType(t);
        if (e->lanes == 0)
            return -1;
    }
    LLVMTypeKind k = LLVMGetTypeKind(s);
    if (k != LLVMFloatTypeKind && k != LLVMDoubleTypeKind)
        return -1;
    LLVMContextRef ctx = LLVMGetTypeContext(t);
    e->dbl = k == LLVMDoubleTypeKind;
    e->fs = s;
    e->is = e->dbl ? LLVMInt64TypeInContext(ctx) : LLVMInt32TypeInContext(ctx);
    e->i32s = LLVMInt32TypeInContext(ctx);
    e->ft = t;
    e->it = e->lanes ? LLVMVectorType(e->is, e->lanes) : e->is;
    e->i32t = e->lanes ? LLVMVectorType(e->i32s, e->lanes) : e->i32s;
    return 0;
}

/* ---- constants: scalar, or splatted over x's lanes -------------------------------------- */

static LLVMValueRef splat(const em *e, LLVMValueRef c)
{
    if (e->lanes == 0)
        return c;
    if (e->lanes <= 64) {
        LLVMValueRef v[64];
        for (unsigned i = 0; i < e->lanes; i++)
            v[i] = c;
        return LLVMConstVector(v, e->lanes);
    }
    /* wider than any real target: insertelement + zero-mask shufflevector, which the
     * builder folds into the same splat constant (needs no array of `lanes` elements) */
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(c), e->lanes);
    LLVMValueRef one = LLVMBuildInsertElement(e->b, LLVMGetPoison(vt), c,
                                              LLVMConstInt(e->i32s, 0, 0), "");
    return LLVMBuildShuffleVector(e->b, one, LLVMGetPoison(vt), LLVMConstNull(e->i32t), "");
}

/* A float or double constant. For float, v is a float literal promoted to double, so it
 * is exact; LLVMConstReal then rounds it to float without change. */
static LLVMValueRef cf(const em *e, double v)
{
    assert(e->dbl || isinf(v) || (double)(float)v == v);
    return splat(e, LLVMConstReal(e->fs, v));
}

/* An integer constant of the bit-pattern type (i32 for float, i64 for double). */
static LLVMValueRef cbits(const em *e, uint64_t v) { return splat(e, LLVMConstInt(e->is, v, 0)); }

/* An int32_t constant. */
static LLVMValueRef ci32(const em *e, int32_t v)
{
    return splat(e, LLVMConstInt(e->i32s, (unsigned long long)(int64_t)v, 1));
}

/* C's NAN (glibc: __builtin_nanf(""), 0x7fc00000; as double 0x7ff8000000000000), by bits
 * so no conversion of a NaN through double is involved. */
static LLVMValueRef cnan(const em *e)
{
    return LLVMBuildBitCast(e->b, cbits(e, e->dbl ? 0x7ff8000000000000u : 0x7fc00000u), e->ft, "");
}

/* ---- operations, one IR instruction each --------------------------------------------------- */

static LLVMValueRef add(const em *e, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(e->b, a, b, ""); }
static LLVMValueRef sub(const em *e, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(e->b, a, b, ""); }
static LLVMValueRef mul(const em *e, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(e->b, a, b, ""); }
static LLVMValueRef divide(const em *e, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildFDiv(e->b, a, b, "");
}

/* C's <, >, == are ordered compares (false on NaN); != is unordered (true on NaN). */
static LLVMValueRef fcmp(const em *e, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildFCmp(e->b, p, a, b, "");
}
static LLVMValueRef lt(const em *e, LLVMValueRef a, LLVMValueRef b) { return fcmp(e, LLVMRealOLT, a, b); }
static LLVMValueRef gt(const em *e, LLVMValueRef a, LLVMValueRef b) { return fcmp(e, LLVMRealOGT, a, b); }
static LLVMValueRef eq(const em *e, LLVMValueRef a, LLVMValueRef b) { return fcmp(e, LLVMRealOEQ, a, b); }
static LLVMValueRef ne(const em *e, LLVMValueRef a, LLVMValueRef b) { return fcmp(e, LLVMRealUNE, a, b); }

/* tj_math_select_f / _d: c ? a : b on the bits */
static LLVMValueRef sel(const em *e, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b, const char *name)
{
    return LLVMBuildSelect(e->b, c, a, b, name);
}

/* tj_math_bits_f/_d and tj_math_from_bits_f/_d */
static LLVMValueRef bits(const em *e, LLVMValueRef x) { return LLVMBuildBitCast(e->b, x, e->it, ""); }
static LLVMValueRef from_bits(const em *e, LLVMValueRef u, const char *name)
{
    return LLVMBuildBitCast(e->b, u, e->ft, name);
}

/* p = c[0]; p = p * r + c[i], i = 1..n-1 (Horner, one fmul and one fadd per line) */
static LLVMValueRef horner(const em *e, LLVMValueRef r, const double *c, int n)
{
    LLVMValueRef p = cf(e, c[0]);
    for (int i = 1; i < n; i++)
        p = add(e, mul(e, p, r), cf(e, c[i]));
    return p;
}

/* Below, each block of IR follows the line of tj_math.h quoted above it. Operands are
 * emitted left to right, one instruction-emitting call per statement, so the IR's order
 * does not depend on the C compiler's order of evaluating arguments (dumps stay stable). */

/* ---- exp ------------------------------------------------------------------------------------ */

/* tj_math_from_bits_f((uint32_t)(k + 127) << 23), or for double
 * tj_math_from_bits_d((uint64_t)(k + 1023) << 52) (int32 -> uint64: sext): 2^k */
static LLVMValueRef pow2(const em *e, LLVMValueRef k, const char *name)
{
    LLVMValueRef t = LLVMBuildAdd(e->b, k, ci32(e, e->dbl ? 1023 : 127), "");
    if (e->dbl)
        t = LLVMBuildSExt(e->b, t, e->it, "");
    t = LLVMBuildShl(e->b, t, e->dbl ? cbits(e, 52) : ci32(e, 23), "");
    return from_bits(e, t, name);
}

/* tj_m_expf_reduced / tj_m_exp_reduced: returns e^r, *k the power of two */
static LLVMValueRef exp_reduced(const em *e, LLVMValueRef xc, LLVMValueRef *k)
{
    LLVMValueRef t, u;
    /* kf = (xc * LOG2E + SHIFTER) - SHIFTER; */
    t = mul(e, xc, e->dbl ? cf(e, 0x1.71547652b82fep+0) : cf(e, 0x1.715476p+0f));
    t = add(e, t, e->dbl ? cf(e, 0x1.8p52) : cf(e, 0x1.8p23f));
    LLVMValueRef kf = sub(e, t, e->dbl ? cf(e, 0x1.8p52) : cf(e, 0x1.8p23f));
    /* *k = (int32_t)kf; */
    *k = LLVMBuildFPToSI(e->b, kf, e->i32t, "exp.k");
    /* r = (xc - kf * LN2_HI) - kf * LN2_LO; */
    t = mul(e, kf, e->dbl ? cf(e, 0x1.62e42feep-1) : cf(e, 0x1.62e4p-1f));
    t = sub(e, xc, t);
    u = mul(e, kf, e->dbl ? cf(e, 0x1.a39ef35793c76p-33) : cf(e, 0x1.7f7d1cp-20f));
    LLVMValueRef r = sub(e, t, u);
    /* p = P[0]; p = p * r + P[1]; ... */
    static const double PF[5] = {0x1.6d1106p-10f, 0x1.120b6cp-7f, 0x1.55551ap-5f, 0x1.5554dcp-3f, 0x1.0p-1f};
    static const double PD[10] = {
        0x1.af38a71a18cb9p-26, 0x1.2891834686c7ep-22, 0x1.71de0daf7a6ccp-19,
        0x1.a019b90eefe8ep-16, 0x1.a01a01a7c3d59p-13, 0x1.6c16c1788b646p-10,
        0x1.11111111109b4p-7,  0x1.5555555553d64p-5,  0x1.5555555555556p-3,
        0x1.0000000000001p-1};
    LLVMValueRef p = e->dbl ? horner(e, r, PD, 10) : horner(e, r, PF, 5);
    /* return 1 + (r + (r * r) * p); */
    t = mul(e, r, r);
    t = mul(e, t, p);
    t = add(e, r, t);
    return add(e, cf(e, 1.0), t);
}

/* tj_m_expf / tj_m_exp */
static LLVMValueRef exp_fd(const em *e, LLVMValueRef x)
{
    LLVMBuilderRef b = e->b;
    LLVMValueRef c, k;
    double hi = e->dbl ? 800.0 : 100.0, lo = e->dbl ? -800.0 : -120.0;
    /* xc = select(x < HI, x, HI); xc = select(xc > LO, xc, LO); */
    c = lt(e, x, cf(e, hi));
    LLVMValueRef xc = sel(e, c, x, cf(e, hi), "exp.xc");
    c = gt(e, xc, cf(e, lo));
    xc = sel(e, c, xc, cf(e, lo), "exp.xc");
    LLVMValueRef er = exp_reduced(e, xc, &k);
    /* int32_t k1 = k / 2, k2 = k - k1;  (C division truncates: sdiv) */
    LLVMValueRef k1 = LLVMBuildSDiv(b, k, ci32(e, 2), "exp.k1");
    LLVMValueRef k2 = LLVMBuildSub(b, k, k1, "exp.k2");
    /* y = (er * 2^k1) * 2^k2; */
    LLVMValueRef t = mul(e, er, pow2(e, k1, "exp.s1"));
    LLVMValueRef y = mul(e, t, pow2(e, k2, "exp.s2"));
    /* return select(x != x, x, y); */
    c = ne(e, x, x);
    return sel(e, c, x, y, "exp");
}

/* ---- log ------------------------------------------------------------------------------------ */

/* tj_m_logf */
static LLVMValueRef log_f(const em *e, LLVMValueRef x)
{
    LLVMBuilderRef b = e->b;
    LLVMValueRef t, u2, c;
    /* int sub = x < 0x1p-126f; */
    LLVMValueRef issub = lt(e, x, cf(e, 0x1p-126f));
    /* float xs = x * tj_math_select_f(sub, 0x1p25f, 1.0f); */
    t = sel(e, issub, cf(e, 0x1p25f), cf(e, 1.0f), "");
    LLVMValueRef xs = mul(e, x, t);
    /* uint32_t u = tj_math_bits_f(xs) + (0x3f800000u - 0x3f3504f3u); */
    t = bits(e, xs);
    LLVMValueRef u = LLVMBuildAdd(b, t, cbits(e, 0x3f800000u - 0x3f3504f3u), "log.u");
    /* int32_t k = (int32_t)(u >> 23) - 127 - (sub ? 25 : 0); */
    t = LLVMBuildLShr(b, u, cbits(e, 23), "");
    t = LLVMBuildSub(b, t, ci32(e, 127), "");
    u2 = sel(e, issub, ci32(e, 25), ci32(e, 0), "");
    LLVMValueRef k = LLVMBuildSub(b, t, u2, "log.k");
    /* float f = tj_math_from_bits_f((u & 0x007fffffu) + 0x3f3504f3u) - 1.0f; */
    t = LLVMBuildAnd(b, u, cbits(e, 0x007fffffu), "");
    t = LLVMBuildAdd(b, t, cbits(e, 0x3f3504f3u), "");
    t = from_bits(e, t, "");
    LLVMValueRef f = sub(e, t, cf(e, 1.0f));
    /* float dk = (float)k; */
    LLVMValueRef dk = LLVMBuildSIToFP(b, k, e->ft, "log.dk");
    /* float hfsq = (0.5f * f) * f; */
    t = mul(e, cf(e, 0.5f), f);
    LLVMValueRef hfsq = mul(e, t, f);
    /* float s = f / (2.0f + f); */
    t = add(e, cf(e, 2.0f), f);
    LLVMValueRef s = divide(e, f, t);
    /* float z = s * s, w = z * z; */
    LLVMValueRef z = mul(e, s, s);
    LLVMValueRef w = mul(e, z, z);
    /* float R = z * (0x1.555554p-1f + w * 0x1.23d3dcp-2f) + w * (0x1.999c26p-2f + w * 0x1.f13c4cp-3f); */
    t = mul(e, w, cf(e, 0x1.23d3dcp-2f));
    t = add(e, cf(e, 0x1.555554p-1f), t);
    t = mul(e, z, t);
    u2 = mul(e, w, cf(e, 0x1.f13c4cp-3f));
    u2 = add(e, cf(e, 0x1.999c26p-2f), u2);
    u2 = mul(e, w, u2);
    LLVMValueRef R = add(e, t, u2);
    /* float y = dk * 0x1.62e4p-1f - ((hfsq - (s * (hfsq + R) + dk * 0x1.7f7d1cp-20f)) - f); */
    LLVMValueRef hi = mul(e, dk, cf(e, 0x1.62e4p-1f));
    t = add(e, hfsq, R);
    t = mul(e, s, t);
    u2 = mul(e, dk, cf(e, 0x1.7f7d1cp-20f));
    t = add(e, t, u2);
    t = sub(e, hfsq, t);
    t = sub(e, t, f);
    LLVMValueRef y = sub(e, hi, t);
    /* y = tj_math_select_f(x > 0.0f, y, tj_math_select_f(x == 0.0f, -INFINITY, NAN)); */
    c = gt(e, x, cf(e, 0.0f));
    u2 = eq(e, x, cf(e, 0.0f));
    u2 = sel(e, u2, cf(e, -INFINITY), cnan(e), "");
    y = sel(e, c, y, u2, "log.y");
    /* return tj_math_select_f(x == INFINITY, x, y); */
    c = eq(e, x, cf(e, INFINITY));
    return sel(e, c, x, y, "log");
}

/* tj_m_log */
static LLVMValueRef log_d(const em *e, LLVMValueRef x)
{
    LLVMBuilderRef b = e->b;
    LLVMValueRef t, u2, c;
    /* int sub = x < 0x1p-1022; */
    LLVMValueRef issub = lt(e, x, cf(e, 0x1p-1022));
    /* double xs = x * tj_math_select_d(sub, 0x1p54, 1.0); */
    t = sel(e, issub, cf(e, 0x1p54), cf(e, 1.0), "");
    LLVMValueRef xs = mul(e, x, t);
    /* uint64_t u = tj_math_bits_d(xs) + ((uint64_t)(0x3ff00000u - 0x3fe6a09eu) << 32); */
    t = bits(e, xs);
    LLVMValueRef u = LLVMBuildAdd(b, t, cbits(e, (uint64_t)(0x3ff00000u - 0x3fe6a09eu) << 32), "log.u");
    /* int32_t k = (int32_t)(u >> 52) - 1023 - (sub ? 54 : 0); */
    t = LLVMBuildLShr(b, u, cbits(e, 52), "");
    t = LLVMBuildTrunc(b, t, e->i32t, "");
    t = LLVMBuildSub(b, t, ci32(e, 1023), "");
    u2 = sel(e, issub, ci32(e, 54), ci32(e, 0), "");
    LLVMValueRef k = LLVMBuildSub(b, t, u2, "log.k");
    /* double f = tj_math_from_bits_d((u & 0x000fffffffffffffu) + ((uint64_t)0x3fe6a09eu << 32)) - 1.0; */
    t = LLVMBuildAnd(b, u, cbits(e, 0x000fffffffffffffu), "");
    t = LLVMBuildAdd(b, t, cbits(e, (uint64_t)0x3fe6a09eu << 32), "");
    t = from_bits(e, t, "");
    LLVMValueRef f = sub(e, t, cf(e, 1.0));
    /* double dk = (double)k; */
    LLVMValueRef dk = LLVMBuildSIToFP(b, k, e->ft, "log.dk");
    /* double hfsq = (0.5 * f) * f; */
    t = mul(e, cf(e, 0.5), f);
    LLVMValueRef hfsq = mul(e, t, f);
    /* double s = f / (2.0 + f); */
    t = add(e, cf(e, 2.0), f);
    LLVMValueRef s = divide(e, f, t);
    /* double z = s * s, w = z * z; */
    LLVMValueRef z = mul(e, s, s);
    LLVMValueRef w = mul(e, z, z);
    /* double t1 = w * (0x1.999999997fa04p-2 + w * (0x1.c71c51d8e78afp-3 + w * 0x1.39a09d078c69fp-3)); */
    t = mul(e, w, cf(e, 0x1.39a09d078c69fp-3));
    t = add(e, cf(e, 0x1.c71c51d8e78afp-3), t);
    t = mul(e, w, t);
    t = add(e, cf(e, 0x1.999999997fa04p-2), t);
    LLVMValueRef t1 = mul(e, w, t);
    /* double t2 = z * (0x1.5555555555593p-1 + w * (0x1.2492494229359p-2
     *             + w * (0x1.7466496cb03dep-3 + w * 0x1.2f112df3e5244p-3))); */
    t = mul(e, w, cf(e, 0x1.2f112df3e5244p-3));
    t = add(e, cf(e, 0x1.7466496cb03dep-3), t);
    t = mul(e, w, t);
    t = add(e, cf(e, 0x1.2492494229359p-2), t);
    t = mul(e, w, t);
    t = add(e, cf(e, 0x1.5555555555593p-1), t);
    LLVMValueRef t2 = mul(e, z, t);
    /* double R = t2 + t1; */
    LLVMValueRef R = add(e, t2, t1);
    /* double y = dk * 0x1.62e42feep-1 - ((hfsq - (s * (hfsq + R) + dk * 0x1.a39ef35793c76p-33)) - f); */
    LLVMValueRef hi = mul(e, dk, cf(e, 0x1.62e42feep-1));
    t = add(e, hfsq, R);
    t = mul(e, s, t);
    u2 = mul(e, dk, cf(e, 0x1.a39ef35793c76p-33));
    t = add(e, t, u2);
    t = sub(e, hfsq, t);
    t = sub(e, t, f);
    LLVMValueRef y = sub(e, hi, t);
    /* y = tj_math_select_d(x > 0.0, y, tj_math_select_d(x == 0.0, -INFINITY, NAN)); */
    c = gt(e, x, cf(e, 0.0));
    u2 = eq(e, x, cf(e, 0.0));
    u2 = sel(e, u2, cf(e, -INFINITY), cnan(e), "");
    y = sel(e, c, y, u2, "log.y");
    /* return tj_math_select_d(x == INFINITY, x, y); */
    c = eq(e, x, cf(e, INFINITY));
    return sel(e, c, x, y, "log");
}

/* ---- tanh ----------------------------------------------------------------------------------- */

/* tj_m_tanhf */
static LLVMValueRef tanh_f(const em *e, LLVMValueRef x)
{
    LLVMBuilderRef b = e->b;
    LLVMValueRef t, u;
    /* uint32_t sign = tj_math_bits_f(x) & 0x80000000u; */
    t = bits(e, x);
    LLVMValueRef sign = LLVMBuildAnd(b, t, cbits(e, 0x80000000u), "tanh.sign");
    /* float a = tj_math_from_bits_f(tj_math_bits_f(x) & 0x7fffffffu); */
    t = bits(e, x);
    t = LLVMBuildAnd(b, t, cbits(e, 0x7fffffffu), "");
    LLVMValueRef a = from_bits(e, t, "tanh.a");
    /* float z = a * a; */
    LLVMValueRef z = mul(e, a, a);
    /* float er = tj_m_expf_reduced(tj_math_select_f(a < 10.0f, a + a, 20.0f), &k); */
    LLVMValueRef k, a2 = add(e, a, a);
    t = sel(e, lt(e, a, cf(e, 10.0f)), a2, cf(e, 20.0f), "tanh.y");
    t = exp_reduced(e, t, &k);
    /* float e = er * 2^k; */
    LLVMValueRef ex = mul(e, t, pow2(e, k, "tanh.s"));
    /* int small = a < 0.625f; */
    LLVMValueRef small = lt(e, a, cf(e, 0.625f));
    /* float num = tj_math_select_f(small, (a * z) * (-315.0f - 14.0f * z), -2.0f); */
    t = mul(e, a, z);
    u = mul(e, cf(e, 14.0f), z);
    u = sub(e, cf(e, -315.0f), u);
    t = mul(e, t, u);
    LLVMValueRef num = sel(e, small, t, cf(e, -2.0f), "tanh.num");
    /* float den = tj_math_select_f(small, 945.0f + z * (420.0f + 15.0f * z), e + 1.0f); */
    t = mul(e, cf(e, 15.0f), z);
    t = add(e, cf(e, 420.0f), t);
    t = mul(e, z, t);
    t = add(e, cf(e, 945.0f), t);
    u = add(e, ex, cf(e, 1.0f));
    LLVMValueRef den = sel(e, small, t, u, "tanh.den");
    /* float t = tj_math_select_f(small, a, 1.0f) + num / den; */
    t = sel(e, small, a, cf(e, 1.0f), "");
    u = divide(e, num, den);
    t = add(e, t, u);
    /* t = tj_math_select_f(a != a, a + a, t); */
    t = sel(e, ne(e, a, a), a2, t, "");
    /* return tj_math_from_bits_f(tj_math_bits_f(t) | sign); */
    t = bits(e, t);
    t = LLVMBuildOr(b, t, sign, "");
    return from_bits(e, t, "tanh");
}

/* tj_m_tanh */
static LLVMValueRef tanh_d(const em *e, LLVMValueRef x)
{
    LLVMBuilderRef b = e->b;
    LLVMValueRef t, u;
    /* uint64_t sign = tj_math_bits_d(x) & 0x8000000000000000u; */
    t = bits(e, x);
    LLVMValueRef sign = LLVMBuildAnd(b, t, cbits(e, 0x8000000000000000u), "tanh.sign");
    /* double a = tj_math_from_bits_d(tj_math_bits_d(x) & 0x7fffffffffffffffu); */
    t = bits(e, x);
    t = LLVMBuildAnd(b, t, cbits(e, 0x7fffffffffffffffu), "");
    LLVMValueRef a = from_bits(e, t, "tanh.a");
    /* double z = a * a; */
    LLVMValueRef z = mul(e, a, a);
    /* double er = tj_m_exp_reduced(tj_math_select_d(a < 20.0, a + a, 40.0), &k); */
    LLVMValueRef k, a2 = add(e, a, a);
    t = sel(e, lt(e, a, cf(e, 20.0)), a2, cf(e, 40.0), "tanh.y");
    t = exp_reduced(e, t, &k);
    /* double e = er * 2^k; */
    LLVMValueRef ex = mul(e, t, pow2(e, k, "tanh.s"));
    /* int small = a < 0.625; */
    LLVMValueRef small = lt(e, a, cf(e, 0.625));
    /* double nd = -11486475.0 + z * (-810810.0 + z * (-12870.0 + z * -44.0)); */
    t = mul(e, z, cf(e, -44.0));
    t = add(e, cf(e, -12870.0), t);
    t = mul(e, z, t);
    t = add(e, cf(e, -810810.0), t);
    t = mul(e, z, t);
    LLVMValueRef nd = add(e, cf(e, -11486475.0), t);
    /* double dd = 34459425.0 + z * (16216200.0 + z * (945945.0 + z * (13860.0 + z * 45.0))); */
    t = mul(e, z, cf(e, 45.0));
    t = add(e, cf(e, 13860.0), t);
    t = mul(e, z, t);
    t = add(e, cf(e, 945945.0), t);
    t = mul(e, z, t);
    t = add(e, cf(e, 16216200.0), t);
    t = mul(e, z, t);
    LLVMValueRef dd = add(e, cf(e, 34459425.0), t);
    /* double num = tj_math_select_d(small, (a * z) * nd, -2.0); */
    t = mul(e, a, z);
    t = mul(e, t, nd);
    LLVMValueRef num = sel(e, small, t, cf(e, -2.0), "tanh.num");
    /* double den = tj_math_select_d(small, dd, e + 1.0); */
    u = add(e, ex, cf(e, 1.0));
    LLVMValueRef den = sel(e, small, dd, u, "tanh.den");
    /* double t = tj_math_select_d(small, a, 1.0) + num / den; */
    t = sel(e, small, a, cf(e, 1.0), "");
    u = divide(e, num, den);
    t = add(e, t, u);
    /* t = tj_math_select_d(a != a, a + a, t); */
    t = sel(e, ne(e, a, a), a2, t, "");
    /* return tj_math_from_bits_d(tj_math_bits_d(t) | sign); */
    t = bits(e, t);
    t = LLVMBuildOr(b, t, sign, "");
    return from_bits(e, t, "tanh");
}

/* ---- sigmoid -------------------------------------------------------------------------------- */

/* tj_m_sigmoidf and tj_m_sigmoid: the same lines with 0.0f/1.0f and 0.0/1.0 (equal values);
 * x < 0 appears twice there and is emitted once here (a compare has no rounding). */
static LLVMValueRef sigmoid_fd(const em *e, LLVMValueRef x)
{
    LLVMValueRef t, u;
    /* float e = tj_m_expf(tj_math_select_f(x < 0.0f, x, -x)); */
    LLVMValueRef neg = lt(e, x, cf(e, 0.0f));
    t = LLVMBuildFNeg(e->b, x, "");
    t = sel(e, neg, x, t, "");
    LLVMValueRef ex = exp_fd(e, t);
    /* return tj_math_select_f(x < 0.0f, e, 1.0f) / (1.0f + e); */
    t = sel(e, neg, ex, cf(e, 1.0f), "");
    u = add(e, cf(e, 1.0f), ex);
    return divide(e, t, u);
}

/* ---- the interface -------------------------------------------------------------------------- */

LLVMValueRef tj_lower_exp(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef x)
{
    (void)m;   /* nothing to declare: the lowering calls no functions or intrinsics */
    em e;
    if (em_init(&e, b, x))
        return NULL;
    return exp_fd(&e, x);
}

LLVMValueRef tj_lower_log(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef x)
{
    (void)m;
    em e;
    if (em_init(&e, b, x))
        return NULL;
    return e.dbl ? log_d(&e, x) : log_f(&e, x);
}

LLVMValueRef tj_lower_tanh(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef x)
{
    (void)m;
    em e;
    if (em_init(&e, b, x))
        return NULL;
    return e.dbl ? tanh_d(&e, x) : tanh_f(&e, x);
}

LLVMValueRef tj_lower_sigmoid(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef x)
{
    (void)m;
    em e;
    if (em_init(&e, b, x))
        return NULL;
    return sigmoid_fd(&e, x);
}
