/* lower.h: graph -> machine code (lower.c), through the engine (engine.h). */
#ifndef TJ_LOWER_H
#define TJ_LOWER_H

#include "lowered.h"
#include "engine.h"

/* Compiles the live nodes of g into kernels and step; 0 or an error (TJ_ERR_JIT, OOM).
 * With texts, also keeps the IR before and after optimisation and the assembly. */
int  tj_lower(const tj_graph *g, const bool *live, const char *name, int lanes, bool texts, tj_lowered *out);
void tj_lowered_free(tj_lowered *l);
/* The node is generated inline (an elementwise loop), not a call of its kernel. */
bool tj_lower_inline(const tj_graph *g, const tj_gnode *nd);
/* A sum/max over trailing axes (size-1 dims aside), generated inline in the canonical
 * order: nout outputs of K values each; it needs scratch for ceil(K / 4096) values
 * (calls[i] points at it). */
bool tj_lower_reduce_inline(const tj_graph *g, const tj_gnode *nd, int64_t *nout, int64_t *K);
/* The node shares its input's buffer (reshape, stop_gradient): no code. */
bool tj_lower_is_view(const tj_gnode *nd);

#endif
