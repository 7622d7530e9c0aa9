/* safetensors.h: what safetensors.c shares with checkpoint.c and the fuzzer: a parsed file
 * (entries, metadata, tensors) and the atomic writer. A file is hostile input: every
 * length, offset, dtype and shape is checked before it is used. Little-endian hosts only. */
#ifndef TJ_IO_SAFETENSORS_H
#define TJ_IO_SAFETENSORS_H

#include "core/core.h"

/* The header may not be longer than this (the reference implementation's limit). */
#define TJ_ST_MAX_HEADER UINT64_C(100000000)

typedef struct tj_st_entry {
    char    *name;           /* tj_mem, NUL-terminated */
    tj_dtype dtype;
    tj_shape shape;
    uint64_t begin, end;     /* byte range in the data buffer (after the header) */
    tensor  *t;              /* the values, in the innermost scope of the caller */
} tj_st_entry;

typedef struct tj_st_file {
    int          n;          /* entries, in the order of the header */
    tj_st_entry *e;
    int          nmeta;      /* "__metadata__", in the order of the header */
    char       **meta_key, **meta_value;
} tj_st_file;

/* Parses a whole file held in memory (the 8-byte header length, the JSON header, the data)
 * and copies each tensor into a new tensor of the innermost scope. op and what (the file's
 * name) prefix error messages. On failure *out is empty and no tensor is left behind.
 * The fuzzer's entry point. */
int  tj_safetensors_parse(const void *buf, size_t n, const char *op, const char *what, tj_st_file *out);
/* The same for a file on disk, read with plain reads (no mmap: a file truncated under us
 * is a short read, not a SIGBUS). */
int  tj_st_read(const char *path, const char *op, tj_st_file *out);
void tj_st_file_free(tj_st_file *f);
/* The value of metadata key, NULL if absent. */
const char *tj_st_meta(const tj_st_file *f, const char *key);

/* The file image header: the 8-byte length and the JSON header padded with spaces to a
 * multiple of 8, in *hdr (tj_mem, *hdr_len bytes); order[] receives the order in which the
 * data of the n tensors follows (8-byte dtypes first, then the given order). Checks names
 * (unique, UTF-8, not "__metadata__") and metadata keys (unique, UTF-8). */
int  tj_st_build_header(const char *op, int n, const char *const *names, tensor *const *ts,
                        int nmeta, const char *const *keys, const char *const *values,
                        unsigned char **hdr, size_t *hdr_len, int *order);
/* Writes a safetensors file atomically: <path>.tmp-<pid>-<k>, fsync, rename over path,
 * fsync of the directory. On failure the temporary file is removed and path untouched. */
int  tj_st_write(const char *path, const char *op, int n, const char *const *names,
                 tensor *const *ts, int nmeta, const char *const *keys, const char *const *values);

#endif
