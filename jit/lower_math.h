/* lower_math.h: exp, log, tanh and sigmoid as LLVM IR, the same operations as
 * runtime/math/tj_math.h (DESIGN principle 3: eager == compiled, bit for bit).
 * Each function emits, at b's position, straight-line IR on x: a float or double scalar,
 * or a fixed vector of them (any lane count), applied lane by lane. No blocks, no calls,
 * no intrinsics, no fast-math flags. Returns the result (x's type), or NULL if x's type
 * is none of those (a bug in the caller). m is the module b emits into. */
#ifndef TJ_JIT_LOWER_MATH_H
#define TJ_JIT_LOWER_MATH_H

#include <llvm-c/Core.h>

/* tj_m_expf / tj_m_exp, tj_m_logf / tj_m_log, tj_m_tanhf / tj_m_tanh, tj_m_sigmoidf / tj_m_sigmoid */
LLVMValueRef tj_lower_exp(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef tj_lower_log(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef tj_lower_tanh(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef tj_lower_sigmoid(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef x);

#endif
