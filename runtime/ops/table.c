/* table.c: the dispatch table, generated from ops.def. */
#include "op.h"

const tj_op_info *const tj_ops[TJ_OP_COUNT] = {
#define X(E, name, kind) [TJ_OP_##E] = &tj_op_##name,
#include "ops.def"
#undef X
};
