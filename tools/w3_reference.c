/* w3_reference.c: hand-written C references for W3 (BENCHMARKS.md): what this machine does
 * with its bytes and its math, to set tapejit's compiled W3 against. Not part of the build:
 *
 *     gcc -O3 -march=native -ffp-contract=off -Iruntime tools/w3_reference.c -lm -o /tmp/w3ref && /tmp/w3ref
 *     gcc -O3 -march=native -ffast-math -Iruntime tools/w3_reference.c -lm -o /tmp/w3ref && /tmp/w3ref
 *
 * "bytes": one loop that reads x, a, b and writes three arrays of 2^20 floats, with an add
 * or a multiply per value (the memory traffic of W3's fused loop, hardly any math).
 * "fused": W3's forward and backward in one loop with libm's tanhf and expf. With
 * -ffast-math gcc calls glibc's vector versions, contracts FMAs and reassociates the sum:
 * what giving up tapejit's bit-identical results would buy. "tj_math": the same loop with
 * tapejit's own tanh and sigmoid (runtime/math/tj_math.h) and a 16-lane sum; built with
 * -ffp-contract=off it computes tapejit's bits, and
 *
 *     gcc -O3 -march=native -ffp-contract=fast -Iruntime tools/w3_reference.c -lm -o /tmp/w3ref
 *
 * shows what fused multiply-adds in those definitions would buy. Prints median and best of 50. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "math/tj_math.h"

#define N (1 << 20)
#define REPS 50

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef float loop_fn(const float *restrict x, const float *restrict a, const float *restrict b, float *restrict dx,
                      float *restrict da, float *restrict db);

static float bytes_only(const float *restrict x, const float *restrict a, const float *restrict b, float *restrict dx,
                        float *restrict da, float *restrict db) {
    for (int i = 0; i < N; i++) {
        dx[i] = x[i] + a[i];
        da[i] = a[i] * b[i];
        db[i] = b[i] + x[i];
    }
    return dx[N - 1];
}

/* y = sum(tanh(x a + b) sigmoid(x) + x^2) and its gradients for x, a, b (restrict, so that
 * gcc vectorizes) */
static float fused(const float *restrict x, const float *restrict a, const float *restrict b, float *restrict dx,
                   float *restrict da, float *restrict db) {
    float y = 0;
    for (int i = 0; i < N; i++) {
        float t = tanhf(x[i] * a[i] + b[i]), s = 1.0f / (1.0f + expf(-x[i]));
        y += t * s + x[i] * x[i];
        float gu = s * (1 - t * t);
        da[i] = gu * x[i];
        db[i] = gu;
        dx[i] = gu * a[i] + t * s * (1 - s) + 2 * x[i];
    }
    return y;
}

/* the same with tapejit's tanh and sigmoid, the sum in 16 lanes (vectorizes without
 * reassociation) */
static float ours(const float *restrict x, const float *restrict a, const float *restrict b, float *restrict dx,
                  float *restrict da, float *restrict db) {
    float acc[16] = {0};
    for (int i = 0; i < N; i += 16)
        for (int l = 0; l < 16; l++) {
            int j = i + l;
            float t = tj_m_tanhf(x[j] * a[j] + b[j]), s = tj_m_sigmoidf(x[j]);
            acc[l] += t * s + x[j] * x[j];
            float gu = s * (1 - t * t);
            da[j] = gu * x[j];
            db[j] = gu;
            dx[j] = gu * a[j] + t * s * (1 - s) + 2 * x[j];
        }
    float y = 0;
    for (int l = 0; l < 16; l++) y += acc[l];
    return y;
}

static void time_it(const char *name, loop_fn *loop, float *const *v) {
    double ts[REPS];
    volatile float sink = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ms();
        sink += loop(v[0], v[1], v[2], v[3], v[4], v[5]);
        ts[r] = now_ms() - t0;
    }
    qsort(ts, REPS, sizeof ts[0], cmp);
    printf("{\"workload\": \"w3\", \"system\": \"c reference\", \"mode\": \"%s\", \"metric\": \"fwd_bwd_time\", "
           "\"value\": %.4f, \"best\": %.4f, \"unit\": \"ms\"}\n", name, ts[REPS / 2], ts[0]);
    (void)sink;
}

int main(void) {
    float *v[6];                     /* x, a, b, dx, da, db */
    for (int k = 0; k < 6; k++)
        if (!(v[k] = aligned_alloc(64, sizeof(float) * N))) return 1;
    srand(1);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 6; k++) v[k][i] = k < 3 ? rand() / (float)RAND_MAX * 2 - 1 : 0;
    time_it("bytes", bytes_only, v);
    time_it("fused", fused, v);
    time_it("tj_math", ours, v);
    return 0;
}
