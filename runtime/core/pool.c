/* pool.c: the one thread pool of the process (tj_parallel_for, tj_set_threads, tj_threads).
 * Workers are created lazily, kept for the life of the process and live in static arrays,
 * so the pool never allocates (nothing for LeakSanitizer to find). One job runs at a time;
 * the caller takes part, tasks are handed out by an atomic counter. A call made while the
 * pool is busy (a nested call from a task, or another user thread's job) runs serially in
 * its caller, which is correct because callers split work into fixed pieces.
 * Tasks run on other threads: they must not use the caller's per-thread state (errors,
 * scopes, RNG position). Needs _POSIX_C_SOURCE for pthread_sigmask. */
#define _POSIX_C_SOURCE 200809L
#include "core.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#define MAX_THREADS 256
#define SPIN 2000          /* polls before a worker or the caller sleeps on a condvar */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* The job word packs the generation (bits 9..63) and how many workers take part
 * (bits 0..8), so a worker decides with one load whether it belongs to the job it saw.
 * Tasks are claimed from the ticket, (uint32)generation << 32 | next index, by a
 * compare-and-swap that doubles as the check of a seqlock over the job's fields: a worker
 * that wakes late, after its job ended and maybe another began, fails the swap and touches
 * nothing. So the caller waits for the tasks, never for a worker that is not running. */
#define JOB_WORKERS(w) ((int)((w) & 511u))
#define MAX_TASKS 0xffffffffll  /* per job (indices stay below CLOSED); more: several jobs */

typedef void task_fn(void *ctx, int64_t i);

static struct {
    pthread_mutex_t busy;        /* held by the thread whose job runs */
    pthread_mutex_t lock;        /* guards the two condvars */
    pthread_cond_t  wake;        /* workers wait here for a new job word */
    pthread_cond_t  done;        /* the caller waits here for the last task */
    _Atomic uint64_t job;        /* generation << 9 | workers taking part */
    /* the job: written by the caller before the job word, read by workers after it */
    _Atomic(task_fn *) fn;
    _Atomic(void *) ctx;
    _Atomic int64_t base;        /* task t of the job is fn(ctx, base + t) */
    _Atomic uint32_t count;      /* tasks in the job */
    _Atomic uint64_t ticket;
    _Atomic uint32_t finished;   /* tasks completed */
    int nstarted;                /* workers created so far (under busy) */
    pthread_t tid[MAX_THREADS];
    int index[MAX_THREADS];      /* the argument of worker i: its number, from 1 */
    uint64_t born[MAX_THREADS];  /* the generation when worker i was created */
} pool = {
    .busy = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

static _Atomic int nthreads;           /* the setting; 0 until init */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static _Thread_local int in_pool;      /* this thread runs tasks of a job now */

/* After fork the child has only the forking thread: forget the workers. */
static void after_fork_child(void) {
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.nstarted = 0;
    in_pool = 0;
}

static void init(void) {
    int n = 1;
    const char *s = getenv("TJ_THREADS");
    if (s && *s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno == 0 && *end == '\0' && v >= 1 && v <= MAX_THREADS) n = (int)v;
    }
    atomic_store(&nthreads, n);
    pthread_atfork(NULL, NULL, after_fork_child);
}

int tj_threads(void) {
    pthread_once(&init_once, init);
    return atomic_load(&nthreads);
}

int tj_set_threads(int n) {
    if (n < 1 || n > MAX_THREADS)
        return tj_err(TJ_ERR_ARG, "set_threads: n is %d, expected 1 to %d", n, MAX_THREADS);
    pthread_once(&init_once, init);
    atomic_store(&nthreads, n);
    return 0;
}

#define CLOSED 0xffffffffu       /* ticket index while the fields are being written */

/* Runs the tasks of job gen that nobody claimed yet. The fields are read between an
 * acquire load of the ticket and the swap on it, a seqlock: run_job closes the ticket
 * before it rewrites them with release stores, so a worker that read a newer field also
 * sees the closed ticket and its swap fails; a successful swap proves the fields were
 * those of job gen. A claimed task keeps the job from ending until it is counted. */
static void work(uint64_t gen) {
    const uint32_t g = (uint32_t)gen;
    uint32_t mine = 0, count = 0;
    for (;;) {
        uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
        task_fn *fn = atomic_load_explicit(&pool.fn, memory_order_acquire);
        void *ctx = atomic_load_explicit(&pool.ctx, memory_order_acquire);
        int64_t base = atomic_load_explicit(&pool.base, memory_order_acquire);
        uint32_t c = atomic_load_explicit(&pool.count, memory_order_acquire);
        if ((uint32_t)(t >> 32) != g || (uint32_t)t >= c) break;   /* ended, or closed */
        if (!atomic_compare_exchange_strong(&pool.ticket, &t, t + 1)) continue;
        fn(ctx, base + (int64_t)(uint32_t)t);
        mine++;
        count = c;
    }
    if (mine && atomic_fetch_add(&pool.finished, mine) + mine == count) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_signal(&pool.done);
        pthread_mutex_unlock(&pool.lock);
    }
}

static void *worker(void *arg) {
    const int me = *(const int *)arg;
    /* Not the current job word: the job we were created for may be published already. */
    uint64_t seen = pool.born[me - 1];
    in_pool = 1;      /* a worker's nested tj_parallel_for runs serially */
    for (;;) {
        uint64_t w = atomic_load(&pool.job);
        for (int s = 0; s < SPIN && w >> 9 == seen; s++) {
            cpu_relax();
            w = atomic_load(&pool.job);
        }
        if (w >> 9 == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((w = atomic_load(&pool.job)) >> 9 == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = w >> 9;
        if (me <= JOB_WORKERS(w)) work(seen);
    }
    return NULL;
}

/* Starts workers up to number want (under busy); returns how many exist. Workers block
 * every signal, so signals go to the program's own threads. */
static int start_workers(int want) {
    if (pool.nstarted >= want) return pool.nstarted;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool.nstarted < want) {
        int i = pool.nstarted;
        pool.index[i] = i + 1;
        pool.born[i] = atomic_load(&pool.job) >> 9;
        pthread_attr_t attr;
        if (pthread_attr_init(&attr)) break;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&pool.tid[i], &attr, worker, &pool.index[i]);
        pthread_attr_destroy(&attr);
        if (rc) break;      /* out of threads: run with the ones we have */
        pool.nstarted++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool.nstarted;
}

/* One job of count tasks with k workers besides the caller (busy is held). */
static void run_job(task_fn *fn, void *ctx, int64_t base, uint32_t count, int k) {
    uint64_t gen = (atomic_load(&pool.job) >> 9) + 1;
    uint64_t open = (uint64_t)(uint32_t)gen << 32;
    /* release stores: a worker that reads one of them sees the closed ticket after it */
    atomic_store_explicit(&pool.ticket, open | CLOSED, memory_order_relaxed);
    atomic_store_explicit(&pool.fn, fn, memory_order_release);
    atomic_store_explicit(&pool.ctx, ctx, memory_order_release);
    atomic_store_explicit(&pool.base, base, memory_order_release);
    atomic_store_explicit(&pool.count, count, memory_order_release);
    atomic_store_explicit(&pool.finished, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.ticket, open, memory_order_release);
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.job, gen << 9 | (uint64_t)k);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    in_pool = 1;
    work(gen);
    in_pool = 0;

    for (int s = 0; s < SPIN && atomic_load(&pool.finished) < count; s++) cpu_relax();
    if (atomic_load(&pool.finished) < count) {
        pthread_mutex_lock(&pool.lock);
        while (atomic_load(&pool.finished) < count) pthread_cond_wait(&pool.done, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
}

void tj_parallel_for(int64_t n, void (*fn)(void *ctx, int64_t i), void *ctx) {
    if (n <= 0) return;
    int threads = tj_threads();
    if (threads == 1 || n == 1 || in_pool || pthread_mutex_trylock(&pool.busy) != 0) {
        for (int64_t i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    int want = (int64_t)threads < n ? threads - 1 : (int)n - 1;   /* besides the caller */
    int k = start_workers(want);
    if (k > want) k = want;
    if (k == 0) {
        pthread_mutex_unlock(&pool.busy);
        for (int64_t i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    for (int64_t base = 0; base < n; base += MAX_TASKS)
        run_job(fn, ctx, base, (uint32_t)(n - base < MAX_TASKS ? n - base : MAX_TASKS), k);
    pthread_mutex_unlock(&pool.busy);
}
