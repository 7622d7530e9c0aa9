/* tj_math.h: the one definition of exp, log, tanh and sigmoid (float and double).
 * Eager kernels call these; the LLVM lowering emits the same operations in the same order,
 * so both give the same bits. Only + - * /, compares, selects, integer ops on the bit
 * pattern and float<->int conversions: no FMA, no libm, no tables, no branches (gcc -O3
 * vectorizes loops calling them). Build with -ffp-contract=off, never -ffast-math.
 * Rounding to an integer uses the shifter trick (t + 1.5*2^p) - 1.5*2^p, i.e. round to
 * nearest even in the default rounding mode; no floor, no rint. Errors are measured by
 * tests/check_math.c: float against double libm, double against long double libm. */
#ifndef TJ_MATH_H
#define TJ_MATH_H

#include <math.h>   /* INFINITY, NAN only */
#include <stdint.h>
#include <string.h> /* memcpy: the bit casts (LLVM bitcast) */

static inline uint32_t tj_math_bits_f(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float tj_math_from_bits_f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
static inline uint64_t tj_math_bits_d(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double tj_math_from_bits_d(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

/* c ? a : b, the lowering's `select`. Written with a bit mask because gcc, under its default
 * -ftrapping-math, turns ?: on floats back into branches (it sinks the unselected arm's
 * arithmetic into one) and then will not vectorize the loop. */
static inline float tj_math_select_f(int c, float a, float b)
{
    uint32_t m = -(uint32_t)(c != 0);
    return tj_math_from_bits_f((tj_math_bits_f(a) & m) | (tj_math_bits_f(b) & ~m));
}
static inline double tj_math_select_d(int c, double a, double b)
{
    uint64_t m = -(uint64_t)(c != 0);
    return tj_math_from_bits_d((tj_math_bits_d(a) & m) | (tj_math_bits_d(b) & ~m));
}

/* exp(x) = 2^k * e^r, k = round(x*log2(e)), r = x - k*ln2, |r| <= 0.3466.
 * x is first clamped to [-120, 100] (NaN goes to 100 and is put back at the end); that
 * keeps |k| < 256 and still rounds to 0 and +inf. ln2 = LN2_HI + LN2_LO (Cody-Waite):
 * LN2_HI has 15 significant bits, so k*LN2_HI and x - k*LN2_HI are exact.
 * e^r = 1 + (r + r^2*P(r)), P of degree 4: Chebyshev fit (mpmath chebyfit, 5 terms) of
 * (e^r - 1 - r)/r^2 on [-0.3466, 0.3466], rounded to float; fit error 0.2 ulp.
 * 2^k = 2^k1 * 2^k2 with k1 = k/2 (C division, truncates), k2 = k - k1, both normal
 * powers of two: the first multiply is exact, the second rounds once, so results near
 * overflow and subnormal results are right. Max error: 1.05 ulp over every float. */
/* e^r and k for xc = k ln2 + r: the range reduction and polynomial of tj_m_expf, for an
 * xc already in [-120, 100] (tanh's exponent calls it directly). */
static inline float tj_m_expf_reduced(float xc, int32_t *k)
{
    float kf = (xc * 0x1.715476p+0f + 0x1.8p23f) - 0x1.8p23f;
    *k = (int32_t)kf;
    float r = (xc - kf * 0x1.62e4p-1f) - kf * 0x1.7f7d1cp-20f;
    float p = 0x1.6d1106p-10f;
    p = p * r + 0x1.120b6cp-7f;
    p = p * r + 0x1.55551ap-5f;
    p = p * r + 0x1.5554dcp-3f;
    p = p * r + 0x1.0p-1f;
    return 1.0f + (r + (r * r) * p);
}

static inline float tj_m_expf(float x)
{
    float xc = tj_math_select_f(x < 100.0f, x, 100.0f);
    xc = tj_math_select_f(xc > -120.0f, xc, -120.0f);
    int32_t k;
    float er = tj_m_expf_reduced(xc, &k);
    int32_t k1 = k / 2, k2 = k - k1;
    float s1 = tj_math_from_bits_f((uint32_t)(k1 + 127) << 23);
    float s2 = tj_math_from_bits_f((uint32_t)(k2 + 127) << 23);
    float y = (er * s1) * s2;
    return tj_math_select_f(x != x, x, y);
}

/* The same for double: clamp to [-800, 800] (|k| <= 1155), shifter 0x1.8p52, k1/k2 split,
 * LN2_HI/LN2_LO from fdlibm (LN2_HI has 32 significant bits), P of degree 9 (total
 * degree 11): chebyfit of (e^r - 1 - r)/r^2 on [-0.3466, 0.3466], fit error 0.16 ulp.
 * Max error: 1.03 ulp over 2^24 samples of the whole range. */
/* The same split as tj_m_expf_reduced, for an xc already in [-800, 800]. */
static inline double tj_m_exp_reduced(double xc, int32_t *k)
{
    double kf = (xc * 0x1.71547652b82fep+0 + 0x1.8p52) - 0x1.8p52;
    *k = (int32_t)kf;
    double r = (xc - kf * 0x1.62e42feep-1) - kf * 0x1.a39ef35793c76p-33;
    double p = 0x1.af38a71a18cb9p-26;
    p = p * r + 0x1.2891834686c7ep-22;
    p = p * r + 0x1.71de0daf7a6ccp-19;
    p = p * r + 0x1.a019b90eefe8ep-16;
    p = p * r + 0x1.a01a01a7c3d59p-13;
    p = p * r + 0x1.6c16c1788b646p-10;
    p = p * r + 0x1.11111111109b4p-7;
    p = p * r + 0x1.5555555553d64p-5;
    p = p * r + 0x1.5555555555556p-3;
    p = p * r + 0x1.0000000000001p-1;
    return 1.0 + (r + (r * r) * p);
}

static inline double tj_m_exp(double x)
{
    double xc = tj_math_select_d(x < 800.0, x, 800.0);
    xc = tj_math_select_d(xc > -800.0, xc, -800.0);
    int32_t k;
    double er = tj_m_exp_reduced(xc, &k);
    int32_t k1 = k / 2, k2 = k - k1;
    double s1 = tj_math_from_bits_d((uint64_t)(k1 + 1023) << 52);
    double s2 = tj_math_from_bits_d((uint64_t)(k2 + 1023) << 52);
    double y = (er * s1) * s2;
    return tj_math_select_d(x != x, x, y);
}

/* log(x) = k*ln2 + log(1+f), x = 2^k * (1+f), 1+f in [sqrt(2)/2, sqrt(2)) (fdlibm/musl).
 * Subnormal x is first scaled by 2^25 (k -= 25). Adding 0x3f800000 - 0x3f3504f3 to the
 * bit pattern moves the exponent step to sqrt(2)/2, so k and 1+f come out without branches.
 * With s = f/(2+f): log(1+f) = 2 atanh(s) = 2s + s*R, R = z*(L1 + L2 z + ...) with z = s^2;
 * fdlibm's arrangement f - (hfsq - s*(hfsq + R)), hfsq = f^2/2, avoids the rounding of 2s.
 * L1..L4 are FreeBSD's e_logf.c minimax constants (|R error| < 2^-34 on |s| < 0.1716);
 * LN2_HI/LN2_LO as in tj_m_expf. Specials by selects: log(0) = -inf, log(x<0) = log(NaN)
 * = NaN, log(+inf) = +inf. Max error: 0.84 ulp over every float. */
static inline float tj_m_logf(float x)
{
    int sub = x < 0x1p-126f;
    float xs = x * tj_math_select_f(sub, 0x1p25f, 1.0f);
    uint32_t u = tj_math_bits_f(xs) + (0x3f800000u - 0x3f3504f3u);
    int32_t k = (int32_t)(u >> 23) - 127 - (sub ? 25 : 0);
    float f = tj_math_from_bits_f((u & 0x007fffffu) + 0x3f3504f3u) - 1.0f;
    float dk = (float)k;
    float hfsq = (0.5f * f) * f;
    float s = f / (2.0f + f);
    float z = s * s, w = z * z;
    float R = z * (0x1.555554p-1f + w * 0x1.23d3dcp-2f) + w * (0x1.999c26p-2f + w * 0x1.f13c4cp-3f);
    float y = dk * 0x1.62e4p-1f - ((hfsq - (s * (hfsq + R) + dk * 0x1.7f7d1cp-20f)) - f);
    y = tj_math_select_f(x > 0.0f, y, tj_math_select_f(x == 0.0f, -INFINITY, NAN));
    return tj_math_select_f(x == INFINITY, x, y);
}

/* The same for double: subnormals scaled by 2^54, the offset applied to the high word,
 * L1..L7 from fdlibm e_log.c (|R error| < 2^-58.45), LN2_HI/LN2_LO as in tj_m_exp.
 * Max error: 0.81 ulp over 2^24 samples. */
static inline double tj_m_log(double x)
{
    int sub = x < 0x1p-1022;
    double xs = x * tj_math_select_d(sub, 0x1p54, 1.0);
    uint64_t u = tj_math_bits_d(xs) + ((uint64_t)(0x3ff00000u - 0x3fe6a09eu) << 32);
    int32_t k = (int32_t)(u >> 52) - 1023 - (sub ? 54 : 0);
    double f = tj_math_from_bits_d((u & 0x000fffffffffffffu) + ((uint64_t)0x3fe6a09eu << 32)) - 1.0;
    double dk = (double)k;
    double hfsq = (0.5 * f) * f;
    double s = f / (2.0 + f);
    double z = s * s, w = z * z;
    double t1 = w * (0x1.999999997fa04p-2 + w * (0x1.c71c51d8e78afp-3 + w * 0x1.39a09d078c69fp-3));
    double t2 = z * (0x1.5555555555593p-1 + w * (0x1.2492494229359p-2
                + w * (0x1.7466496cb03dep-3 + w * 0x1.2f112df3e5244p-3)));
    double R = t2 + t1;
    double y = dk * 0x1.62e42feep-1 - ((hfsq - (s * (hfsq + R) + dk * 0x1.a39ef35793c76p-33)) - f);
    y = tj_math_select_d(x > 0.0, y, tj_math_select_d(x == 0.0, -INFINITY, NAN));
    return tj_math_select_d(x == INFINITY, x, y);
}

/* tanh(x) = sign(x) * t(a), a = |x| (sign by bits, so tanh(-0) = -0).
 * a < 0.625: Pade approximant from Lambert's continued fraction, in the form
 *   t = a*N/D = a + (a*z)*((N - D)/z)/D, z = a^2, [5/4]: N = 945 + 105z + z^2,
 *   D = 945 + 420z + 15z^2, (N - D)/z = -315 - 14z (relative error < 7.5e-10 on
 *   [0, 0.625]); the correction is at most 12% of a, so tiny a is exact, no cancellation.
 * a >= 0.625: t = 1 - 2/(e^(2a) + 1); there 2/(e^(2a)+1) < 0.45 < t, so the subtraction
 *   does not magnify its error. e^(2a) = +inf gives 1; NaN stays NaN.
 * Both branches are computed, numerator and denominator are selected first, so there is one
 * division. Threshold 0.625 and the split are Cephes' tanhf. e^(2a) is tj_m_expf's value,
 * but of 2a capped at 20 (tanh(10) is 1 in float, and e^20 still gives 1), so one power of
 * two scales it (k <= 29) and tj_m_expf's clamps and split are not needed; a NaN is put
 * back at the end, quieted as arithmetic would. Max error: 1.33 ulp, every float. */
static inline float tj_m_tanhf(float x)
{
    uint32_t sign = tj_math_bits_f(x) & 0x80000000u;
    float a = tj_math_from_bits_f(tj_math_bits_f(x) & 0x7fffffffu);
    float z = a * a;
    int32_t k;
    float er = tj_m_expf_reduced(tj_math_select_f(a < 10.0f, a + a, 20.0f), &k);
    float e = er * tj_math_from_bits_f((uint32_t)(k + 127) << 23);
    int small = a < 0.625f;
    float num = tj_math_select_f(small, (a * z) * (-315.0f - 14.0f * z), -2.0f);
    float den = tj_math_select_f(small, 945.0f + z * (420.0f + 15.0f * z), e + 1.0f);
    float t = tj_math_select_f(small, a, 1.0f) + num / den;
    t = tj_math_select_f(a != a, a + a, t);
    return tj_math_from_bits_f(tj_math_bits_f(t) | sign);
}

/* The same for double with the [9/8] approximant, relative error < 7.5e-21 on [0, 0.625]:
 *   N = 34459425 + 4729725z + 135135z^2 + 990z^3 + z^4,
 *   D = 34459425 + 16216200z + 945945z^2 + 13860z^3 + 45z^4  (all exact in double),
 *   (N - D)/z = -11486475 - 810810z - 12870z^2 - 44z^3.
 * e^(2a) as in tj_m_tanhf, of 2a capped at 40 (tanh(20) is 1 in double; k <= 58).
 * Max error: 1.31 ulp over 2^24 samples. */
static inline double tj_m_tanh(double x)
{
    uint64_t sign = tj_math_bits_d(x) & 0x8000000000000000u;
    double a = tj_math_from_bits_d(tj_math_bits_d(x) & 0x7fffffffffffffffu);
    double z = a * a;
    int32_t k;
    double er = tj_m_exp_reduced(tj_math_select_d(a < 20.0, a + a, 40.0), &k);
    double e = er * tj_math_from_bits_d((uint64_t)(k + 1023) << 52);
    int small = a < 0.625;
    double nd = -11486475.0 + z * (-810810.0 + z * (-12870.0 + z * -44.0));
    double dd = 34459425.0 + z * (16216200.0 + z * (945945.0 + z * (13860.0 + z * 45.0)));
    double num = tj_math_select_d(small, (a * z) * nd, -2.0);
    double den = tj_math_select_d(small, dd, e + 1.0);
    double t = tj_math_select_d(small, a, 1.0) + num / den;
    t = tj_math_select_d(a != a, a + a, t);
    return tj_math_from_bits_d(tj_math_bits_d(t) | sign);
}

/* sigmoid(x) = 1/(1 + e^-x), computed with e = e^-|x| in (0, 1], which never overflows:
 *   x >= 0: 1/(1 + e);   x < 0: e/(1 + e) (the same value, multiplied by e^x/e^x).
 * For large negative x the result is e/(1+e) ~ e, so it keeps tj_m_expf's relative accuracy
 * down to the subnormals (not just absolute accuracy, as 1/(1 + e^-x) would lose to
 * overflow below x = -88.7). sigmoid(-inf) = 0, sigmoid(+inf) = 1, NaN stays NaN.
 * Max error: 2.40 ulp over every float (e's error of up to 1.05 ulp can count twice
 * in the result's ulps when e and the result sit at opposite ends of their binades). */
static inline float tj_m_sigmoidf(float x)
{
    float e = tj_m_expf(tj_math_select_f(x < 0.0f, x, -x));
    return tj_math_select_f(x < 0.0f, e, 1.0f) / (1.0f + e);
}

/* The same for double. Max error: 2.31 ulp over 2^24 samples. */
static inline double tj_m_sigmoid(double x)
{
    double e = tj_m_exp(tj_math_select_d(x < 0.0, x, -x));
    return tj_math_select_d(x < 0.0, e, 1.0) / (1.0 + e);
}

#endif /* TJ_MATH_H */
