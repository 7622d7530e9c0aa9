/* compile.c: compiling a traced signature: the graph passes, code at a level, binding,
 * on the calling thread or on a thread of its own while calls run eagerly; two tiers
 * (level-0 code first, then the optimised code, taken up between calls); and the exit-time
 * wait for compiles in flight (LLVM cannot be torn down under a compiling thread). */
#include "signature.h"
#include "dump.h"
#include "core/profile.h"
#ifdef TJ_HAVE_JIT
#include "lower.h"
#include "core/blas.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TJ_HAVE_JIT
/* The engine's symbols, the graph passes and liveness: what every compile of s needs. */
static int sig_prepare(sig *s) {
    int rc = tj_engine_init();
    if (!rc) rc = tj_engine_define("tj_jit_call", (void *)(uintptr_t)tj_jit_call);
    /* matmul calls the routine eager uses, by its address: never by link order */
    if (!rc) rc = tj_engine_define("tj_blas_sgemm", (void *)(uintptr_t)tj_blas_sgemm);
    if (!rc) rc = tj_engine_define("tj_blas_dgemm", (void *)(uintptr_t)tj_blas_dgemm);
    if (!rc) rc = tj_engine_define("tj_blas_sgemm_piece", (void *)(uintptr_t)tj_blas_sgemm_piece);
    if (!rc) rc = tj_engine_define("tj_blas_dgemm_piece", (void *)(uintptr_t)tj_blas_dgemm_piece);
    double t0 = tj_now_ms();
    if (!rc) rc = tj_graph_optimize(s->g);
    if (rc) return rc;
    if (!(s->live = tj_mem_alloc(sizeof(bool) * (size_t)s->g->n))) return TJ_ERR_OOM;
    tj_graph_live(s->g, s->live);
    for (int i = 0; i < s->g->n; i++) s->stats.live_nodes += s->live[i] && s->g->nodes[i].replaced_by < 0;
    s->stats.graph_ms = tj_now_ms() - t0;
    if (tj_profile_on()) tj_profile_event("compile", "graph passes", t0, t0 + s->stats.graph_ms, NULL);
    return 0;
}

/* Machine code for s's graph at `level` (-1: the default) into *out; with dumps, the
 * dumps of every stage, of that code. */
static int sig_code(tj_function *f, sig *s, int level, bool dumps, tj_lowered *out) {
    unsigned what = dumps ? s->dump_what : 0;
    double t1 = tj_now_ms();
    int rc = tj_lower(s->g, s->live, f->name, tj_engine_vector_lanes(), level, what & (TJ_DUMP_LLVM | TJ_DUMP_ASM), out);
    if (rc) return rc;
    if (tj_profile_on()) {
        double b = t1 + out->ir_ms, c = b + out->times.passes_ms;
        tj_profile_event("compile", "IR build", t1, b, NULL);
        tj_profile_event("compile", "LLVM optimisation", b, c, NULL);
        tj_profile_event("compile", "codegen", c, c + out->times.codegen_ms, NULL);
    }
    return 0;
}

static void sig_stats(sig *s, const tj_lowered *low) {
    s->stats.ir_ms = low->ir_ms;
    s->stats.llvm_opt_ms = low->times.passes_ms;
    s->stats.codegen_ms = low->times.codegen_ms;
    s->stats.kernels = low->kernels;
    s->stats.cached = low->times.cached;
}

static void sig_dump(tj_function *f, sig *s, const tj_lowered *low) {
    int before = tj_error_code();
    if (s->dump_what && tj_dump_compiled(s->dump_dir, f->name, s->index, s->dump_what, s->g, s->live, low, &s->stats,
                                         s->arena_bytes)) {
        tj_jit_warn("%s: could not write the dumps: %s", f->name, tj_last_error());
        if (!before) tj_clear_error();      /* a dump is a side product: the call goes on */
    }
}

/* Compiles s at `level` and binds its buffers; the final code (not a quick first tier)
 * writes the dumps. */
static int sig_compile(tj_function *f, sig *s, int level, bool final) {
    int rc = sig_prepare(s);
    if (!rc) rc = sig_code(f, s, level, final, &s->low);
    if (!rc) rc = tj_sig_bind(s);
    if (!rc) rc = tj_sig_layout(s, true);
    if (rc) return rc;
    s->stats.arena_bytes = s->arena_bytes;
    sig_stats(s, &s->low);
    if (final) sig_dump(f, s, &s->low);
    else s->stats.quick_ms = s->low.ir_ms + s->low.times.passes_ms + s->low.times.codegen_ms;
    return 0;
}

/* The optimised code of a signature that runs quick code: into s->opt, for the caller's
 * thread to take between calls (tj_sig_upgrade). Keeps the quick code if it fails. */
static void sig_optimise(tj_function *f, sig *s) {
    int before = tj_error_code();
    if (sig_code(f, s, -1, true, &s->opt) == 0) {
        sig_stats(s, &s->opt);
        sig_dump(f, s, &s->opt);
        atomic_store(&s->opt_ready, true);
    } else {
        tj_lowered_free(&s->opt);
        tj_jit_warn("%s: could not optimise the compiled code (%s); keeping the unoptimised code", f->name,
             tj_has_error() ? tj_last_error() : "out of memory");
    }
    if (!before) tj_clear_error();
}

/* Between calls, on the caller's thread: the optimised code, if ready, replaces the quick
 * code (the same kernels, buffers and call records: only the machine code differs). */
void tj_sig_upgrade(sig *s) {
    if (!atomic_load(&s->opt_ready)) return;
    tj_lowered quick = s->low;
    s->low = s->opt;
    memset(&s->opt, 0, sizeof s->opt);
    atomic_store(&s->opt_ready, false);
    tj_lowered_free(&quick);
}

#endif

/* ---- compiling, in the call or in the background ----------------------------------------- */

static _Atomic int background = -1;     /* -1: not yet read from TJ_COMPILE */

void tj_set_background_compile(bool on) { atomic_store(&background, on); }

bool tj_compile_in_background(void) {
    int b = atomic_load(&background);
    if (b < 0) {
        const char *e = getenv("TJ_COMPILE");
        b = !e || strcmp(e, "sync") != 0;
        if (e && strcmp(e, "sync") && strcmp(e, "background"))
            tj_jit_warn("TJ_COMPILE=%s is not sync or background; compiling in the background", e);
        atomic_store(&background, b);
    }
    return b;
}

/* Compiles s, or marks it to run eagerly, with a warning once per function. Runs on the
 * calling thread or on s's own; touches nothing of f but its name and warned_fallback. */
void tj_sig_compile(tj_function *f, sig *s, bool quick) {
#ifdef TJ_HAVE_JIT
    int before = tj_error_code();
    if (sig_compile(f, s, quick ? 0 : -1, !quick) == 0) {
        atomic_store(&s->state, SIG_READY);
        return;
    }
    if (!atomic_exchange(&f->warned_fallback, true))
        tj_jit_warn("%s: could not compile (%s); running eagerly", f->name, tj_has_error() ? tj_last_error() : "out of memory");
    if (!before) tj_clear_error();      /* the fallback is the answer, not an error */
#else
    (void)quick;
    if (!atomic_exchange(&f->warned_fallback, true))
        tj_jit_warn("%s: compiled mode is unavailable (built with TJ_JIT=OFF); running eagerly", f->name);
#endif
    atomic_store(&s->state, SIG_EAGER);
}

#ifdef TJ_HAVE_JIT
/* Background compiles in flight, so that exit waits for them (LLVM cannot be torn down
 * under a compiling thread). */
static pthread_mutex_t flight_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flight_cv = PTHREAD_COND_INITIALIZER;
static int in_flight;
static pthread_once_t flight_once = PTHREAD_ONCE_INIT;

static void wait_in_flight(void) {
    pthread_mutex_lock(&flight_mu);
    while (in_flight > 0) pthread_cond_wait(&flight_cv, &flight_mu);
    pthread_mutex_unlock(&flight_mu);
}

/* Registered after the engine's own exit handler, so it runs before it. */
static void register_wait(void) { atexit(wait_in_flight); }

typedef struct compile_job { tj_function *f; sig *s; } compile_job;

/* Tiers: unoptimised code first (level 0 compiles several times faster, and its steps
 * are nearly as fast: the IR is explicit vectors), then the optimised code, unless the
 * default level is 0 already. */
static void *compile_thread(void *arg) {
    compile_job job = *(compile_job *)arg;
    tj_mem_free(arg, sizeof job);
    bool tiers = tj_engine_opt_level() > 0;
    tj_sig_compile(job.f, job.s, tiers);
    if (tiers && atomic_load(&job.s->state) == SIG_READY) sig_optimise(job.f, job.s);
    atexit(wait_in_flight);    /* after whatever this compile made LLVM register (engine.h) */
    pthread_mutex_lock(&flight_mu);
    if (--in_flight == 0) pthread_cond_broadcast(&flight_cv);
    pthread_mutex_unlock(&flight_mu);
    return NULL;
}

/* Starts compiling s on a thread of its own; compiles here if no thread can start. */
void tj_sig_compile_start(tj_function *f, sig *s) {
    int before = tj_error_code();
    /* the engine's exit handler and LLVM's static objects before ours (engine.h) */
    compile_job *job = tj_engine_init() == 0 && tj_engine_warm_up() == 0 ? tj_mem_alloc(sizeof *job) : NULL;
    if (!before) tj_clear_error();
    if (job) {
        pthread_once(&flight_once, register_wait);
        *job = (compile_job){f, s};
        pthread_mutex_lock(&flight_mu);
        in_flight++;
        pthread_mutex_unlock(&flight_mu);
        if (pthread_create(&s->thread, NULL, compile_thread, job) == 0) {
            s->joinable = true;
            return;
        }
        pthread_mutex_lock(&flight_mu);
        in_flight--;
        pthread_mutex_unlock(&flight_mu);
        tj_mem_free(job, sizeof *job);
    }
    tj_sig_compile(f, s, false);
}
#else
void tj_sig_compile_start(tj_function *f, sig *s) { tj_sig_compile(f, s, false); }
#endif

/* Waits for s's compiles to end and takes their final code. */
void tj_sig_join(sig *s) {
    if (!s->joinable) return;
    pthread_join(s->thread, NULL);
    s->joinable = false;
#ifdef TJ_HAVE_JIT
    tj_sig_upgrade(s);
#endif
}

int tj_function_wait(tj_function *f) {
    if (!f) return tj_err(TJ_ERR_ARG, "function_wait: f is NULL");
    for (sig *s = f->sigs; s; s = s->next) tj_sig_join(s);
    return 0;
}

