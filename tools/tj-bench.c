/* tj-bench: tapejit's benchmarks (../shared/BENCHMARKS.md), one JSON object a line in the
 * peer scripts' format. Workloads: w1 (the Keras guide's iris step), w2 (MLP 784-512-512-10),
 * w3 (an elementwise chain, forward + backward), w4 (per-op overhead), w5 (first-step
 * latency of w1/w2 in a fresh process). Each runs in eager or compiled mode.
 * Usage: tj-bench [--mode eager|jit] [--threads N] [--steps N] [--compare] [WORKLOAD...]
 * --compare adds the ratios, and runs the PyTorch peer (../shared/bench/torch_peer.py) in the
 * same run when Debian's python3-torch is there. Public header only; plain-op models. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <tapejit.h>

extern char **environ;

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

static int threads = 1, steps_override = 0;

/* every figure printed, for --compare's ratios */
typedef struct { char workload[16], mode[40], metric[40]; double value; } figure;
static figure figs[256];
static int nfigs;

static void keep(const char *workload, const char *mode, const char *metric, double value) {
    if (nfigs == 256) return;
    figure *f = &figs[nfigs++];
    snprintf(f->workload, sizeof f->workload, "%.15s", workload);
    snprintf(f->mode, sizeof f->mode, "%.39s", mode);
    snprintf(f->metric, sizeof f->metric, "%.39s", metric);
    f->value = value;
}

static const figure *find(const char *workload, const char *mode, const char *metric) {
    for (int i = 0; i < nfigs; i++)
        if (!strcmp(figs[i].workload, workload) && !strcmp(figs[i].mode, mode) && !strcmp(figs[i].metric, metric))
            return &figs[i];
    return NULL;
}

static void emit(const char *workload, const char *mode, const char *metric, double value, const char *unit) {
    keep(workload, mode, metric, value);
    printf("{\"workload\": \"%s\", \"system\": \"tapejit\", \"mode\": \"%s\", \"threads\": %d, "
           "\"metric\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"}\n",
           workload, mode, threads, metric, value, unit);
    fflush(stdout);
}

static int fail(const char *what) {
    fprintf(stderr, "tj-bench: %s: %s\n", what, tj_last_error());
    return 1;
}

/* ---- a small MLP, trained with the library's Adam --------------------------------------------- */

enum { MAXL = 4 };
typedef struct {
    int nl;                          /* layers */
    bool relu[MAXL];
    double dropout0;                 /* dropout after layer 0 (training), 0: none */
    bool softmax_ce;                 /* loss: softmax cross-entropy on int labels, else MSE */
    int nclass;
    tj_tensor *w[MAXL], *b[MAXL];   /* variables */
    tj_optimizer *adam;              /* lr 1e-3, 0.9, 0.999, eps 1e-8 (PyTorch's) */
    tj_tensor *classes;              /* (1, nclass) int32 0..nclass-1 */
} mlp;

static void mlp_init(mlp *net, int nl, const int *sizes) {
    net->nl = nl;
    tj_tensor *params[2 * MAXL];
    for (int l = 0; l < nl; l++) {
        double lim = sqrt(6.0 / (sizes[l] + sizes[l + 1]));      /* glorot uniform */
        params[2 * l] = net->w[l] = tj_variable(tj_rand_uniform(TJ_SHAPE(sizes[l], sizes[l + 1]), -lim, lim), "kernel");
        params[2 * l + 1] = net->b[l] = tj_variable(tj_zeros(TJ_F32, TJ_SHAPE(sizes[l + 1])), "bias");
    }
    net->adam = tj_adam(1e-3, 0.9, 0.999, 1e-8);
    tj_optimizer_build(net->adam, 2 * nl, params);
    if (net->nclass) {
        int32_t c[64];
        for (int i = 0; i < net->nclass; i++) c[i] = i;
        tj_tensor *cl = tj_tensor_from(TJ_I32, TJ_SHAPE(1, net->nclass), c);
        net->classes = tj_variable(cl, "classes");
    }
}

static void mlp_free(mlp *net) {
    for (int l = 0; l < net->nl; l++) {
        tj_variable_free(net->w[l]);
        tj_variable_free(net->b[l]);
    }
    tj_optimizer_free(net->adam);
    if (net->classes) tj_variable_free(net->classes);
}

/* forward, loss, tape gradient, Adam (lr 1e-3, 0.9, 0.999, 1e-8): the whole training step */
static int mlp_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    mlp *net = user;
    (void)n_in; (void)n_out;
    tj_tape *tape = tj_tape_begin(0);
    tj_tensor *h = in[0];
    for (int l = 0; l < net->nl; l++) {
        h = tj_add(tj_matmul(h, net->w[l]), net->b[l]);
        if (net->relu[l]) h = tj_relu(h);
        if (l == 0 && net->dropout0 > 0) h = tj_dropout(h, net->dropout0, true);
    }
    tj_tensor *loss;
    if (net->softmax_ce) {
        int64_t batch = tj_tensor_shape(in[0]).dim[0];
        tj_tensor *onehot = tj_cast(tj_equal(tj_reshape(in[1], TJ_SHAPE(batch, 1)), net->classes), TJ_F32);
        int ax = 1;
        loss = tj_neg(tj_mean(tj_sum(tj_mul(onehot, tj_log_softmax(h, 1)), 1, &ax, false), 0, NULL, false));
    } else {
        tj_tensor *d = tj_sub(h, in[1]);
        loss = tj_mean(tj_mul(d, d), 0, NULL, false);
    }
    tj_tensor *params[2 * MAXL], *grads[2 * MAXL];
    for (int l = 0; l < net->nl; l++) { params[2 * l] = net->w[l]; params[2 * l + 1] = net->b[l]; }
    int rc = tj_tape_gradient(tape, loss, 2 * net->nl, params, grads);
    tj_tape_free(tape);
    if (rc) return rc;
    rc = tj_optimizer_apply(net->adam, 2 * net->nl, grads, params);
    if (rc) return rc;
    out[0] = loss;
    return tj_error_code();
}

/* The most bytes one call of f holds: what it allocates at its peak on this thread plus,
 * compiled, its signature's arena (allocated once, at compile time). */
static void emit_peak(const char *workload, tj_mode mode, tj_function *f, int n_in, tj_tensor *const *in, int n_out) {
    tj_tensor *out[8];
    tj_scope_begin();
    tj_memory_reset_peak();
    int64_t before = tj_memory_in_use();
    int rc = tj_function_call(f, n_in, in, n_out, out);
    int64_t peak = tj_memory_peak() - before;
    tj_scope_end();
    tj_compile_stats st;
    if (mode == TJ_MODE_JIT && tj_function_compile_stats(f, &st) == 0) peak += (int64_t)st.arena_bytes;
    if (!rc) emit(workload, mode == TJ_MODE_JIT ? "jit" : "eager", "peak_bytes", (double)peak, "bytes");
}

/* ---- data ------------------------------------------------------------------------------------ */

#ifndef TJ_DATA_DIR
#define TJ_DATA_DIR "examples/data"
#endif

/* iris rows 1..120: x = Petal.Length, Sepal.Length, Petal.Width; y = Sepal.Width */
static int load_iris(float *x, float *y) {
    const char *paths[] = {getenv("TJ_IRIS_CSV"), TJ_DATA_DIR "/iris.csv", "examples/data/iris.csv"};
    for (int p = 0; p < 3; p++) {
        if (!paths[p]) continue;
        FILE *fp = fopen(paths[p], "r");
        if (!fp) continue;
        char line[256];
        int n = 0;
        if (!fgets(line, sizeof line, fp)) { fclose(fp); continue; }
        while (n < 120 && fgets(line, sizeof line, fp)) {
            float sl, sw, pl, pw;
            if (sscanf(line, "%f,%f,%f,%f", &sl, &sw, &pl, &pw) != 4) break;
            x[3 * n] = pl; x[3 * n + 1] = sl; x[3 * n + 2] = pw;
            y[n++] = sw;
        }
        fclose(fp);
        if (n == 120) return 0;
    }
    fprintf(stderr, "tj-bench: cannot read iris.csv (set TJ_IRIS_CSV to its path)\n");
    return 1;
}

/* ---- training workloads ---------------------------------------------------------------------- */

typedef struct { tj_tensor *x[12], *y[12]; int n; } batches;

static int make_w1(mlp *net, batches *bs) {
    static float x[360], y[120];
    if (load_iris(x, y)) return 1;
    *net = (mlp){.relu = {false, false}, .dropout0 = 0.5};
    tj_seed(0);
    mlp_init(net, 2, (int[]){3, 32, 1});
    bs->n = 12;
    for (int i = 0; i < 12; i++) {
        bs->x[i] = tj_keep(tj_tensor_from(TJ_F32, TJ_SHAPE(10, 3), x + 30 * i));
        bs->y[i] = tj_keep(tj_tensor_from(TJ_F32, TJ_SHAPE(10, 1), y + 10 * i));
    }
    return 0;
}

static int make_w2(mlp *net, batches *bs) {
    *net = (mlp){.relu = {true, true, false}, .softmax_ce = true, .nclass = 10};
    tj_seed(0);
    mlp_init(net, 3, (int[]){784, 512, 512, 10});
    tj_seed(1);
    bs->n = 8;
    for (int i = 0; i < 8; i++) {
        bs->x[i] = tj_keep(tj_rand_normal(TJ_SHAPE(128, 784), 0, 1));
        bs->y[i] = tj_keep(tj_cast(tj_mul(tj_rand_uniform(TJ_SHAPE(128), 0, 1), tj_scalar(10)), TJ_I32));
    }
    return 0;
}

/* ms of W2's eight products alone (median), as its compiled step calls BLAS: the step's
 * floor on this machine. a[i] (m x k) @ b[i] (k x n), transposes made beforehand. */
static double w2_matmul_ms(int reps) {
    static const int mkn[8][3] = {{128, 784, 512}, {128, 512, 512}, {128, 512, 10},   /* forward */
                                  {128, 10, 512},  {512, 128, 10},  {128, 512, 512},  /* dx, dW */
                                  {512, 128, 512}, {784, 128, 512}};
    tj_scope_begin();
    tj_tensor *a[8], *b[8];
    for (int i = 0; i < 8; i++) {
        a[i] = tj_rand_normal(TJ_SHAPE(mkn[i][0], mkn[i][1]), 0, 1);
        b[i] = tj_rand_normal(TJ_SHAPE(mkn[i][1], mkn[i][2]), 0, 1);
    }
    double *ts = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < 5 + reps; r++) {
        tj_scope_begin();
        double t0 = now_ns();
        for (int i = 0; i < 8; i++) tj_matmul(a[i], b[i]);
        if (r >= 5) ts[r - 5] = now_ns() - t0;
        tj_scope_end();
    }
    double med = median(ts, reps) / 1e6;
    free(ts);
    tj_scope_end();
    return med;
}

static int train_bench(const char *name, tj_mode mode, int warm, int steps, bool us) {
    mlp net;
    batches bs;
    tj_scope_begin();
    if ((!strcmp(name, "w1") ? make_w1 : make_w2)(&net, &bs)) { tj_scope_end(); return 1; }
    tj_set_mode(mode);
    tj_function *f = tj_function_new(name, mlp_step, &net);
    double *ts = malloc(sizeof(double) * (size_t)steps);
    int rc = 0;
    for (int i = 0; i < warm + steps && !rc; i++) {
        tj_scope_begin();
        tj_tensor *in[2] = {bs.x[i % bs.n], bs.y[i % bs.n]}, *loss;
        double t0 = now_ns();
        rc = tj_function_call(f, 2, in, 1, &loss);
        double t1 = now_ns();
        if (i == 0) tj_function_wait(f);     /* warm-up and timing run compiled code */
        if (i >= warm) ts[i - warm] = t1 - t0;
        tj_scope_end();
    }
    if (rc) { free(ts); return fail(name); }
    const char *mname = mode == TJ_MODE_JIT ? "jit" : "eager";
    double med = median(ts, steps);
    emit(name, mname, "step_time", us ? med / 1e3 : med / 1e6, us ? "us" : "ms");
    if (!us) emit(name, mname, "samples_per_s", 128.0 / (med * 1e-9), "samples/s");
    if (!strcmp(name, "w2") && mode == TJ_MODE_JIT) {
        double mm = w2_matmul_ms(steps);
        emit(name, "matmuls only", "step_time", mm, "ms");
        emit(name, "jit vs matmuls only", "step_time_ratio", med / 1e6 / mm, "x");
    }
    emit_peak(name, mode, f, 2, (tj_tensor *[]){bs.x[0], bs.y[0]}, 1);
    free(ts);
    tj_function_free(f);
    mlp_free(&net);
    tj_scope_end();
    return 0;
}

/* ---- w3: y = sum(tanh(x*a + b) * sigmoid(x) + x*x), gradients for x, a, b ------------------- */

static int w3_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    (void)user; (void)n_in; (void)n_out;
    tj_tape *tape = tj_tape_begin(0);
    for (int i = 0; i < 3; i++) tj_tape_watch(tape, in[i]);
    tj_tensor *x = in[0], *a = in[1], *b = in[2];
    tj_tensor *y = tj_sum(tj_add(tj_mul(tj_tanh(tj_add(tj_mul(x, a), b)), tj_sigmoid(x)), tj_mul(x, x)), 0, NULL, false);
    int rc = tj_tape_gradient(tape, y, 3, in, out + 1);
    tj_tape_free(tape);
    out[0] = y;
    return rc;
}

static int w3(tj_mode mode, int reps) {
    tj_scope_begin();
    tj_seed(0);
    tj_tensor *in[3];
    for (int i = 0; i < 3; i++) in[i] = tj_rand_normal(TJ_SHAPE(1 << 20), 0, 1);
    tj_set_mode(mode);
    tj_function *f = tj_function_new("w3", w3_step, NULL);
    double *ts = malloc(sizeof(double) * (size_t)reps);
    int rc = 0;
    for (int i = 0; i < 10 + reps && !rc; i++) {
        tj_scope_begin();
        tj_tensor *out[4];
        double t0 = now_ns();
        rc = tj_function_call(f, 3, in, 4, out);
        if (i >= 10) ts[i - 10] = now_ns() - t0;
        if (i == 0) tj_function_wait(f);
        tj_scope_end();
    }
    if (!rc) emit("w3", mode == TJ_MODE_JIT ? "jit" : "eager", "fwd_bwd_time", median(ts, reps) / 1e6, "ms");
    if (!rc) emit_peak("w3", mode, f, 3, in, 4);
    free(ts);
    tj_function_free(f);
    tj_scope_end();
    return rc ? fail("w3") : 0;
}

/* ---- w4: per-op overhead ------------------------------------------------------------------- */

static int w4(int ops) {
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
        bool ok = rc == 0 && tj_item(g) == ops;
        tj_tape_free(tape);
        tj_scope_end();
        if (!ok) return fail("w4: wrong gradient");
    }
    emit("w4", "eager", "ns_per_op_fwd_record", median(rec, REPS), "ns");
    emit("w4", "eager", "ns_per_op_backward", median(bwd, REPS), "ns");
    emit("w4", "eager", "ns_per_op_fwd_no_record", median(plain, REPS), "ns");
    return 0;
}

/* ---- w5: first compiled step of w1/w2, tracing and compiling included, fresh process ------- */

static int first_step(const char *which) {
    mlp net;
    batches bs;
    tj_scope_begin();
    if ((!strcmp(which, "w1") ? make_w1 : make_w2)(&net, &bs)) return 1;
    tj_set_mode(TJ_MODE_JIT);
    tj_function *f = tj_function_new(which, mlp_step, &net);
    tj_tensor *in[2] = {bs.x[0], bs.y[0]}, *loss;
    double t0 = now_ns();
    int rc = tj_function_call(f, 2, in, 1, &loss);
    double t1 = now_ns();
    if (rc) return fail("w5");
    char mode[16];
    snprintf(mode, sizeof mode, "jit:%s", which);
    emit("w5", mode, "first_step_latency", (t1 - t0) / 1e6, "ms");
    /* a background compile: steps run eagerly until its first code is ready, and its
     * optimised code comes after */
    int steps = 1;
    for (; strcmp(tj_function_last_path(f), "compiled") && strcmp(tj_function_last_path(f), "eager") && steps < 100000; steps++) {
        tj_scope_begin();
        rc = tj_function_call(f, 2, (tj_tensor *[]){bs.x[steps % bs.n], bs.y[steps % bs.n]}, 1, &loss);
        tj_scope_end();
        if (rc) return fail("w5");
    }
    emit("w5", mode, "first_compiled_step", (now_ns() - t0) / 1e6, "ms");
    emit("w5", mode, "calls_before_it", steps - 1, "calls");
    tj_function_wait(f);
    emit("w5", mode, "code_ready", (now_ns() - t0) / 1e6, "ms");
    tj_compile_stats st;
    if (tj_function_compile_stats(f, &st) == 0) {
        emit("w5", mode, "code_from_cache", st.cached, "bool");
        emit("w5", mode, "compile_quick_ms", st.quick_ms, "ms");
        emit("w5", mode, "compile_trace_ms", st.trace_ms, "ms");
        emit("w5", mode, "compile_graph_ms", st.graph_ms, "ms");
        emit("w5", mode, "compile_ir_ms", st.ir_ms, "ms");
        emit("w5", mode, "compile_llvm_opt_ms", st.llvm_opt_ms, "ms");
        emit("w5", mode, "compile_codegen_ms", st.codegen_ms, "ms");
        emit("w5", mode, "trace_nodes", st.nodes, "nodes");
        emit("w5", mode, "live_nodes", st.live_nodes, "nodes");
        emit("w5", mode, "kernels", st.kernels, "kernels");
    }
    tj_function_free(f);
    mlp_free(&net);
    tj_scope_end();
    return 0;
}

static int w5(const char *self) {
    int rc = 0;
    const char *which[2] = {"w1", "w2"};
    for (int i = 0; i < 2; i++) {
        char th[16];
        snprintf(th, sizeof th, "%d", threads);
        char *argv[] = {(char *)self, "--threads", th, "--first-step", (char *)which[i], NULL};
        pid_t pid;
        int status;
        fflush(stdout);
        if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0 || waitpid(pid, &status, 0) < 0 ||
            !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "tj-bench: w5 %s: the child process failed\n", which[i]);
            rc = 1;
        }
    }
    return rc;
}

/* ---- --compare: ratios, and the PyTorch peer side by side -------------------------------- */

#ifndef TJ_PEER_SCRIPT
#define TJ_PEER_SCRIPT "../shared/bench/torch_peer.py"
#endif


/* Runs the peer script for the time workloads asked for; keeps the median of its reps. */
static void run_peer(const char *const *work, int nwork) {
    const char *script = getenv("TJ_PEER") ? getenv("TJ_PEER") : TJ_PEER_SCRIPT;
    FILE *f = fopen(script, "r");
    if (!f || system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0) {
        fprintf(stderr, "tj-bench: PyTorch peer skipped (%s)\n", f ? "python3-torch is not installed" : "no peer script; set TJ_PEER");
        if (f) fclose(f);
        return;
    }
    fclose(f);
    char wl[64] = "", th[16];
    for (int i = 0; i < nwork; i++)
        if (strcmp(work[i], "w5")) snprintf(wl + strlen(wl), sizeof wl - strlen(wl), "%s%s", wl[0] ? "," : "", work[i]);
    snprintf(th, sizeof th, "%d", threads);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --threads %s --modes eager --workloads %s --reps 3", script, th, wl);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) { fprintf(stderr, "tj-bench: cannot run the peer: %s\n", cmd); return; }
    char line[1024];
    double sum[64] = {0};
    int count[64] = {0};
    figure seen[64];
    int nseen = 0;
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);                                 /* the peer's own lines, as they are */
        char w[16], m[40], metric[40];
        double v;
        const char *a = strstr(line, "\"workload\": \""), *b = strstr(line, "\"mode\": \""), *c = strstr(line, "\"metric\": \""),
                   *d = strstr(line, "\"value\": ");
        if (!a || !b || !c || !d || sscanf(a + 13, "%15[^\"]", w) != 1 || sscanf(b + 9, "%30[^\"]", m) != 1 ||
            sscanf(c + 11, "%39[^\"]", metric) != 1 || sscanf(d + 9, "%lf", &v) != 1)
            continue;
        int k = 0;
        while (k < nseen && !(strcmp(seen[k].workload, w) == 0 && strcmp(seen[k].mode, m) == 0 && strcmp(seen[k].metric, metric) == 0)) k++;
        if (k == nseen && nseen < 64) {
            memcpy(seen[k].workload, w, sizeof w);
            memcpy(seen[k].mode, m, sizeof m);
            memcpy(seen[k].metric, metric, sizeof metric);
            nseen++;
        }
        if (k < 64) { sum[k] += v; count[k]++; }
    }
    pclose(p);
    for (int k = 0; k < nseen; k++) {                        /* the mean of the reps' medians */
        char mode[48];
        snprintf(mode, sizeof mode, "pytorch-%.30s", seen[k].mode);
        keep(seen[k].workload, mode, seen[k].metric, sum[k] / count[k]);
    }
}

static void ratio(const char *w, const char *metric, const char *slow, const char *fast, const char *name) {
    const figure *a = find(w, slow, metric), *b = find(w, fast, metric);
    if (!a || !b || b->value <= 0) return;
    printf("{\"workload\": \"%s\", \"system\": \"tapejit\", \"mode\": \"%s\", \"threads\": %d, "
           "\"metric\": \"%s_ratio\", \"value\": %.3f, \"unit\": \"x\"}\n", w, name, threads, metric, a->value / b->value);
}

static void ratios(const char *const *work, int nwork) {
    static const char *const metrics[] = {"step_time", "fwd_bwd_time", "ns_per_op_fwd_record", "ns_per_op_backward"};
    for (int i = 0; i < nwork; i++)
        for (int m = 0; m < 4; m++) {
            ratio(work[i], metrics[m], "eager", "jit", "jit vs eager");
            ratio(work[i], metrics[m], "pytorch-eager", "jit", "jit vs pytorch eager");
            ratio(work[i], metrics[m], "pytorch-eager", "eager", "eager vs pytorch eager");
        }
}

/* ---- main ------------------------------------------------------------------------------------ */

static int run(const char *w, tj_mode mode, const char *self) {
    bool jit = mode == TJ_MODE_JIT;
    if (!strcmp(w, "w1")) return train_bench("w1", mode, 200, steps_override ? steps_override : 2000, true);
    if (!strcmp(w, "w2")) return train_bench("w2", mode, 5, steps_override ? steps_override : 40, false);
    if (!strcmp(w, "w3")) return w3(mode, steps_override ? steps_override : 30);
    if (!strcmp(w, "w4")) return jit ? 0 : w4(steps_override ? steps_override : 10000);
    if (!strcmp(w, "w5")) return jit ? w5(self) : 0;
    fprintf(stderr, "tj-bench: unknown workload '%s' (have: w1 w2 w3 w4 w5)\n", w);
    return 2;
}

int main(int argc, char **argv) {
    const char *work[8], *first = NULL;
    int nwork = 0;
    bool compare = false, mode_given = false;
    tj_mode mode = TJ_MODE_JIT;
    threads = tj_threads();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && i + 1 < argc) steps_override = atoi(argv[++i]);
        else if (!strcmp(a, "--first-step") && i + 1 < argc) first = argv[++i];
        else if (!strcmp(a, "--compare")) compare = true;
        else if (!strcmp(a, "--mode") && i + 1 < argc) {
            const char *m = argv[++i];
            mode_given = true;
            if (!strcmp(m, "eager")) mode = TJ_MODE_EAGER;
            else if (!strcmp(m, "jit")) mode = TJ_MODE_JIT;
            else { fprintf(stderr, "tj-bench: --mode is eager or jit, not '%s'\n", m); return 2; }
        } else if (a[0] == '-' || nwork == 8) {
            fprintf(stderr, "usage: tj-bench [--mode eager|jit] [--threads N] [--steps N] [--compare] [w1 w2 w3 w4 w5]\n");
            return 2;
        } else work[nwork++] = a;
    }
    if (steps_override < 0 || tj_set_threads(threads)) {
        fprintf(stderr, "tj-bench: bad --steps or --threads: %s\n", tj_last_error());
        return 2;
    }
    if (first) return first_step(first);
    fprintf(stderr, "tj-bench: BLAS: %s\n", tj_blas_info());
    if (nwork == 0) {
        const char *all[] = {"w1", "w2", "w3", "w4", "w5"};
        for (int i = 0; i < 5; i++) work[nwork++] = all[i];
    }
    int rc = 0;
    for (int i = 0; i < nwork; i++) {
        if (compare || !mode_given) {
            rc |= run(work[i], TJ_MODE_EAGER, argv[0]);
            rc |= run(work[i], TJ_MODE_JIT, argv[0]);
        } else {
            rc |= run(work[i], mode, argv[0]);
        }
    }
    if (compare) {
        run_peer(work, nwork);
        ratios(work, nwork);
    }
    return rc;
}
