/* signature.h: what function.c (the API, tracing, binding and running), compile.c
 * (compiling, in the call or in the background) and check.c (TJ_MODE=check) share about a
 * tj_function: its traced signatures, and the functions each file gives the others.
 * Internal to jit/. */
#ifndef TJ_SIGNATURE_H
#define TJ_SIGNATURE_H

#include "graph.h"
#ifdef TJ_HAVE_JIT
#include "lowered.h"
#endif

#include <pthread.h>
#include <stdatomic.h>

/* What generated code calls for a node it does not emit inline: the op's eager kernel. */
typedef struct jit_call {
    tj_op    op;
    int      nin;
    tj_attr *attr;
    tensor **in;
    tensor  *out;
    int     *failed;
} jit_call;

#define MAX_IN 16             /* inputs and outputs of a compiled signature; more run eagerly */
#define MAX_OUT 64

enum { SIG_COMPILING, SIG_READY, SIG_EAGER };

typedef struct sig {
    struct sig *next;
    int n_in, n_out;
    unsigned flags;           /* tj_function_call_flags: part of the signature */
    tj_dtype dt[MAX_IN];
    tj_shape shape[MAX_IN];
    tj_graph *g;
    bool *live;
    _Atomic int state;        /* SIG_COMPILING, SIG_READY or SIG_EAGER (could not compile) */
    pthread_t thread;         /* compiling in the background, until joined */
    bool joinable;
    char *dump_dir;           /* the dump settings when traced (the thread's copy) */
    unsigned dump_what;
#ifdef TJ_HAVE_JIT
    tj_lowered low;
    tj_lowered opt;           /* optimised code compiled after quick code, until taken */
    atomic_bool opt_ready;
#endif
    tensor *desc;             /* per node: a header over its data, for kernels */
    void **bufs;              /* per node: its data (generated code reads this) */
    void **calls;             /* per node: its jit_call, when called */
    jit_call *recs;
    tensor **rec_in;
    int nrec_in;
    int *point, npoint;       /* nodes whose data changes per call: inputs, state, aliases */
    int *draws, ndraws;       /* random nodes, live or not (eager draws them all) */
    bool *inplace;            /* per state write: straight into the variable (bufplan.c) */
    bool *direct;             /* per output: straight into the tensor returned (bufplan.c) */
    char *arena;              /* the buffers (bufplan.c) */
    size_t arena_bytes;
    bool shared;              /* planned by liveness, else each buffer its own (check mode) */
    int failed;
    int index;                /* 0, 1, ...: the order of tracing (dump file names) */
    tj_compile_stats stats;
} sig;

struct tj_function {
    char *name;
    char *dump_dir;           /* tj_function_dump, else env TJ_DUMP / TJ_DUMP_DIR */
    unsigned dump_what;
    tj_fn fn;
    void *user;
    sig *sigs;                /* most recent first */
    int traces, limit;
    bool warned_limit, warned_read;
    atomic_bool warned_fallback;
    const char *last_path;
};

/* What generated code calls for a node it does not emit inline: the op's eager kernel. */
void tj_jit_call(jit_call *c);
/* "tapejit: warning: ..." on stderr */
void tj_jit_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* compile.c */
bool tj_compile_in_background(void);              /* TJ_COMPILE / tj_set_background_compile */
/* Compiles s (quick: the level-0 first tier) or marks it to run eagerly, with a warning
 * once per function; on the calling thread. */
void tj_sig_compile(tj_function *f, sig *s, bool quick);
void tj_sig_compile_start(tj_function *f, sig *s);  /* on a thread of its own, if one starts */
void tj_sig_join(sig *s);                           /* waits for it and takes its final code */

#ifdef TJ_HAVE_JIT
/* Between calls: optimised code that a background compile finished replaces the quick code. */
void tj_sig_upgrade(sig *s);

/* function.c */
int tj_sig_bind(sig *s);                            /* headers and call records per node */
int tj_sig_layout(sig *s, bool share);              /* buffers in a new arena */
/* Runs the compiled step: outputs into out[] (new tensors in this scope), state writes. */
int tj_sig_run(tj_function *f, sig *s, tensor *const *in, tj_tensor **out);

/* check.c: runs the call eagerly and compiled from the same state, compares bit for bit */
int tj_sig_check(tj_function *f, sig *s, int n_in, tj_tensor *const *in_h, tensor *const *in, int n_out,
                 tj_tensor **out);
#endif

#endif
