/* lower_reduce.c: runtime/math/reduce.h (the block rule) and runtime/ops/reduce.c's block
 * recursion as LLVM IR. acc[16] is one <16 x T> value: full groups combine a vector load;
 * the partial last group fills only the low lanes (the rest keep their value); the tree
 * acc[l] op= acc[l + w] halves the vector each step. The combine is the C macro's, operands
 * in its order: sum a + v (fadd; int add wraps), max (v > a || v != v) ? v : a. No calls,
 * no intrinsics, no fast-math flags. If reduce.h or reduce.c changes, this file follows. */
#include "lower_reduce.h"
#include "lower_matmul.h"   /* tj_lower_loop */
#include "math/reduce.h"

#include <assert.h>
#include <math.h>

_Static_assert(TJ_REDUCE_LANES == 16, "the combine tree below is written for 16 lanes");
_Static_assert(TJ_REDUCE_BLOCK % TJ_REDUCE_LANES == 0, "a full block is whole groups");

/* What every emitter needs. */
typedef struct {
    LLVMContextRef ctx;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    bool is_max, is_int;
    LLVMTypeRef et, vt;       /* T, <16 x T> */
    LLVMTypeRef pet, pvt;     /* pointers to them (the same `ptr` with opaque pointers) */
    LLVMTypeRef i32, i64;
    unsigned align;           /* element size: every access is element-aligned */
} rctx;

static LLVMValueRef ci64(const rctx *r, int64_t v) { return LLVMConstInt(r->i64, (unsigned long long)v, 1); }
static LLVMValueRef ci32(const rctx *r, int v) { return LLVMConstInt(r->i32, (unsigned long long)(int64_t)v, 1); }

/* The identity: +0 for sum, -inf / INT32_MIN for max. */
static LLVMValueRef identity(const rctx *r)
{
    if (r->is_int)
        return LLVMConstInt(r->et, r->is_max ? (unsigned long long)(int64_t)INT32_MIN : 0, 1);
    return LLVMConstReal(r->et, r->is_max ? -INFINITY : 0.0);
}

static LLVMValueRef identity_vec(const rctx *r)
{
    LLVMValueRef e[TJ_REDUCE_LANES];
    for (int l = 0; l < TJ_REDUCE_LANES; l++)
        e[l] = identity(r);
    return LLVMConstVector(e, TJ_REDUCE_LANES);
}

/* The shufflevector mask <first, first + 1, ..., first + n - 1>. */
static LLVMValueRef mask_range(const rctx *r, int first, int n)
{
    LLVMValueRef e[TJ_REDUCE_LANES];
    for (int l = 0; l < n; l++)
        e[l] = ci32(r, first + l);
    return LLVMConstVector(e, (unsigned)n);
}

/* COMBINE of reduce.h, lane by lane (a, v: scalars or vectors of T). */
static LLVMValueRef combine(const rctx *r, LLVMValueRef a, LLVMValueRef v)
{
    LLVMBuilderRef b = r->b;
    if (!r->is_max)   /* a + v; int32: (int32_t)((uint32_t)a + (uint32_t)v), i.e. add without nsw */
        return r->is_int ? LLVMBuildAdd(b, a, v, "sum") : LLVMBuildFAdd(b, a, v, "sum");
    if (r->is_int)    /* v > a ? v : a */
        return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, v, a, ""), v, a, "max");
    /* (v > a || v != v) ? v : a */
    LLVMValueRef gt = LLVMBuildFCmp(b, LLVMRealOGT, v, a, "");
    LLVMValueRef nan = LLVMBuildFCmp(b, LLVMRealUNO, v, v, "");
    LLVMValueRef c = LLVMBuildOr(b, gt, nan, "");
    return LLVMBuildSelect(b, c, v, a, "max");
}

/* &base[i] (base: a pointer to T) */
static LLVMValueRef at(const rctx *r, LLVMValueRef base, LLVMValueRef i)
{
    return LLVMBuildInBoundsGEP2(r->b, r->et, base, &i, 1, "");
}

static LLVMValueRef load(const rctx *r, LLVMTypeRef t, LLVMValueRef p, const char *name)
{
    LLVMValueRef v = LLVMBuildLoad2(r->b, t, p, name);
    LLVMSetAlignment(v, r->align);
    return v;
}

static void store(const rctx *r, LLVMValueRef v, LLVMValueRef p)
{
    LLVMSetAlignment(LLVMBuildStore(r->b, v, p), r->align);
}

static LLVMValueRef tree(const rctx *r, LLVMValueRef acc);

/* TJ_REDUCE_BLOCK_FN on p[0..n), 0 <= n <= TJ_REDUCE_BLOCK: returns the block's value. */
static LLVMValueRef emit_block(const rctx *r, LLVMValueRef p, int64_t n)
{
    LLVMBuilderRef b = r->b;
    const int L = TJ_REDUCE_LANES;
    int64_t groups = n / L;
    int rem = (int)(n % L);
    LLVMValueRef acc = identity_vec(r);

    /* for (; i + LANES <= n; i += LANES) acc[l] = COMBINE(acc[l], x[i + l]) */
    if (groups == 1) {
        LLVMValueRef pv = LLVMBuildBitCast(b, p, r->pvt, "");
        acc = combine(r, acc, load(r, r->vt, pv, "x"));
    } else if (groups > 1) {
        LLVMBasicBlockRef pre = LLVMGetInsertBlock(b);
        LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(r->ctx, r->fn, "red.group");
        LLVMBuildBr(b, body);
        LLVMPositionBuilderAtEnd(b, body);
        LLVMValueRef i = LLVMBuildPhi(b, r->i64, "red.i");
        LLVMValueRef a = LLVMBuildPhi(b, r->vt, "red.acc");
        LLVMValueRef pv = LLVMBuildBitCast(b, at(r, p, i), r->pvt, "");
        LLVMValueRef an = combine(r, a, load(r, r->vt, pv, "x"));
        LLVMValueRef in = LLVMBuildAdd(b, i, ci64(r, L), "");
        LLVMValueRef i_in[2] = {ci64(r, 0), in}, a_in[2] = {acc, an};
        LLVMBasicBlockRef bb_in[2] = {pre, body};
        LLVMAddIncoming(i, i_in, bb_in, 2);
        LLVMAddIncoming(a, a_in, bb_in, 2);
        LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(r->ctx, r->fn, "red.groups.done");
        LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, in, ci64(r, groups * L), ""), body, exit);
        LLVMPositionBuilderAtEnd(b, exit);
        acc = an;
    }

    /* for (l = 0; i + l < n; l++) acc[l] = COMBINE(acc[l], x[i + l]): the rem values go into
     * the low lanes of an identity vector; the combined lanes < rem replace acc's, the
     * others stay acc's as they were (the shuffle takes them from acc, not from the sum). */
    if (rem > 0) {
        LLVMValueRef v = identity_vec(r);
        for (int l = 0; l < rem; l++) {
            LLVMValueRef s = load(r, r->et, at(r, p, ci64(r, groups * L + l)), "xt");
            v = LLVMBuildInsertElement(b, v, s, ci32(r, l), "");
        }
        LLVMValueRef c = combine(r, acc, v);
        LLVMValueRef e[TJ_REDUCE_LANES];
        for (int l = 0; l < L; l++)
            e[l] = ci32(r, l < rem ? L + l : l);
        acc = LLVMBuildShuffleVector(b, acc, c, LLVMConstVector(e, L), "red.tail");
    }

    return tree(r, acc);
}

/* for (w = 8; w >= 1; w /= 2) acc[l] = COMBINE(acc[l], acc[l + w]), l < w: acc[0] */
static LLVMValueRef tree(const rctx *r, LLVMValueRef acc)
{
    LLVMBuilderRef b = r->b;
    for (int w = TJ_REDUCE_LANES / 2; w >= 2; w /= 2) {   /* acc: <2w x T> -> <w x T> */
        LLVMValueRef none = LLVMGetPoison(LLVMTypeOf(acc));
        LLVMValueRef lo = LLVMBuildShuffleVector(b, acc, none, mask_range(r, 0, w), "");
        LLVMValueRef hi = LLVMBuildShuffleVector(b, acc, none, mask_range(r, w, w), "");
        acc = combine(r, lo, hi);
    }
    LLVMValueRef a0 = LLVMBuildExtractElement(b, acc, ci32(r, 0), "");
    LLVMValueRef a1 = LLVMBuildExtractElement(b, acc, ci32(r, 1), "");
    return combine(r, a0, a1);
}

/* The blocks of src[0..n) (n > TJ_REDUCE_BLOCK) in order: dst[k] = block k's value.
 * dst may be src (reduce_values): block k is read before dst[k] is written, and
 * dst[k] < k * BLOCK lies in blocks already read. */
static void emit_blocks(const rctx *r, LLVMValueRef src, int64_t n, LLVMValueRef dst)
{
    const int64_t B = TJ_REDUCE_BLOCK;
    int64_t full = n / B, rem = n % B;
    if (full == 1) {
        store(r, emit_block(r, src, B), dst);
    } else if (full > 1) {
        tj_lower_loop l = tj_lower_loop_begin(r->b, r->fn, full, "red.block");
        LLVMValueRef off = LLVMBuildMul(r->b, l.iv, ci64(r, B), "");
        LLVMValueRef v = emit_block(r, at(r, src, off), B);
        store(r, v, at(r, dst, l.iv));
        tj_lower_loop_end(r->b, r->fn, &l, "red.blocks.done");
    }
    if (rem > 0)
        store(r, emit_block(r, at(r, src, ci64(r, full * B)), rem), at(r, dst, ci64(r, full)));
}

/* One output: *yo = the canonical reduction of xo[0..K). */
static void emit_output(const rctx *r, LLVMValueRef xo, LLVMValueRef yo, LLVMValueRef scratch, int64_t K)
{
    const int64_t B = TJ_REDUCE_BLOCK;
    if (K == 0) {
        store(r, identity(r), yo);
        return;
    }
    if (K <= B) {
        store(r, emit_block(r, xo, K), yo);
        return;
    }
    /* run_reduce: the block values into scratch; reduce_values: while there are more than
     * a block of them, reduce them block by block in place; then the last block. */
    emit_blocks(r, xo, K, scratch);
    int64_t n = (K + B - 1) / B;
    while (n > B) {
        emit_blocks(r, scratch, n, scratch);
        n = (n + B - 1) / B;
    }
    store(r, emit_block(r, scratch, n), yo);
}

static rctx rctx_for(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef fn, bool is_max, tj_dtype dt)
{
    rctx r = {.ctx = LLVMGetModuleContext(m), .b = b, .fn = fn, .is_max = is_max};
    r.i32 = LLVMInt32TypeInContext(r.ctx);
    r.i64 = LLVMInt64TypeInContext(r.ctx);
    switch (dt) {
    case TJ_F32: r.et = LLVMFloatTypeInContext(r.ctx); r.align = 4; break;
    case TJ_F64: r.et = LLVMDoubleTypeInContext(r.ctx); r.align = 8; break;
    case TJ_I32: r.et = r.i32; r.align = 4; r.is_int = true; break;
    }
    assert(r.et);
    r.vt = LLVMVectorType(r.et, TJ_REDUCE_LANES);
    r.pet = LLVMPointerType(r.et, 0);
    r.pvt = LLVMPointerType(r.vt, 0);
    return r;
}

LLVMValueRef tj_lower_reduce_identity(LLVMModuleRef m, bool is_max, tj_dtype dt)
{
    rctx r = rctx_for(m, NULL, NULL, is_max, dt);
    return identity_vec(&r);
}

LLVMValueRef tj_lower_reduce_combine(LLVMModuleRef m, LLVMBuilderRef b, bool is_max, tj_dtype dt, LLVMValueRef a,
                                     LLVMValueRef v)
{
    rctx r = rctx_for(m, b, NULL, is_max, dt);
    return combine(&r, a, v);
}

LLVMValueRef tj_lower_reduce_tree(LLVMModuleRef m, LLVMBuilderRef b, bool is_max, tj_dtype dt, LLVMValueRef acc)
{
    rctx r = rctx_for(m, b, NULL, is_max, dt);
    return tree(&r, acc);
}

void tj_lower_reduce(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef fn, bool is_max, tj_dtype dt,
                     LLVMValueRef x, LLVMValueRef y, LLVMValueRef scratch, int64_t nout, int64_t K)
{
    assert(m && b && fn && x && y && nout >= 0 && K >= 0);
    assert(K <= TJ_REDUCE_BLOCK || scratch);
    if (nout == 0)
        return;
    rctx r = rctx_for(m, b, fn, is_max, dt);
    /* typed pointers (LLVM 14): view the buffers as T*; with opaque pointers these are no-ops */
    x = LLVMBuildBitCast(b, x, r.pet, "");
    y = LLVMBuildBitCast(b, y, r.pet, "");
    if (scratch)
        scratch = LLVMBuildBitCast(b, scratch, r.pet, "");

    if (nout == 1) {
        emit_output(&r, x, y, scratch, K);
        return;
    }
    tj_lower_loop o = tj_lower_loop_begin(r.b, r.fn, nout, "red.out");
    LLVMValueRef xo = at(&r, x, LLVMBuildMul(b, o.iv, ci64(&r, K), ""));
    emit_output(&r, xo, at(&r, y, o.iv), scratch, K);
    tj_lower_loop_end(r.b, r.fn, &o, "red.out.done");
}
