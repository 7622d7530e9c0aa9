/* error.c: the per-thread first error (code and message) and the memory hook.
 * The first error since tj_clear_error wins; later ones are dropped, so a chain of ops
 * reports where it first went wrong. Nothing here prints or aborts. */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include "core.h"

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

static void *default_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud; (void)osize;
    if (nsize == 0) { free(ptr); return NULL; }
    return realloc(ptr, nsize);
}

static tj_alloc_fn alloc_fn = default_alloc;
static void *alloc_ud;

void tj_set_allocator(tj_alloc_fn fn, void *ud) {
    alloc_fn = fn ? fn : default_alloc;
    alloc_ud = fn ? ud : NULL;
}

void *tj_mem_realloc(void *p, size_t old, size_t n) {
    void *q = alloc_fn(alloc_ud, p, old, n ? n : 1);
    if (!q) tj_err(TJ_ERR_OOM, "out of memory: allocating %zu bytes failed", n);
    return q;
}

void *tj_mem_alloc(size_t n) { return tj_mem_realloc(NULL, 0, n); }

void *tj_mem_calloc(size_t n) {
    void *p = tj_mem_alloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void tj_mem_free(void *p, size_t n) {
    if (p) alloc_fn(alloc_ud, p, n, 0);
}
