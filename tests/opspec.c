/* opspec.c: the per-op test specs and their naive double-precision references.
 * References are written from the math, index by index, sharing no code with the
 * runtime's kernels (broadcasting included). */
#include "opspec.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S(...) TJ_SHAPE(__VA_ARGS__)

void ref_free(ref_t *r) { free(r->v); r->v = NULL; }

static int64_t numel(const tj_shape *s) {
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->dim[d];
    return n;
}

static void ref_alloc(ref_t *r, tj_shape s) {
    r->s = s;
    r->v = calloc((size_t)(numel(&s) ? numel(&s) : 1), sizeof(double));
}

/* multi-index of flat i in s */
static void unflat(const tj_shape *s, int64_t i, int64_t *idx) {
    for (int d = s->ndim - 1; d >= 0; d--) { idx[d] = i % s->dim[d]; i /= s->dim[d]; }
}

static int64_t flat(const tj_shape *s, const int64_t *idx) {
    int64_t i = 0;
    for (int d = 0; d < s->ndim; d++) i = i * s->dim[d] + idx[d];
    return i;
}

/* value of input r at the out index oi (numpy broadcasting: right-aligned, size-1 dims repeat) */
static double bcast_at(const ref_t *r, const tj_shape *os, const int64_t *oi) {
    int64_t idx[TJ_MAX_DIMS];
    int off = os->ndim - r->s.ndim;
    for (int d = 0; d < r->s.ndim; d++) idx[d] = r->s.dim[d] == 1 ? 0 : oi[d + off];
    return r->v[flat(&r->s, idx)];
}

static tj_shape bshape(int n, const ref_t *in) {
    tj_shape o = {0};
    for (int k = 0; k < n; k++) if (in[k].s.ndim > o.ndim) o.ndim = in[k].s.ndim;
    for (int d = 0; d < o.ndim; d++) {
        o.dim[d] = 1;
        for (int k = 0; k < n; k++) {
            int dk = d - (o.ndim - in[k].s.ndim);
            if (dk >= 0 && in[k].s.dim[dk] != 1) o.dim[d] = in[k].s.dim[dk];
        }
    }
    return o;
}

static void ref_elementwise(const opspec *sp, const ref_t *in, ref_t *out) {
    tj_shape os = bshape(sp->nin, in);
    ref_alloc(out, os);
    int64_t idx[TJ_MAX_DIMS];
    for (int64_t i = 0; i < numel(&os); i++) {
        unflat(&os, i, idx);
        double a = bcast_at(&in[0], &os, idx);
        if (sp->nin == 1) out->v[i] = sp->fn1(a);
        else if (sp->nin == 2) out->v[i] = sp->fn2(a, bcast_at(&in[1], &os, idx));
        else out->v[i] = a != 0 ? bcast_at(&in[1], &os, idx) : bcast_at(&in[2], &os, idx);
    }
}

/* ---- elementwise math --------------------------------------------------------------- */
static double f_add(double a, double b) { return a + b; }
static double f_sub(double a, double b) { return a - b; }
static double f_mul(double a, double b) { return a * b; }
static double f_div(double a, double b) { return a / b; }
static double f_pow(double a, double b) { return pow(a, b); }
static double f_maximum(double a, double b) { return a > b ? a : b; }
static double f_minimum(double a, double b) { return a < b ? a : b; }
static double f_greater(double a, double b) { return a > b; }
static double f_less(double a, double b) { return a < b; }
static double f_equal(double a, double b) { return a == b; }
static double f_neg(double a) { return -a; }
static double f_exp(double a) { return exp(a); }
static double f_log(double a) { return log(a); }
static double f_sqrt(double a) { return sqrt(a); }
static double f_abs(double a) { return fabs(a); }
static double f_tanh(double a) { return tanh(a); }
static double f_sigmoid(double a) { return 1.0 / (1.0 + exp(-a)); }
static double f_relu(double a) { return a > 0 ? a : 0; }

#define EW2(name) static tj_tensor *ap_##name(int c, tj_tensor *const *in) { (void)c; return tj_##name(in[0], in[1]); }
#define EW1(name) static tj_tensor *ap_##name(int c, tj_tensor *const *in) { (void)c; return tj_##name(in[0]); }
EW2(add) EW2(sub) EW2(mul) EW2(div) EW2(pow) EW2(maximum) EW2(minimum) EW2(greater) EW2(less) EW2(equal)
EW1(neg) EW1(exp) EW1(log) EW1(sqrt) EW1(abs) EW1(tanh) EW1(sigmoid) EW1(relu)
static tj_tensor *ap_where(int c, tj_tensor *const *in) { (void)c; return tj_where(in[0], in[1], in[2]); }

#define BIN_CASES 6, {{S(3, 4), S(3, 4)}, {S(2, 3, 4), S(4)}, {S(2, 1, 5), S(3, 1)}, {S(), S(7)}, \
                      {S(17, 1), S(1)}, {S(1037), S(1037)}}
#define UN_CASES 6, {{S()}, {S(1)}, {S(7)}, {S(3, 17)}, {S(2, 3, 4)}, {S(1037)}}

/* ---- cast ---------------------------------------------------------------------------- */
static const tj_dtype cast_to[3] = {TJ_F64, TJ_F32, TJ_I32};
static tj_tensor *ap_cast(int c, tj_tensor *const *in) { return tj_cast(in[0], cast_to[c]); }
static void rf_cast(int c, const ref_t *in, ref_t *out) {
    ref_alloc(out, in[0].s);
    for (int64_t i = 0; i < numel(&in[0].s); i++) out->v[i] = cast_to[c] == TJ_I32 ? trunc(in[0].v[i]) : in[0].v[i];
}

/* ---- matmul ------------------------------------------------------------------------------ */
/* cases 5-8 read a (5, 7), b (6, 7) or both (8) transposed: tj_matmul_t */
static bool mm_ta(int c) { return c == 5 || c == 7 || c == 8; }
static bool mm_tb(int c) { return c == 6 || c == 7 || c == 8; }
static tj_tensor *ap_matmul(int c, tj_tensor *const *in) {
    return c < 5 ? tj_matmul(in[0], in[1]) : tj_matmul_t(in[0], in[1], mm_ta(c), mm_tb(c));
}
static void rf_matmul(int c, const ref_t *in, ref_t *out) {
    const tj_shape *a = &in[0].s, *b = &in[1].s;
    bool ta = mm_ta(c), tb = mm_tb(c);
    int64_t m = a->dim[a->ndim - (ta ? 1 : 2)], k = a->dim[a->ndim - (ta ? 2 : 1)], n = b->dim[b->ndim - (tb ? 2 : 1)];
    ref_t ba = {.s = {.ndim = a->ndim - 2}}, bb = {.s = {.ndim = b->ndim - 2}};
    for (int d = 0; d < a->ndim - 2; d++) ba.s.dim[d] = a->dim[d];
    for (int d = 0; d < b->ndim - 2; d++) bb.s.dim[d] = b->dim[d];
    ref_t pair[2] = {ba, bb};
    tj_shape bs = bshape(2, pair), os = bs;
    os.dim[os.ndim++] = m;
    os.dim[os.ndim++] = n;
    ref_alloc(out, os);
    int64_t bi[TJ_MAX_DIMS], ia[TJ_MAX_DIMS], ib[TJ_MAX_DIMS];
    for (int64_t t = 0; t < numel(&bs); t++) {
        unflat(&bs, t, bi);
        int oa = bs.ndim - ba.s.ndim, ob = bs.ndim - bb.s.ndim;
        for (int d = 0; d < ba.s.ndim; d++) ia[d] = ba.s.dim[d] == 1 ? 0 : bi[d + oa];
        for (int d = 0; d < bb.s.ndim; d++) ib[d] = bb.s.dim[d] == 1 ? 0 : bi[d + ob];
        const double *A = in[0].v + flat(&ba.s, ia) * m * k, *B = in[1].v + flat(&bb.s, ib) * k * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++) s += A[ta ? p * m + i : i * k + p] * B[tb ? j * k + p : p * n + j];
                out->v[(t * m + i) * n + j] = s;
            }
    }
}

/* ---- reductions: case c reduces red_axes[c] -------------------------------------------- */
typedef struct { int n; int axes[3]; bool keep; } red_case;
static const red_case red_cases[6] = {{0, {0}, false}, {1, {1}, true}, {2, {0, 2}, false},
                                      {0, {0}, true}, {0, {0}, false}, {1, {-1}, false}};
#define RED_CASES 6, {{S(3, 4, 5)}, {S(3, 4, 5)}, {S(3, 4, 5)}, {S()}, {S(5000)}, {S(2, 1037)}}
static tj_tensor *ap_sum(int c, tj_tensor *const *in) {
    return tj_sum(in[0], red_cases[c].n, red_cases[c].axes, red_cases[c].keep);
}
static tj_tensor *ap_max(int c, tj_tensor *const *in) {
    return tj_max(in[0], red_cases[c].n, red_cases[c].axes, red_cases[c].keep);
}
static void rf_reduce(int c, const ref_t *in, ref_t *out, bool is_max) {
    const tj_shape *s = &in[0].s;
    bool red[TJ_MAX_DIMS] = {false};
    for (int d = 0; d < s->ndim; d++) red[d] = red_cases[c].n == 0;
    for (int i = 0; i < red_cases[c].n; i++) red[(red_cases[c].axes[i] + s->ndim) % s->ndim] = true;
    tj_shape os = {0};
    for (int d = 0; d < s->ndim; d++)
        if (!red[d]) os.dim[os.ndim++] = s->dim[d];
        else if (red_cases[c].keep) os.dim[os.ndim++] = 1;
    ref_alloc(out, os);
    for (int64_t o = 0; o < numel(&os); o++) out->v[o] = is_max ? -INFINITY : 0;
    int64_t idx[TJ_MAX_DIMS], oi[TJ_MAX_DIMS];
    for (int64_t i = 0; i < numel(s); i++) {
        unflat(s, i, idx);
        int nd = 0;
        for (int d = 0; d < s->ndim; d++)
            if (!red[d]) oi[nd++] = idx[d];
            else if (red_cases[c].keep) oi[nd++] = 0;
        double *o = &out->v[flat(&os, oi)];
        *o = is_max ? (in[0].v[i] > *o ? in[0].v[i] : *o) : *o + in[0].v[i];
    }
}
static void rf_sum(int c, const ref_t *in, ref_t *out) { rf_reduce(c, in, out, false); }
static void rf_max(int c, const ref_t *in, ref_t *out) { rf_reduce(c, in, out, true); }

static const int argmax_axis[3] = {1, 0, -1};
static tj_tensor *ap_argmax(int c, tj_tensor *const *in) { return tj_argmax(in[0], argmax_axis[c]); }
static void rf_argmax(int c, const ref_t *in, ref_t *out) {
    const tj_shape *s = &in[0].s;
    int ax = (argmax_axis[c] + s->ndim) % s->ndim;
    tj_shape os = {0};
    for (int d = 0; d < s->ndim; d++) if (d != ax) os.dim[os.ndim++] = s->dim[d];
    ref_alloc(out, os);
    int64_t idx[TJ_MAX_DIMS], oi[TJ_MAX_DIMS];
    for (int64_t o = 0; o < numel(&os); o++) {
        unflat(&os, o, oi);
        double best = -INFINITY;
        for (int64_t k = 0; k < s->dim[ax]; k++) {
            for (int d = 0, e = 0; d < s->ndim; d++) idx[d] = d == ax ? k : oi[e++];
            double v = in[0].v[flat(s, idx)];
            if (v > best) { best = v; out->v[o] = (double)k; }
        }
    }
}

/* ---- data movement ------------------------------------------------------------------------ */
static const tj_shape reshape_to[3] = {S(2, 6), S(-1, 4), S(1, 1)};
static tj_tensor *ap_reshape(int c, tj_tensor *const *in) { return tj_reshape(in[0], reshape_to[c]); }
static void rf_reshape(int c, const ref_t *in, ref_t *out) {
    tj_shape s = reshape_to[c];
    for (int d = 0; d < s.ndim; d++) if (s.dim[d] == -1) s.dim[d] = numel(&in[0].s) / 4;
    ref_alloc(out, s);
    memcpy(out->v, in[0].v, sizeof(double) * (size_t)numel(&s));
}

static const int perms[3][4] = {{1, 0}, {1, 2, 0}, {3, 1, 0, 2}};
static tj_tensor *ap_transpose(int c, tj_tensor *const *in) { return tj_transpose(in[0], c == 0 ? NULL : perms[c]); }
static void rf_transpose(int c, const ref_t *in, ref_t *out) {
    const tj_shape *s = &in[0].s;
    tj_shape os = {.ndim = s->ndim};
    for (int d = 0; d < s->ndim; d++) os.dim[d] = s->dim[perms[c][d]];
    ref_alloc(out, os);
    int64_t oi[TJ_MAX_DIMS], ii[TJ_MAX_DIMS];
    for (int64_t o = 0; o < numel(&os); o++) {
        unflat(&os, o, oi);
        for (int d = 0; d < s->ndim; d++) ii[perms[c][d]] = oi[d];
        out->v[o] = in[0].v[flat(s, ii)];
    }
}

static const tj_shape bcast_to[3] = {S(2, 3, 4), S(5), S(3, 4)};
static tj_tensor *ap_broadcast(int c, tj_tensor *const *in) { return tj_broadcast_to(in[0], bcast_to[c]); }
static void rf_broadcast(int c, const ref_t *in, ref_t *out) {
    ref_alloc(out, bcast_to[c]);
    int64_t oi[TJ_MAX_DIMS];
    for (int64_t o = 0; o < numel(&bcast_to[c]); o++) {
        unflat(&bcast_to[c], o, oi);
        out->v[o] = bcast_at(&in[0], &bcast_to[c], oi);
    }
}

static const int concat_axis[3] = {0, 1, -2};
static tj_tensor *ap_concat(int c, tj_tensor *const *in) { return tj_concat(2, in, concat_axis[c]); }
static void rf_concat(int c, const ref_t *in, ref_t *out) {
    int nd = in[0].s.ndim, ax = (concat_axis[c] + nd) % nd;
    tj_shape os = in[0].s;
    os.dim[ax] += in[1].s.dim[ax];
    ref_alloc(out, os);
    int64_t oi[TJ_MAX_DIMS];
    for (int64_t o = 0; o < numel(&os); o++) {
        unflat(&os, o, oi);
        int w = oi[ax] >= in[0].s.dim[ax];
        if (w) oi[ax] -= in[0].s.dim[ax];
        out->v[o] = in[w].v[flat(&in[w].s, oi)];
    }
}

static const int64_t sl_begin[3][3] = {{1, 2}, {0}, {1, 0, 1}}, sl_size[3][3] = {{3, -1}, {7}, {1, 3, 2}};
static tj_tensor *ap_slice(int c, tj_tensor *const *in) { return tj_slice(in[0], sl_begin[c], sl_size[c]); }
static void rf_slice(int c, const ref_t *in, ref_t *out) {
    const tj_shape *s = &in[0].s;
    tj_shape os = {.ndim = s->ndim};
    for (int d = 0; d < s->ndim; d++) os.dim[d] = sl_size[c][d] == -1 ? s->dim[d] - sl_begin[c][d] : sl_size[c][d];
    ref_alloc(out, os);
    int64_t oi[TJ_MAX_DIMS];
    for (int64_t o = 0; o < numel(&os); o++) {
        unflat(&os, o, oi);
        for (int d = 0; d < s->ndim; d++) oi[d] += sl_begin[c][d];
        out->v[o] = in[0].v[flat(s, oi)];
    }
}

static const int gather_axis[3] = {0, 1, 0};
static tj_tensor *ap_gather(int c, tj_tensor *const *in) { return tj_gather(in[0], in[1], gather_axis[c]); }
static void rf_gather(int c, const ref_t *in, ref_t *out) {
    const tj_shape *s = &in[0].s, *is = &in[1].s;
    int ax = gather_axis[c];
    tj_shape os = {0};
    for (int d = 0; d < ax; d++) os.dim[os.ndim++] = s->dim[d];
    for (int d = 0; d < is->ndim; d++) os.dim[os.ndim++] = is->dim[d];
    for (int d = ax + 1; d < s->ndim; d++) os.dim[os.ndim++] = s->dim[d];
    ref_alloc(out, os);
    int64_t oi[TJ_MAX_DIMS], ii[TJ_MAX_DIMS], ti[TJ_MAX_DIMS];
    for (int64_t o = 0; o < numel(&os); o++) {
        unflat(&os, o, oi);
        for (int d = 0; d < is->ndim; d++) ii[d] = oi[ax + d];
        for (int d = 0; d < s->ndim; d++)
            ti[d] = d < ax ? oi[d] : d == ax ? (int64_t)in[1].v[flat(is, ii)] : oi[d - 1 + is->ndim];
        out->v[o] = in[0].v[flat(s, ti)];
    }
}

/* scatter_add has no public function (it is gather's gradient): apply it internally */
static const tj_shape scatter_shape[3] = {S(5, 3), S(2, 5, 3), S(4)};
static tj_tensor *ap_scatter_add(int c, tj_tensor *const *in) {
    tensor *u = tj_resolve(in[0], "test", 1), *ix = tj_resolve(in[1], "test", 2);
    return tj_handle(tj_t_scatter_add(u, ix, gather_axis[c], &scatter_shape[c]));
}
static void rf_scatter_add(int c, const ref_t *in, ref_t *out) {
    const tj_shape *s = &scatter_shape[c], *is = &in[1].s, *us = &in[0].s;
    int ax = gather_axis[c];
    ref_alloc(out, *s);
    int64_t ui[TJ_MAX_DIMS], ii[TJ_MAX_DIMS], ti[TJ_MAX_DIMS];
    for (int64_t u = 0; u < numel(us); u++) {
        unflat(us, u, ui);
        for (int d = 0; d < is->ndim; d++) ii[d] = ui[ax + d];
        for (int d = 0; d < s->ndim; d++)
            ti[d] = d < ax ? ui[d] : d == ax ? (int64_t)in[1].v[flat(is, ii)] : ui[d - 1 + is->ndim];
        out->v[flat(s, ti)] += in[0].v[u];
    }
}

/* ---- random draws: reference from the Philox words and the documented formulas --------- */
static const tj_shape rand_shape[2] = {S(1037), S(3, 5)};
static tj_tensor *ap_rand_uniform(int c, tj_tensor *const *in) {
    (void)in;
    return tj_rand_uniform(rand_shape[c], -2.0, 3.0);   /* the caller sets the generator: spec_rng_state */
}
static uint32_t word(uint64_t seed, uint64_t p) {
    uint32_t w[4];
    tj_philox4x32(seed, p / 4, w);
    return w[p % 4];
}
static void rf_rand_uniform(int c, const ref_t *in, ref_t *out) {
    (void)in;
    ref_alloc(out, rand_shape[c]);
    for (int64_t j = 0; j < numel(&rand_shape[c]); j++)
        out->v[j] = -2.0 + 5.0 * ((word(100 + (uint64_t)c, 8 + (uint64_t)j) >> 8) * 0x1p-24);
}
static tj_tensor *ap_rand_normal(int c, tj_tensor *const *in) {
    (void)in;
    return tj_rand_normal(rand_shape[c], 1.0, 2.0);
}
static void rf_rand_normal(int c, const ref_t *in, ref_t *out) {
    (void)in;
    ref_alloc(out, rand_shape[c]);
    for (int64_t j = 0; j < numel(&rand_shape[c]); j++) {
        uint64_t p = 4 + (uint64_t)j, e = p & ~(uint64_t)1, seed = 200 + (uint64_t)c;
        double u1 = ((double)word(seed, e) + 1.0) * 0x1p-32, u2 = (double)word(seed, e + 1) * 0x1p-32;
        double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        out->v[j] = 1.0 + 2.0 * (p % 2 ? r * sin(th) : r * cos(th));
    }
}

static tj_tensor *ap_stop_gradient(int c, tj_tensor *const *in) { (void)c; return tj_stop_gradient(in[0]); }
static void rf_identity(int c, const ref_t *in, ref_t *out) {
    (void)c;
    ref_alloc(out, in[0].s);
    memcpy(out->v, in[0].v, sizeof(double) * (size_t)numel(&in[0].s));
}

/* ---- the table --------------------------------------------------------------------------- */
#define ELT2(E, name, l0, h0, l1, h1, i32, diff) \
    {.op = TJ_OP_##E, .nin = 2, .ncases = BIN_CASES, .lo = {l0, l1}, .hi = {h0, h1}, .int32_ok = i32, \
     .apply = ap_##name, .fn2 = f_##name, .differentiable = diff}
#define ELT1(E, name, l0, h0, i32, diff) \
    {.op = TJ_OP_##E, .nin = 1, .ncases = UN_CASES, .lo = {l0}, .hi = {h0}, .int32_ok = i32, \
     .apply = ap_##name, .fn1 = f_##name, .differentiable = diff}

const opspec tj_specs[] = {
    ELT2(ADD, add, -3, 3, -3, 3, true, true),
    ELT2(SUB, sub, -3, 3, -3, 3, true, true),
    ELT2(MUL, mul, -3, 3, -3, 3, true, true),
    ELT2(DIV, div, -3, 3, 0.5, 3, false, true),
    ELT2(POW, pow, 0.5, 2.5, -2, 2, false, true),
    ELT2(MAXIMUM, maximum, -3, 3, -3, 3, true, true),
    ELT2(MINIMUM, minimum, -3, 3, -3, 3, true, true),
    {.op = TJ_OP_GREATER, .nin = 2, .ncases = BIN_CASES, .lo = {-2, -2}, .hi = {2, 2}, .integer_values = true,
     .int32_ok = true, .apply = ap_greater, .fn2 = f_greater},
    {.op = TJ_OP_LESS, .nin = 2, .ncases = BIN_CASES, .lo = {-2, -2}, .hi = {2, 2}, .integer_values = true,
     .int32_ok = true, .apply = ap_less, .fn2 = f_less},
    {.op = TJ_OP_EQUAL, .nin = 2, .ncases = BIN_CASES, .lo = {-2, -2}, .hi = {2, 2}, .integer_values = true,
     .int32_ok = true, .apply = ap_equal, .fn2 = f_equal},
    {.op = TJ_OP_WHERE, .nin = 3, .ncases = 4,
     .shapes = {{S(3, 4), S(3, 4), S(3, 4)}, {S(4), S(2, 3, 4), S()}, {S(2, 1), S(1, 5), S(2, 5)}, {S(1037), S(1037), S(1)}},
     .lo = {0, -3, -3}, .hi = {1, 3, 3}, .index_input = {true}, .int32_ok = true, .apply = ap_where,
     .differentiable = true},
    ELT1(NEG, neg, -3, 3, true, true),
    ELT1(EXP, exp, -5, 5, false, true),
    ELT1(LOG, log, 0.1, 5, false, true),
    ELT1(SQRT, sqrt, 0.1, 5, false, true),
    ELT1(ABS, abs, -3, 3, true, true),
    ELT1(TANH, tanh, -3, 3, false, true),
    ELT1(SIGMOID, sigmoid, -6, 6, false, true),
    ELT1(RELU, relu, -3, 3, true, true),
    {.op = TJ_OP_CAST, .nin = 1, .ncases = 3, .shapes = {{S(3, 4)}, {S(17)}, {S()}}, .lo = {-3}, .hi = {3},
     .int32_ok = true, .apply = ap_cast, .ref = rf_cast, .differentiable = true},
    {.op = TJ_OP_MATMUL, .nin = 2, .ncases = 9,
     .shapes = {{S(3, 4), S(4, 5)}, {S(1, 1), S(1, 1)}, {S(7, 17), S(17, 3)}, {S(2, 3, 4), S(4, 5)},
                {S(2, 1, 3, 4), S(3, 4, 2)}, {S(2, 4, 3), S(4, 5)}, {S(7, 17), S(3, 17)}, {S(2, 1, 4, 3), S(3, 2, 4)},
                {S(50, 40), S(60, 50)}},
     .lo = {-2, -2}, .hi = {2, 2}, .int32_ok = true, .apply = ap_matmul, .ref = rf_matmul, .differentiable = true},
    {.op = TJ_OP_SUM, .nin = 1, .ncases = RED_CASES, .lo = {-3}, .hi = {3}, .int32_ok = true,
     .apply = ap_sum, .ref = rf_sum, .differentiable = true},
    {.op = TJ_OP_MAX, .nin = 1, .ncases = RED_CASES, .lo = {-3}, .hi = {3}, .int32_ok = true,
     .apply = ap_max, .ref = rf_max, .differentiable = true},
    {.op = TJ_OP_ARGMAX, .nin = 1, .ncases = 3, .shapes = {{S(3, 4, 5)}, {S(7)}, {S(2, 17)}},
     .lo = {-2}, .hi = {2}, .integer_values = true, .int32_ok = true, .apply = ap_argmax, .ref = rf_argmax},
    {.op = TJ_OP_RESHAPE, .nin = 1, .ncases = 3, .shapes = {{S(3, 4)}, {S(2, 3, 4)}, {S()}}, .lo = {-3}, .hi = {3},
     .int32_ok = true, .apply = ap_reshape, .ref = rf_reshape, .differentiable = true},
    {.op = TJ_OP_TRANSPOSE, .nin = 1, .ncases = 3, .shapes = {{S(3, 4)}, {S(2, 3, 4)}, {S(2, 3, 4, 5)}},
     .lo = {-3}, .hi = {3}, .int32_ok = true, .apply = ap_transpose, .ref = rf_transpose, .differentiable = true},
    {.op = TJ_OP_BROADCAST, .nin = 1, .ncases = 3, .shapes = {{S(3, 1)}, {S()}, {S(4)}}, .lo = {-3}, .hi = {3},
     .int32_ok = true, .apply = ap_broadcast, .ref = rf_broadcast, .differentiable = true},
    {.op = TJ_OP_CONCAT, .nin = 2, .ncases = 3, .shapes = {{S(2, 3), S(4, 3)}, {S(2, 3), S(2, 5)}, {S(2, 1, 3), S(2, 2, 3)}},
     .lo = {-3, -3}, .hi = {3, 3}, .int32_ok = true, .apply = ap_concat, .ref = rf_concat, .differentiable = true},
    {.op = TJ_OP_SLICE, .nin = 1, .ncases = 3, .shapes = {{S(5, 6)}, {S(7)}, {S(2, 3, 4)}}, .lo = {-3}, .hi = {3},
     .int32_ok = true, .apply = ap_slice, .ref = rf_slice, .differentiable = true},
    {.op = TJ_OP_GATHER, .nin = 2, .ncases = 3, .shapes = {{S(5, 3), S(4)}, {S(2, 5, 3), S(2, 3)}, {S(4), S()}},
     .lo = {-3, 0}, .hi = {3, 0}, .index_input = {false, true}, .int32_ok = true, .apply = ap_gather,
     .ref = rf_gather, .differentiable = true},
    {.op = TJ_OP_SCATTER_ADD, .nin = 2, .ncases = 3, .shapes = {{S(6, 3), S(6)}, {S(2, 2, 3, 3), S(2, 3)}, {S(), S()}},
     .lo = {-3, 0}, .hi = {3, 0}, .index_input = {false, true}, .apply = ap_scatter_add, .ref = rf_scatter_add,
     .differentiable = true},
    {.op = TJ_OP_RAND_UNIFORM, .nin = 0, .ncases = 2, .apply = ap_rand_uniform, .ref = rf_rand_uniform},
    {.op = TJ_OP_RAND_NORMAL, .nin = 0, .ncases = 2, .apply = ap_rand_normal, .ref = rf_rand_normal},
    {.op = TJ_OP_STOP_GRADIENT, .nin = 1, .ncases = 2, .shapes = {{S(3, 4)}, {S()}}, .lo = {-3}, .hi = {3},
     .int32_ok = true, .apply = ap_stop_gradient, .ref = rf_identity},
};
const int tj_nspecs = (int)(sizeof tj_specs / sizeof tj_specs[0]);

const opspec *spec_for(tj_op op) {
    for (int i = 0; i < tj_nspecs; i++)
        if (tj_specs[i].op == op) return &tj_specs[i];
    return NULL;
}

void spec_rng_state(const opspec *sp, int c) {
    if (sp->op == TJ_OP_RAND_UNIFORM) tj_rng_set_state(100 + (uint64_t)c, 8);
    if (sp->op == TJ_OP_RAND_NORMAL) tj_rng_set_state(200 + (uint64_t)c, 4);
}

void spec_reference(const opspec *sp, int c, const ref_t *in, ref_t *out) {
    if (sp->ref) sp->ref(c, in, out);
    else ref_elementwise(sp, in, out);
}

/* index inputs: gather indexes input 0 along its axis; scatter_add indexes the output */
static int64_t index_bound(const opspec *sp, int c) {
    if (sp->op == TJ_OP_GATHER) return sp->shapes[c][0].dim[gather_axis[c]];
    if (sp->op == TJ_OP_SCATTER_ADD) return scatter_shape[c].dim[gather_axis[c]];
    return 2;   /* where's condition: 0 or 1 */
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void spec_inputs(const opspec *sp, int c, tj_dtype dt, uint64_t seed, tj_tensor **in, ref_t *rin) {
    for (int k = 0; k < sp->nin; k++) {
        tj_shape s = sp->shapes[c][k];
        int64_t n = numel(&s);
        ref_alloc(&rin[k], s);
        bool idx = sp->index_input[k];
        tj_dtype kdt = idx && sp->op != TJ_OP_WHERE ? TJ_I32 : dt;
        void *buf = malloc((size_t)(n ? n : 1) * 8);
        for (int64_t i = 0; i < n; i++) {
            double u = (double)(splitmix(&seed) >> 11) * 0x1p-53, v;
            if (idx) v = floor(u * (double)index_bound(sp, c));
            else if (sp->integer_values || kdt == TJ_I32) v = floor(sp->lo[k] + u * (sp->hi[k] - sp->lo[k] + 1));
            else v = sp->lo[k] + u * (sp->hi[k] - sp->lo[k]);
            if (kdt == TJ_F32) { ((float *)buf)[i] = (float)v; v = (float)v; }
            else if (kdt == TJ_F64) ((double *)buf)[i] = v;
            else ((int32_t *)buf)[i] = (int32_t)v;
            rin[k].v[i] = v;
        }
        in[k] = tj_tensor_from(kdt, s, buf);
        free(buf);
    }
}
