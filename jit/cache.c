/* cache.c: the disk cache of compiled code (see cache.h). File layout, little-endian u64s:
 * "TJCACHE1", key length, object length, object checksum, then the key, then the object. */
#define _POSIX_C_SOURCE 200809L
#include "cache.h"
#include "core/core.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "TJCACHE1"
#define MAX_BYTES ((uint64_t)1 << 31)     /* larger claims are damage, not entries */

uint64_t tj_cache_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

static void entry_path(char *buf, size_t size, const char *dir, const char *key, size_t keylen) {
    snprintf(buf, size, "%s/%016llx.tjo", dir, (unsigned long long)tj_cache_hash(key, keylen));
}

static bool read_u64(FILE *f, uint64_t *v) {
    unsigned char b[8];
    if (fread(b, 1, 8, f) != 8) return false;
    *v = 0;
    for (int i = 7; i >= 0; i--) *v = *v << 8 | b[i];
    return true;
}

static bool write_u64(FILE *f, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    return fwrite(b, 1, 8, f) == 8;
}

/* Whether the next keylen bytes of f are key, read in pieces. */
static bool key_matches(FILE *f, const char *key, size_t keylen) {
    char buf[4096];
    for (size_t at = 0; at < keylen;) {
        size_t k = keylen - at < sizeof buf ? keylen - at : sizeof buf;
        if (fread(buf, 1, k, f) != k || memcmp(buf, key + at, k)) return false;
        at += k;
    }
    return true;
}

char *tj_cache_load(const char *dir, const char *key, size_t keylen, size_t *n) {
    char path[4096];
    entry_path(path, sizeof path, dir, key, keylen);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char magic[8];
    uint64_t klen, olen, sum;
    char *obj = NULL;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, MAGIC, 8) || !read_u64(f, &klen) || !read_u64(f, &olen) ||
        !read_u64(f, &sum) || klen != keylen || olen == 0 || olen > MAX_BYTES || !key_matches(f, key, keylen))
        goto miss;
    int before = tj_error_code();
    if (!(obj = tj_mem_alloc((size_t)olen))) {
        if (!before) tj_clear_error();    /* a miss, not an error */
        goto miss;
    }
    if (fread(obj, 1, (size_t)olen, f) != olen || fgetc(f) != EOF || tj_cache_hash(obj, (size_t)olen) != sum) {
        tj_mem_free(obj, (size_t)olen);
        obj = NULL;
        goto miss;
    }
    *n = (size_t)olen;
miss:
    fclose(f);
    return obj;
}

int tj_cache_store(const char *dir, const char *key, size_t keylen, const void *obj, size_t n,
                   const char **why) {
    static atomic_uint counter;
    char path[4096], tmp[4200];
    if (mkdir(dir, 0777) && errno != EEXIST) { *why = "cannot create the directory"; return -1; }
    entry_path(path, sizeof path, dir, key, keylen);
    snprintf(tmp, sizeof tmp, "%s.%ld.%u.tmp", path, (long)getpid(), atomic_fetch_add(&counter, 1));
    FILE *f = fopen(tmp, "wb");
    if (!f) { *why = "cannot write a file there"; return -1; }
    bool ok = fwrite(MAGIC, 1, 8, f) == 8 && write_u64(f, keylen) && write_u64(f, n) &&
              write_u64(f, tj_cache_hash(obj, n)) && fwrite(key, 1, keylen, f) == keylen && fwrite(obj, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        *why = ok ? "cannot rename the entry into place" : "cannot write the entry (disk full?)";
        return -1;
    }
    return 0;
}
