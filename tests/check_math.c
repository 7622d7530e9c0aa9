/* check_math.c: the Check suite for runtime/math/tj_math.h.
 * Accuracy in ulps over sweeps of bit patterns (the float versions against double libm,
 * the double versions against long double libm), IEEE special cases exactly, and that a
 * loop the compiler may vectorize gives the same bits as a scalar call. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../runtime/math/tj_math.h"

Suite *math_suite(void);

/* The bounds asserted; tj_math.h states the measured maxima under them. */
#define BOUND_EXPF 1.5
#define BOUND_LOGF 1.0
#define BOUND_TANHF 2.0
#define BOUND_SIGMOIDF 3.0
#define BOUND_EXP 1.5
#define BOUND_LOG 1.0
#define BOUND_TANH 2.0
#define BOUND_SIGMOID 3.0

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static long double ref_sigmoidl(long double x) { return 1.0L / (1.0L + expl(-x)); }

/* |y - ref| in ulps of the float format at ref (subnormal ulp 2^-149 below FLT_MIN).
 * inf and any |ref| >= 2^128 count as 2^128: inf for FLT_MAX is 1 ulp, a wrong inf huge. */
static double ulps_f(float y, double ref)
{
    if (isnan(y) || isnan(ref))
        return isnan(y) && isnan(ref) ? 0.0 : INFINITY;
    if (isinf(ref))
        return y == ref ? 0.0 : INFINITY;
    double yd = isinf(y) ? copysign(0x1p128, y) : (double)y;
    ref = fabs(ref) < 0x1p128 ? ref : copysign(0x1p128, ref);
    int e = ref == 0.0 ? -126 : ilogb(ref);
    return fabs(yd - ref) / ldexp(1.0, (e < -126 ? -126 : e) - 23);
}

/* the same for double results against a long double reference (2^-1074, 2^1024) */
static double ulps_d(double y, long double ref)
{
    if (isnan(y) || isnan(ref))
        return isnan(y) && isnan(ref) ? 0.0 : INFINITY;
    if (isinf(ref))
        return y == ref ? 0.0 : INFINITY;
    long double yd = isinf(y) ? copysignl(0x1p1024L, y) : (long double)y;
    ref = fabsl(ref) < 0x1p1024L ? ref : copysignl(0x1p1024L, ref);
    int e = ref == 0.0L ? -1022 : ilogbl(ref);
    return (double)(fabsl(yd - ref) / ldexpl(1.0L, (e < -1022 ? -1022 : e) - 52));
}

typedef struct { double ulps; double at; } worst;

/* max error of f over float bit patterns lo, lo+step, ..., <= hi; NaN inputs skipped */
static void sweep_f(worst *w, float (*f)(float), double (*ref)(double),
                    uint32_t lo, uint32_t hi, uint32_t step)
{
    for (uint64_t u = lo; u <= hi; u += step) {
        float x = tj_math_from_bits_f((uint32_t)u);
        if (isnan(x))
            continue;
        double err = ulps_f(f(x), ref((double)x));
        if (err > w->ulps) {
            w->ulps = err;
            w->at = x;
        }
    }
}

/* max error of f over n double bit patterns evenly spaced from bits(a) to bits(b);
 * a and b have the same sign and |a| <= |b|, so the spacing is logarithmic in value */
static void sweep_d(worst *w, double (*f)(double), long double (*ref)(long double),
                    double a, double b, uint64_t n)
{
    uint64_t lo = tj_math_bits_d(a), hi = tj_math_bits_d(b);
    uint64_t step = (hi - lo) / n | 1;
    for (uint64_t u = lo; u <= hi && u >= lo; u += step) {
        double x = tj_math_from_bits_d(u);
        double err = ulps_d(f(x), ref((long double)x));
        if (err > w->ulps) {
            w->ulps = err;
            w->at = x;
        }
    }
}

static uint32_t bf(float x) { return tj_math_bits_f(x); }

/* ---- float accuracy: every 997th bit pattern, then every float (or nearly) where
 * it matters: overflow and underflow edges, subnormals, around 0, 1 and thresholds ---- */

static float fexpf(float x) { return tj_m_expf(x); }
static float flogf(float x) { return tj_m_logf(x); }
static float ftanhf(float x) { return tj_m_tanhf(x); }
static float fsigmoidf(float x) { return tj_m_sigmoidf(x); }

#define CHECK_WORST_F(w, bound, name) \
    ck_assert_msg((w).ulps <= (bound), "%s: %.3f ulp at %a (bound %.1f)", \
                  name, (w).ulps, (w).at, (double)(bound))

START_TEST(test_expf_accuracy)
{
    worst w = {0, 0};
    sweep_f(&w, fexpf, exp, 0, 0xffffffffu, 997);
    sweep_f(&w, fexpf, exp, bf(80.0f), bf(89.0f), 1);     /* near overflow */
    sweep_f(&w, fexpf, exp, bf(-87.0f), bf(-105.0f), 1);  /* subnormal results, then 0 */
    sweep_f(&w, fexpf, exp, 0, bf(1.0f), 97);            /* near 0 */
    sweep_f(&w, fexpf, exp, bf(-0.0f), bf(-1.0f), 97);
    CHECK_WORST_F(w, BOUND_EXPF, "tj_m_expf");
}
END_TEST

START_TEST(test_logf_accuracy)
{
    worst w = {0, 0};
    sweep_f(&w, flogf, log, 0, 0xffffffffu, 997);
    sweep_f(&w, flogf, log, 1, bf(FLT_MIN), 3);            /* subnormals */
    sweep_f(&w, flogf, log, bf(0.5f), bf(2.0f), 3);        /* around 1 */
    sweep_f(&w, flogf, log, bf(0x1p127f), 0x7f7fffffu, 7); /* up to FLT_MAX */
    CHECK_WORST_F(w, BOUND_LOGF, "tj_m_logf");
}
END_TEST

START_TEST(test_tanhf_accuracy)
{
    worst w = {0, 0};
    sweep_f(&w, ftanhf, tanh, 0, 0xffffffffu, 997);
    sweep_f(&w, ftanhf, tanh, 0, bf(0.5f), 101);           /* polynomial branch */
    sweep_f(&w, ftanhf, tanh, bf(0.5f), bf(1.0f), 1);      /* across the 0.625 switch */
    sweep_f(&w, ftanhf, tanh, bf(1.0f), bf(10.0f), 7);     /* toward 1 */
    sweep_f(&w, ftanhf, tanh, bf(-0.5f), bf(-1.0f), 3);
    CHECK_WORST_F(w, BOUND_TANHF, "tj_m_tanhf");
}
END_TEST

START_TEST(test_sigmoidf_accuracy)
{
    worst w = {0, 0};
    sweep_f(&w, fsigmoidf, ref_sigmoid, 0, 0xffffffffu, 997);
    sweep_f(&w, fsigmoidf, ref_sigmoid, bf(-80.0f), bf(-105.0f), 1); /* tiny, subnormal */
    sweep_f(&w, fsigmoidf, ref_sigmoid, 0, bf(20.0f), 101);
    sweep_f(&w, fsigmoidf, ref_sigmoid, bf(-0.0f), bf(-20.0f), 101);
    CHECK_WORST_F(w, BOUND_SIGMOIDF, "tj_m_sigmoidf");
}
END_TEST

/* ---- double accuracy against long double, logarithmically spaced points ---- */

#define N_D 400000

static double dexp(double x) { return tj_m_exp(x); }
static double dlog(double x) { return tj_m_log(x); }
static double dtanh(double x) { return tj_m_tanh(x); }
static double dsigmoid(double x) { return tj_m_sigmoid(x); }

START_TEST(test_exp_accuracy)
{
    worst w = {0, 0};
    sweep_d(&w, dexp, expl, 0x1p-1074, 1000.0, N_D);
    sweep_d(&w, dexp, expl, -0x1p-1074, -1000.0, N_D);
    sweep_d(&w, dexp, expl, 700.0, 710.0, N_D);      /* near overflow */
    sweep_d(&w, dexp, expl, -700.0, -746.0, N_D);    /* subnormal results, then 0 */
    sweep_d(&w, dexp, expl, 0x1p-30, 1.0, N_D);
    sweep_d(&w, dexp, expl, -0x1p-30, -1.0, N_D);
    CHECK_WORST_F(w, BOUND_EXP, "tj_m_exp");
}
END_TEST

START_TEST(test_log_accuracy)
{
    worst w = {0, 0};
    sweep_d(&w, dlog, logl, 0x1p-1074, DBL_MAX, N_D);  /* subnormals to DBL_MAX */
    sweep_d(&w, dlog, logl, 0x1p-1074, DBL_MIN, N_D);
    sweep_d(&w, dlog, logl, 0.5, 2.0, N_D);            /* around 1 */
    CHECK_WORST_F(w, BOUND_LOG, "tj_m_log");
}
END_TEST

START_TEST(test_tanh_accuracy)
{
    worst w = {0, 0};
    sweep_d(&w, dtanh, tanhl, 0x1p-1074, 30.0, N_D);
    sweep_d(&w, dtanh, tanhl, -0x1p-1074, -30.0, N_D);
    sweep_d(&w, dtanh, tanhl, 0x1p-10, 0.625, N_D);    /* polynomial branch */
    sweep_d(&w, dtanh, tanhl, 0.5, 1.0, N_D);          /* across the switch */
    CHECK_WORST_F(w, BOUND_TANH, "tj_m_tanh");
}
END_TEST

START_TEST(test_sigmoid_accuracy)
{
    worst w = {0, 0};
    sweep_d(&w, dsigmoid, ref_sigmoidl, 0x1p-1074, 800.0, N_D);
    sweep_d(&w, dsigmoid, ref_sigmoidl, -0x1p-1074, -800.0, N_D);
    sweep_d(&w, dsigmoid, ref_sigmoidl, -700.0, -746.0, N_D); /* tiny, subnormal */
    sweep_d(&w, dsigmoid, ref_sigmoidl, -0.5, -40.0, N_D);
    CHECK_WORST_F(w, BOUND_SIGMOID, "tj_m_sigmoid");
}
END_TEST

/* ---- special cases, exact ---- */

#define SAME_F(got, want) ck_assert_msg(memcmp(&(float){got}, &(float){want}, 4) == 0, \
    "%s = %a, want %a", #got, (double)(got), (double)(want))
#define SAME_D(got, want) ck_assert_msg(memcmp(&(double){got}, &(double){want}, 8) == 0, \
    "%s = %a, want %a", #got, (double)(got), (double)(want))

START_TEST(test_exp_special)
{
    ck_assert(isnan(tj_m_expf(NAN)));
    ck_assert(isnan(tj_m_expf(-NAN)));
    SAME_F(tj_m_expf(INFINITY), INFINITY);
    SAME_F(tj_m_expf(-INFINITY), 0.0f);
    SAME_F(tj_m_expf(0.0f), 1.0f);
    SAME_F(tj_m_expf(-0.0f), 1.0f);
    SAME_F(tj_m_expf(0x1p-149f), 1.0f);
    SAME_F(tj_m_expf(FLT_MAX), INFINITY);
    SAME_F(tj_m_expf(-FLT_MAX), 0.0f);
    SAME_F(tj_m_expf(88.8f), INFINITY);                /* e^88.8 > FLT_MAX */
    ck_assert(isfinite(tj_m_expf(88.72f)));
    SAME_F(tj_m_expf(-104.0f), 0.0f);                  /* e^-104 < 2^-150 */
    ck_assert(tj_m_expf(-103.0f) > 0.0f && tj_m_expf(-103.0f) < FLT_MIN);
    ck_assert(isnan(tj_m_exp(NAN)));
    SAME_D(tj_m_exp(INFINITY), INFINITY);
    SAME_D(tj_m_exp(-INFINITY), 0.0);
    SAME_D(tj_m_exp(0.0), 1.0);
    SAME_D(tj_m_exp(-0.0), 1.0);
    SAME_D(tj_m_exp(DBL_MAX), INFINITY);
    SAME_D(tj_m_exp(-DBL_MAX), 0.0);
    SAME_D(tj_m_exp(709.8), INFINITY);
    ck_assert(isfinite(tj_m_exp(709.78)));
    SAME_D(tj_m_exp(-745.2), 0.0);
    ck_assert(tj_m_exp(-745.0) > 0.0 && tj_m_exp(-740.0) < DBL_MIN);
}
END_TEST

START_TEST(test_log_special)
{
    SAME_F(tj_m_logf(0.0f), -INFINITY);
    SAME_F(tj_m_logf(-0.0f), -INFINITY);
    ck_assert(isnan(tj_m_logf(-1.0f)));
    ck_assert(isnan(tj_m_logf(-0x1p-149f)));
    ck_assert(isnan(tj_m_logf(-INFINITY)));
    ck_assert(isnan(tj_m_logf(NAN)));
    SAME_F(tj_m_logf(INFINITY), INFINITY);
    SAME_F(tj_m_logf(1.0f), 0.0f);
    ck_assert(ulps_f(tj_m_logf(0x1p-149f), log(0x1p-149)) <= BOUND_LOGF);
    ck_assert(ulps_f(tj_m_logf(FLT_MAX), log(FLT_MAX)) <= BOUND_LOGF);
    SAME_D(tj_m_log(0.0), -INFINITY);
    SAME_D(tj_m_log(-0.0), -INFINITY);
    ck_assert(isnan(tj_m_log(-1.0)));
    ck_assert(isnan(tj_m_log(-0x1p-1074)));
    ck_assert(isnan(tj_m_log(-INFINITY)));
    ck_assert(isnan(tj_m_log(NAN)));
    SAME_D(tj_m_log(INFINITY), INFINITY);
    SAME_D(tj_m_log(1.0), 0.0);
    ck_assert(ulps_d(tj_m_log(0x1p-1074), logl(0x1p-1074L)) <= BOUND_LOG);
    ck_assert(ulps_d(tj_m_log(DBL_MAX), logl(DBL_MAX)) <= BOUND_LOG);
}
END_TEST

START_TEST(test_tanh_special)
{
    SAME_F(tj_m_tanhf(INFINITY), 1.0f);
    SAME_F(tj_m_tanhf(-INFINITY), -1.0f);
    ck_assert(isnan(tj_m_tanhf(NAN)));
    SAME_F(tj_m_tanhf(0.0f), 0.0f);
    SAME_F(tj_m_tanhf(-0.0f), -0.0f);
    SAME_F(tj_m_tanhf(0x1p-149f), 0x1p-149f);
    SAME_F(tj_m_tanhf(-0x1p-130f), -0x1p-130f);
    SAME_F(tj_m_tanhf(1e-20f), 1e-20f);
    SAME_F(tj_m_tanhf(20.0f), 1.0f);
    SAME_F(tj_m_tanhf(-FLT_MAX), -1.0f);
    SAME_D(tj_m_tanh(INFINITY), 1.0);
    SAME_D(tj_m_tanh(-INFINITY), -1.0);
    ck_assert(isnan(tj_m_tanh(NAN)));
    SAME_D(tj_m_tanh(0.0), 0.0);
    SAME_D(tj_m_tanh(-0.0), -0.0);
    SAME_D(tj_m_tanh(0x1p-1074), 0x1p-1074);
    SAME_D(tj_m_tanh(-1e-200), -1e-200);
    SAME_D(tj_m_tanh(40.0), 1.0);
    SAME_D(tj_m_tanh(-DBL_MAX), -1.0);
}
END_TEST

START_TEST(test_sigmoid_special)
{
    SAME_F(tj_m_sigmoidf(-INFINITY), 0.0f);
    SAME_F(tj_m_sigmoidf(INFINITY), 1.0f);
    ck_assert(isnan(tj_m_sigmoidf(NAN)));
    SAME_F(tj_m_sigmoidf(0.0f), 0.5f);
    SAME_F(tj_m_sigmoidf(-0.0f), 0.5f);
    SAME_F(tj_m_sigmoidf(100.0f), 1.0f);
    SAME_F(tj_m_sigmoidf(-200.0f), 0.0f);
    ck_assert(tj_m_sigmoidf(-100.0f) > 0.0f);          /* e^-100, subnormal, not 0 */
    ck_assert(ulps_f(tj_m_sigmoidf(-60.0f), ref_sigmoid(-60.0)) <= BOUND_SIGMOIDF);
    SAME_D(tj_m_sigmoid(-INFINITY), 0.0);
    SAME_D(tj_m_sigmoid(INFINITY), 1.0);
    ck_assert(isnan(tj_m_sigmoid(NAN)));
    SAME_D(tj_m_sigmoid(0.0), 0.5);
    SAME_D(tj_m_sigmoid(800.0), 1.0);
    SAME_D(tj_m_sigmoid(-800.0), 0.0);
    ck_assert(tj_m_sigmoid(-740.0) > 0.0);
    ck_assert(ulps_d(tj_m_sigmoid(-700.0), ref_sigmoidl(-700.0L)) <= BOUND_SIGMOID);
}
END_TEST

/* ---- a loop the compiler may vectorize gives the bits of a call it cannot inline ---- */

#define N_LOOP 4099 /* odd, so a vector loop also runs its scalar tail */

START_TEST(test_loop_equals_scalar)
{
    static float xf[N_LOOP], yf[4][N_LOOP];
    static double xd[N_LOOP], yd[4][N_LOOP];
    float (*volatile ff[4])(float) = {tj_m_expf, tj_m_logf, tj_m_tanhf, tj_m_sigmoidf};
    double (*volatile fd[4])(double) = {tj_m_exp, tj_m_log, tj_m_tanh, tj_m_sigmoid};
    uint32_t s = 12345;
    for (int i = 0; i < N_LOOP; i++) {
        s = s * 1664525u + 1013904223u;  /* every exponent and sign, inf and NaN too */
        xf[i] = tj_math_from_bits_f(s);
        xd[i] = (double)xf[i] * 8.0;
    }
    for (int i = 0; i < N_LOOP; i++) yf[0][i] = tj_m_expf(xf[i]);
    for (int i = 0; i < N_LOOP; i++) yf[1][i] = tj_m_logf(xf[i]);
    for (int i = 0; i < N_LOOP; i++) yf[2][i] = tj_m_tanhf(xf[i]);
    for (int i = 0; i < N_LOOP; i++) yf[3][i] = tj_m_sigmoidf(xf[i]);
    for (int i = 0; i < N_LOOP; i++) yd[0][i] = tj_m_exp(xd[i]);
    for (int i = 0; i < N_LOOP; i++) yd[1][i] = tj_m_log(xd[i]);
    for (int i = 0; i < N_LOOP; i++) yd[2][i] = tj_m_tanh(xd[i]);
    for (int i = 0; i < N_LOOP; i++) yd[3][i] = tj_m_sigmoid(xd[i]);
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < N_LOOP; i++) {
            float a = ff[j](xf[i]);
            double b = fd[j](xd[i]);
            ck_assert_msg(memcmp(&a, &yf[j][i], 4) == 0 || (isnan(a) && isnan(yf[j][i])),
                          "float function %d at %a: call %a, loop %a", j, (double)xf[i],
                          (double)a, (double)yf[j][i]);
            ck_assert_msg(memcmp(&b, &yd[j][i], 8) == 0 || (isnan(b) && isnan(yd[j][i])),
                          "double function %d at %a: call %a, loop %a", j, xd[i], b, yd[j][i]);
        }
}
END_TEST

Suite *math_suite(void)
{
    Suite *s = suite_create("math");
    TCase *acc_f = tcase_create("accuracy_float");
    TCase *acc_d = tcase_create("accuracy_double");
    TCase *special = tcase_create("special");
    TCase *loop = tcase_create("loop");
    tcase_set_timeout(acc_f, 120);
    tcase_set_timeout(acc_d, 120);
    tcase_add_test(acc_f, test_expf_accuracy);
    tcase_add_test(acc_f, test_logf_accuracy);
    tcase_add_test(acc_f, test_tanhf_accuracy);
    tcase_add_test(acc_f, test_sigmoidf_accuracy);
    tcase_add_test(acc_d, test_exp_accuracy);
    tcase_add_test(acc_d, test_log_accuracy);
    tcase_add_test(acc_d, test_tanh_accuracy);
    tcase_add_test(acc_d, test_sigmoid_accuracy);
    tcase_add_test(special, test_exp_special);
    tcase_add_test(special, test_log_special);
    tcase_add_test(special, test_tanh_special);
    tcase_add_test(special, test_sigmoid_special);
    tcase_add_test(loop, test_loop_equals_scalar);
    suite_add_tcase(s, acc_f);
    suite_add_tcase(s, acc_d);
    suite_add_tcase(s, special);
    suite_add_tcase(s, loop);
    return s;
}
