/* tj-bench: tapejit's benchmarks (../shared/BENCHMARKS.md), one JSON object a line in the
 * peer scripts' format. Workloads so far: w4 (per-op overhead of eager ops and the tape).
 * Usage: tj-bench [--threads N] [--steps N] [WORKLOAD...]; uses the public header only. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tapejit.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void emit(const char *workload, const char *mode, int threads, const char *metric, double value,
                 const char *unit) {
    printf("{\"workload\": \"%s\", \"system\": \"tapejit\", \"mode\": \"%s\", \"threads\": %d, "
           "\"metric\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"}\n",
           workload, mode, threads, metric, value, unit);
}

/* W4: x = ones(1) watched; `ops` times y = y + x; then dy/dx. ns per op for recording,
 * backward, and the same adds with no tape. */
static int w4(int threads, int ops) {
    enum { REPS = 15 };
    double rec[REPS], bwd[REPS], plain[REPS];
    for (int r = 0; r < REPS; r++) {
        tj_scope_begin();
        tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(1));
        tj_tensor *y = tj_zeros(TJ_F32, TJ_SHAPE(1));
        double t0 = now_ns();
        for (int i = 0; i < ops; i++) y = tj_add(y, x);
        plain[r] = (now_ns() - t0) / ops;
        tj_scope_end();

        tj_scope_begin();
        x = tj_ones(TJ_F32, TJ_SHAPE(1));
        y = tj_zeros(TJ_F32, TJ_SHAPE(1));
        tj_tape *tape = tj_tape_begin(0);
        tj_tape_watch(tape, x);
        t0 = now_ns();
        for (int i = 0; i < ops; i++) y = tj_add(y, x);
        double t1 = now_ns();
        tj_tensor *g;
        int rc = tj_tape_gradient(tape, y, 1, &x, &g);
        double t2 = now_ns();
        rec[r] = (t1 - t0) / ops;
        bwd[r] = (t2 - t1) / ops;
        if (rc || tj_item(g) != ops) {
            fprintf(stderr, "tj-bench w4: wrong gradient %g (want %d): %s\n", tj_item(g), ops, tj_last_error());
            tj_tape_free(tape);
            tj_scope_end();
            return 1;
        }
        tj_tape_free(tape);
        tj_scope_end();
    }
    emit("w4", "eager", threads, "ns_per_op_fwd_record", median(rec, REPS), "ns");
    emit("w4", "eager", threads, "ns_per_op_backward", median(bwd, REPS), "ns");
    emit("w4", "eager", threads, "ns_per_op_fwd_no_record", median(plain, REPS), "ns");
    return 0;
}

int main(int argc, char **argv) {
    int threads = tj_threads(), steps = 10000, rc = 0, nwork = 0;
    const char *work[8];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            if (strcmp(argv[++i], "eager")) { fprintf(stderr, "tj-bench: only --mode eager exists so far\n"); return 2; }
        } else if (argv[i][0] == '-' || nwork == 8) {
            fprintf(stderr, "usage: tj-bench [--threads N] [--steps N] [--mode eager] [w4]\n");
            return 2;
        } else work[nwork++] = argv[i];
    }
    if (steps < 1 || tj_set_threads(threads)) {
        fprintf(stderr, "tj-bench: bad --steps or --threads: %s\n", tj_last_error());
        return 2;
    }
    fprintf(stderr, "tj-bench: BLAS: %s\n", tj_blas_info());
    if (nwork == 0) work[nwork++] = "w4";
    for (int i = 0; i < nwork; i++) {
        if (!strcmp(work[i], "w4")) rc |= w4(threads, steps);
        else { fprintf(stderr, "tj-bench: unknown workload '%s' (have: w4)\n", work[i]); rc = 2; }
    }
    return rc;
}
