/* lower_matmul.h: a small matmul (kernels.c, tj_small_matmul) as inline LLVM IR, in the order
 * of runtime/ops/matmul_small.h (eager == compiled, bit for bit). */
#ifndef TJ_JIT_LOWER_MATMUL_H
#define TJ_JIT_LOWER_MATMUL_H

#include <llvm-c/Core.h>
#include "lowered.h"

/* What runs on each row of an output tile once its values are final: fn(ctx, t, i, j, at, w, y)
 * with y = y[t; i, j .. j + w) (a <w x T> vector, or a T when w == 1), t[d] the index along
 * batch dim d (mm->batch.ndim of them) and at = the flat index of y[t; i, j] in the output.
 * It emits at the builder's position and may add blocks, ending in one without terminator. */
typedef struct tj_matmul_epilogue {
    void (*fn)(void *ctx, const LLVMValueRef *t, LLVMValueRef i, LLVMValueRef j, LLVMValueRef at, int w, LLVMValueRef y);
    void *ctx;
} tj_matmul_epilogue;

/* Emits at b's position (new blocks appended to fn; b ends positioned after them, in a block
 * without terminator) every batch of mm: y[i,j] = +0, then y[i,j] + a[i,p]*b[p,j] for p
 * ascending (fmul, then fadd; no intrinsics, no fast-math flags), columns in <lanes x T>
 * vectors (lanes a power of two), the last columns in narrower vectors and scalars.
 * A, B, C are pointer values: the buffers of nodes mm->a, mm->b and of the matmul (NULL:
 * y is not stored); epi (or NULL) then runs on each row of each tile. */
void tj_lower_small_matmul(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef fn, const tj_small_matmul *mm, int lanes,
                           LLVMValueRef A, LLVMValueRef B, LLVMValueRef C, const tj_matmul_epilogue *epi);

/* A counted loop `for (iv = 0; iv < n; iv++)` with n >= 2 known, as one do-while in fn: the
 * body starts at the builder's position after tj_lower_loop_begin and ends where
 * tj_lower_loop_end is called, which leaves the builder in a new block exit_name. */
typedef struct { LLVMBasicBlockRef pre, body; LLVMValueRef iv; int64_t n; } tj_lower_loop;
tj_lower_loop tj_lower_loop_begin(LLVMBuilderRef b, LLVMValueRef fn, int64_t n, const char *name);
void tj_lower_loop_end(LLVMBuilderRef b, LLVMValueRef fn, const tj_lower_loop *l, const char *exit_name);

/* A stack slot of type t in fn's entry block (LLVM promotes it to registers), for b's
 * current function; b stays where it was. */
LLVMValueRef tj_lower_entry_slot(LLVMBuilderRef b, LLVMValueRef fn, LLVMTypeRef t, const char *name);

#endif
