/* print.c: tj_print and tj_snprint, TensorFlow's eager str with numpy's array str inside:
 * `tj.Tensor([[1.  2.5] [3.  4. ]], shape=(2, 2), dtype=float64)`.
 * Values follow np.array2string defaults (precision 8, floatmode 'maxprec', threshold 1000,
 * edgeitems 3; numpy 1.24) with rows joined by one space instead of newlines; rank 0
 * prints as numpy's scalar str. Allocates nothing: text streams into a bounded buffer or
 * stdout. Decimal digits come from the C library's exactly rounded printf and strtod/strtof,
 * which give numpy's Dragon4 choices without a bignum (see choose). */
#include "core.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output: a snprintf-like buffer or a stream ----------------------------------------- */

typedef struct out {
    char  *buf;     /* may be NULL when size is 0 */
    size_t size;
    size_t len;     /* full length so far, written or not */
    FILE  *fp;      /* if set, text goes here instead */
} out;

static void put(out *o, const char *s, size_t n) {
    if (o->fp) {
        fwrite(s, 1, n, o->fp);
    } else if (o->len + 1 < o->size) {
        size_t room = o->size - 1 - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }

static void spaces(out *o, int n) {
    static const char sp[] = "                                ";
    for (; n > 0; n -= 32) put(o, sp, n < 32 ? (size_t)n : 32);
}

/* ---- decimal digits ------------------------------------------------------------------------
 * A decimal is D * 10^q. numpy's Dragon4 generates the digits of x down to some position
 * and rounds the last one: of the two decimals around x on that grid (T and T + 10^q) it
 * takes the nearest (ties to the even digit) if both lie in x's rounding interval, the one
 * that does if only one does, the nearest if neither does (a cutoff before uniqueness).
 * "Lies in the interval" is IEEE's: strtod/strtof of it gives x back (the interval bounds
 * count when x's mantissa is even, as Dragon4's isEven). printf gives the nearest decimal
 * exactly; the other one is one unit away. */

typedef struct { uint64_t d; int q; } dec;

static bool roundtrips(dec c, double x, bool f32) {
    char s[48];
    snprintf(s, sizeof s, "%" PRIu64 "e%d", c.d, c.q);
    return f32 ? strtof(s, NULL) == (float)x : strtod(s, NULL) == x;
}

/* sign of c - x, for c that does not round-trip (strtod is monotonic, so exact) */
static bool above(dec c, double x, bool f32) {
    char s[48];
    snprintf(s, sizeof s, "%" PRIu64 "e%d", c.d, c.q);
    return f32 ? strtof(s, NULL) > (float)x : strtod(s, NULL) > x;
}

/* Digits and radix point of printf's %e / %f output (any locale's radix character);
 * *e gets the exponent after 'e' (0 if none), *nfrac the digits after the radix. False
 * when more than 19 digits (does not happen for the grids used here). */
static bool parse_printf(const char *s, uint64_t *d, int *nfrac, int *e) {
    uint64_t v = 0;
    int nd = 0, nf = 0;
    bool frac = false;
    *e = 0;
    for (; *s && *s != 'e'; s++) {
        if (*s >= '0' && *s <= '9') {
            if (v == 0 && *s == '0') { if (frac) nf++; continue; }
            if (++nd > 19) return false;
            v = v * 10 + (uint64_t)(*s - '0');
            if (frac) nf++;
        } else {
            frac = true;
        }
    }
    if (*s == 'e') *e = atoi(s + 1);
    *d = v;
    *nfrac = nf;
    return true;
}

static uint64_t pow10u(int n) {
    uint64_t p = 1;
    while (n-- > 0) p *= 10;
    return p;
}

/* x > 0 finite: Dragon4's choice on the grid of c, the nearest decimal with its last digit
 * at 10^q. `maybe_carried`: c is 10^k, which printf may have reached by carrying into a
 * new leading digit (9.99 -> 1.00e+1); then x < c and x's own grid is one finer. */
static dec choose(dec c, bool maybe_carried, double x, bool f32) {
    if (roundtrips(c, x, f32)) return c;
    dec alt;
    if (above(c, x, f32)) {
        alt = maybe_carried ? (dec){c.d * 10 - 1, c.q - 1} : (dec){c.d - 1, c.q};
    } else {
        alt = (dec){c.d + 1, c.q};
    }
    return roundtrips(alt, x, f32) ? alt : c;
}

/* x > 0 finite, nsig significant digits (1..17) on x's own grid. */
static dec digits_sig(double x, bool f32, int nsig) {
    char s[64];
    snprintf(s, sizeof s, "%.*e", nsig - 1, x);
    uint64_t d;
    int nf, e;
    parse_printf(s, &d, &nf, &e);
    return choose((dec){d, e - nf}, d == pow10u(nsig - 1), x, f32);
}

/* x > 0 finite, last digit at 10^-nfrac (nfrac 0..8; x < 1e8 here). */
static dec digits_frac(double x, bool f32, int nfrac) {
    char s[64];
    snprintf(s, sizeof s, "%.*f", nfrac, x);
    uint64_t d;
    int nf, e;
    if (!parse_printf(s, &d, &nf, &e)) return (dec){0, 0};
    return choose((dec){d, -nf}, false, x, f32);
}

/* x > 0 finite: the shortest decimal that round-trips (Dragon4's unique mode); *nsig gets
 * its count of significant digits. If some n-digit decimal round-trips, a candidate with
 * n + 1 digits lies between it and x and round-trips too, so n can be bisected:
 * 4-5 printf/strtod pairs instead of up to 17 (10 ms for 1000 random doubles otherwise). */
static dec shortest(double x, bool f32, int *nsig) {
    int lo = 1, hi = f32 ? 9 : 17;             /* 9 and 17 digits always round-trip */
    dec best = {0, 0};
    bool have = false;                          /* best holds the candidate for hi */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        dec c = digits_sig(x, f32, mid);
        if (roundtrips(c, x, f32)) { hi = mid; best = c; have = true; }
        else lo = mid + 1;
    }
    *nsig = hi;
    return have ? best : digits_sig(x, f32, hi);
}

/* The decimal of D as text, and the exponent of its leading digit. Trailing zeros of D
 * are dropped when trim (they add nothing). */
typedef struct { char s[24]; int n; int lead; } digs;

static digs to_digits(dec c, bool trim) {
    digs r;
    if (c.d == 0) { strcpy(r.s, "0"); r.n = 1; r.lead = 0; return r; }
    while (trim && c.d % 10 == 0) { c.d /= 10; c.q++; }
    r.n = snprintf(r.s, sizeof r.s, "%" PRIu64, c.d);
    r.lead = c.q + r.n - 1;
    return r;
}

/* Positional text of c: integer digits and fraction digits (trailing zeros trimmed). */
typedef struct { char i[48]; int ni; char f[48]; int nf; } postext;

static void positional(dec c, postext *p) {
    digs g = to_digits(c, true);
    p->ni = p->nf = 0;
    if (c.d == 0 || g.lead < 0) {
        p->i[p->ni++] = '0';
    } else {
        for (int k = g.lead; k >= 0 && p->ni < (int)sizeof p->i - 1; k--) {
            int idx = g.lead - k;
            p->i[p->ni++] = idx < g.n ? g.s[idx] : '0';
        }
    }
    if (c.d != 0) {
        int last = g.lead - (g.n - 1);                  /* exponent of the last digit */
        for (int k = -1; k >= last && p->nf < (int)sizeof p->f - 1; k--) {
            int idx = g.lead - k;
            p->f[p->nf++] = idx >= 0 && idx < g.n ? g.s[idx] : '0';
        }
    }
    p->i[p->ni] = p->f[p->nf] = '\0';
}

static int exp_digits(int e) {
    int a = e < 0 ? -e : e, n = 1;
    while (a >= 10) { a /= 10; n++; }
    return n < 2 ? 2 : n;
}

/* ---- rank 0: numpy's scalar str ------------------------------------------------------------
 * Positional with at least one fraction digit ("1.0") for 1e-4 <= |x| < 1e16 or 0, else
 * scientific without trailing zeros or point ("1e-05", "1.5e+16"). The bounds are compared
 * in double, also for float32 (as numpy's C code does). */
static void scalar_float(out *o, double x, bool f32) {
    if (isnan(x)) { puts_(o, "nan"); return; }
    if (isinf(x)) { puts_(o, x < 0 ? "-inf" : "inf"); return; }
    if (signbit(x)) puts_(o, "-");
    double a = fabs(x);
    int nsig;
    dec c = a == 0 ? (dec){0, 0} : shortest(a, f32, &nsig);
    if (a == 0 || (a >= 1e-4 && a < 1e16)) {
        postext p;
        positional(c, &p);
        put(o, p.i, (size_t)p.ni);
        puts_(o, ".");
        if (p.nf) put(o, p.f, (size_t)p.nf); else puts_(o, "0");
    } else {
        digs g = to_digits(c, true);
        char e[16];
        put(o, g.s, 1);
        if (g.n > 1) { puts_(o, "."); put(o, g.s + 1, (size_t)g.n - 1); }
        snprintf(e, sizeof e, "e%c%02d", g.lead < 0 ? '-' : '+', abs(g.lead));
        puts_(o, e);
    }
}

/* ---- arrays: numpy's FloatingFormat / IntegerFormat ------------------------------------------ */

typedef struct fmt {
    const tensor *t;
    bool     summarize;         /* more than 1000 elements: edge items only */
    bool     f32;
    /* ints */
    int      width;
    int32_t  imin, imax;
    /* floats */
    bool     any_finite, sci;
    double   amin, amax;        /* of the finite nonzero |x| */
    bool     any_nonzero;
    int      pad_left, pad_right;   /* positional: widths of integer and fraction parts */
    int      prec, exp_size;        /* scientific: fraction digits, exponent digits */
    bool     nonfinite, neginf;
} fmt;

enum { EDGE = 3, THRESHOLD = 1000 };

static double value_at(const fmt *f, int64_t i) {
    switch (f->t->dtype) {
    case TJ_F32: return ((const float *)f->t->data)[i];
    case TJ_F64: return ((const double *)f->t->data)[i];
    case TJ_I32: return ((const int32_t *)f->t->data)[i];
    }
    return 0;
}

/* Calls visit on every shown element, in order. */
typedef void (*visit_fn)(fmt *f, int64_t i);

static void walk(fmt *f, int axis, int64_t off, const int64_t *strides, visit_fn visit) {
    const tj_shape *s = &f->t->shape;
    if (axis == s->ndim) { visit(f, off); return; }
    int64_t n = s->dim[axis];
    bool cut = f->summarize && n > 2 * EDGE;
    for (int64_t k = 0; k < n; k++) {
        if (cut && k == EDGE) k = n - EDGE;
        walk(f, axis + 1, off + k * strides[axis], strides, visit);
    }
}

static void visit_int(fmt *f, int64_t i) {
    int32_t v = ((const int32_t *)f->t->data)[i];
    if (v < f->imin) f->imin = v;
    if (v > f->imax) f->imax = v;
}

/* First look at the floats: which are finite, and the range of the nonzero ones. */
static void visit_range(fmt *f, int64_t i) {
    double x = value_at(f, i);
    if (!isfinite(x)) {
        f->nonfinite = true;
        if (isinf(x) && x < 0) f->neginf = true;
        return;
    }
    f->any_finite = true;
    double a = fabs(x);
    if (a == 0) return;
    if (!f->any_nonzero || a < f->amin) f->amin = a;
    if (!f->any_nonzero || a > f->amax) f->amax = a;
    f->any_nonzero = true;
}

/* numpy's first pass: each finite value at most 8 fraction digits (positional) or 9
 * significant digits (scientific), trailing zeros trimmed; the widths come from these. */
static void visit_widths(fmt *f, int64_t i) {
    double x = value_at(f, i);
    if (!isfinite(x)) return;
    double a = fabs(x);
    int neg = signbit(x) ? 1 : 0, nsig = 0;
    dec c = a == 0 ? (dec){0, 0} : shortest(a, f->f32, &nsig);
    if (f->sci) {
        if (nsig > 9) c = digits_sig(a, f->f32, 9);
        digs g = to_digits(c, true);
        if (g.n - 1 > f->prec) f->prec = g.n - 1;
        if (1 + neg > f->pad_left) f->pad_left = 1 + neg;
        if (exp_digits(g.lead) > f->exp_size) f->exp_size = exp_digits(g.lead);
    } else {
        if (a != 0 && c.q < -8) c = digits_frac(a, f->f32, 8);
        postext p;
        positional(c, &p);
        if (p.ni + neg > f->pad_left) f->pad_left = p.ni + neg;
        if (p.nf > f->pad_right) f->pad_right = p.nf;
    }
}

static void fmt_init(fmt *f, const tensor *t) {
    memset(f, 0, sizeof *f);
    f->t = t;
    f->summarize = t->numel > THRESHOLD;
    f->f32 = t->dtype == TJ_F32;
    int64_t strides[TJ_MAX_DIMS];
    tj_strides(&t->shape, strides);
    if (t->dtype == TJ_I32) {
        f->imin = INT32_MAX;
        f->imax = INT32_MIN;
        walk(f, 0, 0, strides, visit_int);
        char a[16], b[16];
        int na = snprintf(a, sizeof a, "%" PRId32, f->imin);
        int nb = snprintf(b, sizeof b, "%" PRId32, f->imax);
        f->width = na > nb ? na : nb;
        return;
    }
    walk(f, 0, 0, strides, visit_range);
    if (f->any_nonzero) {
        /* numpy 1.24 compares min against 1e-4 in double, and divides in the dtype */
        double ratio = f->f32 ? (double)((float)f->amax / (float)f->amin) : f->amax / f->amin;
        f->sci = f->amax >= 1e8 || f->amin < 1e-4 || ratio > 1000.0;
    }
    if (f->any_finite) walk(f, 0, 0, strides, visit_widths);
    if (f->sci) f->pad_right = f->exp_size + 2 + f->prec;
    if (f->nonfinite) {
        int offset = f->pad_right + 1, inflen = 3 + (f->neginf ? 1 : 0);
        if (3 - offset > f->pad_left) f->pad_left = 3 - offset;
        if (inflen - offset > f->pad_left) f->pad_left = inflen - offset;
    }
}

/* numpy's second pass: positional values get their digits down to the units at least
 * (min_digits 0: float32 99999992 prints as "99999992.", not the shortest "99999990."),
 * scientific ones exactly prec fraction digits. */
static void put_float(out *o, const fmt *f, double x) {
    if (!isfinite(x)) {
        const char *s = isnan(x) ? "nan" : x < 0 ? "-inf" : "inf";
        spaces(o, f->pad_left + f->pad_right + 1 - (int)strlen(s));
        puts_(o, s);
        return;
    }
    double a = fabs(x);
    int neg = signbit(x) ? 1 : 0;
    if (f->sci) {
        dec c = a == 0 ? (dec){0, 0} : digits_sig(a, f->f32, f->prec + 1);
        digs g = to_digits(c, false);
        spaces(o, f->pad_left - 1 - neg);
        if (neg) puts_(o, "-");
        put(o, g.s, 1);
        puts_(o, ".");
        int nf = g.n - 1 < f->prec ? g.n - 1 : f->prec;
        put(o, g.s + 1, (size_t)nf);
        for (int k = nf; k < f->prec; k++) puts_(o, "0");
        char e[16];
        snprintf(e, sizeof e, "e%c%0*d", g.lead < 0 ? '-' : '+', f->exp_size, abs(g.lead));
        puts_(o, e);
        return;
    }
    dec c = (dec){0, 0};
    if (a != 0) {
        int nsig;
        c = shortest(a, f->f32, &nsig);
        if (c.q > 0) c = digits_frac(a, f->f32, 0);
        else if (c.q < -8) c = digits_frac(a, f->f32, 8);
    }
    postext p;
    positional(c, &p);
    spaces(o, f->pad_left - p.ni - neg);
    if (neg) puts_(o, "-");
    put(o, p.i, (size_t)p.ni);
    puts_(o, ".");
    put(o, p.f, (size_t)p.nf);
    spaces(o, f->pad_right - p.nf);
}

static void put_element(out *o, const fmt *f, int64_t i) {
    if (f->t->dtype == TJ_I32) {
        char s[16];
        snprintf(s, sizeof s, "%*" PRId32, f->width, ((const int32_t *)f->t->data)[i]);
        puts_(o, s);
    } else {
        put_float(o, f, value_at(f, i));
    }
}

/* numpy's _formatArray with rows joined by one space: "[[1 2] [3 4]]", "..." for the
 * elements or rows left out. */
static void put_array(out *o, const fmt *f, int axis, int64_t off, const int64_t *strides) {
    const tj_shape *s = &f->t->shape;
    if (axis == s->ndim) { put_element(o, f, off); return; }
    int64_t n = s->dim[axis];
    bool cut = f->summarize && n > 2 * EDGE;
    puts_(o, "[");
    for (int64_t k = 0; k < n; k++) {
        if (k) puts_(o, " ");
        if (cut && k == EDGE) { puts_(o, "... "); k = n - EDGE; }
        put_array(o, f, axis + 1, off + k * strides[axis], strides);
    }
    puts_(o, "]");
}

static void put_values(out *o, const tensor *t) {
    if (t->shape.ndim == 0) {
        if (t->dtype == TJ_I32) {
            char s[16];
            snprintf(s, sizeof s, "%" PRId32, *(const int32_t *)t->data);
            puts_(o, s);
        } else {
            scalar_float(o, t->dtype == TJ_F32 ? *(const float *)t->data
                                               : *(const double *)t->data, t->dtype == TJ_F32);
        }
        return;
    }
    if (t->numel == 0) { puts_(o, "[]"); return; }
    fmt f;
    fmt_init(&f, t);
    int64_t strides[TJ_MAX_DIMS];
    tj_strides(&t->shape, strides);
    put_array(o, &f, 0, 0, strides);
}

static void put_tensor(out *o, const tensor *t) {
    char shape[TJ_SHAPE_STR_MAX];
    puts_(o, "tj.Tensor(");
    put_values(o, t);
    puts_(o, ", shape=");
    puts_(o, tj_shape_str(&t->shape, shape, sizeof shape));
    puts_(o, ", dtype=");
    puts_(o, tj_dtype_name(t->dtype));
    puts_(o, ")");
}

int tj_snprint(char *buf, size_t size, const tj_tensor *h) {
    tensor *t = tj_resolve(h, "print", 1);
    if (!t) {
        if (buf && size > 0) buf[0] = '\0';
        return -1;
    }
    if (!buf && size > 0)
        return tj_err(TJ_ERR_ARG, "print: buf is NULL but size is %zu", size), -1;
    out o = {buf, size, 0, NULL};
    int saved_errno = errno;        /* strtod reports subnormals as ERANGE; not our news */
    put_tensor(&o, t);
    errno = saved_errno;
    if (size > 0) buf[o.len < size ? o.len : size - 1] = '\0';
    if (o.len > INT_MAX)
        return tj_err(TJ_ERR_ARG, "print: text of %zu bytes does not fit an int", o.len), -1;
    return (int)o.len;
}

void tj_print(const tj_tensor *h) {
    tensor *t = tj_resolve(h, "print", 1);
    if (!t) return;
    out o = {NULL, 0, 0, stdout};
    int saved_errno = errno;
    put_tensor(&o, t);
    errno = saved_errno;
    fputc('\n', stdout);
}
