/* lower_reduce.h: sum and max over contiguous sequences as LLVM IR, in the canonical order
 * of runtime/math/reduce.h (DESIGN principle 3: eager == compiled, bit for bit). */
#ifndef TJ_JIT_LOWER_REDUCE_H
#define TJ_JIT_LOWER_REDUCE_H

#include <stdbool.h>
#include <stdint.h>

#include <llvm-c/Core.h>
#include "core/core.h"      /* tj_dtype */

/* Emits at b's position (new blocks appended to fn; b ends positioned after them, in a block
 * without terminator):
 *   for o in [0, nout): y[o] = reduce(x[o*K], ..., x[o*K + K - 1])
 * in the canonical order of runtime/math/reduce.h, for sum (is_max false; int32 wraps) or
 * max (NaN-propagating; identities -inf / INT32_MIN), dtype dt (f32, f64, i32).
 * x, y, scratch are pointer values (any pointee type: they are used as pointers to dt);
 * scratch has room for ceil(K / TJ_REDUCE_BLOCK) elements of dt (used when
 * K > TJ_REDUCE_BLOCK for the block values; unused, and may be null, otherwise).
 * nout, K >= 0 are compile-time constants (K == 0: y[o] = the identity; nout == 0: nothing
 * is emitted). The IR holds no calls or intrinsics and no fast-math flags: a block is a
 * <16 x T> accumulator loop (TJ_REDUCE_LANES), the partial last group combined into its low
 * lanes only, and the fixed combine tree as shufflevectors + the combine op. */
void tj_lower_reduce(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef fn, bool is_max, tj_dtype dt,
                     LLVMValueRef x, LLVMValueRef y, LLVMValueRef scratch, int64_t nout, int64_t K);

/* The same rule in pieces, for a loop that computes the reduced values itself (lower.c):
 * the <16 x T> accumulator's start, lane-wise COMBINE(a, v) (vectors or scalars), and the
 * block's value from a full accumulator (the fixed tree). */
LLVMValueRef tj_lower_reduce_identity(LLVMModuleRef m, bool is_max, tj_dtype dt);
LLVMValueRef tj_lower_reduce_combine(LLVMModuleRef m, LLVMBuilderRef b, bool is_max, tj_dtype dt, LLVMValueRef a,
                                     LLVMValueRef v);
LLVMValueRef tj_lower_reduce_tree(LLVMModuleRef m, LLVMBuilderRef b, bool is_max, tj_dtype dt, LLVMValueRef acc);

#endif
