/* engine.h: the process-wide ORC LLJIT and what IR-emitting code needs from it.
 * One LLJIT for the process, created on first use, disposed at exit (with LLVMShutdown).
 * Each tj_engine_add is one module under its own resource tracker; its external names are
 * private to it (the engine renames them before linking), so live modules may reuse names.
 * Every LLVM failure becomes tj_err(TJ_ERR_JIT, "jit: ..."); nothing here aborts or prints.
 * All functions are thread-safe; IR of one module must be built by one thread at a time. */
#ifndef TJ_JIT_ENGINE_H
#define TJ_JIT_ENGINE_H

#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>

#include "lowered.h"   /* tj_jit_code (one compiled module: its resource tracker), tj_compile_times */

/* 0, or TJ_ERR_JIT saying why the JIT cannot be used (no native target, LLVM error, bad
 * TJ_JIT_OPT, process exiting). Creates the LLJIT on first call; afterwards cheap. */
int  tj_engine_init(void);

/* Host facts, valid after a successful init (before: 4, "", "", "", 2).
 * Lanes: floats in the widest vector to emit: 16 with avx512f, 8 with avx2, else 4, from
 * the CPU's features as LLVM sees them (valgrind hides AVX-512: 8 there). */
int         tj_engine_vector_lanes(void);
const char *tj_engine_cpu(void);                 /* LLVM's name; "generic" for a model it
                                                    does not know (features still exact) */
const char *tj_engine_features(void);            /* "+avx512f,+avx2,...,-prefer-256-bit" */
const char *tj_engine_triple(void);              /* "x86_64-pc-linux-gnu" */
int         tj_engine_opt_level(void);           /* 0..3: env TJ_JIT_OPT, default 2 */
const char *tj_engine_pipeline(void);            /* LLVM's text of the IR passes of levels
                                                    1-3: env TJ_JIT_PIPELINE, else a light one */

/* Makes an absolute symbol callable from JIT code (runtime kernels, tj_blas_sgemm, powf).
 * Defining a name again with the same address is a no-op; with another address it is
 * TJ_ERR_JIT. Define a name before adding modules that call it: a name first resolved
 * from the process (libc, libm) cannot be redefined afterwards. */
int  tj_engine_define(const char *name, void *addr);

/* A fresh context + module whose triple and data layout match the JIT. On success the
 * caller owns both and hands them to tj_engine_add (or disposes mod, then tsc). */
int  tj_engine_module(const char *name, LLVMOrcThreadSafeContextRef *tsc, LLVMModuleRef *mod);

/* Verifies, optimises (tj_engine_pipeline; none at level 0) and emits the module as an object file,
 * links it under its own resource tracker and looks up n >= 1 of its external
 * definitions (names as written in the IR) into addrs. With env TJ_CACHE_DIR set and no
 * texts asked for, the object is first looked up in the cache (then nothing is optimised
 * or emitted: times->cached) and otherwise stored there; a cache that cannot be written
 * gives one warning and is skipped.
 * Takes ownership of tsc and mod in every case (also on error). On success *code owns the
 * machine code (tj_engine_free); times are filled if non-NULL. If ir_opt / asm_text are
 * non-NULL they receive the optimised IR / the assembly as text, with the names as
 * written (tj_mem_alloc'd: tj_mem_free(p, strlen(p) + 1)); they are set to NULL first, and
 * texts made before a failure are still returned, so a failed compile can be dumped.
 * On error *code is NULL and addrs are NULL. */
int  tj_engine_add(LLVMOrcThreadSafeContextRef tsc, LLVMModuleRef mod, int n,
                   const char *const *names, void **addrs, tj_jit_code **code,
                   tj_compile_times *times, char **ir_opt, char **asm_text);
/* The same at optimisation level 0..3 (level 0: no IR passes; 1-3: tj_engine_pipeline;
 * the matching codegen level), or -1 for the default (TJ_JIT_OPT). */
int  tj_engine_add_at(int level, LLVMOrcThreadSafeContextRef tsc, LLVMModuleRef mod, int n,
                      const char *const *names, void **addrs, tj_jit_code **code,
                      tj_compile_times *times, char **ir_opt, char **asm_text);

/* Compiles a small module at the default level and at 0, once per process (later calls
 * return at once), so that LLVM's lazily made static objects exist before a caller
 * registers an exit handler that waits for compiles on other threads. 0 or TJ_ERR_JIT. */
int  tj_engine_warm_up(void);

/* Removes the code (its resource tracker): its addresses become invalid. NULL ok.
 * Code still alive at exit is removed then; freeing its handle afterwards is fine. */
void tj_engine_free(tj_jit_code *code);

#endif
