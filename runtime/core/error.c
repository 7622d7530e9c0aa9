/* error.c: the per-thread first error (code and message) and the memory hook.
 * The first error since tj_clear_error wins; later ones are dropped, so a chain of ops
 * reports where it first went wrong. Nothing here prints or aborts. */
#define _GNU_SOURCE               /* clock_gettime, malloc_usable_size */
#include "core.h"

#include <malloc.h>
#include <sys/mman.h>
#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local int err_code;
static _Thread_local char err_msg[512];

int tj_err(tj_error code, const char *fmt, ...) {
    if (err_code == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err_msg, sizeof err_msg, fmt, ap);
        va_end(ap);
        err_code = (int)code;
    }
    return (int)code;
}

bool        tj_has_error(void) { return err_code != 0; }
double tj_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int         tj_error_code(void) { return err_code; }
const char *tj_last_error(void) { return err_code ? err_msg : ""; }
void        tj_clear_error(void) { err_code = 0; err_msg[0] = '\0'; }

/* ---- the one allocation hook ------------------------------------------------------ */

/* The default allocator keeps a few large freed blocks for reuse by a request of the same
 * size: an eager step allocates the same big buffers every iteration, and fresh ones from
 * the system cost a page fault per 4 KB (most of W3's eager time before this cache). A
 * user's allocator bypasses it. Reuse also checks the block's real size. */
#define CACHE_MIN ((size_t)1 << 18)           /* 256 KB and up */
#define CACHE_SLOTS 256                       /* 32 overflowed on W2's eager step */
#define CACHE_CAP ((size_t)256 << 20)         /* at most 256 MB kept */

static struct { void *p; size_t n; } cache[CACHE_SLOTS];
static int ncache;
static size_t cached;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void *cache_take(size_t n) {
    void *p = NULL;
    pthread_mutex_lock(&cache_lock);
    for (int i = ncache - 1; i >= 0; i--)
        if (cache[i].n == n && malloc_usable_size(cache[i].p) >= n) {
            p = cache[i].p;
            cached -= n;
            cache[i] = cache[--ncache];
            break;
        }
    pthread_mutex_unlock(&cache_lock);
    return p;
}

static bool cache_put(void *p, size_t n) {
    bool kept = false;
    pthread_mutex_lock(&cache_lock);
    if (ncache < CACHE_SLOTS && cached + n <= CACHE_CAP) {
        cache[ncache].p = p;
        cache[ncache++].n = n;
        cached += n;
        kept = true;
    }
    pthread_mutex_unlock(&cache_lock);
    return kept;
}

static void cache_flush(void) {
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < ncache; i++) free(cache[i].p);
    ncache = 0;
    cached = 0;
    pthread_mutex_unlock(&cache_lock);
}

/* Small blocks (an eager op's tensor: header and data in one) come and go by the
 * thousand per step; malloc and free were 40% of W1's eager step. Each thread keeps
 * freed blocks in lists by size class (multiples of 64 bytes), without locks; a block
 * of a class is allocated at the class's full size, so any block of it fits. A thread's
 * lists are freed when it ends. */
#define SMALL_MAX 4096
#define SMALL_CLASSES (SMALL_MAX / 64)
#define SMALL_KEEP 256                        /* blocks kept per class */

typedef struct small_block { struct small_block *next; } small_block;
static _Thread_local struct { small_block *head[SMALL_CLASSES]; int count[SMALL_CLASSES]; bool keyed; } small;
static pthread_key_t small_key;
static pthread_once_t small_once = PTHREAD_ONCE_INIT;

static size_t small_class(size_t n) { return (n - 1) / 64; }      /* n >= 1 */

static void small_flush(void *unused) {
    (void)unused;
    for (int c = 0; c < SMALL_CLASSES; c++) {
        for (small_block *b = small.head[c], *next; b; b = next) { next = b->next; free(b); }
        small.head[c] = NULL;
        small.count[c] = 0;
    }
}

static void small_key_create(void) { pthread_key_create(&small_key, small_flush); }

static bool small_put(void *p, size_t n) {
    size_t c = small_class(n ? n : 1);
    /* a block made by another allocator (one set and reset in between) may be shorter */
    if (small.count[c] == SMALL_KEEP || malloc_usable_size(p) < (c + 1) * 64) return false;
    if (!small.keyed) {       /* the key's destructor runs at thread exit only if set */
        pthread_once(&small_once, small_key_create);
        pthread_setspecific(small_key, &small);
        small.keyed = true;
    }
    small_block *b = p;
    b->next = small.head[c];
    small.head[c] = b;
    small.count[c]++;
    return true;
}

static void *small_take(size_t n) {
    size_t c = small_class(n);
    small_block *b = small.head[c];
    if (!b) return malloc((c + 1) * 64);
    small.head[c] = b->next;
    small.count[c]--;
    return b;
}

/* Blocks of 2 MB and up start on a 2 MB boundary and ask for transparent huge pages
 * (Linux's default is to give them only where asked): one TLB entry per 2 MB instead of
 * 512. W3's eager step, 4 MB tensors, went from 3.5-3.75 to 3.33-3.39 ms. The slack before
 * the boundary is address space only, never touched. */
#define HUGE_MIN ((size_t)2 << 20)

static void *huge_alloc(size_t n) {
    void *p;
    if (posix_memalign(&p, HUGE_MIN, n)) return NULL;
    madvise(p, n / HUGE_MIN * HUGE_MIN, MADV_HUGEPAGE);   /* a hint: failure changes nothing */
    return p;
}

static void *default_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    if (nsize == 0) {
        if (ptr && osize <= SMALL_MAX && small_put(ptr, osize)) return NULL;
        if (ptr && osize >= CACHE_MIN && cache_put(ptr, osize)) return NULL;
        free(ptr);
        return NULL;
    }
    if (!ptr && nsize <= SMALL_MAX) return small_take(nsize);
    if (!ptr && nsize >= CACHE_MIN) {
        void *p = cache_take(nsize);
        if (p) return p;
    }
    if (ptr && osize <= SMALL_MAX && nsize <= SMALL_MAX && small_class(osize ? osize : 1) == small_class(nsize))
        return ptr;
    if (!ptr && nsize >= HUGE_MIN) return huge_alloc(nsize);
    return realloc(ptr, nsize <= SMALL_MAX ? (small_class(nsize) + 1) * 64 : nsize);
}

static tj_alloc_fn alloc_fn = default_alloc;
static void *alloc_ud;

void tj_set_allocator(tj_alloc_fn fn, void *ud) {
    cache_flush();                  /* its blocks came from the default allocator */
    small_flush(NULL);              /* (this thread's; other threads free theirs at exit) */
    alloc_fn = fn ? fn : default_alloc;
    alloc_ud = fn ? ud : NULL;
}

/* Bytes this thread allocated and has not freed, and their peak (tj_memory_peak). */
static _Thread_local int64_t live_bytes, peak_bytes;

void *tj_mem_realloc(void *p, size_t old, size_t n) {
    void *q = alloc_fn(alloc_ud, p, old, n ? n : 1);
    if (!q) return tj_err(TJ_ERR_OOM, "out of memory: allocating %zu bytes failed", n), NULL;
    live_bytes += (int64_t)n - (int64_t)old;
    if (live_bytes > peak_bytes) peak_bytes = live_bytes;
    return q;
}

int64_t tj_memory_in_use(void) { return live_bytes; }
int64_t tj_memory_peak(void) { return peak_bytes; }
void tj_memory_reset_peak(void) { peak_bytes = live_bytes; }

void *tj_mem_alloc(size_t n) { return tj_mem_realloc(NULL, 0, n); }

void *tj_mem_calloc(size_t n) {
    void *p = tj_mem_alloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void tj_mem_free(void *p, size_t n) {
    if (!p) return;
    alloc_fn(alloc_ud, p, n, 0);
    live_bytes -= (int64_t)n;
}
