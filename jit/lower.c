/* lower.c: graph -> one LLVM function `void step(ptr bufs, ptr calls)`. bufs[i] is node
 * i's data (parameters, state and constants are filled in by the caller; views share
 * their input's pointer). Elementwise nodes become explicit vector loops whose arithmetic
 * mirrors the eager kernels (runtime/ops/<op>.c and math/tj_math.h via lower_math.c)
 * operation by operation, as do reductions (lower_reduce.c, or in the loop that makes
 * their input: lower_loop_rows, lower_loop_cols) and small matmuls
 * (lower_matmul.c, with the elementwise ops after them on each tile); larger matmuls call
 * BLAS (by pieces, each followed by the elementwise ops after it on that piece); every
 * other op calls its own eager kernel through tj_jit_call(calls[i]), so the
 * results are the eager results, bit for bit. */
#include "lower.h"
#include "lower_math.h"
#include "lower_matmul.h"
#include "lower_reduce.h"
#include "math/reduce.h"
#include "core/blas.h"

#include <stdio.h>
#include <string.h>

typedef struct lctx {
    const tj_graph *g;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn, bufs, calls;
    LLVMTypeRef ptr, i64, i32, f32, f64;
    LLVMValueRef call_fn;
    LLVMTypeRef call_ty;
    int lanes;            /* f32 lanes of a vector */
    LLVMValueRef mask;    /* the lanes a loop's vector loads and stores touch (NULL: all) */
} lctx;

static LLVMTypeRef elem_type(const lctx *c, tj_dtype dt) {
    switch (dt) {
    case TJ_F32: return c->f32;
    case TJ_F64: return c->f64;
    case TJ_I32: return c->i32;
    }
    return c->f32;
}

static LLVMValueRef cint(const lctx *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }

/* A constant of the type of x (scalar or vector), value v. */
static LLVMValueRef splat_const(LLVMTypeRef t, double v) {
    bool vec = LLVMGetTypeKind(t) == LLVMVectorTypeKind;
    LLVMTypeRef et = vec ? LLVMGetElementType(t) : t;
    LLVMValueRef s = LLVMGetTypeKind(et) == LLVMIntegerTypeKind
                   ? LLVMConstInt(et, (unsigned long long)(int64_t)v, 1) : LLVMConstReal(et, v);
    if (!vec) return s;
    unsigned n = LLVMGetVectorSize(t);
    LLVMValueRef e[64];
    for (unsigned i = 0; i < n; i++) e[i] = s;
    return LLVMConstVector(e, n);
}

static LLVMValueRef buf_ptr(lctx *c, int node) {
    LLVMValueRef idx = cint(c, node);
    LLVMValueRef slot = LLVMBuildGEP2(c->b, c->ptr, c->bufs, &idx, 1, "");
    return LLVMBuildLoad2(c->b, c->ptr, slot, "");
}

static LLVMValueRef intrinsic1(lctx *c, const char *name, LLVMValueRef x) {
    LLVMTypeRef t = LLVMTypeOf(x);
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, &t, 1);
    return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, &t, 1), f, &x, 1, "");
}

/* The op on values (scalars or vectors of one type), as the C kernel computes it. */
static LLVMValueRef ew_value(lctx *c, tj_op op, bool is_int, LLVMValueRef *x) {
    LLVMBuilderRef b = c->b;
    LLVMTypeRef t = LLVMTypeOf(x[op == TJ_OP_WHERE ? 1 : 0]);
    LLVMValueRef zero = splat_const(t, 0.0), one = splat_const(t, 1.0);
    switch (op) {
    case TJ_OP_ADD: return is_int ? LLVMBuildAdd(b, x[0], x[1], "") : LLVMBuildFAdd(b, x[0], x[1], "");
    case TJ_OP_SUB: return is_int ? LLVMBuildSub(b, x[0], x[1], "") : LLVMBuildFSub(b, x[0], x[1], "");
    case TJ_OP_MUL: return is_int ? LLVMBuildMul(b, x[0], x[1], "") : LLVMBuildFMul(b, x[0], x[1], "");
    case TJ_OP_DIV: return LLVMBuildFDiv(b, x[0], x[1], "");   /* int32 division is a call */
    case TJ_OP_MAXIMUM:
    case TJ_OP_MINIMUM: {
        bool mx = op == TJ_OP_MAXIMUM;
        if (is_int) return LLVMBuildSelect(b, LLVMBuildICmp(b, mx ? LLVMIntSGT : LLVMIntSLT, x[0], x[1], ""), x[0], x[1], "");
        /* (x0 > x1 || x0 != x0) ? x0 : x1 */
        LLVMValueRef gt = LLVMBuildFCmp(b, mx ? LLVMRealOGT : LLVMRealOLT, x[0], x[1], "");
        LLVMValueRef nan = LLVMBuildFCmp(b, LLVMRealUNO, x[0], x[0], "");
        return LLVMBuildSelect(b, LLVMBuildOr(b, gt, nan, ""), x[0], x[1], "");
    }
    case TJ_OP_GREATER:
    case TJ_OP_LESS:
    case TJ_OP_EQUAL: {
        LLVMValueRef cmp = is_int
            ? LLVMBuildICmp(b, op == TJ_OP_GREATER ? LLVMIntSGT : op == TJ_OP_LESS ? LLVMIntSLT : LLVMIntEQ, x[0], x[1], "")
            : LLVMBuildFCmp(b, op == TJ_OP_GREATER ? LLVMRealOGT : op == TJ_OP_LESS ? LLVMRealOLT : LLVMRealOEQ, x[0], x[1], "");
        return LLVMBuildSelect(b, cmp, one, zero, "");
    }
    case TJ_OP_WHERE: {   /* cond != 0 ? a : b  (a NaN condition is true, as in C) */
        LLVMValueRef cz = splat_const(LLVMTypeOf(x[0]), 0.0);
        LLVMValueRef cond = is_int ? LLVMBuildICmp(b, LLVMIntNE, x[0], cz, "") : LLVMBuildFCmp(b, LLVMRealUNE, x[0], cz, "");
        return LLVMBuildSelect(b, cond, x[1], x[2], "");
    }
    case TJ_OP_NEG: return is_int ? LLVMBuildSub(b, zero, x[0], "") : LLVMBuildFNeg(b, x[0], "");
    case TJ_OP_EXP: return tj_lower_exp(c->mod, b, x[0]);
    case TJ_OP_LOG: return tj_lower_log(c->mod, b, x[0]);
    case TJ_OP_TANH: return tj_lower_tanh(c->mod, b, x[0]);
    case TJ_OP_SIGMOID: return tj_lower_sigmoid(c->mod, b, x[0]);
    case TJ_OP_SQRT: return intrinsic1(c, "llvm.sqrt", x[0]);
    case TJ_OP_ABS: {
        if (is_int)
            return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, x[0], zero, ""), LLVMBuildSub(b, zero, x[0], ""), x[0], "");
        /* x0 < 0 ? -x0 : x0 == 0 ? 0 : x0 */
        LLVMValueRef inner = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOEQ, x[0], zero, ""), zero, x[0], "");
        return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x[0], zero, ""), LLVMBuildFNeg(b, x[0], ""), inner, "");
    }
    case TJ_OP_RELU: {
        LLVMValueRef neg = is_int ? LLVMBuildICmp(b, LLVMIntSLT, x[0], zero, "") : LLVMBuildFCmp(b, LLVMRealOLT, x[0], zero, "");
        return LLVMBuildSelect(b, neg, zero, x[0], "");
    }
    case TJ_OP_POW: case TJ_OP_CAST: case TJ_OP_MATMUL: case TJ_OP_SUM: case TJ_OP_MAX: case TJ_OP_ARGMAX:
    case TJ_OP_RESHAPE: case TJ_OP_TRANSPOSE: case TJ_OP_BROADCAST: case TJ_OP_CONCAT: case TJ_OP_SLICE:
    case TJ_OP_GATHER: case TJ_OP_SCATTER_ADD: case TJ_OP_RAND_UNIFORM: case TJ_OP_RAND_NORMAL:
    case TJ_OP_STOP_GRADIENT: case TJ_OP_COUNT:
        break;   /* not inline (tj_lower_inline) */
    }
    return NULL;
}

/* cast (runtime/ops/cast.c): fpext, fptrunc, sitofp; to int32 as tj_f2i on the value
 * widened to double: NaN -> 0, >= 2147483647 -> INT32_MAX, <= -2147483648 -> INT32_MIN. */
static LLVMValueRef cast_value(lctx *c, LLVMValueRef x, tj_dtype from, tj_dtype to, LLVMTypeRef rt) {
    LLVMBuilderRef b = c->b;
    bool vec = LLVMGetTypeKind(rt) == LLVMVectorTypeKind;
    unsigned n = vec ? LLVMGetVectorSize(rt) : 1;
    LLVMTypeRef dty = vec ? LLVMVectorType(c->f64, n) : c->f64;
    if (to == TJ_I32) {
        LLVMValueRef d = from == TJ_F32 ? LLVMBuildFPExt(b, x, dty, "") : x;
        LLVMValueRef r = LLVMBuildFPToSI(b, d, rt, "");
        r = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLE, d, splat_const(dty, -2147483648.0), ""), splat_const(rt, INT32_MIN), r, "");
        r = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGE, d, splat_const(dty, 2147483647.0), ""), splat_const(rt, INT32_MAX), r, "");
        return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, d, d, ""), splat_const(rt, 0), r, "");
    }
    if (from == TJ_I32) return LLVMBuildSIToFP(b, x, rt, "");
    return from == TJ_F32 ? LLVMBuildFPExt(b, x, rt, "") : LLVMBuildFPTrunc(b, x, rt, "");
}

/* The value of node nd from its input values x (rt: the result's type). */
static LLVMValueRef node_value(lctx *c, const tj_gnode *nd, tj_dtype in_dt, bool is_int, LLVMValueRef *x, LLVMTypeRef rt) {
    if (nd->op == TJ_OP_CAST) return cast_value(c, x[0], in_dt, nd->dtype, rt);
    return ew_value(c, nd->op, is_int, x);
}

/* for (iv = 0; iv < n; iv += step) body: returns iv; *exit gets the block after. */
typedef struct loop { LLVMBasicBlockRef head, body, latch, exit; LLVMValueRef iv; } loop;

static loop loop_begin(lctx *c, LLVMValueRef start, LLVMValueRef end, const char *name) {
    loop l;
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
    l.head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, name);
    l.body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "body");
    l.exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "exit");
    LLVMBuildBr(c->b, l.head);
    LLVMPositionBuilderAtEnd(c->b, l.head);
    l.iv = LLVMBuildPhi(c->b, c->i64, "i");
    LLVMAddIncoming(l.iv, &start, &pre, 1);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, l.iv, end, ""), l.body, l.exit);
    LLVMPositionBuilderAtEnd(c->b, l.body);
    return l;
}

static void loop_end(lctx *c, loop *l, LLVMValueRef step) {
    LLVMValueRef next = LLVMBuildAdd(c->b, l->iv, step, "");
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(l->iv, &next, &cur, 1);
    LLVMBuildBr(c->b, l->head);
    LLVMPositionBuilderAtEnd(c->b, l->exit);
}

static LLVMValueRef gep(lctx *c, LLVMTypeRef et, LLVMValueRef base, LLVMValueRef idx) {
    return LLVMBuildGEP2(c->b, et, base, &idx, 1, "");
}

static LLVMValueRef load(lctx *c, LLVMTypeRef t, LLVMValueRef p, unsigned align) {
    LLVMValueRef v = LLVMBuildLoad2(c->b, t, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static void store(lctx *c, LLVMValueRef v, LLVMValueRef p, unsigned align) {
    LLVMSetAlignment(LLVMBuildStore(c->b, v, p), align);
}

/* llvm.masked.load / llvm.masked.store of vector type vt under c->mask */
static LLVMValueRef masked_intrinsic(lctx *c, const char *name, LLVMTypeRef vt, LLVMTypeRef *fty) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef over[2] = {vt, c->ptr};
    *fty = LLVMIntrinsicGetType(c->ctx, id, over, 2);
    return LLVMGetIntrinsicDeclaration(c->mod, id, over, 2);
}

/* A loop's load or store of an element or a vector: a vector only in the lanes of c->mask
 * when one is set (a masked load gives +0 in the others; nothing reads past the lanes). */
static LLVMValueRef vload(lctx *c, LLVMTypeRef t, LLVMValueRef p, unsigned align) {
    if (!c->mask || LLVMGetTypeKind(t) != LLVMVectorTypeKind) return load(c, t, p, align);
    LLVMTypeRef fty;
    LLVMValueRef f = masked_intrinsic(c, "llvm.masked.load", t, &fty);
    LLVMValueRef args[4] = {p, LLVMConstInt(c->i32, align, 0), c->mask, LLVMConstNull(t)};
    return LLVMBuildCall2(c->b, fty, f, args, 4, "");
}

static void vstore(lctx *c, LLVMValueRef v, LLVMValueRef p, unsigned align) {
    if (!c->mask || LLVMGetTypeKind(LLVMTypeOf(v)) != LLVMVectorTypeKind) { store(c, v, p, align); return; }
    LLVMTypeRef fty;
    LLVMValueRef f = masked_intrinsic(c, "llvm.masked.store", LLVMTypeOf(v), &fty);
    LLVMValueRef args[4] = {v, p, LLVMConstInt(c->i32, align, 0), c->mask};
    LLVMBuildCall2(c->b, fty, f, args, 4, "");
}


/* What a fused loop reads and writes (one elementwise op or a run of them, one shape). */
typedef struct loopio {
    tj_loop_dims e;
    int lanes;
    LLVMTypeRef ket[TJ_GROUP_MAX_IN], kvt[TJ_GROUP_MAX_IN];
    unsigned kesz[TJ_GROUP_MAX_IN];
    LLVMValueRef base[TJ_GROUP_MAX_IN], off[TJ_GROUP_MAX_IN];
    LLVMValueRef rowp[TJ_GROUP_MAX_IN], scalar[TJ_GROUP_MAX_IN], splat[TJ_GROUP_MAX_IN];
    LLVMValueRef outb[TJ_GROUP_MAX], oofs;   /* stored values' buffers (else NULL), row offset */
} loopio;

/* lanes: the vectors' lanes, or 0 for the machine's f32 lanes, half as many if the loop
 * computes or reads any f64 (at least one) */
static void loop_io(lctx *c, const tj_kernel *k, const bool *stored, int lanes, loopio *io) {
    const tj_graph *g = c->g;
    tj_kernel_loop_dims(g, k, &io->e);
    if (lanes == 0) {
        bool wide = false;
        for (int m = 0; m < k->nops; m++) wide = wide || g->nodes[k->ops[m]].dtype == TJ_F64;
        for (int j = 0; j < io->e.nin; j++) wide = wide || g->nodes[io->e.in[j]].dtype == TJ_F64;
        lanes = wide ? c->lanes / 2 : c->lanes;
        if (lanes < 1) lanes = 1;
    }
    io->lanes = lanes;
    for (int j = 0; j < io->e.nin; j++) {
        tj_dtype dt = g->nodes[io->e.in[j]].dtype;
        io->ket[j] = elem_type(c, dt);
        io->kvt[j] = LLVMVectorType(io->ket[j], (unsigned)lanes);
        io->kesz[j] = (unsigned)tj_dtype_size(dt);
        io->base[j] = buf_ptr(c, io->e.in[j]);
        io->off[j] = cint(c, 0);
    }
    for (int m = 0; m < k->nops; m++) io->outb[m] = m >= k->nrecomputed && stored[k->ops[m]] ? buf_ptr(c, k->ops[m]) : NULL;
    io->oofs = cint(c, 0);
}

/* s in each of w lanes (s itself when w == 1) */
static LLVMValueRef splat_value(lctx *c, LLVMValueRef s, int w) {
    if (w == 1) return s;
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), (unsigned)w);
    LLVMValueRef undef = LLVMGetUndef(vt), zero = LLVMConstInt(c->i32, 0, 0);
    return LLVMBuildShuffleVector(c->b, LLVMBuildInsertElement(c->b, undef, s, zero, ""), undef,
                                  LLVMConstNull(LLVMVectorType(c->i32, (unsigned)w)), "");
}

/* The mask of the first n (0 < n < w, an i64 value) of w lanes. */
static LLVMValueRef first_lanes(lctx *c, LLVMValueRef n, int w) {
    LLVMValueRef idx[64];
    for (int l = 0; l < w; l++) idx[l] = LLVMConstInt(c->i32, (unsigned long long)l, 0);
    LLVMValueRef n32 = splat_value(c, LLVMBuildTrunc(c->b, n, c->i32, ""), w);
    return LLVMBuildICmp(c->b, LLVMIntSLT, LLVMConstVector(idx, (unsigned)w), n32, "");
}

/* At a row's start: each input's pointer, and the one value of an input broadcast along it. */
static void row_start(lctx *c, loopio *io) {
    int nd = io->e.nd;
    for (int j = 0; j < io->e.nin; j++) {
        io->rowp[j] = gep(c, io->ket[j], io->base[j], io->off[j]);
        if (io->e.st[j][nd - 1] != 0) continue;
        io->scalar[j] = load(c, io->ket[j], io->rowp[j], io->kesz[j]);
        io->splat[j] = splat_value(c, io->scalar[j], io->lanes);
    }
}

/* Ops [from, nops) of k on one element (w == 1) or a vector of w, in order, exactly as the
 * eager kernels compute them one op at a time: an op's inputs are val[] of the ops before
 * it (also through views: tj_kernel_loop_read) or in_val[j] of e->in[j]; val[m] gets op
 * m's value, written at element `at` of outb[m] where that is set (a stored value). */
static void op_values(lctx *c, const tj_kernel *k, int from, const tj_loop_dims *e, const LLVMValueRef *in_val, int w,
                      const LLVMValueRef *outb, LLVMValueRef at, LLVMValueRef *val) {
    const tj_graph *g = c->g;
    for (int m = from; m < k->nops; m++) {
        const tj_gnode *n = &g->nodes[k->ops[m]];
        LLVMValueRef x[3];
        tj_dtype in_dt = n->dtype;
        for (int q = 0; q < n->nin; q++) {
            int id = tj_kernel_loop_read(g, k, n->in[q]);
            int pm = -1;
            for (int p = 0; p < m && pm < 0; p++) if (k->ops[p] == id) pm = p;
            if (pm >= 0) x[q] = val[pm];
            else for (int j = 0; j < e->nin; j++) if (e->in[j] == id) x[q] = in_val[j];
            if (q == 0) in_dt = g->nodes[id].dtype;
        }
        LLVMTypeRef et = elem_type(c, n->dtype);
        val[m] = node_value(c, n, in_dt, n->dtype == TJ_I32, x, w > 1 ? LLVMVectorType(et, (unsigned)w) : et);
        if (outb[m]) vstore(c, val[m], gep(c, et, outb[m], at), (unsigned)tj_dtype_size(n->dtype));
    }
}

/* Element iv of the row (a vector of lanes from iv, or one): every op of the loop (val[m]
 * gets op m's value); stores the stored values. */
static void elements(lctx *c, const tj_kernel *k, const loopio *io, LLVMValueRef iv, bool vec, LLVMValueRef *val) {
    int nd = io->e.nd;
    LLVMValueRef in_val[TJ_GROUP_MAX_IN], row_out[TJ_GROUP_MAX];
    for (int j = 0; j < io->e.nin; j++)
        in_val[j] = io->e.st[j][nd - 1] ? vload(c, vec ? io->kvt[j] : io->ket[j], gep(c, io->ket[j], io->rowp[j], iv), io->kesz[j])
                                        : vec ? io->splat[j] : io->scalar[j];
    for (int m = 0; m < k->nops; m++)
        row_out[m] = io->outb[m] ? gep(c, elem_type(c, c->g->nodes[k->ops[m]].dtype), io->outb[m], io->oofs) : NULL;
    op_values(c, k, 0, &io->e, in_val, vec ? io->lanes : 1, row_out, iv, val);
}

/* The rest of a row, [from, to) with fewer than w elements, if any, as one vector of w under
 * a lane mask (c->mask, which vload and vstore obey): opens a block that runs only then, and
 * there computes every op of the loop (val[m], as elements). tail_end closes it. */
static LLVMBasicBlockRef tail_begin(lctx *c, const tj_kernel *k, const loopio *io, LLVMValueRef from, LLVMValueRef to, int w,
                                    LLVMValueRef *val) {
    LLVMValueRef rest = LLVMBuildSub(c->b, to, from, "");
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tail");
    LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "after");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, rest, cint(c, 0), ""), then, after);
    LLVMPositionBuilderAtEnd(c->b, then);
    c->mask = first_lanes(c, rest, w);
    elements(c, k, io, from, true, val);
    return after;
}

static void tail_end(lctx *c, LLVMBasicBlockRef after) {
    c->mask = NULL;
    LLVMBuildBr(c->b, after);
    LLVMPositionBuilderAtEnd(c->b, after);
}

/* A fused loop: outer dims as scalar loops (the outermost over [lo, hi), a piece of the
 * work), the innermost as vectors and, for the rest of a row, one vector under a lane mask.
 * Values used only in the loop stay in registers, the others are stored (stored[]). */
static void lower_loop(lctx *c, const tj_kernel *k, const bool *stored) {
    const tj_graph *g = c->g;
    if (g->nodes[k->node].numel == 0) return;
    loopio io;
    loop_io(c, k, stored, 0, &io);
    const tj_loop_dims *e = &io.e;
    int lanes = io.lanes;
    int64_t inner = e->dim[e->nd - 1];
    LLVMValueRef lo = LLVMGetParam(c->fn, 2), hi = LLVMGetParam(c->fn, 3);
    loop outer[TJ_MAX_DIMS];
    for (int d = 0; d < e->nd - 1; d++) {
        outer[d] = d == 0 ? loop_begin(c, lo, hi, "row") : loop_begin(c, cint(c, 0), cint(c, e->dim[d]), "row");
        int64_t ostride = 1;
        for (int q = d + 1; q < e->nd; q++) ostride *= e->dim[q];
        io.oofs = LLVMBuildAdd(c->b, io.oofs, LLVMBuildMul(c->b, outer[d].iv, cint(c, ostride), ""), "");
        for (int j = 0; j < e->nin; j++)
            io.off[j] = LLVMBuildAdd(c->b, io.off[j], LLVMBuildMul(c->b, outer[d].iv, cint(c, e->st[j][d]), ""), "");
    }
    row_start(c, &io);
    /* a one-dimensional loop runs over elements [lo, hi) itself */
    LLVMValueRef from = e->nd == 1 ? lo : cint(c, 0), to = e->nd == 1 ? hi : cint(c, inner);
    LLVMValueRef span = LLVMBuildSub(c->b, to, from, "");
    LLVMValueRef vec_end = LLVMBuildSub(c->b, to, LLVMBuildSRem(c->b, span, cint(c, lanes), ""), "");
    LLVMValueRef val[TJ_GROUP_MAX];
    loop l = loop_begin(c, from, vec_end, "vec");
    elements(c, k, &io, l.iv, true, val);
    loop_end(c, &l, cint(c, lanes));
    tail_end(c, tail_begin(c, k, &io, vec_end, to, lanes, val));
    for (int d = e->nd - 2; d >= 0; d--) loop_end(c, &outer[d], cint(c, 1));
}

/* A fused loop that also computes reductions of its values (k->reduced) over its rows of K
 * (TJ_REDUCE_ROWS, tj_kernel_loop_reduce): over block indices [lo, hi), block p being block
 * p mod nb of row p / nb (nb blocks a row). Within a block, lane l of a <16 x T>
 * accumulator takes the values at l mod 16 in order, as math/reduce.h's rule does, so
 * vectors are 16 lanes whatever the machine's (LLVM splits them); the block's last values
 * (fewer than 16) are one vector under a mask, combined into their own lanes only. Each
 * block's value (the fixed tree) goes to the reduction's scratch at p; the reduction's
 * kernel combines each row's. */
typedef struct acc { const tj_gnode *red; int in; bool is_max; LLVMTypeRef et, vt; unsigned align; LLVMValueRef slot, scratch; } acc;

/* a[r] for each reduction r of loop k: its node, the op of k it reads, and its accumulator
 * (a stack slot of type slot_type(T, n)) and scratch (calls[node]). */
static void accumulators(lctx *c, const tj_kernel *k, LLVMTypeRef (*slot_type)(LLVMTypeRef, unsigned), unsigned n, acc *a) {
    const tj_graph *g = c->g;
    for (int r = 0; r < k->nreduced; r++) {
        acc *ar = &a[r];
        ar->red = &g->nodes[k->reduced[r]];
        ar->is_max = ar->red->op == TJ_OP_MAX;
        ar->in = -1;
        int x = tj_kernel_loop_read(g, k, ar->red->in[0]);      /* a value of the loop, maybe through views */
        for (int m = 0; m < k->nops && ar->in < 0; m++) if (k->ops[m] == x) ar->in = m;
        ar->et = elem_type(c, ar->red->dtype);
        ar->vt = LLVMVectorType(ar->et, TJ_REDUCE_LANES);
        ar->align = (unsigned)tj_dtype_size(ar->red->dtype);
        ar->slot = tj_lower_entry_slot(c->b, c->fn, slot_type(ar->et, n), "acc");
        LLVMValueRef idx = cint(c, k->reduced[r]);
        ar->scratch = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildGEP2(c->b, c->ptr, c->calls, &idx, 1, ""), "");
    }
}

/* Row `row` of the loop, of len elements (rows_fit in kernels.c): in a flat loop every
 * input moves with it (stride 1) or not at all; in rows of len, by the input's row stride. */
static void row_at(lctx *c, loopio *io, LLVMValueRef row, int64_t len) {
    for (int j = 0; j < io->e.nin; j++)
        io->off[j] = LLVMBuildMul(c->b, row, cint(c, io->e.nd == 1 ? io->e.st[j][0] * len : io->e.st[j][0]), "");
    io->oofs = LLVMBuildMul(c->b, row, cint(c, len), "");
    row_start(c, io);
}

/* Each reduction's accumulator (a <16 x T> slot, or the vector at[r] in it) combined with
 * its value's vector in val; only in the lanes of mask when one is given (the others keep
 * their values, so a block's last values go into their own lanes). */
static void accumulate(lctx *c, const tj_kernel *k, const acc *a, const LLVMValueRef *val, const LLVMValueRef *at,
                       LLVMValueRef mask) {
    for (int r = 0; r < k->nreduced; r++) {
        LLVMValueRef p = at ? at[r] : a[r].slot, v = load(c, LLVMTypeOf(val[a[r].in]), p, a[r].align);
        LLVMValueRef x = tj_lower_reduce_combine(c->mod, c->b, a[r].is_max, a[r].red->dtype, v, val[a[r].in]);
        store(c, mask ? LLVMBuildSelect(c->b, mask, x, v, "") : x, p, a[r].align);
    }
}

static void lower_loop_rows(lctx *c, const tj_kernel *k, const bool *stored) {
    const tj_graph *g = c->g;
    const int L = TJ_REDUCE_LANES;
    int64_t nout, K;
    tj_kernel_loop_reduce(g, k, &nout, &K, NULL);
    int64_t nb = tj_kernel_reduce_blocks(g, &g->nodes[k->reduced[0]]);
    loopio io;
    loop_io(c, k, stored, L, &io);
    acc a[TJ_LOOP_REDUCE_MAX];
    accumulators(c, k, LLVMVectorType, (unsigned)L, a);
    LLVMValueRef val[TJ_GROUP_MAX];
    loop blk = loop_begin(c, LLVMGetParam(c->fn, 2), LLVMGetParam(c->fn, 3), "block");
    row_at(c, &io, LLVMBuildSDiv(c->b, blk.iv, cint(c, nb), ""), K);
    LLVMValueRef start = LLVMBuildMul(c->b, LLVMBuildSRem(c->b, blk.iv, cint(c, nb), ""), cint(c, TJ_REDUCE_BLOCK), "");
    LLVMValueRef next = LLVMBuildAdd(c->b, start, cint(c, TJ_REDUCE_BLOCK), "");
    LLVMValueRef end = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, next, cint(c, K), ""), next, cint(c, K), "");
    LLVMValueRef vec_end = LLVMBuildSub(c->b, end, LLVMBuildSRem(c->b, LLVMBuildSub(c->b, end, start, ""), cint(c, L), ""), "");
    for (int r = 0; r < k->nreduced; r++)
        store(c, tj_lower_reduce_identity(c->mod, a[r].is_max, a[r].red->dtype), a[r].slot, a[r].align);
    loop l = loop_begin(c, start, vec_end, "vec");   /* groups of 16 */
    elements(c, k, &io, l.iv, true, val);
    accumulate(c, k, a, val, NULL, NULL);
    loop_end(c, &l, cint(c, L));
    LLVMBasicBlockRef after = tail_begin(c, k, &io, vec_end, end, L, val);   /* fewer than 16 */
    accumulate(c, k, a, val, NULL, c->mask);
    tail_end(c, after);
    for (int r = 0; r < k->nreduced; r++) {
        LLVMValueRef v = tj_lower_reduce_tree(c->mod, c->b, a[r].is_max, a[r].red->dtype, load(c, a[r].vt, a[r].slot, a[r].align));
        store(c, v, gep(c, elem_type(c, a[r].red->dtype), a[r].scratch, blk.iv), a[r].align);
    }
    loop_end(c, &blk, cint(c, 1));
}

/* A fused loop that also computes column reductions of its values (TJ_REDUCE_COLS: for each
 * outer index o, K rows of n): over pieces [lo, hi) of TJ_REDUCE_COLS_PIECE columns of
 * each o, each running its K rows in order, a row's columns in vectors of the machine's lanes, the last ones under a mask. Row k's
 * values go into lane k mod 16 of their columns' accumulators (acc[lane][column], on the
 * stack), as math/reduce.h's column form does; then the fixed tree over the lanes leaves
 * each column's value in acc[0], which goes to the reduction's scratch. */
_Static_assert(TJ_REDUCE_COLS_PIECE % TJ_REDUCE_LANES == 0, "a piece is whole vectors of 16");

static void lower_loop_cols(lctx *c, const tj_kernel *k, const bool *stored) {
    const tj_graph *g = c->g;
    const int64_t L = TJ_REDUCE_LANES;
    int64_t nout, K, n;
    tj_kernel_loop_reduce(g, k, &nout, &K, &n);
    int64_t P = n < TJ_REDUCE_COLS_PIECE ? (n + L - 1) / L * L : TJ_REDUCE_COLS_PIECE;   /* the columns a piece holds */
    int64_t npieces = (n + TJ_REDUCE_COLS_PIECE - 1) / TJ_REDUCE_COLS_PIECE;             /* of each outer index */
    loopio io;
    loop_io(c, k, stored, 0, &io);
    int64_t w = io.lanes;
    acc a[TJ_LOOP_REDUCE_MAX];
    accumulators(c, k, LLVMArrayType, (unsigned)(L * P), a);
    LLVMValueRef val[TJ_GROUP_MAX];
    loop pc = loop_begin(c, LLVMGetParam(c->fn, 2), LLVMGetParam(c->fn, 3), "piece");
    LLVMValueRef o = LLVMBuildSDiv(c->b, pc.iv, cint(c, npieces), "outer");      /* rows o K .. o K + K - 1 */
    LLVMValueRef j0 = LLVMBuildMul(c->b, LLVMBuildSRem(c->b, pc.iv, cint(c, npieces), ""), cint(c, TJ_REDUCE_COLS_PIECE), "");
    LLVMValueRef j1 = LLVMBuildAdd(c->b, j0, cint(c, P), "");
    j1 = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, j1, cint(c, n), ""), j1, cint(c, n), "");
    LLVMValueRef vec_end = LLVMBuildSub(c->b, j1, LLVMBuildSRem(c->b, LLVMBuildSub(c->b, j1, j0, ""), cint(c, w), ""), "");
    loop q = loop_begin(c, cint(c, 0), cint(c, L * P), "identity");   /* every accumulator at the identity */
    for (int r = 0; r < k->nreduced; r++)
        store(c, tj_lower_reduce_identity(c->mod, a[r].is_max, a[r].red->dtype), gep(c, a[r].et, a[r].slot, q.iv), a[r].align);
    loop_end(c, &q, cint(c, L));
    loop rk = loop_begin(c, cint(c, 0), cint(c, K), "row");
    row_at(c, &io, LLVMBuildAdd(c->b, LLVMBuildMul(c->b, o, cint(c, K), ""), rk.iv, ""), n);
    LLVMValueRef lane = LLVMBuildMul(c->b, LLVMBuildSRem(c->b, rk.iv, cint(c, L), ""), cint(c, P), "");
    LLVMValueRef at[TJ_LOOP_REDUCE_MAX];
    loop l = loop_begin(c, j0, vec_end, "vec");
    elements(c, k, &io, l.iv, true, val);
    for (int r = 0; r < k->nreduced; r++) at[r] = gep(c, a[r].et, a[r].slot, LLVMBuildAdd(c->b, lane, LLVMBuildSub(c->b, l.iv, j0, ""), ""));
    accumulate(c, k, a, val, at, NULL);
    loop_end(c, &l, cint(c, w));
    LLVMBasicBlockRef after = tail_begin(c, k, &io, vec_end, j1, (int)w, val);   /* fewer than w columns */
    for (int r = 0; r < k->nreduced; r++) at[r] = gep(c, a[r].et, a[r].slot, LLVMBuildAdd(c->b, lane, LLVMBuildSub(c->b, vec_end, j0, ""), ""));
    accumulate(c, k, a, val, at, c->mask);
    tail_end(c, after);
    loop_end(c, &rk, cint(c, 1));
    loop t = loop_begin(c, cint(c, 0), cint(c, P), "tree");     /* the tree, 16 columns at a time */
    for (int r = 0; r < k->nreduced; r++)
        for (int64_t h = L / 2; h >= 1; h /= 2)
            for (int64_t ln = 0; ln < h; ln++) {
                LLVMValueRef pa = gep(c, a[r].et, a[r].slot, LLVMBuildAdd(c->b, t.iv, cint(c, ln * P), ""));
                LLVMValueRef pb = gep(c, a[r].et, a[r].slot, LLVMBuildAdd(c->b, t.iv, cint(c, (ln + h) * P), ""));
                store(c, tj_lower_reduce_combine(c->mod, c->b, a[r].is_max, a[r].red->dtype, load(c, a[r].vt, pa, a[r].align),
                                                 load(c, a[r].vt, pb, a[r].align)), pa, a[r].align);
            }
    loop_end(c, &t, cint(c, L));
    LLVMValueRef out = LLVMBuildMul(c->b, o, cint(c, n), "");   /* acc[0]: the columns' values, at o n + j */
    loop oj = loop_begin(c, j0, j1, "out");
    for (int r = 0; r < k->nreduced; r++)
        store(c, load(c, a[r].et, gep(c, a[r].et, a[r].slot, LLVMBuildSub(c->b, oj.iv, j0, "")), a[r].align),
              gep(c, a[r].et, a[r].scratch, LLVMBuildAdd(c->b, out, oj.iv, "")), a[r].align);
    loop_end(c, &oj, cint(c, 1));
    loop_end(c, &pc, cint(c, 1));
}

/* A matmul by BLAS: tj_blas_?gemm per batch, the routine eager calls (core/blas.h). */
static void lower_matmul(lctx *c, int id) {
    const tj_gnode *nd = &c->g->nodes[id];
    int r = nd->shape.ndim, trans;
    int64_t m = nd->shape.dim[r - 2], n = nd->shape.dim[r - 1], k = tj_kernel_matmul_k(c->g, nd, &trans);
    int64_t nbatch = nd->numel / (m * n);
    bool f32 = nd->dtype == TJ_F32;
    LLVMTypeRef et = f32 ? c->f32 : c->f64;
    LLVMTypeRef args[7] = {c->i32, c->i64, c->i64, c->i64, c->ptr, c->ptr, c->ptr};
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), args, 7, 0);
    const char *name = f32 ? "tj_blas_sgemm" : "tj_blas_dgemm";
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (!fn) fn = LLVMAddFunction(c->mod, name, fty);
    LLVMValueRef A = buf_ptr(c, tj_graph_resolve(c->g, nd->in[0])), B = buf_ptr(c, tj_graph_resolve(c->g, nd->in[1]));
    LLVMValueRef C = buf_ptr(c, id);
    for (int64_t bi = 0; bi < nbatch; bi++) {
        LLVMValueRef av[7] = {LLVMConstInt(c->i32, (unsigned long long)trans, 0), cint(c, m), cint(c, n), cint(c, k),
                              gep(c, et, A, cint(c, bi * m * k)), gep(c, et, B, cint(c, bi * k * n)),
                              gep(c, et, C, cint(c, bi * m * n))};
        LLVMBuildCall2(c->b, fty, fn, av, 7, "");
    }
}

/* A matmul's epilogue (ops[1..] of its kernel) on a row y[t; i, j .. j + w) of a small
 * matmul's tile (lower_matmul.h) or of a BLAS piece: its other inputs' elements there, by
 * their strides along the output's dims (batch..., m, n), then the ops as a loop computes
 * them, storing stored values at the flat index at. */
typedef struct epilogue {
    lctx *c;
    const tj_kernel *k;
    tj_loop_dims e;                       /* unfolded: e.nd is the output's rank */
    LLVMValueRef base[TJ_GROUP_MAX_IN], outb[TJ_GROUP_MAX];
} epilogue;

static void epilogue_row(void *ctx, const LLVMValueRef *t, LLVMValueRef i, LLVMValueRef j, LLVMValueRef at, int w,
                         LLVMValueRef y) {
    epilogue *ep = ctx;
    lctx *c = ep->c;
    const tj_loop_dims *e = &ep->e;
    int r = e->nd;
    LLVMValueRef in_val[TJ_GROUP_MAX_IN], val[TJ_GROUP_MAX];
    for (int q = 0; q < e->nin; q++) {
        const int64_t *st = e->st[q];
        LLVMValueRef off = LLVMBuildMul(c->b, i, cint(c, st[r - 2]), "");
        off = LLVMBuildAdd(c->b, off, LLVMBuildMul(c->b, j, cint(c, st[r - 1]), ""), "");
        for (int d = 0; d < r - 2; d++) off = LLVMBuildAdd(c->b, off, LLVMBuildMul(c->b, t[d], cint(c, st[d]), ""), "");
        tj_dtype dt = c->g->nodes[e->in[q]].dtype;
        LLVMTypeRef et = elem_type(c, dt);
        LLVMValueRef p = gep(c, et, ep->base[q], off);
        unsigned align = (unsigned)tj_dtype_size(dt);
        in_val[q] = st[r - 1] ? load(c, w > 1 ? LLVMVectorType(et, (unsigned)w) : et, p, align)   /* st[r - 1] is 1 */
                              : splat_value(c, load(c, et, p, align), w);
    }
    val[0] = y;
    op_values(c, ep->k, 1, e, in_val, w, ep->outb, at, val);
}

/* A small matmul inline (lower_matmul.c): vectors of c->lanes f32 or half as many f64; its
 * value is stored only if read outside the kernel. */
static void lower_small_matmul(lctx *c, const tj_kernel *k, const bool *stored) {
    tj_small_matmul mm;
    tj_kernel_small_matmul(c->g, &c->g->nodes[k->node], &mm);
    int lanes = mm.dtype == TJ_F64 ? c->lanes / 2 : c->lanes;
    epilogue ep = {.c = c, .k = k};
    tj_matmul_epilogue hook = {epilogue_row, &ep};
    tj_kernel_loop_inputs(c->g, k, &ep.e);
    for (int q = 0; q < ep.e.nin; q++) ep.base[q] = buf_ptr(c, ep.e.in[q]);
    for (int m = 1; m < k->nops; m++) ep.outb[m] = stored[k->ops[m]] ? buf_ptr(c, k->ops[m]) : NULL;
    tj_lower_small_matmul(c->mod, c->b, c->fn, &mm, lanes > 0 ? lanes : 1, buf_ptr(c, mm.a), buf_ptr(c, mm.b),
                          stored[k->node] ? buf_ptr(c, k->node) : NULL, k->nops > 1 ? &hook : NULL);
}

/* A BLAS call with its epilogue: for each p in [lo, hi), piece t = p % npieces
 * (tj_blas_pieces) of batch bi = p / npieces, the piece's product by the routine eager's
 * call for that batch runs (tj_blas_?gemm_piece on A, B, C at the batch: bi*m*k, bi*k*n,
 * bi*m*n, as eager's kernel passes them), then the epilogue on the piece's rows while they
 * are in cache: vectors of c->lanes f32 (half as many f64) along each row, then single
 * elements. The epilogue's batch indices t[] are bi over the output's batch dims, row-major,
 * and its flat index at counts from the output's start, as a small matmul's does. */
static void lower_blas_epilogue(lctx *c, const tj_kernel *k, const bool *stored) {
    const tj_gnode *nd = &c->g->nodes[k->node];
    int r = nd->shape.ndim, a = tj_graph_resolve(c->g, nd->in[0]), trans;
    int64_t m = nd->shape.dim[r - 2], n = nd->shape.dim[r - 1], kk = tj_kernel_matmul_k(c->g, nd, &trans), pm, pn;
    int64_t npieces = tj_blas_pieces(m, n, &pm, &pn);
    bool f32 = nd->dtype == TJ_F32;
    LLVMTypeRef et = f32 ? c->f32 : c->f64;
    int w = f32 ? c->lanes : c->lanes / 2;
    if (w < 1) w = 1;
    unsigned align = f32 ? 4 : 8;
    LLVMTypeRef args[8] = {c->i32, c->i64, c->i64, c->i64, c->ptr, c->ptr, c->ptr, c->i64};
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), args, 8, 0);
    const char *name = f32 ? "tj_blas_sgemm_piece" : "tj_blas_dgemm_piece";
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (!fn) fn = LLVMAddFunction(c->mod, name, fty);
    LLVMValueRef A = buf_ptr(c, a), B = buf_ptr(c, tj_graph_resolve(c->g, nd->in[1])), C = buf_ptr(c, k->node);
    epilogue ep = {.c = c, .k = k};
    tj_kernel_loop_inputs(c->g, k, &ep.e);
    for (int q = 0; q < ep.e.nin; q++) ep.base[q] = buf_ptr(c, ep.e.in[q]);
    for (int o = 1; o < k->nops; o++) ep.outb[o] = stored[k->ops[o]] ? buf_ptr(c, k->ops[o]) : NULL;
    loop pl = loop_begin(c, LLVMGetParam(c->fn, 2), LLVMGetParam(c->fn, 3), "piece");
    LLVMValueRef bi = LLVMBuildSDiv(c->b, pl.iv, cint(c, npieces), "batch");
    LLVMValueRef t = LLVMBuildSRem(c->b, pl.iv, cint(c, npieces), "");
    LLVMValueRef bt[TJ_MAX_DIMS];                 /* bi row-major over dims 0 .. r-3 */
    int64_t inner = 1;
    for (int d = r - 3; d >= 0; d--) {
        bt[d] = nd->shape.dim[d] == 1 ? cint(c, 0)
              : LLVMBuildSRem(c->b, LLVMBuildSDiv(c->b, bi, cint(c, inner), ""), cint(c, nd->shape.dim[d]), "");
        inner *= nd->shape.dim[d];
    }
    LLVMValueRef Ab = gep(c, et, A, LLVMBuildMul(c->b, bi, cint(c, m * kk), ""));
    LLVMValueRef Bb = gep(c, et, B, LLVMBuildMul(c->b, bi, cint(c, kk * n), ""));
    LLVMValueRef oc = LLVMBuildMul(c->b, bi, cint(c, m * n), "");   /* the batch's offset in C */
    LLVMValueRef Cb = gep(c, et, C, oc);
    LLVMValueRef av[8] = {LLVMConstInt(c->i32, (unsigned long long)trans, 0), cint(c, m), cint(c, n), cint(c, kk), Ab, Bb, Cb, t};
    LLVMBuildCall2(c->b, fty, fn, av, 8, "");
    bool rows = pm < m;                           /* else the piece is columns */
    LLVMValueRef lo = LLVMBuildMul(c->b, t, cint(c, rows ? pm : pn), ""), dim = cint(c, rows ? m : n);
    LLVMValueRef end = LLVMBuildAdd(c->b, lo, cint(c, rows ? pm : pn), "");
    end = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, end, dim, ""), end, dim, "");
    LLVMValueRef i0 = rows ? lo : cint(c, 0), i1 = rows ? end : cint(c, m);
    LLVMValueRef j0 = rows ? cint(c, 0) : lo, j1 = rows ? cint(c, n) : end;
    LLVMValueRef nvec = LLVMBuildSDiv(c->b, LLVMBuildSub(c->b, j1, j0, ""), cint(c, w), "");
    LLVMValueRef jtail = LLVMBuildAdd(c->b, j0, LLVMBuildMul(c->b, nvec, cint(c, w), ""), "");
    loop li = loop_begin(c, i0, i1, "row");
    LLVMValueRef row = LLVMBuildAdd(c->b, oc, LLVMBuildMul(c->b, li.iv, cint(c, n), ""), "");
    for (int tail = 0; tail < 2; tail++) {        /* vectors, then single elements */
        int ww = tail ? 1 : w;
        loop lj = loop_begin(c, tail ? jtail : cint(c, 0), tail ? j1 : nvec, tail ? "col" : "vec");
        LLVMValueRef j = tail ? lj.iv : LLVMBuildAdd(c->b, j0, LLVMBuildMul(c->b, lj.iv, cint(c, w), ""), "");
        LLVMValueRef at = LLVMBuildAdd(c->b, row, j, "");
        LLVMValueRef y = load(c, ww > 1 ? LLVMVectorType(et, (unsigned)ww) : et, gep(c, et, C, at), align);
        epilogue_row(&ep, bt, li.iv, j, at, ww, y);
        loop_end(c, &lj, cint(c, 1));
    }
    loop_end(c, &li, cint(c, 1));
    loop_end(c, &pl, cint(c, 1));
}

/* A reduction; one that finishes a loop's work combines the loop's block values. */
static void lower_reduce(lctx *c, const tj_kernel *k) {
    const tj_gnode *nd = &c->g->nodes[k->node];
    int64_t nout, K;
    tj_kernel_reduce_form(c->g, nd, &nout, &K, NULL);
    LLVMValueRef idx = cint(c, k->node);
    LLVMValueRef scratch = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildGEP2(c->b, c->ptr, c->calls, &idx, 1, ""), "");
    if (k->from_loop >= 0)   /* at most TJ_REDUCE_BLOCK an output (kernels.c): no scratch needed */
        tj_lower_reduce(c->mod, c->b, c->fn, nd->op == TJ_OP_MAX, nd->dtype, scratch, buf_ptr(c, k->node), NULL, nout,
                        tj_kernel_reduce_blocks(c->g, nd));
    else
        tj_lower_reduce(c->mod, c->b, c->fn, nd->op == TJ_OP_MAX, nd->dtype, buf_ptr(c, tj_graph_resolve(c->g, nd->in[0])),
                        buf_ptr(c, k->node), scratch, nout, K);
}

static void lower_call(lctx *c, int id) {
    LLVMValueRef idx = cint(c, id);
    LLVMValueRef rec = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildGEP2(c->b, c->ptr, c->calls, &idx, 1, ""), "");
    LLVMBuildCall2(c->b, c->call_ty, c->call_fn, &rec, 1, "");
}

static char *dup_text(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = tj_mem_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void tj_lowered_free(tj_lowered *l) {
    tj_engine_free(l->code);
    tj_mem_free(l->kernel, sizeof(tj_kernel) * (size_t)l->kernels);
    tj_mem_free(l->stored, sizeof(bool) * (size_t)(l->nnodes ? l->nnodes : 1));
    char *texts[3] = {l->ir, l->ir_opt, l->asm_text};
    for (int i = 0; i < 3; i++)
        if (texts[i]) tj_mem_free(texts[i], strlen(texts[i]) + 1);
    memset(l, 0, sizeof *l);
}

int tj_lower(const tj_graph *g, const bool *live, const char *name, int lanes, int level, bool texts, tj_lowered *out) {
    memset(out, 0, sizeof *out);
    LLVMOrcThreadSafeContextRef tsc;
    LLVMModuleRef mod;
    double t0 = tj_now_ms();
    int rc = tj_engine_module(name, &tsc, &mod);
    if (rc) return rc;
    lctx c = {.g = g, .mod = mod, .ctx = LLVMGetModuleContext(mod), .lanes = lanes};
    c.ptr = LLVMPointerType(LLVMInt8TypeInContext(c.ctx), 0);
    c.i64 = LLVMInt64TypeInContext(c.ctx);
    c.i32 = LLVMInt32TypeInContext(c.ctx);
    c.f32 = LLVMFloatTypeInContext(c.ctx);
    c.f64 = LLVMDoubleTypeInContext(c.ctx);
    LLVMTypeRef params[4] = {c.ptr, c.ptr, c.i64, c.i64};
    LLVMTypeRef sty = LLVMFunctionType(LLVMVoidTypeInContext(c.ctx), params, 2, 0);    /* step */
    LLVMTypeRef kty = LLVMFunctionType(LLVMVoidTypeInContext(c.ctx), params, 4, 0);    /* kernels */
    c.call_ty = LLVMFunctionType(LLVMVoidTypeInContext(c.ctx), &c.ptr, 1, 0);
    c.call_fn = LLVMAddFunction(mod, "tj_jit_call", c.call_ty);
    c.b = LLVMCreateBuilderInContext(c.ctx);
    int nk = 0;
    bool *stored = out->stored = tj_mem_alloc(sizeof(bool) * (size_t)(g->n ? g->n : 1));
    out->nnodes = g->n;
    rc = stored ? tj_kernel_plan(g, live, &out->kernel, &nk, stored) : TJ_ERR_OOM;
    out->kernels = nk;
    const char **names = tj_mem_alloc(sizeof(char *) * (size_t)(nk + 1));
    void **addr = tj_mem_alloc(sizeof(void *) * (size_t)(nk + 1));
    LLVMValueRef *kfn = tj_mem_alloc(sizeof(LLVMValueRef) * (size_t)(nk ? nk : 1));
    if (rc || !names || !addr || !kfn) {
        rc = TJ_ERR_OOM;
        LLVMDisposeBuilder(c.b);
        LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        goto done;
    }
    out->kernels = nk;
    /* one noinline function per kernel, so dumps and profiles can name it */
    unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
    for (int ki = 0; ki < nk; ki++) {
        tj_kernel *k = &out->kernel[ki];
        c.fn = kfn[ki] = LLVMAddFunction(mod, k->name, kty);
        LLVMAddAttributeAtIndex(c.fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c.ctx, noinline, 0));
        c.bufs = LLVMGetParam(c.fn, 0);
        c.calls = LLVMGetParam(c.fn, 1);
        LLVMPositionBuilderAtEnd(c.b, LLVMAppendBasicBlockInContext(c.ctx, c.fn, "entry"));
        int64_t nout, K;
        tj_reduce_form rf = tj_kernel_loop_reduce(g, k, &nout, &K, NULL);
        switch (tj_kernel_kind_at(g, k)) {
        case TJ_KERNEL_LOOP:
            (rf == TJ_REDUCE_ROWS ? lower_loop_rows : rf == TJ_REDUCE_COLS ? lower_loop_cols : lower_loop)(&c, k, stored);
            break;
        case TJ_KERNEL_REDUCE: lower_reduce(&c, k); break;
        case TJ_KERNEL_SMALL_MATMUL: lower_small_matmul(&c, k, stored); break;
        case TJ_KERNEL_BLAS: if (k->nops > 1) lower_blas_epilogue(&c, k, stored); else lower_matmul(&c, k->node); break;
        case TJ_KERNEL_CALL: lower_call(&c, k->node); break;
        case TJ_KERNEL_VIEW: break;
        }
        LLVMBuildRetVoid(c.b);
        names[ki] = k->name;
    }
    /* step: the kernels in order */
    LLVMValueRef step = LLVMAddFunction(mod, "step", sty);
    LLVMPositionBuilderAtEnd(c.b, LLVMAppendBasicBlockInContext(c.ctx, step, "entry"));
    for (int k = 0; k < out->kernels; k++) {
        LLVMValueRef args[4] = {LLVMGetParam(step, 0), LLVMGetParam(step, 1), cint(&c, 0), cint(&c, out->kernel[k].range)};
        LLVMBuildCall2(c.b, kty, kfn[k], args, 4, "");
    }
    LLVMBuildRetVoid(c.b);
    LLVMDisposeBuilder(c.b);
    names[out->kernels] = "step";
    out->ir_ms = tj_now_ms() - t0;
    if (texts) {
        char *s = LLVMPrintModuleToString(mod);
        out->ir = dup_text(s);
        LLVMDisposeMessage(s);
    }
    /* tj_engine_add owns tsc and mod from here, also on failure */
    rc = tj_engine_add_at(level, tsc, mod, out->kernels + 1, names, addr, &out->code, &out->times,
                       texts ? &out->ir_opt : NULL, texts ? &out->asm_text : NULL);
    if (rc == 0) {
        for (int k = 0; k < out->kernels; k++) out->kernel[k].fn = (tj_kernel_fn)(uintptr_t)addr[k];
        out->step = (tj_step_fn)(uintptr_t)addr[out->kernels];
    }
done:
    tj_mem_free(names, sizeof(char *) * (size_t)(nk + 1));
    tj_mem_free(addr, sizeof(void *) * (size_t)(nk + 1));
    tj_mem_free(kfn, sizeof(LLVMValueRef) * (size_t)(nk ? nk : 1));
    return rc;
}
