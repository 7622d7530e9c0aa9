/* bufplan.h: where a compiled step keeps its temporaries, planned by liveness, in plain C.
 * A node needs a buffer when a kernel stores its value (op nodes that are not views and
 * not kept in registers); an inline reduction also needs scratch while its kernel runs.
 * A buffer lives from the kernel that writes it to the last kernel that reads it
 * (outputs and state updates to the end of the step, where they are copied out); two
 * buffers share bytes only when their lives do not overlap, so a kernel never writes
 * over what it or a later kernel reads. */
#ifndef TJ_JIT_BUFPLAN_H
#define TJ_JIT_BUFPLAN_H

#include "lowered.h"

/* Offsets (bytes, multiples of 64) into one arena: off[i] for node i's value and
 * scratch[i] for its reduction scratch, -1 where none, -2 for a value outside the arena:
 * inplace[w] (per state write): written straight into the variable's storage; direct[i]
 * (per output): computed straight into the tensor the call returns (the caller points
 * those nodes at that data). share = false gives every buffer bytes of its own and keeps
 * every value in the arena (check mode reads every node's value after the step).
 * *bytes: the arena's size. 0 or TJ_ERR_OOM. */
int tj_buffer_plan(const tj_graph *g, const bool *live, const tj_lowered *low, bool share,
                   int64_t *off, int64_t *scratch, bool *inplace, bool *direct, size_t *bytes);

#endif
