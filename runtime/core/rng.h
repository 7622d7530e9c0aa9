/* rng.h: the counter-based generator (Philox-4x32-10, Salmon et al. 2011, Random123).
 * A draw is a pure function of (seed, position): nothing here reads the time, the thread
 * count or a hidden state, so eager, compiled and any thread count give the same bits.
 * The per-thread position lives in tj_thread_state()->rng_seed / rng_offset; a thread that
 * never called tj_seed starts at seed 0, offset 0. The formulas below are the definition
 * the JIT lowering mirrors operation by operation. */
#ifndef TJ_RNG_H
#define TJ_RNG_H

#include <stdint.h>

/* ---- the bit generator ----------------------------------------------------------------
 * Philox-4x32-10 exactly as Random123's philox4x32_R(10, ctr, key):
 *   round:  (hi0,lo0) = 0xD2511F53 * c0, (hi1,lo1) = 0xCD9E8D57 * c2   (32x32 -> 64 bits)
 *           c = { hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0 }
 *   between rounds: k0 += 0x9E3779B9, k1 += 0xBB67AE85 (9 bumps for 10 rounds). */
void tj_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The generator as tapejit uses it: key = {(uint32)seed, seed >> 32},
 * ctr = {(uint32)counter, counter >> 32, 0, 0}. */
void tj_philox4x32(uint64_t key, uint64_t counter, uint32_t out[4]);

/* ---- positions -------------------------------------------------------------------------
 * Word p of the stream of a seed is word p % 4 of block p / 4, i.e. of
 * tj_philox4x32(seed, p / 4). Value j of a draw that starts at offset o uses position
 * o + j (normal: see below), so a draw depends only on (seed, o, j). */

/* Returns this thread's offset and advances it by n rounded up to a multiple of 4, so
 * every draw starts on a fresh block. n <= 0 reserves nothing. */
uint64_t tj_rng_reserve(int64_t n);

/* ---- distributions (both split the work into fixed chunks of TJ_RNG_CHUNK values run
 * with tj_parallel_for; the result does not depend on the thread count) ---------------- */
#define TJ_RNG_CHUNK 16384

/* out[j] for j < n, w = word (offset + j) of the stream, all arithmetic in float:
 *   u = (float)(w >> 8) * 0x1p-24f              exact, in [0, 1)
 *   r = lo + (hi - lo) * u                       this order, no FMA
 *   out[j] = (lo < hi && !(r < hi)) ? nextafterf(hi, -inf) : r
 * The last line only matters when hi - lo or the sum rounds up to hi (e.g. lo 0.1,
 * hi 0.7); it keeps every value in [lo, hi). Callers pass finite lo <= hi with hi - lo
 * finite in float. */
void tj_rng_uniform_f32(uint64_t seed, uint64_t offset, int64_t n, float lo, float hi,
                        float *out);

/* Box-Muller on word pairs. Value j sits at position p = offset + j; its pair is the words
 * at positions e = p & ~1 and e + 1 (words 0,1 or words 2,3 of one block), so an even p
 * and the odd p + 1 share a pair. In double, with glibc's log/sqrt/cos/sin:
 *   u1 = ((double)w[e] + 1.0) * 0x1p-32          in (0, 1], so log(u1) is finite
 *   u2 =  (double)w[e+1]      * 0x1p-32          in [0, 1)
 *   rad = sqrt(-2.0 * log(u1)),  theta = 6.283185307179586 * u2
 *   z = (p even) ? rad * cos(theta) : rad * sin(theta)
 * then in float: out[j] = mean + stddev * (float)z   (this order, no FMA). */
void tj_rng_normal_f32(uint64_t seed, uint64_t offset, int64_t n, float mean, float stddev,
                       float *out);

#endif
