/* lowered.h: what compiling a graph produces (lower.c), in plain C so that code without
 * LLVM (function.c in a TJ_JIT=OFF build, dump.c) can name it. */
#ifndef TJ_LOWERED_H
#define TJ_LOWERED_H

#include "graph.h"

typedef struct tj_jit_code tj_jit_code;          /* engine.h: one compiled module */
typedef struct tj_compile_times { double passes_ms, codegen_ms; } tj_compile_times;

/* bufs[i]: node i's data; calls[i]: node i's call record (function.c) when not inline. */
typedef void (*tj_step_fn)(void **bufs, void **calls);

/* A kernel: one generated function `k<node>_<op>` computing one node (a loop, a BLAS
 * call or a call of the op's kernel); step calls them in order. */
typedef struct tj_kernel {
    int node;
    char name[48];
    tj_step_fn fn;
} tj_kernel;

typedef struct tj_lowered {
    tj_jit_code *code;
    tj_step_fn step;
    tj_compile_times times;
    double ir_ms;         /* building the IR */
    int kernels;          /* kernels emitted */
    tj_kernel *kernel;    /* [kernels], in execution order (tj_lowered_free) */
    char *ir, *ir_opt, *asm_text;   /* texts, when asked for (dumps) */
} tj_lowered;

#endif
