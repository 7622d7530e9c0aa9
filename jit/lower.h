/* lower.h: graph -> machine code (lower.c), through the engine (engine.h). */
#ifndef TJ_LOWER_H
#define TJ_LOWER_H

#include "lowered.h"
#include "engine.h"

/* Compiles the live nodes of g into kernels and step; 0 or an error (TJ_ERR_JIT, OOM).
 * With texts, also keeps the IR before and after optimisation and the assembly. */
int  tj_lower(const tj_graph *g, const bool *live, const char *name, int lanes, bool texts, tj_lowered *out);
void tj_lowered_free(tj_lowered *l);
#endif
