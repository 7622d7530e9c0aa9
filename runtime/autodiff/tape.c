/* tape.c: gradient tapes. A tape owns a slot bit; a value is tracked by a tape when its
 * bit is set on the tensor (watched, or the output of a recorded op with a tracked
 * input); variables are tracked by every recording tape. tj_record appends one node per
 * tape that tracks an input. The backward pass walks the nodes in reverse and calls each
 * op's gradient rule, which uses ops, so another tape may record it (higher order); it
 * frees its temporaries as it goes, and only the sources' gradients join the caller's scope.
 * A tape holds references to everything it recorded and clears its bit when freed. */
#include "ops/op.h"
#include "core/profile.h"

#include <assert.h>
#include <stdatomic.h>
#include <string.h>

/* Nodes are bump-allocated in chunks and freed together. */
#define ARENA_CHUNK 16384
typedef struct chunk { struct chunk *prev; size_t used, cap; char mem[]; } chunk;

struct tj_tape {
    chunk   *arena;
    unsigned flags;
    int      slot;
    bool     used;              /* a gradient was taken (non-persistent: final) */
    tj_node **nodes;
    int64_t  n, cap;
    tensor **watched;
    int64_t  nw, capw;
};

static bool grows(void **arr, int64_t *cap, int64_t n, size_t elem) {
    if (n < *cap) return true;
    int64_t nc = *cap ? 2 * *cap : 64;
    void *p = tj_mem_realloc(*arr, (size_t)*cap * elem, (size_t)nc * elem);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

static size_t node_size(int nin) {
    return (sizeof(tj_node) + sizeof(tensor *) * (size_t)nin + 15) & ~(size_t)15;
}

static void *arena_alloc(tj_tape *tape, size_t n) {
    chunk *c = tape->arena;
    if (!c || c->used + n > c->cap) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;   /* a huge concat gets its own chunk */
        chunk *nc = tj_mem_alloc(sizeof(chunk) + cap);
        if (!nc) return NULL;
        nc->prev = c;
        nc->used = 0;
        nc->cap = cap;
        tape->arena = c = nc;
    }
    void *p = c->mem + c->used;
    c->used += n;
    return p;
}

static void arena_free(tj_tape *tape) {
    for (chunk *c = tape->arena, *prev; c; c = prev) {
        prev = c->prev;
        tj_mem_free(c, sizeof(chunk) + c->cap);
    }
    tape->arena = NULL;
}

static int add_node(tj_tape *tape, tj_op op, int nin, tensor *const *in, tensor *out, const tj_attr *attr) {
    if (!grows((void **)&tape->nodes, &tape->cap, tape->n, sizeof(tj_node *))) return TJ_ERR_OOM;
    tj_node *n = arena_alloc(tape, node_size(nin));
    if (!n) return TJ_ERR_OOM;
    n->op = op;
    n->nin = nin;
    n->out = out;
    if (attr) n->attr = *attr;
    tj_tensor_ref(out);
    for (int i = 0; i < nin; i++) {
        tensor *x = tj_is_variable(in[i]) ? tj_variable_snapshot(in[i]) : in[i];
        if (!x) {
            for (int k = 0; k < i; k++) tj_tensor_unref(n->in[k]);
            tj_tensor_unref(out);
            tape->arena->used -= node_size(nin);    /* give the node back */
            return TJ_ERR_OOM;
        }
        n->in[i] = x;
        tj_tensor_ref(x);
    }
    tape->nodes[tape->n++] = n;
    out->tape_mask |= 1u << tape->slot;
    return 0;
}

/* The tape slots that record an op reading in[]: those tracking an input (every recording
 * tape for a variable or its snapshot). */
static uint32_t record_mask(const tj_thread *th, int nin, tensor *const *in) {
    uint32_t rec = th->no_grad ? 0 : th->recording, m = 0;
    for (int i = 0; i < nin && rec; i++) m |= tj_is_variable(in[i]) || in[i]->var_of ? rec : in[i]->tape_mask;
    return m & rec;
}

bool tj_records(int nin, tensor *const *in) {
    const tj_thread *th = tj_thread_state();
    return th->trace || record_mask(th, nin, in);
}

int tj_record(tj_op op, int nin, tensor *const *in, tensor *out, const tj_attr *attr) {
    if (tj_profile_on()) tj_profile_op(tj_ops[op]->name, nin, in, out);   /* eager only: compiled steps never record */
    tj_thread *th = tj_thread_state();
    if (th->trace && th->trace->op(th->tracer, (int)op, nin, in, out, attr)) return TJ_ERR_OOM;
    if (!tj_ops[op]->grad || !tj_dtype_is_float(out->dtype)) return 0;
    uint32_t m = record_mask(th, nin, in);
    while (m) {
        int slot = __builtin_ctz(m);
        m &= m - 1;
        if (add_node(th->tapes[slot], op, nin, in, out, attr)) return TJ_ERR_OOM;
    }
    return 0;
}

/* Drops every record and watch, clearing this tape's bit on what it tracked. */
static void release_records(tj_tape *tape) {
    uint32_t keep = ~(1u << tape->slot);
    for (int64_t i = 0; i < tape->n; i++) {
        tj_node *n = tape->nodes[i];
        n->out->tape_mask &= keep;
        tj_tensor_unref(n->out);
        for (int k = 0; k < n->nin; k++) tj_tensor_unref(n->in[k]);
    }
    arena_free(tape);
    for (int64_t i = 0; i < tape->nw; i++) {
        tape->watched[i]->tape_mask &= keep;
        tj_tensor_unref(tape->watched[i]);
    }
    tj_mem_free(tape->nodes, sizeof(tj_node *) * (size_t)tape->cap);
    tj_mem_free(tape->watched, sizeof(tensor *) * (size_t)tape->capw);
    tape->nodes = NULL;
    tape->watched = NULL;
    tape->n = tape->cap = tape->nw = tape->capw = 0;
}

tj_tape *tj_tape_begin(unsigned flags) {
    if (flags & ~TJ_TAPE_PERSISTENT)
        return tj_err(TJ_ERR_ARG, "tape_begin: unknown flags 0x%x", flags), NULL;
    tj_thread *th = tj_thread_state();
    int slot = 0;
    while (slot < TJ_MAX_TAPES && th->tapes[slot]) slot++;
    if (slot == TJ_MAX_TAPES)
        return tj_err(TJ_ERR_TAPE, "tape_begin: %d tapes exist in this thread already (free some)",
                      TJ_MAX_TAPES), NULL;
    tj_tape *tape = tj_mem_calloc(sizeof *tape);
    if (!tape) return NULL;
    tape->flags = flags;
    tape->slot = slot;
    th->tapes[slot] = tape;
    th->recording |= 1u << slot;
    return tape;
}

void tj_tape_watch(tj_tape *tape, tj_tensor *h) {
    if (!tape) { tj_err(TJ_ERR_ARG, "tape_watch: tape is NULL"); return; }
    tensor *t = tj_resolve(h, "tape_watch", 2);
    if (!t) return;
    if (!tj_dtype_is_float(t->dtype)) {
        tj_err(TJ_ERR_DTYPE, "tape_watch: only float tensors can be watched, got %s", tj_dtype_name(t->dtype));
        return;
    }
    uint32_t bit = 1u << tape->slot;
    if (tj_is_variable(t) || (t->tape_mask & bit)) return;
    if (!grows((void **)&tape->watched, &tape->capw, tape->nw, sizeof(tensor *))) return;
    tj_tensor_ref(t);
    tape->watched[tape->nw++] = t;
    t->tape_mask |= bit;
}

void tj_tape_stop(tj_tape *tape) {
    if (!tape) { tj_err(TJ_ERR_ARG, "tape_stop: tape is NULL"); return; }
    tj_thread_state()->recording &= ~(1u << tape->slot);
}

void tj_tape_free(tj_tape *tape) {
    if (!tape) return;
    tj_thread *th = tj_thread_state();
    release_records(tape);
    th->recording &= ~(1u << tape->slot);
    th->tapes[tape->slot] = NULL;
    tj_mem_free(tape, sizeof *tape);
}

void tj_no_grad_begin(void) { tj_thread_state()->no_grad++; }

void tj_no_grad_end(void) {
    tj_thread *th = tj_thread_state();
    if (th->no_grad == 0) { tj_err(TJ_ERR_STATE, "no_grad_end: no no_grad region is open"); return; }
    th->no_grad--;
}

/* ---- backward ---------------------------------------------------------------------- */

/* Each pass's number, unique in the process: a tensor's bw_epoch names the pass its
 * bw_grad belongs to, whichever thread ran an earlier one. */
static _Atomic uint64_t next_epoch = 1;
/* The pass holds each gradient by a reference in bw_grad, not in the caller's scope: a
 * rule runs in a scope of its own, so its intermediates die when it returns, and a node's
 * output gradient is dropped once the node has passed it on, unless it is a source. The
 * live set stays a few tensors, whose blocks the allocator hands back cache-hot, instead
 * of every temporary of the pass (W3: 64 MB). Only the sources' gradients join the
 * caller's scope; a tape recording the pass keeps what it recorded by its own references. */

static void drop_grad(tensor *t, uint64_t epoch) {
    if (t->bw_epoch != epoch || !t->bw_grad) return;
    tensor *g = t->bw_grad;
    t->bw_grad = NULL;
    tj_tensor_unref(g);
}

/* t's gradient becomes g, which the pass now holds. */
static void set_grad(tensor *t, tensor *g, uint64_t epoch) {
    tj_tensor_ref(g);
    drop_grad(t, epoch);
    t->bw_epoch = epoch;
    t->bw_grad = g;
}

/* Adds g to the gradient acc in place when only the pass holds acc and its storage and
 * nothing records the add: no new block, and acc's lines are in cache already. */
static bool add_in_place(tensor *acc, tensor *g) {
    tensor *in[2] = {acc, g};
    if (acc == g || acc->refs != 1 || acc->st->refs != 1 || acc->dtype != g->dtype ||
        !tj_shape_equal(&acc->shape, &g->shape) || tj_records(2, in))
        return false;
    tj_t_ew_in_place(TJ_OP_ADD, 2, in);
    return true;
}

static int accumulate(tensor *t, tensor *g, uint64_t epoch) {
    g = tj_t_sum_to(g, &t->shape);
    if (g && t->bw_epoch == epoch) {
        assert(t->bw_grad);             /* not dropped yet: its node comes later */
        if (add_in_place(t->bw_grad, g)) return 0;
        g = T_ADD(t->bw_grad, g);
    }
    if (!g) return -1;
    set_grad(t, g, epoch);
    return 0;
}

/* The seed d target / d target = 1 (a non-scalar target is summed). */
static int seed(tensor *target, uint64_t epoch) {
    if (!tj_scope_try_begin()) return -1;
    tensor *one = tj_t_full(target->dtype, &target->shape, 1.0);
    if (one) set_grad(target, one, epoch);
    tj_scope_end();
    return one ? 0 : -1;
}

/* Whether the pass of the tape with this bit takes a gradient for input x: a variable (or a
 * read of one), or a value the tape tracks. */
static bool takes_grad(const tensor *x, uint32_t bit) {
    const tensor *in = x->var_of ? x->var_of : x;
    return tj_is_variable(in) || (in->tape_mask & bit);
}

/* Runs n's gradient rule and adds what it gives to its tracked inputs' gradients. A rule may
 * skip an input no tape takes a gradient of here (tj_grad_unused). */
static int backprop(const tj_node *n, uint32_t bit, uint64_t epoch) {
    tensor *gin[n->nin > 0 ? n->nin : 1];
    memset(gin, 0, sizeof(tensor *) * (size_t)n->nin);
    tj_thread *th = tj_thread_state();
    th->grad_op = (int)n->op + 1;           /* where the next ops come from (traces) */
    th->grad_of = n->out->id;
    th->grad_unused = 0;                    /* inputs this pass takes no gradient of */
    for (int k = 0; k < n->nin && k < 32; k++)
        if (!takes_grad(n->in[k], bit)) th->grad_unused |= 1u << k;
    if (!tj_scope_try_begin()) return -1;
    int rc = tj_ops[n->op]->grad(n, n->out->bw_grad, gin);
    th->grad_unused = 0;
    for (int k = 0; k < n->nin && rc == 0; k++) {
        tensor *in = n->in[k]->var_of ? n->in[k]->var_of : n->in[k];  /* a read -> its variable */
        if (gin[k] && takes_grad(n->in[k], bit)) rc = accumulate(in, gin[k], epoch);
    }
    tj_scope_end();
    return rc;
}

static bool among(const tensor *t, tensor *const *ts, int n) {
    for (int i = 0; i < n; i++)
        if (ts[i] == t) return true;
    return false;
}

/* keep: the sources that may be node outputs; their gradients stay for the caller. */
static int backward(tj_tape *tape, tensor *target, tensor *const *keep, int nkeep, uint64_t epoch) {
    uint32_t bit = 1u << tape->slot;
    if (seed(target, epoch)) return -1;
    for (int64_t i = tape->n - 1; i >= 0; i--) {
        tj_node *n = tape->nodes[i];
        if (n->out->bw_epoch != epoch) continue;
        assert(n->out->bw_grad);            /* a value is the output of one node */
        if (backprop(n, bit, epoch)) return -1;
        if (!among(n->out, keep, nkeep)) drop_grad(n->out, epoch);   /* passed on */
    }
    return 0;
}

/* Drops the gradients the pass still holds: sources', leaves', variables', the target's. */
static void drop_all(tj_tape *tape, tensor *target, uint64_t epoch) {
    for (int64_t i = 0; i < tape->n; i++) {
        tj_node *n = tape->nodes[i];
        drop_grad(n->out, epoch);
        for (int k = 0; k < n->nin; k++) drop_grad(n->in[k]->var_of ? n->in[k]->var_of : n->in[k], epoch);
    }
    drop_grad(target, epoch);
}

/* grads[i]: source i's gradient, given to the caller's scope; zeros (ones for the target)
 * where none arrived. */
static int give_grads(int n, tensor *const *src, const tensor *target, uint64_t epoch, tj_tensor **grads) {
    for (int i = 0; i < n; i++) {
        tensor *s = src[i];
        grads[i] = s->bw_epoch == epoch && s->bw_grad ? tj_scope_adopt(s->bw_grad)
                 : tj_handle(tj_t_full(s->dtype, &s->shape, s == target ? 1.0 : 0.0));
        if (!grads[i]) return -1;
    }
    return 0;
}

int tj_tape_gradient(tj_tape *tape, tj_tensor *target_h, int n, tj_tensor *const *sources_h,
                     tj_tensor **grads) {
    if (!tape) return tj_err(TJ_ERR_ARG, "tape_gradient: tape is NULL");
    if (n < 0 || (n > 0 && (!sources_h || !grads)))
        return tj_err(TJ_ERR_ARG, "tape_gradient: %d sources but sources or grads is NULL", n);
    for (int i = 0; i < n; i++) grads[i] = NULL;
    if (tape->used && !(tape->flags & TJ_TAPE_PERSISTENT))
        return tj_err(TJ_ERR_TAPE, "tape_gradient: a non-persistent tape computes gradients once; "
                      "begin it with TJ_TAPE_PERSISTENT to call tape_gradient again");
    tensor *target = tj_resolve(target_h, "tape_gradient", 2);
    if (!target) return tj_error_code();
    if (!tj_dtype_is_float(target->dtype))
        return tj_err(TJ_ERR_DTYPE, "tape_gradient: target is %s, gradients need a float target",
                      tj_dtype_name(target->dtype));
    size_t src_bytes = 2 * sizeof(tensor *) * (size_t)(n > 0 ? n : 1);
    tensor **src = tj_mem_alloc(src_bytes);
    if (!src) return TJ_ERR_OOM;
    tensor **keep = src + n;                /* the sources but variables, which no node outputs */
    int nkeep = 0;
    for (int i = 0; i < n; i++) {
        if (!(src[i] = tj_resolve(sources_h[i], "tape_gradient: source", i + 1))) {
            tj_mem_free(src, src_bytes);
            return tj_error_code();
        }
        if (!tj_is_variable(src[i])) keep[nkeep++] = src[i];
    }
    tj_thread *th = tj_thread_state();
    uint32_t bit = 1u << tape->slot, saved = th->recording;
    th->recording &= ~bit;                  /* a tape does not record its own gradient */
    uint64_t epoch = atomic_fetch_add(&next_epoch, 1);
    int rc = 0;
    if (tj_is_variable(target) || (target->tape_mask & bit)) rc = backward(tape, target, keep, nkeep, epoch);
    else target->bw_epoch = 0;
    th->grad_op = 0;
    if (rc == 0) rc = give_grads(n, src, target, epoch, grads);
    drop_all(tape, target, epoch);
    th->recording = saved;
    tape->used = true;
    tj_mem_free(src, src_bytes);
    if (!(tape->flags & TJ_TAPE_PERSISTENT)) {
        release_records(tape);
        th->recording &= ~bit;
    }
    if (rc) {
        for (int i = 0; i < n; i++) grads[i] = NULL;
        return tj_error_code() ? tj_error_code() : TJ_ERR_STATE;
    }
    return 0;
}
