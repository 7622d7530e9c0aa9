/* engine.c: the one ORC LLJIT of the process, its target machines, symbols and pipeline,
 * and the disk cache's use (cache.c stores the files).
 * Owns the LLJIT (made under pthread_once, disposed at exit), a pool of TargetMachines set
 * up exactly as the JIT's own, the defined symbols. A module is optimised and emitted as
 * an object file on the calling thread with its own TM (compiles run in parallel), then
 * linked into the JIT (notes/LLVM.md §6.3 (b)); with TJ_CACHE_DIR the object is stored,
 * and a later module with the same key links the stored object instead.
 * Locks (order jit_mu, then mu): jit_mu around every LLJIT call, since its one linker is
 * not thread-safe (notes/LLVM.md §6.3); mu around the TM pool and the count of compiles
 * in flight. Never sets unsafe-fp-math or any fast-math (no FMA contraction: eager ==
 * compiled) and never hard-codes CPU features.
 * Process-lifetime state uses malloc, not the user's hook: it outlives any hook set later. */
#define _POSIX_C_SOURCE 200809L
#include "engine.h"
#include "cache.h"
#include "core/core.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm/Config/llvm-config.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if LLVM_VERSION_MAJOR >= 15
typedef LLVMOrcCSymbolMapPair symbol_pair;
#else
typedef LLVMJITCSymbolMapPair symbol_pair;
#endif

struct tj_jit_code {
    LLVMOrcResourceTrackerRef rt;     /* ours (one reference); NULL while pending and once the
                                         engine shut down */
    tj_jit_code *prev, *next;         /* the live list, under jit_mu */
    uint64_t hash;                    /* of its cache key, when cached_names */
    bool cached_names;                /* its names carry the hash: one such module at a time */
};

typedef struct defined { char *name; void *addr; } defined;

#define MAX_NAME 400                  /* longest symbol name looked up */
#define POOL_MAX 8                    /* idle TMs kept; more threads make and drop their own */

static struct {
    pthread_once_t  once;
    int             init_code;        /* 0 or TJ_ERR_JIT, set once by init_once */
    char            init_msg[512];

    /* set by init_once, read-only afterwards */
    LLVMTargetRef   target;
    char            triple[128], cpu[64], datalayout[256];
    char           *features;         /* malloc'd */
    int             lanes, opt_level;   /* the default level (TJ_JIT_OPT) */
    char            pipeline[512];    /* IR passes at levels 1-3 (TJ_JIT_PIPELINE) */

    pthread_mutex_t jit_mu;           /* guards everything below up to mu */
    LLVMOrcLLJITRef jit;
    LLVMOrcJITDylibRef jd;
    defined        *syms;             /* tj_engine_define'd names (malloc'd) */
    size_t          nsyms, capsyms;
    tj_jit_code     live;             /* sentinel of the list of codes not yet freed */
    char            session_msg[400]; /* what the session error reporter said in this call */

    pthread_mutex_t mu;               /* guards pool, npool, inflight */
    LLVMTargetMachineRef pool[POOL_MAX];
    int             npool, inflight;

    atomic_bool     ok;               /* init succeeded and exit has not run: facts valid */
    atomic_bool     shut;             /* set at exit (under both locks) */
    atomic_ullong   next_id;          /* suffix of private names */
} E = {
    .once = PTHREAD_ONCE_INIT,
    .jit_mu = PTHREAD_MUTEX_INITIALIZER,
    .mu = PTHREAD_MUTEX_INITIALIZER,
};

/* ---- errors: the one helper that turns LLVM's messages into ours ---------------------- */

/* Writes "jit: <what>: <LLVM's message>" into buf and consumes err or msg (either may be
 * NULL; msg is an LLVM-allocated string, as the verifier and LLVMCreate* return). */
static void vformat_llvm(char *buf, size_t size, LLVMErrorRef err, char *msg,
                         const char *fmt, va_list ap) {
    int k = snprintf(buf, size, "jit: ");
    k += vsnprintf(buf + k, size - (size_t)k, fmt, ap);
    if ((size_t)k >= size) k = (int)size - 1;
    if (err) {
        char *m = LLVMGetErrorMessage(err);   /* consumes err */
        snprintf(buf + k, size - (size_t)k, ": %s", m);
        LLVMDisposeErrorMessage(m);
    } else if (msg) {
        snprintf(buf + k, size - (size_t)k, ": %s", msg);
    }
    if (msg) LLVMDisposeMessage(msg);
    /* LLVM's messages end with newlines; ours are one line where possible */
    for (char *p = buf + strlen(buf); p > buf && (p[-1] == '\n' || p[-1] == ' '); p--) p[-1] = '\0';
}

/* TJ_ERR_JIT with LLVM's message; consumes err / msg. */
__attribute__((format(printf, 3, 4)))
static int jit_fail(LLVMErrorRef err, char *msg, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vformat_llvm(buf, sizeof buf, err, msg, fmt, ap);
    va_end(ap);
    return tj_err(TJ_ERR_JIT, "%s", buf);
}

/* For init_once: the message goes to E.init_msg, which every later tj_engine_init reports
 * on its own thread (errors are per thread). */
__attribute__((format(printf, 3, 4)))
static void init_fail(LLVMErrorRef err, char *msg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat_llvm(E.init_msg, sizeof E.init_msg, err, msg, fmt, ap);
    va_end(ap);
    E.init_code = TJ_ERR_JIT;
}

/* Symbols that cannot be resolved while linking reach only this reporter (the lookup gets
 * a generic "Failed to materialize"). Runs under jit_mu, on the thread that looks up. */
static void report_session_error(void *ctx, LLVMErrorRef err) {
    (void)ctx;
    char *m = LLVMGetErrorMessage(err);       /* consumes err */
    size_t k = strlen(E.session_msg);
    if (k + 8 < sizeof E.session_msg)
        snprintf(E.session_msg + k, sizeof E.session_msg - k, "%s%s", k ? "; " : "", m);
    LLVMDisposeErrorMessage(m);
}

/* ---- setup and teardown ------------------------------------------------------------------- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Whether the comma-separated feature list has exactly +name. */
static bool has_feature(const char *features, const char *name) {
    size_t n = strlen(name);
    for (const char *p = features; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n + 1 && p[0] == '+' && memcmp(p + 1, name, n) == 0) return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* A TM configured as the JIT's: same triple, CPU, features, reloc and code model, the
 * codegen level of optimisation level `level`, default TargetOptions (AllowFPOpFusion=
 * Standard: only llvm.fmuladd fuses). */
static LLVMTargetMachineRef make_tm(int level) {
    static const LLVMCodeGenOptLevel cg[4] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess,
                                              LLVMCodeGenLevelDefault, LLVMCodeGenLevelAggressive};
    return LLVMCreateTargetMachine(E.target, E.triple, E.cpu, E.features, cg[level],
                                   LLVMRelocDefault, LLVMCodeModelJITDefault);
}

static bool copy_str(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n >= size) return false;
    memcpy(dst, src, n + 1);
    return true;
}

static void engine_exit(void);

/* The IR passes of levels 1-3. The IR is explicit vector code, so none of LLVM's
 * vectorisers, unrolling or inlining have work to do: the passes that do are SROA (a
 * loop's accumulators and slots into registers), CSE, instcombine, LICM (loop-invariant
 * loads and splats out of the loops), GVN and CFG cleanup. On W1, W2 and W3 the steps
 * run as fast as after default<O2>, whose IR passes took 8-14x longer (49-100 ms against
 * 5-7 ms) and its code 1.5-2x longer to generate. */
#define LIGHT_PIPELINE                                                                       \
    "function(sroa,early-cse<memssa>,simplifycfg,instcombine,loop-mssa(licm),gvn,instcombine,simplifycfg)"

static void init_once(void) {
    const char *env = getenv("TJ_JIT_OPT");
    E.opt_level = 2;
    if (env && *env) {
        if (env[1] != '\0' || env[0] < '0' || env[0] > '3') {
            init_fail(NULL, NULL, "TJ_JIT_OPT must be 0, 1, 2 or 3, not '%.40s'", env);
            return;
        }
        E.opt_level = env[0] - '0';
    }
    const char *pipe = getenv("TJ_JIT_PIPELINE");
    if (!copy_str(E.pipeline, sizeof E.pipeline, pipe && *pipe ? pipe : LIGHT_PIPELINE)) {
        init_fail(NULL, NULL, "TJ_JIT_PIPELINE is longer than %zu characters", sizeof E.pipeline - 1);
        return;
    }

    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) {
        init_fail(NULL, NULL, "LLVM has no native target for this host");
        return;
    }
    E.live.prev = E.live.next = &E.live;
    atexit(engine_exit);   /* from here on LLVM holds state worth releasing */

    char *triple = LLVMGetDefaultTargetTriple();
    bool ok = copy_str(E.triple, sizeof E.triple, triple);
    LLVMDisposeMessage(triple);
    if (!ok) { init_fail(NULL, NULL, "target triple too long"); return; }
    char *err = NULL;
    if (LLVMGetTargetFromTriple(E.triple, &E.target, &err)) {
        init_fail(NULL, err, "no target for %s", E.triple);
        return;
    }
    LLVMDisposeMessage(err);
    char *cpu = LLVMGetHostCPUName();
    ok = copy_str(E.cpu, sizeof E.cpu, cpu);
    LLVMDisposeMessage(cpu);
    if (!ok) { init_fail(NULL, NULL, "host CPU name too long"); return; }

    /* Vector width (notes §3.1-3.2): CPUs with AVX-512 carry the prefer-256-bit tuning, so
     * the vectorisers would use ymm; dropping it lets them use zmm, and our explicit
     * <16 x float> IR is kept whole. Both TMs (passes, JIT codegen) get the same string. */
    char *host = LLVMGetHostCPUFeatures();
    E.lanes = has_feature(host, "avx512f") ? 16 : has_feature(host, "avx2") ? 8 : 4;
    const char *extra = E.lanes == 16 ? ",-prefer-256-bit" : "";
    size_t n = strlen(host) + strlen(extra) + 1;
    E.features = malloc(n);
    if (E.features) snprintf(E.features, n, "%s%s", host, extra);
    LLVMDisposeMessage(host);
    if (!E.features) { init_fail(NULL, NULL, "out of memory"); return; }

    /* The JIT's codegen TM is built from one of ours, so the two agree (notes §3.1). */
    LLVMTargetMachineRef tm = make_tm(E.opt_level);
    if (!tm) { init_fail(NULL, NULL, "cannot create a target machine for %s", E.cpu); return; }
    LLVMOrcJITTargetMachineBuilderRef jtmb =
        LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm);   /* disposes tm */
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);    /* builder owns jtmb */
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&E.jit, builder);           /* takes builder, always */
    if (e) { E.jit = NULL; init_fail(e, NULL, "cannot create the LLJIT"); return; }

    LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(E.jit),
                                            report_session_error, NULL);
    E.jd = LLVMOrcLLJITGetMainJITDylib(E.jit);
    if (!copy_str(E.datalayout, sizeof E.datalayout, LLVMOrcLLJITGetDataLayoutStr(E.jit))) {
        init_fail(NULL, NULL, "data layout too long");
        return;
    }
    /* Symbols not defined explicitly come from the process: memset/memcpy that LLVM emits
     * for loop idioms, libm. The runtime's own kernels and BLAS are defined explicitly. */
    LLVMOrcDefinitionGeneratorRef gen;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
        &gen, LLVMOrcLLJITGetGlobalPrefix(E.jit), NULL, NULL);
    if (e) { init_fail(e, NULL, "cannot search the process for symbols"); return; }
    LLVMOrcJITDylibAddGenerator(E.jd, gen);                        /* jd owns gen */
    atomic_store(&E.ok, true);
}

/* At exit: remove the code nobody freed, dispose the LLJIT and our TMs, then LLVMShutdown,
 * so LeakSanitizer and valgrind find nothing. If a compile is still running on another
 * thread, LLVM is left alone: tearing it down under that thread would crash. */
static void engine_exit(void) {
    pthread_mutex_lock(&E.jit_mu);
    pthread_mutex_lock(&E.mu);
    if (E.inflight > 0) {
        pthread_mutex_unlock(&E.mu);
        pthread_mutex_unlock(&E.jit_mu);
        return;
    }
    atomic_store(&E.shut, true);
    atomic_store(&E.ok, false);
    for (int i = 0; i < E.npool; i++) LLVMDisposeTargetMachine(E.pool[i]);
    E.npool = 0;
    pthread_mutex_unlock(&E.mu);

    /* A tracker must be released before its session dies; the code's owner may still call
     * tj_engine_free, which then only frees the handle. Errors here have no one to go to. */
    while (E.live.next != &E.live) {
        tj_jit_code *c = E.live.next;
        c->prev->next = c->next;
        c->next->prev = c->prev;
        c->prev = c->next = NULL;
        LLVMErrorRef e = LLVMOrcResourceTrackerRemove(c->rt);
        if (e) LLVMConsumeError(e);
        LLVMOrcReleaseResourceTracker(c->rt);
        c->rt = NULL;
    }
    if (E.jit) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(E.jit);
        if (e) LLVMConsumeError(e);
        E.jit = NULL;
    }
    for (size_t i = 0; i < E.nsyms; i++) free(E.syms[i].name);
    free(E.syms);
    E.syms = NULL;
    E.nsyms = E.capsyms = 0;
    free(E.features);
    E.features = NULL;
    pthread_mutex_unlock(&E.jit_mu);
    LLVMShutdown();
}

int tj_engine_init(void) {
    pthread_once(&E.once, init_once);
    if (E.init_code) return tj_err(TJ_ERR_JIT, "%s", E.init_msg);
    if (atomic_load(&E.shut)) return tj_err(TJ_ERR_JIT, "jit: the engine was shut down (process exit)");
    return 0;
}

int         tj_engine_vector_lanes(void) { return atomic_load(&E.ok) ? E.lanes : 4; }
const char *tj_engine_cpu(void)          { return atomic_load(&E.ok) ? E.cpu : ""; }
const char *tj_engine_features(void)     { return atomic_load(&E.ok) ? E.features : ""; }
const char *tj_engine_triple(void)       { return atomic_load(&E.ok) ? E.triple : ""; }
int         tj_engine_opt_level(void)    { return atomic_load(&E.ok) ? E.opt_level : 2; }
const char *tj_engine_pipeline(void)     { return atomic_load(&E.ok) ? E.pipeline : ""; }

/* ---- symbols -------------------------------------------------------------------------------- */

int tj_engine_define(const char *name, void *addr) {
    if (!name || !*name || !addr)
        return tj_err(TJ_ERR_ARG, "jit: define: needs a name and a non-NULL address");
    int rc = tj_engine_init();
    if (rc) return rc;

    pthread_mutex_lock(&E.jit_mu);
    if (atomic_load(&E.shut)) {
        rc = tj_err(TJ_ERR_JIT, "jit: define '%s': the engine was shut down", name);
        goto out;
    }
    for (size_t i = 0; i < E.nsyms; i++)
        if (strcmp(E.syms[i].name, name) == 0) {
            if (E.syms[i].addr != addr)
                rc = tj_err(TJ_ERR_JIT, "jit: define '%s': already defined at another address", name);
            goto out;
        }
    if (E.nsyms == E.capsyms) {
        size_t cap = E.capsyms ? 2 * E.capsyms : 16;
        defined *s = realloc(E.syms, cap * sizeof *s);
        if (!s) { rc = tj_err(TJ_ERR_OOM, "jit: define '%s': out of memory", name); goto out; }
        E.syms = s;
        E.capsyms = cap;
    }
    size_t len = strlen(name);
    char *copy = malloc(len + 1);
    if (!copy) { rc = tj_err(TJ_ERR_OOM, "jit: define '%s': out of memory", name); goto out; }
    memcpy(copy, name, len + 1);

    symbol_pair pair;
    pair.Name = LLVMOrcLLJITMangleAndIntern(E.jit, name);   /* one reference, ours */
    pair.Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)addr;
    pair.Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
    pair.Sym.Flags.TargetFlags = 0;
    LLVMOrcMaterializationUnitRef unit = LLVMOrcAbsoluteSymbols(&pair, 1);  /* takes pair.Name */
    LLVMErrorRef e = LLVMOrcJITDylibDefine(E.jd, unit);  /* on success jd owns unit; else we do */
    if (e) {
        LLVMOrcDisposeMaterializationUnit(unit);
        free(copy);
        rc = jit_fail(e, NULL, "define '%s'", name);
        goto out;
    }
    E.syms[E.nsyms++] = (defined){copy, addr};
out:
    pthread_mutex_unlock(&E.jit_mu);
    return rc;
}

/* ---- modules ----------------------------------------------------------------------------- */

int tj_engine_module(const char *name, LLVMOrcThreadSafeContextRef *tsc, LLVMModuleRef *mod) {
    if (tsc) *tsc = NULL;
    if (mod) *mod = NULL;
    if (!name || !tsc || !mod) return tj_err(TJ_ERR_ARG, "jit: module: NULL argument");
    int rc = tj_engine_init();
    if (rc) return rc;
    /* one context per module, so threads never share one (notes §6.3) */
    LLVMOrcThreadSafeContextRef t = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext(name, LLVMOrcThreadSafeContextGetContext(t));
    LLVMSetTarget(m, E.triple);
    LLVMSetDataLayout(m, E.datalayout);
    *tsc = t;   /* the caller owns both now */
    *mod = m;
    return 0;
}

/* A tj_mem_alloc'd copy of n bytes of LLVM text; NULL (and TJ_ERR_OOM) on failure. */
static char *copy_text(const char *s, size_t n) {
    char *p = tj_mem_alloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Counts a compile as in flight (*counted) and takes a TM of `level` for this thread's use
 * (the pool holds the default level's). */
static int begin_job(int level, LLVMTargetMachineRef *tm, bool *counted) {
    pthread_mutex_lock(&E.mu);
    if (atomic_load(&E.shut)) {
        pthread_mutex_unlock(&E.mu);
        return tj_err(TJ_ERR_JIT, "jit: the engine was shut down (process exit)");
    }
    E.inflight++;
    *counted = true;
    *tm = E.npool > 0 && level == E.opt_level ? E.pool[--E.npool] : NULL;
    pthread_mutex_unlock(&E.mu);
    if (!*tm) *tm = make_tm(level);
    if (!*tm) return tj_err(TJ_ERR_JIT, "jit: cannot create a target machine for %s", E.cpu);
    return 0;
}

static void give_back_tm(LLVMTargetMachineRef tm, int level) {
    if (!tm) return;
    pthread_mutex_lock(&E.mu);
    if (E.npool < POOL_MAX && level == E.opt_level) {
        E.pool[E.npool++] = tm;
        tm = NULL;
    }
    pthread_mutex_unlock(&E.mu);
    if (tm) LLVMDisposeTargetMachine(tm);
}

static void end_job(void) {
    pthread_mutex_lock(&E.mu);
    E.inflight--;
    pthread_mutex_unlock(&E.mu);
}

/* The module's external definition called name, or NULL. */
static LLVMValueRef external_definition(LLVMModuleRef mod, const char *name) {
    LLVMValueRef v = LLVMGetNamedFunction(mod, name);
    if (v && LLVMIsDeclaration(v)) v = NULL;
    if (!v) {
        v = LLVMGetNamedGlobal(mod, name);
        if (v && LLVMIsDeclaration(v)) v = NULL;
    }
    if (v && (LLVMGetLinkage(v) == LLVMInternalLinkage || LLVMGetLinkage(v) == LLVMPrivateLinkage))
        v = NULL;
    return v;
}

/* Appends suffix to the name of v if it is an external definition (not llvm.*), so that
 * modules never clash in the one JITDylib; the dumps were printed before, with the names
 * as written, so they stay deterministic. */
static int privatise(LLVMValueRef v, const char *suffix) {
    if (LLVMIsDeclaration(v)) return 0;
    LLVMLinkage l = LLVMGetLinkage(v);
    if (l == LLVMInternalLinkage || l == LLVMPrivateLinkage) return 0;
    size_t len, slen = strlen(suffix);
    const char *name = LLVMGetValueName2(v, &len);
    if (len == 0 || (len >= 5 && memcmp(name, "llvm.", 5) == 0)) return 0;
    char small[256], *buf = small;
    if (len + slen + 1 > sizeof small && !(buf = tj_mem_alloc(len + slen + 1))) return TJ_ERR_OOM;
    memcpy(buf, name, len);
    memcpy(buf + len, suffix, slen + 1);
    LLVMSetValueName2(v, buf, len + slen);
    size_t got;
    const char *now = LLVMGetValueName2(v, &got);
    int rc = 0;
    if (got != len + slen || memcmp(now, buf, got) != 0)   /* LLVM renamed it: name taken */
        rc = tj_err(TJ_ERR_JIT, "jit: cannot make '%.*s' private: '%s' exists", (int)len, buf, buf);
    if (buf != small) tj_mem_free(buf, len + slen + 1);
    return rc;
}

/* ---- the disk cache ---------------------------------------------------------------------- */

/* The cache key of mod (tj_mem_alloc'd, *n bytes): what its machine code depends on (LLVM,
 * target, level, IR passes), then the IR as built, then a 0. NULL on OOM. */
static char *cache_key(LLVMModuleRef mod, int level, size_t *n) {
    static const char fmt[] = "tapejit compiled code 2\nLLVM %s\n%s\n%s\n%s\nO%d\n%s\n";
    const char *pipeline = level > 0 ? E.pipeline : "";
    int h = snprintf(NULL, 0, fmt, LLVM_VERSION_STRING, E.triple, E.cpu, E.features, level, pipeline);
    char *ir = LLVMPrintModuleToString(mod);
    size_t irlen = strlen(ir);
    char *key = h < 0 ? NULL : tj_mem_alloc((size_t)h + irlen + 1);
    if (key) {
        snprintf(key, (size_t)h + 1, fmt, LLVM_VERSION_STRING, E.triple, E.cpu, E.features, level, pipeline);
        memcpy(key + h, ir, irlen + 1);
        *n = (size_t)h + irlen + 1;
    }
    LLVMDisposeMessage(ir);
    return key;
}

/* Under jit_mu: whether a live or pending module was made from the same cache entry (its
 * names would clash with this one's). */
static bool entry_in_use(uint64_t hash) {
    for (tj_jit_code *c = E.live.next; c != &E.live; c = c->next)
        if (c->cached_names && c->hash == hash) return true;
    return false;
}

/* Under jit_mu: c joins the list of live modules (pending until linked). */
static void live_insert(tj_jit_code *c) {
    c->next = &E.live;
    c->prev = E.live.prev;
    E.live.prev->next = c;
    E.live.prev = c;
}

static void live_remove(tj_jit_code *c) {
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* ---- adding a module ------------------------------------------------------------------------ */

/* Gives every external definition of mod the suffix (not llvm.*), so that modules never
 * clash in the one JITDylib; the dumps were printed before, with the names as written. */
static int privatise_all(LLVMModuleRef mod, const char *suffix) {
    int rc = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f && !rc; f = LLVMGetNextFunction(f)) rc = privatise(f, suffix);
    for (LLVMValueRef g = LLVMGetFirstGlobal(mod); g && !rc; g = LLVMGetNextGlobal(g)) rc = privatise(g, suffix);
    for (LLVMValueRef a = LLVMGetFirstGlobalAlias(mod); a && !rc; a = LLVMGetNextGlobalAlias(a)) rc = privatise(a, suffix);
    return rc;
}

/* Optimises mod, makes the texts asked for, privatises its names and emits its object
 * file into *obj, all with this thread's tm (no lock: compiles run in parallel). */
static int optimise_and_emit(LLVMModuleRef mod, LLVMTargetMachineRef tm, int level, const char *modname, const char *suffix,
                             char **ir_opt, char **asm_text, LLVMMemoryBufferRef *obj, tj_compile_times *t) {
    double t0 = now_ms();
    const char *pipeline = level > 0 ? E.pipeline : "default<O0>";
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMErrorRef e = LLVMRunPasses(mod, pipeline, tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (e) return jit_fail(e, NULL, "optimise module '%s' (%s)", modname, pipeline);
    double t1 = now_ms();
    t->passes_ms = t1 - t0;
    if (ir_opt) {
        char *s = LLVMPrintModuleToString(mod);
        *ir_opt = copy_text(s, strlen(s));
        LLVMDisposeMessage(s);
        if (!*ir_opt) return TJ_ERR_OOM;
    }
    /* emitting rewrites the module (CodeGenPrepare, notes §6.5): assembly from a clone */
    char *emsg = NULL;
    if (asm_text) {
        LLVMModuleRef clone = LLVMCloneModule(mod);
        LLVMMemoryBufferRef buf = NULL;
        LLVMBool bad = LLVMTargetMachineEmitToMemoryBuffer(tm, clone, LLVMAssemblyFile, &emsg, &buf);
        LLVMDisposeModule(clone);
        if (bad) return jit_fail(NULL, emsg, "emit assembly of module '%s'", modname);
        *asm_text = copy_text(LLVMGetBufferStart(buf), LLVMGetBufferSize(buf));
        LLVMDisposeMemoryBuffer(buf);
        if (!*asm_text) return TJ_ERR_OOM;
    }
    int rc = privatise_all(mod, suffix);
    if (rc) return rc;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &emsg, obj)) {
        *obj = NULL;
        return jit_fail(NULL, emsg, "emit the object file of module '%s'", modname);
    }
    t->codegen_ms = now_ms() - t1;
    return 0;
}

/* Under jit_mu: links the object under c's new resource tracker (takes obj) and looks up
 * the n names with the suffix. */
static int link_object(tj_jit_code *c, LLVMMemoryBufferRef obj, const char *modname, int n,
                       const char *const *names, const char *suffix, void **addrs) {
    E.session_msg[0] = '\0';
    c->rt = LLVMOrcJITDylibCreateResourceTracker(E.jd);  /* ours */
    LLVMErrorRef e = LLVMOrcLLJITAddObjectFileWithRT(E.jit, c->rt, obj);   /* takes obj, even on error */
    if (e) return jit_fail(e, NULL, "add module '%s'", modname);
    for (int i = 0; i < n; i++) {
        char full[MAX_NAME + 32];
        snprintf(full, sizeof full, "%s%s", names[i], suffix);
        LLVMOrcExecutorAddress a = 0;
        e = LLVMOrcLLJITLookup(E.jit, &a, full);
        if (e)   /* the root cause (e.g. "Symbols not found: [ f ]") went to the reporter */
            return jit_fail(e, NULL, "link module '%s'%s%s", modname, E.session_msg[0] ? ": " : "", E.session_msg);
        if (a == 0) return tj_err(TJ_ERR_JIT, "jit: link module '%s': '%s' has address 0", modname, names[i]);
        addrs[i] = (void *)(uintptr_t)a;
    }
    return 0;
}

static bool warned_cache;

int tj_engine_add(LLVMOrcThreadSafeContextRef tsc, LLVMModuleRef mod, int n,
                  const char *const *names, void **addrs, tj_jit_code **code,
                  tj_compile_times *times, char **ir_opt, char **asm_text) {
    return tj_engine_add_at(-1, tsc, mod, n, names, addrs, code, times, ir_opt, asm_text);
}

int tj_engine_add_at(int level, LLVMOrcThreadSafeContextRef tsc, LLVMModuleRef mod, int n,
                     const char *const *names, void **addrs, tj_jit_code **code,
                     tj_compile_times *times, char **ir_opt, char **asm_text) {
    int rc = 0;
    LLVMTargetMachineRef tm = NULL;
    LLVMMemoryBufferRef obj = NULL;
    tj_jit_code *c = NULL;
    char *key = NULL;
    size_t keylen = 0;
    bool counted = false;
    char modname[128] = "?", suffix[32];
    tj_compile_times t = {0};
    if (code) *code = NULL;
    if (ir_opt) *ir_opt = NULL;
    if (asm_text) *asm_text = NULL;
    if (addrs)
        for (int i = 0; i < n; i++) addrs[i] = NULL;
    if (!tsc || !mod || !code || n < 1 || !names || !addrs) {
        rc = tj_err(TJ_ERR_ARG, "jit: add: NULL argument or no symbol to look up (n = %d)", n);
        goto out;
    }
    if (LLVMGetModuleContext(mod) != LLVMOrcThreadSafeContextGetContext(tsc)) {
        rc = tj_err(TJ_ERR_ARG, "jit: add: the module does not belong to the given context");
        goto out;
    }
    size_t idlen;
    const char *id = LLVMGetModuleIdentifier(mod, &idlen);
    snprintf(modname, sizeof modname, "%.*s", (int)idlen, id);
    if ((rc = tj_engine_init()) != 0) goto out;
    if (level < 0) level = E.opt_level;
    if (level > 3) {
        rc = tj_err(TJ_ERR_ARG, "jit: add: optimisation level %d is not 0 to 3", level);
        goto out;
    }
    if ((rc = begin_job(level, &tm, &counted)) != 0) goto out;

    char *msg = NULL;
    if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
        rc = jit_fail(NULL, msg, "verify module '%s'", modname);
        goto out;
    }
    LLVMDisposeMessage(msg);
    for (int i = 0; i < n; i++) {
        if (!names[i] || strlen(names[i]) > MAX_NAME) {
            rc = tj_err(TJ_ERR_ARG, "jit: add: symbol %d is NULL or longer than %d bytes", i, MAX_NAME);
            goto out;
        }
        if (!external_definition(mod, names[i])) {
            rc = tj_err(TJ_ERR_JIT, "jit: module '%s' has no external definition of '%s'", modname, names[i]);
            goto out;
        }
    }
    if (!(c = tj_mem_calloc(sizeof *c))) { rc = TJ_ERR_OOM; goto out; }

    /* The cache serves modules nobody asked texts of; an entry's names carry its hash, so
     * only one module made from it may be live at a time (another compiles as usual). */
    const char *dir = getenv("TJ_CACHE_DIR");
    if (dir && *dir && !ir_opt && !asm_text && !(key = cache_key(mod, level, &keylen))) { rc = TJ_ERR_OOM; goto out; }
    pthread_mutex_lock(&E.jit_mu);
    c->hash = key ? tj_cache_hash(key, keylen) : 0;
    c->cached_names = key && !entry_in_use(c->hash);
    live_insert(c);     /* pending: holds the names until linked or dropped */
    pthread_mutex_unlock(&E.jit_mu);
    if (c->cached_names) snprintf(suffix, sizeof suffix, ".c%016llx", (unsigned long long)c->hash);
    else snprintf(suffix, sizeof suffix, ".tj%llu", (unsigned long long)atomic_fetch_add(&E.next_id, 1) + 1);

    size_t objlen = 0;
    char *cached = c->cached_names ? tj_cache_load(dir, key, keylen, &objlen) : NULL;
    if (cached) {
        double t0 = now_ms();
        obj = LLVMCreateMemoryBufferWithMemoryRangeCopy(cached, objlen, modname);
        tj_mem_free(cached, objlen);
        t.cached = true;
        t.codegen_ms = now_ms() - t0;
    } else {
        if ((rc = optimise_and_emit(mod, tm, level, modname, suffix, ir_opt, asm_text, &obj, &t))) goto out;
        const char *why;
        if (c->cached_names && tj_cache_store(dir, key, keylen, LLVMGetBufferStart(obj), LLVMGetBufferSize(obj), &why)
            && !warned_cache) {
            warned_cache = true;     /* a race between threads only repeats the warning */
            fprintf(stderr, "tapejit: warning: TJ_CACHE_DIR=%s: %s; compiling without the cache\n", dir, why);
        }
    }
    LLVMDisposeModule(mod);     /* the object is all we need now; module before its context */
    mod = NULL;
    LLVMOrcDisposeThreadSafeContext(tsc);
    tsc = NULL;

    /* ---- link: the one linker is not thread-safe (notes §6.3) ---- */
    pthread_mutex_lock(&E.jit_mu);
    double t2 = now_ms();
    rc = link_object(c, obj, modname, n, names, suffix, addrs);
    obj = NULL;
    if (rc) {
        live_remove(c);
        if (c->rt) {
            LLVMErrorRef e = LLVMOrcResourceTrackerRemove(c->rt);
            if (e) jit_fail(e, NULL, "remove module '%s'", modname);   /* the first error is kept */
            LLVMOrcReleaseResourceTracker(c->rt);
        }
        tj_mem_free(c, sizeof *c);
        c = NULL;
        for (int i = 0; i < n; i++) addrs[i] = NULL;
    }
    t.codegen_ms += now_ms() - t2;
    pthread_mutex_unlock(&E.jit_mu);
    if (!rc) {
        *code = c;
        c = NULL;
        if (times) *times = t;
    }
out:
    if (c) {      /* failed before linking: drop the pending entry */
        pthread_mutex_lock(&E.jit_mu);
        if (c->prev) live_remove(c);
        pthread_mutex_unlock(&E.jit_mu);
        tj_mem_free(c, sizeof *c);
    }
    if (key) tj_mem_free(key, keylen);
    if (obj) LLVMDisposeMemoryBuffer(obj);
    if (mod) LLVMDisposeModule(mod);           /* before its context */
    if (tsc) LLVMOrcDisposeThreadSafeContext(tsc);
    give_back_tm(tm, level);
    if (counted) end_job();
    return rc;
}

/* ---- warming up ------------------------------------------------------------------------------- */

/* LLVM creates some of its static objects on first use, and their destructors then run at
 * exit before any exit handler registered earlier: a compile still running on another
 * thread at exit would use them after they are gone. Compiling a small module at the
 * default level and at 0 (the two a background compile uses) creates them now. */
static int warm_rc;

/* A loop over <lanes x float> with the kinds of instruction lowering emits: loads and
 * stores, arithmetic, compares and selects, shuffles, lane inserts and extracts, sqrt, a
 * call out, a stack slot. */
static void warm_body(LLVMContextRef ctx, LLVMModuleRef mod, LLVMBuilderRef b) {
    LLVMTypeRef ptr = LLVMPointerType(LLVMInt8TypeInContext(ctx), 0), i64 = LLVMInt64TypeInContext(ctx);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx), f32 = LLVMFloatTypeInContext(ctx);
    LLVMTypeRef vt = LLVMVectorType(f32, (unsigned)E.lanes), args[2] = {ptr, i64};
    LLVMValueRef fn = LLVMAddFunction(mod, "warm", LLVMFunctionType(LLVMVoidTypeInContext(ctx), args, 2, 0));
    LLVMTypeRef ext_ty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), &ptr, 1, 0);
    LLVMValueRef ext = LLVMAddFunction(mod, "tj_warm_external", ext_ty);   /* declared, never run */
    LLVMTypeRef sqrt_ty = LLVMFunctionType(vt, &vt, 1, 0);
    LLVMValueRef sqrt_fn = LLVMAddFunction(mod, E.lanes == 16 ? "llvm.sqrt.v16f32" : E.lanes == 8 ? "llvm.sqrt.v8f32" : "llvm.sqrt.v4f32", sqrt_ty);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(ctx, fn, "body");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(ctx, fn, "done");
    LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef slot = LLVMBuildAlloca(b, vt, "slot");
    LLVMBuildBr(b, body);
    LLVMPositionBuilderAtEnd(b, body);
    LLVMValueRef i = LLVMBuildPhi(b, i64, "i");
    LLVMValueRef p = LLVMBuildGEP2(b, vt, LLVMGetParam(fn, 0), &i, 1, "");
    LLVMValueRef v = LLVMBuildLoad2(b, vt, p, "");
    LLVMValueRef s = LLVMBuildFDiv(b, LLVMBuildFMul(b, v, v, ""), LLVMBuildFAdd(b, v, v, ""), "");
    s = LLVMBuildCall2(b, sqrt_ty, sqrt_fn, &s, 1, "");
    LLVMValueRef gt = LLVMBuildFCmp(b, LLVMRealOGT, s, v, "");
    LLVMValueRef sel = LLVMBuildSelect(b, gt, s, v, "");
    LLVMValueRef rev[16];
    for (int l = 0; l < E.lanes; l++) rev[l] = LLVMConstInt(i32, (unsigned long long)(E.lanes - 1 - l), 0);
    sel = LLVMBuildShuffleVector(b, sel, LLVMGetPoison(vt), LLVMConstVector(rev, (unsigned)E.lanes), "");
    LLVMValueRef lane = LLVMBuildTrunc(b, i, i32, "");
    sel = LLVMBuildInsertElement(b, sel, LLVMBuildExtractElement(b, v, lane, ""), lane, "");
    LLVMBuildStore(b, sel, slot);
    LLVMBuildStore(b, LLVMBuildLoad2(b, vt, slot, ""), p);
    LLVMValueRef next = LLVMBuildAdd(b, i, LLVMConstInt(i64, 1, 0), "");
    LLVMValueRef zero = LLVMConstInt(i64, 0, 0);
    LLVMAddIncoming(i, &zero, &entry, 1);
    LLVMAddIncoming(i, &next, &body, 1);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, next, LLVMGetParam(fn, 1), ""), body, done);
    LLVMPositionBuilderAtEnd(b, done);
    LLVMValueRef arg = LLVMGetParam(fn, 0);
    LLVMBuildCall2(b, ext_ty, ext, &arg, 1, "");
    LLVMBuildRetVoid(b);
}

static int warm_rc;

static void warm_external(void *p) { (void)p; }

static void warm_once(void) {
    warm_rc = tj_engine_define("tj_warm_external", (void *)(uintptr_t)warm_external);
    for (int pass = 0; pass < 2 && !warm_rc; pass++) {
        LLVMOrcThreadSafeContextRef tsc;
        LLVMModuleRef mod;
        if ((warm_rc = tj_engine_module("tj_warm_up", &tsc, &mod))) return;
        LLVMContextRef ctx = LLVMOrcThreadSafeContextGetContext(tsc);
        LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
        warm_body(ctx, mod, b);
        LLVMDisposeBuilder(b);
        const char *name = "warm";
        void *addr;
        tj_jit_code *code;
        char *text;       /* asked for so that the disk cache stays out: codegen must run */
        warm_rc = tj_engine_add_at(pass ? 0 : -1, tsc, mod, 1, &name, &addr, &code, NULL, &text, NULL);
        if (text) tj_mem_free(text, strlen(text) + 1);
        tj_engine_free(code);
    }
}

int tj_engine_warm_up(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, warm_once);
    return warm_rc ? tj_err(TJ_ERR_JIT, "jit: warming up failed") : 0;
}

void tj_engine_free(tj_jit_code *code) {
    if (!code) return;
    pthread_mutex_lock(&E.jit_mu);
    if (code->rt) {   /* NULL once the engine shut down: the tracker went with it */
        code->prev->next = code->next;
        code->next->prev = code->prev;
        LLVMErrorRef e = LLVMOrcResourceTrackerRemove(code->rt);   /* frees the machine code */
        if (e) jit_fail(e, NULL, "free compiled code");
        LLVMOrcReleaseResourceTracker(code->rt);
    }
    pthread_mutex_unlock(&E.jit_mu);
    tj_mem_free(code, sizeof *code);
}
