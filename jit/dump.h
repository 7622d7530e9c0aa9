/* dump.h: deterministic text dumps of every stage of the compiled path (dump.c): the
 * trace, the optimised graph, the kernels ("fusion groups"), LLVM IR before and after
 * optimisation, the assembly, a Graphviz graph and the compile statistics, written as
 * <dir>/<function>/<signature>.<stage>. No addresses, no timestamps: two runs of the
 * same program write identical files (the .stats.txt file, with times, aside). */
#ifndef TJ_DUMP_H
#define TJ_DUMP_H

#include "graph.h"

enum {
    TJ_DUMP_TRACE = 1, TJ_DUMP_GRAPH = 2, TJ_DUMP_FUSION = 4, TJ_DUMP_LLVM = 8,
    TJ_DUMP_ASM = 16, TJ_DUMP_DOT = 32, TJ_DUMP_STATS = 64, TJ_DUMP_ALL = 127
};

/* "trace,graph,fusion,llvm,asm,dot,stats" or "all" -> bits; -1 (and an error) if unknown. */
int  tj_dump_parse(const char *list, unsigned *what);
/* The stages env TJ_DUMP asks for (0 if unset) and env TJ_DUMP_DIR (default "tj-dump"). */
unsigned    tj_dump_env(void);
const char *tj_dump_env_dir(void);

/* The trace, as recorded (before the passes): <dir>/<fname>/<sig>.trace.txt. */
int  tj_dump_trace(const char *dir, const char *fname, int sig, unsigned what, const tj_graph *g);

struct tj_lowered;
struct tj_compile_stats;
/* Everything after the passes: graph, fusion, llvm, llvm-opt, asm, dot, stats. low's
 * texts are present when what asks for llvm or asm. */
int  tj_dump_compiled(const char *dir, const char *fname, int sig, unsigned what, const tj_graph *g,
                      const bool *live, const struct tj_lowered *low, const struct tj_compile_stats *st,
                      size_t arena_bytes);

#endif
