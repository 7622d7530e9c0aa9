/* check_rng.c: the counter-based generator (runtime/core/rng.c).
 * Philox against Random123's known answers, the position rule (a draw is the tail of any
 * longer draw of the same seed), statistics of uniform and normal draws with bounds of
 * five standard errors, and identical bits with 1 and 2 threads. */
#include "tapejit.h"
#include "core/core.h"
#include "core/rng.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

Suite *rng_suite(void);

/* ---- Philox ---------------------------------------------------------------------------- */

/* Random123 tests/kat_vectors, the three "philox4x32 10" lines: ctr[4] key[2] -> out[4]. */
static const uint32_t kat[3][10] = {
    {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
     0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
     0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
     0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
};

START_TEST(philox_known_answers) {
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        tj_philox4x32_10(kat[v], kat[v] + 4, out);
        for (int w = 0; w < 4; w++)
            ck_assert_msg(out[w] == kat[v][6 + w], "vector %d word %d: %08x, expected %08x",
                          v, w, out[w], kat[v][6 + w]);
    }
    /* the 64-bit form: only vector 0 has ctr words 2, 3 zero */
    uint32_t out[4];
    tj_philox4x32(0, 0, out);
    for (int w = 0; w < 4; w++) ck_assert_uint_eq(out[w], kat[0][6 + w]);
}
END_TEST

START_TEST(philox_word_order) {
    /* key = {low, high} of the seed; ctr = {low, high} of the counter, then 0, 0 */
    const uint64_t key = 0x299f31d0a4093822ull, ctr = 0x85a308d3243f6a88ull;
    const uint32_t c[4] = {0x243f6a88, 0x85a308d3, 0, 0}, k[2] = {0xa4093822, 0x299f31d0};
    uint32_t a[4], b[4];
    tj_philox4x32(key, ctr, a);
    tj_philox4x32_10(c, k, b);
    ck_assert_mem_eq(a, b, sizeof a);
}
END_TEST

/* ---- positions ------------------------------------------------------------------------- */

static uint32_t word_at(uint64_t seed, uint64_t p) {
    uint32_t w[4];
    tj_philox4x32(seed, p / 4, w);
    return w[p % 4];
}

START_TEST(uniform_is_the_documented_formula) {
    const uint64_t seed = 12345, offset = 7;   /* unaligned on purpose */
    enum { N = 1000 };
    float out[N];
    const float lo = -1.5f, hi = 2.25f;
    tj_rng_uniform_f32(seed, offset, N, lo, hi, out);
    for (int j = 0; j < N; j++) {
        float u = (float)(word_at(seed, offset + (uint64_t)j) >> 8) * 0x1p-24f;
        float r = lo + (hi - lo) * u;
        if (!(r < hi)) r = nextafterf(hi, -INFINITY);
        ck_assert_msg(memcmp(&r, &out[j], sizeof r) == 0, "value %d: %a, expected %a", j,
                      (double)out[j], (double)r);
    }
}
END_TEST

START_TEST(normal_is_the_documented_formula) {
    const uint64_t seed = 99, offset = 5;   /* odd: the draw starts with a sine */
    enum { N = 1001 };
    float out[N];
    tj_rng_normal_f32(seed, offset, N, 0.5f, 3.0f, out);
    for (int j = 0; j < N; j++) {
        uint64_t p = offset + (uint64_t)j, e = p & ~(uint64_t)1;
        double u1 = ((double)word_at(seed, e) + 1.0) * 0x1p-32;
        double u2 = (double)word_at(seed, e + 1) * 0x1p-32;
        double rad = sqrt(-2.0 * log(u1)), theta = 6.283185307179586 * u2;
        double z = (p & 1) ? rad * sin(theta) : rad * cos(theta);
        float r = 0.5f + 3.0f * (float)z;
        ck_assert_msg(memcmp(&r, &out[j], sizeof r) == 0, "value %d: %a, expected %a", j,
                      (double)out[j], (double)r);
    }
}
END_TEST

START_TEST(same_seed_repeats) {
    enum { N = 5000 };
    float *a = malloc(sizeof(float) * 2 * N), *b = malloc(sizeof(float) * 2 * N);
    for (int round = 0; round < 2; round++) {
        float *o = round ? b : a;
        tj_seed(42);
        uint64_t o1 = tj_rng_reserve(N);
        tj_rng_uniform_f32(tj_thread_state()->rng_seed, o1, N, 0, 1, o);
        uint64_t o2 = tj_rng_reserve(N);
        tj_rng_normal_f32(tj_thread_state()->rng_seed, o2, N, 0, 1, o + N);
        ck_assert_uint_eq(o1, 0);
        ck_assert_uint_eq(o2, N);    /* N is a multiple of 4 */
    }
    ck_assert_mem_eq(a, b, sizeof(float) * 2 * N);
    /* another seed gives other values */
    tj_seed(43);
    tj_rng_uniform_f32(43, tj_rng_reserve(N), N, 0, 1, b);
    ck_assert(memcmp(a, b, sizeof(float) * N) != 0);
    free(a);
    free(b);
}
END_TEST

START_TEST(reserve_rounds_up_to_blocks) {
    tj_rng_set_state(7, 0);
    ck_assert_uint_eq(tj_rng_reserve(1), 0);
    ck_assert_uint_eq(tj_rng_offset(), 4);
    ck_assert_uint_eq(tj_rng_reserve(10), 4);
    ck_assert_uint_eq(tj_rng_offset(), 16);
    ck_assert_uint_eq(tj_rng_reserve(0), 16);
    ck_assert_uint_eq(tj_rng_reserve(-5), 16);
    ck_assert_uint_eq(tj_rng_offset(), 16);
    tj_rng_set_state(9, 1001);       /* restoring a checkpoint may leave any offset */
    ck_assert_uint_eq(tj_thread_state()->rng_seed, 9);
    ck_assert_uint_eq(tj_rng_reserve(3), 1001);
    ck_assert_uint_eq(tj_rng_offset(), 1005);
    tj_seed(3);
    ck_assert_uint_eq(tj_thread_state()->rng_seed, 3);
    ck_assert_uint_eq(tj_rng_offset(), 0);
}
END_TEST

static void *fresh_thread_state(void *arg) {
    uint64_t *r = arg;
    r[0] = tj_thread_state()->rng_seed;
    r[1] = tj_rng_offset();
    return NULL;
}

START_TEST(fresh_thread_starts_at_seed_0) {
    tj_seed(1234);
    tj_rng_reserve(100);
    uint64_t r[2] = {1, 1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fresh_thread_state, r), 0);
    pthread_join(t, NULL);
    ck_assert_uint_eq(r[0], 0);
    ck_assert_uint_eq(r[1], 0);
}
END_TEST

/* A draw of n values at offset o is the tail of a draw that starts earlier: across chunk
 * boundaries, unaligned starts and odd (Box-Muller sine) starts. */
START_TEST(draw_is_tail_of_longer_draw) {
    const int64_t n = 3 * TJ_RNG_CHUNK + 777;
    const int64_t shifts[] = {1, 2, 3, 4, 37, TJ_RNG_CHUNK + 5};
    const uint64_t o = 1000003;      /* odd */
    float *a = malloc(sizeof(float) * (size_t)n);
    float *b = malloc(sizeof(float) * (size_t)(n + TJ_RNG_CHUNK + 5));
    for (int dist = 0; dist < 2; dist++) {
        if (dist) tj_rng_normal_f32(77, o, n, -1.0f, 0.5f, a);
        else tj_rng_uniform_f32(77, o, n, -1.0f, 0.5f, a);
        for (size_t s = 0; s < sizeof shifts / sizeof shifts[0]; s++) {
            int64_t d = shifts[s];
            if (dist) tj_rng_normal_f32(77, o - (uint64_t)d, n + d, -1.0f, 0.5f, b);
            else tj_rng_uniform_f32(77, o - (uint64_t)d, n + d, -1.0f, 0.5f, b);
            ck_assert_msg(memcmp(a, b + d, sizeof(float) * (size_t)n) == 0,
                          "%s: draw at %llu differs from the tail of a draw at %llu",
                          dist ? "normal" : "uniform", (unsigned long long)o,
                          (unsigned long long)(o - (uint64_t)d));
        }
        /* and a prefix is a shorter draw */
        if (dist) tj_rng_normal_f32(77, o, 1001, -1.0f, 0.5f, b);
        else tj_rng_uniform_f32(77, o, 1001, -1.0f, 0.5f, b);
        ck_assert_mem_eq(a, b, sizeof(float) * 1001);
    }
    free(a);
    free(b);
}
END_TEST

/* ---- statistics -------------------------------------------------------------------------- */

enum { NSTAT = 1000000 };

START_TEST(uniform_statistics) {
    float *x = malloc(sizeof(float) * NSTAT);
    const double lo = -2.0, hi = 3.0, w = hi - lo;
    tj_rng_uniform_f32(2024, 0, NSTAT, (float)lo, (float)hi, x);
    double s = 0, s2 = 0, below_half = 0;
    for (int i = 0; i < NSTAT; i++) {
        ck_assert_msg(x[i] >= (float)lo && x[i] < (float)hi, "value %d = %g outside [lo, hi)",
                      i, (double)x[i]);
        s += x[i];
        below_half += x[i] < 0.5;
    }
    double mean = s / NSTAT;
    for (int i = 0; i < NSTAT; i++) s2 += (x[i] - mean) * (x[i] - mean);
    double var = s2 / (NSTAT - 1);
    /* U(lo, hi): variance w^2/12, fourth central moment w^4/80 */
    double se_mean = sqrt(w * w / 12 / NSTAT);
    double se_var = sqrt((w * w * w * w / 80 - w * w * w * w / 144) / NSTAT);
    ck_assert_msg(fabs(mean - 0.5) < 5 * se_mean, "mean %g", mean);
    ck_assert_msg(fabs(var - w * w / 12) < 5 * se_var, "variance %g, expected %g", var,
                  w * w / 12);
    ck_assert_msg(fabs(below_half / NSTAT - 0.5) < 5 * sqrt(0.25 / NSTAT), "median off: %g",
                  below_half / NSTAT);
    free(x);
}
END_TEST

START_TEST(uniform_never_reaches_hi) {
    /* one ulp wide: lo + (hi-lo)*u rounds to hi for u > 1/2, and must be clamped */
    float out[4096];
    const float lo = 1.0f, hi = nextafterf(1.0f, 2.0f);
    tj_rng_uniform_f32(5, 0, 4096, lo, hi, out);
    for (int i = 0; i < 4096; i++) ck_assert_msg(out[i] == lo, "value %d = %a", i, (double)out[i]);
    /* a span that is not exact in float */
    float *x = malloc(sizeof(float) * NSTAT);
    tj_rng_uniform_f32(6, 0, NSTAT, 0.1f, 0.7f, x);
    for (int i = 0; i < NSTAT; i++) ck_assert(x[i] >= 0.1f && x[i] < 0.7f);
    free(x);
}
END_TEST

START_TEST(normal_statistics) {
    float *x = malloc(sizeof(float) * NSTAT);
    const double mu = 1.5, sigma = 2.0;
    tj_rng_normal_f32(31337, 3, NSTAT, (float)mu, (float)sigma, x);
    double s = 0, s2 = 0, s4 = 0, within = 0;
    for (int i = 0; i < NSTAT; i++) {
        ck_assert(isfinite(x[i]));
        s += x[i];
    }
    double mean = s / NSTAT;
    for (int i = 0; i < NSTAT; i++) {
        double d = x[i] - mean;
        s2 += d * d;
        s4 += d * d * d * d;
        within += fabs(x[i] - mu) < sigma;
    }
    double sd = sqrt(s2 / (NSTAT - 1));
    double kurt = s4 / NSTAT / ((s2 / NSTAT) * (s2 / NSTAT));
    ck_assert_msg(fabs(mean - mu) < 5 * sigma / sqrt(NSTAT), "mean %g", mean);
    ck_assert_msg(fabs(sd - sigma) < 5 * sigma / sqrt(2.0 * NSTAT), "stddev %g", sd);
    /* kurtosis 3 with standard error sqrt(24/n) */
    ck_assert_msg(fabs(kurt - 3) < 5 * sqrt(24.0 / NSTAT), "kurtosis %g", kurt);
    const double p1 = 0.6826894921370859;   /* P(|z| < 1) */
    ck_assert_msg(fabs(within / NSTAT - p1) < 5 * sqrt(p1 * (1 - p1) / NSTAT),
                  "fraction within one sigma %g", within / NSTAT);
    free(x);
}
END_TEST

START_TEST(same_bits_with_1_and_2_threads) {
    int saved = tj_threads();
    float *a = malloc(sizeof(float) * NSTAT * 2), *b = malloc(sizeof(float) * NSTAT * 2);
    ck_assert_int_eq(tj_set_threads(1), 0);
    tj_rng_uniform_f32(8, 6, NSTAT, -3, 4, a);
    tj_rng_normal_f32(8, 6 + NSTAT, NSTAT, 0, 1, a + NSTAT);
    ck_assert_int_eq(tj_set_threads(2), 0);
    tj_rng_uniform_f32(8, 6, NSTAT, -3, 4, b);
    tj_rng_normal_f32(8, 6 + NSTAT, NSTAT, 0, 1, b + NSTAT);
    ck_assert_mem_eq(a, b, sizeof(float) * NSTAT * 2);
    ck_assert_int_eq(tj_set_threads(saved), 0);
    free(a);
    free(b);
}
END_TEST

Suite *rng_suite(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("philox");
    tcase_add_test(tc, philox_known_answers);
    tcase_add_test(tc, philox_word_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("positions");
    tcase_add_test(tc, uniform_is_the_documented_formula);
    tcase_add_test(tc, normal_is_the_documented_formula);
    tcase_add_test(tc, same_seed_repeats);
    tcase_add_test(tc, reserve_rounds_up_to_blocks);
    tcase_add_test(tc, fresh_thread_starts_at_seed_0);
    tcase_add_test(tc, draw_is_tail_of_longer_draw);
    suite_add_tcase(s, tc);

    tc = tcase_create("statistics");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, uniform_statistics);
    tcase_add_test(tc, uniform_never_reaches_hi);
    tcase_add_test(tc, normal_statistics);
    tcase_add_test(tc, same_bits_with_1_and_2_threads);
    suite_add_tcase(s, tc);
    return s;
}
