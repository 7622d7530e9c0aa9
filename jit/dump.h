/* dump.h: deterministic text dumps of every stage of the compiled path (dump.c): the
 * trace, the optimised graph, the kernels ("fusion groups"), LLVM IR before and after
 * optimisation, the assembly, a Graphviz graph and the compile statistics, written as
 * <dir>/<function>/<signature>.<stage>. No addresses, no timestamps: two runs of the
 * same program write identical files (the .stats.txt file, with times, aside). */
#ifndef TJ_DUMP_H
#define TJ_DUMP_H

#include "graph.h"

/* The files of one signature sig (0, 1, ... in the order of tracing) of function fname,
 * under <dir>/<fname>/ (made as with mkdir -p; fname becomes one path component: bytes
 * other than [A-Za-z0-9._+-] turn into '_', and "", "." or ".." into "_"):
 *   <sig>.trace.txt   TJ_DUMP_TRACE: the signature (each input's dtype and shape, the number
 *                     of outputs), then one node a line, in trace order:
 *                       %12 = mul(%7, %11)  f32 (10, 32)  <- gradient of tanh (node 9)
 *                     attributes (axes=, perm=, axis=, begin=, dtype=, lo=/hi=...), the
 *                     origin after '<-' ("gradient of OP (node N)", "optimizer update of V",
 *                     none for the step's own ops); inputs, constants (with a preview of
 *                     their values) and variables read are nodes too; then the outputs and
 *                     the state written (variable <- node).
 *   <sig>.graph.txt   TJ_DUMP_GRAPH: the same after tj_graph_optimize: live nodes, inputs
 *                     through replacements, "%k = %j  (mul: an exact identity)" for replaced
 *                     nodes, "(folded OP)" on folded constants; dead nodes are counted only.
 *   <sig>.fusion.txt  TJ_DUMP_FUSION: each kernel in execution order: its ops (trace ids
 *                     and origins), kind (vector loop, reduction, BLAS call, kernel call;
 *                     views need no code), iteration space, inputs, output, users, bytes
 *                     and flops (estimates, defined in the file's header) and why the
 *                     group ends there.
 *   <sig>.llvm.ll, .llvm-opt.ll TJ_DUMP_LLVM: LLVM's IR before and after optimisation, each kernel's
 *                     define preceded by "; k12_mul: trace ids 12 (mul <- gradient of tanh,
 *                     node 9)"; <sig>.s (TJ_DUMP_ASM): the assembly, commented the same way.
 *   <sig>.dot         TJ_DUMP_DOT: Graphviz, the graph after the passes with one
 *                     "subgraph cluster_k<node>" per kernel (dot -Tsvg renders it).
 *   <sig>.stats.txt   TJ_DUMP_STATS: "key value" lines: trace_ms, graph_ms, ir_ms,
 *                     llvm_opt_ms, codegen_ms, total_ms, nodes, live_nodes, kernels,
 *                     peak_bytes (the arena). The only file with times.
 * Files of stages not asked for are left as they are. tools/tj-dump reads these files. */
enum {
    TJ_DUMP_TRACE = 1, TJ_DUMP_GRAPH = 2, TJ_DUMP_FUSION = 4, TJ_DUMP_LLVM = 8,
    TJ_DUMP_ASM = 16, TJ_DUMP_DOT = 32, TJ_DUMP_STATS = 64, TJ_DUMP_ALL = 127
};

/* "trace,graph,fusion,llvm,asm,dot,stats" or "all" (spaces allowed, "" is none) -> bits;
 * an unknown name is TJ_ERR_ARG naming it. */
int  tj_dump_parse(const char *list, unsigned *what);
/* The stages env TJ_DUMP asks for (0 if unset; unknown names are ignored with a one-time
 * warning) and env TJ_DUMP_DIR (default "tj-dump"). Both read the environment on every
 * call, so a change applies to the next signature traced. */
unsigned    tj_dump_env(void);
const char *tj_dump_env_dir(void);

/* The trace, as recorded (before the passes): <dir>/<fname>/<sig>.trace.txt, if what
 * asks for it. 0, TJ_ERR_IO naming the path, or TJ_ERR_OOM. */
int  tj_dump_trace(const char *dir, const char *fname, int sig, unsigned what, const tj_graph *g);

struct tj_lowered;
struct tj_compile_stats;
/* Everything after the passes that what asks for: graph, fusion, llvm (.llvm.ll and .llvm-opt.ll),
 * asm, dot, stats. live: tj_graph_live's marks; low's texts are present when what asks
 * for llvm or asm (low NULL: no fusion, llvm or asm files; the DOT graph has no clusters).
 * Every file asked for is attempted; the first error is returned (TJ_ERR_IO naming the
 * path, or TJ_ERR_OOM). */
int  tj_dump_compiled(const char *dir, const char *fname, int sig, unsigned what, const tj_graph *g,
                      const bool *live, const struct tj_lowered *low, const struct tj_compile_stats *st,
                      size_t arena_bytes);

#endif
