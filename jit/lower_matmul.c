/* lower_matmul.c: runtime/ops/matmul_small.h as LLVM IR. Every output element is computed
 * in that header's order: acc = +0, then acc = fadd(acc, fmul(a[i,p], b[p,j])) for p
 * ascending; no intrinsics, no fast-math flags. How elements are grouped changes no bit: a
 * tile of rows x w columns runs one p loop with a <w x T> accumulator per row (independent
 * adds, so their latency overlaps); columns go in vectors of `lanes`, then one of each
 * narrower width, then a scalar column. The epilogue (the elementwise ops after the matmul)
 * runs on each tile's final rows (finish). If matmul_small.h changes, this file follows. */
#include "lower_matmul.h"

#include <assert.h>

#define ROWS 16   /* accumulators of a tile, at most */

typedef struct {
    LLVMContextRef ctx;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    LLVMTypeRef et, i32, i64;   /* T */
    unsigned align;             /* element size: every access is element-aligned */
    const tj_small_matmul *mm;
    const tj_matmul_epilogue *epi;
    LLVMValueRef t[TJ_MAX_DIMS], oc;   /* the batch loops' indices; the batch's offset in C */
} mctx;

static LLVMValueRef ci64(const mctx *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
static LLVMValueRef ci32(const mctx *c, int v) { return LLVMConstInt(c->i32, (unsigned long long)(int64_t)v, 1); }
static LLVMValueRef mul(const mctx *c, LLVMValueRef x, int64_t v) { return LLVMBuildMul(c->b, x, ci64(c, v), ""); }
static LLVMValueRef add(const mctx *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildAdd(c->b, x, y, ""); }

/* &base[i], base a pointer to T */
static LLVMValueRef at(const mctx *c, LLVMValueRef base, LLVMValueRef i) {
    return LLVMBuildInBoundsGEP2(c->b, c->et, base, &i, 1, "");
}

static LLVMTypeRef type_of(const mctx *c, int w) { return w > 1 ? LLVMVectorType(c->et, (unsigned)w) : c->et; }

/* *p as w lanes (a scalar when w == 1): typed pointers (LLVM 14) need the cast */
static LLVMValueRef load(const mctx *c, LLVMValueRef p, int w) {
    LLVMTypeRef t = type_of(c, w);
    LLVMValueRef v = LLVMBuildLoad2(c->b, t, LLVMBuildBitCast(c->b, p, LLVMPointerType(t, 0), ""), "");
    LLVMSetAlignment(v, c->align);
    return v;
}

static void store(const mctx *c, LLVMValueRef v, LLVMValueRef p, int w) {
    LLVMTypeRef t = type_of(c, w);
    LLVMSetAlignment(LLVMBuildStore(c->b, v, LLVMBuildBitCast(c->b, p, LLVMPointerType(t, 0), "")), c->align);
}

/* p[0], p[stride], ..., p[(w-1)*stride] as w lanes */
static LLVMValueRef load_lanes(const mctx *c, LLVMValueRef p, int64_t stride, int w) {
    if (w == 1 || stride == 1) return load(c, p, w);
    LLVMValueRef v = LLVMGetPoison(type_of(c, w));
    for (int l = 0; l < w; l++) v = LLVMBuildInsertElement(c->b, v, load(c, at(c, p, ci64(c, l * stride)), 1), ci32(c, l), "");
    return v;
}

static LLVMValueRef splat(const mctx *c, LLVMValueRef s, int w) {
    if (w == 1) return s;
    LLVMTypeRef t = type_of(c, w);
    LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetPoison(t), s, ci32(c, 0), "");
    return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(t), LLVMConstNull(LLVMVectorType(c->i32, (unsigned)w)), "");
}

tj_lower_loop tj_lower_loop_begin(LLVMBuilderRef b, LLVMValueRef fn, int64_t n, const char *name) {
    LLVMContextRef ctx = LLVMGetModuleContext(LLVMGetGlobalParent(fn));
    tj_lower_loop l = {.pre = LLVMGetInsertBlock(b), .n = n};
    l.body = LLVMAppendBasicBlockInContext(ctx, fn, name);
    LLVMBuildBr(b, l.body);
    LLVMPositionBuilderAtEnd(b, l.body);
    l.iv = LLVMBuildPhi(b, LLVMInt64TypeInContext(ctx), "i");
    return l;
}

void tj_lower_loop_end(LLVMBuilderRef b, LLVMValueRef fn, const tj_lower_loop *l, const char *exit_name) {
    LLVMContextRef ctx = LLVMGetModuleContext(LLVMGetGlobalParent(fn));
    LLVMTypeRef i64 = LLVMInt64TypeInContext(ctx);
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(b);
    LLVMValueRef next = LLVMBuildAdd(b, l->iv, LLVMConstInt(i64, 1, 0), "");
    LLVMValueRef iv_in[2] = {LLVMConstInt(i64, 0, 0), next};
    LLVMBasicBlockRef bb_in[2] = {l->pre, latch};
    LLVMAddIncoming(l->iv, iv_in, bb_in, 2);
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(ctx, fn, exit_name);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, next, LLVMConstInt(i64, (unsigned long long)l->n, 1), ""), l->body, exit);
    LLVMPositionBuilderAtEnd(b, exit);
}

typedef tj_lower_loop loop;

static loop loop_begin(const mctx *c, int64_t n, const char *name) { return tj_lower_loop_begin(c->b, c->fn, n, name); }
static void loop_end(const mctx *c, const loop *l) { tj_lower_loop_end(c->b, c->fn, l, "done"); }

/* iv of a loop over n: the constant 0 when n == 1 (no loop) */
static LLVMValueRef loop_iv(const mctx *c, loop *l, int64_t n, const char *name) {
    if (n == 1) return ci64(c, 0);
    *l = loop_begin(c, n, name);
    return l->iv;
}

static void loop_close(const mctx *c, const loop *l, int64_t n) {
    if (n > 1) loop_end(c, l);
}

LLVMValueRef tj_lower_entry_slot(LLVMBuilderRef b, LLVMValueRef fn, LLVMTypeRef t, const char *name) {
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(b), entry = LLVMGetEntryBasicBlock(fn);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first) LLVMPositionBuilderBefore(b, first);
    else LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef slot = LLVMBuildAlloca(b, t, name);
    LLVMPositionBuilderAtEnd(b, cur);
    return slot;
}

/* The epilogue on final row i (y[i, j .. j + w) = v, at index y of the batch). */
static void epilogue(const mctx *c, LLVMValueRef i, LLVMValueRef j, LLVMValueRef y, int w, LLVMValueRef v) {
    c->epi->fn(c->epi->ctx, c->t, i, j, add(c, c->oc, y), w, v);
}

/* A tile's final rows acc[r] = y[i0 + r, j .. j + w): stored (if C), then the epilogue on
 * each. Several rows pass through a stack array to one copy of the epilogue in a loop over
 * them, so its code grows with the tiles, not with their rows (LLVM unrolls the loop back
 * into registers where the epilogue is small). */
static void finish(const mctx *c, LLVMValueRef C, LLVMValueRef i0, int rows, LLVMValueRef j, int w,
                   const LLVMValueRef *acc) {
    LLVMTypeRef at_rows = LLVMArrayType(type_of(c, w), (unsigned)rows);
    LLVMValueRef slot = c->epi && rows > 1 ? tj_lower_entry_slot(c->b, c->fn, at_rows, "rows") : NULL;
    for (int r = 0; r < rows; r++) {
        LLVMValueRef i = add(c, i0, ci64(c, r)), y = add(c, mul(c, i, c->mm->n), j);   /* y[i, j] in the batch */
        LLVMValueRef idx[2] = {ci64(c, 0), ci64(c, r)};
        if (C) store(c, acc[r], at(c, C, y), w);
        if (slot) store(c, acc[r], LLVMBuildInBoundsGEP2(c->b, at_rows, slot, idx, 2, ""), w);
        else if (c->epi) epilogue(c, i, j, y, w, acc[r]);
    }
    if (!slot) return;
    loop l = loop_begin(c, rows, "mm.epilogue");
    LLVMValueRef idx[2] = {ci64(c, 0), l.iv}, i = add(c, i0, l.iv);
    epilogue(c, i, j, add(c, mul(c, i, c->mm->n), j), w, load(c, LLVMBuildInBoundsGEP2(c->b, at_rows, slot, idx, 2, ""), w));
    loop_end(c, &l);
}

/* y[i0 + r, j .. j + w) for r < rows: acc[r] = +0; for p: acc[r] = acc[r] + a[i0 + r, p] * b[p, j .. j + w) */
static void tile(const mctx *c, LLVMValueRef A, LLVMValueRef B, LLVMValueRef C, LLVMValueRef i0, int rows,
                 LLVMValueRef j, int w) {
    const tj_small_matmul *mm = c->mm;
    LLVMBuilderRef b = c->b;
    LLVMValueRef arow[ROWS], acc[ROWS];
    LLVMValueRef bj = at(c, B, mul(c, j, mm->bcs));
    for (int r = 0; r < rows; r++) {
        arow[r] = at(c, A, mul(c, add(c, i0, ci64(c, r)), mm->ars));
        acc[r] = LLVMConstNull(type_of(c, w));                          /* +0 */
    }
    if (mm->k > 0) {
        LLVMBasicBlockRef pre = LLVMGetInsertBlock(b), body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mm.p");
        LLVMBuildBr(b, body);
        LLVMPositionBuilderAtEnd(b, body);
        LLVMValueRef p = LLVMBuildPhi(b, c->i64, "p"), phi[ROWS], next[ROWS];
        for (int r = 0; r < rows; r++) phi[r] = LLVMBuildPhi(b, type_of(c, w), "acc");
        LLVMValueRef bv = load_lanes(c, at(c, bj, mul(c, p, mm->brs)), mm->bcs, w);
        for (int r = 0; r < rows; r++) {
            LLVMValueRef av = splat(c, load(c, at(c, arow[r], mul(c, p, mm->acs)), 1), w);
            next[r] = LLVMBuildFAdd(b, phi[r], LLVMBuildFMul(b, av, bv, ""), "");
        }
        LLVMValueRef pn = add(c, p, ci64(c, 1));
        LLVMBasicBlockRef latch = LLVMGetInsertBlock(b), bb_in[2] = {pre, latch};
        LLVMValueRef p_in[2] = {ci64(c, 0), pn};
        LLVMAddIncoming(p, p_in, bb_in, 2);
        for (int r = 0; r < rows; r++) {
            LLVMValueRef acc_in[2] = {acc[r], next[r]};
            LLVMAddIncoming(phi[r], acc_in, bb_in, 2);
            acc[r] = next[r];
        }
        LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mm.p.done");
        LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, pn, ci64(c, mm->k), ""), body, exit);
        LLVMPositionBuilderAtEnd(b, exit);
    }
    finish(c, C, i0, rows, j, w, acc);
}

/* Columns [j, j + w) of every row: tiles of 4 rows (4 vectors) or, for w < 4, of ROWS / w
 * (up to 16 scalars: enough independent adds in flight), then one tile of the rest. */
static void columns(const mctx *c, LLVMValueRef A, LLVMValueRef B, LLVMValueRef C, LLVMValueRef j, int w) {
    int rows = w >= 4 ? 4 : ROWS / w;
    int64_t full = c->mm->m / rows;
    int rest = (int)(c->mm->m % rows);
    if (full > 0) {
        loop l;
        LLVMValueRef iv = loop_iv(c, &l, full, "mm.rows");
        tile(c, A, B, C, mul(c, iv, rows), rows, j, w);
        loop_close(c, &l, full);
    }
    if (rest) tile(c, A, B, C, ci64(c, full * rows), rest, j, w);
}

/* One batch (A, B, C at its operands and output): vectors of lanes columns, then at most
 * one vector of each narrower width, then one scalar column. */
static void matrix(const mctx *c, LLVMValueRef A, LLVMValueRef B, LLVMValueRef C, int lanes) {
    int64_t n = c->mm->n, full = n / lanes, j = full * lanes;
    if (full > 0) {
        loop l;
        LLVMValueRef jv = loop_iv(c, &l, full, "mm.cols");
        columns(c, A, B, C, mul(c, jv, lanes), lanes);
        loop_close(c, &l, full);
    }
    for (int w = lanes / 2; w >= 1; w /= 2)
        if (n - j >= w) {
            columns(c, A, B, C, ci64(c, j), w);
            j += w;
        }
}

void tj_lower_small_matmul(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef fn, const tj_small_matmul *mm, int lanes,
                           LLVMValueRef A, LLVMValueRef B, LLVMValueRef C, const tj_matmul_epilogue *epi) {
    assert(mm->dtype != TJ_I32 && lanes >= 1 && (lanes & (lanes - 1)) == 0);
    int64_t stc = mm->m * mm->n;    /* the output's size; below, its stride along batch dim d */
    for (int d = 0; d < mm->batch.ndim; d++) stc *= mm->batch.dim[d];
    if (stc == 0) return;
    mctx c = {.ctx = LLVMGetModuleContext(m), .b = b, .fn = fn, .mm = mm, .epi = epi};
    c.i32 = LLVMInt32TypeInContext(c.ctx);
    c.i64 = LLVMInt64TypeInContext(c.ctx);
    c.et = mm->dtype == TJ_F64 ? LLVMDoubleTypeInContext(c.ctx) : LLVMFloatTypeInContext(c.ctx);
    c.align = mm->dtype == TJ_F64 ? 8 : 4;
    LLVMTypeRef pet = LLVMPointerType(c.et, 0);
    A = LLVMBuildBitCast(b, A, pet, "");
    B = LLVMBuildBitCast(b, B, pet, "");
    if (C) C = LLVMBuildBitCast(b, C, pet, "");
    /* batch loops (dims of size 1 have none), outermost first */
    int nb = mm->batch.ndim;
    loop l[TJ_MAX_DIMS];
    LLVMValueRef oa = ci64(&c, 0), ob = ci64(&c, 0), oc = ci64(&c, 0);
    for (int d = 0; d < nb; d++) {
        stc /= mm->batch.dim[d];
        LLVMValueRef iv = c.t[d] = loop_iv(&c, &l[d], mm->batch.dim[d], "mm.batch");
        oa = add(&c, oa, mul(&c, iv, mm->sta[d]));
        ob = add(&c, ob, mul(&c, iv, mm->stb[d]));
        oc = add(&c, oc, mul(&c, iv, stc));
    }
    c.oc = oc;
    matrix(&c, at(&c, A, oa), at(&c, B, ob), C ? at(&c, C, oc) : NULL, lanes);
    for (int d = nb - 1; d >= 0; d--) loop_close(&c, &l[d], mm->batch.dim[d]);
}
