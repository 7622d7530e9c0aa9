/* tj-compare: runs a program in eager and in compiled mode (env TJ_MODE=eager, then jit; tj-bench
 * is given --mode instead) and prints the step time of each, the ratio, and whether both printed
 * the same results. Step time: the program's tj-bench JSON lines (step_time, fwd_bwd_time), else
 * the median wall time of the whole program. Results: every number printed, in order, equal as
 * printed, and the text around the numbers the same (whitespace aside). JSON lines are timings
 * and never compared. Usage: tj-compare [--runs N] [--ignore REGEX]... [--] PROGRAM [ARGS...]
 * Exit: 0 identical, 1 results differ, 2 usage error or the program failed.
 * Plain POSIX, no tapejit: it can compare any program and never shares the runtime it judges. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <regex.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { MAX_IGNORE = 16, EXCERPT = 100 };
static const char *const MODES[2] = {"eager", "jit"};

static void usage(FILE *f) {
    fprintf(f, "usage: tj-compare [--runs N] [--ignore REGEX]... [--] PROGRAM [ARGS...]\n"
               "  runs PROGRAM with TJ_MODE=eager and TJ_MODE=jit (tj-bench: --mode eager|jit),\n"
               "  N times each (default 3), and compares the step times and the printed results.\n"
               "  --ignore REGEX: lines of output matching REGEX (POSIX extended) are not compared.\n"
               "  exit status: 0 identical, 1 results differ, 2 usage error or PROGRAM failed\n");
}

/* ---- one run's output, analysed ------------------------------------------------------------- */

typedef struct { size_t off, len; double v; } number;      /* as printed at text[off], len chars */
typedef struct { char workload[32], metric[32], unit[16]; double value; } metric;

typedef struct {
    char *text;  size_t len;       /* the program's stdout, NUL-terminated */
    size_t *line;  size_t nline;   /* offset where each line starts */
    number *num;   size_t nnum;    /* the numbers compared, in order */
    size_t *chr;   size_t nchr;    /* offsets of the other characters compared (not whitespace) */
    metric *met;   size_t nmet;    /* tj-bench JSON lines: timings, never compared */
    size_t nignored;               /* lines matching --ignore */
    double wall_ns;
} output;

static void output_free(output *o) {
    free(o->text);
    free(o->line);
    free(o->num);
    free(o->chr);
    free(o->met);
    memset(o, 0, sizeof *o);
}

static bool is_word(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.'; }

/* Length of the number printed at s[i], 0 if none starts there. A number never starts inside a
 * word ("w1", "float32", "k3_mul" and "1.2.3"'s ".3" are text):
 * [+-] digits [. digits] [e [+-] digits] with at least one digit, or [+-] nan, inf, infinity.
 * "0x1f" is the number 0 and the text "x1f": strtod's hexadecimal is not what programs print. */
static size_t number_at(const char *s, size_t i) {
    if (i > 0 && is_word(s[i - 1])) return 0;
    size_t j = i + (s[i] == '+' || s[i] == '-'), k = j, digits = 0;
    while (isdigit((unsigned char)s[k])) k++, digits++;
    if (s[k] == '.')
        for (k++; isdigit((unsigned char)s[k]); k++) digits++;
    if (digits) {
        if (s[k] == 'e' || s[k] == 'E') {
            size_t e = k + 1 + (s[k + 1] == '+' || s[k + 1] == '-');
            if (isdigit((unsigned char)s[e])) {
                while (isdigit((unsigned char)s[e])) e++;
                k = e;
            }
        }
        return k - i;
    }
    static const char *const words[] = {"infinity", "inf", "nan"};
    for (int w = 0; w < 3; w++) {
        size_t n = strlen(words[w]), m = 0;
        while (m < n && tolower((unsigned char)s[j + m]) == words[w][m]) m++;
        if (m == n && !isalnum((unsigned char)s[j + n]) && s[j + n] != '_') return j + n - i;
    }
    return 0;
}

/* the text after "key": in a JSON line, NULL if the key is absent */
static const char *json_value(const char *line, const char *key) {
    char pat[40];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(line, pat);
    if (!p) return NULL;
    for (p += strlen(pat); isspace((unsigned char)*p); p++) {}
    if (*p++ != ':') return NULL;
    while (isspace((unsigned char)*p)) p++;
    return p;
}

static bool json_string(const char *line, const char *key, char *out, size_t n) {
    const char *p = json_value(line, key);
    if (!p || *p++ != '"') return false;
    size_t k = 0;
    while (*p && *p != '"' && k + 1 < n) out[k++] = *p++;
    out[k] = '\0';
    return *p == '"';
}

/* a tj-bench line: {"workload": "w1", ..., "metric": "step_time", "value": 3.4, "unit": "us"} */
static bool parse_metric(const char *line, metric *m) {
    while (isspace((unsigned char)*line)) line++;
    const char *v;
    char *end;
    if (*line != '{' || !json_string(line, "metric", m->metric, sizeof m->metric) ||
        !(v = json_value(line, "value")))
        return false;
    m->value = strtod(v, &end);
    if (end == v) return false;
    if (!json_string(line, "workload", m->workload, sizeof m->workload)) strcpy(m->workload, "-");
    if (!json_string(line, "unit", m->unit, sizeof m->unit)) m->unit[0] = '\0';
    return true;
}

/* Splits o->text into lines, metric lines, ignored lines, numbers and other characters. Runs
 * twice: with the arrays NULL it only counts, then it fills the arrays sized by the count. */
static void scan(output *o, const regex_t *ignore, int nignore) {
    o->nline = o->nnum = o->nchr = o->nmet = o->nignored = 0;
    for (size_t start = 0; start < o->len;) {
        size_t end = start;
        while (end < o->len && o->text[end] != '\n') end++;
        if (o->line) o->line[o->nline] = start;
        o->nline++;
        char saved = o->text[end], *s = o->text + start;
        o->text[end] = '\0';                       /* the line is a C string while we look at it */
        bool skip = false;
        for (int r = 0; r < nignore && !skip; r++) skip = regexec(&ignore[r], s, 0, NULL, 0) == 0;
        metric m;
        if (skip) {
            o->nignored++;
        } else if (parse_metric(s, &m)) {
            if (o->met) o->met[o->nmet] = m;
            o->nmet++;
        } else {
            for (size_t i = 0; s[i];) {
                size_t n;
                if (isspace((unsigned char)s[i])) {
                    i++;
                } else if ((n = number_at(s, i))) {
                    if (o->num) {
                        char after = s[i + n];
                        s[i + n] = '\0';
                        o->num[o->nnum] = (number){start + i, n, strtod(s + i, NULL)};
                        s[i + n] = after;
                    }
                    o->nnum++;
                    i += n;
                } else {
                    if (o->chr) o->chr[o->nchr] = start + i;
                    o->nchr++;
                    i++;
                }
            }
        }
        o->text[end] = saved;
        start = end + 1;
    }
}

static int analyse(output *o, const regex_t *ignore, int nignore) {
    scan(o, ignore, nignore);
    o->line = malloc(sizeof *o->line * (o->nline + 1));
    o->num = malloc(sizeof *o->num * (o->nnum + 1));
    o->chr = malloc(sizeof *o->chr * (o->nchr + 1));
    o->met = malloc(sizeof *o->met * (o->nmet + 1));
    if (!o->line || !o->num || !o->chr || !o->met) return -1;
    scan(o, ignore, nignore);
    return 0;
}

/* ---- running the program ------------------------------------------------------------------------ */

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Runs argv with TJ_MODE=mode, its stdout into o->text, stdin from /dev/null (every run reads the
 * same input), stderr passed through. Returns 0, or 2 after saying why the program failed. */
static int run_program(char **argv, const char *mode, output *o) {
    int fd[2], rc = 2, err;
    size_t cap = 1 << 16;
    pid_t pid;
    posix_spawn_file_actions_t fa;
    if (!(o->text = malloc(cap))) {
        fprintf(stderr, "tj-compare: out of memory\n");
        return 2;
    }
    if (pipe(fd)) {
        fprintf(stderr, "tj-compare: pipe: %s\n", strerror(errno));
        return 2;
    }
    fcntl(fd[0], F_SETFD, FD_CLOEXEC);
    if ((err = posix_spawn_file_actions_init(&fa))) goto close_pipe;
    if ((err = posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO)) ||
        (fd[1] != STDOUT_FILENO && (err = posix_spawn_file_actions_addclose(&fa, fd[1]))) ||
        (err = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0)) ||
        (err = setenv("TJ_MODE", mode, 1) ? errno : 0))
        goto destroy_actions;
    fflush(stdout);
    fflush(stderr);
    double t0 = now_ns();
    err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    close(fd[1]);
    fd[1] = -1;
    if (err) goto destroy_actions;

    o->len = 0;
    for (;;) {                                     /* read until EOF, then reap */
        if (o->len + 1 == cap) {
            char *t = realloc(o->text, cap *= 2);
            if (!t) {
                fprintf(stderr, "tj-compare: out of memory reading the output of %s\n", argv[0]);
                close(fd[0]);
                fd[0] = -1;
                break;
            }
            o->text = t;
        }
        ssize_t n = read(fd[0], o->text + o->len, cap - 1 - o->len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        o->len += (size_t)n;
    }
    o->text[o->len] = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    o->wall_ns = now_ns() - t0;
    if (fd[0] < 0) {
        rc = 2;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        rc = 0;
    } else if (WIFEXITED(status)) {
        fprintf(stderr, "tj-compare: %s failed in %s mode: exit status %d\n", argv[0], mode, WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        fprintf(stderr, "tj-compare: %s failed in %s mode: killed by signal %d (%s)\n", argv[0], mode,
                WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        fprintf(stderr, "tj-compare: %s failed in %s mode\n", argv[0], mode);
    }
destroy_actions:
    posix_spawn_file_actions_destroy(&fa);
close_pipe:
    if (err) fprintf(stderr, "tj-compare: cannot run %s: %s\n", argv[0], strerror(err));
    if (fd[0] >= 0) close(fd[0]);
    if (fd[1] >= 0) close(fd[1]);
    return rc;
}

/* ---- comparing two outputs ---------------------------------------------------------------------- */

typedef struct {
    size_t compared, ndiff;        /* numbers compared, and how many differ as printed */
    double max_abs, max_rel;
    size_t first;                  /* the first differing number, if ndiff */
    bool count_differs;
    bool text_differs;
    size_t text_a, text_b;         /* offsets of the first differing character; SIZE_MAX: the end */
} diff;

static bool identical(const diff *d) { return !d->ndiff && !d->count_differs && !d->text_differs; }

static diff compare(const output *a, const output *b) {
    diff d = {0};
    d.compared = a->nnum < b->nnum ? a->nnum : b->nnum;
    d.count_differs = a->nnum != b->nnum;
    for (size_t i = 0; i < d.compared; i++) {
        const number *x = &a->num[i], *y = &b->num[i];
        if (x->len == y->len && !memcmp(a->text + x->off, b->text + y->off, x->len)) continue;
        if (!d.ndiff++) d.first = i;
        /* equal values printed differently (-0. and 0., 1.50 and 1.5) differ by 0 */
        double abs_d = x->v == y->v || (isnan(x->v) && isnan(y->v)) ? 0 : fabs(x->v - y->v);
        if (isnan(abs_d)) abs_d = INFINITY;        /* a NaN against a number */
        double scale = fmax(fabs(x->v), fabs(y->v));
        double rel_d = abs_d == 0 ? 0 : isinf(abs_d) ? INFINITY : abs_d / scale;
        d.max_abs = fmax(d.max_abs, abs_d);
        d.max_rel = fmax(d.max_rel, rel_d);
    }
    size_t k = 0;
    while (k < a->nchr && k < b->nchr && a->text[a->chr[k]] == b->text[b->chr[k]]) k++;
    if (k < a->nchr || k < b->nchr) {
        d.text_differs = true;
        d.text_a = k < a->nchr ? a->chr[k] : SIZE_MAX;
        d.text_b = k < b->nchr ? b->chr[k] : SIZE_MAX;
    }
    return d;
}

/* the line (0-based) holding offset off */
static size_t line_of(const output *o, size_t off) {
    size_t lo = 0, hi = o->nline;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->line[mid] <= off) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* "    eager line 12: ...text around off...", at most EXCERPT characters of a long line */
static void print_excerpt(const char *name, int width, const output *o, size_t off) {
    if (off == SIZE_MAX || o->nline == 0) {
        printf("    %-*s (end of output)\n", width, name);
        return;
    }
    size_t ln = line_of(o, off), start = o->line[ln], end = start;
    while (end < o->len && o->text[end] != '\n') end++;
    size_t from = start, to = end;
    if (to - from > EXCERPT) {
        from = off - start > EXCERPT / 3 ? off - EXCERPT / 3 : start;
        to = from + EXCERPT < end ? from + EXCERPT : end;
    }
    printf("    %-*s line %zu: %s%.*s%s\n", width, name, ln + 1, from > start ? "..." : "", (int)(to - from),
           o->text + from, to < end ? "..." : "");
}

/* head leads each finding: "results" for eager against jit, "  runs" for two runs of one mode */
static void print_diff(const char *head, const diff *d, const output *a, const output *b, const char *const names[2]) {
    int w = (int)(strlen(names[0]) > strlen(names[1]) ? strlen(names[0]) : strlen(names[1]));
    if (d->count_differs)
        printf("%s: differ: %s printed %zu numbers, %s %zu\n", head, names[0], a->nnum, names[1], b->nnum);
    if (d->ndiff) {
        const number *x = &a->num[d->first], *y = &b->num[d->first];
        printf("%s: differ: %zu of %zu numbers; max abs difference %.3g, max rel difference %.3g\n", head,
               d->ndiff, d->compared, d->max_abs, d->max_rel);
        printf("  first differing number (number %zu): %.*s vs %.*s\n", d->first + 1, (int)x->len,
               a->text + x->off, (int)y->len, b->text + y->off);
        print_excerpt(names[0], w, a, x->off);
        print_excerpt(names[1], w, b, y->off);
    } else if (d->count_differs && d->compared) {
        printf("  the first %zu numbers are identical\n", d->compared);
    }
    if (d->text_differs) {
        printf("%s: the text differs%s; first differing line:\n", head, d->ndiff ? " too" : "");
        print_excerpt(names[0], w, a, d->text_a);
        print_excerpt(names[1], w, b, d->text_b);
    }
}

/* ---- step times --------------------------------------------------------------------------------- */

static int cmp_double(const void *p, const void *q) {
    double x = *(const double *)p, y = *(const double *)q;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static bool is_step_metric(const metric *m) {
    return !strcmp(m->metric, "step_time") || !strcmp(m->metric, "fwd_bwd_time");
}

static double unit_seconds(const char *unit) {
    if (!strcmp(unit, "ns")) return 1e-9;
    if (!strcmp(unit, "us")) return 1e-6;
    if (!strcmp(unit, "ms")) return 1e-3;
    if (!strcmp(unit, "s")) return 1;
    return 0;
}

/* "9.92 us", "123 us": three significant digits */
static void format_time(char *buf, size_t n, double v, const char *unit) {
    int prec = fabs(v) >= 100 ? 0 : fabs(v) >= 10 ? 1 : 2;
    snprintf(buf, n, "%.*f %s", prec, v, unit);
}

static void format_ns(char *buf, size_t n, double ns) {
    if (ns < 1e6) format_time(buf, n, ns / 1e3, "us");
    else if (ns < 1e9) format_time(buf, n, ns / 1e6, "ms");
    else format_time(buf, n, ns / 1e9, "s");
}

/* "2.90x faster" when jit takes less time than eager */
static void format_ratio(char *buf, size_t n, double eager, double jit) {
    if (!(eager > 0 && jit > 0)) snprintf(buf, n, "-");
    else if (eager >= jit) snprintf(buf, n, "%.2fx faster", eager / jit);
    else snprintf(buf, n, "%.2fx slower", jit / eager);
}

/* The median over runs of one (workload, metric) in one mode; false if that mode never printed it. */
static bool metric_median(output *runs, int nruns, const metric *key, double *value, char *unit, size_t unit_n) {
    double *v = malloc(sizeof *v * (size_t)nruns);
    int n = 0;
    if (!v) return false;
    for (int r = 0; r < nruns; r++)
        for (size_t i = 0; i < runs[r].nmet; i++) {
            const metric *m = &runs[r].met[i];
            if (!strcmp(m->workload, key->workload) && !strcmp(m->metric, key->metric)) {
                v[n++] = m->value;
                snprintf(unit, unit_n, "%s", m->unit);
                break;                                /* the first line of it in each run */
            }
        }
    if (n) *value = median(v, n);
    free(v);
    return n > 0;
}

/* One row per (workload, metric) of step time that either mode printed. Returns the row count. */
static int print_step_times(output *runs[2], int nruns) {
    const metric *keys[64];
    int nkeys = 0;
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; i < runs[m][0].nmet && nkeys < 64; i++) {
            const metric *k = &runs[m][0].met[i];
            bool seen = !is_step_metric(k);
            for (int j = 0; j < nkeys && !seen; j++)
                seen = !strcmp(keys[j]->workload, k->workload) && !strcmp(keys[j]->metric, k->metric);
            if (!seen) keys[nkeys++] = k;
        }
    if (!nkeys) return 0;
    printf("%-10s%-10s%-15s%s\n", "workload", "mode", "step time", "ratio");
    for (int k = 0; k < nkeys; k++) {
        double v[2] = {0, 0};
        char unit[2][16], shown[2][32], ratio[48] = "";
        bool have[2];
        for (int m = 0; m < 2; m++) {
            have[m] = metric_median(runs[m], nruns, keys[k], &v[m], unit[m], sizeof unit[m]);
            if (have[m]) format_time(shown[m], sizeof shown[m], v[m], unit[m]);
            else snprintf(shown[m], sizeof shown[m], "-");
        }
        if (have[0] && have[1]) {
            double s0 = unit_seconds(unit[0]), s1 = unit_seconds(unit[1]);
            if (!strcmp(unit[0], unit[1])) format_ratio(ratio, sizeof ratio, v[0], v[1]);
            else if (s0 > 0 && s1 > 0) format_ratio(ratio, sizeof ratio, v[0] * s0, v[1] * s1);
            else snprintf(ratio, sizeof ratio, "- (units %s and %s)", unit[0], unit[1]);
        }
        printf("%-10s%-10s%s\n", keys[k]->workload, MODES[0], shown[0]);
        printf("%-10s%-10s%-15s%s\n", keys[k]->workload, MODES[1], shown[1], ratio);
    }
    printf("(step time: the program's own step_time / fwd_bwd_time, median of %d run%s per mode)\n", nruns,
           nruns == 1 ? "" : "s");
    return nkeys;
}

static void print_wall_times(output *runs[2], int nruns) {
    double med[2];
    double *v = malloc(sizeof *v * (size_t)nruns);
    if (!v) return;
    for (int m = 0; m < 2; m++) {
        for (int r = 0; r < nruns; r++) v[r] = runs[m][r].wall_ns;
        med[m] = median(v, nruns);
    }
    free(v);
    char shown[2][32], ratio[32];
    format_ns(shown[0], sizeof shown[0], med[0]);
    format_ns(shown[1], sizeof shown[1], med[1]);
    format_ratio(ratio, sizeof ratio, med[0], med[1]);
    printf("%-10s%-15s%s\n", "mode", "wall time", "ratio");
    printf("%-10s%s\n", MODES[0], shown[0]);
    printf("%-10s%-15s%s\n", MODES[1], shown[1], ratio);
    printf("(wall time of the whole program, start-up and compiling included, median of %d run%s per mode;\n"
           " it printed no tj-bench step_time lines)\n", nruns, nruns == 1 ? "" : "s");
}

/* ---- main --------------------------------------------------------------------------------------- */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int main(int argc, char **argv) {
    int runs = 3, nignore = 0, i = 1, status = 2;
    regex_t ignore[MAX_IGNORE];
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { i++; break; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); status = 0; goto free_regex; }
        if (!strcmp(a, "--runs") && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || n < 1 || n > 1000) {
                fprintf(stderr, "tj-compare: --runs takes a count from 1 to 1000, not '%s'\n", argv[i]);
                goto free_regex;
            }
            runs = (int)n;
        } else if (!strcmp(a, "--ignore") && i + 1 < argc) {
            int err;
            if (nignore == MAX_IGNORE) {
                fprintf(stderr, "tj-compare: at most %d --ignore patterns\n", MAX_IGNORE);
                goto free_regex;
            }
            if ((err = regcomp(&ignore[nignore], argv[++i], REG_EXTENDED | REG_NOSUB))) {
                char msg[128];
                regerror(err, &ignore[nignore], msg, sizeof msg);
                fprintf(stderr, "tj-compare: --ignore '%s': %s\n", argv[i], msg);
                goto free_regex;
            }
            nignore++;
        } else {
            fprintf(stderr, "tj-compare: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            goto free_regex;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "tj-compare: no program given\n");
        usage(stderr);
        goto free_regex;
    }

    /* the command of each mode: tj-bench runs both modes unless given one, and ignores TJ_MODE */
    const char *prog = argv[i];
    bool bench = !strcmp(base_name(prog), "tj-bench");
    int nargs = argc - i;
    for (int a = i + 1; a < argc; a++)
        if (!strcmp(argv[a], "--mode")) {
            if (bench) {
                fprintf(stderr, "tj-compare: do not give tj-bench --mode: tj-compare runs both modes\n");
                goto free_regex;
            }
            fprintf(stderr, "tj-compare: warning: %s is given --mode, which may override TJ_MODE\n", prog);
        }
    char **cmd[2] = {calloc((size_t)nargs + 3, sizeof(char *)), calloc((size_t)nargs + 3, sizeof(char *))};
    output *out[2] = {calloc((size_t)runs, sizeof(output)), calloc((size_t)runs, sizeof(output))};
    if (!cmd[0] || !cmd[1] || !out[0] || !out[1]) {
        fprintf(stderr, "tj-compare: out of memory\n");
        goto free_all;
    }
    for (int m = 0; m < 2; m++) {
        int k = 0;
        cmd[m][k++] = argv[i];
        if (bench) { cmd[m][k++] = "--mode"; cmd[m][k++] = (char *)MODES[m]; }
        for (int a = i + 1; a < argc; a++) cmd[m][k++] = argv[a];
    }

    /* eager, jit, eager, jit, ...: a slow drift of the machine hits both modes alike */
    for (int r = 0; r < runs; r++)
        for (int m = 0; m < 2; m++) {
            if (run_program(cmd[m], MODES[m], &out[m][r])) goto free_all;
            if (analyse(&out[m][r], ignore, nignore)) {
                fprintf(stderr, "tj-compare: out of memory analysing the output\n");
                goto free_all;
            }
        }

    if (!print_step_times(out, runs)) print_wall_times(out, runs);

    const output *e = &out[0][0], *j = &out[1][0];
    diff d = compare(e, j);
    size_t nbench = e->nmet > j->nmet ? e->nmet : j->nmet;
    size_t nign = e->nignored > j->nignored ? e->nignored : j->nignored;
    char skipped[128] = "";
    if (nbench || nign)
        snprintf(skipped, sizeof skipped, "; not compared: %zu tj-bench line%s, %zu --ignore'd line%s", nbench,
                 nbench == 1 ? "" : "s", nign, nign == 1 ? "" : "s");
    if (!identical(&d)) {
        print_diff("results", &d, e, j, MODES);
        status = 1;
    } else if (nbench && !e->nnum && !e->nchr) {
        printf("results: timing only (%s printed nothing but tj-bench timing lines: nothing to compare)\n",
               bench ? "tj-bench" : "the program");
        status = 0;
    } else {
        printf("results: identical (%zu number%s compared%s)\n", d.compared, d.compared == 1 ? "" : "s", skipped);
        status = 0;
    }

    /* a mode that prints different results from run to run makes the comparison meaningless */
    for (int m = 0; m < 2; m++)
        for (int r = 1; r < runs; r++) {
            diff self = compare(&out[m][0], &out[m][r]);
            if (!identical(&self)) {
                char first[32], other[32];
                snprintf(first, sizeof first, "%s run 1", MODES[m]);
                snprintf(other, sizeof other, "%s run %d", MODES[m], r + 1);
                printf("note: %s mode is not deterministic: run %d printed other results than run 1:\n", MODES[m],
                       r + 1);
                print_diff("  runs", &self, &out[m][0], &out[m][r], (const char *const[2]){first, other});
                break;
            }
        }

free_all:
    for (int m = 0; m < 2; m++) {
        for (int r = 0; out[m] && r < runs; r++) output_free(&out[m][r]);
        free(out[m]);
        free(cmd[m]);
    }
free_regex:
    for (int r = 0; r < nignore; r++) regfree(&ignore[r]);
    return status;
}
