/* cache.h: the disk cache of compiled code (env TJ_CACHE_DIR), in plain C.
 * An entry is one file, <dir>/<16 hex digits>.tjo, named by a hash of its key. The key is
 * everything the machine code depends on (the IR as built, LLVM's version, the target,
 * the optimisation level; engine.c builds it); the file holds the whole key, so a hash
 * collision or a stale entry is a miss, never wrong code. A checksum guards the object
 * bytes; a damaged or foreign file is a miss. Entries are written to a temporary name and
 * renamed, so readers never see half a file and two processes may write the same entry.
 * The directory is trusted like a directory of shared libraries: its objects are run. */
#ifndef TJ_JIT_CACHE_H
#define TJ_JIT_CACHE_H

#include <stddef.h>
#include <stdint.h>

uint64_t tj_cache_hash(const void *p, size_t n);   /* 64-bit FNV-1a */

/* The object stored under key, or NULL on a miss (*n its size; free with
 * tj_mem_free(obj, *n)). Never an error: a miss is the answer to every problem. */
char *tj_cache_load(const char *dir, const char *key, size_t keylen, size_t *n);

/* Stores obj under key. 0, or nonzero with *why saying what failed (a static string:
 * the caller warns and goes on; the cache is an optimisation). */
int tj_cache_store(const char *dir, const char *key, size_t keylen, const void *obj, size_t n,
                   const char **why);

#endif
