/* profile.c: the profiler of profile.h. One session at a time: a buffer of events and a
 * pool of the strings they name (copied), both grown through tj_mem_* on the first events
 * and freed when the session stops, after the file is written. One lock guards the
 * session: events come from user threads only (pool workers never record), so appends
 * are rare next to an op's work, and a stop racing an event either takes it or drops it.
 * A buffer that cannot grow drops the event and counts it in the file ("otherData"); the
 * caller's error state is left as it was. Prints once only: when TJ_PROFILE's file cannot
 * be written, at start or at exit, where nobody else could report it. */
#define _GNU_SOURCE                     /* syscall(SYS_gettid) */
#include "core.h"
#include "profile.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_BYTES ((size_t)256 << 20)   /* events + strings of one session; more are dropped */
#define NO_ARGS SIZE_MAX

typedef struct event {
    double  t0, t1;                     /* tj_now_ms */
    size_t  cat, name, args;            /* offsets into str; args may be NO_ARGS */
    int32_t thread;                     /* index into threads */
} event;

typedef struct session {
    bool     active;
    char     path[4096];                /* static: the env start runs before any allocator is set */
    double   t0_ms;
    long     pid;
    unsigned gen;                       /* 1, 2, ...: which session a thread registered in */
    event   *ev;      size_t nev, capev;
    char    *str;     size_t nstr, capstr;
    long    *threads; size_t nthreads, capthreads;   /* OS thread ids, in order of first event */
    uint64_t dropped;
} session;

atomic_bool tj_profile_running;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static session S;                       /* under lock */
static bool exit_hook;                  /* under lock */
static _Thread_local unsigned my_gen;   /* S.gen when this thread registered, my_thread its index */
static _Thread_local int32_t my_thread;
static _Thread_local double op_t0;      /* tj_profile_op_begin's stamp, for tensor op_id */
static _Thread_local uint64_t op_id;

static long thread_id(void) {
#ifdef SYS_gettid
    return (long)syscall(SYS_gettid);
#else
    static _Atomic long next = 1;
    static _Thread_local long id;
    if (!id) id = atomic_fetch_add(&next, 1) + (long)getpid();
    return id;
#endif
}

/* ---- the buffers (under lock) ------------------------------------------------------------ */

static size_t bytes_held(void) {
    return S.capev * sizeof(event) + S.capstr + S.capthreads * sizeof(long);
}

/* Makes room for need elements in *arr; false (and the caller's error state unchanged)
 * when over budget or out of memory. */
static bool room(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    if (bytes_held() - *cap * elem + nc * elem > MAX_BYTES) return false;
    bool had = tj_has_error();
    void *p = tj_mem_realloc(*arr, *cap * elem, nc * elem);
    if (!p) {
        if (!had) tj_clear_error();     /* a dropped event is the profile's business only */
        return false;
    }
    *arr = p;
    *cap = nc;
    return true;
}

static size_t put_str(const char *s, size_t n) {
    size_t at = S.nstr;
    memcpy(S.str + at, s, n);
    S.str[at + n] = '\0';
    S.nstr += n + 1;
    return at;
}

static void session_free(void) {
    tj_mem_free(S.ev, S.capev * sizeof(event));
    tj_mem_free(S.str, S.capstr);
    tj_mem_free(S.threads, S.capthreads * sizeof(long));
    S.ev = NULL;
    S.str = NULL;
    S.threads = NULL;
    S.nev = S.capev = S.nstr = S.capstr = S.nthreads = S.capthreads = 0;
    S.dropped = 0;
    S.active = false;
}

void tj_profile_event(const char *cat, const char *name, double t0_ms, double t1_ms, const char *args_json) {
    if (!cat) cat = "";
    if (!name) name = "";
    size_t nc = strlen(cat), nn = strlen(name), na = args_json ? strlen(args_json) : 0;
    pthread_mutex_lock(&lock);
    if (!S.active) goto out;            /* stopped since the caller looked */
    if (my_gen != S.gen) {              /* this thread's first event in this session */
        if (!room((void **)&S.threads, &S.capthreads, S.nthreads + 1, sizeof(long))) goto drop;
        my_thread = (int32_t)S.nthreads;
        S.threads[S.nthreads++] = thread_id();
        my_gen = S.gen;
    }
    size_t need = nc + nn + 2 + (args_json ? na + 1 : 0);
    if (!room((void **)&S.str, &S.capstr, S.nstr + need, 1) ||
        !room((void **)&S.ev, &S.capev, S.nev + 1, sizeof(event))) goto drop;
    event *e = &S.ev[S.nev++];
    e->t0 = t0_ms;
    e->t1 = t1_ms;
    e->cat = put_str(cat, nc);
    e->name = put_str(name, nn);
    e->args = args_json ? put_str(args_json, na) : NO_ARGS;
    e->thread = my_thread;
    goto out;
drop:
    S.dropped++;
out:
    pthread_mutex_unlock(&lock);
}

/* ---- eager ops ---------------------------------------------------------------------------- */

void tj_profile_op_begin(const tensor *out) {
    op_t0 = tj_now_ms();
    op_id = out->id;
}

/* args: {"inputs": ["float32 (10, 3)", ...], "output": "float32 (10, 32)"} */
void tj_profile_op(const char *name, int nin, tensor *const *in, const tensor *out) {
    double t1 = tj_now_ms(), t0 = op_id == out->id ? op_t0 : t1;
    op_id = 0;
    char args[2048], shape[TJ_SHAPE_STR_MAX];
    size_t k = (size_t)snprintf(args, sizeof args, "{\"inputs\": [");
    for (int i = 0; i < nin; i++) {
        if (k > sizeof args - 3 * (TJ_SHAPE_STR_MAX + 32)) {   /* a long concat: say how many */
            k += (size_t)snprintf(args + k, sizeof args - k, "%s\"%d more\"", i ? ", " : "", nin - i);
            break;
        }
        k += (size_t)snprintf(args + k, sizeof args - k, "%s\"%s %s\"", i ? ", " : "",
                              tj_dtype_name(in[i]->dtype), tj_shape_str(&in[i]->shape, shape, sizeof shape));
    }
    snprintf(args + k, sizeof args - k, "], \"output\": \"%s %s\"}", tj_dtype_name(out->dtype),
             tj_shape_str(&out->shape, shape, sizeof shape));
    tj_profile_event("op", name, t0, t1, args);
}

/* ---- the file ------------------------------------------------------------------------------- */

/* s as a JSON string: quotes, backslashes and control bytes escaped; a byte that does not
 * start valid UTF-8 becomes U+FFFD, so any name gives a file every parser accepts. */
static void put_json_str(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') { fputc('\\', f); fputc((int)c, f); p++; continue; }
        if (c < 0x20) { fprintf(f, "\\u%04x", c); p++; continue; }
        if (c < 0x80) { fputc((int)c, f); p++; continue; }
        int n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        bool ok = n > 0;
        for (int i = 1; ok && i < n; i++) ok = (p[i] & 0xc0) == 0x80;
        if (ok && n == 3) ok = !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0);   /* overlong, surrogate */
        if (ok && n == 4) ok = !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);   /* overlong, > U+10FFFF */
        if (!ok) { fputs("\\ufffd", f); p++; continue; }
        fwrite(p, 1, (size_t)n, f);
        p += n;
    }
    fputc('"', f);
}

/* Microseconds with three decimals, written without printf's %f: the file is JSON in any locale. */
static void put_us(FILE *f, double ms) {
    long long ns = ms > 0 ? llround(ms * 1e6) : 0;
    fprintf(f, "%lld.%03lld", ns / 1000, ns % 1000);
}

static void put_events(FILE *f) {
    fputs("{\"displayTimeUnit\": \"ms\",\n"
          " \"otherData\": {\"producer\": \"tapejit\", \"dropped_events\": ", f);
    fprintf(f, "%llu", (unsigned long long)S.dropped);
    if (S.dropped)
        fprintf(f, ", \"note\": \"%llu events were dropped: the buffer could not grow (out of memory, or over %zu MiB)\"",
                (unsigned long long)S.dropped, MAX_BYTES >> 20);
    fprintf(f, "},\n \"traceEvents\": [\n"
               "  {\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %ld, \"tid\": 0, \"args\": {\"name\": \"tapejit\"}}",
            S.pid);
    for (size_t i = 0; i < S.nthreads; i++) {
        char name[48];
        if (S.threads[i] == S.pid) snprintf(name, sizeof name, "main");
        else snprintf(name, sizeof name, "thread %ld", S.threads[i]);
        fprintf(f, ",\n  {\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %ld, \"tid\": %ld, \"args\": {\"name\": \"%s\"}}",
                S.pid, S.threads[i], name);
    }
    for (size_t i = 0; i < S.nev; i++) {
        const event *e = &S.ev[i];
        fputs(",\n  {\"name\": ", f);
        put_json_str(f, S.str + e->name);
        fputs(", \"cat\": ", f);
        put_json_str(f, S.str + e->cat);
        fputs(", \"ph\": \"X\", \"ts\": ", f);
        double t0 = e->t0 > S.t0_ms ? e->t0 : S.t0_ms;          /* began before the start */
        put_us(f, t0 - S.t0_ms);
        fputs(", \"dur\": ", f);
        put_us(f, e->t1 - t0);
        fprintf(f, ", \"pid\": %ld, \"tid\": %ld, \"args\": %s}", S.pid, S.threads[e->thread],
                e->args == NO_ARGS ? "{}" : S.str + e->args);
    }
    fputs("\n ]}\n", f);
}

/* Writes S to its file; 0, or TJ_ERR_IO with why in msg. */
static int write_file(bool events, char *msg, size_t n) {
    FILE *f = fopen(S.path, "w");
    if (!f) {
        snprintf(msg, n, "cannot write the profile to '%.400s': %s", S.path, strerror(errno));
        return TJ_ERR_IO;
    }
    if (events) put_events(f);
    else fputs("{\"displayTimeUnit\": \"ms\", \"traceEvents\": []}\n", f);   /* valid while the profile runs */
    int werr = ferror(f) ? errno : 0;
    if (fclose(f) && !werr) werr = errno ? errno : EIO;
    if (werr) {
        snprintf(msg, n, "cannot write the profile to '%.400s': %s", S.path, strerror(werr));
        return TJ_ERR_IO;
    }
    return 0;
}

/* ---- start and stop -------------------------------------------------------------------------- */

static int stop_locked(char *msg, size_t n) {
    atomic_store_explicit(&tj_profile_running, false, memory_order_relaxed);
    int rc = write_file(true, msg, n);
    session_free();
    return rc;
}

/* The whole-process profile, and one that was started and never stopped, are written here.
 * A forked child (Check runs tests in one) leaves its parent's file alone. */
static void at_exit(void) {
    char msg[600];
    pthread_mutex_lock(&lock);
    if (S.active && S.pid != (long)getpid()) {
        atomic_store_explicit(&tj_profile_running, false, memory_order_relaxed);
        session_free();
    } else if (S.active && stop_locked(msg, sizeof msg)) {
        fprintf(stderr, "tapejit: warning: %s\n", msg);
    }
    pthread_mutex_unlock(&lock);
}

int tj_profile_start(const char *path) {
    if (!path || !*path) return tj_err(TJ_ERR_ARG, "profile_start: path is NULL or empty");
    if (strlen(path) >= sizeof S.path)
        return tj_err(TJ_ERR_ARG, "profile_start: path is too long (%zu bytes; at most %zu)", strlen(path), sizeof S.path - 1);
    char msg[600];
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (S.active) {
        rc = tj_err(TJ_ERR_STATE, "profile_start: a profile is already running (writing to '%.400s'); stop it first", S.path);
        goto out;
    }
    strcpy(S.path, path);
    if (write_file(false, msg, sizeof msg)) {    /* a bad path is reported now, not at the end */
        rc = tj_err(TJ_ERR_IO, "profile_start: %s", msg);
        goto out;
    }
    if (!exit_hook && atexit(at_exit)) {
        rc = tj_err(TJ_ERR_STATE, "profile_start: cannot register the exit handler that writes '%s'", path);
        goto out;
    }
    exit_hook = true;
    S.t0_ms = tj_now_ms();
    S.pid = (long)getpid();
    S.gen++;
    S.active = true;
    atomic_store_explicit(&tj_profile_running, true, memory_order_relaxed);
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

int tj_profile_stop(void) {
    char msg[600];
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (!S.active) rc = tj_err(TJ_ERR_STATE, "profile_stop: no profile is running");
    else if (stop_locked(msg, sizeof msg)) rc = tj_err(TJ_ERR_IO, "profile_stop: %s", msg);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* TJ_PROFILE=file.json: profile from load to exit. */
__attribute__((constructor)) static void profile_from_env(void) {
    const char *path = getenv("TJ_PROFILE");
    if (!path || !*path) return;
    if (tj_profile_start(path)) {
        fprintf(stderr, "tapejit: warning: TJ_PROFILE: %s\n", tj_last_error());
        tj_clear_error();
    }
}
