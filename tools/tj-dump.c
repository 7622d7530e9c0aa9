/* tj-dump: reads the dump directories tapejit writes (TJ_DUMP=... TJ_DUMP_DIR=dir, or
 * tj_function_dump): `tj-dump DIR` summarises every function and signature (ops, kernels,
 * ops per kernel, compile time per stage, peak bytes); `tj-dump diff A B` says which files
 * were added, removed or changed between two directories, with a line diff (Myers) of
 * each changed text file. Exit status: 0 ok / no differences, 1 differences, 2 errors.
 * Plain C and POSIX: it reads text files and runs nothing; it needs no tapejit library. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: tj-dump DIR                    summary of a dump directory (functions, signatures, ops,\n"
    "                                      kernels, ops per kernel, compile times, peak bytes)\n"
    "       tj-dump diff [-q] [--times] A B  what changed from dump directory (or file) A to B:\n"
    "                                      files added, removed and changed, with a line diff\n"
    "  -q       name the changed files only\n"
    "  --times  also compare the compile times in *.stats.txt (they differ on every run)\n"
    "exit status: 0 no differences, 1 differences, 2 errors (bad usage, unreadable directory)\n";

/* Out of memory: a clear message and exit status 2 (this is a command-line tool). */
static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "tj-dump: out of memory\n"); exit(2); }
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) { fprintf(stderr, "tj-dump: out of memory\n"); exit(2); }
    return p;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static char *path_join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *p = xmalloc(na + nb + 2);
    memcpy(p, a, na);
    size_t k = na;
    if (na && a[na - 1] != '/' && nb) p[k++] = '/';
    memcpy(p + k, b, nb + 1);
    return p;
}

/* The whole file, NUL-terminated (*n: its length without the NUL); NULL with errno set. */
static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); errno = EIO; return NULL; }
    buf[len] = '\0';
    *n = len;
    return buf;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* ---- a list of strings -------------------------------------------------------------------- */

typedef struct strs { char **v; size_t n, cap; } strs;

static void strs_add(strs *s, char *p) {
    if (s->n == s->cap) s->v = xrealloc(s->v, sizeof(char *) * (s->cap = s->cap ? 2 * s->cap : 16));
    s->v[s->n++] = p;
}

static void strs_free(strs *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    *s = (strs){0};
}

/* Regular files under dir (maxdepth 0: in dir itself), as paths relative to it, sorted;
 * false (errno set) if dir cannot be read. */
static bool list_files(const char *dir, const char *rel, int depth, int maxdepth, strs *out) {
    char *full = rel[0] ? path_join(dir, rel) : xstrdup(dir);
    DIR *d = opendir(full);
    if (!d) { free(full); return false; }
    struct dirent *e;
    bool ok = true;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *r = rel[0] ? path_join(rel, e->d_name) : xstrdup(e->d_name);
        char *p = path_join(dir, r);
        struct stat st;
        if (stat(p, &st) != 0) { free(p); free(r); continue; }   /* a dangling link: not a dump */
        free(p);
        if (S_ISDIR(st.st_mode) && depth < maxdepth) {
            ok = list_files(dir, r, depth + 1, maxdepth, out);
            free(r);
            if (!ok) break;
        } else if (S_ISREG(st.st_mode)) {
            strs_add(out, r);
        } else {
            free(r);
        }
    }
    int saved = errno;
    closedir(d);
    free(full);
    errno = saved;
    if (depth == 0 && ok && out->n) qsort(out->v, out->n, sizeof(char *), cmp_str);
    return ok;
}

/* ---- summary ---------------------------------------------------------------------------------- */

/* "<digits>.<ext>": the signature, and ext; -1 if the name is not a dump file's. */
static long sig_of(const char *name, const char **ext) {
    const char *p = name;
    long v = 0;
    while (*p >= '0' && *p <= '9' && v < 100000000) v = v * 10 + (*p++ - '0');
    if (p == name || *p != '.') return -1;
    *ext = p + 1;
    return v;
}

static const char *const known_ext[] = {"trace.txt", "graph.txt", "fusion.txt", "llvm.ll", "llvm-opt.ll", "asm.s", "dot", "stats.txt"};
enum { NEXT = sizeof known_ext / sizeof known_ext[0] };

static bool starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* The next line of *p (without its newline), or NULL at the end. */
static char *next_line(char **p) {
    if (!*p || !**p) return NULL;
    char *s = *p, *e = strchr(s, '\n');
    if (e) { *e = '\0'; *p = e + 1; }
    else *p = s + strlen(s);
    return s;
}

static char *read_sig_file(const char *fdir, long sig, const char *ext) {
    char name[64];
    snprintf(name, sizeof name, "%ld.%s", sig, ext);
    char *p = path_join(fdir, name);
    size_t n;
    char *text = read_file(p, &n);
    free(p);
    return text;
}

/* The trace's header and op counts. */
static void summary_trace(const char *fdir, long sig, const char *dname) {
    char *text = read_sig_file(fdir, sig, "trace.txt");
    if (!text) {
        printf("\n%s, signature %ld\n  trace      (no %ld.trace.txt)\n", dname, sig, sig);
        return;
    }
    char *p = text, *l, *fname = NULL, *sigline = NULL;
    int ops = 0, grads = 0, updates = 0, nodes = 0;
    strs inputs = {0};
    while ((l = next_line(&p))) {
        if (starts(l, "function ")) fname = l + 9;
        else if (starts(l, "signature ") && strchr(l, ':')) sigline = strchr(l, ':') + 2;
        else if (starts(l, "  input ")) strs_add(&inputs, xstrdup(l + 2));
        else if (l[0] == '%') {
            nodes++;
            char *eq = strstr(l, " = ");
            char *q = eq ? eq + 3 : l;
            while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_') q++;
            if (eq && *q == '(') {
                ops++;
                grads += strstr(l, "<- gradient of ") != NULL;
                updates += strstr(l, "<- optimizer update of ") != NULL;
            }
        }
    }
    printf("\n%s, signature %ld: %s\n", fname ? fname : dname, sig, sigline ? sigline : "?");
    for (size_t i = 0; i < inputs.n; i++) printf("  %s\n", inputs.v[i]);
    printf("  trace      %d nodes, %d ops (%d gradient, %d optimizer update, %d other)\n", nodes, ops, grads, updates,
           ops - grads - updates);
    strs_free(&inputs);
    free(text);
}

static void summary_graph(const char *fdir, long sig) {
    char *text = read_sig_file(fdir, sig, "graph.txt");
    if (!text) return;
    char *p = text, *l;
    while ((l = next_line(&p)))
        if (starts(l, "nodes: ")) { printf("  graph      %s\n", l + 7); break; }
    free(text);
}

/* Kernels with their kinds and ops; ops per kernel as a histogram. */
static void summary_fusion(const char *fdir, long sig) {
    char *text = read_sig_file(fdir, sig, "fusion.txt");
    if (!text) return;
    char *p = text, *l;
    int kernels = 0, views = 0, hist[9] = {0};   /* hist[8]: 8 ops or more */
    strs lines = {0};
    char kname[128] = "", kkind[64] = "";
    while ((l = next_line(&p))) {
        if (starts(l, "view ")) views++;
        if (starts(l, "kernel ")) {
            kernels++;
            char *k = l + 7, *sp = strstr(k, "  (");
            snprintf(kname, sizeof kname, "%.*s", sp ? (int)(sp - k) : (int)strlen(k), k);
            kkind[0] = '\0';
            if (sp) {
                char *end = strrchr(sp, ')');
                snprintf(kkind, sizeof kkind, "%.*s", end ? (int)(end - sp - 3) : (int)strlen(sp + 3), sp + 3);
            }
        } else if (starts(l, "  ops ") && kname[0]) {
            char *ids = strstr(l, "trace ids ");
            int n = 0;
            if (ids) {
                n = 1;
                for (char *q = ids + 10; *q && *q != '('; q++) n += *q == ',';
            }
            hist[n < 8 ? n : 8]++;
            char *ops = ids ? strchr(ids, '(') : NULL;
            char buf[512];
            snprintf(buf, sizeof buf, "    %-18s %2d op%s  %-12s %s", kname, n, n == 1 ? " " : "s", kkind, ops ? ops : "");
            strs_add(&lines, xstrdup(buf));
            kname[0] = '\0';
        }
    }
    printf("  kernels    %d, views %d; ops per kernel:", kernels, views);
    const char *sep = " ";
    for (int i = 0; i < 9; i++)
        if (hist[i]) {
            printf("%s%s%d op%s x %d", sep, i == 8 ? ">=" : "", i, i == 1 ? "" : "s", hist[i]);
            sep = ", ";
        }
    printf("\n");
    for (size_t i = 0; i < lines.n; i++) printf("%s\n", lines.v[i]);
    strs_free(&lines);
    free(text);
}

static void summary_stats(const char *fdir, long sig) {
    char *text = read_sig_file(fdir, sig, "stats.txt");
    if (!text) {
        printf("  compile    (no %ld.stats.txt: dump the stage 'stats')\n", sig);
        return;
    }
    static const char *const stages[] = {"trace_ms", "graph_ms", "ir_ms", "llvm_opt_ms", "codegen_ms", "total_ms"};
    double ms[6];
    bool have[6] = {false};
    char peak[64] = "?";
    char *p = text, *l;
    while ((l = next_line(&p))) {
        char key[64], val[64];
        if (sscanf(l, "%63s %63s", key, val) != 2) continue;
        for (int i = 0; i < 6; i++)
            if (!strcmp(key, stages[i])) { ms[i] = strtod(val, NULL); have[i] = true; }
        if (!strcmp(key, "peak_bytes")) snprintf(peak, sizeof peak, "%s", val);
    }
    printf("  compile   ");
    for (int i = 0; i < 6; i++)
        if (have[i]) printf(" %.*s %.3f ms%s", (int)(strlen(stages[i]) - 3), stages[i], ms[i], i < 5 ? "," : "");
    printf("\n  peak       %s bytes (the arena of temporaries)\n", peak);
    free(text);
}

/* One function directory: its signatures in order. */
static int summary_function(const char *fdir, const char *dname, int *nsigs) {
    strs files = {0};
    if (!list_files(fdir, "", 0, 0, &files)) return -1;
    long sigs[4096];
    int n = 0;
    for (size_t i = 0; i < files.n; i++) {
        const char *ext;
        long s = sig_of(files.v[i], &ext);
        bool known = false;
        for (int k = 0; k < NEXT && s >= 0; k++) known = known || !strcmp(ext, known_ext[k]);
        if (!known) continue;
        bool seen = false;
        for (int k = 0; k < n && !seen; k++) seen = sigs[k] == s;
        if (!seen && n < 4096) sigs[n++] = s;
    }
    for (int i = 1; i < n; i++)   /* numerically: 2 before 10 */
        for (int j = i; j > 0 && sigs[j - 1] > sigs[j]; j--) { long t = sigs[j]; sigs[j] = sigs[j - 1]; sigs[j - 1] = t; }
    for (int i = 0; i < n; i++) {
        summary_trace(fdir, sigs[i], dname);
        summary_graph(fdir, sigs[i]);
        summary_fusion(fdir, sigs[i]);
        summary_stats(fdir, sigs[i]);
        printf("  files     ");
        for (int k = 0; k < NEXT; k++) {
            char name[64];
            snprintf(name, sizeof name, "%ld.%s", sigs[i], known_ext[k]);
            for (size_t f = 0; f < files.n; f++)
                if (!strcmp(files.v[f], name)) { printf(" %s", name); break; }
        }
        printf("\n");
    }
    strs_free(&files);
    *nsigs += n;
    return n;
}

static int summary(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "tj-dump: cannot read the directory '%s': %s\n", dir, strerror(errno));
        return 2;
    }
    strs subdirs = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *p = path_join(dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) strs_add(&subdirs, xstrdup(e->d_name));
        free(p);
    }
    closedir(d);
    if (subdirs.n) qsort(subdirs.v, subdirs.n, sizeof(char *), cmp_str);
    int nfun = 0, nsigs = 0, rc = 0;
    for (size_t i = 0; i < subdirs.n; i++) {
        char *p = path_join(dir, subdirs.v[i]);
        int n = summary_function(p, subdirs.v[i], &nsigs);
        if (n < 0) {
            fprintf(stderr, "tj-dump: cannot read the directory '%s': %s\n", p, strerror(errno));
            rc = 2;
        }
        nfun += n > 0;
        free(p);
    }
    if (nfun == 0 && rc == 0) {   /* DIR may be one function's directory */
        const char *base = strrchr(dir, '/');
        base = base && base[1] ? base + 1 : dir;
        int n = summary_function(dir, base, &nsigs);
        nfun += n > 0;
    }
    strs_free(&subdirs);
    if (nfun == 0) {
        fprintf(stderr, "tj-dump: '%s' holds no dumps (<function>/<signature>.trace.txt, ...: see TJ_DUMP)\n", dir);
        return 2;
    }
    printf("\n%s: %d function%s, %d signature%s\n", dir, nfun, nfun == 1 ? "" : "s", nsigs, nsigs == 1 ? "" : "s");
    return rc;
}

/* ---- line diff (Myers, linear space) ------------------------------------------------------------ */

typedef struct line { const char *s; size_t n; uint64_t h; bool nl; } line;

typedef struct lines { line *v; long n; } lines;

/* The lines of text; in a stats file without times, the lines of times are left out. */
static lines split_lines(const char *text, size_t len, bool drop_times) {
    lines L = {0};
    long cap = 64;
    L.v = xmalloc(sizeof(line) * (size_t)cap);
    for (size_t i = 0; i < len;) {
        const char *e = memchr(text + i, '\n', len - i);
        size_t n = e ? (size_t)(e - (text + i)) : len - i;
        line l = {text + i, n, 1469598103934665603ull, e != NULL};
        for (size_t k = 0; k < n; k++) l.h = (l.h ^ (unsigned char)text[i + k]) * 1099511628211ull;
        i += n + (e != NULL);
        if (drop_times) {
            size_t k = 0;
            while (k < n && l.s[k] != ' ' && l.s[k] != '\t') k++;
            if (k >= 3 && !memcmp(l.s + k - 3, "_ms", 3)) continue;
        }
        if (L.n == cap) L.v = xrealloc(L.v, sizeof(line) * (size_t)(cap *= 2));
        L.v[L.n++] = l;
    }
    return L;
}

typedef struct differ {
    const line *a, *b;
    char *del, *ins;      /* del[i]: a's line i is not in b; ins[j]: b's line j is new */
    long budget;          /* steps left before a segment is reported as replaced whole */
} differ;

static bool same(const differ *c, long i, long j) {
    const line *x = &c->a[i], *y = &c->b[j];
    return x->h == y->h && x->n == y->n && x->nl == y->nl && !memcmp(x->s, y->s, x->n);
}

/* The middle snake of a[a0,a1) and b[b0,b1) (both nonempty, first and last lines
 * differing): a point (x, y) that an optimal edit path goes through. false when the
 * budget runs out. The forward and reverse searches of Myers (1986) meet halfway. */
static bool bisect(differ *c, long a0, long a1, long b0, long b1, long *sx, long *sy) {
    long n = a1 - a0, m = b1 - b0, maxd = (n + m + 1) / 2, off = maxd, len = 2 * maxd + 2;
    long *v1 = xmalloc(sizeof(long) * (size_t)len * 2), *v2 = v1 + len;
    for (long i = 0; i < 2 * len; i++) v1[i] = -1;
    v1[off + 1] = 0;
    v2[off + 1] = 0;
    long delta = n - m;
    bool front = delta % 2 != 0, found = false;
    long k1start = 0, k1end = 0, k2start = 0, k2end = 0;
    for (long d = 0; d < maxd && !found; d++) {
        if ((c->budget -= 2 * d + 2) < 0) break;
        for (long k1 = -d + k1start; k1 <= d - k1end && !found; k1 += 2) {
            long k1o = off + k1, x1;
            if (k1 == -d || (k1 != d && v1[k1o - 1] < v1[k1o + 1])) x1 = v1[k1o + 1];
            else x1 = v1[k1o - 1] + 1;
            long y1 = x1 - k1;
            while (x1 < n && y1 < m && same(c, a0 + x1, b0 + y1)) { x1++; y1++; }
            v1[k1o] = x1;
            if (x1 > n) k1end += 2;
            else if (y1 > m) k1start += 2;
            else if (front) {
                long k2o = off + delta - k1;
                if (k2o >= 0 && k2o < len && v2[k2o] != -1 && x1 >= n - v2[k2o]) { *sx = x1; *sy = y1; found = true; }
            }
        }
        for (long k2 = -d + k2start; k2 <= d - k2end && !found; k2 += 2) {
            long k2o = off + k2, x2;
            if (k2 == -d || (k2 != d && v2[k2o - 1] < v2[k2o + 1])) x2 = v2[k2o + 1];
            else x2 = v2[k2o - 1] + 1;
            long y2 = x2 - k2;
            while (x2 < n && y2 < m && same(c, a1 - x2 - 1, b1 - y2 - 1)) { x2++; y2++; }
            v2[k2o] = x2;
            if (x2 > n) k2end += 2;
            else if (y2 > m) k2start += 2;
            else if (!front) {
                long k1o = off + delta - k2;
                if (k1o >= 0 && k1o < len && v1[k1o] != -1) {
                    long x1 = v1[k1o], y1 = off + x1 - k1o;
                    if (x1 >= n - x2) { *sx = x1; *sy = y1; found = true; }
                }
            }
        }
    }
    free(v1);
    *sx += a0;
    *sy += b0;
    return found;
}

static void compare(differ *c, long a0, long a1, long b0, long b1) {
    while (a0 < a1 && b0 < b1 && same(c, a0, b0)) { a0++; b0++; }
    while (a0 < a1 && b0 < b1 && same(c, a1 - 1, b1 - 1)) { a1--; b1--; }
    long x = 0, y = 0;
    if (a0 < a1 && b0 < b1 && bisect(c, a0, a1, b0, b1, &x, &y) && (x > a0 || y > b0) && (x < a1 || y < b1)) {
        compare(c, a0, x, b0, y);
        compare(c, x, a1, y, b1);
        return;
    }
    for (long i = a0; i < a1; i++) c->del[i] = 1;   /* one side empty, or no split found */
    for (long j = b0; j < b1; j++) c->ins[j] = 1;
}

static void print_line(char mark, const line *l) {
    putchar(mark);
    fwrite(l->s, 1, l->n, stdout);
    putchar('\n');
    if (!l->nl) printf("\\ No newline at end of file\n");
}

/* A unified diff of a and b with 3 lines of context. */
static void unified(const char *pa, const char *pb, const lines *A, const lines *B) {
    differ c = {A->v, B->v, xmalloc((size_t)A->n + 1), xmalloc((size_t)B->n + 1), 200000000};
    memset(c.del, 0, (size_t)A->n + 1);
    memset(c.ins, 0, (size_t)B->n + 1);
    compare(&c, 0, A->n, 0, B->n);
    /* the edit script: ' ' (both), '-' (a only), '+' (b only) */
    long nops = 0, cap = A->n + B->n + 1;
    char *op = xmalloc((size_t)cap);
    long *ia = xmalloc(sizeof(long) * (size_t)cap), *jb = xmalloc(sizeof(long) * (size_t)cap);
    for (long i = 0, j = 0; i < A->n || j < B->n;) {
        if (i < A->n && c.del[i]) { op[nops] = '-'; ia[nops] = i++; jb[nops++] = j; }
        else if (j < B->n && c.ins[j]) { op[nops] = '+'; ia[nops] = i; jb[nops++] = j++; }
        else { op[nops] = ' '; ia[nops] = i++; jb[nops++] = j++; }
    }
    const long ctx = 3;
    char *show = xmalloc((size_t)nops + 1);
    memset(show, 0, (size_t)nops + 1);
    for (long k = 0; k < nops; k++)
        if (op[k] != ' ')
            for (long q = k - ctx < 0 ? 0 : k - ctx; q <= k + ctx && q < nops; q++) show[q] = 1;
    printf("--- %s\n+++ %s\n", pa, pb);
    for (long k = 0; k < nops;) {
        if (!show[k]) { k++; continue; }
        long e = k, na = 0, nb = 0;
        while (e < nops && show[e]) { na += op[e] != '+'; nb += op[e] != '-'; e++; }
        printf("@@ -%ld", na ? ia[k] + 1 : ia[k]);
        if (na != 1) printf(",%ld", na);
        printf(" +%ld", nb ? jb[k] + 1 : jb[k]);
        if (nb != 1) printf(",%ld", nb);
        printf(" @@\n");
        for (; k < e; k++) print_line(op[k], op[k] == '+' ? &B->v[jb[k]] : &A->v[ia[k]]);
    }
    free(show);
    free(op);
    free(ia);
    free(jb);
    free(c.del);
    free(c.ins);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Compares two files: 0 same, 1 different (printed), 2 error. */
static int diff_files(const char *pa, const char *pb, const char *rel, bool brief, bool times) {
    size_t na, nb;
    char *a = read_file(pa, &na);
    if (!a) { fprintf(stderr, "tj-dump: cannot read '%s': %s\n", pa, strerror(errno)); return 2; }
    char *b = read_file(pb, &nb);
    if (!b) { fprintf(stderr, "tj-dump: cannot read '%s': %s\n", pb, strerror(errno)); free(a); return 2; }
    int rc = 0;
    if (na != nb || memcmp(a, b, na)) {
        bool binary = memchr(a, '\0', na) || memchr(b, '\0', nb);
        bool drop = !times && ends_with(rel, ".stats.txt");
        lines A = {0}, B = {0};
        if (!binary) { A = split_lines(a, na, drop); B = split_lines(b, nb, drop); }
        bool differs = binary || A.n != B.n;
        for (long i = 0; !differs && i < A.n; i++)
            differs = A.v[i].n != B.v[i].n || A.v[i].nl != B.v[i].nl || memcmp(A.v[i].s, B.v[i].s, A.v[i].n);
        if (differs) {
            rc = 1;
            printf("changed: %s%s\n", rel, binary ? " (binary files differ)" : drop ? " (times ignored)" : "");
            if (!brief && !binary) unified(pa, pb, &A, &B);
        }
        free(A.v);
        free(B.v);
    }
    free(a);
    free(b);
    return rc;
}

static int diff(const char *da, const char *db, bool brief, bool times) {
    struct stat sa, sb;
    if (stat(da, &sa) != 0) { fprintf(stderr, "tj-dump: cannot read '%s': %s\n", da, strerror(errno)); return 2; }
    if (stat(db, &sb) != 0) { fprintf(stderr, "tj-dump: cannot read '%s': %s\n", db, strerror(errno)); return 2; }
    if (S_ISREG(sa.st_mode) && S_ISREG(sb.st_mode)) {   /* two files */
        const char *base = strrchr(db, '/');
        return diff_files(da, db, base ? base + 1 : db, brief, times);
    }
    if (!S_ISDIR(sa.st_mode) || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "tj-dump: diff: '%s' and '%s' must both be directories (or both files)\n", da, db);
        return 2;
    }
    strs fa = {0}, fb = {0};
    if (!list_files(da, "", 0, 8, &fa)) {
        fprintf(stderr, "tj-dump: cannot read the directory '%s': %s\n", da, strerror(errno));
        strs_free(&fa);
        return 2;
    }
    if (!list_files(db, "", 0, 8, &fb)) {
        fprintf(stderr, "tj-dump: cannot read the directory '%s': %s\n", db, strerror(errno));
        strs_free(&fa);
        strs_free(&fb);
        return 2;
    }
    int rc = 0, changed = 0, added = 0, removed = 0, identical = 0;
    for (size_t i = 0, j = 0; i < fa.n || j < fb.n;) {
        int c = i == fa.n ? 1 : j == fb.n ? -1 : strcmp(fa.v[i], fb.v[j]);
        if (c < 0) { printf("removed: %s\n", fa.v[i++]); removed++; continue; }
        if (c > 0) { printf("added: %s\n", fb.v[j++]); added++; continue; }
        char *pa = path_join(da, fa.v[i]), *pb = path_join(db, fb.v[j]);
        int r = diff_files(pa, pb, fa.v[i], brief, times);
        free(pa);
        free(pb);
        if (r == 2) rc = 2;
        changed += r == 1;
        identical += r == 0;
        i++;
        j++;
    }
    printf("%d changed, %d added, %d removed, %d identical\n", changed, added, removed, identical);
    strs_free(&fa);
    strs_free(&fb);
    if (rc) return rc;
    return changed || added || removed ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "diff")) {
        bool brief = false, times = false;
        const char *dirs[2];
        int nd = 0;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "-q")) brief = true;
            else if (!strcmp(argv[i], "--times")) times = true;
            else if (argv[i][0] == '-' && argv[i][1]) {
                fprintf(stderr, "tj-dump: diff: unknown option '%s'\n%s", argv[i], usage);
                return 2;
            } else if (nd < 2) dirs[nd++] = argv[i];
            else { nd = 3; break; }
        }
        if (nd != 2) {
            fprintf(stderr, "tj-dump: diff needs two directories\n%s", usage);
            return 2;
        }
        return diff(dirs[0], dirs[1], brief, times);
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, argc < 2 ? "tj-dump: no directory given\n%s" : "tj-dump: bad arguments\n%s", usage);
        return 2;
    }
    return summary(argv[1]);
}
