/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lineproto.c - InfluxDB line-protocol encoding and the shortest
 * round-tripping double formatter.
 *
 * The reference is InfluxData's Go encoder, which produced the expected text
 * of tests/data/line-protocol-corpus.json:
 *   - measurement: ',' and ' ' escaped; tag keys, tag values and field keys:
 *     ',', '=' and ' ' escaped; any other backslash is written as is;
 *   - string field values: '"' and '\' escaped, every other byte (newlines
 *     included) written as is, in double quotes;
 *   - names (measurement, keys, tag values) holding a control character
 *     (0x00-0x1f, 0x7f: a newline would end the line) or ending in a
 *     backslash (it would escape the separator after it) are refused;
 *   - floats as Go's strconv.FormatFloat(v, 'g', -1, 64): shortest digits,
 *     exponent form when the decimal exponent is < -4 or >= 6;
 *   - timestamps divided by the precision, truncating toward zero (Go's /).
 *
 * A point is validated and its worst-case size reserved first, then written
 * straight into the buffer; out->len only moves once the line is complete.
 */
#include "digits.h"
#include <gatherd/lineproto.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F64_MAX_CHARS   32 /* gd_fmt_double() output, NUL included */
#define I64_MAX_CHARS   21 /* "-9223372036854775808" plus the type suffix */
#define BOOL_MAX_CHARS  5  /* "false" */
#define FAST_MAX_DIGITS 15 /* digits the formatter's fast path handles */
#define SLOW_MIN_DIGITS 15 /* below this, the nearest 15 digits are the shortest */
#define MAX_DIGITS      17 /* digits that always round-trip a double */
#define GO_EXP_FORM_AT  6  /* Go's shortest %g: exponent form from 1e+06 */

/* ---- numbers ----------------------------------------------------------- */

/* floor(e * log10(2)) for small |e|, without floating point. */
static int floor_log10_pow2(int e)
{
    /* 78913 / 2^18 ~ log10(2); exact floor for |e| <= 1650. */
    if (e >= 0)
        return (int)(((int64_t)e * 78913) >> 18);
    return -(int)((((int64_t)-e * 78913) + (1 << 18) - 1) >> 18);
}

/* Drop the trailing zeros of @c (> 0); returns how many. */
static inline int strip_zeros(uint64_t *c)
{
    int z = 0;
    while (*c % 10000 == 0) {
        *c /= 10000;
        z += 4;
    }
    while (*c % 10 == 0) {
        *c /= 10;
        z++;
    }
    return z;
}

/* A decimal d1.d2...dn * 10^x: the digits as an integer (no trailing
 * zeros) and the exponent of the first digit. */
struct decimal {
    uint64_t digits;
    int x;
};

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#define POW10_EXACT_MAX ((int)(sizeof(pow10_exact) / sizeof(pow10_exact[0])) - 1)

/*
 * Fast path for 1e-5 <= v < 1e15 with at most 15 significant digits (the
 * usual metric: 21.5, 0.001, 1234): n = round(v * 10^k) for the largest k
 * keeping n below 10^15; if n / 10^k (an exact integer over an exact power
 * of ten, so one correctly rounded division, as strtod would do) gives v
 * back, the digits of n are v's shortest: with at most 15 digits no other
 * decimal of that length lies within half an ulp of v.
 */
static bool fast_decimal(double v, struct decimal *out)
{
    if (!(v >= 1e-5 && v < 1e15))
        return false;
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    int e2 = (int)((bits >> 52) & 0x7ff) - 1023; /* v is normal here */
    int k = FAST_MAX_DIGITS - 1 - floor_log10_pow2(e2);
    if (k > POW10_EXACT_MAX)
        return false;
    double s = v * pow10_exact[k];
    if (s >= 1e15) {
        /* floor_log10_pow2() may be one below floor(log10(v)). */
        if (--k < 0)
            return false;
        s = v * pow10_exact[k];
        if (s >= 1e15)
            return false;
    }
    uint64_t n = (uint64_t)(s + 0.5);
    if (n == 0 || (double)n / pow10_exact[k] != v)
        return false;
    int z = strip_zeros(&n);
    out->digits = n;
    out->x = count_digits(n) - 1 + z - k;
    return true;
}

__extension__ typedef unsigned __int128 u128;

static const uint64_t pow5_u64[] = {1ULL,
                                    5ULL,
                                    25ULL,
                                    125ULL,
                                    625ULL,
                                    3125ULL,
                                    15625ULL,
                                    78125ULL,
                                    390625ULL,
                                    1953125ULL,
                                    9765625ULL,
                                    48828125ULL,
                                    244140625ULL,
                                    1220703125ULL,
                                    6103515625ULL,
                                    30517578125ULL,
                                    152587890625ULL,
                                    762939453125ULL,
                                    3814697265625ULL,
                                    19073486328125ULL,
                                    95367431640625ULL,
                                    476837158203125ULL,
                                    2384185791015625ULL,
                                    11920928955078125ULL,
                                    59604644775390625ULL,
                                    298023223876953125ULL,
                                    1490116119384765625ULL,
                                    7450580596923828125ULL};

#define EXACT_MAX_K      ((int)(sizeof(pow5_u64) / sizeof(pow5_u64[0])) - 1)
#define EXACT_MIN_DIGITS 17 /* the scaled value has at least this many integer digits */

/*
 * Exact path for normal doubles from about 1e-11 to 1.8e19 (every metric in
 * practice), in 128-bit integer arithmetic. With v = m * 2^e, scale by 10^k
 * so that V = v * 10^k has at least 17 integer digits: V, and the bounds of
 * the interval of reals that read back as v (halfway to the neighbouring
 * doubles; inclusive when m is even, as strtod rounds ties to even), are
 * then exact fractions m' * 5^k * 2^(e+k-2) with a power-of-two
 * denominator. Every decimal of at most 17 digits is an integer at that
 * scale, so the shortest one is a multiple of the largest power of ten with
 * a multiple inside the interval, and of those the nearest to V (ties to
 * even), as Go and Ryu choose.
 */
static bool exact_decimal(double v, struct decimal *out)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    int be = (int)((bits >> 52) & 0x7ff);
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    if (be == 0 || be == 0x7ff)
        return false;
    uint64_t m = frac | (UINT64_C(1) << 52);
    int e = be - 1075; /* v = m * 2^e */
    /* floor(log10(v)) or one less: V gets 17 or 18 integer digits. */
    int k = EXACT_MIN_DIGITS - 1 - floor_log10_pow2(be - 1023);
    if (k < 0)
        k = 0;
    if (k > EXACT_MAX_K)
        return false;

    /* Numerators at four times m: the lower bound is a quarter ulp away
     * when m is a power of two (the double below is closer). */
    bool inclusive = (m & 1) == 0;
    uint64_t lower_gap = (frac == 0 && be > 1) ? 1 : 2;
    u128 f = pow5_u64[k];
    u128 pv = (u128)(4 * m) * f;
    u128 pp = (u128)(4 * m + 2) * f;
    u128 pm = (u128)(4 * m - lower_gap) * f;
    int t = e - 2 + k; /* value = numerator * 2^t */
    int q = 0;         /* ... = numerator / 2^q */
    if (t > 0) {
        if (t > 8) /* keeps the integer part below 2^64 */
            return false;
        pv <<= t;
        pp <<= t;
        pm <<= t;
    } else {
        q = -t;
        if (q > 64) /* 10^19 << q must fit in 128 bits */
            return false;
    }
    u128 mask = q ? (((u128)1 << q) - 1) : 0;
    if ((pp >> q) >> 64)
        return false;

    /* Integers within the interval: [lo, hi]. */
    uint64_t lo = (uint64_t)(pm >> q);
    if ((pm & mask) != 0 || !inclusive)
        lo++;
    uint64_t hi = (uint64_t)(pp >> q);
    if ((pp & mask) == 0 && !inclusive)
        hi--;

    /* The largest 10^j with a multiple in [lo, hi]; l..h are those
     * multiples, counted in units of 10^j. */
    uint64_t l = lo, h = hi;
    int j = 0;
    while (h / 10 >= (l + 9) / 10) {
        h /= 10;
        l = (l + 9) / 10;
        j++;
    }
    uint64_t c = l;
    if (h > l) {
        /* Nearest to V: compare V with (vq + 1/2) * 10^j. */
        uint64_t p10 = pow10_u64[j];
        uint64_t vq = (uint64_t)(pv >> q) / p10;
        u128 mid = ((u128)(2 * vq + 1) * p10) << q;
        u128 twice_v = pv << 1;
        if (twice_v < mid)
            c = vq;
        else if (twice_v > mid)
            c = vq + 1;
        else
            c = vq % 2 == 0 ? vq : vq + 1;
        if (c < l)
            c = l;
        if (c > h)
            c = h;
    }
    int z = strip_zeros(&c);
    out->digits = c;
    out->x = count_digits(c) - 1 + z + j - k;
    return true;
}

/* The decimal of a "%.*e" rendering ("d.ddde+XX", at most 17 digits). */
static void parse_e(const char *s, struct decimal *out)
{
    uint64_t c = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9')
            c = c * 10 + (uint64_t)(*s - '0');
    int x = *s == 'e' ? atoi(s + 1) : 0;
    if (c)
        strip_zeros(&c);
    out->digits = c;
    out->x = x;
}

static bool round_trips(const char *s, double v)
{
    return strtod(s, NULL) == v;
}

/*
 * Slow path, for subnormals and magnitudes beyond the exact path: the
 * nearest 15-, 16- then 17-digit decimals, checked with strtod. For normal
 * doubles the nearest 15 digits, if they round-trip, are the shortest once
 * trailing zeros are dropped; subnormals have fewer bits, so every length
 * is tried. At a power of two the interval below v is half the one above,
 * so when the nearest 16 digits (below v) fail, the next 16-digit decimal
 * up may still round-trip.
 */
static void slow_decimal(double v, struct decimal *out)
{
    char buf[48];
    bool subnormal = v < DBL_MIN;
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    bool pow2 = !subnormal && (bits & ((UINT64_C(1) << 52) - 1)) == 0;

    for (int prec = subnormal ? 1 : SLOW_MIN_DIGITS; prec < MAX_DIGITS; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
        if (round_trips(buf, v)) {
            parse_e(buf, out);
            return;
        }
        if (prec == 16 && pow2) {
            uint64_t m = 0;
            const char *s = buf;
            for (; *s != 'e'; s++)
                if (*s >= '0' && *s <= '9')
                    m = m * 10 + (uint64_t)(*s - '0');
            int e = atoi(s + 1);
            m++;
            if (m == pow10_u64[16]) {
                m /= 10;
                e++;
            }
            snprintf(buf, sizeof(buf), "%" PRIu64 "e%d", m, e - 15);
            if (round_trips(buf, v)) {
                strip_zeros(&m);
                out->digits = m;
                out->x = e;
                return;
            }
        }
    }
    snprintf(buf, sizeof(buf), "%.*e", MAX_DIGITS - 1, v);
    parse_e(buf, out);
}

/* Lay out @dec the way Go's shortest %g does; returns the end. */
static char *layout_g(char *d, const struct decimal *dec)
{
    uint64_t c = dec->digits;
    int nd = count_digits(c);
    int x = dec->x;
    if (x < -4 || x >= GO_EXP_FORM_AT) {
        /* d.ddde±XX: write the digits one place right, then pull the
         * first one in front of the point. */
        put_digits(d + 1, c, nd);
        d[0] = d[1];
        if (nd > 1) {
            d[1] = '.';
            d += nd + 1;
        } else {
            d += 1;
        }
        *d++ = 'e';
        *d++ = x < 0 ? '-' : '+';
        unsigned ex = (unsigned)(x < 0 ? -x : x);
        if (ex >= 100) {
            *d++ = (char)('0' + ex / 100);
            ex %= 100;
        }
        memcpy(d, digit_pairs + 2 * ex, 2);
        return d + 2;
    }
    if (x < 0) {
        /* "0." and -x-1 zeros; fixed-size stores (dst has room) avoid a
         * memcpy call. */
        memcpy(d, "0.000000", 8);
        return put_digits(d + 1 - x, c, nd);
    }
    int ip = x + 1; /* digits before the point */
    if (nd <= ip) {
        d = put_digits(d, c, nd);
        memcpy(d, "00000000", 8);
        return d + (ip - nd);
    }
    /* Digits one place right, then the integer part (at most six digits)
     * back left over the gap, leaving room for the point. */
    put_digits(d + 1, c, nd);
    for (int i = 0; i < ip; i++)
        d[i] = d[i + 1];
    d[ip] = '.';
    return d + nd + 1;
}

size_t gd_fmt_double(char *dst, double v)
{
    char *d = dst;
    if (isnan(v)) {
        memcpy(d, "NaN", 4);
        return 3;
    }
    if (signbit(v)) {
        *d++ = '-';
        v = -v;
    }
    if (isinf(v)) {
        if (d == dst)
            *d++ = '+';
        memcpy(d, "Inf", 4);
        return (size_t)(d - dst) + 3;
    }
    if (v == 0) {
        *d++ = '0';
        *d = '\0';
        return (size_t)(d - dst);
    }
    struct decimal dec;
    if (!fast_decimal(v, &dec) && !exact_decimal(v, &dec))
        slow_decimal(v, &dec);
    d = layout_g(d, &dec);
    *d = '\0';
    return (size_t)(d - dst);
}

/* ---- escaping ---------------------------------------------------------- */

enum {
    C_ESC_MEAS = 1, /* escaped in a measurement */
    C_ESC_KEY = 2,  /* escaped in tag keys, tag values and field keys */
    C_BAD = 4,      /* cannot appear in a name */
};

#define BAD4(i) [(i)] = C_BAD, [(i) + 1] = C_BAD, [(i) + 2] = C_BAD, [(i) + 3] = C_BAD

static const unsigned char name_class[256] = {
    BAD4(0),
    BAD4(4),
    BAD4(8),
    BAD4(12),
    BAD4(16),
    BAD4(20),
    BAD4(24),
    BAD4(28),
    [127] = C_BAD,
    [' '] = C_ESC_MEAS | C_ESC_KEY,
    [','] = C_ESC_MEAS | C_ESC_KEY,
    ['='] = C_ESC_KEY,
};

/* Write the name @s (n > 0) escaped per @mask; NULL if it cannot be one. */
static char *put_name(char *d, const char *s, size_t n, unsigned mask)
{
    if (s[n - 1] == '\\')
        return NULL;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        unsigned k = name_class[u[i]];
        if (k) {
            if (k & C_BAD)
                return NULL;
            if (k & mask)
                *d++ = '\\';
        }
        *d++ = (char)u[i];
    }
    return d;
}

static char *put_string_value(char *d, const char *s, size_t n)
{
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *d++ = '\\';
        *d++ = s[i];
    }
    *d++ = '"';
    return d;
}

/* ---- points ------------------------------------------------------------ */

static const int64_t precision_div[] = {
    [GD_PREC_NS] = 1,
    [GD_PREC_US] = 1000,
    [GD_PREC_MS] = 1000000,
    [GD_PREC_S] = 1000000000,
};

/* *@acc += @a + 2 * @b, false on overflow. */
static inline bool grow_bound(size_t *acc, size_t a, size_t b)
{
    size_t twice;
    return !__builtin_mul_overflow(b, 2, &twice) && !__builtin_add_overflow(*acc, a, acc) &&
           !__builtin_add_overflow(*acc, twice, acc);
}

/* Validate @p and compute the most bytes its line can take. NULL or a
 * reason. */
static const char *line_bound(const gd_point *p, size_t *bound)
{
    size_t mlen, ntags, nfields;
    gd_point_measurement(p, &mlen);
    const gd_tag *tags = gd_point_tags(p, &ntags);
    const gd_field *fields = gd_point_fields(p, &nfields);
    if (mlen == 0)
        return "empty measurement";
    if (nfields == 0)
        return "point has no fields";
    size_t need = 0;
    /* measurement, " timestamp\n" */
    if (!grow_bound(&need, 2 + I64_MAX_CHARS, mlen))
        return "line too long";
    for (size_t i = 0; i < ntags; i++) {
        if (tags[i].key_len == 0)
            return "empty tag key";
        if (tags[i].value_len == 0)
            return "empty tag value";
        /* ",k=v" */
        if (!grow_bound(&need, 2, (size_t)tags[i].key_len + tags[i].value_len))
            return "line too long";
    }
    for (size_t i = 0; i < nfields; i++) {
        const gd_field *f = &fields[i];
        size_t vmax = 0, vlen = 0;
        if (f->key_len == 0)
            return "empty field key";
        switch (f->type) {
        case GD_F64:
            if (!isfinite(f->v.f64))
                return "non-finite float";
            vmax = F64_MAX_CHARS;
            break;
        case GD_I64:
        case GD_U64:
            vmax = I64_MAX_CHARS;
            break;
        case GD_BOOL:
            vmax = BOOL_MAX_CHARS;
            break;
        case GD_STR:
            vmax = 2;
            vlen = f->v.str.len;
            break;
        default:
            return "unknown field type";
        }
        /* ",k=" value */
        if (!grow_bound(&need, 2 + vmax, f->key_len) || !grow_bound(&need, 0, vlen))
            return "line too long";
    }
    *bound = need;
    return NULL;
}

int gd_lp_encode_point(gd_buf *out, const gd_point *p, gd_precision prec, const char **why)
{
    const char *reason;
    int rc = GD_EINVAL;
    size_t need;

    if (!out || !p) {
        reason = "no buffer or no point";
        goto out_fail;
    }
    if ((unsigned)prec > GD_PREC_S) {
        reason = "invalid precision";
        goto out_fail;
    }
    reason = line_bound(p, &need);
    if (reason)
        goto out_fail;
    rc = gd_buf_reserve(out, need);
    if (rc < 0) {
        reason = "out of memory";
        goto out_fail;
    }
    rc = GD_EINVAL;

    size_t mlen, ntags, nfields;
    const char *m = gd_point_measurement(p, &mlen);
    const gd_tag *tags = gd_point_tags(p, &ntags);
    const gd_field *fields = gd_point_fields(p, &nfields);
    char *d = out->data + out->len;

    d = put_name(d, m, mlen, C_ESC_MEAS);
    if (!d) {
        reason = "control character or trailing backslash in measurement";
        goto out_restore;
    }
    for (size_t i = 0; i < ntags; i++) {
        *d++ = ',';
        d = put_name(d, tags[i].key, tags[i].key_len, C_ESC_KEY);
        if (!d) {
            reason = "control character or trailing backslash in tag key";
            goto out_restore;
        }
        *d++ = '=';
        d = put_name(d, tags[i].value, tags[i].value_len, C_ESC_KEY);
        if (!d) {
            reason = "control character or trailing backslash in tag value";
            goto out_restore;
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        const gd_field *f = &fields[i];
        *d++ = i ? ',' : ' ';
        d = put_name(d, f->key, f->key_len, C_ESC_KEY);
        if (!d) {
            reason = "control character or trailing backslash in field key";
            goto out_restore;
        }
        *d++ = '=';
        switch (f->type) {
        case GD_F64:
            d += gd_fmt_double(d, f->v.f64);
            break;
        case GD_I64:
            d = put_i64(d, f->v.i64);
            *d++ = 'i';
            break;
        case GD_U64:
            d = put_u64(d, f->v.u64);
            *d++ = 'u';
            break;
        case GD_BOOL:
            if (f->v.b) {
                memcpy(d, "true", 4);
                d += 4;
            } else {
                memcpy(d, "false", 5);
                d += 5;
            }
            break;
        default: /* GD_STR; line_bound() refused other types */
            d = put_string_value(d, f->v.str.ptr, f->v.str.len);
            break;
        }
    }
    *d++ = ' ';
    d = put_i64(d, gd_point_time(p) / precision_div[prec]);
    *d++ = '\n';
    *d = '\0';
    out->len = (size_t)(d - out->data);
    if (why)
        *why = NULL;
    return 0;

out_restore:
    out->data[out->len] = '\0';
out_fail:
    if (why)
        *why = reason;
    return rc;
}

int gd_lp_encode_batch(gd_buf *out, const gd_batch *b, gd_precision prec, size_t *skipped)
{
    size_t bad = 0;
    if (skipped)
        *skipped = 0;
    if (!out || !b || (unsigned)prec > GD_PREC_S)
        return GD_EINVAL;
    size_t start = out->len;
    size_t n = gd_batch_len(b);
    for (size_t i = 0; i < n; i++) {
        int rc = gd_lp_encode_point(out, gd_batch_point(b, i), prec, NULL);
        if (rc == GD_EINVAL) {
            bad++;
            continue;
        }
        if (rc < 0) {
            /* All or nothing on out of memory. */
            out->len = start;
            if (out->data)
                out->data[start] = '\0';
            return rc;
        }
    }
    if (skipped)
        *skipped = bad;
    return 0;
}

int gd_index_set_add(gd_index_set *s, uint32_t i)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(*s->idx))
            return GD_ENOMEM;
        uint32_t *v = realloc(s->idx, cap * sizeof(*v));
        if (!v)
            return GD_ENOMEM;
        s->idx = v;
        s->cap = cap;
    }
    s->idx[s->n++] = i;
    return 0;
}

void gd_index_set_free(gd_index_set *s)
{
    if (!s)
        return;
    free(s->idx);
    memset(s, 0, sizeof(*s));
}

int gd_encode_batch(gd_buf *out, const gd_batch *b, gd_format fmt, gd_precision prec,
                    gd_index_set *rejects, const char **why)
{
    size_t n = gd_batch_len(b), start = out->len;
    const char *first = NULL;
    int rc = 0;

    if (!out || !b || !rejects || (unsigned)prec > GD_PREC_S || n > UINT32_MAX)
        return GD_EINVAL;
    rejects->n = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const gd_point *p = gd_batch_point(b, i);
        const char *reason = "not representable in JSON";
        rc = fmt == GD_FORMAT_JSON ? gd_json_encode_point(out, p)
                                   : gd_lp_encode_point(out, p, prec, &reason);
        if (rc == GD_EINVAL) {
            if (!first)
                first = reason;
            rc = gd_index_set_add(rejects, (uint32_t)i);
        }
    }
    if (rc < 0) {
        /* All or nothing on out of memory. */
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        rejects->n = 0;
        return rc;
    }
    if (why)
        *why = first;
    return 0;
}
