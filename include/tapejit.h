/* tapejit.h: the one public header of tapejit, a deep-learning runtime in C.
 *
 * Handles are opaque. Every function that returns a tensor returns NULL on failure and
 * keeps the first error (tj_error_code, tj_last_error); a NULL tensor given to an op gives
 * NULL again and leaves the first error alone, so a chain of ops is checked once.
 * State (scopes, tapes, error, RNG) is per thread. Nothing aborts on user input. */
#ifndef TAPEJIT_H
#define TAPEJIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TJ_VERSION_MAJOR 0
#define TJ_VERSION_MINOR 1
#define TJ_VERSION_PATCH 0

/* ---- dtypes and shapes ------------------------------------------------------------- */

typedef enum { TJ_F32, TJ_F64, TJ_I32 } tj_dtype;

#define TJ_MAX_DIMS 8
typedef struct { int ndim; int64_t dim[TJ_MAX_DIMS]; } tj_shape;

/* TJ_SHAPE(2, 3) -> {2, {2, 3}}; TJ_SHAPE() is a scalar (rank 0). */
#define TJ_SHAPE(...) ((tj_shape){ \
    (int)(sizeof((int64_t[]){0, ##__VA_ARGS__}) / sizeof(int64_t) - 1), {__VA_ARGS__}})

typedef struct tj_tensor tj_tensor;
typedef struct tj_tape tj_tape;
typedef struct tj_function tj_function;

/* ---- errors ------------------------------------------------------------------------ */

typedef enum {
    TJ_OK = 0,
    TJ_ERR_ARG,      /* a bad argument: NULL, out-of-range axis, bad rate, ... */
    TJ_ERR_SHAPE,    /* shapes that do not fit the op */
    TJ_ERR_DTYPE,    /* dtypes that do not fit the op */
    TJ_ERR_VALUE,    /* a bad value inside a tensor: index out of range, integer division by 0 */
    TJ_ERR_OOM,      /* an allocation failed */
    TJ_ERR_STALE,    /* a tensor used after its scope ended, or a freed variable */
    TJ_ERR_STATE,    /* a call at the wrong time: scope_end without scope_begin, ... */
    TJ_ERR_TAPE,     /* tape misuse: second gradient of a non-persistent tape, ... */
    TJ_ERR_IO,       /* a file could not be read or written */
    TJ_ERR_JIT,      /* LLVM could not compile (or the JIT is unavailable); runs eagerly instead */
    TJ_ERR_CHECK     /* check mode: compiled and eager results differ */
} tj_error;

int          tj_error_code(void);        /* first error since tj_clear_error, 0 if none */
const char  *tj_last_error(void);        /* its message ("" if none); valid until the next clear */
void         tj_clear_error(void);

/* ---- memory ------------------------------------------------------------------------ */

/* All of tapejit's memory goes through one hook, as lua_Alloc: nsize 0 frees ptr and
 * returns NULL; otherwise behaves as realloc(ptr, nsize) (ptr NULL: malloc). osize is the
 * old size when ptr is not NULL. Returning NULL for nsize > 0 is an allocation failure,
 * which tapejit reports as TJ_ERR_OOM. Set it before creating any tensor. NULL restores
 * the default (realloc/free). */
typedef void *(*tj_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);
void tj_set_allocator(tj_alloc_fn fn, void *ud);
/* Bytes tapejit allocated on this thread and has not freed, and the most of them since
 * tj_memory_reset_peak: what a region of code (an eager step, a compiled call) needs. */
int64_t tj_memory_in_use(void);
int64_t tj_memory_peak(void);
void    tj_memory_reset_peak(void);

/* ---- tensors: every returned tensor belongs to the innermost scope ------------------ */

tj_tensor *tj_tensor_from(tj_dtype dt, tj_shape shape, const void *data);  /* copies data */
tj_tensor *tj_zeros(tj_dtype dt, tj_shape shape);
tj_tensor *tj_ones(tj_dtype dt, tj_shape shape);
tj_tensor *tj_full(tj_dtype dt, tj_shape shape, double value);
tj_tensor *tj_scalar(double value);                     /* f32, rank 0 */
tj_tensor *tj_rand_uniform(tj_shape shape, double lo, double hi);   /* f32, in [lo, hi) */
tj_tensor *tj_rand_normal(tj_shape shape, double mean, double stddev);
/* Seeds this thread's counter-based generator (Philox-4x32-10). A draw depends only on
 * the seed and on how many values were drawn before it, never on threads or timing. */
void       tj_seed(uint64_t seed);
/* The generator's position (values drawn since tj_seed), for checkpoints. */
uint64_t   tj_rng_offset(void);
void       tj_rng_set_state(uint64_t seed, uint64_t offset);

tj_dtype    tj_tensor_dtype(const tj_tensor *t);        /* TJ_F32 for NULL (and an error) */
tj_shape    tj_tensor_shape(const tj_tensor *t);        /* ndim -1 for NULL or a stale tensor */
int64_t     tj_tensor_numel(const tj_tensor *t);        /* -1 for NULL or a stale tensor */
const void *tj_tensor_data(const tj_tensor *t);         /* contiguous, row-major; NULL on error */
double      tj_item(const tj_tensor *t);                /* one-element tensor; NaN on error */
void        tj_print(const tj_tensor *t);               /* values, shape, dtype, to stdout */
/* Formats as tj_print does (no newline) into buf; returns the full length like snprintf,
 * or -1 on error. */
int         tj_snprint(char *buf, size_t size, const tj_tensor *t);
const char *tj_dtype_name(tj_dtype dt);                 /* "float32", "float64", "int32" */
/* Floats to int32 truncate toward zero and saturate; NaN becomes 0. */
tj_tensor  *tj_cast(tj_tensor *t, tj_dtype dt);

/* ---- scopes -------------------------------------------------------------------------- */

void       tj_scope_begin(void);
int        tj_scope_end(void);                          /* frees what the scope owns */
tj_tensor *tj_keep(tj_tensor *t);                       /* hand t to the enclosing scope */

/* ---- variables: persistent, trainable, watched by every active tape ------------------ */

tj_tensor  *tj_variable(tj_tensor *init, const char *name);  /* copies init; NULL name ok */
int         tj_assign(tj_tensor *var, tj_tensor *value);     /* same dtype and shape */
void        tj_variable_free(tj_tensor *var);
const char *tj_variable_name(const tj_tensor *var);

/* ---- ops ------------------------------------------------------------------------------
 * Binary elementwise ops broadcast as numpy does. Operands share a dtype, except that a
 * rank-0 f32 tensor (tj_scalar) takes the other operand's dtype. Axes may be negative.
 * Comparisons return 0/1 in the operands' dtype. int32 arithmetic wraps; int32 division
 * truncates toward zero, and a zero divisor is an error. */

tj_tensor *tj_add(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_sub(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_mul(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_div(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_pow(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_maximum(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_minimum(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_greater(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_less(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_equal(tj_tensor *a, tj_tensor *b);
tj_tensor *tj_where(tj_tensor *cond, tj_tensor *a, tj_tensor *b);  /* cond != 0 ? a : b */

tj_tensor *tj_neg(tj_tensor *a);
tj_tensor *tj_exp(tj_tensor *a);
tj_tensor *tj_log(tj_tensor *a);
tj_tensor *tj_sqrt(tj_tensor *a);
tj_tensor *tj_abs(tj_tensor *a);
tj_tensor *tj_tanh(tj_tensor *a);
tj_tensor *tj_sigmoid(tj_tensor *a);
tj_tensor *tj_relu(tj_tensor *a);

tj_tensor *tj_matmul(tj_tensor *a, tj_tensor *b);  /* (..., m, k) @ (..., k, n); batch dims broadcast */
/* The same with a and/or b read with their last two axes swapped (tf.linalg.matmul's
 * transpose_a/transpose_b): no transposed copy is made. Gradients of matmuls are these. */
tj_tensor *tj_matmul_t(tj_tensor *a, tj_tensor *b, bool transpose_a, bool transpose_b);

/* Reductions; naxes 0 reduces all axes. */
tj_tensor *tj_sum(tj_tensor *t, int naxes, const int *axes, bool keepdims);
tj_tensor *tj_mean(tj_tensor *t, int naxes, const int *axes, bool keepdims);
tj_tensor *tj_max(tj_tensor *t, int naxes, const int *axes, bool keepdims);
tj_tensor *tj_argmax(tj_tensor *t, int axis);                 /* I32, first of ties */

tj_tensor *tj_reshape(tj_tensor *t, tj_shape shape);          /* one dim may be -1 */
tj_tensor *tj_transpose(tj_tensor *t, const int *perm);       /* NULL perm reverses */
tj_tensor *tj_broadcast_to(tj_tensor *t, tj_shape shape);
tj_tensor *tj_concat(int n, tj_tensor *const *ts, int axis);
tj_tensor *tj_slice(tj_tensor *t, const int64_t *begin, const int64_t *size);  /* size -1: to the end */
tj_tensor *tj_gather(tj_tensor *t, tj_tensor *indices /* I32 */, int axis);
tj_tensor *tj_softmax(tj_tensor *t, int axis);
tj_tensor *tj_log_softmax(tj_tensor *t, int axis);
/* Zeroes each element with probability rate and scales the rest by 1/(1-rate); the mask
 * comes from the counter-based generator. Not training (or rate 0): returns t. */
tj_tensor *tj_dropout(tj_tensor *t, double rate, bool training);
/* The same values, never differentiated through. */
tj_tensor *tj_stop_gradient(tj_tensor *t);

/* ---- tapes ----------------------------------------------------------------------------- */

#define TJ_TAPE_PERSISTENT 1u

tj_tape   *tj_tape_begin(unsigned flags);               /* starts recording */
void       tj_tape_watch(tj_tape *tape, tj_tensor *t);
void       tj_tape_stop(tj_tape *tape);                 /* stop recording, keep records */
/* grads[i] = d sum(target) / d sources[i]; a source the target does not depend on gets
 * zeros of its shape. Returns 0 on success. The gradients belong to the innermost scope.
 * A non-persistent tape allows one call. */
int        tj_tape_gradient(tj_tape *tape, tj_tensor *target,
                            int n, tj_tensor *const *sources, tj_tensor **grads);
void       tj_tape_free(tj_tape *tape);
/* Pause every tape of this thread for a region; regions nest. */
void       tj_no_grad_begin(void);
void       tj_no_grad_end(void);

/* ---- compiled functions (the tf.function of this runtime) -------------------------------
 * A step function (forward, tape, gradient, tj_assign updates) is traced on its first
 * call with a new signature (dtype and shape of every input, n_out, flags): it runs eagerly
 * while every op is recorded, and those eager results are that call's results. The trace
 * is optimised, compiled to vector code with LLVM, and replayed on later calls with the
 * same signature, giving the same bits as eager. Variables read or assigned are state
 * (read and written in place on every call); other captured tensors are constants.
 * The function must be deterministic given its inputs and state: Python-like control flow
 * on values read with tj_item is frozen into the trace (tapejit warns once). */
typedef int (*tj_fn)(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out);

typedef enum { TJ_MODE_EAGER, TJ_MODE_JIT, TJ_MODE_CHECK } tj_mode;
/* Process-wide mode; the default comes from env TJ_MODE=eager|jit|check (else jit).
 * eager: call fn directly. jit: trace once per signature, then run compiled code.
 * check: run every call both ways and compare every output and state update bit for
 * bit; a difference is a TJ_ERR_CHECK error naming the first differing op. */
void         tj_set_mode(tj_mode m);
tj_mode      tj_get_mode(void);

tj_function *tj_function_new(const char *name, tj_fn fn, void *user);   /* NULL name: "fn" */
/* Calls f; outputs join the caller's scope. Returns 0, fn's error, or a tracing error.
 * A call with more than 16 inputs or 64 outputs, or made while another function traces
 * (nested functions are inlined), runs eagerly. A tj_function is used by one thread at a
 * time; different functions may be called from different threads. */
int          tj_function_call(tj_function *f, int n_in, tj_tensor *const *in,
                              int n_out, tj_tensor **out);
/* The same with flags (TJ_FLAG_TRAINING, or any bits of the user's) that are part of the
 * signature: a call with other flags traces again. fn reads them with tj_function_flags. */
#define TJ_FLAG_TRAINING 1u
int          tj_function_call_flags(tj_function *f, unsigned flags, int n_in, tj_tensor *const *in,
                                    int n_out, tj_tensor **out);
unsigned     tj_function_flags(void);   /* flags of the call running on this thread; 0 outside */
void         tj_function_free(tj_function *f);
/* Signatures traced beyond limit (default 8) run eagerly, with a one-time warning. */
int          tj_function_set_retrace_limit(tj_function *f, int limit);
/* Compiling. By default a new signature compiles on a thread of its own while the calls
 * run eagerly (the same bits) until its code is ready, so the first call costs the traced
 * eager call (and once per process a small warm-up compile, about 9 ms, that keeps exit
 * safe while a compile runs). That thread makes unoptimised code first (about 10x faster
 * to make), then optimised code, which later calls take up; both give the same bits. Env TJ_COMPILE=sync, or tj_set_background_compile(false), compiles
 * inside the first call instead (check mode always does). Exit waits for compiles in
 * flight. Env TJ_CACHE_DIR=<dir> keeps compiled code on disk, keyed by a hash of the IR
 * and the target: a process that finds its code there compiles nothing. The directory
 * is trusted like one of shared libraries. */
void         tj_set_background_compile(bool on);
/* Blocks until every signature of f traced so far is compiled (or runs eagerly). */
int          tj_function_wait(tj_function *f);
int          tj_function_traces(const tj_function *f);      /* signatures traced so far */
/* What the last call did: "traced", "compiled", "checked", "compiling" (ran eagerly while
 * its signature compiles in the background), or "eager" (mode eager, the eager fallback,
 * or past the retrace limit). */
const char  *tj_function_last_path(const tj_function *f);
/* Dumps of every stage for the signatures f traces from now on, into dir/<name>/
 * (<signature>.trace.txt, .graph.txt, .fusion.txt, .llvm.ll, .llvm-opt.ll, .asm.s, .dot, .stats.txt).
 * what: a comma list of trace, graph, fusion, llvm, asm, dot, stats, or "all". The env
 * variables TJ_DUMP=<what> and TJ_DUMP_DIR=<dir> do the same for every function. */
int          tj_function_dump(tj_function *f, const char *dir, const char *what);
/* Compile time of the most recent signature, per stage, in ms, and its size; waits for
 * its compile to end. */
typedef struct tj_compile_stats {
    double trace_ms;        /* the traced eager call */
    double graph_ms;        /* graph passes and liveness */
    double ir_ms;           /* building LLVM IR */
    double llvm_opt_ms;     /* LLVM verification and optimisation */
    double codegen_ms;      /* machine code and linking */
    int    nodes, live_nodes, kernels;   /* trace nodes, after the passes, generated loops + calls */
    bool   cached;          /* the machine code came from TJ_CACHE_DIR */
    double quick_ms;        /* a background compile's first, unoptimised code (0: none) */
    size_t arena_bytes;     /* the step's temporaries, sharing bytes by liveness; a call
                               allocates only its outputs besides */
} tj_compile_stats;
int          tj_function_compile_stats(tj_function *f, tj_compile_stats *out);

/* ---- modules and layers (Keras-style custom models) -------------------------------------
 * A module has a name, child modules, variables and a forward function. Variables are
 * enumerated in a stable order (depth first, in the order they were added) with path names
 * relative to the root ("dense1/kernel"). Layers build their weights lazily on the first
 * call, when the input's last dimension is known. A module owns its children and variables
 * and frees them with it. */
typedef struct tj_module tj_module;
typedef tj_tensor *(*tj_forward_fn)(tj_module *m, tj_tensor *x, bool training);

typedef enum { TJ_ACT_LINEAR, TJ_ACT_RELU, TJ_ACT_TANH, TJ_ACT_SIGMOID, TJ_ACT_SOFTMAX } tj_activation;

tj_module  *tj_module_new(const char *name, tj_forward_fn forward, void *user);  /* a custom model */
void       *tj_module_user(const tj_module *m);
const char *tj_module_name(const tj_module *m);
/* m takes child (also on failure); a child's name is unique within m. Returns child. */
tj_module  *tj_module_add(tj_module *m, tj_module *child);
tj_module  *tj_module_child(const tj_module *m, const char *name);
/* A variable owned by m named name (copies init); NULL if the name is taken. */
tj_tensor  *tj_module_variable(tj_module *m, const char *name, tj_tensor *init);
/* Runs the forward function; the result belongs to the innermost scope. */
tj_tensor  *tj_module_call(tj_module *m, tj_tensor *x, bool training);
/* All variables of m and its children, in the stable order; returns the count (vars may
 * be NULL to count). Their tj_variable_name is the path from m. */
int         tj_module_variables(const tj_module *m, int cap, tj_tensor **vars);
int64_t     tj_module_param_count(const tj_module *m);
/* Keras-like summary: one row per layer with its output shape (from the last call) and
 * parameter count, and the total. snprintf semantics; tj_module_print_summary to stdout. */
int         tj_module_summary(const tj_module *m, char *buf, size_t size);
void        tj_module_print_summary(const tj_module *m);
void        tj_module_free(tj_module *m);

/* Layers. Dense: y = act(x @ kernel + bias), kernel glorot-uniform, bias zeros (Keras). */
tj_module  *tj_dense(const char *name, int64_t units, tj_activation act, bool use_bias);
tj_module  *tj_dropout_layer(const char *name, double rate);        /* identity unless training */
tj_module  *tj_embedding(const char *name, int64_t vocab, int64_t dim);   /* int32 ids -> vectors */
tj_module  *tj_activation_layer(const char *name, tj_activation act);
tj_module  *tj_flatten(const char *name);                           /* (batch, ...) -> (batch, n) */
tj_module  *tj_reshape_layer(const char *name, tj_shape target);    /* target excludes the batch dim */
tj_module  *tj_sequential(const char *name, int n, tj_module *const *layers);   /* takes the layers */

/* ---- losses (composed from ops; results belong to the innermost scope) --------------------- */
typedef enum { TJ_REDUCTION_MEAN, TJ_REDUCTION_SUM } tj_reduction;
tj_tensor *tj_loss_mse(tj_tensor *pred, tj_tensor *target, tj_reduction r);
tj_tensor *tj_loss_softmax_ce(tj_tensor *logits, tj_tensor *onehot, tj_reduction r);    /* (batch, classes) */
tj_tensor *tj_loss_sparse_softmax_ce(tj_tensor *logits, tj_tensor *labels, tj_reduction r); /* labels int32 (batch,) */
tj_tensor *tj_loss_bce_logits(tj_tensor *logits, tj_tensor *target, tj_reduction r);

/* ---- optimizers ---------------------------------------------------------------------------
 * Updates go through tj_assign, and the step counter, learning rate schedule and slots are
 * variables, so a compiled step captures the whole update. */
typedef struct tj_optimizer tj_optimizer;
/* Keras semantics (runtime/optim/optimizer.c has the formulas); Adam is TF1's AdamOptimizer:
 * w -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps). Schedules see the step count before
 * the apply's increment. Bad hyperparameters (lr <= 0, beta outside [0, 1), ...) give
 * NULL with TJ_ERR_ARG. Slot names are taken from the variable's name on first use. */
tj_optimizer *tj_sgd(double lr, double momentum, bool nesterov);
tj_optimizer *tj_adam(double lr, double beta1, double beta2, double epsilon);
tj_optimizer *tj_rmsprop(double lr, double rho, double momentum, double epsilon);
tj_optimizer *tj_adagrad(double lr, double initial_accumulator, double epsilon);
/* lr * rate^(step / decay_steps) (floored exponent when staircase) */
int           tj_optimizer_exponential_decay(tj_optimizer *o, double decay_steps, double rate, bool staircase);
/* lr * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha) */
int           tj_optimizer_cosine_decay(tj_optimizer *o, double decay_steps, double alpha);
/* Creates the slots of vars now (as Keras's optimizer.build), so a checkpoint can hold
 * them before the first update. Optional: tj_optimizer_apply creates missing slots. */
int           tj_optimizer_build(tj_optimizer *o, int n, tj_tensor *const *vars);
/* vars[i] -= update(grads[i]); slots are created on first use; increments the step. */
int           tj_optimizer_apply(tj_optimizer *o, int n, tj_tensor *const *grads, tj_tensor *const *vars);
tj_tensor    *tj_optimizer_step(const tj_optimizer *o);            /* the step counter variable (f32) */
/* The rate the next apply uses (the schedule at the current step): f64 rank 0, in scope. */
tj_tensor    *tj_optimizer_learning_rate(const tj_optimizer *o);
/* The optimizer's own variables, named "step", "learning_rate" (the base rate, f32), then
 * per variable in first-seen order its slots "m/<var name>", "v/<var name>", ...; count. */
int           tj_optimizer_variables(const tj_optimizer *o, int cap, tj_tensor **vars);
void          tj_optimizer_free(tj_optimizer *o);

/* ---- datasets -----------------------------------------------------------------------------
 * An element is a tuple of tensors. A dataset keeps its own copy of its data. Pipelines
 * take ownership of the dataset they wrap, also on failure (it is freed), so a chain of
 * calls needs one NULL check; only the outermost dataset may be iterated or freed.
 * Iteration: tj_dataset_next returns 1 and fills out[0, arity) with tensors of the
 * innermost scope, or 0 at the end of the epoch (then tj_dataset_reset starts the next
 * epoch: a shuffle reshuffles), or -1 on error.
 * Order depends only on the seeds and the epoch; the position is part of the state. */
typedef struct tj_dataset tj_dataset;
tj_dataset *tj_dataset_from_tensors(int n, tj_tensor *const *ts);   /* slices along axis 0 */
/* Columns chosen by name from a CSV file with a header, as f32, grouped: element i is
 * ngroups tensors, group g of shape (group_sizes[g],) with the next group_sizes[g] columns.
 * Errors name the file, line and column: TJ_ERR_IO (unreadable), TJ_ERR_ARG (no such
 * column, e.g. no header line), TJ_ERR_VALUE (a field empty or not a number, no rows). */
tj_dataset *tj_dataset_from_csv(const char *path, int ngroups, const int *group_sizes,
                                const char *const *columns);
tj_dataset *tj_dataset_shuffle(tj_dataset *d, int64_t buffer_size, uint64_t seed);
tj_dataset *tj_dataset_batch(tj_dataset *d, int64_t batch_size, bool drop_remainder);
tj_dataset *tj_dataset_repeat(tj_dataset *d, int64_t count);        /* -1: forever */
tj_dataset *tj_dataset_take(tj_dataset *d, int64_t count);          /* -1: all */
int         tj_dataset_arity(const tj_dataset *d);                   /* tensors per element */
int         tj_dataset_next(tj_dataset *d, tj_tensor **out);
int         tj_dataset_reset(tj_dataset *d);
/* The iterator's position (epoch and element) as 2 numbers, for checkpoints. Setting it
 * begins that epoch and skips to the element; a position past the epoch's end is
 * TJ_ERR_VALUE and changes nothing. */
int         tj_dataset_get_state(const tj_dataset *d, int64_t state[2]);
int         tj_dataset_set_state(tj_dataset *d, const int64_t state[2]);
void        tj_dataset_free(tj_dataset *d);

/* ---- checkpoints (safetensors files) ------------------------------------------------------
 * A checkpoint holds variables by name, optimizer slots and step, the RNG state and dataset
 * positions. Saving is atomic (temporary file, fsync, rename). Restoring checks every
 * name, shape and dtype and says exactly what does not match; it changes nothing unless
 * everything matches. Files are read as hostile input: a bad file is an error, never a
 * crash or an out-of-bounds read. */
typedef struct tj_checkpoint tj_checkpoint;
tj_checkpoint *tj_checkpoint_new(void);
int  tj_checkpoint_add_module(tj_checkpoint *ck, const char *prefix, const tj_module *m);
int  tj_checkpoint_add_optimizer(tj_checkpoint *ck, const char *prefix, const tj_optimizer *o);
int  tj_checkpoint_add_variable(tj_checkpoint *ck, const char *name, tj_tensor *var);
int  tj_checkpoint_add_dataset(tj_checkpoint *ck, const char *name, tj_dataset *d);
int  tj_checkpoint_save(const tj_checkpoint *ck, const char *path);
int  tj_checkpoint_restore(tj_checkpoint *ck, const char *path);
void tj_checkpoint_free(tj_checkpoint *ck);
/* Keeps the last max_to_keep checkpoints in dir as ckpt-<step>.safetensors. */
typedef struct tj_checkpoint_manager tj_checkpoint_manager;
tj_checkpoint_manager *tj_checkpoint_manager_new(tj_checkpoint *ck, const char *dir, int max_to_keep);
int         tj_checkpoint_manager_save(tj_checkpoint_manager *mg, int64_t step);
/* The newest checkpoint's path, NULL if none; valid until the next call on mg. */
const char *tj_checkpoint_manager_latest(tj_checkpoint_manager *mg);
int         tj_checkpoint_manager_restore_latest(tj_checkpoint_manager *mg);
void        tj_checkpoint_manager_free(tj_checkpoint_manager *mg);   /* not the checkpoint */
/* Plain safetensors: n named tensors (copied) with optional string metadata. */
int  tj_safetensors_save(const char *path, int n, const char *const *names, tj_tensor *const *ts,
                         int nmeta, const char *const *meta_keys, const char *const *meta_values);
/* Loads every tensor (into the innermost scope); *names and *ts are arrays the caller frees
 * with tj_safetensors_free_list. */
int  tj_safetensors_load(const char *path, int *n, char ***names, tj_tensor ***ts);
void tj_safetensors_free_list(int n, char **names, tj_tensor **ts);

/* ---- profiling ------------------------------------------------------------------------------
 * A Chrome trace (open it in Perfetto or chrome://tracing): eager ops with their shapes,
 * compiled calls and each kernel inside them, and compile stages. Env TJ_PROFILE=file.json
 * profiles the whole process (written at exit); or start and stop it here. */
int  tj_profile_start(const char *path);
int  tj_profile_stop(void);                                   /* writes the file */

/* ---- threads and BLAS ------------------------------------------------------------------- */

/* Threads for eager kernels and BLAS (default: env TJ_THREADS, else 1). Results do not
 * depend on the count. */
int         tj_set_threads(int n);
int         tj_threads(void);
/* Which BLAS and kernels matmul uses, e.g. "OpenBLAS 0.3.21 core=SkylakeX (chosen by
 * tapejit: CPU has AVX-512)". */
const char *tj_blas_info(void);

#ifdef __cplusplus
}
#endif
#endif
