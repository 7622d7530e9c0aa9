/* rng.c: Philox-4x32-10 and the uniform and normal draws built on it (formulas in rng.h),
 * plus the public tj_seed / tj_rng_offset / tj_rng_set_state.
 * Every value is a pure function of (seed, position): the chunks handed to
 * tj_parallel_for are fixed, so the bits never depend on the thread count. Nothing here
 * allocates, reports errors or keeps global state; the position is per thread (core.h). */
#include "rng.h"

#include "core.h"

#include <math.h>
#include <string.h>

#define M0 0xD2511F53u
#define M1 0xCD9E8D57u
#define W0 0x9E3779B9u
#define W1 0xBB67AE85u

void tj_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r) { k0 += W0; k1 += W1; }
        uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void tj_philox4x32(uint64_t key, uint64_t counter, uint32_t out[4]) {
    const uint32_t k[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    const uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    tj_philox4x32_10(c, k, out);
}

/* ---- batched words ------------------------------------------------------------------
 * The same rounds for many blocks at once, one block per loop iteration with the rounds
 * unrolled inside, so that GCC turns the block loop into vector code (pmuludq); this is
 * where the time of a uniform draw goes. */
#define BATCH 256                       /* values per inner step of a chunk */
#define MAX_BLOCKS (BATCH / 4 + 2)      /* an unaligned or pair-widened batch spans more */

/* w[4*i + t] = word t of block b0 + i, for i < nb (nb <= MAX_BLOCKS). */
static inline __attribute__((always_inline)) void blocks_body(uint64_t seed, uint64_t b0,
                                                              int nb, uint32_t *w) {
    uint32_t ks0[10], ks1[10];          /* the key schedule */
    ks0[0] = (uint32_t)seed;
    ks1[0] = (uint32_t)(seed >> 32);
    for (int r = 1; r < 10; r++) {
        ks0[r] = ks0[r - 1] + W0;
        ks1[r] = ks1[r - 1] + W1;
    }
    const uint32_t lo = (uint32_t)b0, hi = (uint32_t)(b0 >> 32);
    for (int i = 0; i < nb; i++) {
        uint32_t c0 = lo + (uint32_t)i, c1 = hi + (c0 < lo), c2 = 0, c3 = 0;   /* b0 + i */
        for (int r = 0; r < 10; r++) {
            uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ ks0[r];
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ ks1[r];
            c1 = (uint32_t)p1;
            c3 = (uint32_t)p0;
            c0 = n0;
            c2 = n2;
        }
        w[4 * i + 0] = c0;
        w[4 * i + 1] = c1;
        w[4 * i + 2] = c2;
        w[4 * i + 3] = c3;
    }
}

/* The same body compiled for wider vectors, picked at run time (no ifunc, which breaks
 * under ThreadSanitizer and musl). Integer-only, so every version gives the same bits;
 * the AVX-512 one is about 3x faster than SSE2. */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static void blocks_avx512(uint64_t seed, uint64_t b0,
                                                             int nb, uint32_t *w) {
    blocks_body(seed, b0, nb, w);
}
__attribute__((target("avx2"))) static void blocks_avx2(uint64_t seed, uint64_t b0, int nb,
                                                        uint32_t *w) {
    blocks_body(seed, b0, nb, w);
}
#endif

static void philox_blocks(uint64_t seed, uint64_t b0, int nb, uint32_t *w) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) { blocks_avx512(seed, b0, nb, w); return; }
    if (__builtin_cpu_supports("avx2")) { blocks_avx2(seed, b0, nb, w); return; }
#endif
    blocks_body(seed, b0, nb, w);
}

/* words[i] = stream word at position pos + i, for i < n (n <= BATCH + 2). */
static void philox_words(uint64_t seed, uint64_t pos, int n, uint32_t *words) {
    uint32_t w[4 * MAX_BLOCKS];
    int skip = (int)(pos & 3);
    philox_blocks(seed, pos >> 2, (skip + n + 3) / 4, w);
    memcpy(words, w + skip, sizeof(uint32_t) * (size_t)n);
}

/* ---- uniform ------------------------------------------------------------------------- */

typedef struct {
    uint64_t seed, offset;
    int64_t  n;
    float    a, b, below_b;   /* lo/mean, hi/stddev, the float below hi */
    int      clamp;
    float   *out;             /* (n) */
} draw_ctx;

static void uniform_chunk(void *vctx, int64_t ci) {
    const draw_ctx *c = vctx;
    int64_t j0 = ci * TJ_RNG_CHUNK;
    int64_t j1 = j0 + TJ_RNG_CHUNK < c->n ? j0 + TJ_RNG_CHUNK : c->n;
    const float lo = c->a, hi = c->b, span = hi - lo, below = c->below_b;
    const int clamp = c->clamp;
    uint32_t w[BATCH];
    for (int64_t j = j0; j < j1; j += BATCH) {
        int m = j1 - j < BATCH ? (int)(j1 - j) : BATCH;
        philox_words(c->seed, c->offset + (uint64_t)j, m, w);
        float *o = c->out + j;
        for (int i = 0; i < m; i++) {
            float u = (float)(w[i] >> 8) * 0x1p-24f;
            float r = lo + span * u;
            o[i] = (clamp && !(r < hi)) ? below : r;
        }
    }
}

void tj_rng_uniform_f32(uint64_t seed, uint64_t offset, int64_t n, float lo, float hi,
                        float *out) {
    if (n <= 0) return;
    draw_ctx c = {seed, offset, n, lo, hi, nextafterf(hi, -INFINITY), lo < hi, out};
    tj_parallel_for((n + TJ_RNG_CHUNK - 1) / TJ_RNG_CHUNK, uniform_chunk, &c);
}

/* ---- normal -------------------------------------------------------------------------- */

static void normal_chunk(void *vctx, int64_t ci) {
    const draw_ctx *c = vctx;
    int64_t j0 = ci * TJ_RNG_CHUNK;
    int64_t j1 = j0 + TJ_RNG_CHUNK < c->n ? j0 + TJ_RNG_CHUNK : c->n;
    const float mean = c->a, stddev = c->b;
    uint32_t w[BATCH + 2];
    for (int64_t j = j0; j < j1; j += BATCH) {
        int m = j1 - j < BATCH ? (int)(j1 - j) : BATCH;
        uint64_t p0 = c->offset + (uint64_t)j;          /* position of out[j] */
        uint64_t e0 = p0 & ~(uint64_t)1;                 /* first pair's even position */
        int nw = (int)(((p0 + (uint64_t)m + 1) & ~(uint64_t)1) - e0);   /* whole pairs */
        philox_words(c->seed, e0, nw, w);
        float *o = c->out + j;
        for (int q = 0; q < nw; q += 2) {
            double u1 = ((double)w[q] + 1.0) * 0x1p-32;
            double u2 = (double)w[q + 1] * 0x1p-32;
            double rad = sqrt(-2.0 * log(u1));
            double theta = 6.283185307179586 * u2;
            /* the pair's even position e0 + q is o[ie]; ie is -1 for the first pair of a
             * batch that starts on an odd position, whose cosine is not ours */
            int64_t ie = (int64_t)(e0 + (uint64_t)q - p0);
            if (ie >= 0) o[ie] = mean + stddev * (float)(rad * cos(theta));
            if (ie + 1 < m) o[ie + 1] = mean + stddev * (float)(rad * sin(theta));
        }
    }
}

void tj_rng_normal_f32(uint64_t seed, uint64_t offset, int64_t n, float mean, float stddev,
                       float *out) {
    if (n <= 0) return;
    draw_ctx c = {seed, offset, n, mean, stddev, 0.0f, 0, out};
    tj_parallel_for((n + TJ_RNG_CHUNK - 1) / TJ_RNG_CHUNK, normal_chunk, &c);
}

/* ---- the per-thread position ------------------------------------------------------------ */

uint64_t tj_rng_reserve(int64_t n) {
    tj_thread *th = tj_thread_state();
    uint64_t o = th->rng_offset;
    if (n > 0) th->rng_offset = o + (((uint64_t)n + 3) & ~(uint64_t)3);
    return o;
}

void tj_seed(uint64_t seed) {
    tj_thread *th = tj_thread_state();
    th->rng_seed = seed;
    th->rng_offset = 0;
}

uint64_t tj_rng_offset(void) { return tj_thread_state()->rng_offset; }

void tj_rng_set_state(uint64_t seed, uint64_t offset) {
    tj_thread *th = tj_thread_state();
    th->rng_seed = seed;
    th->rng_offset = offset;
}
