/* lower_matmul.h: a small matmul (kernels.c, tj_small_matmul) as inline LLVM IR, in the order
 * of runtime/ops/matmul_small.h (eager == compiled, bit for bit). */
#ifndef TJ_JIT_LOWER_MATMUL_H
#define TJ_JIT_LOWER_MATMUL_H

#include <llvm-c/Core.h>
#include "lowered.h"

/* Emits at b's position (new blocks appended to fn; b ends positioned after them, in a block
 * without terminator) every batch of mm: y[i,j] = +0, then y[i,j] + a[i,p]*b[p,j] for p
 * ascending (fmul, then fadd; no intrinsics, no fast-math flags), columns in <lanes x T>
 * vectors (lanes a power of two), the last columns in narrower vectors and scalars.
 * A, B, C are pointer values: the buffers of nodes mm->a, mm->b and of the matmul. */
void tj_lower_small_matmul(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef fn, const tj_small_matmul *mm, int lanes,
                           LLVMValueRef A, LLVMValueRef B, LLVMValueRef C);

#endif
