/* lower.h: graph -> machine code (lower.c), through the engine (engine.h). */
#ifndef TJ_LOWER_H
#define TJ_LOWER_H

#include "lowered.h"
#include "engine.h"

/* Compiles the live nodes of g into kernels and step at optimisation level `level` (0..3,
 * -1: the default); 0 or an error (TJ_ERR_JIT, OOM). With texts, also keeps the IR before
 * and after optimisation and the assembly. The kernel plan depends on g only, so two
 * compiles of one graph at two levels have the same kernels, buffers and call records. */
int  tj_lower(const tj_graph *g, const bool *live, const char *name, int lanes, int level, bool texts, tj_lowered *out);
void tj_lowered_free(tj_lowered *l);
#endif
